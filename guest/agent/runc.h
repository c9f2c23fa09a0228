// Running runc (and other helpers) as child processes. Calls block the event loop until runc exits, with a
// deadline after which runc is killed; runc create/start/exec/kill/delete return within milliseconds.
#pragma once
#include <string>
#include <vector>

struct RuncResult {
  bool ok = false;        // exited with status 0
  int status = -1;        // raw wait status, -1 if it could not be started
  std::string error;      // what went wrong: runc's own error message when it printed one
};

struct Runc {
  std::string binary = "runc";
  std::string root;        // runc --root (state directory)
  bool no_pivot = false;   // runc create --no-pivot (needed when / is the initramfs)

  // stdio_fds: the child's fds 0, 1, 2 (-1 = /dev/null; stderr -1 = captured for the error text).
  // log_path: runc --log FILE --log-format json; its last "error" line becomes RuncResult::error.
  RuncResult run(const std::vector<std::string>& args, const int stdio_fds[3], const std::string& log_path,
                 int timeout_ms) const;
};

// Restores what the agent changed in its own process (signal mask, SIGPIPE) before exec in a child.
void reset_child_signals();
