// The agent: ttRPC server (AgentService + Health), stdio stream server, containers run with runc.
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "loop.h"
#include "messages.h"
#include "runc.h"
#include "ttrpc.h"

struct Options {
  std::string listen = "vsock:1024";       // "vsock:PORT" or "unix:PATH"
  std::string stdio_listen;                // default: vsock:1025, or "unix:<listen path>.stdio"
  std::string state_dir = "/run/kata-ts";  // bundles under containers/<id>/, runc state under runc/
  std::string runc = "runc";
  bool init = false;                       // PID 1 duties (mounts, boot timer, power-off)
  int no_pivot = -1;                       // -1: auto (initramfs root → --no-pivot)
};

class Agent;

// Copies bytes from one fd to another without unbounded buffering: reads the source only when the
// previous chunk has been written. Used for stdout/stderr (pipe → socket) and stdin (socket → pipe).
class Pump : public std::enable_shared_from_this<Pump> {
 public:
  Pump(Agent& a, int src, int dst, std::string initial);
  ~Pump();
  void start();
  void finish();            // closes both ends
  void close_when_drained();  // CloseStdin: stop reading, close dst after pending bytes
  uint64_t id = 0;
  bool is_stdin = false;

 private:
  void on_src(uint32_t ev);
  void on_dst(uint32_t ev);
  bool flush();             // false: dst failed
  Agent& a_;
  int src_, dst_;
  uint64_t src_tok_ = 0, dst_tok_ = 0;
  std::string pending_;
  bool src_done_ = false, finished_ = false;
};

struct Waiter { uint64_t conn; uint32_t stream; };

struct Process {
  std::string container_id, exec_id;
  pid_t pid = -1;
  bool exited = false;
  int wait_status = 0;
  bool terminal = false;
  int stdin_w = -1, stdout_r = -1, stderr_r = -1;  // owned until a stream binds them
  int tty = -1;                                    // pty master (terminal), kept for TIOCSWINSZ
  bool bound[4] = {false, false, false, false};    // by msg::StreamKind
  bool stdin_closed = false;
  std::vector<uint64_t> pumps;
  std::vector<Waiter> waiters;
};

struct Container {
  enum class State { Created, Running, Stopped } state = State::Created;
  std::string id, bundle;
  std::vector<std::string> mounts;  // storage mount points, in mount order
  std::string cgroup;               // cgroup v2 path of the init process ("" if unknown)
  std::unique_ptr<Process> init;
  std::map<std::string, std::unique_ptr<Process>> execs;
  // RemoveContainer in progress
  bool removing = false;
  bool paused = false;  // PauseContainer froze it (runc pause); ResumeContainer thaws it
  std::vector<Waiter> remove_waiters;
  int remove_timer = -1;
  uint64_t remove_timer_tok = 0;
  // OOM watching (oom.cc): an inotify watch on the cgroup's memory.events, and its last oom_kill count
  int oom_wd = -1;
  uint64_t oom_kills = 0;
};

struct Reply { int32_t code = ttrpc::OK; std::string message, payload; bool deferred = false; };

class Agent {
 public:
  explicit Agent(Options o);
  int run();  // serves until DestroySandbox; returns the exit status

  Loop loop;
  std::unordered_map<uint64_t, std::shared_ptr<Pump>> pumps;

 private:
  struct Conn {
    int fd = -1;
    uint64_t tok = 0;
    ttrpc::FrameReader rd;
    std::string out;
  };
  struct StdioConn {
    int fd = -1;
    uint64_t tok = 0;
    std::string in;
  };

  bool listen_on(const std::string& spec, bool stdio);
  void on_accept(int lfd, bool stdio);
  void on_conn(uint64_t id, uint32_t ev);
  void conn_close(uint64_t id);
  void send(uint64_t conn, uint32_t stream, const Reply& r);
  void flush_conn(uint64_t conn);
  bool flush_blocking(uint64_t conn, int timeout_ms);
  void on_stdio(uint64_t id, uint32_t ev);
  void stdio_ack_close(uint64_t id, uint32_t code, const std::string& message);
  void on_sigchld();
  void process_exited(Process& p, int status);

  Reply dispatch(uint64_t conn, uint32_t stream, const ttrpc::Request& req);
  Reply create_sandbox(const std::string& payload);
  Reply destroy_sandbox(uint64_t conn, uint32_t stream);
  Reply create_container(const std::string& payload);
  Reply start_container(const std::string& payload);
  Reply remove_container(uint64_t conn, uint32_t stream, const std::string& payload);
  Reply exec_process(const std::string& payload);
  Reply signal_process(const std::string& payload);
  Reply wait_process(uint64_t conn, uint32_t stream, const std::string& payload);
  Reply stats_container(const std::string& payload);
  Reply list_processes(const std::string& payload);
  Reply tty_win_resize(const std::string& payload);
  Reply close_stdin(const std::string& payload);
  Reply pause_container(const std::string& payload, bool pause);
  Reply update_container(const std::string& payload);
  Reply get_oom_event(uint64_t conn, uint32_t stream, const std::string& payload);
  Reply guest_details();

  // OOM events (oom.cc): cgroup v2 memory.events "oom_kill" of each container, watched with inotify
  void oom_init();                         // the inotify fd, on the loop
  void oom_watch(Container& c);            // after create: watch <cgroup>/memory.events, read its count
  void oom_unwatch(Container& c);
  void oom_check(Container& c);            // reads the count; queues an event when it grew
  void on_inotify();
  void oom_queue(const std::string& container_id);

  // Looks up a container (and a process in it); fills r with INVALID_ARGUMENT / NOT_FOUND on failure.
  Container* find_container(const std::string& id, Reply& r);
  Process* find_process(const std::string& cid, const std::string& eid, Reply& r);
  // Creates stdio pipes or a console socket, runs runc, reads the pid file; fills p.
  bool spawn_process(Container& c, Process& p, const std::vector<std::string>& runc_args, const std::string& pid_file,
                     Reply& r);
  void finish_remove(Container& c);
  void release_process(Process& p);

  Options opt_;
  Runc runc_;
  uint64_t next_id_ = 1;
  std::unordered_map<uint64_t, Conn> conns_;
  std::unordered_map<uint64_t, StdioConn> stdio_conns_;
  std::map<std::string, std::unique_ptr<Container>> containers_;
  std::unordered_map<pid_t, Process*> by_pid_;
  std::map<pid_t, int> orphan_exits_;  // exits reaped before their pid file was read
  std::vector<std::string> sandbox_mounts_;
  int inotify_fd_ = -1;
  std::unordered_map<int, std::string> oom_wds_;  // inotify watch descriptor → container id
  std::deque<std::string> oom_events_;           // OOM events no GetOOMEvent has taken yet
  std::vector<Waiter> oom_waiters_;              // pending GetOOMEvent calls
  std::string runc_version_;
  uint32_t stdio_port_ = 1025;
  int console_seq_ = 0;
  bool destroying_ = false;
  int exit_status_ = 0;
};
