#include "loop.h"

#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

Loop::Loop() : epfd_(epoll_create1(EPOLL_CLOEXEC)) {}
Loop::~Loop() { if (epfd_ >= 0) close(epfd_); }

uint64_t Loop::add(int fd, uint32_t events, Handler h) {
  uint64_t token = next_++;
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = token;
  if (epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0) return 0;
  entries_[token] = Entry{fd, std::make_shared<Handler>(std::move(h))};
  return token;
}

bool Loop::mod(uint64_t token, uint32_t events) {
  auto it = entries_.find(token);
  if (it == entries_.end()) return false;
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = token;
  return epoll_ctl(epfd_, EPOLL_CTL_MOD, it->second.fd, &ev) == 0;
}

void Loop::del(uint64_t token) {
  auto it = entries_.find(token);
  if (it == entries_.end()) return;
  epoll_ctl(epfd_, EPOLL_CTL_DEL, it->second.fd, nullptr);
  entries_.erase(it);
}

void Loop::run() {
  epoll_event evs[64];
  while (running_) {
    int n = epoll_wait(epfd_, evs, 64, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    for (int i = 0; i < n && running_; i++) {
      auto it = entries_.find(evs[i].data.u64);
      if (it == entries_.end()) continue;
      std::shared_ptr<Handler> h = it->second.h;  // keeps the handler alive if it removes itself
      (*h)(evs[i].events);
    }
  }
}
