// Minimal protocol-buffers wire codec (proto3 subset) for the guest agent.
// Wire format: https://protobuf.dev/programming-guides/encoding/ (varint, tag = field << 3 | wire type,
// LEN = varint length + bytes, I32/I64 little-endian). Groups (wire types 3, 4) are rejected.
// Every read is bounds-checked; malformed input yields an error string, never UB.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pb {

enum class Wire : uint8_t { Varint = 0, I64 = 1, Len = 2, I32 = 5 };

struct Field {
  uint32_t number = 0;
  Wire wire = Wire::Varint;
  uint64_t value = 0;        // Varint, I32, I64
  std::string_view bytes;    // Len
};

class Reader {
 public:
  explicit Reader(std::string_view data) : p_(data.data()), end_(data.data() + data.size()) {}
  // 1: a field was read into f; 0: end of the message; -1: malformed (error() says why).
  int next(Field& f);
  const std::string& error() const { return error_; }

 private:
  bool varint(uint64_t& out);
  const char* p_;
  const char* end_;
  std::string error_;
};

// Typed getters: false + err when the wire type does not match the field's declared type.
bool get_string(const Field& f, std::string& out, std::string& err, size_t max_len);
bool get_uint64(const Field& f, uint64_t& out, std::string& err);
bool get_uint32(const Field& f, uint32_t& out, std::string& err);
bool get_int64(const Field& f, int64_t& out, std::string& err);
bool get_int32(const Field& f, int32_t& out, std::string& err);
bool get_bool(const Field& f, bool& out, std::string& err);

class Writer {
 public:
  // proto3 implicit presence: scalar fields equal to their default are omitted.
  void uint64(uint32_t n, uint64_t v);
  void int64(uint32_t n, int64_t v) { uint64(n, static_cast<uint64_t>(v)); }
  void int32(uint32_t n, int32_t v) { uint64(n, static_cast<uint64_t>(static_cast<int64_t>(v))); }  // sign-extended
  void boolean(uint32_t n, bool v) { uint64(n, v ? 1 : 0); }
  void string(uint32_t n, std::string_view v) { if (!v.empty()) bytes_always(n, v); }
  // Always emitted (sub-messages and repeated elements exist even when empty).
  void bytes_always(uint32_t n, std::string_view v);
  void fixed32(uint32_t n, uint32_t v);
  void fixed64(uint32_t n, uint64_t v);
  const std::string& data() const { return buf_; }
  std::string take() { return std::move(buf_); }

 private:
  void tag(uint32_t n, Wire w);
  void raw_varint(uint64_t v);
  std::string buf_;
};

}  // namespace pb
