// ttRPC framing and messages (containerd/ttrpc PROTOCOL.md, request.proto).
// Frame: 10-byte big-endian header { u32 length, u32 stream_id, u8 type, u8 flags } + `length` bytes.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ttrpc {

constexpr size_t kHeaderSize = 10;
constexpr uint32_t kMaxMessage = 4 << 20;  // ttrpc messageLengthMax (4 MiB)
constexpr uint8_t kTypeRequest = 1;
constexpr uint8_t kTypeResponse = 2;

// google.rpc.Code values used by the agent (google/rpc/code.proto).
enum Code : int32_t {
  OK = 0, CANCELLED = 1, UNKNOWN = 2, INVALID_ARGUMENT = 3, DEADLINE_EXCEEDED = 4, NOT_FOUND = 5,
  ALREADY_EXISTS = 6, PERMISSION_DENIED = 7, RESOURCE_EXHAUSTED = 8, FAILED_PRECONDITION = 9, ABORTED = 10,
  OUT_OF_RANGE = 11, UNIMPLEMENTED = 12, INTERNAL = 13, UNAVAILABLE = 14,
};

struct Header {
  uint32_t length = 0;
  uint32_t stream_id = 0;
  uint8_t type = 0;
  uint8_t flags = 0;
};

Header parse_header(const uint8_t* p);  // p points at kHeaderSize bytes
std::string encode_frame(uint32_t stream_id, uint8_t type, uint8_t flags, std::string_view payload);

// ttrpc Request { 1 service, 2 method, 3 payload, 4 timeout_nano, 5 metadata (KeyValue {1 key, 2 value}) }.
struct Request {
  std::string service, method, payload;
  int64_t timeout_nano = 0;
  std::vector<std::pair<std::string, std::string>> metadata;
};
bool decode_request(std::string_view data, Request& out, std::string& err);
std::string encode_request(const Request& r);

// ttrpc Response { 1 status (google.rpc.Status {1 code, 2 message}), 2 payload }.
struct Response {
  int32_t code = OK;
  std::string message, payload;
};
std::string encode_response(const Response& r);
bool decode_response(std::string_view data, Response& out, std::string& err);

// Incremental frame splitter for one connection. Oversized frames are skipped (their payload discarded)
// and reported so the caller can answer RESOURCE_EXHAUSTED on that stream, as containerd's ttrpc does.
class FrameReader {
 public:
  struct Frame {
    Header header;
    std::string payload;
    bool oversize = false;  // payload was discarded; header.length is the announced size
  };
  void feed(const char* data, size_t len) { buf_.append(data, len); }
  // true: a frame (or an oversize notice) was produced.
  bool next(Frame& out);
  size_t buffered() const { return buf_.size() - off_; }

 private:
  std::string buf_;
  size_t off_ = 0;
  uint64_t discard_ = 0;
};

}  // namespace ttrpc
