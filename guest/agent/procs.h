// What `ps -ef` shows of a process, read from /proc (the guest has no ps binary). ListProcesses.
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

struct ProcStatus {
  uint32_t pid = 0, ppid = 0, uid = 0;
  uint64_t start_time = 0;  // seconds since the epoch (guest clock)
  uint64_t cpu_millis = 0;  // utime + stime
  std::string tty;          // "pts/N", "ttyN", "ttySN", "console" or "" (none)
  std::string cmd;          // cmdline joined by spaces; "[comm]" when it has none (zombie, kernel thread)
};

// Parses the text of /proc/PID/stat: false when it is not one (the process name may hold spaces and ')').
bool parse_proc_stat(const std::string& text, ProcStatus& out, uint64_t& start_ticks, std::string& comm);

// The name ps gives a tty_nr from /proc/PID/stat ("" for none or a device it does not name).
std::string tty_name(uint64_t tty_nr);

// The pids listed in a cgroup.procs file (at most `limit`); false when it cannot be read.
bool read_cgroup_procs(const std::string& cgroup_dir, std::vector<pid_t>& out, size_t limit);

// `roots` and every live descendant of them (one /proc scan), at most `limit` pids.
std::vector<pid_t> descendants(const std::vector<pid_t>& roots, size_t limit);

// The status of each pid that still exists, in the order given.
std::vector<ProcStatus> proc_statuses(const std::vector<pid_t>& pids);
