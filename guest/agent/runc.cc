#include "runc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "json.h"
#include "util.h"

void reset_child_signals() {
  sigset_t all;
  sigemptyset(&all);
  sigprocmask(SIG_SETMASK, &all, nullptr);
  for (int s : {SIGPIPE, SIGCHLD, SIGTERM, SIGINT, SIGHUP}) signal(s, SIG_DFL);
}

static long now_ms() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

// The last {"level":"error","msg":...} line of a runc --log-format json file.
static std::string last_log_error(const std::string& path) {
  std::string text, found;
  if (path.empty() || !read_file(path, text, 1 << 20)) return found;
  size_t i = 0;
  while (i < text.size()) {
    size_t j = text.find('\n', i);
    if (j == std::string::npos) j = text.size();
    json::Value v;
    std::string err;
    if (json::parse(std::string_view(text).substr(i, j - i), v, err)) {
      json::Value* level = v.get("level");
      json::Value* msg = v.get("msg");
      if (level && msg && level->s == "error" && msg->kind == json::Value::Kind::String) found = msg->s;
    }
    i = j + 1;
  }
  return found;
}

RuncResult Runc::run(const std::vector<std::string>& args, const int stdio_fds[3], const std::string& log_path,
                     int timeout_ms) const {
  RuncResult res;
  std::vector<std::string> argv_s{binary};
  if (!root.empty()) { argv_s.push_back("--root"); argv_s.push_back(root); }
  if (!log_path.empty()) {
    argv_s.push_back("--log"); argv_s.push_back(log_path);
    argv_s.push_back("--log-format"); argv_s.push_back("json");
    unlink(log_path.c_str());
  }
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : argv_s) argv.push_back(const_cast<char*>(s.c_str()));
  argv.push_back(nullptr);

  int errpipe[2] = {-1, -1};
  if (stdio_fds[2] < 0 && pipe2(errpipe, O_CLOEXEC) != 0) {
    res.error = "pipe: " + errno_text(errno);
    return res;
  }
  pid_t pid = fork();
  if (pid < 0) {
    res.error = "fork: " + errno_text(errno);
    close_fd(errpipe[0]);
    close_fd(errpipe[1]);
    return res;
  }
  if (pid == 0) {
    reset_child_signals();
    int devnull = open("/dev/null", O_RDWR);
    int fds[3] = {stdio_fds[0], stdio_fds[1], stdio_fds[2] >= 0 ? stdio_fds[2] : errpipe[1]};
    // Move sources above 2 first so dup2 never clobbers a source still needed.
    for (int i = 0; i < 3; i++) {
      int src = fds[i] >= 0 ? fds[i] : devnull;
      int hi = fcntl(src, F_DUPFD, 10);
      fds[i] = hi;
    }
    for (int i = 0; i < 3; i++) {
      if (fds[i] < 0 || dup2(fds[i], i) < 0) _exit(127);
    }
    execvp(argv[0], argv.data());
    _exit(127);
  }
  close_fd(errpipe[1]);

  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  long deadline = now_ms() + timeout_ms;
  int status = 0;
  bool timed_out = false;
  for (;;) {
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) { status = -1; break; }
    long left = deadline - now_ms();
    if (left <= 0 && !timed_out) {
      timed_out = true;
      kill(pid, SIGKILL);
      deadline = now_ms() + 5000;
      continue;
    }
    if (left <= 0) {  // SIGKILLed and still not reaped: give up waiting (the reaper will collect it)
      status = -1;
      break;
    }
    if (pidfd >= 0) {
      pollfd p{pidfd, POLLIN, 0};
      poll(&p, 1, static_cast<int>(left > 1000 ? 1000 : left));
    } else {
      usleep(5000);
    }
  }
  if (pidfd >= 0) close(pidfd);

  std::string captured;
  if (errpipe[0] >= 0) {
    set_nonblock(errpipe[0]);
    char buf[4096];
    ssize_t n;
    while (captured.size() < 65536 && (n = read(errpipe[0], buf, sizeof buf)) > 0) captured.append(buf, static_cast<size_t>(n));
    close(errpipe[0]);
  }
  res.status = status;
  res.ok = status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (!res.ok) {
    std::string what = last_log_error(log_path);
    if (what.empty()) {
      while (!captured.empty() && (captured.back() == '\n' || captured.back() == ' ')) captured.pop_back();
      what = captured;
    }
    std::string how = timed_out ? "timed out after " + std::to_string(timeout_ms) + " ms"
                      : status == -1 ? "could not be waited for"
                      : WIFEXITED(status) ? "exited with status " + std::to_string(WEXITSTATUS(status))
                      : "was killed by signal " + std::to_string(WTERMSIG(status));
    res.error = binary + " " + (args.empty() ? "" : args[0]) + " " + how + (what.empty() ? "" : ": " + what);
  }
  return res;
}
