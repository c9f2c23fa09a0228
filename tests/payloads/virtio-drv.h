/* virtio-drv.h: a tiny freestanding virtio-mmio (modern, version 2) split-queue driver for the ring-3
 * device payloads (virtio-drv-*.c, entered from virtio-drv-entry.S). Polls nothing it need not: a request is
 * made available, QueueNotify goes out (ioeventfd), and the driver waits for the device's interrupt (irqfd ->
 * IOAPIC -> the ring-0 counter in irq_counts) before it looks at the used ring.
 * References: virtio 1.2 §4.2.2 (MMIO registers), §3.1.1 (driver init), §2.7 (split virtqueues),
 * include/uapi/linux/virtio_mmio.h, virtio_ring.h. */
#ifndef VIRTIO_DRV_H
#define VIRTIO_DRV_H

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef unsigned long uptr;

#define VIRTIO_MMIO_BASE 0xd0000000ul /* slot 0 (src/vmm/device-manager.ts) */
#define VIRTIO_MMIO_SLOT 0x1000ul

/* include/uapi/linux/virtio_mmio.h */
#define REG_MAGIC 0x000
#define REG_VERSION 0x004
#define REG_DEVICE_ID 0x008
#define REG_DEVICE_FEATURES 0x010
#define REG_DEVICE_FEATURES_SEL 0x014
#define REG_DRIVER_FEATURES 0x020
#define REG_DRIVER_FEATURES_SEL 0x024
#define REG_QUEUE_SEL 0x030
#define REG_QUEUE_NUM_MAX 0x034
#define REG_QUEUE_NUM 0x038
#define REG_QUEUE_READY 0x044
#define REG_QUEUE_NOTIFY 0x050
#define REG_INTERRUPT_STATUS 0x060
#define REG_INTERRUPT_ACK 0x064
#define REG_STATUS 0x070
#define REG_QUEUE_DESC_LOW 0x080
#define REG_QUEUE_DESC_HIGH 0x084
#define REG_QUEUE_DRIVER_LOW 0x090
#define REG_QUEUE_DRIVER_HIGH 0x094
#define REG_QUEUE_DEVICE_LOW 0x0a0
#define REG_QUEUE_DEVICE_HIGH 0x0a4
#define REG_CONFIG 0x100

/* include/uapi/linux/virtio_config.h */
#define STATUS_ACKNOWLEDGE 1
#define STATUS_DRIVER 2
#define STATUS_DRIVER_OK 4
#define STATUS_FEATURES_OK 8
#define F_VERSION_1_HI 1u /* bit 32: bit 0 of DeviceFeatures with DeviceFeaturesSel = 1 */

/* include/uapi/linux/virtio_ring.h */
#define VRING_DESC_F_NEXT 1
#define VRING_DESC_F_WRITE 2

struct vring_desc { u64 addr; u32 len; u16 flags; u16 next; };
struct vring_used_elem { u32 id; u32 len; };

#define VQ_MAX 64

struct vq {
  u16 index;     /* queue index */
  u16 size;      /* entries, a power of two */
  u16 next_avail;/* our avail.idx shadow */
  u16 last_used; /* next used entry to look at */
  u16 free_head; /* free descriptor list */
  u16 num_free;
  struct vring_desc *desc;
  volatile u16 *avail; /* flags, idx, ring[size], used_event */
  volatile u16 *used_hdr; /* flags, idx */
  volatile struct vring_used_elem *used_ring;
  u16 chain_len[VQ_MAX]; /* descriptors per chain, by head */
};

struct vdev {
  uptr base;     /* MMIO base */
  u32 irq_slot;  /* index into irq_counts (GSI 5 + slot) */
  u32 seen_irqs; /* irq_counts value already handled */
  u32 isr_seen;  /* InterruptStatus bits seen so far (OR) */
  u32 interrupts;/* interrupts waited for and seen */
};

/* One buffer of a chain: guest-physical address (identity-mapped), length, device-writable or not. */
struct vbuf { const void *addr; u32 len; int writable; };

/* I/O: ring 3's `out` faults on kvm_pvm and the ring-0 #GP handler performs it (virtio-drv-entry.S). */
void report(u32 v);          /* test value port 0xea */
void puts_dbg(const char *s);/* debug console 0xe9 */
u64 rdtsc(void);

static inline u32 mmio_read(struct vdev *d, u32 off) { return *(volatile u32 *)(d->base + off); }
static inline void mmio_write(struct vdev *d, u32 off, u32 v) { *(volatile u32 *)(d->base + off) = v; }
static inline u8 mmio_read8(struct vdev *d, u32 off) { return *(volatile u8 *)(d->base + off); }
#define barrier() __asm__ volatile("" ::: "memory")

void *memset(void *d, int c, unsigned long n);
void *memcpy(void *d, const void *s, unsigned long n);
int memcmp(const void *a, const void *b, unsigned long n);

/* The host's handshake word: after its done marker a driver waits here until the host (which reads the
 * device counters meanwhile) writes a non-zero value; then it exits. */
#define HOST_ACK_ADDR 0x01fff000ul
void host_ack_wait(void);

/* A bump allocator over guest RAM above the payload image (identity-mapped, zeroed by the VMM). */
void *alloc_pages(u32 bytes);

/* Reset, ACKNOWLEDGE, DRIVER, features (VERSION_1 + want_lo & device's), FEATURES_OK. Returns the
 * accepted low feature word, or 0xffffffff when the device refused FEATURES_OK. */
u32 vdev_init(struct vdev *d, uptr base, u32 irq_slot, u32 want_lo);
/* Set up queue `index` with min(size, QueueNumMax) entries (QueueNumMax 0: returns -1). */
int vq_setup(struct vdev *d, struct vq *q, u16 index, u16 size);
void vdev_driver_ok(struct vdev *d);
/* Make a chain available (descriptors in order: readable first). Returns the head, or -1 when full. */
int vq_add(struct vq *q, const struct vbuf *bufs, int n);
void vq_kick(struct vdev *d, struct vq *q);
/* Next used element: returns its head and sets *len, or -1 when none; the chain's descriptors are freed. */
int vq_get_used(struct vq *q, u32 *len);
/* Interrupts: snapshot the counter, then wait for it to move (read + ack InterruptStatus from ring 3).
 * Returns 0, or -1 after `max_ticks` TSC ticks without an interrupt (0: wait forever). */
u32 irq_snapshot(struct vdev *d);
int irq_wait(struct vdev *d, u32 snapshot, u64 max_ticks);

#endif
