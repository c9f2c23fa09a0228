// virtio-net constants: feature bits, header layout, config status and the tap's TUNSETOFFLOAD flags.
// Sources: include/uapi/linux/virtio_net.h, include/uapi/linux/if_tun.h, virtio 1.2 §5.1.

/** Queue indices (virtio 1.2 §5.1.2: receiveq1 = 0, transmitq1 = 1; no control queue, no multiqueue). */
export const RX_QUEUE = 0;
export const TX_QUEUE = 1;
/** Each queue's maximum size (power of two). */
export const NET_QUEUE_SIZE = 256;

// Feature bits (virtio_net.h; virtio 1.2 §5.1.3).
export const VIRTIO_NET_F_CSUM = 1n << 0n; // device handles packets with partial checksum (tx)
export const VIRTIO_NET_F_GUEST_CSUM = 1n << 1n; // driver handles packets with partial checksum (rx)
export const VIRTIO_NET_F_MAC = 1n << 5n; // device has given a MAC address
export const VIRTIO_NET_F_GUEST_TSO4 = 1n << 7n;
export const VIRTIO_NET_F_GUEST_TSO6 = 1n << 8n;
export const VIRTIO_NET_F_GUEST_ECN = 1n << 9n;
export const VIRTIO_NET_F_GUEST_UFO = 1n << 10n;
export const VIRTIO_NET_F_HOST_TSO4 = 1n << 11n;
export const VIRTIO_NET_F_HOST_TSO6 = 1n << 12n;
export const VIRTIO_NET_F_HOST_ECN = 1n << 13n;
export const VIRTIO_NET_F_HOST_UFO = 1n << 14n;
export const VIRTIO_NET_F_MRG_RXBUF = 1n << 15n;
export const VIRTIO_NET_F_STATUS = 1n << 16n;

/** VIRTIO_NET_S_LINK_UP (virtio_net.h) in config.status */
export const VIRTIO_NET_S_LINK_UP = 1;

/** struct virtio_net_hdr_v1 is 12 bytes whenever VIRTIO_F_VERSION_1 is negotiated (virtio 1.2 §5.1.6). */
export const VIRTIO_NET_HDR_LEN = 12;
/** offset of num_buffers in virtio_net_hdr_v1 */
export const NUM_BUFFERS_OFFSET = 10;
/** Largest frame (without the header) a driver may send: 64 KiB GSO payload + Ethernet/VLAN headers
 * (Firecracker's MAX_BUFFER_SIZE 65562 = 65550 + 12). */
export const MAX_FRAME_LEN = 65550;
/** Smallest rx capacity that holds a header and a full VLAN-tagged 1500-MTU Ethernet frame (12 + 1518). */
export const MIN_RX_FRAME_CAPACITY = VIRTIO_NET_HDR_LEN + 1518;

// virtio_net_hdr_v1.flags
export const VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
export const VIRTIO_NET_HDR_F_DATA_VALID = 2;
export const VIRTIO_NET_HDR_F_RSC_INFO = 4;
// virtio_net_hdr_v1.gso_type
export const VIRTIO_NET_HDR_GSO_NONE = 0;
export const VIRTIO_NET_HDR_GSO_TCPV4 = 1;
export const VIRTIO_NET_HDR_GSO_UDP = 3;
export const VIRTIO_NET_HDR_GSO_TCPV6 = 4;
export const VIRTIO_NET_HDR_GSO_ECN = 0x80;

// TUNSETOFFLOAD flags (if_tun.h): what the reader of the tap (the guest, through us) can take.
export const TUN_F_CSUM = 0x01;
export const TUN_F_TSO4 = 0x02;
export const TUN_F_TSO6 = 0x04;
export const TUN_F_TSO_ECN = 0x08;
export const TUN_F_UFO = 0x10;

/**
 * Each offload the tap may accept and the feature pair it unlocks: GUEST_* (the tap hands the guest partial
 * checksums / GSO frames) and the HOST_* twin (the guest hands the tap the same). The kernel refuses TSO/UFO
 * without CSUM (drivers/net/tun.c set_offload), matching the feature dependencies of virtio 1.2 §5.1.3.1.
 */
export const OFFLOADS: ReadonlyArray<{ tun: number; features: bigint }> = [
  { tun: TUN_F_CSUM, features: VIRTIO_NET_F_CSUM | VIRTIO_NET_F_GUEST_CSUM },
  { tun: TUN_F_TSO4, features: VIRTIO_NET_F_HOST_TSO4 | VIRTIO_NET_F_GUEST_TSO4 },
  { tun: TUN_F_TSO6, features: VIRTIO_NET_F_HOST_TSO6 | VIRTIO_NET_F_GUEST_TSO6 },
  { tun: TUN_F_UFO, features: VIRTIO_NET_F_HOST_UFO | VIRTIO_NET_F_GUEST_UFO },
];

/** TUN_F_* bits matching the GUEST_* offloads a driver accepted. */
export function tunFlagsFor(acked: bigint): number {
  let f = 0;
  if (acked & VIRTIO_NET_F_GUEST_CSUM) f |= TUN_F_CSUM;
  if (acked & VIRTIO_NET_F_GUEST_TSO4) f |= TUN_F_TSO4;
  if (acked & VIRTIO_NET_F_GUEST_TSO6) f |= TUN_F_TSO6;
  if (acked & VIRTIO_NET_F_GUEST_UFO) f |= TUN_F_UFO;
  return f;
}

/** True when the driver accepted any receive-side segmentation offload (the tap may hand it 64 KiB frames). */
export function guestGso(acked: bigint): boolean {
  return (acked & (VIRTIO_NET_F_GUEST_TSO4 | VIRTIO_NET_F_GUEST_TSO6 | VIRTIO_NET_F_GUEST_UFO)) !== 0n;
}
