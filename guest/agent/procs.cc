// Process listing from /proc for ListProcesses (procs.h). Every file is read with a size limit, and every field
// is parsed as text that may be anything: a process can name itself with spaces, ')' and newlines.
#include "procs.h"

#include <dirent.h>
#include <errno.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <set>

#include "util.h"

namespace {

bool parse_u64(const std::string& s, uint64_t& v) {
  if (s.empty() || s.size() > 20) return false;
  char* end = nullptr;
  errno = 0;
  unsigned long long x = strtoull(s.c_str(), &end, 10);
  if (errno != 0 || *end != '\0' || s[0] == '-') return false;
  v = x;
  return true;
}

uint64_t boot_time() {  // /proc/stat "btime": the boot time in seconds since the epoch
  std::string s;
  if (!read_file("/proc/stat", s, 1 << 20)) return 0;
  size_t at = s.find("\nbtime ");
  if (at == std::string::npos) return 0;
  uint64_t v = 0;
  size_t e = s.find('\n', at + 7);
  return parse_u64(s.substr(at + 7, e == std::string::npos ? std::string::npos : e - at - 7), v) ? v : 0;
}

uint32_t status_uid(const std::string& status) {  // /proc/PID/status "Uid:\treal\teffective..." (ps shows the effective)
  size_t at = status.find("\nUid:");
  if (at == std::string::npos) return 0;
  size_t e = status.find('\n', at + 5);
  std::string line = status.substr(at + 5, e == std::string::npos ? std::string::npos : e - at - 5);
  std::vector<std::string> f;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) i++;
    size_t j = i;
    while (j < line.size() && line[j] != ' ' && line[j] != '\t') j++;
    if (j > i) f.push_back(line.substr(i, j - i));
    i = j;
  }
  uint64_t v = 0;
  return f.size() >= 2 && parse_u64(f[1], v) && v <= 0xffffffffu ? static_cast<uint32_t>(v) : 0;
}

}  // namespace

bool parse_proc_stat(const std::string& text, ProcStatus& out, uint64_t& start_ticks, std::string& comm) {
  // "PID (COMM) S PPID PGRP SESSION TTY_NR TPGID FLAGS MINFLT CMINFLT MAJFLT CMAJFLT UTIME STIME ... STARTTIME"
  size_t open = text.find(" (");
  size_t close = text.rfind(')');
  if (open == std::string::npos || close == std::string::npos || close < open + 2) return false;
  uint64_t pid = 0;
  if (!parse_u64(text.substr(0, open), pid) || pid == 0 || pid > 0x7fffffff) return false;
  comm = text.substr(open + 2, close - open - 2);
  std::vector<std::string> f;  // f[0] = state (field 3)
  size_t i = close + 1;
  while (i < text.size() && f.size() < 20) {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\n')) i++;
    size_t j = i;
    while (j < text.size() && text[j] != ' ' && text[j] != '\n') j++;
    if (j > i) f.push_back(text.substr(i, j - i));
    i = j;
  }
  uint64_t ppid, tty, utime, stime;
  if (f.size() < 20 || !parse_u64(f[1], ppid) || !parse_u64(f[4], tty) || !parse_u64(f[11], utime) ||
      !parse_u64(f[12], stime) || !parse_u64(f[19], start_ticks) || ppid > 0x7fffffff)
    return false;
  out.pid = static_cast<uint32_t>(pid);
  out.ppid = static_cast<uint32_t>(ppid);
  out.tty = tty_name(tty);
  long hz = sysconf(_SC_CLK_TCK);
  if (hz <= 0) hz = 100;
  out.cpu_millis = (utime + stime) * 1000 / static_cast<uint64_t>(hz);
  return true;
}

std::string tty_name(uint64_t tty_nr) {
  // linux/kdev_t.h new_encode_dev: minor low 8 bits + bits 20..31, major bits 8..19
  uint64_t major = (tty_nr >> 8) & 0xfff, minor = (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00);
  if (tty_nr == 0) return "";
  if (major >= 136 && major <= 143) return "pts/" + std::to_string((major - 136) * 256 + minor);
  if (major == 4 && minor < 64) return "tty" + std::to_string(minor);
  if (major == 4) return "ttyS" + std::to_string(minor - 64);
  if (major == 5 && minor == 1) return "console";
  return "";
}

bool read_cgroup_procs(const std::string& cgroup_dir, std::vector<pid_t>& out, size_t limit) {
  std::string s;
  if (!read_file(cgroup_dir + "/cgroup.procs", s, 1 << 20)) return false;
  size_t i = 0;
  while (i < s.size() && out.size() < limit) {
    size_t e = s.find('\n', i);
    if (e == std::string::npos) e = s.size();
    uint64_t v = 0;
    if (parse_u64(s.substr(i, e - i), v) && v > 0 && v <= 0x7fffffff) out.push_back(static_cast<pid_t>(v));
    i = e + 1;
  }
  return true;
}

std::vector<pid_t> descendants(const std::vector<pid_t>& roots, size_t limit) {
  std::multimap<pid_t, pid_t> children;  // ppid -> pid
  if (DIR* d = opendir("/proc")) {
    while (dirent* e = readdir(d)) {
      uint64_t pid = 0;
      if (!parse_u64(e->d_name, pid) || pid == 0 || pid > 0x7fffffff) continue;
      std::string text, comm;
      ProcStatus st;
      uint64_t ticks = 0;
      if (read_file(std::string("/proc/") + e->d_name + "/stat", text, 4096) && parse_proc_stat(text, st, ticks, comm))
        children.emplace(static_cast<pid_t>(st.ppid), static_cast<pid_t>(st.pid));
    }
    closedir(d);
  }
  std::vector<pid_t> out;
  std::set<pid_t> seen;
  std::vector<pid_t> todo(roots.rbegin(), roots.rend());
  while (!todo.empty() && out.size() < limit) {
    pid_t p = todo.back();
    todo.pop_back();
    if (p <= 0 || !seen.insert(p).second) continue;
    out.push_back(p);
    auto range = children.equal_range(p);
    for (auto it = range.first; it != range.second; ++it) todo.push_back(it->second);
  }
  return out;
}

std::vector<ProcStatus> proc_statuses(const std::vector<pid_t>& pids) {
  std::vector<ProcStatus> out;
  const uint64_t btime = boot_time();
  long hz = sysconf(_SC_CLK_TCK);
  if (hz <= 0) hz = 100;
  for (pid_t pid : pids) {
    const std::string dir = "/proc/" + std::to_string(pid);
    std::string text, comm, status, cmdline;
    ProcStatus st;
    uint64_t ticks = 0;
    if (!read_file(dir + "/stat", text, 4096) || !parse_proc_stat(text, st, ticks, comm)) continue;  // gone
    st.start_time = btime + ticks / static_cast<uint64_t>(hz);
    if (read_file(dir + "/status", status, 65536)) st.uid = status_uid(status);
    if (read_file(dir + "/cmdline", cmdline, 4096)) {
      while (!cmdline.empty() && cmdline.back() == '\0') cmdline.pop_back();
      std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    }
    st.cmd = cmdline.empty() ? "[" + comm + "]" : cmdline;
    out.push_back(std::move(st));
  }
  return out;
}
