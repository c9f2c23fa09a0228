// virtio-mmio register offsets (virtio 1.2 §4.2.2, include/uapi/linux/virtio_mmio.h). Version 2 (modern)
// layout only: the legacy (version 1) registers QueueAlign/QueuePFN/GuestPageSize are not implemented.

/** "virt" in little-endian: 0x74726976 (§4.2.2) */
export const VIRTIO_MMIO_MAGIC = 0x74726976;
/** The modern transport (§4.2.2: "0x2"; legacy devices say 0x1). */
export const VIRTIO_MMIO_VERSION = 2;
/** Our VendorID: "QEMU" little-endian, the value Linux and every VMM's guests expect to be harmless. */
export const VIRTIO_MMIO_VENDOR_ID = 0x554d4551;

export const REG_MAGIC_VALUE = 0x000;
export const REG_VERSION = 0x004;
export const REG_DEVICE_ID = 0x008;
export const REG_VENDOR_ID = 0x00c;
export const REG_DEVICE_FEATURES = 0x010;
export const REG_DEVICE_FEATURES_SEL = 0x014;
export const REG_DRIVER_FEATURES = 0x020;
export const REG_DRIVER_FEATURES_SEL = 0x024;
export const REG_QUEUE_SEL = 0x030;
export const REG_QUEUE_NUM_MAX = 0x034;
export const REG_QUEUE_NUM = 0x038;
export const REG_QUEUE_READY = 0x044;
export const REG_QUEUE_NOTIFY = 0x050;
export const REG_INTERRUPT_STATUS = 0x060;
export const REG_INTERRUPT_ACK = 0x064;
export const REG_STATUS = 0x070;
export const REG_QUEUE_DESC_LOW = 0x080;
export const REG_QUEUE_DESC_HIGH = 0x084;
export const REG_QUEUE_DRIVER_LOW = 0x090;
export const REG_QUEUE_DRIVER_HIGH = 0x094;
export const REG_QUEUE_DEVICE_LOW = 0x0a0;
export const REG_QUEUE_DEVICE_HIGH = 0x0a4;
export const REG_SHM_SEL = 0x0ac;
export const REG_SHM_LEN_LOW = 0x0b0;
export const REG_SHM_LEN_HIGH = 0x0b4;
export const REG_SHM_BASE_LOW = 0x0b8;
export const REG_SHM_BASE_HIGH = 0x0bc;
export const REG_QUEUE_RESET = 0x0c0;
export const REG_CONFIG_GENERATION = 0x0fc;
/** Device-specific configuration space starts here (§4.2.2). */
export const REG_CONFIG = 0x100;

/** The register block a driver may touch; the slot itself is VIRTIO_MMIO_SLOT_SIZE (4 KiB). */
export const VIRTIO_MMIO_REGION_SIZE = 0x1000;
