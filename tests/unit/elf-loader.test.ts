import t from 'tap';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { parseElf } from '../../src/boot/elf.js';
import { findPvhEntry } from '../../src/boot/pvh.js';
import { loadKernel } from '../../src/boot/loader.js';
import {
  InvalidElf,
  InvalidPvhNote,
  NoPvhNote,
  OverlappingSegments,
  SegmentOutsideRam,
  TruncatedElf,
} from '../../src/boot/errors.js';
import { buildElf, pattern, pvhNote, PT_LOAD } from '../helpers/elf-builder.js';

const MiB = 1024 * 1024;
const mem = (): GuestMemory => GuestMemory.anonymous([{ base: 0, size: 4 * MiB }]);

t.test('loads a valid PVH kernel: file bytes copied, bss zeroed, entry from the note', async (t) => {
  const text = pattern(0x300, 3);
  const data = pattern(0x40, 9);
  const elf = buildElf({
    segments: [
      { paddr: 0x100000, data: text },
      { paddr: 0x200000, data, memsz: 0x1000 }, // 0xfc0 bytes of bss
    ],
    notes: [{ name: 'GNU', type: 3, desc: pattern(20) }, pvhNote(0x100040)],
  });
  const m = mem();
  m.fill(0x200000, 0x1000, 0xcc); // garbage where the bss goes
  const r = loadKernel(m, elf);
  t.equal(r.entry, 0x100040, 'entry = the note value, not e_entry');
  t.equal(r.kernelEnd, 0x201000, 'kernelEnd = end of the highest segment (memsz)');
  t.same(m.read(0x100000, text.length), text);
  t.same(m.read(0x200000, data.length), data);
  t.ok(m.read(0x200040, 0xfc0).every((b) => b === 0), 'memsz - filesz zero-filled');
  t.equal(m.readU8(0x201000), 0, 'nothing written past memsz');
});

t.test('a 32-bit (4-byte) PVH note desc is accepted', async (t) => {
  const elf = buildElf({ segments: [{ paddr: 0x100000, data: pattern(64) }], notes: [pvhNote(0x100010, 4)] });
  t.equal(loadKernel(mem(), elf).entry, 0x100010);
});

t.test('parseElf reads program headers', async (t) => {
  const elf = buildElf({ segments: [{ paddr: 0x100000, data: pattern(16), memsz: 32, vaddr: 0xffff_ffff_8100_0000n }], notes: [pvhNote(0x100000)] });
  const img = parseElf(elf);
  t.equal(img.loads.length, 1);
  t.equal(img.notes.length, 1);
  t.match(img.loads[0], { type: PT_LOAD, paddr: 0x100000, vaddr: 0xffff_ffff_8100_0000n, filesz: 16, memsz: 32 });
  t.equal(img.entry, 0xffff_ffff_8100_0000n, 'e_entry kept as an upper-half bigint');
});

t.test('no PVH note: NoPvhNote names CONFIG_PVH', async (t) => {
  const noNotes = buildElf({ segments: [{ paddr: 0x100000, data: pattern(64) }] });
  t.throws(() => loadKernel(mem(), noNotes), NoPvhNote);
  t.throws(() => loadKernel(mem(), noNotes), /CONFIG_PVH=y/);
  // a Xen note of another type, and a non-Xen note of type 18, do not count
  const otherNotes = buildElf({
    segments: [{ paddr: 0x100000, data: pattern(64) }],
    notes: [
      { name: 'Xen', type: 17, desc: pattern(8) },
      { name: 'GNU', type: 18, desc: pattern(8) },
      { name: 'Xe', type: 18, desc: pattern(8) },
    ],
  });
  t.throws(() => loadKernel(mem(), otherNotes), NoPvhNote);
});

t.test('header checks', async (t) => {
  const seg = { paddr: 0x100000, data: pattern(64) };
  const notes = [pvhNote(0x100000)];
  const good = buildElf({ segments: [seg], notes });
  const bad = good.slice();
  bad[0] = 0x7e;
  t.throws(() => parseElf(bad), InvalidElf, 'bad magic');
  t.throws(() => parseElf(buildElf({ segments: [seg], notes, elfClass: 1 })), /ELFCLASS64/);
  t.throws(() => parseElf(buildElf({ segments: [seg], notes, dataEncoding: 2 })), /little-endian/);
  t.throws(() => parseElf(buildElf({ segments: [seg], notes, machine: 3 })), /EM_X86_64/);
  t.throws(() => parseElf(buildElf({ segments: [seg], notes, type: 3 })), /ET_EXEC/);
  t.throws(() => parseElf(buildElf({ segments: [seg], notes, phentsize: 32 })), /e_phentsize/);
  t.throws(() => parseElf(buildElf({ segments: [], notes: undefined })), /no program headers/);
});

t.test('truncated images', async (t) => {
  const elf = buildElf({ segments: [{ paddr: 0x100000, data: pattern(256) }], notes: [pvhNote(0x100000)] });
  t.throws(() => parseElf(elf.subarray(0, 40)), TruncatedElf, 'shorter than the header');
  t.throws(() => parseElf(elf.subarray(0, 64 + 56)), TruncatedElf, 'program header table cut');
  t.throws(() => loadKernel(mem(), elf.subarray(0, elf.length - 16)), TruncatedElf, 'segment data cut');
  t.throws(() => parseElf(buildElf({ segments: [{ paddr: 0x100000, data: pattern(16) }], phoff: 0x10000 })), TruncatedElf, 'phoff past the end');
  t.ok(TruncatedElf.prototype instanceof InvalidElf, 'TruncatedElf is an InvalidElf');
});

