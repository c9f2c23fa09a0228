#include "messages.h"

#include "pb.h"

namespace msg {
namespace {

// Drives a pb::Reader over d, calling on(field) for each; on returns false to stop with err set.
template <typename F>
bool each(std::string_view d, std::string& err, F on) {
  pb::Reader r(d);
  pb::Field f;
  int rc;
  while ((rc = r.next(f)) > 0)
    if (!on(f)) return false;
  if (rc < 0) { err = r.error(); return false; }
  return true;
}

bool push_string(const pb::Field& f, std::vector<std::string>& v, std::string& err) {
  if (v.size() >= kMaxRepeated) { err = "field " + std::to_string(f.number) + ": too many entries"; return false; }
  std::string s;
  if (!pb::get_string(f, s, err, kMaxString)) return false;
  v.push_back(std::move(s));
  return true;
}

bool decode_storage(const pb::Field& outer, std::vector<Storage>& v, std::string& err) {
  if (outer.wire != pb::Wire::Len) { err = "storages: wrong wire type"; return false; }
  if (v.size() >= kMaxRepeated) { err = "storages: too many entries"; return false; }
  Storage s;
  bool ok = each(outer.bytes, err, [&](const pb::Field& f) {
    switch (f.number) {
      case 1: return pb::get_string(f, s.driver, err, kMaxString);
      case 2: return pb::get_string(f, s.source, err, kMaxString);
      case 3: return pb::get_string(f, s.mount_point, err, kMaxString);
      case 4: return pb::get_string(f, s.fstype, err, kMaxString);
      case 5: return push_string(f, s.options, err);
      case 6: return push_string(f, s.driver_options, err);
      default: return true;
    }
  });
  if (!ok) { err = "storage: " + err; return false; }
  v.push_back(std::move(s));
  return true;
}

}  // namespace

bool decode(std::string_view d, CreateSandboxRequest& m, std::string& err) {
  return each(d, err, [&](const pb::Field& f) {
    switch (f.number) {
      case 1: return pb::get_string(f, m.sandbox_id, err, kMaxString);
      case 2: return pb::get_string(f, m.hostname, err, kMaxString);
      case 3: return push_string(f, m.dns, err);
      case 4: return decode_storage(f, m.storages, err);
      default: return true;
    }
  });
}

bool decode(std::string_view d, CreateContainerRequest& m, std::string& err) {
  return each(d, err, [&](const pb::Field& f) {
    switch (f.number) {
      case 1: return pb::get_string(f, m.container_id, err, kMaxString);
      case 2: return pb::get_string(f, m.oci_spec_json, err, kMaxJson);
      case 3: return decode_storage(f, m.storages, err);
      case 4: return pb::get_string(f, m.rootfs, err, kMaxString);
      default: return true;
    }
  });
}

bool decode(std::string_view d, ContainerRequest& m, std::string& err) {
  return each(d, err, [&](const pb::Field& f) {
    if (f.number == 1) return pb::get_string(f, m.container_id, err, kMaxString);
    return true;
  });
}

bool decode(std::string_view d, RemoveContainerRequest& m, std::string& err) {
  return each(d, err, [&](const pb::Field& f) {
    if (f.number == 1) return pb::get_string(f, m.container_id, err, kMaxString);
    if (f.number == 2) return pb::get_uint32(f, m.timeout_seconds, err);
    return true;
  });
}

bool decode(std::string_view d, ExecProcessRequest& m, std::string& err) {
  return each(d, err, [&](const pb::Field& f) {
    switch (f.number) {
      case 1: return pb::get_string(f, m.container_id, err, kMaxString);
      case 2: return pb::get_string(f, m.exec_id, err, kMaxString);
      case 3: return pb::get_string(f, m.process_json, err, kMaxJson);
      default: return true;
    }
  });
}

bool decode(std::string_view d, SignalProcessRequest& m, std::string& err) {
  return each(d, err, [&](const pb::Field& f) {
    switch (f.number) {
      case 1: return pb::get_string(f, m.container_id, err, kMaxString);
      case 2: return pb::get_string(f, m.exec_id, err, kMaxString);
      case 3: return pb::get_uint32(f, m.signal, err);
      case 4: return pb::get_bool(f, m.all, err);
      default: return true;
    }
  });
}

bool decode(std::string_view d, ProcessRequest& m, std::string& err) {
  return each(d, err, [&](const pb::Field& f) {
    if (f.number == 1) return pb::get_string(f, m.container_id, err, kMaxString);
    if (f.number == 2) return pb::get_string(f, m.exec_id, err, kMaxString);
    return true;
  });
}

bool decode(std::string_view d, TtyWinResizeRequest& m, std::string& err) {
  return each(d, err, [&](const pb::Field& f) {
    switch (f.number) {
      case 1: return pb::get_string(f, m.container_id, err, kMaxString);
      case 2: return pb::get_string(f, m.exec_id, err, kMaxString);
      case 3: return pb::get_uint32(f, m.rows, err);
      case 4: return pb::get_uint32(f, m.columns, err);
      default: return true;
    }
  });
}

bool decode(std::string_view d, UpdateContainerRequest& m, std::string& err) {
  return each(d, err, [&](const pb::Field& f) {
    if (f.number == 1) return pb::get_string(f, m.container_id, err, kMaxString);
    if (f.number == 2) return pb::get_string(f, m.resources_json, err, kMaxJson);
    return true;
  });
}

bool decode(std::string_view d, StdioStreamHeader& m, std::string& err) {
  return each(d, err, [&](const pb::Field& f) {
    switch (f.number) {
      case 1: return pb::get_string(f, m.container_id, err, kMaxString);
      case 2: return pb::get_string(f, m.exec_id, err, kMaxString);
      case 3: return pb::get_uint32(f, m.kind, err);
      default: return true;
    }
  });
}

bool decode_any(std::string_view d, std::string& err) {
  return each(d, err, [](const pb::Field&) { return true; });
}

std::string encode_wait_response(int32_t exit_code, uint32_t signal) {
  pb::Writer w;
  w.int32(1, exit_code);
  w.uint64(2, signal);
  return w.take();
}

std::string encode_stats(const CgroupStats& s) {
  pb::Writer c;
  c.uint64(1, s.cpu_usage_usec);
  c.uint64(2, s.cpu_user_usec);
  c.uint64(3, s.cpu_system_usec);
  c.uint64(4, s.memory_current);
  c.uint64(5, s.memory_max);
  c.uint64(6, s.pids_current);
  c.uint64(7, s.pids_max);
  pb::Writer w;
  w.bytes_always(1, c.data());
  return w.take();
}

std::string encode_process_list(const std::vector<ProcStatus>& procs) {
  pb::Writer w;
  for (const ProcStatus& p : procs) {
    pb::Writer e;
    e.uint64(1, p.pid);
    e.uint64(2, p.ppid);
    e.uint64(3, p.uid);
    e.uint64(4, p.start_time);
    e.uint64(5, p.cpu_millis);
    e.string(6, p.tty);
    e.string(7, p.cmd);
    w.bytes_always(1, e.data());
  }
  return w.take();
}

std::string encode_guest_details(const GuestDetails& g) {
  pb::Writer w;
  w.string(1, g.agent_version);
  w.string(2, g.kernel_release);
  w.uint64(3, g.mem_total_bytes);
  w.uint64(4, g.cpus);
  w.string(5, g.runc_version);
  w.uint64(6, g.stdio_port);
  return w.take();
}

std::string encode_health(uint32_t status) {
  pb::Writer w;
  w.uint64(1, status);
  return w.take();
}

std::string encode_stdio_ack(uint32_t code, std::string_view message) {
  pb::Writer w;
  w.uint64(1, code);
  w.string(2, message);
  return w.take();
}

std::string encode_oom_event(std::string_view container_id) {
  pb::Writer w;
  w.string(1, container_id);
  return w.take();
}

}  // namespace msg
