// fsbench: the guest side of the virtio-fs benchmark (bench/fs.ts), packed by guest/build-fsbench-initrd.sh
// (static, glibc) beside guest/fsbench/init. One process per workload, so the guest pays no fork/exec
// inside a timed region; times come from CLOCK_MONOTONIC in the guest. Each command prints one line of
// `key=value` fields on stdout (ns= first: the timed part), or a message on stderr and exit status 1.
//
//   fsbench now                          print CLOCK_MONOTONIC in ns (the host compares the guest's clock
//                                        with its own over the whole run)
//   fsbench drop                         sync(), then drop the guest's page cache, dentries and inodes
//                                        (echo 3 >/proc/sys/vm/drop_caches), so the next access reaches
//                                        the FUSE server instead of the guest's caches; then wait 0.5 s
//                                        for the servers to take the FORGETs the drop sent (so that work
//                                        is not timed with the next workload)
//   fsbench seqread FILE                 read FILE to its end in 1 MiB read(2)s: ns= bytes=
//   fsbench smallfiles DIR N SIZE        mkdir DIR (untimed), then three timed phases, each after a drop:
//                                        create N files of SIZE bytes (open O_CREAT|O_EXCL, write, close),
//                                        stat(2) each, read each (open, read, close; checks the size):
//                                        ns= create_ns= stat_ns= read_ns= files=
//   fsbench walk DIR                     `ls -lR` of DIR: readdir every directory and lstat (fstatat
//                                        AT_SYMLINK_NOFOLLOW) every entry, recursively: ns= entries= dirs=
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define READ_CHUNK (1u << 20)
#define MAX_FILES 100000u
#define MAX_SIZE (1u << 20)
#define SETTLE_US 500000u

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int fail(const char *what, const char *arg) {
  fprintf(stderr, "fsbench: %s %s: %s\n", what, arg, strerror(errno));
  return 1;
}

static int parse_u32(const char *s, uint32_t *out) {
  char *end;
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (errno || *s == '\0' || *end != '\0' || v > 0xffffffffUL) return -1;
  *out = (uint32_t)v;
  return 0;
}

static int drop_caches(void) {
  sync();
  int fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
  if (fd < 0) return fail("open", "/proc/sys/vm/drop_caches");
  int ok = write(fd, "3\n", 2) == 2;
  close(fd);
  if (!ok) return fail("write", "/proc/sys/vm/drop_caches");
  usleep(SETTLE_US);
  return 0;
}

static int cmd_seqread(const char *path) {
  char *buf = malloc(READ_CHUNK);
  if (buf == NULL) return fail("malloc", "read buffer");
  uint64_t t0 = now_ns();
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail("open", path);
  uint64_t total = 0;
  for (;;) {
    ssize_t n = read(fd, buf, READ_CHUNK);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail("read", path);
    }
    if (n == 0) break;
    total += (uint64_t)n;
  }
  close(fd);
  uint64_t t1 = now_ns();
  printf("ns=%llu bytes=%llu\n", (unsigned long long)(t1 - t0), (unsigned long long)total);
  free(buf);
  return 0;
}

