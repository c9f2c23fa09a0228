// OOM events (agent.proto GetOOMEvent, Kata's long poll): each container's cgroup v2 memory.events is watched
// with inotify; the kernel notifies a modification whenever one of its counters changes (cgroup-v2.rst,
// "memory.events ... a value change in this file generates a file modified event"). When "oom_kill" grew, the
// container's id is answered to a waiting GetOOMEvent call, or queued until one comes.
#include <errno.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include "agent.h"
#include "util.h"

namespace {
constexpr size_t kMaxOomEvents = 1024;  // agent.proto: the oldest queued event is dropped past this
constexpr size_t kMaxOomWaiters = 64;   // pending GetOOMEvent calls (the shim keeps one)

std::string events_path(const Container& c) {
  return "/sys/fs/cgroup" + (c.cgroup == "/" ? std::string() : c.cgroup) + "/memory.events";
}

// The "oom_kill N" line of memory.events; false when the file cannot be read.
bool read_oom_kills(const std::string& path, uint64_t& out) {
  std::string text;
  if (!read_file(path, text, 4096)) return false;
  out = 0;
  size_t i = 0;
  while (i < text.size()) {
    size_t j = text.find('\n', i);
    if (j == std::string::npos) j = text.size();
    if (text.compare(i, 9, "oom_kill ") == 0) out = strtoull(text.c_str() + i + 9, nullptr, 10);
    i = j + 1;
  }
  return true;
}
}  // namespace

void Agent::oom_init() {
  inotify_fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (inotify_fd_ < 0) { log_warn("inotify_init1: " + errno_text(errno) + "; OOM kills will not be reported"); return; }
  if (!loop.add(inotify_fd_, EPOLLIN, [this](uint32_t) { on_inotify(); })) {
    log_warn("epoll of the inotify fd: " + errno_text(errno) + "; OOM kills will not be reported");
    close_fd(inotify_fd_);
  }
}

void Agent::oom_watch(Container& c) {
  if (inotify_fd_ < 0 || c.cgroup.empty()) return;
  std::string path = events_path(c);
  // Watch first, then read: a kill between the two is in the count read, not lost to a missed notification.
  int wd = inotify_add_watch(inotify_fd_, path.c_str(), IN_MODIFY);
  if (wd < 0) {
    log_info("no " + path + " (" + errno_text(errno) + "): OOM kills in container " + c.id + " are not reported");
    return;
  }
  auto it = oom_wds_.find(wd);
  if (it != oom_wds_.end()) {  // the same file already watched: another container shares this cgroup
    log_warn("container " + c.id + " shares its cgroup with " + it->second + "; its OOM kills are reported as " + it->second + "'s");
    return;
  }
  oom_wds_[wd] = c.id;
  c.oom_wd = wd;
  if (!read_oom_kills(path, c.oom_kills)) c.oom_kills = 0;
}

void Agent::oom_unwatch(Container& c) {
  if (c.oom_wd < 0) return;
  inotify_rm_watch(inotify_fd_, c.oom_wd);  // EINVAL when the kernel dropped it already (cgroup removed)
  oom_wds_.erase(c.oom_wd);
  c.oom_wd = -1;
}

void Agent::oom_check(Container& c) {
  if (c.oom_wd < 0) return;
  uint64_t n = 0;
  if (!read_oom_kills(events_path(c), n) || n <= c.oom_kills) return;
  log_info("container " + c.id + ": memory.events oom_kill " + std::to_string(c.oom_kills) + " -> " + std::to_string(n));
  c.oom_kills = n;
  oom_queue(c.id);
}

void Agent::on_inotify() {
  alignas(inotify_event) char buf[4096];
  for (;;) {
    ssize_t n = read(inotify_fd_, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // EAGAIN: drained
    for (ssize_t off = 0; off + static_cast<ssize_t>(sizeof(inotify_event)) <= n;) {
      const auto* ev = reinterpret_cast<const inotify_event*>(buf + off);
      off += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
      if (ev->mask & IN_Q_OVERFLOW) {  // notifications lost: look at every container
        for (auto& kv : containers_) oom_check(*kv.second);
        continue;
      }
      auto w = oom_wds_.find(ev->wd);
      if (w == oom_wds_.end()) continue;
      auto c = containers_.find(w->second);
      if (ev->mask & IN_IGNORED) {  // the watch is gone (file removed with its cgroup)
        if (c != containers_.end() && c->second->oom_wd == ev->wd) c->second->oom_wd = -1;
        oom_wds_.erase(w);
        continue;
      }
      if (c != containers_.end()) oom_check(*c->second);
    }
  }
}

void Agent::oom_queue(const std::string& container_id) {
  while (!oom_waiters_.empty()) {
    Waiter w = oom_waiters_.front();
    oom_waiters_.erase(oom_waiters_.begin());
    if (!conns_.count(w.conn)) continue;  // its connection closed: try the next caller
    send(w.conn, w.stream, Reply{ttrpc::OK, "", msg::encode_oom_event(container_id), false});
    return;
  }
  if (oom_events_.size() >= kMaxOomEvents) {
    log_warn("OOM event queue full: dropping the event of container " + oom_events_.front());
    oom_events_.pop_front();
  }
  oom_events_.push_back(container_id);
}

Reply Agent::get_oom_event(uint64_t conn, uint32_t stream, const std::string& payload) {
  std::string err;
  if (!msg::decode_any(payload, err)) return Reply{ttrpc::INVALID_ARGUMENT, "malformed GetOOMEventRequest: " + err, "", false};
  if (!oom_events_.empty()) {
    std::string id = oom_events_.front();
    oom_events_.pop_front();
    return Reply{ttrpc::OK, "", msg::encode_oom_event(id), false};
  }
  oom_waiters_.erase(std::remove_if(oom_waiters_.begin(), oom_waiters_.end(), [this](const Waiter& w) { return !conns_.count(w.conn); }),
                     oom_waiters_.end());
  if (oom_waiters_.size() >= kMaxOomWaiters) return Reply{ttrpc::RESOURCE_EXHAUSTED, "too many pending GetOOMEvent calls", "", false};
  oom_waiters_.push_back(Waiter{conn, stream});
  Reply r;
  r.deferred = true;
  return r;
}
