// The addon and typed wrappers against the real /dev/kvm: a real-mode guest doing port I/O, HLT,
// ioeventfd/irqfd registration, MSRs, CPUID, LAPIC, immediate_exit and error shapes.
// Skipped (with the reason) where /dev/kvm cannot be opened.
import t from 'tap';

import { KVM_CAP_IMMEDIATE_EXIT, KVM_CAP_IOEVENTFD, KVM_CAP_IRQFD, KVM_CAP_USER_MEMORY } from '../../src/kvm/caps.js';
import { KvmError } from '../../src/kvm/errors.js';
import { EventFd } from '../../src/kvm/eventfd.js';
import { Kvm, kvmAvailable } from '../../src/kvm/kvm.js';
import { loadNative, type NativeAddon, type NativeMapping } from '../../src/kvm/native.js';
import { decodeExit, ioData, setImmediateExit } from '../../src/kvm/run.js';
import { KVM_LAPIC_STATE_SIZE } from '../../src/kvm/structs.js';
import type { VcpuFd } from '../../src/kvm/vcpu-fd.js';
import type { VmFd } from '../../src/kvm/vm-fd.js';

const EINTR = 4;
const MIB = 1 << 20;
const CODE_ADDR = 0x1000;

const avail = kvmAvailable();
if (!avail.ok) {
  t.plan(0, `KVM unavailable: ${avail.reason}`);
} else {
  const native: NativeAddon = loadNative();

  interface RealModeVm {
    kvm: Kvm;
    vm: VmFd;
    vcpu: VcpuFd;
    mem: NativeMapping;
    run: DataView;
    close(): void;
  }

  /** A VM with 1 MiB of RAM at 0, `code` at 0x1000 and one vCPU in real mode about to run it. */
  const realModeVm = (code: number[], opts: { irqchip?: boolean } = {}): RealModeVm => {
    const kvm = Kvm.open(native);
    const vm = kvm.createVm();
    if (opts.irqchip) vm.createIrqchip();
    const mem = native.mmapAnonymous(MIB, false);
    new Uint8Array(mem.buffer).set(code, CODE_ADDR);
    vm.setUserMemoryRegion({ slot: 0, flags: 0, guestPhysAddr: 0, size: MIB, userspaceAddr: mem.addr });
    const vcpu = vm.createVcpu(0);
    const sregs = vcpu.getSregs();
    vcpu.setSregs({ ...sregs, cs: { ...sregs.cs, base: 0n, selector: 0 } });
    vcpu.setRegs({ ...vcpu.getRegs(), rip: BigInt(CODE_ADDR), rflags: 2n });
    const run = vcpu.runView();
    return {
      kvm, vm, vcpu, mem, run,
      close() {
        vcpu.close();
        vm.close();
        native.munmap(mem.addr);
        kvm.close();
      },
    };
  };

  t.test('capabilities the VMM relies on', async (t) => {
    const kvm = Kvm.open(native);
    t.equal(kvm.apiVersion(), 12);
    for (const cap of [KVM_CAP_USER_MEMORY, KVM_CAP_IRQFD, KVM_CAP_IOEVENTFD, KVM_CAP_IMMEDIATE_EXIT]) {
      t.ok(kvm.checkExtension(cap) > 0, `cap ${cap} present`);
    }
    t.ok(kvm.vcpuMmapSize() >= 4096, 'run page is at least a page');
    const cpuid = kvm.supportedCpuid();
    t.ok(cpuid.some((e) => e.function === 0 && e.eax >= 1), 'leaf 0 reports a max basic leaf');
    kvm.close();
  });

  t.test('real-mode guest: out 0xe9 then HLT (no irqchip: HLT exits to user space)', async (t) => {
    // B0 42: mov al, 0x42;  E6 E9: out 0xe9, al;  E6 80: out 0x80, al;  F4: hlt
    const g = realModeVm([0xb0, 0x42, 0xe6, 0xe9, 0xe6, 0x80, 0xf4]);
    t.teardown(() => g.close());
    // port 0x80 goes to an ioeventfd: no exit, the eventfd counts it
    const ev = EventFd.create(native);
    t.teardown(() => ev.close());
    g.vm.ioeventfd(ev, { addr: 0x80, len: 1, pio: true });

    t.equal(g.vcpu.run(), 0);
    const first = decodeExit(g.run);
    t.match(first, { kind: 'io-out', port: 0xe9, size: 1, count: 1 });
    if (first.kind !== 'io-out') return;
    t.same([...ioData(g.run, first)], [0x42], 'the byte written');

    t.equal(g.vcpu.run(), 0);
    t.same(decodeExit(g.run), { kind: 'hlt' });
    t.equal(g.vcpu.getRegs().rip, BigInt(CODE_ADDR + 7), 'RIP after the hlt');
    t.equal(g.vcpu.getRegs().rax & 0xffn, 0x42n);
    t.equal(ev.read(), 1n, 'the ioeventfd fired once for out 0x80');
    t.equal(ev.read(), null, 'and was reset by the read');
    g.vm.ioeventfd(ev, { addr: 0x80, len: 1, pio: true, deassign: true });
  });

  t.test('immediate_exit makes KVM_RUN return EINTR without running', async (t) => {
    const g = realModeVm([0xf4]);
    t.teardown(() => g.close());
    setImmediateExit(g.run, true);
    t.equal(g.vcpu.run(), EINTR);
    t.equal(g.vcpu.getRegs().rip, BigInt(CODE_ADDR), 'the guest did not move');
    setImmediateExit(g.run, false);
    t.equal(g.vcpu.run(), 0);
    t.same(decodeExit(g.run), { kind: 'hlt' });
  });

  t.test('irqchip, PIT, irqfd, ioeventfd, irq line, LAPIC', async (t) => {
    const kvm = Kvm.open(native);
    const vm = kvm.createVm();
    t.teardown(() => {
      vm.close();
      kvm.close();
    });
    vm.setTssAddr(0xfffb_d000);
    vm.setIdentityMapAddr(0xfffb_c000);
    vm.createIrqchip();
    vm.createPit2();
    const ev = EventFd.create(native);
    t.teardown(() => ev.close());
    vm.irqfd(ev, 4);
    vm.ioeventfd(ev, { addr: 0xd000_0050, len: 4 });
    vm.ioeventfd(ev, { addr: 0xd000_0250, len: 4, datamatch: 3n });
    vm.ioeventfd(ev, { addr: 0x3f8, len: 1, pio: true });
    t.throws(() => vm.ioeventfd(ev, { addr: 0xd000_0050, len: 4 }), { name: 'KvmError', code: 'EEXIST', syscall: 'KVM_IOEVENTFD' });
    vm.ioeventfd(ev, { addr: 0xd000_0050, len: 4, deassign: true });
    vm.irqfd(ev, 4, { deassign: true });
    vm.irqLine(5, 1);
    vm.irqLine(5, 0);
    const vcpu = vm.createVcpu(0);
    t.teardown(() => vcpu.close());
    const lapic = vcpu.getLapic();
    t.equal(lapic.byteLength, KVM_LAPIC_STATE_SIZE);
    vcpu.setLapic(lapic);
    vcpu.setCpuid2(kvm.supportedCpuid());
  });

  t.test('MSRs', async (t) => {
    const g = realModeVm([0xf4]);
    t.teardown(() => g.close());
    const IA32_SYSENTER_CS = 0x174;
    g.vcpu.setMsrs([{ index: IA32_SYSENTER_CS, data: 0x10n }]);
    t.same(g.vcpu.getMsrs([IA32_SYSENTER_CS]), [{ index: IA32_SYSENTER_CS, data: 0x10n }]);
    const bogus = 0x4b56_ffff;
    t.throws(() => g.vcpu.getMsrs([IA32_SYSENTER_CS, bogus]), { name: 'KvmError', syscall: 'KVM_GET_MSRS' });
    t.throws(() => g.vcpu.setMsrs([{ index: bogus, data: 1n }]), { name: 'MsrWriteError', index: bogus });
  });

  t.test('eventfd write/read round trip', async (t) => {
    const ev = EventFd.create(native);
    t.equal(ev.read(), null, 'non-blocking read of an empty counter');
    ev.write();
    ev.write(41n);
    t.equal(ev.read(), 42n);
    t.equal(ev.read(), null);
    ev.close();
  });

  t.test('mappings: wrap, resident bytes, munmap', async (t) => {
    const m = native.mmapAnonymous(4 * 4096, true);
    t.equal(m.buffer.byteLength, 4 * 4096);
    t.equal(native.residentBytes(m.addr, m.size), 0, 'nothing touched yet');
    new Uint8Array(m.buffer)[4096 + 5] = 77;
    t.equal(native.residentBytes(m.addr, m.size), 4096, 'one page touched');
    const w = native.wrapMapping(m.addr + 4096n, 4096);
    t.equal(new Uint8Array(w)[5], 77, 'a second view sees the same memory');
    const same = native.wrapMapping(m.addr, m.size);
    t.equal(new Uint8Array(same)[4096 + 5], 77, 'wrapping the exact same range again is allowed');
    t.throws(() => native.wrapMapping(m.addr + 4096n, 4 * 4096), RangeError);
    t.throws(() => native.wrapMapping(0x1000n, 16), RangeError);
    t.throws(() => native.residentBytes(m.addr, 5 * 4096), RangeError);
    native.munmap(m.addr);
    t.throws(() => native.munmap(m.addr), RangeError, 'a second munmap is refused');
    t.throws(() => native.wrapMapping(m.addr, 16), RangeError, 'unmapped ranges cannot be wrapped');
  });

  t.test('argument checks throw TypeError/RangeError', async (t) => {
    const bad = native as unknown as Record<string, (...a: unknown[]) => unknown>;
    t.throws(() => bad['getRegs']!('3'), TypeError);
    t.throws(() => bad['getRegs']!(), { name: 'TypeError', message: 'getRegs expects 1 argument, got 0' });
    t.throws(() => native.setRegs(0, new Uint8Array(10)), { name: 'TypeError', message: /exactly 144 bytes/ });
    t.throws(() => bad['setSregs']!(0, [1, 2, 3]), TypeError);
    t.throws(() => native.setUserMemoryRegion(0, 0, 0, 0n, -1n, 0n), RangeError);
    t.throws(() => native.close(-1), RangeError);
    t.throws(() => native.installKickHandler(2), RangeError, 'SIGINT is not a kick signal');
    t.throws(() => native.ioeventfd(0, 0, 0n, 4, null, 1), TypeError, 'the DATAMATCH flag is implied by datamatch');
  });

  t.test('failing ioctls throw errors naming the ioctl', async (t) => {
    const kvm = Kvm.open(native);
    const vm = kvm.createVm();
    t.teardown(() => {
      vm.close();
      kvm.close();
    });
    const err = t.throws(() => vm.createVcpu(0x7fff_ffff));
    t.ok(err instanceof KvmError, 'a KvmError');
    t.match(err, { code: 'EINVAL', errno: 22, syscall: 'KVM_CREATE_VCPU', message: /^KVM_CREATE_VCPU failed: Invalid argument \(EINVAL\)$/ });
    // the raw addon error has the same shape
    t.throws(() => native.getRegs(vm.fd), { code: 'ENOTTY', syscall: 'KVM_GET_REGS' }, 'a vCPU ioctl on a VM fd');
    t.throws(() => native.openDevice('/nonexistent/kvm'), { code: 'ENOENT', errno: 2, syscall: 'open' });
  });
}
