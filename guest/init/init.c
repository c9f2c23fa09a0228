/*
 * kata-ts test init (PID 1 of the tiny test initramfs).
 *
 * 1. writes the boot-timer byte: outb(123, 0x440) — the VMM timestamps it
 *    (kata-ts shared facts: boot timer port 0x440, magic 123);
 * 2. prints the marker line KATA_TS_INIT_OK on /dev/console;
 * 3. reboots: reboot(RB_AUTOBOOT); the VMM passes `reboot=k`, so the kernel
 *    resets through the i8042 (0xFE to port 0x64) and the VM stops. Falls back
 *    to RB_POWER_OFF, and finally to writing 0xFE to port 0x64 itself.
 *
 * Static, no libc buffering surprises: only raw syscalls through libc wrappers.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/io.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <unistd.h>

#define BOOT_TIMER_PORT 0x440 /* shared facts: boot timer port */
#define BOOT_TIMER_MAGIC 123  /* shared facts: magic byte */
#define I8042_COMMAND_PORT 0x64
#define I8042_CMD_RESET 0xFE

static const char MARKER[] = "KATA_TS_INIT_OK\n";

static void write_all(int fd, const char *s, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, s, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		s += n;
		len -= (size_t)n;
	}
}

static void say(int fd, const char *s)
{
	write_all(fd, s, strlen(s));
}

static int open_console(void)
{
	/* The kernel opens /dev/console as fds 0-2 for PID 1 when the initramfs
	 * has a /dev/console node; prefer that, else mount devtmpfs and open it. */
	if (fcntl(1, F_GETFD) >= 0)
		return 1;
	mkdir("/dev", 0755);
	mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
	int fd = open("/dev/console", O_WRONLY | O_NOCTTY);
	return fd;
}

int main(void)
{
	int boot_timer_ok = ioperm(BOOT_TIMER_PORT, 1, 1) == 0;
	if (boot_timer_ok)
		outb(BOOT_TIMER_MAGIC, BOOT_TIMER_PORT);

	int con = open_console();
	if (con >= 0) {
		if (!boot_timer_ok)
			say(con, "kata-ts init: ioperm(0x440) failed; no boot-timer byte\n");
		write_all(con, MARKER, sizeof(MARKER) - 1);
	}

	sync();
	reboot(RB_AUTOBOOT);
	reboot(RB_POWER_OFF);
	/* Last resort: pulse the i8042 reset line ourselves. */
	if (ioperm(I8042_COMMAND_PORT, 1, 1) == 0)
		outb(I8042_CMD_RESET, I8042_COMMAND_PORT);
	if (con >= 0)
		say(con, "kata-ts init: reboot failed\n");
	for (;;)
		pause();
}
