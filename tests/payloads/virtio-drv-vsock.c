/* virtio-drv-vsock: a ring-3 virtio-vsock driver (virtio 1.2 §5.10) for the device in slot 0: a stream
 * connection from guest port GUEST_PORT to host (CID 2) port HOST_PORT, then an echo of TOTAL bytes with
 * credit-based flow control in both directions (§5.10.6.3):
 *   receive phase: the host sends TOTAL bytes; we advertise buf_alloc = GUEST_BUF_ALLOC, consume each packet at
 *     once (copy into a 1 MiB buffer) and send CREDIT_UPDATE every GUEST_BUF_ALLOC/4 consumed bytes, so the
 *     host can only go on because of our updates;
 *   send phase: we send the same bytes back in RW packets of up to 4 KiB (straight from the buffer), never
 *     more than the host's credit (buf_alloc - (tx_cnt - fwd_cnt)); when it runs out we wait for the host's
 *     CREDIT_UPDATEs on rx;
 *   then SHUTDOWN (both directions) and wait for the host's RST.
 * Every wait is for the device's interrupt. Reports, in order:
 *   0 DeviceID (19)     1 features lo     2 guest CID lo     3 guest CID hi
 *   4 op of the reply to REQUEST (2 = RESPONSE)
 *   5 bytes received    6 RW packets received    7 CREDIT_UPDATEs sent    8 FNV-1a of the received bytes
 *   9 bytes sent        10 RW packets sent       11 times we ran out of host credit
 *   12 CREDIT_UPDATEs received   13 last op from the host (3 = RST)   14 unexpected packets
 *   15 interrupts       16 error (0 = none; see ERR_*)   17 0x600d50c4 (done), then the host handshake */
#include "virtio-drv.h"

#define HOST_CID 2
#define HOST_PORT 5000u
#define GUEST_PORT 1234u
#define TOTAL (1u << 20)
#define GUEST_BUF_ALLOC 32768u
#define RX_DATA 4096u
#define TX_CHUNK 4096u
#define TICKS_PER_WAIT 30000000000ull

/* include/uapi/linux/virtio_vsock.h */
#define VSOCK_TYPE_STREAM 1
#define OP_REQUEST 1
#define OP_RESPONSE 2
#define OP_RST 3
#define OP_SHUTDOWN 4
#define OP_RW 5
#define OP_CREDIT_UPDATE 6
#define OP_CREDIT_REQUEST 7
#define SHUTDOWN_RCV 1
#define SHUTDOWN_SEND 2

#define ERR_FEATURES 1
#define ERR_QUEUE 2
#define ERR_TIMEOUT 3
#define ERR_REFUSED 4
#define ERR_OVERFLOW 5
#define ERR_TX_FULL 6
#define ERR_BAD_USED 7
#define ERR_EARLY_CLOSE 8

struct __attribute__((packed)) vsock_hdr {
  u64 src_cid, dst_cid;
  u32 src_port, dst_port, len;
  u16 type, op;
  u32 flags, buf_alloc, fwd_cnt;
};

static struct vdev dev = {0};
static struct vq rxq = {0}, txq = {0}, evq = {0};
static u64 guest_cid = 0;
static struct vsock_hdr *tx_hdrs = 0; /* one per tx descriptor index (the chain head) */
static u8 *recvbuf = 0;

static u32 received = 0, rx_packets = 0, fwd_cnt = 0, fwd_reported = 0, credit_sent = 0;
static u32 sent = 0, tx_packets = 0, credit_waits = 0, credit_received = 0;
static u32 peer_buf_alloc = 0, peer_fwd_cnt = 0, tx_cnt = 0;
static u32 reply_op = 0, last_host_op = 0, unexpected = 0, error = 0;
static int connected = 0, closed_by_host = 0;

static int send_pkt(u16 op, u32 flags, const u8 *payload, u32 len) {
  if (txq.num_free < (len ? 2 : 1)) return -1;
  struct vsock_hdr *h = &tx_hdrs[txq.free_head];
  h->src_cid = guest_cid;
  h->dst_cid = HOST_CID;
  h->src_port = GUEST_PORT;
  h->dst_port = HOST_PORT;
  h->len = len;
  h->type = VSOCK_TYPE_STREAM;
  h->op = op;
  h->flags = flags;
  h->buf_alloc = GUEST_BUF_ALLOC;
  h->fwd_cnt = fwd_cnt; /* every header carries our credit (§5.10.6.3) */
  struct vbuf b[2] = { { h, sizeof *h, 0 }, { payload, len, 0 } };
  if (vq_add(&txq, b, len ? 2 : 1) < 0) return -1;
  if (op == OP_RW || op == OP_CREDIT_UPDATE || op == OP_RESPONSE) fwd_reported = fwd_cnt;
  vq_kick(&dev, &txq);
  return 0;
}

static void post_rx(u8 *hdr, u8 *data) {
  struct vbuf b[2] = { { hdr, sizeof(struct vsock_hdr), 1 }, { data, RX_DATA, 1 } };
  vq_add(&rxq, b, 2);
}

