// virtio-blk host I/O. A backend sees byte offsets into the disk image and lists of buffers; the device
// hands it live views of guest memory, so data moves between the file and the guest with no copy in
// between (preadv/pwritev straight into/out of the guest's pages).

import { closeSync, constants, fdatasyncSync, fstatSync, openSync, readFileSync, readSync, readvSync, writeSync, writevSync } from 'node:fs';

export interface BlockBackend {
  /** image size in bytes; the device exposes floor(sizeBytes / 512) sectors */
  readonly sizeBytes: number;
  readOnly: boolean;
  /** Fill `views` in order from the image bytes starting at `offset`. Throws on an I/O error. */
  readInto(views: Uint8Array[], offset: number): void;
  /**
   * readInto() for one buffer given as (dst, dstOffset, length), so the device's hot path need not make a view
   * of guest memory for each request. Optional: the device falls back to readInto().
   */
  readAt?(dst: Uint8Array, dstOffset: number, length: number, offset: number): void;
  /** Write `views` in order to the image starting at `offset`. Throws on an I/O error. */
  writeFrom(views: Uint8Array[], offset: number): void;
  /** Make completed writes durable (virtio 1.2 §5.2.6.1: FLUSH). */
  flush(): void;
  /** Make [offset, offset+len) read back as zeroes; absent when the backend cannot. */
  writeZeroes?(offset: number, len: number): void;
  /** Release host resources (the file descriptor). */
  close?(): void;
}

/** The disk image could not be used; the message says why and what to do. */
export class BlockImageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BlockImageError';
  }
}

/** A backend call outside [0, sizeBytes): the device's checks should have made this impossible. */
export class BackendRangeError extends Error {
  constructor(offset: number, len: number, size: number) {
    super(`block backend access [${String(offset)}, +${String(len)}) is outside the ${String(size)}-byte image`);
    this.name = 'BackendRangeError';
  }
}

/** The file returned fewer bytes than asked (it shrank under us, or a write made no progress). */
export class ShortIo extends Error {
  constructor(op: string, offset: number, missing: number) {
    super(`${op} at image offset ${String(offset)} stopped with ${String(missing)} bytes left (did the image shrink?)`);
    this.name = 'ShortIo';
  }
}

function totalLength(views: readonly Uint8Array[]): number {
  let n = 0;
  for (const v of views) n += v.length;
  return n;
}

/** [dstOffset, dstOffset+length) must lie inside dst (readAt's buffer is guest memory: never past it). */
function checkSpan(dst: Uint8Array, dstOffset: number, length: number): void {
  if (!Number.isSafeInteger(dstOffset) || !Number.isSafeInteger(length) || dstOffset < 0 || length < 0 || dstOffset + length > dst.length) {
    throw new RangeError(`buffer range [${String(dstOffset)}, +${String(length)}) is outside a ${String(dst.length)}-byte buffer`);
  }
}

function checkRange(offset: number, len: number, size: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0 || len < 0 || offset + len > size) {
    throw new BackendRangeError(offset, len, size);
  }
}

// glibc/Linux UIO_MAXIOV: at most 1024 buffers per preadv/pwritev.
const IOV_MAX = 1024;
// readSync/writeSync refuse lengths above 2^31-1 (Node's kIoMaxLength); views longer than this take the
// vectored path, where the kernel returns partial counts instead.
const SINGLE_CALL_MAX = 1 << 30;

type VectorOp = (fd: number, bufs: Uint8Array[], position: number) => number;

/**
 * preadv/pwritev over all of `views` from `offset`, resuming after partial transfers. Each batch holds at
 * most IOV_MAX buffers; a transfer of 0 bytes with bytes left is an error (EOF on read).
 */
function vectored(op: VectorOp, opName: string, fd: number, views: readonly Uint8Array[], offset: number): void {
  const bufs = views.filter((v) => v.length > 0);
  let i = 0;
  let skip = 0; // bytes of bufs[i] already transferred
  let pos = offset;
  while (i < bufs.length) {
    const batch: Uint8Array[] = [skip === 0 ? bufs[i]! : bufs[i]!.subarray(skip)];
    for (let j = i + 1; j < bufs.length && batch.length < IOV_MAX; j++) batch.push(bufs[j]!);
    const n = op(fd, batch, pos);
    if (n <= 0) throw new ShortIo(opName, pos, totalLength(bufs.slice(i)) - skip);
    pos += n;
    let left = skip + n;
    while (i < bufs.length && left >= bufs[i]!.length) {
      left -= bufs[i]!.length;
      i++;
    }
    skip = left;
  }
}

