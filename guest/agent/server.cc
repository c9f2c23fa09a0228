// The agent's sockets: ttRPC connections (AgentService + Health), stdio stream binding, SIGCHLD reaping.
#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

#include "agent.h"
#include "init.h"
#include "util.h"

namespace {
constexpr size_t kMaxOutBuffer = 64u << 20;  // a client that never reads is dropped past this
constexpr size_t kMaxStdioHeader = 4096;     // agent.proto: StdioStreamHeader length 1..4096
const char* kAgentService = "kata_ts.agent.AgentService";
const char* kHealthService = "kata_ts.agent.Health";
}  // namespace

Agent::Agent(Options o) : opt_(std::move(o)) {
  runc_.binary = opt_.runc;
  runc_.root = opt_.state_dir + "/runc";
}

bool Agent::listen_on(const std::string& spec, bool stdio) {
  int fd = -1;
  if (spec.rfind("vsock:", 0) == 0) {
    char* end = nullptr;
    unsigned long port = strtoul(spec.c_str() + 6, &end, 10);
    if (!end || *end || port == 0 || port > 0xffffffffUL) { log_error("bad listen address " + spec + " (use vsock:PORT)"); return false; }
    fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_vm sa{};
    sa.svm_family = AF_VSOCK;
    sa.svm_cid = VMADDR_CID_ANY;
    sa.svm_port = static_cast<unsigned>(port);
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
      log_error("listen on " + spec + ": " + errno_text(errno) + " (is the virtio-vsock device present?)");
      close_fd(fd);
      return false;
    }
    if (stdio) stdio_port_ = static_cast<uint32_t>(port);
  } else if (spec.rfind("unix:", 0) == 0) {
    std::string path = spec.substr(5);
    sockaddr_un sa{};
    if (path.empty() || path.size() >= sizeof sa.sun_path) { log_error("bad unix socket path in " + spec); return false; }
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path.c_str(), path.size());
    unlink(path.c_str());
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
      log_error("listen on " + spec + ": " + errno_text(errno));
      close_fd(fd);
      return false;
    }
  } else {
    log_error("bad listen address " + spec + " (use vsock:PORT or unix:PATH)");
    return false;
  }
  if (listen(fd, 64) != 0) { log_error("listen " + spec + ": " + errno_text(errno)); close(fd); return false; }
  loop.add(fd, EPOLLIN, [this, fd, stdio](uint32_t) { on_accept(fd, stdio); });
  log_info("listening on " + spec + (stdio ? " (stdio streams)" : " (ttRPC)"));
  return true;
}

void Agent::on_accept(int lfd, bool stdio) {
  for (;;) {
    int fd = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
        log_warn("accept: " + errno_text(errno));
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return;
    }
    uint64_t id = next_id_++;
    if (stdio) {
      StdioConn& c = stdio_conns_[id];
      c.fd = fd;
      c.tok = loop.add(fd, EPOLLIN | EPOLLRDHUP, [this, id](uint32_t ev) { on_stdio(id, ev); });
    } else {
      Conn& c = conns_[id];
      c.fd = fd;
      c.tok = loop.add(fd, EPOLLIN | EPOLLRDHUP, [this, id](uint32_t ev) { on_conn(id, ev); });
    }
  }
}

void Agent::conn_close(uint64_t id) {
  auto it = conns_.find(id);
  if (it == conns_.end()) return;
  loop.del(it->second.tok);
  close(it->second.fd);
  conns_.erase(it);  // pending WaitProcess replies for it are dropped when they fire
}

void Agent::send(uint64_t id, uint32_t stream, const Reply& r) {
  auto it = conns_.find(id);
  if (it == conns_.end()) return;
  Conn& c = it->second;
  ttrpc::Response resp;
  resp.code = r.code;
  resp.message = r.message;
  resp.payload = r.payload;
  c.out += ttrpc::encode_frame(stream, ttrpc::kTypeResponse, 0, ttrpc::encode_response(resp));
  flush_conn(id);
}

