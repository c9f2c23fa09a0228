/* virtio-drv-rng: a ring-3 virtio-rng driver (virtio 1.2 §5.4) for the device in slot 0.
 * Three requests, each waited for by its interrupt: A = one 64-byte writable buffer, B = another 64-byte
 * buffer, C = a chain of two writable buffers (24 + 40 bytes). Reports, in order:
 *   0 DeviceID (4)       1 accepted features lo (0: none asked)   2 QueueNumMax
 *   3 A: used len        4 A: non-zero bytes      5 A: first u32
 *   6 B: used len        7 B: non-zero bytes      8 B: first u32     9 bytes where A and B differ
 *   10 C: used len       11 C: non-zero bytes over both buffers
 *   12 interrupts seen   13 InterruptStatus bits seen (OR)
 *   14 0x600d0a9c (done), then the host handshake */
#include "virtio-drv.h"

#define TICKS_PER_WAIT 30000000000ull

static struct vdev dev = {0};
static struct vq vq = {0};

static u32 nonzero(const u8 *p, u32 n) {
  u32 k = 0;
  for (u32 i = 0; i < n; i++) k += p[i] != 0;
  return k;
}

/* Returns the used length, or 0xffff0000 + reason. */
static u32 rng_request(const struct vbuf *bufs, int n) {
  u32 snap = irq_snapshot(&dev);
  int head = vq_add(&vq, bufs, n);
  if (head < 0) return 0xffff0001u;
  vq_kick(&dev, &vq);
  if (irq_wait(&dev, snap, TICKS_PER_WAIT) < 0) return 0xffff0002u;
  u32 len = 0;
  int id = vq_get_used(&vq, &len);
  if (id != head) return 0xffff0003u;
  return len;
}

int driver_main(void) {
  report(mmio_read(&(struct vdev){ .base = VIRTIO_MMIO_BASE }, REG_DEVICE_ID));
  u32 feats = vdev_init(&dev, VIRTIO_MMIO_BASE, 0, 0);
  report(feats);
  if (feats == 0xffffffffu) return 1;
  mmio_write(&dev, REG_QUEUE_SEL, 0);
  report(mmio_read(&dev, REG_QUEUE_NUM_MAX));
  if (vq_setup(&dev, &vq, 0, 8) < 0) return 2;
  vdev_driver_ok(&dev);

  u8 *a = alloc_pages(4096), *b = alloc_pages(4096), *c = alloc_pages(4096);
  struct vbuf ba = { a, 64, 1 };
  report(rng_request(&ba, 1));
  report(nonzero(a, 64));
  report(*(u32 *)a);
  struct vbuf bb = { b, 64, 1 };
  report(rng_request(&bb, 1));
  report(nonzero(b, 64));
  report(*(u32 *)b);
  u32 differ = 0;
  for (u32 i = 0; i < 64; i++) differ += a[i] != b[i];
  report(differ);
  struct vbuf bc[2] = { { c, 24, 1 }, { c + 2048, 40, 1 } };
  report(rng_request(bc, 2));
  report(nonzero(c, 24) + nonzero(c + 2048, 40));
  report(dev.interrupts);
  report(dev.isr_seen);
  report(0x600d0a9cu);
  host_ack_wait();
  return 0;
}
