#include "ttrpc.h"

#include "pb.h"

namespace ttrpc {

Header parse_header(const uint8_t* p) {
  Header h;
  h.length = (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
  h.stream_id = (uint32_t(p[4]) << 24) | (uint32_t(p[5]) << 16) | (uint32_t(p[6]) << 8) | uint32_t(p[7]);
  h.type = p[8];
  h.flags = p[9];
  return h;
}

std::string encode_frame(uint32_t stream_id, uint8_t type, uint8_t flags, std::string_view payload) {
  std::string out;
  out.reserve(kHeaderSize + payload.size());
  uint32_t len = static_cast<uint32_t>(payload.size());
  const uint32_t words[2] = {len, stream_id};
  for (uint32_t w : words)
    for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<char>((w >> s) & 0xff));
  out.push_back(static_cast<char>(type));
  out.push_back(static_cast<char>(flags));
  out.append(payload.data(), payload.size());
  return out;
}

bool FrameReader::next(Frame& out) {
  for (;;) {
    if (discard_ > 0) {
      size_t avail = buf_.size() - off_;
      size_t n = discard_ < avail ? static_cast<size_t>(discard_) : avail;
      off_ += n;
      discard_ -= n;
      if (discard_ > 0) break;
      continue;
    }
    if (buf_.size() - off_ < kHeaderSize) break;
    Header h = parse_header(reinterpret_cast<const uint8_t*>(buf_.data() + off_));
    if (h.length > kMaxMessage) {
      // ttrpc channel.go: a message over messageLengthMax is discarded and answered with ResourceExhausted.
      off_ += kHeaderSize;
      discard_ = h.length;
      out.header = h;
      out.payload.clear();
      out.oversize = true;
      return true;
    }
    if (buf_.size() - off_ < kHeaderSize + h.length) break;
    out.header = h;
    out.payload.assign(buf_.data() + off_ + kHeaderSize, h.length);
    out.oversize = false;
    off_ += kHeaderSize + h.length;
    return true;
  }
  if (off_ > 0 && (off_ >= buf_.size() || off_ > (1u << 20))) {
    buf_.erase(0, off_);
    off_ = 0;
  }
  return false;
}

bool decode_request(std::string_view data, Request& out, std::string& err) {
  pb::Reader r(data);
  pb::Field f;
  int rc;
  while ((rc = r.next(f)) > 0) {
    switch (f.number) {
      case 1: if (!pb::get_string(f, out.service, err, 1024)) return false; break;
      case 2: if (!pb::get_string(f, out.method, err, 1024)) return false; break;
      case 3: if (!pb::get_string(f, out.payload, err, kMaxMessage)) return false; break;
      case 4: if (!pb::get_int64(f, out.timeout_nano, err)) return false; break;
      case 5: {
        std::string kv;
        if (!pb::get_string(f, kv, err, kMaxMessage)) return false;
        if (out.metadata.size() >= 1024) { err = "too many metadata entries"; return false; }
        pb::Reader kr(kv);
        pb::Field kf;
        std::pair<std::string, std::string> entry;
        int krc;
        while ((krc = kr.next(kf)) > 0) {
          if (kf.number == 1) { if (!pb::get_string(kf, entry.first, err, 4096)) return false; }
          else if (kf.number == 2) { if (!pb::get_string(kf, entry.second, err, 65536)) return false; }
        }
        if (krc < 0) { err = "metadata: " + kr.error(); return false; }
        out.metadata.push_back(std::move(entry));
        break;
      }
      default: break;  // unknown fields are skipped (proto3)
    }
  }
  if (rc < 0) { err = r.error(); return false; }
  return true;
}

std::string encode_request(const Request& r) {
  pb::Writer w;
  w.string(1, r.service);
  w.string(2, r.method);
  w.string(3, r.payload);
  w.int64(4, r.timeout_nano);
  for (const auto& kv : r.metadata) {
    pb::Writer e;
    e.string(1, kv.first);
    e.string(2, kv.second);
    w.bytes_always(5, e.data());
  }
  return w.take();
}

std::string encode_response(const Response& r) {
  pb::Writer status;
  status.int32(1, r.code);
  status.string(2, r.message);
  pb::Writer w;
  w.bytes_always(1, status.data());  // containerd's server always sets Status (empty for OK)
  w.string(2, r.payload);
  return w.take();
}

bool decode_response(std::string_view data, Response& out, std::string& err) {
  pb::Reader r(data);
  pb::Field f;
  int rc;
  while ((rc = r.next(f)) > 0) {
    if (f.number == 1) {
      if (f.wire != pb::Wire::Len) { err = "status: wrong wire type"; return false; }
      pb::Reader sr(f.bytes);
      pb::Field sf;
      int src;
      while ((src = sr.next(sf)) > 0) {
        if (sf.number == 1) { if (!pb::get_int32(sf, out.code, err)) return false; }
        else if (sf.number == 2) { if (!pb::get_string(sf, out.message, err, kMaxMessage)) return false; }
      }
      if (src < 0) { err = "status: " + sr.error(); return false; }
    } else if (f.number == 2) {
      if (!pb::get_string(f, out.payload, err, kMaxMessage)) return false;
    }
  }
  if (rc < 0) { err = r.error(); return false; }
  return true;
}

}  // namespace ttrpc