void Agent::flush_conn(uint64_t id) {
  auto it = conns_.find(id);
  if (it == conns_.end()) return;
  Conn& c = it->second;
  while (!c.out.empty()) {
    ssize_t n = write(c.fd, c.out.data(), c.out.size());
    if (n > 0) { c.out.erase(0, static_cast<size_t>(n)); continue; }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    conn_close(id);
    return;
  }
  if (c.out.size() > kMaxOutBuffer) { log_warn("ttRPC client does not read its replies; closing it"); conn_close(id); return; }
  loop.mod(c.tok, EPOLLIN | EPOLLRDHUP | (c.out.empty() ? 0u : static_cast<uint32_t>(EPOLLOUT)));
}

void Agent::on_conn(uint64_t id, uint32_t ev) {
  auto it = conns_.find(id);
  if (it == conns_.end()) return;
  if (ev & EPOLLOUT) flush_conn(id);
  it = conns_.find(id);
  if (it == conns_.end()) return;
  if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
    char buf[65536];
    bool eof = false;
    for (int rounds = 0; rounds < 64; rounds++) {
      ssize_t n = read(it->second.fd, buf, sizeof buf);
      if (n > 0) { it->second.rd.feed(buf, static_cast<size_t>(n)); continue; }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      eof = true;
      break;
    }
    ttrpc::FrameReader::Frame f;
    while (conns_.count(id) && conns_[id].rd.next(f)) {
      const uint32_t sid = f.header.stream_id;
      if (f.oversize) {
        // ttrpc: messages over 4 MiB are discarded and answered with RESOURCE_EXHAUSTED.
        send(id, sid, Reply{ttrpc::RESOURCE_EXHAUSTED,
                            "message length " + std::to_string(f.header.length) + " exceeds maximum message size " +
                                std::to_string(ttrpc::kMaxMessage), "", false});
        continue;
      }
      if (f.header.type != ttrpc::kTypeRequest) {
        // containerd/ttrpc server.go ignores frames that are not requests, for forward compatibility.
        log_warn("ignoring ttRPC frame of type " + std::to_string(f.header.type) + " on stream " + std::to_string(sid));
        continue;
      }
      if (sid % 2 != 1) {  // ttrpc PROTOCOL.md: client-initiated streams use odd ids
        send(id, sid, Reply{ttrpc::INVALID_ARGUMENT, "stream id " + std::to_string(sid) + " must be odd for client requests", "", false});
        continue;
      }
      ttrpc::Request req;
      std::string err;
      if (!ttrpc::decode_request(f.payload, req, err)) {
        send(id, sid, Reply{ttrpc::INVALID_ARGUMENT, "malformed ttRPC Request: " + err, "", false});
        continue;
      }
      Reply r = dispatch(id, sid, req);
      if (!r.deferred) send(id, sid, r);
      if (destroying_) return;
    }
    if (eof) conn_close(id);
  }
}

Reply Agent::dispatch(uint64_t conn, uint32_t stream, const ttrpc::Request& req) {
  const std::string& m = req.method;
  const std::string& p = req.payload;
  if (req.service == kHealthService) {
    if (m != "Check") return Reply{ttrpc::UNIMPLEMENTED, "method " + m + " not implemented by " + req.service, "", false};
    std::string err;
    if (!msg::decode_any(p, err)) return Reply{ttrpc::INVALID_ARGUMENT, "malformed CheckRequest: " + err, "", false};
    return Reply{ttrpc::OK, "", msg::encode_health(1 /* SERVING */), false};
  }
  if (req.service != kAgentService)
    return Reply{ttrpc::UNIMPLEMENTED, "service " + req.service + " not implemented (use " + kAgentService + ")", "", false};
  if (m == "CreateSandbox") return create_sandbox(p);
  if (m == "DestroySandbox") return destroy_sandbox(conn, stream);
  if (m == "CreateContainer") return create_container(p);
  if (m == "StartContainer") return start_container(p);
  if (m == "RemoveContainer") return remove_container(conn, stream, p);
  if (m == "ExecProcess") return exec_process(p);
  if (m == "SignalProcess") return signal_process(p);
  if (m == "WaitProcess") return wait_process(conn, stream, p);
  if (m == "StatsContainer") return stats_container(p);
  if (m == "ListProcesses") return list_processes(p);
  if (m == "TtyWinResize") return tty_win_resize(p);
  if (m == "CloseStdin") return close_stdin(p);
  if (m == "PauseContainer") return pause_container(p, true);
  if (m == "ResumeContainer") return pause_container(p, false);
  if (m == "UpdateContainer") return update_container(p);
  if (m == "GetOOMEvent") return get_oom_event(conn, stream, p);
  if (m == "GetGuestDetails") return guest_details();
  return Reply{ttrpc::UNIMPLEMENTED, "method " + m + " not implemented by " + req.service, "", false};
}

