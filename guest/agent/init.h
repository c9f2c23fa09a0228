// PID 1 duties in the guest: early mounts, the boot-timer port, power-off.
#pragma once
#include <string>

// Boot timer: the guest writes the magic byte 123 to I/O port 0x440 and the VMM timestamps it
// (kata-ts shared facts). Only called when the agent runs as the guest's init.
void boot_timer_mark();
// Mounts /proc, /sys, /dev (devtmpfs), /dev/pts, /dev/shm, /sys/fs/cgroup (cgroup2), /run (tmpfs);
// enables the cgroup v2 controllers for children. Failures are logged, not fatal.
void init_mounts();
// true when "/" is the initramfs (ramfs/tmpfs), where pivot_root(2) fails with EINVAL: runc needs --no-pivot.
bool root_is_initramfs();
// sync(2), then reboot(RB_POWER_OFF) with ACPI or reboot(RB_AUTOBOOT) (a reset, which ends the VM) without; never returns.
[[noreturn]] void power_off();
