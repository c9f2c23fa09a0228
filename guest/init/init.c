/*
 * kata-ts test init (PID 1 of the tiny test initramfs).
 *
 * 1. writes the boot-timer byte: outb(123, 0x440) — the VMM timestamps it
 *    (kata-ts shared facts: boot timer port 0x440, magic 123);
 * 2. prints the marker line KATA_TS_INIT_OK on /dev/console;
 * 3. reboots: reboot(RB_AUTOBOOT); the VMM passes `reboot=k`, so the kernel
 *    resets through the i8042 (0xFE to port 0x64) and the VM stops. Falls back
 *    to RB_POWER_OFF, then to writing 0xFE to port 0x64 itself.
 *
 * Freestanding (no libc, raw x86_64 syscalls): the binary is a few KiB, so the
 * kernel's initramfs unpacking (ring-0 gunzip, ~2000x slower on a software KVM)
 * costs nothing. Built by guest/build-initrd.sh with gcc -static -Os -nostdlib.
 */
#include <linux/reboot.h>     /* LINUX_REBOOT_MAGIC*, LINUX_REBOOT_CMD_* */
#include <sys/syscall.h>      /* __NR_* (x86_64) */

#define BOOT_TIMER_PORT 0x440 /* shared facts: boot timer port */
#define BOOT_TIMER_MAGIC 123  /* shared facts: magic byte */
#define I8042_COMMAND_PORT 0x64
#define I8042_CMD_RESET 0xFE
#define O_WRONLY 01
#define O_NOCTTY 0400
#define F_GETFD 1

typedef unsigned long ulong;

/* x86_64 syscall ABI: rax = number, args in rdi, rsi, rdx, r10, r8; rcx/r11 clobbered. */
static long sys5(long n, ulong a, ulong b, ulong c, ulong d, ulong e)
{
	long ret;
	register ulong r10 __asm__("r10") = d;
	register ulong r8 __asm__("r8") = e;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8)
			 : "rcx", "r11", "memory");
	return ret;
}
#define sys3(n, a, b, c) sys5((n), (ulong)(a), (ulong)(b), (ulong)(c), 0, 0)

static void outb(unsigned char v, unsigned short port)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static ulong len(const char *s)
{
	ulong n = 0;
	while (s[n])
		n++;
	return n;
}

static void say(long fd, const char *s)
{
	ulong n = len(s);
	while (n > 0) {
		long w = sys3(__NR_write, fd, s, n);
		if (w == -4) /* EINTR */
			continue;
		if (w <= 0)
			return;
		s += w;
		n -= (ulong)w;
	}
}

static long open_console(void)
{
	/* The kernel opens /dev/console as fds 0-2 for PID 1 when the initramfs
	 * has a /dev/console node (init/main.c console_on_rootfs); otherwise
	 * mount devtmpfs and open it there. */
	if (sys3(__NR_fcntl, 1, F_GETFD, 0) >= 0)
		return 1;
	sys3(__NR_mkdir, "/dev", 0755, 0);
	sys5(__NR_mount, (ulong)"devtmpfs", (ulong)"/dev", (ulong)"devtmpfs", 0, 0);
	return sys3(__NR_open, "/dev/console", O_WRONLY | O_NOCTTY, 0);
}

static void reboot(ulong cmd)
{
	sys5(__NR_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2, cmd, 0, 0);
}

void _start(void) __attribute__((noreturn, used));
void _start(void)
{
	int boot_timer_ok = sys3(__NR_ioperm, BOOT_TIMER_PORT, 1, 1) == 0;
	if (boot_timer_ok)
		outb(BOOT_TIMER_MAGIC, BOOT_TIMER_PORT);

	long con = open_console();
	if (con >= 0) {
		if (!boot_timer_ok)
			say(con, "kata-ts init: ioperm(0x440) failed; no boot-timer byte\n");
		say(con, "KATA_TS_INIT_OK\n");
	}

	sys3(__NR_sync, 0, 0, 0);
	reboot(LINUX_REBOOT_CMD_RESTART);   /* = RB_AUTOBOOT */
	reboot(LINUX_REBOOT_CMD_POWER_OFF); /* = RB_POWER_OFF */
	/* Last resort: pulse the i8042 reset line ourselves. */
	if (sys3(__NR_ioperm, I8042_COMMAND_PORT, 1, 1) == 0)
		outb(I8042_CMD_RESET, I8042_COMMAND_PORT);
	if (con >= 0)
		say(con, "kata-ts init: reboot failed\n");
	for (;;)
		sys3(__NR_pause, 0, 0, 0);
}