// ── stdio streams ──────────────────────────────────────────────────────────────────────────────────────

void Agent::stdio_ack_close(uint64_t id, uint32_t code, const std::string& message) {
  auto it = stdio_conns_.find(id);
  if (it == stdio_conns_.end()) return;
  std::string ack = msg::encode_stdio_ack(code, message.substr(0, 1024));
  std::string frame;
  uint32_t n = static_cast<uint32_t>(ack.size());
  for (int s = 24; s >= 0; s -= 8) frame.push_back(static_cast<char>((n >> s) & 0xff));
  frame += ack;
  ssize_t w = write(it->second.fd, frame.data(), frame.size());  // small, on a fresh socket
  (void)w;
  loop.del(it->second.tok);
  close(it->second.fd);
  stdio_conns_.erase(it);
}

void Agent::on_stdio(uint64_t id, uint32_t) {
  auto it = stdio_conns_.find(id);
  if (it == stdio_conns_.end()) return;
  StdioConn& sc = it->second;
  char buf[4096 + 4];
  ssize_t n = read(sc.fd, buf, sizeof buf);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
  if (n <= 0) {  // closed before the header arrived
    loop.del(sc.tok);
    close(sc.fd);
    stdio_conns_.erase(it);
    return;
  }
  sc.in.append(buf, static_cast<size_t>(n));
  if (sc.in.size() < 4) return;
  const auto* u = reinterpret_cast<const uint8_t*>(sc.in.data());
  uint32_t len = (uint32_t(u[0]) << 24) | (uint32_t(u[1]) << 16) | (uint32_t(u[2]) << 8) | uint32_t(u[3]);
  if (len == 0 || len > kMaxStdioHeader) {
    stdio_ack_close(id, ttrpc::INVALID_ARGUMENT, "StdioStreamHeader length " + std::to_string(len) + " is outside 1..4096");
    return;
  }
  if (sc.in.size() < 4 + len) return;
  msg::StdioStreamHeader h;
  std::string err;
  if (!msg::decode(std::string_view(sc.in).substr(4, len), h, err)) {
    stdio_ack_close(id, ttrpc::INVALID_ARGUMENT, "malformed StdioStreamHeader: " + err);
    return;
  }
  std::string rest = sc.in.substr(4 + len);
  Reply r;
  Process* p = find_process(h.container_id, h.exec_id, r);
  if (!p) { stdio_ack_close(id, static_cast<uint32_t>(r.code), r.message); return; }
  if (h.kind < msg::STDIN || h.kind > msg::STDERR) {
    stdio_ack_close(id, ttrpc::INVALID_ARGUMENT, "stream kind " + std::to_string(h.kind) + " is not STDIN, STDOUT or STDERR");
    return;
  }
  static const char* names[] = {"", "stdin", "stdout", "stderr"};
  std::string what = std::string(names[h.kind]) + " of " + h.container_id + (h.exec_id.empty() ? "" : "/" + h.exec_id);
  if (p->bound[h.kind]) { stdio_ack_close(id, ttrpc::ALREADY_EXISTS, what + " is already bound"); return; }
  if (p->terminal && h.kind == msg::STDERR) {
    stdio_ack_close(id, ttrpc::FAILED_PRECONDITION, what + ": a terminal process has no separate stderr");
    return;
  }
  if (h.kind == msg::STDIN && p->stdin_closed) { stdio_ack_close(id, ttrpc::FAILED_PRECONDITION, what + " was closed"); return; }
  int src, dst;
  int sock = sc.fd;
  if (h.kind == msg::STDIN) {
    src = sock;
    if (p->terminal) dst = p->tty >= 0 ? fcntl(p->tty, F_DUPFD_CLOEXEC, 3) : -1;
    else { dst = p->stdin_w; p->stdin_w = -1; }
  } else {
    dst = sock;
    if (p->terminal) src = p->tty >= 0 ? fcntl(p->tty, F_DUPFD_CLOEXEC, 3) : -1;
    else if (h.kind == msg::STDOUT) { src = p->stdout_r; p->stdout_r = -1; }
    else { src = p->stderr_r; p->stderr_r = -1; }
  }
  int end = h.kind == msg::STDIN ? dst : src;
  if (end < 0) { stdio_ack_close(id, ttrpc::FAILED_PRECONDITION, what + " is not available"); return; }
  // Ack first, then hand the socket to a pump (agent.proto step 2 → 3).
  std::string ack = msg::encode_stdio_ack(0, "");
  std::string frame;
  for (int s = 24; s >= 0; s -= 8) frame.push_back(static_cast<char>((ack.size() >> s) & 0xff));
  frame += ack;
  ssize_t w = write(sock, frame.data(), frame.size());
  (void)w;
  loop.del(sc.tok);
  stdio_conns_.erase(it);
  auto pump = std::make_shared<Pump>(*this, src, dst, h.kind == msg::STDIN ? rest : std::string());
  pump->id = next_id_++;
  pump->is_stdin = h.kind == msg::STDIN;
  pumps[pump->id] = pump;
  p->bound[h.kind] = true;
  p->pumps.push_back(pump->id);
  pump->start();
}

