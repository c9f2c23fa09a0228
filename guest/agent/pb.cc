#include "pb.h"

namespace pb {

bool Reader::varint(uint64_t& out) {
  // A varint is at most 10 bytes; the 10th may only carry the top bit of a 64-bit value.
  uint64_t v = 0;
  for (int i = 0; i < 10; i++) {
    if (p_ >= end_) { error_ = "truncated varint"; return false; }
    uint8_t b = static_cast<uint8_t>(*p_++);
    if (i == 9 && b > 1) { error_ = "varint overflows 64 bits"; return false; }
    v |= static_cast<uint64_t>(b & 0x7f) << (7 * i);
    if (!(b & 0x80)) { out = v; return true; }
  }
  error_ = "varint longer than 10 bytes";
  return false;
}

int Reader::next(Field& f) {
  if (p_ == end_) return 0;
  uint64_t key;
  if (!varint(key)) return -1;
  uint64_t number = key >> 3;
  // Field numbers are 1 .. 2^29-1 (protobuf language guide, "Assigning Field Numbers").
  if (number == 0 || number > 0x1fffffff) { error_ = "invalid field number " + std::to_string(number); return -1; }
  f.number = static_cast<uint32_t>(number);
  f.value = 0;
  f.bytes = {};
  switch (key & 7) {
    case 0:
      f.wire = Wire::Varint;
      if (!varint(f.value)) return -1;
      return 1;
    case 1:
      f.wire = Wire::I64;
      if (end_ - p_ < 8) { error_ = "truncated fixed64"; return -1; }
      for (int i = 0; i < 8; i++) f.value |= static_cast<uint64_t>(static_cast<uint8_t>(p_[i])) << (8 * i);
      p_ += 8;
      return 1;
    case 2: {
      f.wire = Wire::Len;
      uint64_t len;
      if (!varint(len)) return -1;
      if (len > static_cast<uint64_t>(end_ - p_)) {
        error_ = "field " + std::to_string(number) + ": length " + std::to_string(len) + " exceeds the " +
                 std::to_string(end_ - p_) + " bytes left";
        return -1;
      }
      f.bytes = std::string_view(p_, static_cast<size_t>(len));
      p_ += len;
      return 1;
    }
    case 5:
      f.wire = Wire::I32;
      if (end_ - p_ < 4) { error_ = "truncated fixed32"; return -1; }
      for (int i = 0; i < 4; i++) f.value |= static_cast<uint64_t>(static_cast<uint8_t>(p_[i])) << (8 * i);
      p_ += 4;
      return 1;
    default:
      error_ = "field " + std::to_string(number) + ": unsupported wire type " + std::to_string(key & 7);
      return -1;
  }
}

static bool want(const Field& f, Wire w, std::string& err) {
  if (f.wire == w) return true;
  err = "field " + std::to_string(f.number) + ": wrong wire type " + std::to_string(static_cast<int>(f.wire)) +
        " (expected " + std::to_string(static_cast<int>(w)) + ")";
  return false;
}

bool get_string(const Field& f, std::string& out, std::string& err, size_t max_len) {
  if (!want(f, Wire::Len, err)) return false;
  if (f.bytes.size() > max_len) {
    err = "field " + std::to_string(f.number) + ": " + std::to_string(f.bytes.size()) + " bytes exceed the limit of " +
          std::to_string(max_len);
    return false;
  }
  out.assign(f.bytes.data(), f.bytes.size());
  return true;
}

bool get_uint64(const Field& f, uint64_t& out, std::string& err) {
  if (!want(f, Wire::Varint, err)) return false;
  out = f.value;
  return true;
}

bool get_uint32(const Field& f, uint32_t& out, std::string& err) {
  if (!want(f, Wire::Varint, err)) return false;
  if (f.value > 0xffffffffull) { err = "field " + std::to_string(f.number) + ": value does not fit uint32"; return false; }
  out = static_cast<uint32_t>(f.value);
  return true;
}

bool get_int64(const Field& f, int64_t& out, std::string& err) {
  if (!want(f, Wire::Varint, err)) return false;
  out = static_cast<int64_t>(f.value);
  return true;
}

bool get_int32(const Field& f, int32_t& out, std::string& err) {
  if (!want(f, Wire::Varint, err)) return false;
  int64_t v = static_cast<int64_t>(f.value);
  if (v < INT32_MIN || v > INT32_MAX) { err = "field " + std::to_string(f.number) + ": value does not fit int32"; return false; }
  out = static_cast<int32_t>(v);
  return true;
}

bool get_bool(const Field& f, bool& out, std::string& err) {
  if (!want(f, Wire::Varint, err)) return false;
  out = f.value != 0;
  return true;
}

void Writer::raw_varint(uint64_t v) {
  while (v >= 0x80) {
    buf_.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  buf_.push_back(static_cast<char>(v));
}

void Writer::tag(uint32_t n, Wire w) { raw_varint((static_cast<uint64_t>(n) << 3) | static_cast<uint8_t>(w)); }

void Writer::uint64(uint32_t n, uint64_t v) {
  if (v == 0) return;
  tag(n, Wire::Varint);
  raw_varint(v);
}

void Writer::bytes_always(uint32_t n, std::string_view v) {
  tag(n, Wire::Len);
  raw_varint(v.size());
  buf_.append(v.data(), v.size());
}

void Writer::fixed32(uint32_t n, uint32_t v) {
  tag(n, Wire::I32);
  for (int i = 0; i < 4; i++) buf_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void Writer::fixed64(uint32_t n, uint64_t v) {
  tag(n, Wire::I64);
  for (int i = 0; i < 8; i++) buf_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

}  // namespace pb
