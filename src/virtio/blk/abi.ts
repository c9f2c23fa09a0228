// virtio-blk wire format: include/uapi/linux/virtio_blk.h (Linux 6.1) and virtio 1.2 §5.2.

/** Sector size of every request's `sector` field, whatever blk_size says (virtio 1.2 §5.2.6). */
export const SECTOR_SIZE = 512;
export const SECTOR_SHIFT = 9;

// Feature bits (virtio_blk.h)
export const VIRTIO_BLK_F_SIZE_MAX = 1n << 1n;
export const VIRTIO_BLK_F_SEG_MAX = 1n << 2n;
export const VIRTIO_BLK_F_RO = 1n << 5n;
export const VIRTIO_BLK_F_BLK_SIZE = 1n << 6n;
export const VIRTIO_BLK_F_FLUSH = 1n << 9n;
export const VIRTIO_BLK_F_DISCARD = 1n << 13n;
export const VIRTIO_BLK_F_WRITE_ZEROES = 1n << 14n;

// Request types (virtio_blk.h VIRTIO_BLK_T_*)
export const VIRTIO_BLK_T_IN = 0;
export const VIRTIO_BLK_T_OUT = 1;
export const VIRTIO_BLK_T_FLUSH = 4;
export const VIRTIO_BLK_T_GET_ID = 8;
export const VIRTIO_BLK_T_DISCARD = 11;
export const VIRTIO_BLK_T_WRITE_ZEROES = 13;

// Status byte values (virtio_blk.h VIRTIO_BLK_S_*)
export const VIRTIO_BLK_S_OK = 0;
export const VIRTIO_BLK_S_IOERR = 1;
export const VIRTIO_BLK_S_UNSUPP = 2;

/** struct virtio_blk_outhdr: type u32, ioprio u32, sector u64. */
export const OUTHDR_SIZE = 16;
/** VIRTIO_BLK_ID_BYTES: GET_ID returns a 20-byte id string, NUL-padded, not NUL-terminated when full. */
export const VIRTIO_BLK_ID_BYTES = 20;
/** struct virtio_blk_discard_write_zeroes: sector u64, num_sectors u32, flags u32. */
export const DWZ_SEGMENT_SIZE = 16;
/** VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP; every other flag bit is reserved. */
export const VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP = 1;

/** Byte offsets in struct virtio_blk_config (packed, little-endian for virtio 1.x). */
export const BlkConfig = {
  capacity: 0, // u64, 512-byte sectors
  sizeMax: 8, // u32 (VIRTIO_BLK_F_SIZE_MAX)
  segMax: 12, // u32 (VIRTIO_BLK_F_SEG_MAX)
  geometryCylinders: 16, // u16 (VIRTIO_BLK_F_GEOMETRY)
  geometryHeads: 18, // u8
  geometrySectors: 19, // u8
  blkSize: 20, // u32 (VIRTIO_BLK_F_BLK_SIZE)
  physicalBlockExp: 24, // u8 (VIRTIO_BLK_F_TOPOLOGY)
  alignmentOffset: 25, // u8
  minIoSize: 26, // u16
  optIoSize: 28, // u32
  wce: 32, // u8 (VIRTIO_BLK_F_CONFIG_WCE)
  numQueues: 34, // u16 (VIRTIO_BLK_F_MQ)
  maxDiscardSectors: 36, // u32 (VIRTIO_BLK_F_DISCARD)
  maxDiscardSeg: 40, // u32
  discardSectorAlignment: 44, // u32
  maxWriteZeroesSectors: 48, // u32 (VIRTIO_BLK_F_WRITE_ZEROES)
  maxWriteZeroesSeg: 52, // u32
  writeZeroesMayUnmap: 56, // u8, then 3 unused bytes
  maxSecureEraseSectors: 60, // u32 (VIRTIO_BLK_F_SECURE_ERASE, not offered)
  maxSecureEraseSeg: 64, // u32
  secureEraseSectorAlignment: 68, // u32
  /** sizeof(struct virtio_blk_config) */
  size: 72,
} as const;
