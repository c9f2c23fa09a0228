// Phase marks of the kata-ts shim from its text log (src/runtime/log.ts: `<ISO time> <level> sandbox=<id> <msg>
// {fields}`), for bench/ctr.ts.

/** [log message, phase name], in the order the phases happen. */
export const SHIM_PHASES: readonly (readonly [string, string])[] = [
  ['shim listening', 'shim-ready'],
  ['VM started', 'vm-started'],
  ['kernel started', 'kernel-start'],
  ['agent ready', 'agent-ready'],
  ['container created', 'container-created'],
  ['container started', 'workload'],
  ['container exited', 'exited'],
  ['sandbox shutting down', 'sandbox-shutdown'],
  ['shim exits', 'shim-exit'],
];

/** The first time (epoch ms) of each phase in a shim log; lines that do not parse are skipped. */
export function parseShimPhases(log: string): Map<string, number> {
  const marks = new Map<string, number>();
  for (const line of log.split('\n')) {
    const m = /^(\d{4}-\d\d-\d\dT[0-9:.]+Z) \w+ sandbox=\S+ (.*)$/.exec(line);
    if (!m) continue;
    const t = Date.parse(m[1]!);
    for (const [msg, name] of SHIM_PHASES) if (m[2]!.startsWith(msg) && !marks.has(name)) marks.set(name, t);
  }
  return marks;
}
