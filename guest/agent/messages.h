// The agent's messages (src/agent/agent.proto, package kata_ts.agent), decoded and encoded by hand.
// Field numbers here must match agent.proto exactly.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "procs.h"

namespace msg {

constexpr size_t kMaxJson = 1 << 20;   // oci_spec_json / process_json: "At most 1 MiB"
constexpr size_t kMaxString = 4096;    // paths, ids, options
constexpr size_t kMaxRepeated = 256;   // storages, options, dns lines

struct Storage {
  std::string driver, source, mount_point, fstype;
  std::vector<std::string> options, driver_options;
};
struct CreateSandboxRequest {
  std::string sandbox_id, hostname;
  std::vector<std::string> dns;
  std::vector<Storage> storages;
};
struct CreateContainerRequest {
  std::string container_id, oci_spec_json, rootfs;
  std::vector<Storage> storages;
};
struct ContainerRequest { std::string container_id; };             // StartContainer, StatsContainer
struct RemoveContainerRequest { std::string container_id; uint32_t timeout_seconds = 0; };
struct ExecProcessRequest { std::string container_id, exec_id, process_json; };
struct SignalProcessRequest { std::string container_id, exec_id; uint32_t signal = 0; bool all = false; };
struct ProcessRequest { std::string container_id, exec_id; };      // WaitProcess, CloseStdin
struct TtyWinResizeRequest { std::string container_id, exec_id; uint32_t rows = 0, columns = 0; };
struct UpdateContainerRequest { std::string container_id, resources_json; };

enum StreamKind : uint32_t { STREAM_UNSPECIFIED = 0, STDIN = 1, STDOUT = 2, STDERR = 3 };
struct StdioStreamHeader { std::string container_id, exec_id; uint32_t kind = 0; };

struct CgroupStats {
  uint64_t cpu_usage_usec = 0, cpu_user_usec = 0, cpu_system_usec = 0, memory_current = 0, memory_max = 0,
           pids_current = 0, pids_max = 0;
};
struct GuestDetails {
  std::string agent_version, kernel_release, runc_version;
  uint64_t mem_total_bytes = 0;
  uint32_t cpus = 0, stdio_port = 0;
};

// Decoders: false + err (a message naming the field) on malformed input. Unknown fields are skipped.
bool decode(std::string_view d, CreateSandboxRequest& m, std::string& err);
bool decode(std::string_view d, CreateContainerRequest& m, std::string& err);
bool decode(std::string_view d, ContainerRequest& m, std::string& err);
bool decode(std::string_view d, RemoveContainerRequest& m, std::string& err);
bool decode(std::string_view d, ExecProcessRequest& m, std::string& err);
bool decode(std::string_view d, SignalProcessRequest& m, std::string& err);
bool decode(std::string_view d, ProcessRequest& m, std::string& err);
bool decode(std::string_view d, TtyWinResizeRequest& m, std::string& err);
bool decode(std::string_view d, UpdateContainerRequest& m, std::string& err);
bool decode(std::string_view d, StdioStreamHeader& m, std::string& err);
// Messages whose content the agent ignores (Empty, DestroySandboxRequest, CheckRequest, GetOOMEventRequest):
// still well-formed.
bool decode_any(std::string_view d, std::string& err);

std::string encode_wait_response(int32_t exit_code, uint32_t signal);
std::string encode_stats(const CgroupStats& s);
std::string encode_guest_details(const GuestDetails& g);
std::string encode_health(uint32_t status);  // HealthCheckResponse.ServingStatus (1 = SERVING)
std::string encode_stdio_ack(uint32_t code, std::string_view message);
std::string encode_oom_event(std::string_view container_id);
std::string encode_process_list(const std::vector<ProcStatus>& procs);  // ListProcessesResponse

}  // namespace msg
