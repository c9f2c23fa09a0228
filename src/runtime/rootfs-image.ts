// A container's rootfs as a block image: `mkfs.ext4 -d <bundle rootfs>` fills one of the sandbox's spare
// virtio-blk disks (the VM gets them at boot; no hotplug yet). The guest has read the disk once (partition
// scan) but Linux drops a block device's page cache on its last close (block/bdev.c blkdev_put_whole →
// blkdev_flush_mapping), so the agent's mount reads the new file system.

import { execFileSync } from 'node:child_process';
import { chmodSync } from 'node:fs';
import { RuntimeError } from './errors.js';
import { FILE_MODE } from './private-files.js';

/** Fills `image` (a file of `sizeMiB`) with a file system holding the directory `rootfs`. */
export type ImageBuilder = (rootfs: string, image: string, sizeMiB: number) => void;

/** The default ImageBuilder: mkfs.ext4. */
export const mkfsExt4: ImageBuilder = (rootfs, image, sizeMiB) => {
  try {
    // mkfs.ext4(8) -d: populate from a directory; -F: the image file already holds a file system
    execFileSync('mkfs.ext4', ['-q', '-F', '-E', 'nodiscard', '-d', rootfs, image, `${sizeMiB}M`], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    const err = (e as { stderr?: Buffer }).stderr?.toString().trim().split('\n').pop() ?? (e as Error).message;
    throw new RuntimeError('INVALID', `cannot build the rootfs image from ${rootfs}: ${err} (a rootfs larger than [runtime] spare_block_size ${sizeMiB} MiB does not fit)`);
  }
  // the container's file system: private like every file under the state root (mkfs creates a missing image
  // with 0666 minus the umask)
  chmodSync(image, FILE_MODE);
};

/** virtio-blk names in probe order: vda, vdb, ... (drivers/block/virtio_blk.c virtblk_name_format) */
export function guestDisk(slot: number): string {
  return `/dev/vd${String.fromCharCode(97 + slot)}`;
}
