// Small helpers shared by the agent's files: logging, fd ownership, id/path validation, file I/O.
#pragma once
#include <string>
#include <string_view>
#include <vector>

void log_line(const char* level, const std::string& msg);
inline void log_info(const std::string& m) { log_line("info", m); }
inline void log_warn(const std::string& m) { log_line("warn", m); }
inline void log_error(const std::string& m) { log_line("error", m); }

std::string errno_text(int err);  // "ENOENT (No such file or directory)"-style text

// agent.proto: ids are 1..64 bytes of [A-Za-z0-9_.-], not starting with '.'.
bool valid_id(std::string_view id);
// Absolute, no ".." component, no NUL, at most 4095 bytes.
bool valid_abs_path(std::string_view p);

bool mkdir_p(const std::string& path, unsigned mode);
bool write_file(const std::string& path, std::string_view data, std::string& err);
bool read_file(const std::string& path, std::string& out, size_t max_bytes);
bool remove_tree(const std::string& path);  // does not cross mount points (stays on one device)
void close_fd(int& fd);
bool set_nonblock(int fd);
