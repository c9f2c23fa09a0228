/* virtio-drv-lib.c: the ring-3 virtio-mmio driver core shared by the virtio-drv-*.c payloads (see virtio-drv.h). */
#include "virtio-drv.h"

extern volatile u32 irq_counts[]; /* virtio-drv-entry.S: bumped by the ring-0 interrupt handler */

/* RAM for rings and buffers: 32 MiB .. 96 MiB (the payload image sits at 1 MiB; tests give 128 MiB). */
#define HEAP_START 0x02000000ul
#define HEAP_END 0x06000000ul
static uptr heap = HEAP_START;

void *alloc_pages(u32 bytes) {
  uptr p = heap;
  heap += (bytes + 4095ul) & ~4095ul;
  if (heap > HEAP_END) {
    puts_dbg("alloc_pages: out of memory\n");
    report(0xdead0001u);
    for (;;) __asm__ volatile("outb %%al, $0xf4" ::"a"(0x7d));
  }
  return (void *)p;
}

void *memset(void *d, int c, unsigned long n) {
  u8 *p = d;
  while (n--) *p++ = (u8)c;
  return d;
}

void *memcpy(void *d, const void *s, unsigned long n) {
  /* 8 bytes at a time where both line up: the vsock echo moves a MiB each way */
  u8 *dp = d;
  const u8 *sp = s;
  if ((((uptr)dp | (uptr)sp) & 7) == 0) {
    for (; n >= 8; n -= 8, dp += 8, sp += 8) *(u64 *)dp = *(const u64 *)sp;
  }
  while (n--) *dp++ = *sp++;
  return d;
}

int memcmp(const void *a, const void *b, unsigned long n) {
  const u8 *x = a, *y = b;
  for (; n; n--, x++, y++)
    if (*x != *y) return *x < *y ? -1 : 1;
  return 0;
}

void report(u32 v) {
  __asm__ volatile("outl %%eax, %%dx" ::"a"(v), "d"(0xea) : "memory");
}

void puts_dbg(const char *s) {
  for (; *s; s++) __asm__ volatile("outb %%al, %%dx" ::"a"(*s), "d"(0xe9) : "memory");
}

u64 rdtsc(void) {
  u32 lo, hi;
  __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
  return ((u64)hi << 32) | lo;
}

