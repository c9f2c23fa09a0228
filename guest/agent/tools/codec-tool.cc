// codec-tool: the guest agent's wire codecs (pb, ttrpc, messages, json) driven from the command line, for
// tests against protobufjs-made vectors, containerd's Go ttrpc, and fuzzing (built with sanitizers by
// build-codec-tool.sh). Not part of the agent binary.
//
//   codec-tool decode <Type>     hex lines on stdin -> one JSON line each: {"ok":true,"value":{...}} | {"ok":false,"error":"..."}
//                                Types: CreateSandboxRequest CreateContainerRequest StartContainerRequest
//                                RemoveContainerRequest ExecProcessRequest SignalProcessRequest WaitProcessRequest
//                                StatsContainerRequest TtyWinResizeRequest CloseStdinRequest StdioStreamHeader
//                                UpdateContainerRequest Empty ttrpc.Request ttrpc.Response json frames
//   codec-tool encode            fixed response messages -> JSON lines {"type":"...","hex":"..."}
//   codec-tool call <unix-socket> <service> <method> <payload-hex>
//                                one unary ttRPC call; prints {"ok":true,"payload":"<hex>"} or {"ok":false,"code":N,"message":"..."}
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>

#include "../json.h"
#include "../messages.h"
#include "../ttrpc.h"

