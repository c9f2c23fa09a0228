// SET_MEM_TABLE regions are checked against the file behind their fd before anything is mapped.

import { closeSync, ftruncateSync } from 'node:fs';
import t from 'tap';
import { loadNative } from '../../src/kvm/native.js';
import { InvalidMemoryTable, MemoryTable } from '../../src/vhost-user/memory-table.js';

const native = loadNative();

function memfd(bytes: number): number {
  const fd = native.memfdCreate('mem-table-test');
  ftruncateSync(fd, bytes);
  return fd;
}

t.test('a region larger than its file is refused (touching it would SIGBUS the back-end)', async (t) => {
  const desc = { guestPhysAddr: 0n, memorySize: 1n << 20n, userspaceAddr: 0x7f0000000000n, mmapOffset: 0n };
  t.throws(() => MemoryTable.map([desc], [memfd(4096)], native), InvalidMemoryTable);
  t.throws(() => MemoryTable.map([{ ...desc, memorySize: 4096n, mmapOffset: 4096n }], [memfd(4096)], native), /past the end of its 4096-byte file/);
  const fd = memfd(1 << 20);
  const table = MemoryTable.map([desc], [fd], native);
  t.equal(table.mem.size, 1 << 20, 'a region inside its file maps');
  table.unmap();
  t.throws(() => closeSync(fd), 'the table closed the fd it was given');
});
