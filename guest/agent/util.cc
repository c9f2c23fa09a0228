#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>

#include "json.h"

void log_line(const char* level, const std::string& msg) {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  json::Value v = json::Value::object();
  json::Value t;
  t.kind = json::Value::Kind::Number;
  t.s = std::to_string(static_cast<long long>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000);
  v.set("time", t);
  v.set("level", json::Value::string(level));
  v.set("name", json::Value::string("kata-ts-agent"));
  v.set("msg", json::Value::string(msg));
  std::string line = json::serialize(v) + "\n";
  ssize_t r = write(STDERR_FILENO, line.data(), line.size());
  (void)r;
}

std::string errno_text(int err) { return std::string(strerrorname_np(err) ? strerrorname_np(err) : "E?") + " (" + strerror(err) + ")"; }

bool valid_id(std::string_view id) {
  if (id.empty() || id.size() > 64 || id[0] == '.') return false;
  for (char c : id)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
      return false;
  return true;
}

bool valid_abs_path(std::string_view p) {
  if (p.empty() || p[0] != '/' || p.size() > 4095) return false;
  if (p.find('\0') != std::string_view::npos) return false;
  size_t i = 0;
  while (i < p.size()) {
    size_t j = p.find('/', i);
    if (j == std::string_view::npos) j = p.size();
    if (p.substr(i, j - i) == "..") return false;
    i = j + 1;
  }
  return true;
}

bool mkdir_p(const std::string& path, unsigned mode) {
  std::string cur;
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    cur = path.substr(0, j);
    if (!cur.empty() && mkdir(cur.c_str(), mode) != 0 && errno != EEXIST) return false;
    i = j + 1;
  }
  struct stat st{};
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool write_file(const std::string& path, std::string_view data, std::string& err) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) { err = "open " + path + ": " + errno_text(errno); return false; }
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      err = "write " + path + ": " + errno_text(errno);
      close(fd);
      return false;
    }
    off += static_cast<size_t>(n);
  }
  close(fd);
  return true;
}

bool read_file(const std::string& path, std::string& out, size_t max_bytes) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  out.clear();
  char buf[4096];
  while (out.size() < max_bytes) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  if (out.size() > max_bytes) out.resize(max_bytes);
  close(fd);
  return true;
}

static bool remove_tree_at(int dirfd, const char* name, dev_t dev) {
  struct stat st{};
  if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) return errno == ENOENT;
  if (!S_ISDIR(st.st_mode)) return unlinkat(dirfd, name, 0) == 0;
  if (st.st_dev != dev) return false;  // a mount point: never delete into it
  int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return false;
  DIR* d = fdopendir(fd);
  if (!d) { close(fd); return false; }
  bool ok = true;
  while (dirent* e = readdir(d)) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    ok = remove_tree_at(fd, e->d_name, dev) && ok;
  }
  closedir(d);
  return unlinkat(dirfd, name, AT_REMOVEDIR) == 0 && ok;
}

bool remove_tree(const std::string& path) {
  struct stat st{};
  if (lstat(path.c_str(), &st) != 0) return errno == ENOENT;
  return remove_tree_at(AT_FDCWD, path.c_str(), st.st_dev);
}

void close_fd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

bool set_nonblock(int fd) {
  int fl = fcntl(fd, F_GETFL);
  return fl >= 0 && fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0;
}
