// Warm VM shells (src/vmm/shell-pool.ts) on real KVM: createVm({ shells }) takes a pooled shell of its shape (VM,
// registered memory, vCPUs made ahead) and the guest runs on it as on a fresh VM; the pool refills behind it, does
// not hand a shell of another shape, and frees what it holds on close. Skips (with the reason) where /dev/kvm does
// not open. The time a shell saves is measured by bench:boot's warm series, never asserted here.
import t from 'tap';
import { VmShellPool } from '../../src/vmm/shell-pool.js';
import { createVm } from '../../src/vmm/vm.js';
import { buildPayload } from '../payloads/build.js';
import { EXIT_OK, kvmSkipReason } from './payload-harness.js';

const skip = kvmSkipReason();
if (skip !== undefined) {
  t.plan(0, skip);
} else {
  t.test('createVm runs the guest on pooled shells, one after another', async (t) => {
    const kernel = await buildPayload('boot-timer');
    const pool = new VmShellPool(1, 128, 1);
    t.teardown(() => pool.close());
    for (let i = 0; i < 100 && pool.available < 1; i++) await new Promise((r) => setImmediate(r));
    t.equal(pool.available, 1, `a shell is ready (${pool.lastError?.message ?? 'no error'})`);
    for (let round = 0; round < 3; round++) {
      const before = pool.available;
      const vm = await createVm({ kernel, memoryMiB: 128, shells: pool });
      t.equal(pool.available, before - 1, `round ${round}: createVm took the ready shell`);
      vm.start();
      t.same(await vm.wait(), { kind: 'debug-exit', status: EXIT_OK }, `round ${round}: the payload ran to its exit on the shell`);
      t.ok(vm.bootTimer, `round ${round}: its boot-timer write was recorded`);
      for (let i = 0; i < 100 && pool.available < 1; i++) await new Promise((r) => setImmediate(r));
    }
    t.equal(pool.take(2, 128), undefined, 'a shell of another shape is not handed out');
    t.equal(pool.take(1, 256), undefined);
    pool.close();
    t.equal(pool.available, 0, 'close frees the ready shells');
  });
}