// ── child reaping ──────────────────────────────────────────────────────────────────────────────────────

void Agent::on_sigchld() {
  int status;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
    auto it = by_pid_.find(pid);
    if (it != by_pid_.end()) {
      process_exited(*it->second, status);
      continue;
    }
    // Unknown so far: an exec'd process may exit before its pid file is read; remember briefly.
    if (orphan_exits_.size() >= 4096) orphan_exits_.erase(orphan_exits_.begin());
    orphan_exits_[pid] = status;
  }
}

int Agent::run() {
  std::string err;
  // the state dir itself only traversable (0711): a user-namespaced container's mapped root must reach its
  // rootfs beneath it (shared/<id>/rootfs); the bundles and runc's state below stay 0700
  if (!mkdir_p(opt_.state_dir, 0711) || chmod(opt_.state_dir.c_str(), 0711) != 0 || !mkdir_p(opt_.state_dir + "/containers", 0700) ||
      !mkdir_p(runc_.root, 0700)) {
    log_error("cannot create state directory " + opt_.state_dir + ": " + errno_text(errno));
    return 1;
  }
  runc_.no_pivot = opt_.no_pivot == 1 || (opt_.no_pivot == -1 && opt_.init && root_is_initramfs());
  signal(SIGPIPE, SIG_IGN);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  sigprocmask(SIG_BLOCK, &set, nullptr);
  int sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (sfd < 0) { log_error("signalfd: " + errno_text(errno)); return 1; }
  loop.add(sfd, EPOLLIN, [this, sfd](uint32_t) {
    signalfd_siginfo si;
    while (read(sfd, &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {}
    on_sigchld();
  });
  oom_init();
  std::string stdio = opt_.stdio_listen;
  if (stdio.empty()) stdio = opt_.listen.rfind("unix:", 0) == 0 ? opt_.listen + ".stdio" : "vsock:1025";
  if (!listen_on(opt_.listen, false) || !listen_on(stdio, true)) return 1;
  log_info(std::string("ready") + (runc_.no_pivot ? " (runc --no-pivot: / is the initramfs)" : ""));
  if (opt_.init) boot_timer_mark();  // second boot-timer write: the agent serves ttRPC
  loop.run();
  return exit_status_;
}
