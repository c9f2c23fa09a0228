// AgentService handlers: sandbox, containers and processes (agent.proto), run with runc.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cstdlib>

#include "agent.h"
#include "init.h"
#include "json.h"
#include "procs.h"
#include "storage.h"
#include "util.h"

namespace {
constexpr int kRuncTimeoutMs = 60000;
const char* kAgentVersion = "kata-ts-agent 0.1.0";

Reply ok(std::string payload = {}) { return Reply{ttrpc::OK, "", std::move(payload), false}; }
Reply fail(int32_t code, std::string message) { return Reply{code, std::move(message), "", false}; }
Reply deferred() { Reply r; r.deferred = true; return r; }

template <typename M>
bool decode_req(const std::string& payload, M& m, const char* name, Reply& r) {
  std::string err;
  if (msg::decode(payload, m, err)) return true;
  r = fail(ttrpc::INVALID_ARGUMENT, std::string("malformed ") + name + ": " + err);
  return false;
}

// Receives one fd sent with SCM_RIGHTS (runc --console-socket sends the pty master this way).
int recv_fd(int sock) {
  char data[256];
  iovec iov{data, sizeof data};
  alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * 4)];
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = cbuf;
  mh.msg_controllen = sizeof cbuf;
  pollfd p{sock, POLLIN, 0};
  if (poll(&p, 1, 5000) != 1) return -1;
  if (recvmsg(sock, &mh, MSG_CMSG_CLOEXEC) < 0) return -1;
  int got = -1;
  for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < n; i++) {
      int fd;
      memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      if (got < 0) got = fd; else close(fd);
    }
  }
  return got;
}

uint64_t read_u64_file(const std::string& path, bool& present) {
  std::string s;
  present = read_file(path, s, 256);
  if (!present) return 0;
  return strtoull(s.c_str(), nullptr, 10);  // "max" reads as 0, as agent.proto says
}

uint64_t stat_key(const std::string& text, const std::string& key) {
  size_t i = 0;
  while (i < text.size()) {
    size_t j = text.find('\n', i);
    if (j == std::string::npos) j = text.size();
    if (text.compare(i, key.size() + 1, key + " ") == 0) return strtoull(text.c_str() + i + key.size() + 1, nullptr, 10);
    i = j + 1;
  }
  return 0;
}

void fill_wait(const Process& p, Reply& r) {
  int st = p.wait_status;
  int32_t code = WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : 255;
  uint32_t sig = WIFSIGNALED(st) ? static_cast<uint32_t>(WTERMSIG(st)) : 0;
  r = ok(msg::encode_wait_response(code, sig));
}
}  // namespace

Container* Agent::find_container(const std::string& id, Reply& r) {
  if (!valid_id(id)) {
    r = fail(ttrpc::INVALID_ARGUMENT, "container_id \"" + id.substr(0, 80) + "\" is not 1..64 characters of [A-Za-z0-9_.-]");
    return nullptr;
  }
  auto it = containers_.find(id);
  if (it == containers_.end()) { r = fail(ttrpc::NOT_FOUND, "container " + id + " not found"); return nullptr; }
  return it->second.get();
}

Process* Agent::find_process(const std::string& cid, const std::string& eid, Reply& r) {
  Container* c = find_container(cid, r);
  if (!c) return nullptr;
  if (eid.empty()) {
    if (!c->init) { r = fail(ttrpc::NOT_FOUND, "container " + cid + " has no init process"); return nullptr; }
    return c->init.get();
  }
  if (!valid_id(eid)) {
    r = fail(ttrpc::INVALID_ARGUMENT, "exec_id \"" + eid.substr(0, 80) + "\" is not 1..64 characters of [A-Za-z0-9_.-]");
    return nullptr;
  }
  auto it = c->execs.find(eid);
  if (it == c->execs.end()) { r = fail(ttrpc::NOT_FOUND, "process " + eid + " not found in container " + cid); return nullptr; }
  return it->second.get();
}