static int cmd_smallfiles(const char *dir, uint32_t n, uint32_t size) {
  if (n == 0 || n > MAX_FILES || size > MAX_SIZE) {
    fprintf(stderr, "fsbench: smallfiles wants 1..%u files of at most %u bytes\n", MAX_FILES, MAX_SIZE);
    return 1;
  }
  char *buf = malloc(size + 1);
  if (buf == NULL) return fail("malloc", "file buffer");
  for (uint32_t i = 0; i < size; i++) buf[i] = (char)('a' + i % 26);
  if (mkdir(dir, 0755) != 0) return fail("mkdir", dir);
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return fail("open", dir);
  char name[32];

  if (drop_caches() != 0) return 1;
  uint64_t t0 = now_ns();
  for (uint32_t i = 0; i < n; i++) {
    snprintf(name, sizeof name, "f%05u", i);
    int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return fail("create", name);
    if (write(fd, buf, size) != (ssize_t)size) return fail("write", name);
    if (close(fd) != 0) return fail("close", name);
  }
  uint64_t t1 = now_ns();

  // the directory fd pins only the directory: the files' dentries and inodes go with the drop
  if (drop_caches() != 0) return 1;
  uint64_t t2 = now_ns();
  for (uint32_t i = 0; i < n; i++) {
    struct stat st;
    snprintf(name, sizeof name, "f%05u", i);
    if (fstatat(dfd, name, &st, 0) != 0) return fail("stat", name);
    if (st.st_size != (off_t)size) {
      fprintf(stderr, "fsbench: %s has %lld bytes, wrote %u\n", name, (long long)st.st_size, size);
      return 1;
    }
  }
  uint64_t t3 = now_ns();

  if (drop_caches() != 0) return 1;
  uint64_t t4 = now_ns();
  for (uint32_t i = 0; i < n; i++) {
    snprintf(name, sizeof name, "f%05u", i);
    int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail("open", name);
    ssize_t got = read(fd, buf, size + 1);
    if (got != (ssize_t)size) {
      fprintf(stderr, "fsbench: read %zd bytes of %s, wrote %u\n", got, name, size);
      return 1;
    }
    close(fd);
  }
  uint64_t t5 = now_ns();
  close(dfd);
  free(buf);
  uint64_t c = t1 - t0, s = t3 - t2, r = t5 - t4;
  printf("ns=%llu create_ns=%llu stat_ns=%llu read_ns=%llu files=%u\n", (unsigned long long)(c + s + r), (unsigned long long)c,
         (unsigned long long)s, (unsigned long long)r, n);
  return 0;
}

struct walk_count {
  uint64_t entries;
  uint64_t dirs;
};

/** readdir `dfd` (consumed) and lstat every entry, descending into directories. */
static int walk(int dfd, const char *path, struct walk_count *c, int depth) {
  if (depth > 64) {
    fprintf(stderr, "fsbench: %s: deeper than 64 levels\n", path);
    return 1;
  }
  DIR *d = fdopendir(dfd);
  if (d == NULL) return fail("fdopendir", path);
  c->dirs++;
  struct dirent *e;
  int rc = 0;
  errno = 0;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    struct stat st;
    if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      rc = fail("lstat", e->d_name);
      break;
    }
    c->entries++;
    if (S_ISDIR(st.st_mode)) {
      int sub = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub < 0) {
        rc = fail("open", e->d_name);
        break;
      }
      if ((rc = walk(sub, e->d_name, c, depth + 1)) != 0) break;
    }
    errno = 0;
  }
  if (rc == 0 && errno != 0) rc = fail("readdir", path);
  closedir(d);
  return rc;
}

static int cmd_walk(const char *dir) {
  struct walk_count c = {0, 0};
  uint64_t t0 = now_ns();
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return fail("open", dir);
  if (walk(dfd, dir, &c, 0) != 0) return 1;
  uint64_t t1 = now_ns();
  printf("ns=%llu entries=%llu dirs=%llu\n", (unsigned long long)(t1 - t0), (unsigned long long)c.entries, (unsigned long long)c.dirs);
  return 0;
}

static int usage(void) {
  fprintf(stderr, "usage: fsbench now | drop | seqread FILE | smallfiles DIR N SIZE | walk DIR\n");
  return 2;
}

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "now") == 0) {
    printf("%llu\n", (unsigned long long)now_ns());
    return 0;
  }
  if (argc == 2 && strcmp(argv[1], "drop") == 0) return drop_caches();
  if (argc == 3 && strcmp(argv[1], "seqread") == 0) return cmd_seqread(argv[2]);
  if (argc == 3 && strcmp(argv[1], "walk") == 0) return cmd_walk(argv[2]);
  if (argc == 5 && strcmp(argv[1], "smallfiles") == 0) {
    uint32_t n, size;
    if (parse_u32(argv[3], &n) != 0 || parse_u32(argv[4], &size) != 0) return usage();
    return cmd_smallfiles(argv[2], n, size);
  }
  return usage();
}
