// Pump: the byte copier behind a bound stdio stream (agent.proto "Process stdio").
#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "agent.h"
#include "util.h"

Pump::Pump(Agent& a, int src, int dst, std::string initial) : a_(a), src_(src), dst_(dst), pending_(std::move(initial)) {}

Pump::~Pump() {
  close_fd(src_);
  close_fd(dst_);
}

void Pump::start() {
  set_nonblock(src_);
  set_nonblock(dst_);
  if (!pending_.empty()) {
    if (!flush()) { finish(); return; }
    if (!pending_.empty()) {
      auto self = shared_from_this();
      dst_tok_ = a_.loop.add(dst_, EPOLLOUT, [self](uint32_t ev) { self->on_dst(ev); });
      return;
    }
  }
  auto self = shared_from_this();
  src_tok_ = a_.loop.add(src_, EPOLLIN | EPOLLRDHUP, [self](uint32_t ev) { self->on_src(ev); });
  if (!src_tok_) finish();
}

bool Pump::flush() {
  while (!pending_.empty()) {
    ssize_t n = write(dst_, pending_.data(), pending_.size());
    if (n > 0) { pending_.erase(0, static_cast<size_t>(n)); continue; }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    return false;  // EPIPE, ECONNRESET, ...: the other side is gone
  }
  return true;
}

void Pump::on_src(uint32_t) {
  if (finished_) return;
  auto self = shared_from_this();
  char buf[65536];
  ssize_t n = read(src_, buf, sizeof buf);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
  if (n <= 0) {  // EOF; EIO on a pty master once the slave side is closed
    src_done_ = true;
    a_.loop.del(src_tok_);
    src_tok_ = 0;
    if (pending_.empty()) finish();
    return;
  }
  pending_.assign(buf, static_cast<size_t>(n));
  if (!flush()) { finish(); return; }
  if (!pending_.empty()) {
    // Backpressure: stop reading the source until the destination drained this chunk.
    a_.loop.del(src_tok_);
    src_tok_ = 0;
    dst_tok_ = a_.loop.add(dst_, EPOLLOUT, [self](uint32_t ev) { self->on_dst(ev); });
    if (!dst_tok_) finish();
  }
}

void Pump::on_dst(uint32_t ev) {
  if (finished_) return;
  auto self = shared_from_this();
  if (!flush() || ((ev & (EPOLLERR | EPOLLHUP)) && !pending_.empty())) { finish(); return; }
  if (!pending_.empty()) return;
  a_.loop.del(dst_tok_);
  dst_tok_ = 0;
  if (src_done_) { finish(); return; }
  src_tok_ = a_.loop.add(src_, EPOLLIN | EPOLLRDHUP, [self](uint32_t e) { self->on_src(e); });
  if (!src_tok_) finish();
}

void Pump::close_when_drained() {
  if (finished_) return;
  src_done_ = true;
  if (src_tok_) { a_.loop.del(src_tok_); src_tok_ = 0; }
  if (pending_.empty()) finish();
}

void Pump::finish() {
  if (finished_) return;
  finished_ = true;
  auto self = shared_from_this();
  if (src_tok_) a_.loop.del(src_tok_);
  if (dst_tok_) a_.loop.del(dst_tok_);
  src_tok_ = dst_tok_ = 0;
  close_fd(src_);
  close_fd(dst_);
  a_.pumps.erase(id);
}