/** Linux dev_t split (include/linux/kdev_t.h new_decode_dev). */
function majorMinor(rdev: number): string {
  const r = BigInt(rdev);
  const major = ((r >> 8n) & 0xfffn) | ((r >> 32n) & ~0xfffn);
  const minor = (r & 0xffn) | ((r >> 12n) & ~0xffn);
  return `${major}:${minor}`;
}

/** A raw disk image file (or a host block device) accessed with pread/pwrite on guest-memory views. */
export class FileBackend implements BlockBackend {
  private fdOrClosed: number;
  private zeroes: Uint8Array | undefined;

  private constructor(
    fd: number,
    readonly sizeBytes: number,
    public readOnly: boolean,
    readonly path: string,
  ) {
    this.fdOrClosed = fd;
  }

  /** Open `path` read-only or read-write. Throws BlockImageError with advice when it cannot. */
  static open(path: string, readOnly: boolean): FileBackend {
    let fd: number;
    try {
      fd = openSync(path, readOnly ? constants.O_RDONLY : constants.O_RDWR);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? String(e);
      const advice =
        !readOnly && (code === 'EACCES' || code === 'EROFS' || code === 'EPERM')
          ? ' (to attach it read-only, pass PATH:ro)'
          : code === 'ENOENT'
            ? ' (create an image first, e.g. truncate -s 1G disk.img && mkfs.ext4 disk.img)'
            : '';
      throw new BlockImageError(`cannot open disk image ${path} ${readOnly ? 'read-only' : 'read-write'}: ${code}${advice}`);
    }
    try {
      const st = fstatSync(fd);
      let size: number;
      if (st.isFile()) size = st.size;
      else if (st.isBlockDevice()) {
        // fstat reports 0 for block devices; sysfs has the size in 512-byte sectors.
        const sectors = Number(readFileSync(`/sys/dev/block/${majorMinor(st.rdev)}/size`, 'utf8').trim());
        size = sectors * 512;
      } else throw new BlockImageError(`disk image ${path} is neither a regular file nor a block device`);
      if (!Number.isSafeInteger(size) || size < 0) throw new BlockImageError(`disk image ${path} has an unusable size ${String(size)}`);
      return new FileBackend(fd, size, readOnly, path);
    } catch (e) {
      closeSync(fd);
      if (e instanceof BlockImageError) throw e;
      throw new BlockImageError(`cannot size disk image ${path}: ${(e as Error).message}`);
    }
  }

  private get fd(): number {
    if (this.fdOrClosed < 0) throw new BlockImageError(`disk image ${this.path} is closed`);
    return this.fdOrClosed;
  }

  readInto(views: Uint8Array[], offset: number): void {
    this.transfer(views, offset, readSync, readvSync, 'read');
  }

  readAt(dst: Uint8Array, dstOffset: number, length: number, offset: number): void {
    const fd = this.fd;
    checkSpan(dst, dstOffset, length);
    checkRange(offset, length, this.sizeBytes);
    if (length > SINGLE_CALL_MAX) {
      vectored(readvSync, 'read', fd, [dst.subarray(dstOffset, dstOffset + length)], offset);
      return;
    }
    // One pread(2) straight into guest memory, as fs.readSync into a buffer would; loop only on a short read.
    let done = 0;
    while (done < length) {
      const n = readSync(fd, dst, dstOffset + done, length - done, offset + done);
      if (n <= 0) throw new ShortIo('read', offset + done, length - done);
      done += n;
    }
  }

  writeFrom(views: Uint8Array[], offset: number): void {
    if (this.readOnly) throw new BlockImageError(`disk image ${this.path} is attached read-only`);
    this.transfer(views, offset, writeSync, writevSync, 'write');
  }

