// ReadyPool (src/vmm/shell-pool.ts): the warm-shell pool's policy, with a maker that counts instead of KVM.
// tests/kvm/vm-shell-pool.test.ts runs the real VmShellPool (warm KVM VMs) where /dev/kvm opens.
import t from 'tap';
import { ReadyPool } from '../../src/vmm/shell-pool.js';

function rig(size: number, failAt: number[] = []) {
  const queue: (() => void)[] = [];
  let made = 0;
  const disposed: number[] = [];
  const pool = new ReadyPool<number>(
    {
      make: () => {
        made++;
        if (failAt.includes(made)) throw new Error(`make ${made} failed`);
        return made;
      },
      dispose: (n) => disposed.push(n),
    },
    size,
    (fn) => queue.push(fn),
  );
  const turn = (): boolean => {
    const fn = queue.shift();
    fn?.();
    return fn !== undefined;
  };
  const settle = (): void => {
    while (turn());
  };
  return { pool, turn, settle, disposed, made: () => made, pending: () => queue.length };
}

t.test('fills to its size one item per turn, never inside take()', async (t) => {
  const r = rig(2);
  r.pool.fill();
  t.equal(r.made(), 0, 'nothing is made synchronously');
  t.equal(r.pending(), 1, 'one make is scheduled at a time');
  r.turn();
  t.equal(r.pool.available, 1);
  r.settle();
  t.equal(r.pool.available, 2, 'stops at its size');
  t.equal(r.made(), 2);
  r.pool.fill();
  t.equal(r.pending(), 0, 'a full pool schedules nothing');
});

t.test('take: the oldest ready item, then a refill; empty gives undefined', async (t) => {
  const r = rig(2);
  t.equal(r.pool.take(), undefined, 'nothing ready yet');
  r.settle();
  t.equal(r.pool.take(), 1);
  t.equal(r.pool.available, 1, 'taken synchronously, nothing made in take()');
  r.settle();
  t.equal(r.pool.available, 2, 'refilled on a later turn');
  t.same([r.pool.take(), r.pool.take(), r.pool.take()], [2, 3, undefined]);
});

t.test('a failed make stops refilling until the next take, and is reported', async (t) => {
  const r = rig(3, [2]);
  r.pool.fill();
  r.settle();
  t.equal(r.pool.available, 1, 'the second make failed and nothing more was tried');
  t.match(r.pool.lastError?.message, /make 2 failed/);
  t.equal(r.pool.take(), 1);
  r.settle();
  t.equal(r.pool.available, 3, 'the next take started it again');
  t.equal(r.pool.lastError, undefined, 'a good make clears the error');
});

t.test('close disposes the ready items and stops making', async (t) => {
  const r = rig(2);
  r.settle();
  r.pool.fill();
  r.settle();
  r.pool.take(); // schedules a refill
  r.pool.close();
  r.settle();
  t.same(r.disposed, [2], 'the ready item was disposed');
  t.equal(r.pool.available, 0);
  t.equal(r.made(), 2, 'the refill scheduled before close made nothing');
  t.equal(r.pool.take(), undefined);
});

t.test('size must be a positive integer', async (t) => {
  for (const size of [0, -1, 1.5, NaN]) t.throws(() => rig(size), RangeError, `size ${size}`);
});
