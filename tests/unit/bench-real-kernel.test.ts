// Which real-kernel boot series the bench runs on which host.
import t from 'tap';
import { realKernelSeries } from '../../bench/real-kernel.js';

const Q = '/usr/bin/qemu-system-x86_64';
t.same(realKernelSeries({ virtualization: 'hardware', qemuPath: Q }).series, ['inproc', 'qemu_kvm', 'qemu_tcg'], 'hardware: all three');
const sw = realKernelSeries({ virtualization: 'software', qemuPath: Q });
t.same(sw.series, ['qemu_tcg'], 'software KVM: qemu+TCG only');
t.match(sw.notes.join('\n'), /inproc: skipped.*software virtualizer/);
t.same(realKernelSeries({ virtualization: 'hardware', qemuPath: undefined }).series, ['inproc'], 'no QEMU: inproc only');
t.same(realKernelSeries({ virtualization: 'unavailable', qemuPath: undefined }).series, [], 'nothing');
