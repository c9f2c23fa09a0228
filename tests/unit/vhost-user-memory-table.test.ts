// SET_MEM_TABLE regions are checked against the file behind their fd before anything is mapped: a file that
// supports seals must carry F_SEAL_SHRINK (added when it can be, refused when it cannot), and a region must
// lie inside its file (touching a mapping past the end of its file raises SIGBUS in the back-end).

import { closeSync, ftruncateSync, mkdtempSync, openSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { loadNative } from '../../src/kvm/native.js';
import { InvalidMemoryTable, MemoryTable } from '../../src/vhost-user/memory-table.js';
import { F_SEAL_GROW, F_SEAL_SEAL, F_SEAL_SHRINK, MFD_ALLOW_SEALING } from '../helpers/vhost-user-frontend.js';

const native = loadNative();
const desc = { guestPhysAddr: 0n, memorySize: 1n << 20n, userspaceAddr: 0x7f0000000000n, mmapOffset: 0n };

/** A memfd like QEMU's memory-backend-memfd: sealable unless `sealable` is false. */
function memfd(bytes: number, sealable = true): number {
  const fd = sealable ? native.memfdCreate('mem-table-test', MFD_ALLOW_SEALING) : native.memfdCreate('mem-table-test');
  ftruncateSync(fd, bytes);
  return fd;
}

/** A second fd of the same file (MemoryTable.map closes the fd it is given). */
function dupOf(fd: number, flags = 'r+'): number {
  return openSync(`/proc/self/fd/${fd}`, flags);
}

t.test('a region larger than its file is refused (touching it would SIGBUS the back-end)', async (t) => {
  t.throws(() => MemoryTable.map([desc], [memfd(4096)], native), InvalidMemoryTable);
  t.throws(() => MemoryTable.map([{ ...desc, memorySize: 4096n, mmapOffset: 4096n }], [memfd(4096)], native), /past the end of its 4096-byte file/);
  const fd = memfd(1 << 20);
  const table = MemoryTable.map([desc], [fd], native);
  t.equal(table.mem.size, 1 << 20, 'a region inside its file maps');
  table.unmap();
  t.throws(() => closeSync(fd), 'the table closed the fd it was given');
});

t.test('a sealable memfd gets F_SEAL_SHRINK: the front end can no longer shrink it under the mapping', async (t) => {
  const fd = memfd(1 << 20);
  const mine = dupOf(fd);
  t.equal(native.fdGetSeals(mine), 0, 'no seals before SET_MEM_TABLE');
  const table = MemoryTable.map([desc], [fd], native);
  t.equal(native.fdGetSeals(mine) & F_SEAL_SHRINK, F_SEAL_SHRINK, 'the back-end added F_SEAL_SHRINK');
  t.throws(() => ftruncateSync(mine, 4096), { code: 'EPERM' }, 'shrinking the memfd now fails');
  ftruncateSync(mine, 2 << 20); // growing is harmless
  table.mem.writeU32(0xff000, 0xfeedface); // the last page is still there
  t.equal(table.mem.readU32(0xff000), 0xfeedface);
  table.unmap();
  closeSync(mine);
});

t.test("QEMU's seal=on memfd (GROW|SHRINK|SEAL) maps as it is", async (t) => {
  const fd = memfd(1 << 20);
  native.fdAddSeals(fd, F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL);
  const table = MemoryTable.map([desc], [fd], native);
  t.equal(table.size, 1);
  table.unmap();
});

t.test('a file that supports seals but cannot take F_SEAL_SHRINK is refused, with what to do', async (t) => {
  // memfd without MFD_ALLOW_SEALING (QEMU seal=off): its only seal is F_SEAL_SEAL
  t.throws(() => MemoryTable.map([desc], [memfd(1 << 20, false)], native), {
    name: 'InvalidMemoryTable',
    message: /region 0 .*could shrink its file.*F_SEAL_SEAL is set without F_SEAL_SHRINK.*memory-backend-memfd/,
  });
  // sealable, but sealed shut without SHRINK
  const shut = memfd(1 << 20);
  native.fdAddSeals(shut, F_SEAL_SEAL);
  t.throws(() => MemoryTable.map([desc], [shut], native), /F_SEAL_SEAL is set without F_SEAL_SHRINK/);
  // sealable but handed over read-only: F_ADD_SEALS needs a writable fd
  const rw = memfd(1 << 20);
  const ro = dupOf(rw, 'r');
  closeSync(rw);
  t.throws(() => MemoryTable.map([desc], [ro], native), /F_SEAL_SHRINK could not be added to its fd .*EPERM/);
  // a file on tmpfs (QEMU memory-backend-file,mem-path=/dev/shm): the kernel gives it F_SEAL_SEAL
  const shm = '/dev/shm/kata-ts-mem-table-test';
  try {
    const f = openSync(shm, 'w+');
    unlinkSync(shm);
    ftruncateSync(f, 1 << 20);
    t.throws(() => MemoryTable.map([desc], [f], native), /F_SEAL_SEAL is set without F_SEAL_SHRINK/, 'a tmpfs file is refused');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    t.comment('no /dev/shm here');
  }
});

t.test('a file without seal support (a disk file system) is checked by size only', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mem-table-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'ram');
  writeFileSync(path, Buffer.alloc(0));
  const f = openSync(path, 'r+');
  ftruncateSync(f, 1 << 20);
  let sealable = true;
  try {
    native.fdGetSeals(f);
  } catch (e) {
    sealable = (e as NodeJS.ErrnoException).code !== 'EINVAL';
  }
  if (sealable) {
    t.throws(() => MemoryTable.map([desc], [f], native), InvalidMemoryTable, `${tmpdir()} is tmpfs: its files cannot be sealed and are refused`);
    return;
  }
  const table = MemoryTable.map([desc], [f], native);
  t.equal(table.size, 1, 'mapped (residual risk: the front end may truncate it later)');
  table.unmap();
  const short = openSync(path, 'r+');
  ftruncateSync(short, 4096);
  t.throws(() => MemoryTable.map([desc], [short], native), /past the end of its 4096-byte file/);
});
