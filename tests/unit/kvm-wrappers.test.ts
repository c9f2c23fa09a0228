// The typed KVM wrappers with an injected fake addon: no /dev/kvm needed.
import t from 'tap';

import { KVM_CAP_IRQFD, REQUIRED_CAPS } from '../../src/kvm/caps.js';
import { FdClosedError, KvmError, MsrWriteError } from '../../src/kvm/errors.js';
import { EventFd } from '../../src/kvm/eventfd.js';
import { Kvm, kvmAvailable } from '../../src/kvm/kvm.js';
import type { NativeAddon, NativeError } from '../../src/kvm/native.js';
import { encodeCpuidEntries, KVM_REGS_SIZE } from '../../src/kvm/structs.js';

function nativeError(syscall: string, code: string, errno: number): NativeError {
  return Object.assign(new Error(`${syscall} failed: (${code})`), { code, errno, syscall });
}

const notFaked = (name: string) => (): never => {
  throw new Error(`fake addon: ${name} not faked`);
};

/** A fake addon recording calls; override what a test needs. */
function fakeAddon(over: Partial<NativeAddon> = {}): { native: NativeAddon; calls: string[] } {
  const calls: string[] = [];
  const base: NativeAddon = {
    openDevice: () => 3,
    close: (fd) => void calls.push(`close ${fd}`),
    getApiVersion: () => 12,
    checkExtension: (_fd, cap) => (cap === KVM_CAP_IRQFD ? 1 : 0),
    createVm: () => 4,
    getVcpuMmapSize: () => 12288,
    getSupportedCpuid: () => encodeCpuidEntries([{ function: 0, index: 0, flags: 0, eax: 0xd, ebx: 1, ecx: 2, edx: 3 }]),
    createVcpu: () => 5,
    setUserMemoryRegion: (...a) => void calls.push(`mem ${a.join(',')}`),
    createIrqchip: () => undefined,
    createPit2: () => undefined,
    setTssAddr: () => undefined,
    setIdentityMapAddr: () => undefined,
    irqfd: (...a) => void calls.push(`irqfd ${a.join(',')}`),
    ioeventfd: (...a) => void calls.push(`ioeventfd ${a.map(String).join(',')}`),
    irqLine: () => undefined,
    getRegs: () => new Uint8Array(KVM_REGS_SIZE),
    setRegs: () => undefined,
    getSregs: notFaked('getSregs'),
    setSregs: notFaked('setSregs'),
    getMsrs: (_fd, idx) => idx.map((i) => BigInt(i) * 2n),
    setMsrs: (_fd, idx) => idx.length,
    setCpuid2: () => undefined,
    getLapic: () => new Uint8Array(1024),
    setLapic: () => undefined,
    run: () => 0,
    mmapAnonymous: notFaked('mmapAnonymous'),
    mmapFd: notFaked('mmapFd'),
    wrapMapping: notFaked('wrapMapping'),
    munmap: notFaked('munmap'),
    residentBytes: notFaked('residentBytes'),
    eventfd: () => 7,
    eventfdWrite: (...a) => void calls.push(`efdw ${a.join(',')}`),
    eventfdRead: () => null,
    installKickHandler: () => undefined,
    sigrtmin: () => 34,
    threadSelf: () => 1n,
    threadKill: () => undefined,
    watchReadable: () => 1,
    unwatch: () => undefined,
    readv: () => 0,
    writev: () => 0,
    tapOpen: () => ({ fd: 9, name: 'tap0' }),
    tapSetOffload: () => undefined,
    tapSetVnetHdrSize: () => undefined,
    unixListen: () => 10,
    unixAccept: () => null,
    unixConnect: () => 11,
    socketpair: () => [12, 13],
    recvmsgFds: () => null,
    sendmsgFds: () => null,
    memfdCreate: () => 14,
    peerCred: notFaked('peerCred'),
    fdSetNonblock: notFaked('fdSetNonblock'),
    fdGetSeals: notFaked('fdGetSeals'),
    fdAddSeals: notFaked('fdAddSeals'),
    unixConnectProbe: notFaked('unixConnectProbe'),
    eventfdWriteDeadline: notFaked('eventfdWriteDeadline'),
    eventfdReadDeadline: notFaked('eventfdReadDeadline'),
    fsOpenat: notFaked('fsOpenat'),
    fsOpenat2: notFaked('fsOpenat2'),
    fsReopen: notFaked('fsReopen'),
    fsFstatat: notFaked('fsFstatat'),
    fsReadlinkat: notFaked('fsReadlinkat'),
    fsMkdirat: notFaked('fsMkdirat'),
    fsMknodat: notFaked('fsMknodat'),
    fsSymlinkat: notFaked('fsSymlinkat'),
    fsLinkat: notFaked('fsLinkat'),
    fsLinkFd: notFaked('fsLinkFd'),
    fsUnlinkat: notFaked('fsUnlinkat'),
    fsRenameat2: notFaked('fsRenameat2'),
    fsChmodFd: notFaked('fsChmodFd'),
    fsChownFd: notFaked('fsChownFd'),
    fsUtimensFd: notFaked('fsUtimensFd'),
    fsFallocate: notFaked('fsFallocate'),
    fsLseek: notFaked('fsLseek'),
    fsCopyFileRange: notFaked('fsCopyFileRange'),
    fsFstatfs: notFaked('fsFstatfs'),
    fsGetdents64: notFaked('fsGetdents64'),
    fsGetxattr: notFaked('fsGetxattr'),
    fsListxattr: notFaked('fsListxattr'),
    fsSetxattr: notFaked('fsSetxattr'),
    fsRemovexattr: notFaked('fsRemovexattr'),
    bindMount: notFaked('bindMount'),
    unmount: notFaked('unmount'),
    openPty: notFaked('openPty'),
    setControllingTty: notFaked('setControllingTty'),
    setWindowSize: notFaked('setWindowSize'),
    ttyMakeRaw: notFaked('ttyMakeRaw'),
    ttyRestore: notFaked('ttyRestore'),
  };
  return { native: { ...base, ...over }, calls };
}