static u32 fnv1a(const u8 *p, u32 n) {
  u32 h = 2166136261u;
  for (u32 i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
  return h;
}

static void on_packet(const struct vsock_hdr *h, const u8 *data, u32 used_len) {
  if (h->src_cid != HOST_CID || h->dst_cid != guest_cid || h->src_port != HOST_PORT || h->dst_port != GUEST_PORT ||
      h->type != VSOCK_TYPE_STREAM || used_len != sizeof *h + (h->op == OP_RW ? h->len : 0)) {
    unexpected++;
    return;
  }
  last_host_op = h->op;
  peer_buf_alloc = h->buf_alloc;
  peer_fwd_cnt = h->fwd_cnt;
  switch (h->op) {
    case OP_RESPONSE:
      reply_op = h->op;
      connected = 1;
      break;
    case OP_RST:
      if (!connected) reply_op = h->op;
      closed_by_host = 1;
      break;
    case OP_SHUTDOWN:
      break; /* the host finished sending (half close): we still echo */
    case OP_RW:
      if (h->len > RX_DATA || received + h->len > TOTAL) {
        error = ERR_OVERFLOW;
        return;
      }
      memcpy(recvbuf + received, data, h->len);
      received += h->len;
      fwd_cnt += h->len;
      rx_packets++;
      break;
    case OP_CREDIT_UPDATE:
      credit_received++;
      break;
    case OP_CREDIT_REQUEST:
      send_pkt(OP_CREDIT_UPDATE, 0, 0, 0);
      credit_sent++;
      break;
    default:
      unexpected++;
  }
}

/* Take every used rx and tx chain; returns how many there were. */
static int drain(void) {
  int n = 0, id;
  u32 len;
  while ((id = vq_get_used(&rxq, &len)) != -1) {
    if (id < 0) {
      error = ERR_BAD_USED;
      return n;
    }
    n++;
    u8 *hdr = (u8 *)(uptr)rxq.desc[id].addr;
    u8 *data = (u8 *)(uptr)rxq.desc[rxq.desc[id].next].addr;
    on_packet((const struct vsock_hdr *)hdr, data, len);
    post_rx(hdr, data); /* the same buffer goes straight back */
  }
  if (n) vq_kick(&dev, &rxq);
  while ((id = vq_get_used(&txq, &len)) != -1) {
    if (id < 0) {
      error = ERR_BAD_USED;
      return n;
    }
    n++;
  }
  return n;
}

/* Drain, and when nothing moved wait for the next interrupt. 0 on timeout. */
static int step(void) {
  u32 snap = irq_snapshot(&dev);
  if (drain() > 0) return 1;
  if (irq_wait(&dev, snap, TICKS_PER_WAIT) < 0) {
    error = ERR_TIMEOUT;
    return 0;
  }
  return 1;
}

static void run(void) {
  for (u32 i = 0; i < rxq.size / 2; i++) post_rx(alloc_pages(4096), alloc_pages(RX_DATA));
  vq_kick(&dev, &rxq);

  if (send_pkt(OP_REQUEST, 0, 0, 0) < 0) { error = ERR_TX_FULL; return; }
  while (!connected && !closed_by_host && !error) step();
  if (error) return;
  if (!connected) { error = ERR_REFUSED; return; }

  /* receive phase: our credit updates keep the host going */
  while (received < TOTAL && !error) {
    if (closed_by_host) { error = ERR_EARLY_CLOSE; return; }
    if (fwd_cnt - fwd_reported >= GUEST_BUF_ALLOC / 4) {
      if (send_pkt(OP_CREDIT_UPDATE, 0, 0, 0) == 0) credit_sent++;
    }
    if (!step()) return;
  }
  if (error) return;

  /* send phase: never more than the host's credit */
  int waiting_credit = 0;
  while (sent < TOTAL && !error) {
    if (closed_by_host) { error = ERR_EARLY_CLOSE; return; }
    drain();
    u32 credit = peer_buf_alloc - (tx_cnt - peer_fwd_cnt);
    u32 n = TOTAL - sent;
    if (n > TX_CHUNK) n = TX_CHUNK;
    if (n > credit) n = credit;
    if (n == 0 || txq.num_free < 2) {
      if (n == 0 && !waiting_credit) credit_waits++;
      waiting_credit = n == 0;
      if (!step()) return;
      continue;
    }
    waiting_credit = 0;
    if (send_pkt(OP_RW, 0, recvbuf + sent, n) < 0) { error = ERR_TX_FULL; return; }
    sent += n;
    tx_cnt += n;
    tx_packets++;
  }
  if (error) return;
  /* all tx chains back from the device, then SHUTDOWN; the host answers with RST once it closed */
  while (txq.num_free < txq.size && !error) step();
  while (send_pkt(OP_SHUTDOWN, SHUTDOWN_RCV | SHUTDOWN_SEND, 0, 0) < 0 && !error) step();
  while (!closed_by_host && !error) step();
}

int driver_main(void) {
  report(mmio_read(&(struct vdev){ .base = VIRTIO_MMIO_BASE }, REG_DEVICE_ID));
  u32 feats = vdev_init(&dev, VIRTIO_MMIO_BASE, 0, 0);
  report(feats);
  /* struct virtio_vsock_config: le64 guest_cid (§5.10.4) */
  guest_cid = ((u64)mmio_read(&dev, REG_CONFIG + 4) << 32) | mmio_read(&dev, REG_CONFIG);
  report((u32)guest_cid);
  report((u32)(guest_cid >> 32));
  if (feats == 0xffffffffu) {
    error = ERR_FEATURES;
  } else if (vq_setup(&dev, &rxq, 0, 64) < 0 || vq_setup(&dev, &txq, 1, 64) < 0 || vq_setup(&dev, &evq, 2, 8) < 0) {
    error = ERR_QUEUE;
  } else {
    vdev_driver_ok(&dev);
    tx_hdrs = alloc_pages(64 * sizeof(struct vsock_hdr));
    recvbuf = alloc_pages(TOTAL);
    run();
  }
  report(reply_op);
  report(received);
  report(rx_packets);
  report(credit_sent);
  report(recvbuf ? fnv1a(recvbuf, received) : 0);
  report(sent);
  report(tx_packets);
  report(credit_waits);
  report(credit_received);
  report(last_host_op);
  report(unexpected);
  report(dev.interrupts);
  report(error);
  report(0x600d50c4u);
  host_ack_wait();
  return 0;
}
