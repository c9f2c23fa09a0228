// epoll event loop. Handlers are keyed by a token that is never reused, so an event fetched for an fd
// that was removed (and whose number was reused) in the same batch is dropped, not misdelivered.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <unordered_map>

class Loop {
 public:
  using Handler = std::function<void(uint32_t events)>;
  Loop();
  ~Loop();
  // Returns a token for mod/del, or 0 on failure (errno set).
  uint64_t add(int fd, uint32_t events, Handler h);
  bool mod(uint64_t token, uint32_t events);
  void del(uint64_t token);  // does not close the fd
  void run();
  void stop() { running_ = false; }

 private:
  struct Entry { int fd; std::shared_ptr<Handler> h; };
  int epfd_;
  bool running_ = true;
  uint64_t next_ = 1;
  std::unordered_map<uint64_t, Entry> entries_;
};
