// Micro-benchmark of the vhost-user back-end's guarded eventfd calls (native/fd_guard.cc): µs per
// write + read pair of one O_NONBLOCK eventfd, guarded (eventfdWriteDeadline + eventfdReadDeadline, what
// src/vhost-user/session.ts does for each interrupt and kick) against plain (eventfdWrite + eventfdRead).
// Several rounds, each reported, so a shared machine's noise shows as spread.
//
//   node dist/bench/fd-guard.js [--pairs N] [--rounds R]

import { loadNative } from '../src/kvm/native.js';
import { FD_DEADLINE_MS, FD_DEADLINE_SIGNAL_OFFSET } from '../src/vhost-user/session.js';

const EFD_NONBLOCK = 0o4000;
const EFD_CLOEXEC = 0o2000000;

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(name);
  return i < 0 ? dflt : Number(process.argv[i + 1]);
}

const pairs = arg('--pairs', 200_000);
const rounds = arg('--rounds', 5);
const native = loadNative();
const signo = native.sigrtmin() + FD_DEADLINE_SIGNAL_OFFSET;
native.installKickHandler(signo);
const fd = native.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

function usPerPair(body: () => void): number {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < pairs; i++) body();
  return Number(process.hrtime.bigint() - t0) / 1000 / pairs;
}

const plain = (): void => {
  native.eventfdWrite(fd, 1n);
  native.eventfdRead(fd);
};
const guarded = (): void => {
  native.eventfdWriteDeadline(fd, 1n, signo, FD_DEADLINE_MS);
  native.eventfdReadDeadline(fd, signo, FD_DEADLINE_MS);
};
usPerPair(plain); // warm up
usPerPair(guarded);
const fmt = (xs: number[]): string => {
  const s = [...xs].sort((a, b) => a - b);
  return `median ${s[Math.floor(s.length / 2)]!.toFixed(2)} µs (min ${s[0]!.toFixed(2)}, max ${s[s.length - 1]!.toFixed(2)}; ${xs.map((x) => x.toFixed(2)).join(' ')})`;
};
const p: number[] = [];
const g: number[] = [];
for (let r = 0; r < rounds; r++) {
  p.push(usPerPair(plain));
  g.push(usPerPair(guarded));
}
console.log(`${pairs} eventfd write + read pairs per round, ${rounds} rounds`);
console.log(`plain   (eventfdWrite + eventfdRead):                 ${fmt(p)}`);
console.log(`guarded (eventfdWriteDeadline + eventfdReadDeadline): ${fmt(g)}`);
native.close(fd);
