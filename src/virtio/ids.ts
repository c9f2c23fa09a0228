// Numbers the virtio spec fixes: device IDs, feature bits, device status bits.
// Sources: include/uapi/linux/virtio_ids.h, virtio_config.h, virtio_ring.h (Linux 6.1); virtio 1.2 §2.1, §5, §6.

/** Device IDs (virtio 1.2 §5; include/uapi/linux/virtio_ids.h). */
export const VIRTIO_ID_NET = 1;
export const VIRTIO_ID_BLOCK = 2;
export const VIRTIO_ID_RNG = 4;
export const VIRTIO_ID_VSOCK = 19;
export const VIRTIO_ID_FS = 26;

/** Reserved feature bits (virtio 1.2 §6), as 64-bit masks. */
/** VIRTIO_F_VERSION_1 (bit 32, virtio_config.h): modern device; required by our transport. */
export const VIRTIO_F_VERSION_1 = 1n << 32n;
/** VIRTIO_RING_F_INDIRECT_DESC (bit 28, virtio_ring.h): the driver may use indirect descriptor tables. */
export const VIRTIO_RING_F_INDIRECT_DESC = 1n << 28n;
/** VIRTIO_RING_F_EVENT_IDX (bit 29, virtio_ring.h): used_event / avail_event notification suppression. */
export const VIRTIO_RING_F_EVENT_IDX = 1n << 29n;

/** Device status bits (virtio 1.2 §2.1; VIRTIO_CONFIG_S_* in virtio_config.h). */
export const VIRTIO_STATUS_ACKNOWLEDGE = 1;
export const VIRTIO_STATUS_DRIVER = 2;
export const VIRTIO_STATUS_DRIVER_OK = 4;
export const VIRTIO_STATUS_FEATURES_OK = 8;
export const VIRTIO_STATUS_DEVICE_NEEDS_RESET = 0x40;
export const VIRTIO_STATUS_FAILED = 0x80;

/** The same status bits as one object, for `DeviceStatus.DRIVER_OK`-style use. */
export const DeviceStatus = {
  ACKNOWLEDGE: VIRTIO_STATUS_ACKNOWLEDGE,
  DRIVER: VIRTIO_STATUS_DRIVER,
  DRIVER_OK: VIRTIO_STATUS_DRIVER_OK,
  FEATURES_OK: VIRTIO_STATUS_FEATURES_OK,
  DEVICE_NEEDS_RESET: VIRTIO_STATUS_DEVICE_NEEDS_RESET,
  FAILED: VIRTIO_STATUS_FAILED,
} as const;
