// vsock-tool: the kata-ts device-test initramfs's AF_VSOCK and pattern helper (static, glibc).
//
//   vsock-tool echo CID PORT N      connect to CID:PORT, echo the first N bytes read back to the peer,
//                                   then close; prints "echoed <n>"; exit 0 only if all N came and went
//   vsock-tool serve PORT [SECS]    listen on PORT (any CID), print "LISTENING <port>" once listening,
//                                   accept one connection, read one line L (max 200 bytes), answer
//                                   "pong <L>\n", close; prints "served <L>"; gives up after SECS
//                                   (default 240)
//   vsock-tool pattern N SEED       write N bytes of the xorshift32 stream of SEED to stdout (the test
//                                   recomputes it on the host: tests/hypervisor/devtest-guest.ts)
//
// AF_VSOCK: linux/vm_sockets.h (struct sockaddr_vm, VMADDR_CID_ANY). Every wait is bounded by alarm(), so
// a missing peer fails the check instead of hanging the guest.
#include <errno.h>
#include <linux/vm_sockets.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define TIMEOUT_S 240

static int die(const char *what) {
  fprintf(stderr, "vsock-tool: %s: %s\n", what, strerror(errno));
  return 1;
}

static int parse_u32(const char *s, uint32_t *out) {
  char *end;
  errno = 0;
  unsigned long v = strtoul(s, &end, 0);
  if (errno || *s == '\0' || *end != '\0' || v > 0xffffffffUL) return -1;
  *out = (uint32_t)v;
  return 0;
}

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static int cmd_echo(uint32_t cid, uint32_t port, uint32_t n) {
  int fd = -1;
  struct sockaddr_vm sa = {.svm_family = AF_VSOCK, .svm_cid = cid, .svm_port = port};
  // the host may start listening a little after the guest gets here: retry refused connects
  for (int tries = 0;; tries++) {
    fd = socket(AF_VSOCK, SOCK_STREAM, 0);
    if (fd < 0) return die("socket(AF_VSOCK)");
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) break;
    if ((errno != ECONNREFUSED && errno != ECONNRESET) || tries >= 100) return die("connect");
    close(fd);
    usleep(100000);
  }
  static char buf[65536];
  uint32_t done = 0;
  while (done < n) {
    size_t want = n - done < sizeof buf ? n - done : sizeof buf;
    ssize_t r = read(fd, buf, want);
    if (r < 0) {
      if (errno == EINTR) continue;
      return die("read");
    }
    if (r == 0) break;
    if (write_all(fd, buf, (size_t)r) < 0) return die("write");
    done += (uint32_t)r;
  }
  printf("echoed %u\n", done);
  shutdown(fd, SHUT_WR);
  // wait for the host to close its side, so our last bytes are not lost to an early close
  while (read(fd, buf, sizeof buf) > 0) {
  }
  close(fd);
  return done == n ? 0 : 1;
}

static int cmd_serve(uint32_t port) {
  int fd = socket(AF_VSOCK, SOCK_STREAM, 0);
  if (fd < 0) return die("socket(AF_VSOCK)");
  struct sockaddr_vm sa = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port};
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) return die("bind");
  if (listen(fd, 1) < 0) return die("listen");
  printf("LISTENING %u\n", port);
  fflush(stdout);
  int c = accept(fd, NULL, NULL);
  if (c < 0) return die("accept");
  char line[201];
  size_t len = 0;
  while (len < sizeof line - 1) {
    ssize_t r = read(c, line + len, 1);
    if (r < 0) {
      if (errno == EINTR) continue;
      return die("read");
    }
    if (r == 0 || line[len] == '\n') break;
    len++;
  }
  line[len] = '\0';
  char reply[220];
  int m = snprintf(reply, sizeof reply, "pong %s\n", line);
  if (write_all(c, reply, (size_t)m) < 0) return die("write");
  printf("served %s\n", line);
  close(c);
  close(fd);
  return 0;
}

static int cmd_pattern(uint32_t n, uint32_t seed) {
  // xorshift32 (Marsaglia 2003); a zero state would stay zero
  uint32_t x = seed ? seed : 0x9e3779b9u;
  static unsigned char buf[65536];
  while (n > 0) {
    size_t k = n < sizeof buf ? n : sizeof buf;
    for (size_t i = 0; i < k; i++) {
      x ^= x << 13;
      x ^= x >> 17;
      x ^= x << 5;
      buf[i] = (unsigned char)(x >> 24);
    }
    if (write_all(1, (const char *)buf, k) < 0) return die("write");
    n -= (uint32_t)k;
  }
  return 0;
}

static int usage(void) {
  fprintf(stderr, "usage: vsock-tool echo CID PORT N | serve PORT [SECS] | pattern N SEED\n");
  return 2;
}

int main(int argc, char **argv) {
  uint32_t a, b, c;
  alarm(TIMEOUT_S);
  if (argc == 5 && strcmp(argv[1], "echo") == 0 && !parse_u32(argv[2], &a) && !parse_u32(argv[3], &b) && !parse_u32(argv[4], &c))
    return cmd_echo(a, b, c);
  if ((argc == 3 || argc == 4) && strcmp(argv[1], "serve") == 0 && !parse_u32(argv[2], &a)) {
    if (argc == 4) {
      if (parse_u32(argv[3], &b) || b == 0) return usage();
      alarm(b);
    }
    return cmd_serve(a);
  }
  if (argc == 4 && strcmp(argv[1], "pattern") == 0 && !parse_u32(argv[2], &a) && !parse_u32(argv[3], &b)) {
    alarm(0);
    return cmd_pattern(a, b);
  }
  return usage();
}