bool Agent::spawn_process(Container& c, Process& p, const std::vector<std::string>& runc_args, const std::string& pid_file,
                          Reply& r) {
  std::vector<std::string> args = runc_args;
  int child[3] = {-1, -1, -1};
  int console = -1;
  std::string console_path;
  if (p.terminal) {
    // runc --console-socket: runc connects and sends the pty master with SCM_RIGHTS (runc docs/terminals.md).
    console_path = opt_.state_dir + "/console-" + std::to_string(++console_seq_) + ".sock";
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if (console_path.size() >= sizeof sa.sun_path) { r = fail(ttrpc::INTERNAL, "state dir path too long for a unix socket"); return false; }
    memcpy(sa.sun_path, console_path.c_str(), console_path.size());
    unlink(console_path.c_str());
    console = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (console < 0 || bind(console, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || listen(console, 4) != 0) {
      r = fail(ttrpc::INTERNAL, "console socket " + console_path + ": " + errno_text(errno));
      close_fd(console);
      return false;
    }
    args.insert(args.end() - 1, {"--console-socket", console_path});
  } else {
    int in[2], out[2], err[2];
    if (pipe2(in, O_CLOEXEC) != 0) { r = fail(ttrpc::INTERNAL, "pipe: " + errno_text(errno)); return false; }
    if (pipe2(out, O_CLOEXEC) != 0) { close(in[0]); close(in[1]); r = fail(ttrpc::INTERNAL, "pipe: " + errno_text(errno)); return false; }
    if (pipe2(err, O_CLOEXEC) != 0) {
      close(in[0]); close(in[1]); close(out[0]); close(out[1]);
      r = fail(ttrpc::INTERNAL, "pipe: " + errno_text(errno));
      return false;
    }
    child[0] = in[0]; child[1] = out[1]; child[2] = err[1];
    p.stdin_w = in[1]; p.stdout_r = out[0]; p.stderr_r = err[0];
  }
  std::string log_path = c.bundle + "/runc.log";
  unlink(pid_file.c_str());
  // Exits reaped before this spawn belong to other processes (runc's own helpers, mostly); dropping them
  // keeps a recycled pid from inheriting a stale status.
  orphan_exits_.clear();
  RuncResult rr = runc_.run(args, child, log_path, kRuncTimeoutMs);
  for (int& fd : child) close_fd(fd);
  std::string pid_text;
  long pid = 0;
  if (rr.ok && read_file(pid_file, pid_text, 64)) pid = strtol(pid_text.c_str(), nullptr, 10);
  if (!rr.ok || pid <= 0) {
    release_process(p);
    close_fd(console);
    if (!console_path.empty()) unlink(console_path.c_str());
    r = fail(ttrpc::INTERNAL, rr.ok ? "runc did not write a pid file at " + pid_file : rr.error);
    return false;
  }
  if (console >= 0) {
    pollfd pl{console, POLLIN, 0};
    int cfd = poll(&pl, 1, 5000) == 1 ? accept4(console, nullptr, nullptr, SOCK_CLOEXEC) : -1;
    p.tty = cfd >= 0 ? recv_fd(cfd) : -1;
    close_fd(cfd);
    close_fd(console);
    unlink(console_path.c_str());
    if (p.tty < 0) log_warn("runc did not send a pty master for " + c.id + "/" + p.exec_id);
    else set_nonblock(p.tty);
  }
  p.pid = static_cast<pid_t>(pid);
  by_pid_[p.pid] = &p;
  auto orphan = orphan_exits_.find(p.pid);
  if (orphan != orphan_exits_.end()) {  // exited before we read its pid file
    int st = orphan->second;
    orphan_exits_.erase(orphan);
    process_exited(p, st);
  }
  return true;
}

void Agent::release_process(Process& p) {
  for (uint64_t id : p.pumps) {
    auto it = pumps.find(id);
    if (it != pumps.end()) { auto keep = it->second; keep->finish(); }
  }
  p.pumps.clear();
  close_fd(p.stdin_w);
  close_fd(p.stdout_r);
  close_fd(p.stderr_r);
  close_fd(p.tty);
  if (p.pid > 0) {
    auto it = by_pid_.find(p.pid);
    if (it != by_pid_.end() && it->second == &p) by_pid_.erase(it);
  }
  for (const Waiter& w : p.waiters) send(w.conn, w.stream, fail(ttrpc::ABORTED, "container " + p.container_id + " was removed"));
  p.waiters.clear();
}

void Agent::process_exited(Process& p, int status) {
  p.exited = true;
  p.wait_status = status;
  by_pid_.erase(p.pid);
  log_info("process " + p.container_id + (p.exec_id.empty() ? "" : "/" + p.exec_id) + " (pid " + std::to_string(p.pid) +
           ") exited: status 0x" + [&] { char b[16]; snprintf(b, sizeof b, "%x", status); return std::string(b); }());
  // An OOM kill is reported before the exit it caused (agent.proto GetOOMEvent): the count is read now, not
  // only when inotify's notification comes round, which may be after this exit in the same epoll batch.
  auto owner = containers_.find(p.container_id);
  if (owner != containers_.end()) oom_check(*owner->second);
  Reply r;
  fill_wait(p, r);
  std::vector<Waiter> ws;
  ws.swap(p.waiters);
  for (const Waiter& w : ws) send(w.conn, w.stream, r);
  if (p.exec_id.empty()) {
    auto it = containers_.find(p.container_id);
    if (it != containers_.end()) {
      it->second->state = Container::State::Stopped;
      if (it->second->removing) finish_remove(*it->second);  // destroys p
    }
  }
}

// ── sandbox ────────────────────────────────────────────────────────────────────────────────────────────

Reply Agent::create_sandbox(const std::string& payload) {
  Reply r;
  msg::CreateSandboxRequest m;
  if (!decode_req(payload, m, "CreateSandboxRequest", r)) return r;
  std::string err;
  if (opt_.init) {
    if (!m.hostname.empty() && sethostname(m.hostname.data(), m.hostname.size()) != 0)
      return fail(ttrpc::INVALID_ARGUMENT, "hostname \"" + m.hostname.substr(0, 80) + "\": " + errno_text(errno));
    if (!m.dns.empty()) {
      std::string text;
      for (const auto& l : m.dns) {
        if (l.find('\n') != std::string::npos) return fail(ttrpc::INVALID_ARGUMENT, "dns lines must not contain newlines");
        text += l + "\n";
      }
      mkdir_p("/etc", 0755);
      if (!write_file("/etc/resolv.conf", text, err)) return fail(ttrpc::INTERNAL, err);
    }
  } else if (!m.hostname.empty() || !m.dns.empty()) {
    log_info("host mode: hostname and dns of CreateSandbox are not applied");
  }
  for (const auto& s : m.storages) {
    int code;
    if (!mount_storage(s, err, code)) return fail(code, err);
    sandbox_mounts_.push_back(s.mount_point);
  }
  return ok();
}

bool Agent::flush_blocking(uint64_t id, int timeout_ms) {
  for (int waited = 0; waited <= timeout_ms; waited += 10) {
    auto it = conns_.find(id);
    if (it == conns_.end()) return false;
    flush_conn(id);
    it = conns_.find(id);
    if (it == conns_.end()) return false;
    if (it->second.out.empty()) return true;
    pollfd p{it->second.fd, POLLOUT, 0};
    poll(&p, 1, 10);
  }
  return false;
}

Reply Agent::destroy_sandbox(uint64_t conn, uint32_t stream) {
  log_info("DestroySandbox: stopping " + std::to_string(containers_.size()) + " container(s)");
  const int devnull[3] = {-1, -1, -1};
  for (auto& kv : containers_) {
    Container& c = *kv.second;
    oom_unwatch(c);
    if (c.init && c.init->pid > 0 && !c.init->exited) kill(c.init->pid, SIGKILL);
    RuncResult rr = runc_.run({"delete", "--force", c.id}, devnull, "", kRuncTimeoutMs);
    if (!rr.ok) log_warn(rr.error);
    for (auto& e : c.execs) release_process(*e.second);
    if (c.init) release_process(*c.init);
    if (c.remove_timer >= 0) { loop.del(c.remove_timer_tok); close_fd(c.remove_timer); }
    unmount_all(c.mounts);
    remove_tree(c.bundle);
  }
  containers_.clear();
  unmount_all(sandbox_mounts_);
  sync();
  destroying_ = true;
  send(conn, stream, ok());
  flush_blocking(conn, 2000);
  if (opt_.init) {
    log_info("powering off");
    power_off();
  }
  loop.stop();
  return deferred();
}

// ── containers ─────────────────────────────────────────────────────────────────────────────────────────

Reply Agent::create_container(const std::string& payload) {
  Reply r;
  msg::CreateContainerRequest m;
  if (!decode_req(payload, m, "CreateContainerRequest", r)) return r;
  if (!valid_id(m.container_id))
    return fail(ttrpc::INVALID_ARGUMENT, "container_id \"" + m.container_id.substr(0, 80) + "\" is not 1..64 characters of [A-Za-z0-9_.-]");
  if (containers_.count(m.container_id)) return fail(ttrpc::ALREADY_EXISTS, "container " + m.container_id + " already exists");
  if (!valid_abs_path(m.rootfs)) return fail(ttrpc::INVALID_ARGUMENT, "rootfs \"" + m.rootfs.substr(0, 200) + "\" must be an absolute guest path without \"..\"");
  json::Value spec;
  std::string err;
  if (!json::parse(m.oci_spec_json, spec, err) || spec.kind != json::Value::Kind::Object)
    return fail(ttrpc::INVALID_ARGUMENT, "oci_spec_json is not a JSON object: " + (err.empty() ? "wrong type" : err));
  json::Value* process = spec.get("process");
  if (!process || process->kind != json::Value::Kind::Object) return fail(ttrpc::INVALID_ARGUMENT, "oci_spec_json has no \"process\" object");
  json::Value* term = process->get("terminal");
  bool terminal = term && term->kind == json::Value::Kind::Bool && term->b;

  auto c = std::make_unique<Container>();
  c->id = m.container_id;
  c->bundle = opt_.state_dir + "/containers/" + c->id;
  for (const auto& s : m.storages) {
    int code;
    if (!mount_storage(s, err, code)) {
      unmount_all(c->mounts);
      return fail(code, err);
    }
    c->mounts.push_back(s.mount_point);
  }
  // Paths rewritten for the guest: root.path → rootfs; hooks are host-side and dropped.
  json::Value* root = spec.get("root");
  if (!root || root->kind != json::Value::Kind::Object) { spec.set("root", json::Value::object()); root = spec.get("root"); }
  root->set("path", json::Value::string(m.rootfs));
  spec.erase("hooks");
  remove_tree(c->bundle);
  if (!mkdir_p(c->bundle, 0700) || !write_file(c->bundle + "/config.json", json::serialize(spec), err)) {
    unmount_all(c->mounts);
    return fail(ttrpc::INTERNAL, "bundle " + c->bundle + ": " + (err.empty() ? errno_text(errno) : err));
  }
  c->init = std::make_unique<Process>();
  c->init->container_id = c->id;
  c->init->terminal = terminal;
  std::string pid_file = c->bundle + "/init.pid";
  std::vector<std::string> args{"create", "--bundle", c->bundle, "--pid-file", pid_file};
  if (runc_.no_pivot) args.push_back("--no-pivot");
  args.push_back(c->id);
  if (!spawn_process(*c, *c->init, args, pid_file, r)) {
    const int devnull[3] = {-1, -1, -1};
    runc_.run({"delete", "--force", c->id}, devnull, "", kRuncTimeoutMs);  // leftovers of a half-made container
    unmount_all(c->mounts);
    remove_tree(c->bundle);
    return r;
  }
  std::string cg;
  if (read_file("/proc/" + std::to_string(c->init->pid) + "/cgroup", cg, 65536)) {
    size_t at = cg.find("0::");
    if (at != std::string::npos && (at == 0 || cg[at - 1] == '\n')) {
      size_t e = cg.find('\n', at);
      c->cgroup = cg.substr(at + 3, e == std::string::npos ? std::string::npos : e - at - 3);
    }
  }
  oom_watch(*c);
  log_info("created container " + c->id + " (init pid " + std::to_string(c->init->pid) + (terminal ? ", terminal" : "") + ")");
  std::string id = c->id;
  containers_[id] = std::move(c);
  return ok();
}

Reply Agent::start_container(const std::string& payload) {
  Reply r;
  msg::ContainerRequest m;
  if (!decode_req(payload, m, "StartContainerRequest", r)) return r;
  Container* c = find_container(m.container_id, r);
  if (!c) return r;
  if (c->state != Container::State::Created || c->removing)
    return fail(ttrpc::FAILED_PRECONDITION, "container " + c->id + " is not in the created state");
  const int devnull[3] = {-1, -1, -1};
  RuncResult rr = runc_.run({"start", c->id}, devnull, "", kRuncTimeoutMs);
  if (!rr.ok) return fail(ttrpc::INTERNAL, rr.error);
  if (c->state == Container::State::Created) c->state = Container::State::Running;
  return ok();
}

Reply Agent::remove_container(uint64_t conn, uint32_t stream, const std::string& payload) {
  Reply r;
  msg::RemoveContainerRequest m;
  if (!decode_req(payload, m, "RemoveContainerRequest", r)) return r;
  Container* c = find_container(m.container_id, r);
  if (!c) return r;
  c->remove_waiters.push_back(Waiter{conn, stream});
  if (c->removing) return deferred();
  c->removing = true;
  Process* init = c->init.get();
  if (!init || init->pid <= 0 || init->exited) {
    finish_remove(*c);
    return deferred();
  }
  if (m.timeout_seconds == 0) {
    kill(init->pid, SIGKILL);
  } else {
    kill(init->pid, SIGTERM);
    // SIGKILL after timeout_seconds; a pid-namespace init without a SIGTERM handler ignores SIGTERM.
    c->remove_timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    itimerspec its{};
    its.it_value.tv_sec = m.timeout_seconds > 3600 ? 3600 : m.timeout_seconds;
    if (c->remove_timer >= 0 && timerfd_settime(c->remove_timer, 0, &its, nullptr) == 0) {
      std::string id = c->id;
      c->remove_timer_tok = loop.add(c->remove_timer, EPOLLIN, [this, id](uint32_t) {
        auto it = containers_.find(id);
        if (it == containers_.end()) return;
        Container& ct = *it->second;
        loop.del(ct.remove_timer_tok);
        close_fd(ct.remove_timer);
        if (ct.init && ct.init->pid > 0 && !ct.init->exited) kill(ct.init->pid, SIGKILL);
      });
    } else {
      kill(init->pid, SIGKILL);
    }
  }
  return deferred();
}

void Agent::finish_remove(Container& c) {
  if (c.remove_timer >= 0) { loop.del(c.remove_timer_tok); close_fd(c.remove_timer); }
  oom_check(c);  // a kill whose notification is still on its way (runc delete removes the cgroup)
  oom_unwatch(c);
  const int devnull[3] = {-1, -1, -1};
  RuncResult rr = runc_.run({"delete", "--force", c.id}, devnull, "", kRuncTimeoutMs);
  if (!rr.ok) log_warn("remove " + c.id + ": " + rr.error);
  for (auto& e : c.execs) release_process(*e.second);
  if (c.init) release_process(*c.init);
  unmount_all(c.mounts);
  if (!remove_tree(c.bundle)) log_warn("could not remove bundle " + c.bundle);
  std::vector<Waiter> ws;
  ws.swap(c.remove_waiters);
  std::string id = c.id;
  containers_.erase(id);  // destroys c
  log_info("removed container " + id);
  for (const Waiter& w : ws) send(w.conn, w.stream, ok());
}

Reply Agent::exec_process(const std::string& payload) {
  Reply r;
  msg::ExecProcessRequest m;
  if (!decode_req(payload, m, "ExecProcessRequest", r)) return r;
  Container* c = find_container(m.container_id, r);
  if (!c) return r;
  if (!valid_id(m.exec_id)) return fail(ttrpc::INVALID_ARGUMENT, "exec_id \"" + m.exec_id.substr(0, 80) + "\" is not 1..64 characters of [A-Za-z0-9_.-]");
  if (c->execs.count(m.exec_id)) return fail(ttrpc::ALREADY_EXISTS, "process " + m.exec_id + " already exists in container " + c->id);
  if (c->state != Container::State::Running || c->removing || !c->init || c->init->exited)
    return fail(ttrpc::FAILED_PRECONDITION, "container " + c->id + " is not running");
  json::Value proc;
  std::string err;
  if (!json::parse(m.process_json, proc, err) || proc.kind != json::Value::Kind::Object)
    return fail(ttrpc::INVALID_ARGUMENT, "process_json is not a JSON object: " + (err.empty() ? "wrong type" : err));
  json::Value* term = proc.get("terminal");
  auto p = std::make_unique<Process>();
  p->container_id = c->id;
  p->exec_id = m.exec_id;
  p->terminal = term && term->kind == json::Value::Kind::Bool && term->b;
  std::string spec_path = c->bundle + "/exec-" + m.exec_id + ".json";
  if (!write_file(spec_path, json::serialize(proc), err)) return fail(ttrpc::INTERNAL, err);
  std::string pid_file = c->bundle + "/exec-" + m.exec_id + ".pid";
  std::vector<std::string> args{"exec", "--detach", "--pid-file", pid_file, "--process", spec_path, c->id};
  Process* raw = p.get();
  c->execs[m.exec_id] = std::move(p);  // registered first: the exit may be reaped during spawn
  if (!spawn_process(*c, *raw, args, pid_file, r)) {
    c->execs.erase(m.exec_id);
    return r;
  }
  log_info("exec " + c->id + "/" + m.exec_id + " (pid " + std::to_string(raw->pid) + ")");
  return ok();
}

Reply Agent::signal_process(const std::string& payload) {
  Reply r;
  msg::SignalProcessRequest m;
  if (!decode_req(payload, m, "SignalProcessRequest", r)) return r;
  if (m.signal < 1 || m.signal > 64) return fail(ttrpc::INVALID_ARGUMENT, "signal " + std::to_string(m.signal) + " is outside 1..64");
  if (m.all && !m.exec_id.empty()) return fail(ttrpc::INVALID_ARGUMENT, "all = true is only valid with exec_id \"\"");
  Process* p = find_process(m.container_id, m.exec_id, r);
  if (!p) return r;
  if (m.all) {
    const int devnull[3] = {-1, -1, -1};
    RuncResult rr = runc_.run({"kill", "--all", m.container_id, std::to_string(m.signal)}, devnull, "", kRuncTimeoutMs);
    return rr.ok ? ok() : fail(ttrpc::INTERNAL, rr.error);
  }
  if (p->exited || p->pid <= 0) return fail(ttrpc::FAILED_PRECONDITION, "process has already exited");
  if (kill(p->pid, static_cast<int>(m.signal)) != 0)
    return fail(errno == ESRCH ? ttrpc::FAILED_PRECONDITION : ttrpc::INTERNAL, "kill(" + std::to_string(p->pid) + "): " + errno_text(errno));
  return ok();
}

Reply Agent::wait_process(uint64_t conn, uint32_t stream, const std::string& payload) {
  Reply r;
  msg::ProcessRequest m;
  if (!decode_req(payload, m, "WaitProcessRequest", r)) return r;
  Process* p = find_process(m.container_id, m.exec_id, r);
  if (!p) return r;
  if (p->exited) { fill_wait(*p, r); return r; }
  if (p->waiters.size() >= 1024) return fail(ttrpc::RESOURCE_EXHAUSTED, "too many waiters for this process");
  p->waiters.push_back(Waiter{conn, stream});
  return deferred();
}

Reply Agent::stats_container(const std::string& payload) {
  Reply r;
  msg::ContainerRequest m;
  if (!decode_req(payload, m, "StatsContainerRequest", r)) return r;
  Container* c = find_container(m.container_id, r);
  if (!c) return r;
  msg::CgroupStats s;
  if (!c->cgroup.empty()) {
    std::string dir = "/sys/fs/cgroup" + (c->cgroup == "/" ? std::string() : c->cgroup);
    std::string cpu;
    if (read_file(dir + "/cpu.stat", cpu, 65536)) {  // cgroup-v2.rst: cpu.stat usage_usec/user_usec/system_usec
      s.cpu_usage_usec = stat_key(cpu, "usage_usec");
      s.cpu_user_usec = stat_key(cpu, "user_usec");
      s.cpu_system_usec = stat_key(cpu, "system_usec");
    }
    bool present;
    s.memory_current = read_u64_file(dir + "/memory.current", present);
    s.memory_max = read_u64_file(dir + "/memory.max", present);
    s.pids_current = read_u64_file(dir + "/pids.current", present);
    s.pids_max = read_u64_file(dir + "/pids.max", present);
  }
  return ok(msg::encode_stats(s));
}

// ListProcesses: what `runc ps` lists, the processes of the container's cgroup (cgroup.procs, as runc reads it),
// with what `ps -ef` shows of each. Where the agent has no cgroup v2 path for the container (a cgroup v1 host
// running the agent in the host tests), the container's processes and their descendants instead. A container
// that is not running has none.
Reply Agent::list_processes(const std::string& payload) {
  constexpr size_t kMaxProcesses = 4096;
  Reply r;
  msg::ContainerRequest m;
  if (!decode_req(payload, m, "ListProcessesRequest", r)) return r;
  Container* c = find_container(m.container_id, r);
  if (!c) return r;
  std::vector<pid_t> pids;
  if (c->state == Container::State::Running || c->state == Container::State::Created) {
    const std::string dir = "/sys/fs/cgroup" + (c->cgroup == "/" ? std::string() : c->cgroup);
    if (c->cgroup.empty() || c->cgroup == "/" || !read_cgroup_procs(dir, pids, kMaxProcesses)) {
      std::vector<pid_t> roots;
      if (!c->init->exited) roots.push_back(c->init->pid);
      for (const auto& e : c->execs)
        if (!e.second->exited) roots.push_back(e.second->pid);
      pids = descendants(roots, kMaxProcesses);
    }
  }
  return ok(msg::encode_process_list(proc_statuses(pids)));
}

// PauseContainer / ResumeContainer: `runc pause|resume ID` (the cgroup v2 freezer of the container's cgroup).
Reply Agent::pause_container(const std::string& payload, bool pause) {
  Reply r;
  msg::ContainerRequest m;
  if (!decode_req(payload, m, pause ? "PauseContainerRequest" : "ResumeContainerRequest", r)) return r;
  Container* c = find_container(m.container_id, r);
  if (!c) return r;
  if (c->state != Container::State::Running || c->removing)
    return fail(ttrpc::FAILED_PRECONDITION, "container " + c->id + " is not running");
  if (c->paused == pause)
    return fail(ttrpc::FAILED_PRECONDITION, "container " + c->id + (pause ? " is already paused" : " is not paused"));
  const int devnull[3] = {-1, -1, -1};
  RuncResult rr = runc_.run({pause ? "pause" : "resume", c->id}, devnull, "", kRuncTimeoutMs);
  if (!rr.ok) return fail(ttrpc::INTERNAL, rr.error);
  c->paused = pause;
  log_info(std::string(pause ? "paused" : "resumed") + " container " + c->id);
  return ok();
}

// UpdateContainer: `runc update --resources FILE ID`; runc reads an OCI LinuxResources object from the file and
// writes the cgroup files of what it sets (memory.max, pids.max, cpu.max, cpu.weight, ...).
Reply Agent::update_container(const std::string& payload) {
  Reply r;
  msg::UpdateContainerRequest m;
  if (!decode_req(payload, m, "UpdateContainerRequest", r)) return r;
  Container* c = find_container(m.container_id, r);
  if (!c) return r;
  json::Value res;
  std::string err;
  if (!json::parse(m.resources_json, res, err) || res.kind != json::Value::Kind::Object)
    return fail(ttrpc::INVALID_ARGUMENT, "resources_json is not a JSON object: " + (err.empty() ? "wrong type" : err));
  if (c->state == Container::State::Stopped || c->removing || !c->init || c->init->exited)
    return fail(ttrpc::FAILED_PRECONDITION, "container " + c->id + " is not running: no cgroup to update");
  std::string path = c->bundle + "/resources.json";
  if (!write_file(path, json::serialize(res), err)) return fail(ttrpc::INTERNAL, err);
  const int devnull[3] = {-1, -1, -1};
  RuncResult rr = runc_.run({"update", "--resources", path, c->id}, devnull, "", kRuncTimeoutMs);
  unlink(path.c_str());
  if (!rr.ok) return fail(ttrpc::INTERNAL, rr.error);
  log_info("updated the resources of container " + c->id);
  return ok();
}

Reply Agent::tty_win_resize(const std::string& payload) {
  Reply r;
  msg::TtyWinResizeRequest m;
  if (!decode_req(payload, m, "TtyWinResizeRequest", r)) return r;
  Process* p = find_process(m.container_id, m.exec_id, r);
  if (!p) return r;
  if (!p->terminal || p->tty < 0) return fail(ttrpc::FAILED_PRECONDITION, "process has no terminal");
  if (m.rows > 0xffff || m.columns > 0xffff) return fail(ttrpc::INVALID_ARGUMENT, "rows and columns must be 0..65535");
  winsize ws{};
  ws.ws_row = static_cast<unsigned short>(m.rows);
  ws.ws_col = static_cast<unsigned short>(m.columns);
  if (ioctl(p->tty, TIOCSWINSZ, &ws) != 0) return fail(ttrpc::INTERNAL, "TIOCSWINSZ: " + errno_text(errno));
  return ok();
}

Reply Agent::close_stdin(const std::string& payload) {
  Reply r;
  msg::ProcessRequest m;
  if (!decode_req(payload, m, "CloseStdinRequest", r)) return r;
  Process* p = find_process(m.container_id, m.exec_id, r);
  if (!p) return r;
  p->stdin_closed = true;
  if (p->bound[msg::STDIN] && !p->pumps.empty()) {
    // The stdin pump is the one whose id was recorded when STDIN was bound; close those still running.
    for (uint64_t id : p->pumps) {
      auto it = pumps.find(id);
      if (it != pumps.end() && it->second->is_stdin) { auto keep = it->second; keep->close_when_drained(); }
    }
  } else if (p->terminal && p->tty >= 0) {
    const char eot = 4;  // VEOF (^D) in canonical mode
    ssize_t w = write(p->tty, &eot, 1);
    (void)w;
  } else {
    close_fd(p->stdin_w);
  }
  return ok();
}

Reply Agent::guest_details() {
  msg::GuestDetails g;
  g.agent_version = kAgentVersion;
  utsname u{};
  if (uname(&u) == 0) g.kernel_release = u.release;
  std::string mi;
  if (read_file("/proc/meminfo", mi, 65536)) {
    size_t at = mi.find("MemTotal:");
    if (at != std::string::npos) g.mem_total_bytes = strtoull(mi.c_str() + at + 9, nullptr, 10) * 1024;
  }
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  g.cpus = n > 0 ? static_cast<uint32_t>(n) : 0;
  if (runc_version_.empty()) {
    int out[2];
    if (pipe2(out, O_CLOEXEC) == 0) {
      const int fds[3] = {-1, out[1], -1};
      Runc plain = runc_;
      plain.root.clear();
      RuncResult rr = plain.run({"--version"}, fds, "", 10000);
      close(out[1]);
      set_nonblock(out[0]);
      char buf[512];
      ssize_t k = read(out[0], buf, sizeof buf);
      close(out[0]);
      if (rr.ok && k > 0) {
        std::string v(buf, static_cast<size_t>(k));
        runc_version_ = v.substr(0, v.find('\n'));
      }
    }
  }
  g.runc_version = runc_version_;
  g.stdio_port = stdio_port_;
  return ok(msg::encode_guest_details(g));
}