t.test('filesz > memsz is rejected', async (t) => {
  const elf = buildElf({ segments: [{ paddr: 0x100000, data: pattern(64), memsz: 32 }], notes: [pvhNote(0x100000)] });
  t.throws(() => parseElf(elf), /p_filesz 64 > p_memsz 32/);
});

t.test('overlapping segments', async (t) => {
  const elf = buildElf({
    segments: [
      { paddr: 0x100000, data: pattern(0x100), memsz: 0x2000 },
      { paddr: 0x101000, data: pattern(0x100) },
    ],
    notes: [pvhNote(0x100000)],
  });
  const m = mem();
  t.throws(() => loadKernel(m, elf), OverlappingSegments);
  t.equal(m.readU8(0x100001), 0, 'nothing written on error');
  // touching but not overlapping is fine
  const ok = buildElf({
    segments: [
      { paddr: 0x101000, data: pattern(0x100) },
      { paddr: 0x100000, data: pattern(0x100), memsz: 0x1000 },
    ],
    notes: [pvhNote(0x100000)],
  });
  t.equal(loadKernel(mem(), ok).kernelEnd, 0x101100);
});

t.test('segments outside RAM or below HIMEM_START', async (t) => {
  const past = buildElf({ segments: [{ paddr: 4 * MiB - 0x10, data: pattern(0x20) }], notes: [pvhNote(4 * MiB - 0x10)] });
  t.throws(() => loadKernel(mem(), past), SegmentOutsideRam, 'runs off the end of RAM');
  const bssPast = buildElf({ segments: [{ paddr: 0x300000, data: pattern(0x20), memsz: 2 * MiB }], notes: [pvhNote(0x300000)] });
  t.throws(() => loadKernel(mem(), bssPast), SegmentOutsideRam, 'bss runs off the end of RAM');
  const low = buildElf({ segments: [{ paddr: 0x6000, data: pattern(0x20) }], notes: [pvhNote(0x6000)] });
  t.throws(() => loadKernel(mem(), low), SegmentOutsideRam, 'over the boot structures');
  t.equal(loadKernel(mem(), low, { minAddr: 0 }).entry, 0x6000, 'minAddr can be lowered');
  const gap = buildElf({ segments: [{ paddr: 0xc000_0000, data: pattern(0x20) }], notes: [pvhNote(0xc000_0000)] });
  t.throws(() => loadKernel(mem(), gap), SegmentOutsideRam, 'in the MMIO gap');
});

t.test('malformed notes', async (t) => {
  const seg = { paddr: 0x100000, data: pattern(64) };
  // namesz claims more bytes than the segment has
  t.throws(
    () => loadKernel(mem(), buildElf({ segments: [seg], notes: [{ ...pvhNote(0x100000), namesz: 0x1000 }] })),
    InvalidPvhNote,
  );
  // descsz claims more bytes than the segment has (and would wrap a 32-bit reader)
  t.throws(
    () => loadKernel(mem(), buildElf({ segments: [seg], notes: [{ ...pvhNote(0x100000), descsz: 0xffff_fffc }] })),
    /runs past the end of its PT_NOTE segment/,
  );
  // PVH desc of a size other than 4 or 8
  t.throws(
    () => loadKernel(mem(), buildElf({ segments: [seg], notes: [{ name: 'Xen', type: 18, desc: pattern(2) }] })),
    /2-byte desc/,
  );
  // 64-bit entry above 4 GiB
  t.throws(() => loadKernel(mem(), buildElf({ segments: [seg], notes: [pvhNote(2 ** 33)] })), /not a 32-bit/);
  // note segment filesz larger than the file
  t.throws(() => parseElf(buildElf({ segments: [seg], notes: [pvhNote(0x100000)], noteFilesz: 0x10_0000 })), TruncatedElf);
  // note filesz cut inside the note: the note runs past the segment
  t.throws(() => loadKernel(mem(), buildElf({ segments: [seg], notes: [pvhNote(0x100000)], noteFilesz: 20 })), InvalidPvhNote);
  // trailing bytes shorter than a note header are ignored (padding): no PVH note, but no malformed one either
  const gnu = { name: 'GNU', type: 3, desc: pattern(20) }; // 12 + 4 + 20 = 36 bytes
  const img = buildElf({ segments: [seg], notes: [gnu], noteFilesz: 36 + 8 });
  t.throws(() => findPvhEntry(img, parseElf(img)), NoPvhNote);
  const two = buildElf({ segments: [seg], notes: [gnu, pvhNote(0x100020)] });
  t.equal(findPvhEntry(two, parseElf(two)), 0x100020, 'found after another note');
});

t.test('the PVH entry must be inside a loaded segment', async (t) => {
  const elf = buildElf({ segments: [{ paddr: 0x100000, data: pattern(64), memsz: 0x1000 }], notes: [pvhNote(0x100800)] });
  t.throws(() => loadKernel(mem(), elf), /not inside any loaded segment/);
});
