// Signals to host processes the runtime recorded: a sandbox process and its process group (QEMU, the vhost-user
// backends), a container's stdio relay. A pid is a number the kernel hands out again once its process is gone, so
// a recorded pid is signalled only while /proc/<pid>/stat still shows the start time recorded with it (field 22,
// clock ticks since boot), checked right before every signal. A record without a start time (0) is never
// signalled.
// A process group is signalled through its leader's identity: while the leader's pid shows the recorded start
// time the group is ours; once no process has that pid at all, every process still in the group is one the
// leader left behind, because the kernel does not hand out a pid that is still some process's group id
// (kernel/pid.c: a struct pid lives while any task is attached to it as PIDTYPE_PGID). A pid that now names
// another process (another start time, a zombie or a thread of someone else) means the group is not ours.

import { readFileSync } from 'node:fs';

/** A process as the runtime recorded it. */
export interface ProcessRef {
  pid: number;
  /** /proc/<pid>/stat starttime; 0 = unknown (never signalled) */
  start: number;
}

interface ProcStat {
  /** field 3: R, S, D, Z (zombie), X (dead), ... */
  state: string;
  /** field 22 */
  start: number;
}

/** /proc/<pid>/stat fields 3 and 22, zombies included; undefined when no process or thread has that id. */
function procStat(pid: number): ProcStat | undefined {
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // proc(5): "pid (comm) state ..." — comm may hold spaces and ')', so split after the last ')'
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state); starttime is field 22
  const start = Number(rest[22 - 3]);
  if (rest[0] === undefined || !Number.isFinite(start)) return undefined;
  return { state: rest[0], start };
}

/** /proc/<pid>/stat field 22 (starttime), or undefined when the process does not exist or has exited (zombie). */
export function processStart(pid: number): number | undefined {
  const s = procStat(pid);
  if (s === undefined || s.state === 'Z' || s.state === 'X') return undefined; // a zombie has exited
  return s.start;
}

/** The recorded process still runs as itself: its pid shows the recorded (known) start time. */
export function isSameProcess(p: ProcessRef): boolean {
  return p.start > 0 && processStart(p.pid) === p.start;
}

function send(target: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(target, signal);
    return true;
  } catch {
    return false; // exited meanwhile (ESRCH)
  }
}

/** Signals the recorded process if it still is itself; false when it was not signalled. */
export function signalProcess(p: ProcessRef, signal: NodeJS.Signals): boolean {
  return isSameProcess(p) && send(p.pid, signal);
}

/**
 * Signals the process group led by the recorded process (a detached child: its pid is the group id) when the
 * group is still the one it led: the leader is itself, or no process has its pid any more. False when it was not
 * signalled (another process has the pid now, or no process is in the group).
 */
export function signalGroup(leader: ProcessRef, signal: NodeJS.Signals): boolean {
  if (!Number.isInteger(leader.pid) || leader.pid <= 1) return false;
  const now = procStat(leader.pid);
  if (now !== undefined && (leader.start === 0 || now.start !== leader.start)) return false;
  return send(-leader.pid, signal);
}
