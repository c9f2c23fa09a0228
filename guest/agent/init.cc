#include "init.h"

#include <errno.h>
#include <sys/io.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cstdlib>

#include "util.h"

void boot_timer_mark() {
  // ioperm(2) grants ring-3 access to port 0x440; outb is then a plain port write.
  if (ioperm(0x440, 1, 1) != 0) {
    log_warn("boot timer: ioperm(0x440): " + errno_text(errno));
    return;
  }
  outb(123, 0x440);
}

static void mount_one(const char* src, const char* target, const char* fstype, unsigned long flags, const char* data) {
  mkdir_p(target, 0755);
  if (mount(src, target, fstype, flags, data) != 0 && errno != EBUSY)
    log_warn(std::string("mount ") + fstype + " at " + target + ": " + errno_text(errno));
}

void init_mounts() {
  const unsigned long nse = MS_NOSUID | MS_NODEV | MS_NOEXEC;
  mount_one("proc", "/proc", "proc", nse, nullptr);
  mount_one("sysfs", "/sys", "sysfs", nse, nullptr);
  mount_one("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
  mount_one("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620");
  mount_one("shm", "/dev/shm", "tmpfs", nse, "mode=1777");
  mount_one("cgroup2", "/sys/fs/cgroup", "cgroup2", nse, nullptr);
  mount_one("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
  mkdir_p("/tmp", 01777);
  // cgroup v2 (Documentation/admin-guide/cgroup-v2.rst "Enabling and Disabling"): controllers must be
  // enabled in the parent's subtree_control before runc can use them in a child cgroup.
  std::string avail, err;
  if (read_file("/sys/fs/cgroup/cgroup.controllers", avail, 4096)) {
    std::string enable;
    size_t i = 0;
    while (i < avail.size()) {
      size_t j = avail.find_first_of(" \n", i);
      if (j == std::string::npos) j = avail.size();
      if (j > i) enable += (enable.empty() ? "+" : " +") + avail.substr(i, j - i);
      i = j + 1;
    }
    if (!enable.empty() && !write_file("/sys/fs/cgroup/cgroup.subtree_control", enable, err))
      log_warn("cgroup controllers: " + err);
  }
  setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 1);
}

bool root_is_initramfs() {
  struct statfs s{};
  if (statfs("/", &s) != 0) return false;
  return s.f_type == 0x858458f6 /* RAMFS_MAGIC */ || s.f_type == 0x01021994 /* TMPFS_MAGIC */;
}

void power_off() {
  sync();
  // kernel/reboot.c: without a power-off method (no ACPI, e.g. QEMU microvm acpi=off or the kata-ts inproc
  // VMM) RB_POWER_OFF silently becomes a halt and the VM never exits. There, reset instead: with reboot=k the
  // kernel pulses the i8042 reset line (0xFE to port 0x64), which kata-ts's VMM and QEMU -no-reboot treat as
  // the end of the VM, as Firecracker does.
  struct stat st{};
  bool acpi = stat("/sys/firmware/acpi", &st) == 0;
  log_info(acpi ? "power off (ACPI)" : "no ACPI: resetting the VM to end it (reboot=k)");
  reboot(acpi ? RB_POWER_OFF : RB_AUTOBOOT);
  for (;;) pause();
}
