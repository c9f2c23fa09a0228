// vhost-user wire constants (QEMU docs/interop/vhost-user.rst, "Message Specification", "Front-end message
// types", "Protocol features"). All numbers on the wire are in the machine's native byte order: little-endian
// on every host kata-ts runs on (x86-64), so the codec reads and writes little-endian.

/** Header: request u32, flags u32, size u32 (vhost-user.rst "Header"). */
export const VHOST_USER_HDR_SIZE = 12;
/** flags bits 0-1: the protocol version, currently 1 */
export const VHOST_USER_VERSION_MASK = 0x3;
export const VHOST_USER_VERSION = 0x1;
/** flags bit 2: set on every reply from the back-end */
export const VHOST_USER_REPLY_MASK = 0x4;
/** flags bit 3: need_reply (REPLY_ACK) */
export const VHOST_USER_NEED_REPLY_MASK = 0x8;

/** Feature bit 30: the back-end supports GET/SET_PROTOCOL_FEATURES (vhost-user.rst "Communication"). */
export const VHOST_USER_F_PROTOCOL_FEATURES = 1n << 30n;
/** VHOST_F_LOG_ALL (linux/vhost.h): dirty logging for migration; never offered here */
export const VHOST_F_LOG_ALL = 1n << 26n;

/** Protocol feature bits (vhost-user.rst "Protocol features"). */
export const VhostUserProtocolFeature = {
  MQ: 0,
  LOG_SHMFD: 1,
  RARP: 2,
  REPLY_ACK: 3,
  MTU: 4,
  BACKEND_REQ: 5,
  CROSS_ENDIAN: 6,
  CRYPTO_SESSION: 7,
  PAGEFAULT: 8,
  CONFIG: 9,
  BACKEND_SEND_FD: 10,
  HOST_NOTIFIER: 11,
  INFLIGHT_SHMFD: 12,
  RESET_DEVICE: 13,
  INBAND_NOTIFICATIONS: 14,
  CONFIGURE_MEM_SLOTS: 15,
  STATUS: 16,
} as const;

export function protocolBit(bit: number): bigint {
  return 1n << BigInt(bit);
}

/** The protocol features this back-end implements: MQ, REPLY_ACK, CONFIG, RESET_DEVICE. */
export const SUPPORTED_PROTOCOL_FEATURES =
  protocolBit(VhostUserProtocolFeature.MQ) |
  protocolBit(VhostUserProtocolFeature.REPLY_ACK) |
  protocolBit(VhostUserProtocolFeature.CONFIG) |
  protocolBit(VhostUserProtocolFeature.RESET_DEVICE);

/** Front-end request types (vhost-user.rst "Front-end message types", :id:). */
export const VhostUserRequest = {
  GET_FEATURES: 1,
  SET_FEATURES: 2,
  SET_OWNER: 3,
  RESET_OWNER: 4,
  SET_MEM_TABLE: 5,
  SET_LOG_BASE: 6,
  SET_LOG_FD: 7,
  SET_VRING_NUM: 8,
  SET_VRING_ADDR: 9,
  SET_VRING_BASE: 10,
  GET_VRING_BASE: 11,
  SET_VRING_KICK: 12,
  SET_VRING_CALL: 13,
  SET_VRING_ERR: 14,
  GET_PROTOCOL_FEATURES: 15,
  SET_PROTOCOL_FEATURES: 16,
  GET_QUEUE_NUM: 17,
  SET_VRING_ENABLE: 18,
  SEND_RARP: 19,
  NET_SET_MTU: 20,
  SET_BACKEND_REQ_FD: 21,
  IOTLB_MSG: 22,
  SET_VRING_ENDIAN: 23,
  GET_CONFIG: 24,
  SET_CONFIG: 25,
  CREATE_CRYPTO_SESSION: 26,
  CLOSE_CRYPTO_SESSION: 27,
  POSTCOPY_ADVISE: 28,
  POSTCOPY_LISTEN: 29,
  POSTCOPY_END: 30,
  GET_INFLIGHT_FD: 31,
  SET_INFLIGHT_FD: 32,
  GPU_SET_SOCKET: 33,
  RESET_DEVICE: 34,
  VRING_KICK: 35,
  GET_MAX_MEM_SLOTS: 36,
  ADD_MEM_REG: 37,
  REM_MEM_REG: 38,
  SET_STATUS: 39,
  GET_STATUS: 40,
} as const;

export type VhostUserRequestName = keyof typeof VhostUserRequest;

const NAMES = new Map<number, VhostUserRequestName>(
  (Object.entries(VhostUserRequest) as Array<[VhostUserRequestName, number]>).map(([k, v]) => [v, k]),
);

/** "SET_MEM_TABLE", or "request 99" for a number the protocol does not define. */
export function requestName(request: number): string {
  return NAMES.get(request) ?? `request ${request}`;
}

/** VHOST_MEMORY_BASELINE_NREGIONS: at most 8 regions in one SET_MEM_TABLE. */
export const VHOST_MEMORY_MAX_REGIONS = 8;
/** struct VhostUserMemoryRegion: guest_phys_addr, memory_size, userspace_addr, mmap_offset (4 x u64) */
export const VHOST_USER_MEM_REGION_SIZE = 32;
/** struct VhostUserMemory header: nregions u32 + padding u32 */
export const VHOST_USER_MEM_HDR_SIZE = 8;
/** struct vhost_vring_state: index u32, num u32 */
export const VHOST_VRING_STATE_SIZE = 8;
/** struct vhost_vring_addr: index u32, flags u32, desc, used, avail, log (u64 each) — linux/vhost_types.h */
export const VHOST_VRING_ADDR_SIZE = 40;
/** VHOST_VRING_F_LOG: log used-ring writes (migration); we never offer LOG_ALL, so this must be clear */
export const VHOST_VRING_F_LOG = 1;
/** VhostUserConfig header: offset u32, size u32, flags u32 */
export const VHOST_USER_CONFIG_HDR_SIZE = 12;
/** VHOST_USER_MAX_CONFIG_SIZE */
export const VHOST_USER_MAX_CONFIG_SIZE = 256;
/** SET_VRING_KICK/CALL/ERR u64: bits 0-7 the ring index, bit 8 "no fd" (VHOST_USER_VRING_NOFD_MASK) */
export const VHOST_USER_VRING_IDX_MASK = 0xffn;
export const VHOST_USER_VRING_NOFD_MASK = 1n << 8n;
/**
 * Largest payload we accept. The biggest message we implement is SET_MEM_TABLE (8 + 8 * 32 = 264 bytes) or
 * GET/SET_CONFIG (12 + 256); anything far larger is a broken or hostile front-end and the stream is closed.
 */
export const VHOST_USER_MAX_PAYLOAD = 4096;
/** Most fds one message may carry (SET_MEM_TABLE: one per region). */
export const VHOST_USER_MAX_FDS = VHOST_MEMORY_MAX_REGIONS;