u32 vdev_init(struct vdev *d, uptr base, u32 irq_slot, u32 want_lo) {
  d->base = base;
  d->irq_slot = irq_slot;
  d->seen_irqs = irq_counts[irq_slot];
  d->isr_seen = 0;
  d->interrupts = 0;
  /* virtio 1.2 §3.1.1 */
  mmio_write(d, REG_STATUS, 0);
  mmio_write(d, REG_STATUS, STATUS_ACKNOWLEDGE);
  mmio_write(d, REG_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
  mmio_write(d, REG_DEVICE_FEATURES_SEL, 0);
  u32 lo = mmio_read(d, REG_DEVICE_FEATURES) & want_lo;
  mmio_write(d, REG_DEVICE_FEATURES_SEL, 1);
  u32 hi = mmio_read(d, REG_DEVICE_FEATURES) & F_VERSION_1_HI;
  mmio_write(d, REG_DRIVER_FEATURES_SEL, 0);
  mmio_write(d, REG_DRIVER_FEATURES, lo);
  mmio_write(d, REG_DRIVER_FEATURES_SEL, 1);
  mmio_write(d, REG_DRIVER_FEATURES, hi);
  mmio_write(d, REG_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK);
  if (!(mmio_read(d, REG_STATUS) & STATUS_FEATURES_OK)) return 0xffffffffu;
  return lo;
}

int vq_setup(struct vdev *d, struct vq *q, u16 index, u16 size) {
  mmio_write(d, REG_QUEUE_SEL, index);
  u32 max = mmio_read(d, REG_QUEUE_NUM_MAX);
  if (max == 0) return -1;
  if (size > max) size = (u16)max;
  if (size > VQ_MAX) size = VQ_MAX;
  q->index = index;
  q->size = size;
  q->next_avail = 0;
  q->last_used = 0;
  /* §2.7: descriptor table 16-byte, avail 2-byte, used 4-byte aligned; one page each is plenty */
  q->desc = alloc_pages(16u * size);
  q->avail = alloc_pages(6u + 2u * size);
  q->used_hdr = alloc_pages(6u + 8u * size);
  q->used_ring = (volatile struct vring_used_elem *)((uptr)q->used_hdr + 4);
  for (u16 i = 0; i < size; i++) q->desc[i].next = (u16)(i + 1);
  q->free_head = 0;
  q->num_free = size;
  mmio_write(d, REG_QUEUE_NUM, size);
  mmio_write(d, REG_QUEUE_DESC_LOW, (u32)(uptr)q->desc);
  mmio_write(d, REG_QUEUE_DESC_HIGH, 0);
  mmio_write(d, REG_QUEUE_DRIVER_LOW, (u32)(uptr)q->avail);
  mmio_write(d, REG_QUEUE_DRIVER_HIGH, 0);
  mmio_write(d, REG_QUEUE_DEVICE_LOW, (u32)(uptr)q->used_hdr);
  mmio_write(d, REG_QUEUE_DEVICE_HIGH, 0);
  mmio_write(d, REG_QUEUE_READY, 1);
  return 0;
}

void vdev_driver_ok(struct vdev *d) {
  mmio_write(d, REG_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK);
}

int vq_add(struct vq *q, const struct vbuf *bufs, int n) {
  if (n <= 0 || n > q->num_free) return -1;
  u16 head = q->free_head, i = head, last = head;
  for (int k = 0; k < n; k++) {
    struct vring_desc *dsc = &q->desc[i];
    dsc->addr = (u64)(uptr)bufs[k].addr;
    dsc->len = bufs[k].len;
    dsc->flags = (u16)((bufs[k].writable ? VRING_DESC_F_WRITE : 0) | (k + 1 < n ? VRING_DESC_F_NEXT : 0));
    last = i;
    i = dsc->next;
  }
  (void)last;
  q->free_head = i;
  q->num_free = (u16)(q->num_free - n);
  q->chain_len[head] = (u16)n;
  q->avail[2 + (q->next_avail & (q->size - 1))] = head;
  barrier(); /* x86 keeps stores in order: the ring entry is visible before the index (§2.7.13) */
  q->next_avail++;
  q->avail[1] = q->next_avail;
  return head;
}

void vq_kick(struct vdev *d, struct vq *q) {
  barrier();
  mmio_write(d, REG_QUEUE_NOTIFY, q->index);
}

int vq_get_used(struct vq *q, u32 *len) {
  barrier();
  if (q->used_hdr[1] == q->last_used) return -1;
  barrier(); /* read the index before the element (§2.7.14) */
  volatile struct vring_used_elem *e = &q->used_ring[q->last_used & (q->size - 1)];
  u32 id = e->id;
  if (len) *len = e->len;
  q->last_used++;
  if (id >= q->size) return -2; /* the device broke the ring: caller reports */
  /* free the chain: walk its descriptors back onto the free list */
  u16 n = q->chain_len[id], i = (u16)id;
  for (u16 k = 1; k < n; k++) i = q->desc[i].next;
  q->desc[i].next = q->free_head;
  q->free_head = (u16)id;
  q->num_free = (u16)(q->num_free + n);
  return (int)id;
}

void host_ack_wait(void) {
  while (*(volatile u32 *)HOST_ACK_ADDR == 0) __asm__ volatile("pause" ::: "memory");
}

u32 irq_snapshot(struct vdev *d) {
  barrier();
  return irq_counts[d->irq_slot];
}

int irq_wait(struct vdev *d, u32 snapshot, u64 max_ticks) {
  u64 start = max_ticks ? rdtsc() : 0;
  while (irq_counts[d->irq_slot] == snapshot) {
    __asm__ volatile("pause" ::: "memory");
    if (max_ticks && rdtsc() - start > max_ticks) return -1;
  }
  d->seen_irqs = irq_counts[d->irq_slot];
  d->interrupts++;
  /* §4.2.2: read InterruptStatus, acknowledge what we saw */
  u32 isr = mmio_read(d, REG_INTERRUPT_STATUS);
  if (isr) mmio_write(d, REG_INTERRUPT_ACK, isr);
  d->isr_seen |= isr;
  return 0;
}