t.test('Kvm -> VmFd -> VcpuFd with a fake addon', async (t) => {
  const { native, calls } = fakeAddon();
  const kvm = Kvm.open(native);
  t.equal(kvm.checkExtension(KVM_CAP_IRQFD), 1);
  t.same(kvm.supportedCpuid(), [{ function: 0, index: 0, flags: 0, eax: 0xd, ebx: 1, ecx: 2, edx: 3 }]);
  const vm = kvm.createVm();
  t.equal(vm.vcpuMmapSize, 12288);
  vm.setUserMemoryRegion({ slot: 1, flags: 0, guestPhysAddr: 0x1_0000_0000, size: 0x20_0000, userspaceAddr: 0x7f00_0000_0000n });
  t.ok(calls.includes('mem 4,1,0,4294967296,2097152,139637976727552'), 'numbers became bigints');
  t.throws(() => vm.setUserMemoryRegion({ slot: 0, flags: 0, guestPhysAddr: 0x1001, size: 4096, userspaceAddr: 0n }), RangeError);
  const ev = new EventFd(native);
  vm.irqfd(ev, 4);
  vm.ioeventfd(ev, { addr: 0xd000_0050, len: 4, datamatch: 0n });
  vm.ioeventfd(ev, { addr: 0x80, len: 1, pio: true });
  t.ok(calls.includes('irqfd 4,7,4,0'));
  t.ok(calls.includes('ioeventfd 4,7,3489661008,4,0,0'), 'datamatch passed, DATAMATCH flag left to the addon');
  t.ok(calls.includes('ioeventfd 4,7,128,1,null,2'), 'PIO flag');
  const vcpu = vm.createVcpu(0);
  t.equal(vcpu.fd, 5);
  t.same(vcpu.getMsrs([0x10, 0x174]), [{ index: 0x10, data: 0x20n }, { index: 0x174, data: 0x2e8n }]);
  t.equal(vcpu.getRegs().rip, 0n);
  t.throws(() => vcpu.setLapic(new Uint8Array(10)), TypeError);
  vcpu.close();
  vcpu.close();
  t.equal(calls.filter((c) => c === 'close 5').length, 1, 'close is idempotent');
  t.throws(() => vcpu.run(), FdClosedError);
  vm.close();
  kvm.close();
});

t.test('setMsrs reports a partial write with a named error', async (t) => {
  const { native } = fakeAddon({ setMsrs: () => 1 });
  const vcpu = Kvm.open(native).createVm().createVcpu(0);
  const err = t.throws(() => vcpu.setMsrs([{ index: 0x10, data: 1n }, { index: 0xc000_0080, data: 2n }]));
  t.ok(err instanceof MsrWriteError);
  t.equal((err as MsrWriteError).index, 0xc000_0080);
  t.match((err as Error).message, /set 1 of 2 MSRs; MSR 0xc0000080/);
});

t.test('native errors become KvmError with errno, code and syscall', async (t) => {
  const { native } = fakeAddon({
    createVcpu: () => {
      throw nativeError('KVM_CREATE_VCPU', 'EINVAL', 22);
    },
  });
  const vm = Kvm.open(native).createVm();
  const err = t.throws(() => vm.createVcpu(1_000_000));
  t.ok(err instanceof KvmError);
  t.match(err, { code: 'EINVAL', errno: 22, syscall: 'KVM_CREATE_VCPU' });
  t.ok((err as Error).cause, 'the native error is kept as cause');
});

t.test('Kvm.open refuses an API version other than 12', async (t) => {
  const { native, calls } = fakeAddon({ getApiVersion: () => 11 });
  t.throws(() => Kvm.open(native), { name: 'KvmError', syscall: 'KVM_GET_API_VERSION' });
  t.ok(calls.includes('close 3'), 'the fd is closed');
});

t.test('EventFd', async (t) => {
  const { native, calls } = fakeAddon();
  const ev = EventFd.create(native);
  ev.write();
  ev.write(5n);
  t.same(calls, ['efdw 7,1', 'efdw 7,5']);
  t.equal(ev.read(), null);
  ev.close();
  t.throws(() => ev.write(), FdClosedError);
  t.equal(EventFd.fromFd(9, native).fd, 9);
});

t.test('kvmAvailable explains a missing device', async (t) => {
  const r = kvmAvailable('/nonexistent/kvm', fakeAddon().native);
  t.equal(r.ok, false);
  t.match(r.ok ? '' : r.reason, /\/nonexistent\/kvm is missing: enable virtualization/);
});

t.test('a KVM without a required capability is refused by name, before any VM is made', async (t) => {
  const missing = KVM_CAP_IRQFD;
  const { native } = fakeAddon({ checkExtension: (_fd, cap) => (cap === missing ? 0 : 1) });
  const kvm = Kvm.open(native);
  t.throws(() => kvm.requireCapabilities(REQUIRED_CAPS), { name: 'MissingKvmCapability', message: /lacks KVM_CAP_IRQFD \(needed for device interrupts by eventfd\)/ });
  const { native: all } = fakeAddon({ checkExtension: () => 1 });
  t.doesNotThrow(() => Kvm.open(all).requireCapabilities(REQUIRED_CAPS), 'every capability present');
  t.ok(REQUIRED_CAPS.some((c) => c.cap === missing), 'irqfd is one of the required capabilities');
});