namespace {

using json::Value;

std::string to_hex(std::string_view s) {
  static const char* d = "0123456789abcdef";
  std::string o;
  for (unsigned char c : s) { o.push_back(d[c >> 4]); o.push_back(d[c & 15]); }
  return o;
}

bool from_hex(const std::string& h, std::string& out) {
  if (h.size() % 2) return false;
  out.clear();
  for (size_t i = 0; i < h.size(); i += 2) {
    auto v = [](char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1; };
    int a = v(h[i]), b = v(h[i + 1]);
    if (a < 0 || b < 0) return false;
    out.push_back(static_cast<char>(a * 16 + b));
  }
  return true;
}

Value num(uint64_t v) { Value x; x.kind = Value::Kind::Number; x.s = std::to_string(v); return x; }
Value snum(int64_t v) { Value x; x.kind = Value::Kind::Number; x.s = std::to_string(v); return x; }
Value boolean(bool b) { Value x; x.kind = Value::Kind::Bool; x.b = b; return x; }
Value str(const std::string& s) { return Value::string(s); }
Value strs(const std::vector<std::string>& v) {
  Value a; a.kind = Value::Kind::Array;
  for (const auto& s : v) a.items.push_back(str(s));
  return a;
}
Value storages(const std::vector<msg::Storage>& v) {
  Value a; a.kind = Value::Kind::Array;
  for (const auto& s : v) {
    Value o = Value::object();
    o.set("driver", str(s.driver)); o.set("source", str(s.source)); o.set("mount_point", str(s.mount_point));
    o.set("fstype", str(s.fstype)); o.set("options", strs(s.options)); o.set("driver_options", strs(s.driver_options));
    a.items.push_back(o);
  }
  return a;
}

bool decode_one(const std::string& type, const std::string& in, Value& out, std::string& err) {
  out = Value::object();
  if (type == "CreateSandboxRequest") {
    msg::CreateSandboxRequest m;
    if (!msg::decode(in, m, err)) return false;
    out.set("sandbox_id", str(m.sandbox_id)); out.set("hostname", str(m.hostname)); out.set("dns", strs(m.dns));
    out.set("storages", storages(m.storages));
  } else if (type == "CreateContainerRequest") {
    msg::CreateContainerRequest m;
    if (!msg::decode(in, m, err)) return false;
    out.set("container_id", str(m.container_id)); out.set("oci_spec_json", str(to_hex(m.oci_spec_json)));
    out.set("storages", storages(m.storages)); out.set("rootfs", str(m.rootfs));
  } else if (type == "StartContainerRequest" || type == "StatsContainerRequest") {
    msg::ContainerRequest m;
    if (!msg::decode(in, m, err)) return false;
    out.set("container_id", str(m.container_id));
  } else if (type == "RemoveContainerRequest") {
    msg::RemoveContainerRequest m;
    if (!msg::decode(in, m, err)) return false;
    out.set("container_id", str(m.container_id)); out.set("timeout_seconds", num(m.timeout_seconds));
  } else if (type == "ExecProcessRequest") {
    msg::ExecProcessRequest m;
    if (!msg::decode(in, m, err)) return false;
    out.set("container_id", str(m.container_id)); out.set("exec_id", str(m.exec_id)); out.set("process_json", str(to_hex(m.process_json)));
  } else if (type == "SignalProcessRequest") {
    msg::SignalProcessRequest m;
    if (!msg::decode(in, m, err)) return false;
    out.set("container_id", str(m.container_id)); out.set("exec_id", str(m.exec_id)); out.set("signal", num(m.signal));
    out.set("all", boolean(m.all));
  } else if (type == "WaitProcessRequest" || type == "CloseStdinRequest") {
    msg::ProcessRequest m;
    if (!msg::decode(in, m, err)) return false;
    out.set("container_id", str(m.container_id)); out.set("exec_id", str(m.exec_id));
  } else if (type == "TtyWinResizeRequest") {
    msg::TtyWinResizeRequest m;
    if (!msg::decode(in, m, err)) return false;
    out.set("container_id", str(m.container_id)); out.set("exec_id", str(m.exec_id)); out.set("rows", num(m.rows));
    out.set("columns", num(m.columns));
  } else if (type == "UpdateContainerRequest") {
    msg::UpdateContainerRequest m;
    if (!msg::decode(in, m, err)) return false;
    out.set("container_id", str(m.container_id)); out.set("resources_json", str(to_hex(m.resources_json)));
  } else if (type == "StdioStreamHeader") {
    msg::StdioStreamHeader m;
    if (!msg::decode(in, m, err)) return false;
    out.set("container_id", str(m.container_id)); out.set("exec_id", str(m.exec_id)); out.set("kind", num(m.kind));
  } else if (type == "Empty") {
    if (!msg::decode_any(in, err)) return false;
  } else if (type == "ttrpc.Request") {
    ttrpc::Request r;
    if (!ttrpc::decode_request(in, r, err)) return false;
    out.set("service", str(r.service)); out.set("method", str(r.method)); out.set("payload", str(to_hex(r.payload)));
    out.set("timeout_nano", snum(r.timeout_nano));
    Value md; md.kind = Value::Kind::Array;
    for (const auto& kv : r.metadata) { Value o = Value::object(); o.set("key", str(kv.first)); o.set("value", str(kv.second)); md.items.push_back(o); }
    out.set("metadata", md);
  } else if (type == "ttrpc.Response") {
    ttrpc::Response r;
    if (!ttrpc::decode_response(in, r, err)) return false;
    out.set("code", snum(r.code)); out.set("message", str(r.message)); out.set("payload", str(to_hex(r.payload)));
  } else if (type == "json") {
    Value v;
    if (!json::parse(in, v, err)) return false;
    out.set("text", str(json::serialize(v)));
  } else if (type == "frames") {
    // Feeds the bytes in small uneven chunks, as a socket might deliver them.
    ttrpc::FrameReader rd;
    ttrpc::FrameReader::Frame f;
    Value a; a.kind = Value::Kind::Array;
    size_t off = 0, step = 1;
    while (off < in.size()) {
      size_t n = std::min(step, in.size() - off);
      rd.feed(in.data() + off, n);
      off += n;
      step = step % 7 + 1;
      while (rd.next(f)) {
        Value o = Value::object();
        o.set("stream_id", num(f.header.stream_id)); o.set("type", num(f.header.type)); o.set("flags", num(f.header.flags));
        o.set("length", num(f.header.length)); o.set("oversize", boolean(f.oversize)); o.set("payload", str(to_hex(f.payload)));
        a.items.push_back(o);
      }
    }
    out.set("frames", a);
    out.set("buffered", num(rd.buffered()));
  } else {
    err = "unknown type " + type;
    return false;
  }
  return true;
}

int cmd_decode(const std::string& type) {
  std::string line;
  while (std::getline(std::cin, line)) {
    Value res = Value::object();
    std::string bytes, err;
    Value v;
    if (!from_hex(line, bytes)) { res.set("ok", boolean(false)); res.set("error", str("input is not hex")); }
    else if (decode_one(type, bytes, v, err)) { res.set("ok", boolean(true)); res.set("value", v); }
    else { res.set("ok", boolean(false)); res.set("error", str(err)); }
    std::cout << json::serialize(res) << "\n";
  }
  return 0;
}

void emit(const char* type, const std::string& bytes) {
  Value o = Value::object();
  o.set("type", str(type));
  o.set("hex", str(to_hex(bytes)));
  std::cout << json::serialize(o) << "\n";
}

int cmd_encode() {
  emit("WaitProcessResponse", msg::encode_wait_response(137, 9));
  emit("WaitProcessResponse", msg::encode_wait_response(-1, 0));  // int32 negative: 10-byte varint
  msg::CgroupStats s;
  s.cpu_usage_usec = 1234567; s.cpu_user_usec = 1000000; s.cpu_system_usec = 234567; s.memory_current = 5ull << 30;
  s.memory_max = 0; s.pids_current = 3; s.pids_max = 4194304;
  emit("StatsContainerResponse", msg::encode_stats(s));
  emit("StatsContainerResponse", msg::encode_stats(msg::CgroupStats{}));
  msg::GuestDetails g;
  g.agent_version = "kata-ts-agent 0.1.0"; g.kernel_release = "6.1.0-kata"; g.runc_version = "runc version 1.1.5";
  g.mem_total_bytes = 536870912; g.cpus = 2; g.stdio_port = 1025;
  emit("GuestDetailsResponse", msg::encode_guest_details(g));
  emit("HealthCheckResponse", msg::encode_health(1));
  emit("StdioStreamAck", msg::encode_stdio_ack(5, "container nope not found"));
  emit("StdioStreamAck", msg::encode_stdio_ack(0, ""));
  ttrpc::Response r;
  r.code = 5; r.message = "container x not found";
  emit("ttrpc.Response", ttrpc::encode_response(r));
  ttrpc::Response okr;
  okr.payload = std::string("\x08\x01", 2);
  emit("ttrpc.Response", ttrpc::encode_response(okr));
  ttrpc::Request q;
  q.service = "kata_ts.agent.AgentService"; q.method = "WaitProcess"; q.payload = std::string("\x0a\x02" "c1", 4);
  q.timeout_nano = 30000000000LL; q.metadata = {{"a", "1"}, {"a", "2"}};
  emit("ttrpc.Request", ttrpc::encode_request(q));
  emit("OOMEvent", msg::encode_oom_event("c-1.oom_x"));
  return 0;
}

int cmd_call(const std::string& path, const std::string& service, const std::string& method, const std::string& hex) {
  ttrpc::Request q;
  q.service = service;
  q.method = method;
  if (!from_hex(hex, q.payload)) { fprintf(stderr, "codec-tool: payload is not hex\n"); return 2; }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path.size() >= sizeof sa.sun_path) { fprintf(stderr, "codec-tool: socket path too long\n"); return 2; }
  memcpy(sa.sun_path, path.c_str(), path.size());
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) { perror("codec-tool: connect"); return 2; }
  std::string frame = ttrpc::encode_frame(1, ttrpc::kTypeRequest, 0, ttrpc::encode_request(q));
  for (size_t off = 0; off < frame.size();) {
    ssize_t n = write(fd, frame.data() + off, frame.size() - off);
    if (n <= 0) { perror("codec-tool: write"); return 2; }
    off += static_cast<size_t>(n);
  }
  ttrpc::FrameReader rd;
  ttrpc::FrameReader::Frame f;
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) { fprintf(stderr, "codec-tool: connection closed before a response\n"); return 2; }
    rd.feed(buf, static_cast<size_t>(n));
    if (rd.next(f)) break;
  }
  close(fd);
  Value o = Value::object();
  if (f.oversize || f.header.type != ttrpc::kTypeResponse || f.header.stream_id != 1) {
    fprintf(stderr, "codec-tool: unexpected frame (type %u, stream %u, oversize %d)\n", f.header.type, f.header.stream_id, f.oversize);
    return 2;
  }
  ttrpc::Response r;
  std::string err;
  if (!ttrpc::decode_response(f.payload, r, err)) { fprintf(stderr, "codec-tool: malformed Response: %s\n", err.c_str()); return 2; }
  if (r.code == 0) { o.set("ok", boolean(true)); o.set("payload", str(to_hex(r.payload))); }
  else { o.set("ok", boolean(false)); o.set("code", snum(r.code)); o.set("message", str(r.message)); }
  std::cout << json::serialize(o) << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd == "decode" && argc == 3) return cmd_decode(argv[2]);
  if (cmd == "encode" && argc == 2) return cmd_encode();
  if (cmd == "call" && argc == 6) return cmd_call(argv[2], argv[3], argv[4], argv[5]);
  fprintf(stderr, "usage: codec-tool decode <Type> | encode | call <unix-socket> <service> <method> <payload-hex>\n");
  return 2;
}
