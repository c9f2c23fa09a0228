// kata-ts-agent: the guest agent (PID 1 in the kata-ts guest). See src/agent/agent.proto.
//
//   kata-ts-agent                         as the guest's init: mounts, boot timer, vsock 1024/1025
//   kata-ts-agent --listen unix:/tmp/a.sock [--stdio-listen unix:PATH] --state-dir DIR [--runc PATH]
//                                         on a host, for tests (no mounts, no power-off; exits on DestroySandbox)
#include <sys/prctl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "agent.h"
#include "init.h"
#include "util.h"

static void usage() {
  fprintf(stderr,
          "usage: kata-ts-agent [--listen vsock:PORT|unix:PATH] [--stdio-listen vsock:PORT|unix:PATH]\n"
          "                     [--state-dir DIR] [--runc PATH] [--init|--no-init] [--no-pivot|--pivot]\n"
          "defaults: --listen vsock:1024 --stdio-listen vsock:1025 (unix: <listen path>.stdio) --state-dir /run/kata-ts;\n"
          "          --init when running as PID 1\n");
}

int main(int argc, char** argv) {
  Options o;
  o.init = getpid() == 1;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto value = [&](std::string& dst) {
      if (i + 1 >= argc) { fprintf(stderr, "kata-ts-agent: %s needs a value\n", a.c_str()); usage(); _exit(2); }
      dst = argv[++i];
    };
    if (a == "--listen") value(o.listen);
    else if (a == "--stdio-listen") value(o.stdio_listen);
    else if (a == "--state-dir") value(o.state_dir);
    else if (a == "--runc") value(o.runc);
    else if (a == "--init") o.init = true;
    else if (a == "--no-init") o.init = false;
    else if (a == "--no-pivot") o.no_pivot = 1;
    else if (a == "--pivot") o.no_pivot = 0;
    else if (a == "--help" || a == "-h") { usage(); return 0; }
    else if (a == "--version") { printf("kata-ts-agent 0.1.0\n"); return 0; }
    else { fprintf(stderr, "kata-ts-agent: unknown argument %s\n", a.c_str()); usage(); return 2; }
  }
  if (o.init) {
    boot_timer_mark();  // first boot-timer write: the agent started
    init_mounts();
  } else {
    // Host mode: become the subreaper so container processes that runc leaves behind are our children.
    prctl(PR_SET_CHILD_SUBREAPER, 1);
  }
  log_info(std::string("kata-ts-agent starting") + (o.init ? " as init" : " in host mode"));
  Agent agent(o);
  int rc = agent.run();
  if (o.init) {
    log_error("agent stopped serving; powering off");
    power_off();  // PID 1 must never exit (the kernel would panic)
  }
  return rc;
}
