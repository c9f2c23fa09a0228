// bench/run.ts's reading of the runtime's JSON log: phase marks with numeric or ISO times, first mark wins,
// junk lines skipped, canonical phase order.

import t from 'tap';
import { orderPhases, parsePhases, vmmOf } from '../../bench/run.js';

t.test('parsePhases', async (t) => {
  const log = [
    'not json',
    '{"level":30,"time":1000,"msg":"no phase"}',
    '{"level":30,"time":1010.5,"phase":"vm-created"}',
    '{"time":"1970-01-01T00:00:01.200Z","phase":"Agent Ready"}',
    '{"time":1300,"phase":"vm-created"}',
    '{"time":"garbage","phase":"exited"}',
    '{"phase":"kernel-start","ts":1100}',
    '{broken',
    '[1,2]',
    '{"time":"1970-01-01T00:00:01.500Z","level":"info","msg":"container exited","id":"x"}',
    '{"time":1600,"msg":"VM started"}',
  ].join('\n');
  const m = parsePhases(log);
  t.same([...m.entries()], [['vm-created', 1010.5], ['agent-ready', 1200], ['kernel-start', 1100], ['exited', 1500]], 'phase fields and known messages; first mark wins');
  t.equal(parsePhases('').size, 0);
});

t.test('orderPhases', async (t) => {
  const m = new Map([['exited', 900], ['custom-b', 50], ['vm-created', 100], ['custom-a', 20], ['agent-ready', 500]]);
  const o = orderPhases(m);
  t.same(o.filter((n) => !n.startsWith('custom')), ['vm-created', 'agent-ready', 'exited'], 'canonical order kept');
  t.ok(o.indexOf('custom-a') < o.indexOf('custom-b'), 'others by time');
});

t.test('vmmOf', async (t) => {
  t.equal(vmmOf('{"level":30,"time":1,"hypervisor":"qemu","accel":"tcg","msg":"VM started"}\n'), 'qemu (tcg)');
  t.equal(vmmOf('x\n{"msg":"VM started","hypervisor":"inproc"}'), 'inproc');
  t.equal(vmmOf('{"msg":"agent ready"}'), undefined);
});
