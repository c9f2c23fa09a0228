// tests/payloads/build.ts: every payload assembles and links into an ELF64 with a Xen PVH note
// whose entry matches e_entry. Needs binutils, not KVM.
import t from 'tap';
import { existsSync } from 'node:fs';
import { buildPayload, buildPayloadFile, PAYLOAD_NAMES, UnknownPayload } from '../payloads/build.js';

const PT_LOAD = 1;
const PT_NOTE = 4;
const XEN_ELFNOTE_PHYS32_ENTRY = 18; // PVH: include/xen/interface/elfnote.h

function pvhEntry(elf: Uint8Array): { entry: bigint; noteEntry: number | undefined; loads: number } {
  const v = new DataView(elf.buffer, elf.byteOffset, elf.byteLength);
  const entry = v.getBigUint64(24, true);
  const phoff = Number(v.getBigUint64(32, true));
  const phentsize = v.getUint16(54, true);
  const phnum = v.getUint16(56, true);
  let noteEntry: number | undefined;
  let loads = 0;
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    const type = v.getUint32(ph, true);
    if (type === PT_LOAD) loads++;
    if (type !== PT_NOTE) continue;
    let off = Number(v.getBigUint64(ph + 8, true));
    const end = off + Number(v.getBigUint64(ph + 32, true));
    while (off + 12 <= end) {
      const namesz = v.getUint32(off, true);
      const descsz = v.getUint32(off + 4, true);
      const ntype = v.getUint32(off + 8, true);
      const name = Buffer.from(elf.subarray(off + 12, off + 12 + namesz)).toString('latin1');
      const desc = off + 12 + ((namesz + 3) & ~3);
      if (name === 'Xen\0' && ntype === XEN_ELFNOTE_PHYS32_ENTRY && descsz === 4) noteEntry = v.getUint32(desc, true);
      off = desc + ((descsz + 3) & ~3);
    }
  }
  return { entry, noteEntry, loads };
}

for (const name of PAYLOAD_NAMES) {
  t.test(`${name} builds into an ELF64 with a PVH entry note`, async (t) => {
    const elf = await buildPayload(name);
    t.same([...elf.subarray(0, 5)], [0x7f, 0x45, 0x4c, 0x46, 2], 'ELF64 magic and class');
    const { entry, noteEntry, loads } = pvhEntry(elf);
    t.equal(loads, 1, 'one PT_LOAD segment');
    t.equal(noteEntry, Number(entry), 'XEN_ELFNOTE_PHYS32_ENTRY equals e_entry');
    t.ok(Number(entry) >= 0x100000, 'entry is at or above HIMEM_START (0x100000)');
  });
}

t.test('the cache returns the same file for unchanged sources', async (t) => {
  const a = await buildPayloadFile('uart');
  const b = await buildPayloadFile('uart');
  t.equal(a, b, 'same cache path');
  t.ok(existsSync(a), 'the cached file exists');
});

t.test('an unknown payload name is a named error', async (t) => {
  await t.rejects(buildPayload('no-such-payload'), UnknownPayload);
});