  /** Move bytes between the guest views and the file at `offset`, straight from/to guest memory. */
  private transfer(
    views: Uint8Array[],
    offset: number,
    one: (fd: number, b: Uint8Array, off: number, len: number, pos: number) => number,
    many: VectorOp,
    what: 'read' | 'write',
  ): void {
    const fd = this.fd;
    const v0 = views[0];
    if (views.length === 1 && v0 !== undefined && v0.length <= SINGLE_CALL_MAX) {
      checkRange(offset, v0.length, this.sizeBytes);
      // Fast path: one pread(2)/pwrite(2) on the guest view; loop only on a short transfer.
      let done = 0;
      while (done < v0.length) {
        const n = one(fd, v0, done, v0.length - done, offset + done);
        if (n <= 0) throw new ShortIo(what, offset + done, v0.length - done);
        done += n;
      }
      return;
    }
    checkRange(offset, totalLength(views), this.sizeBytes);
    vectored(many, what, fd, views, offset);
  }

  flush(): void {
    if (this.readOnly) return; // nothing of ours to make durable
    fdatasyncSync(this.fd);
  }

  /**
   * Zeroes by writing a shared zero buffer (Node has no fallocate(2); FALLOC_FL_ZERO_RANGE would need the
   * addon). The device bounds `len` by max_write_zeroes_sectors.
   */
  writeZeroes(offset: number, len: number): void {
    if (this.readOnly) throw new BlockImageError(`disk image ${this.path} is attached read-only`);
    checkRange(offset, len, this.sizeBytes);
    const z = (this.zeroes ??= new Uint8Array(1 << 20));
    let done = 0;
    while (done < len) {
      const n = writeSync(this.fd, z, 0, Math.min(z.length, len - done), offset + done);
      if (n <= 0) throw new ShortIo('write-zeroes', offset + done, len - done);
      done += n;
    }
  }

  close(): void {
    if (this.fdOrClosed >= 0) {
      closeSync(this.fdOrClosed);
      this.fdOrClosed = -1;
    }
  }
}

/** An in-memory disk for tests: records every access so fuzz tests can prove offsets stayed inside. */
export class MemoryBackend implements BlockBackend {
  readonly data: Uint8Array;
  readonly sizeBytes: number;
  readOnly: boolean;
  /** counts of each operation */
  readonly ops = { reads: 0, writes: 0, flushes: 0, writeZeroes: 0 };
  /** largest end offset any access reached, and smallest start (for bound checks in tests) */
  maxEnd = 0;
  minStart = Number.POSITIVE_INFINITY;
  /** when set, the next operation throws this error (then it is cleared): simulates a host I/O error */
  failNext: Error | undefined;

  constructor(sizeOrData: number | Uint8Array, opts: { readOnly?: boolean; writeZeroes?: boolean } = {}) {
    this.data = typeof sizeOrData === 'number' ? new Uint8Array(sizeOrData) : sizeOrData;
    this.sizeBytes = this.data.length;
    this.readOnly = opts.readOnly ?? false;
    if (opts.writeZeroes === false) this.writeZeroes = undefined;
  }

  private access(offset: number, len: number): void {
    const f = this.failNext;
    if (f !== undefined) {
      this.failNext = undefined;
      throw f;
    }
    checkRange(offset, len, this.sizeBytes);
    if (offset < this.minStart) this.minStart = offset;
    if (offset + len > this.maxEnd) this.maxEnd = offset + len;
  }

  readInto(views: Uint8Array[], offset: number): void {
    this.access(offset, totalLength(views));
    this.ops.reads++;
    let pos = offset;
    for (const v of views) {
      v.set(this.data.subarray(pos, pos + v.length));
      pos += v.length;
    }
  }

  readAt(dst: Uint8Array, dstOffset: number, length: number, offset: number): void {
    checkSpan(dst, dstOffset, length);
    this.access(offset, length);
    this.ops.reads++;
    dst.set(this.data.subarray(offset, offset + length), dstOffset);
  }

  writeFrom(views: Uint8Array[], offset: number): void {
    if (this.readOnly) throw new BlockImageError('memory disk is read-only');
    this.access(offset, totalLength(views));
    this.ops.writes++;
    let pos = offset;
    for (const v of views) {
      this.data.set(v, pos);
      pos += v.length;
    }
  }

  flush(): void {
    this.access(0, 0);
    this.ops.flushes++;
  }

  writeZeroes?: (offset: number, len: number) => void = (offset, len) => {
    if (this.readOnly) throw new BlockImageError('memory disk is read-only');
    this.access(offset, len);
    this.ops.writeZeroes++;
    this.data.fill(0, offset, offset + len);
  };
}
