/* virtio-drv-net: a ring-3 virtio-net driver (virtio 1.2 §5.1) for the device in slot 0. It posts receive
 * buffers, sends an ARP request "who has 10.213.0.1? tell 10.213.0.2" from the MAC in the config space and
 * waits (interrupts) for the ARP reply on rx, re-sending the request every ~RETRY_TICKS up to MAX_TRIES times.
 * Each frame travels with the 12-byte virtio_net_hdr_v1 in front (VIRTIO_F_VERSION_1; no offloads asked).
 * Reports, in order:
 *   0 DeviceID (1)    1 features lo accepted    2 MAC bytes 0-3 (LE)    3 MAC bytes 4-5    4 config status
 *   5 ARP requests sent    6 tx chains returned    7 ARP reply seen (1)
 *   8 reply sender MAC bytes 0-3    9 bytes 4-5    10 reply target is us (MAC and IP: 1)
 *   11 frames received    12 frames that were not our reply    13 interrupts    14 error (0 = none)
 *   15 0x600d0e70 (done), then the host handshake */
#include "virtio-drv.h"

#define VIRTIO_NET_F_MAC (1u << 5)
#define VIRTIO_NET_F_STATUS (1u << 16)
#define NET_HDR_LEN 12
#define RX_BUF 2048u
#define RX_BUFFERS 16
#define RETRY_TICKS 3000000000ull
#define MAX_TRIES 20

static const u8 MY_IP[4] = { 10, 213, 0, 2 };
static const u8 PEER_IP[4] = { 10, 213, 0, 1 };

static struct vdev dev = {0};
static struct vq rxq = {0}, txq = {0};
static u8 mac[6] = {0};
static u8 *tx_hdr = 0, *tx_frame = 0;

static u32 requests = 0, tx_done = 0, got_reply = 0, frames = 0, others = 0, target_ok = 0, error = 0;
static u8 peer_mac[6] = {0};

static void send_arp_request(void) {
  u8 *f = tx_frame;
  memset(tx_hdr, 0, NET_HDR_LEN); /* no checksum/GSO offload: flags 0, gso_type NONE */
  memset(f, 0xff, 6);             /* Ethernet: broadcast */
  memcpy(f + 6, mac, 6);
  f[12] = 0x08, f[13] = 0x06;     /* ETH_P_ARP */
  /* RFC 826: htype 1, ptype 0x0800, hlen 6, plen 4, op 1 (request) */
  f[14] = 0, f[15] = 1, f[16] = 0x08, f[17] = 0x00, f[18] = 6, f[19] = 4, f[20] = 0, f[21] = 1;
  memcpy(f + 22, mac, 6);
  memcpy(f + 28, MY_IP, 4);
  memset(f + 32, 0, 6);
  memcpy(f + 38, PEER_IP, 4);
  struct vbuf b[2] = { { tx_hdr, NET_HDR_LEN, 0 }, { f, 42, 0 } };
  if (vq_add(&txq, b, 2) < 0) {
    error = 2;
    return;
  }
  requests++;
  vq_kick(&dev, &txq);
}

static void on_frame(const u8 *f, u32 len) {
  frames++;
  if (len >= 42 && f[12] == 0x08 && f[13] == 0x06 && f[20] == 0 && f[21] == 2 && memcmp(f + 28, PEER_IP, 4) == 0) {
    got_reply = 1;
    memcpy(peer_mac, f + 22, 6);
    target_ok = memcmp(f + 32, mac, 6) == 0 && memcmp(f + 38, MY_IP, 4) == 0 && memcmp(f, mac, 6) == 0;
    return;
  }
  others++;
}

static void drain(void) {
  int id;
  u32 len;
  int rx = 0;
  while ((id = vq_get_used(&rxq, &len)) != -1) {
    if (id < 0 || len < NET_HDR_LEN || len > RX_BUF) {
      error = 3;
      return;
    }
    u8 *buf = (u8 *)(uptr)rxq.desc[id].addr;
    on_frame(buf + NET_HDR_LEN, len - NET_HDR_LEN);
    struct vbuf b = { buf, RX_BUF, 1 };
    vq_add(&rxq, &b, 1);
    rx++;
  }
  if (rx) vq_kick(&dev, &rxq);
  while ((id = vq_get_used(&txq, &len)) != -1) tx_done++;
}

int driver_main(void) {
  report(mmio_read(&(struct vdev){ .base = VIRTIO_MMIO_BASE }, REG_DEVICE_ID));
  u32 feats = vdev_init(&dev, VIRTIO_MMIO_BASE, 0, VIRTIO_NET_F_MAC | VIRTIO_NET_F_STATUS);
  report(feats);
  /* struct virtio_net_config: u8 mac[6], le16 status (§5.1.4) */
  for (int i = 0; i < 6; i++) mac[i] = mmio_read8(&dev, REG_CONFIG + i);
  report((u32)mac[0] | (u32)mac[1] << 8 | (u32)mac[2] << 16 | (u32)mac[3] << 24);
  report((u32)mac[4] | (u32)mac[5] << 8);
  report(mmio_read8(&dev, REG_CONFIG + 6) | (u32)mmio_read8(&dev, REG_CONFIG + 7) << 8);
  if (feats == 0xffffffffu) {
    error = 1;
  } else if (vq_setup(&dev, &rxq, 0, 32) < 0 || vq_setup(&dev, &txq, 1, 8) < 0) {
    error = 4;
  } else {
    vdev_driver_ok(&dev);
    for (int i = 0; i < RX_BUFFERS; i++) {
      struct vbuf b = { alloc_pages(RX_BUF), RX_BUF, 1 };
      vq_add(&rxq, &b, 1);
    }
    vq_kick(&dev, &rxq);
    tx_hdr = alloc_pages(4096);
    tx_frame = tx_hdr + 64;
    for (int tries = 0; tries < MAX_TRIES && !got_reply && !error; tries++) {
      drain();
      if (txq.num_free >= 2) send_arp_request();
      u64 start = rdtsc();
      while (!got_reply && !error && rdtsc() - start < RETRY_TICKS) {
        u32 snap = irq_snapshot(&dev);
        drain();
        if (got_reply || error) break;
        irq_wait(&dev, snap, RETRY_TICKS);
      }
    }
    drain();
  }
  report(requests);
  report(tx_done);
  report(got_reply);
  report((u32)peer_mac[0] | (u32)peer_mac[1] << 8 | (u32)peer_mac[2] << 16 | (u32)peer_mac[3] << 24);
  report((u32)peer_mac[4] | (u32)peer_mac[5] << 8);
  report(target_ok);
  report(frames);
  report(others);
  report(dev.interrupts);
  report(error);
  report(0x600d0e70u);
  host_ack_wait();
  return 0;
}
