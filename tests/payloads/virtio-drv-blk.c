/* virtio-drv-blk: a ring-3 virtio-blk driver (virtio 1.2 §5.2) for the device in slot 0.
 * Reports, in order (test value port):
 *   0  DeviceID (2)                 1  accepted feature bits 0..31 (0xffffffff: FEATURES_OK refused)
 *   2  capacity lo (sectors)        3  capacity hi
 *   4  GET_ID status                5  first 4 id bytes (little-endian)
 *   6  read of HOST_SECTOR: status  7  its first u32 (the test wrote "HOST" data there)
 *   8  write of PATTERN_SECTOR: status, used len
 *   10 read back: status            11 mismatching bytes against the pattern
 *   12 FLUSH status                 13 read at sector = capacity (past the end): status
 *   14 interrupts seen (one per request: 6) 15 InterruptStatus bits seen (OR)
 *   16 0x600db10c (done), then the host handshake (virtio-drv.h HOST_ACK_ADDR)
 * Each request: header (readable) -> data -> status byte (writable), one chain, QueueNotify, wait for the
 * interrupt, then the used ring. Exit 0 when the driver ran to its end (the test judges the values). */
#include "virtio-drv.h"

#define VIRTIO_ID_BLOCK 2
#define VIRTIO_BLK_F_RO (1u << 5)
#define VIRTIO_BLK_F_FLUSH (1u << 9)
#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8

#define PATTERN_SECTOR 24u
#define PATTERN_BYTES 4096u
#define HOST_SECTOR 8u
#define TICKS_PER_WAIT 30000000000ull /* ~10 s at 3 GHz: a lost interrupt fails instead of hanging */

struct blk_req_hdr { u32 type; u32 reserved; u64 sector; };

static struct vdev dev = {0};
static struct vq vq = {0};

/* One request: returns the status byte, or 0x100 + reason when the transport misbehaved. *used_len gets the
 * used length. */
static u32 blk_request(u32 type, u64 sector, void *data, u32 len, int data_writable, u32 *used_len) {
  struct blk_req_hdr *hdr = alloc_pages(4096); /* fresh, never reused: simple and plenty of RAM */
  volatile u8 *status = (volatile u8 *)((uptr)hdr + 64);
  hdr->type = type;
  hdr->reserved = 0;
  hdr->sector = sector;
  *status = 0xee;
  struct vbuf bufs[3];
  int n = 0;
  bufs[n++] = (struct vbuf){ hdr, sizeof *hdr, 0 };
  if (len) bufs[n++] = (struct vbuf){ data, len, data_writable };
  bufs[n++] = (struct vbuf){ (const void *)status, 1, 1 };
  u32 snap = irq_snapshot(&dev);
  int head = vq_add(&vq, bufs, n);
  if (head < 0) return 0x101;
  vq_kick(&dev, &vq);
  /* one request in flight, no EVENT_IDX, no NO_INTERRUPT: exactly one interrupt per request, and the
   * device fills the used ring before it signals the irqfd */
  if (irq_wait(&dev, snap, TICKS_PER_WAIT) < 0) return 0x102;
  u32 got_len = 0;
  int id = vq_get_used(&vq, &got_len);
  if (id != head) return 0x103;
  if (used_len) *used_len = got_len;
  return *status;
}

int driver_main(void) {
  report(mmio_read(&(struct vdev){ .base = VIRTIO_MMIO_BASE }, REG_DEVICE_ID));
  u32 feats = vdev_init(&dev, VIRTIO_MMIO_BASE, 0, VIRTIO_BLK_F_RO | VIRTIO_BLK_F_FLUSH);
  report(feats);
  if (feats == 0xffffffffu) return 1;
  /* struct virtio_blk_config: le64 capacity at 0 (§5.2.4) */
  report(mmio_read(&dev, REG_CONFIG));
  report(mmio_read(&dev, REG_CONFIG + 4));
  u64 capacity = ((u64)mmio_read(&dev, REG_CONFIG + 4) << 32) | mmio_read(&dev, REG_CONFIG);
  if (vq_setup(&dev, &vq, 0, 16) < 0) return 2;
  vdev_driver_ok(&dev);

  u8 *id = alloc_pages(4096);
  report(blk_request(VIRTIO_BLK_T_GET_ID, 0, id, 20, 1, 0));
  report((u32)id[0] | (u32)id[1] << 8 | (u32)id[2] << 16 | (u32)id[3] << 24);

  u8 *host = alloc_pages(4096);
  report(blk_request(VIRTIO_BLK_T_IN, HOST_SECTOR, host, 512, 1, 0));
  report(*(u32 *)host);

  u8 *pattern = alloc_pages(PATTERN_BYTES);
  for (u32 i = 0; i < PATTERN_BYTES; i++) pattern[i] = (u8)(i * 7u + 0x5au + (i >> 9));
  u32 used = 0;
  report(blk_request(VIRTIO_BLK_T_OUT, PATTERN_SECTOR, pattern, PATTERN_BYTES, 0, &used));
  report(used);

  u8 *back = alloc_pages(PATTERN_BYTES);
  memset(back, 0xcc, PATTERN_BYTES);
  report(blk_request(VIRTIO_BLK_T_IN, PATTERN_SECTOR, back, PATTERN_BYTES, 1, 0));
  u32 bad = 0;
  for (u32 i = 0; i < PATTERN_BYTES; i++) bad += back[i] != pattern[i];
  report(bad);

  report(blk_request(VIRTIO_BLK_T_FLUSH, 0, 0, 0, 0, 0));
  u8 *past = alloc_pages(4096);
  report(blk_request(VIRTIO_BLK_T_IN, capacity, past, 512, 1, 0));

  report(dev.interrupts);
  report(dev.isr_seen);
  report(0x600db10cu);
  host_ack_wait();
  return 0;
}
