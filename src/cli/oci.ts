// The OCI command line (runc-compatible): create, start, state, kill, delete, run, exec, ps, list.
// Global options (before the command, as with runc): --root, --log, --log-format, --hypervisor, --config.
// Lifecycle rules live in the runtime (src/runtime/api.ts); this file parses arguments, maps signal names, prints
// results and turns every failure into one line `kata-ts: <message>` on stderr with a non-zero exit status.
// Container ids are checked by the runtime's one rule (src/runtime/container-id.ts) before any command runs.
// SIGINT, SIGTERM and SIGHUP during `create` (or the create step of `run`) interrupt it: the runtime removes
// what it had started and the command fails with one line.
// Command and flag names follow runc 1.1 (runc --help) so that shims written for runc can call kata-ts.

import { readFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { resolve } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import type * as RuntimeApi from '../runtime/api.js';
import { checkContainerId } from '../runtime/container-id.js';
import { appendLogRecord } from '../runtime/log-record.js';
import { array, boolean, define, InvalidField, InvalidJson, isPlainObject, object, optional, parseJson, string, validate } from '../runtime/validate.js';

export type OciRuntime = Pick<
  typeof RuntimeApi,
  'create' | 'start' | 'state' | 'kill' | 'remove' | 'run' | 'exec' | 'ps' | 'list' | 'pause' | 'resume'
>;
export type RuntimeOptions = RuntimeApi.RuntimeOptions;
export type OciState = RuntimeApi.OciState;
export type StdioFds = RuntimeApi.StdioFds;

export const DEFAULT_ROOT = '/run/kata-ts';

export interface OciDeps {
  /** loads the runtime lazily, so `boot` and `check` never import it */
  runtime: () => Promise<OciRuntime>;
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  /** the fds handed to the container (create/run/exec) */
  stdio: StdioFds;
  setExitCode: (code: number) => void;
  /**
   * handle signals: forward those `run` receives to the container, as runc does, and let SIGINT/SIGTERM/SIGHUP
   * interrupt `create` (off in tests)
   */
  forwardSignals: boolean;
  env: NodeJS.ProcessEnv;
}

/** The real process's dependencies, made when the commands are registered (never at module load: a V8 startup
 * snapshot of the CLI, tools/bundle.ts, evaluates this module when it is built). */
const defaultDeps = (): OciDeps => ({
  runtime: () => import('../runtime/api.js'),
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
  stdio: { stdin: 0, stdout: 1, stderr: 2 },
  setExitCode: (code) => {
    process.exitCode = code;
  },
  forwardSignals: true,
  env: process.env,
});

/** The OCI command names (main.ts uses this to know when it runs one). */
export const OCI_COMMANDS = ['create', 'start', 'state', 'kill', 'delete', 'run', 'exec', 'ps', 'list'] as const;

/** Signals the way runc's `kill` takes them: a number (1..64), `KILL`, `SIGKILL` (any case). */
export function parseSignal(s: string): number {
  if (/^\d+$/.test(s)) {
    const n = Number(s);
    // signal(7): standard signals 1..31, real-time SIGRTMIN(32)..SIGRTMAX(64) on Linux
    if (n < 1 || n > 64) throw new InvalidArgumentError(`signal ${s} is out of range: use 1..64 or a name such as TERM or KILL`);
    return n;
  }
  const up = s.toUpperCase();
  const name = up.startsWith('SIG') ? up : `SIG${up}`;
  const signals = osConstants.signals as Record<string, number | undefined>;
  const n = signals[name];
  if (n === undefined) throw new InvalidArgumentError(`unknown signal "${s}": use a name such as TERM, KILL, HUP, INT or a number`);
  return n;
}

/** One line, no trailing newline, whatever the error was. */
export function errorLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  let line = msg.trim().replace(/^error: /, '').replace(/\s*\n\s*/g, '; ');
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  // a raw permission error from the state directory says nothing about what to do
  if (code === 'EACCES' || code === 'EPERM') line += ': run as root, or pass --root DIR with a directory you can write to';
  return line === '' ? 'unknown error' : line;
}

interface GlobalOpts {
  root: string;
  log?: string;
  logFormat?: 'text' | 'json';
  hypervisor?: 'inproc' | 'qemu' | 'auto';
  config?: string;
}

export function runtimeOptions(g: GlobalOpts, env: NodeJS.ProcessEnv): RuntimeOptions {
  const o: RuntimeOptions = { root: resolve(g.root) };
  const config = g.config ?? env['KATA_TS_CONFIG'];
  if (config !== undefined && config !== '') o.config = resolve(config);
  if (g.hypervisor !== undefined) o.hypervisor = g.hypervisor;
  if (g.log !== undefined) o.log = resolve(g.log);
  if (g.logFormat !== undefined) o.logFormat = g.logFormat;
  return o;
}

/** Rows as columns two spaces apart, the last column unpadded (runc's tabwriter tables). */
function formatTable(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]! + 2))).join('').trimEnd() + '\n').join('');
}

/** `list` output, the runc table shape (without CREATED/OWNER, which the state does not carry). */
export function formatList(states: readonly OciState[]): string {
  return formatTable([['ID', 'PID', 'STATUS', 'BUNDLE'], ...states.map((s) => [s.id, String(s.pid), s.status, s.bundle])]);
}

type ProcessRow = Awaited<ReturnType<typeof RuntimeApi.ps>>[number];

const two = (n: number): string => String(n).padStart(2, '0');

/** `ps` output: the columns of `ps -ef` (what runc ps shows by default), for the guest's processes. */
export function formatPs(procs: readonly ProcessRow[], nowMs: number): string {
  const rows = procs.map((p) => {
    const start = new Date(p.start_time * 1000);
    const today = new Date(nowMs).toDateString() === start.toDateString();
    const stime = today ? `${two(start.getHours())}:${two(start.getMinutes())}` : `${start.toLocaleString('en', { month: 'short' })}${two(start.getDate())}`;
    // ps's C: cpu time over lifetime, in percent
    const lifeMs = Math.max(1, nowMs - p.start_time * 1000);
    const c = Math.min(99, Math.floor((p.cpu_millis * 100) / lifeMs));
    const secs = Math.floor(p.cpu_millis / 1000);
    const days = Math.floor(secs / 86400);
    const time = `${days > 0 ? `${days}-` : ''}${two(Math.floor(secs / 3600) % 24)}:${two(Math.floor(secs / 60) % 60)}:${two(secs % 60)}`;
    return [p.uid === 0 ? 'root' : String(p.uid), String(p.pid), String(p.ppid), String(c), stime, p.tty === '' ? '?' : p.tty, time, p.cmd];
  });
  return formatTable([['UID', 'PID', 'PPID', 'C', 'STIME', 'TTY', 'TIME', 'CMD'], ...rows]);
}

/** What an OCI process.json (`exec --process`) contributes (runtime-spec config.md "process"). */
const processFile = object({
  // args is a non-empty array of strings
  args: define('a non-empty array of strings', (v, p) => {
    if (!Array.isArray(v) || v.length === 0 || !v.every((x) => typeof x === 'string')) throw new InvalidField(p, 'must be a non-empty array of strings');
    return v;
  }),
  env: optional(array(string)),
  cwd: optional(string),
  terminal: optional(boolean),
});

function readProcessFile(path: string): { args: string[]; env?: string[]; cwd?: string; terminal?: boolean } {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new InvalidArgumentError(`cannot read --process ${path}: ${errorLine(e)}`);
  }
  if (!isPlainObject(raw)) throw new InvalidArgumentError(`--process ${path}: "args" must be a non-empty array of strings`);
  try {
    return validate(raw, processFile, `--process ${path}`);
  } catch (e) {
    const f = e instanceof InvalidJson ? e.field : undefined;
    if (f) throw new InvalidArgumentError(`--process ${path}: "${f.path}" ${f.problem}`);
    throw e;
  }
}

/** runtime-spec's usual default, used when the bundle's config.json cannot be read any more */
export const DEFAULT_ENV = ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'];

/** The part of a bundle's config.json that `exec --env` adds to. */
const bundleProcessEnv = object({ process: optional(object({ env: optional(array(string)) })) });

/**
 * process.env of a bundle's config.json ([] when it has none; DEFAULT_ENV when the file cannot be read). A
 * config.json that is not JSON or has a bad process.env is an error naming the file and the field.
 */
export function bundleEnv(bundle: string): string[] {
  const file = resolve(bundle, 'config.json');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return DEFAULT_ENV;
  }
  try {
    return parseJson(text, bundleProcessEnv, file).process?.env ?? [];
  } catch (e) {
    if (e instanceof InvalidJson) throw new InvalidArgumentError(`${e.message}: fix the bundle's config.json or pass --process`);
    throw e;
  }
}

function collect(v: string, prev: string[] = []): string[] {
  return [...prev, v];
}

/** Signals `kata-ts run` relays to its container (runc's signal handler forwards everything it can catch). */
const FORWARDED: NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH'];

/** Signals that interrupt `create`: the runtime then removes the sandbox and state it had started. */
const INTERRUPTS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/** Runs `fn` with an AbortSignal that SIGINT/SIGTERM/SIGHUP abort while it runs (none when `handle` is off). */
async function interruptible<T>(handle: boolean, fn: (signal: AbortSignal | undefined) => Promise<T>): Promise<T> {
  if (!handle) return fn(undefined);
  const ac = new AbortController();
  const onSignal = (sig: NodeJS.Signals): void => ac.abort(sig);
  for (const s of INTERRUPTS) process.on(s, onSignal);
  try {
    return await fn(ac.signal);
  } finally {
    for (const s of INTERRUPTS) process.off(s, onSignal);
  }
}

/**
 * Adds the global options and the OCI commands to `program`. Global options are positional (before the
 * command, like runc's), which also lets `boot --hypervisor` keep its own meaning.
 */
export function registerOciCommands(program: Command, overrides: Partial<OciDeps> = {}): void {
  const d: OciDeps = { ...defaultDeps(), ...overrides };
  program
    .enablePositionalOptions()
    .option('--root <dir>', 'directory for container state', DEFAULT_ROOT)
    .option('--log <file>', 'write the runtime log to this file (default: stderr)')
    .addOption(new Option('--log-format <format>', 'log format').choices(['text', 'json']))
    .addOption(new Option('--hypervisor <kind>', "VMM for new sandboxes: 'inproc', 'qemu' or 'auto' (configuration.toml decides when absent)").choices(['inproc', 'qemu', 'auto']))
    .option('--config <file>', 'configuration.toml to use (default: KATA_TS_CONFIG, /etc/kata-ts/configuration.toml, then the package defaults)');

  const opts = (): RuntimeOptions => runtimeOptions(program.opts<GlobalOpts>(), d.env);

  /** Runs one command: every failure becomes one stderr line and exit status 1. */
  const guard = <A extends unknown[]>(fn: (...a: A) => Promise<number | void>) =>
    async (...a: A): Promise<void> => {
      try {
        d.setExitCode((await fn(...a)) ?? 0);
      } catch (e) {
        const line = errorLine(e);
        d.stderr(`kata-ts: ${line}\n`);
        // runc writes the error to --log as well: go-runc (containerd's shim, conmon) reads it from there
        const g = program.opts<GlobalOpts>();
        if (g.log !== undefined) appendLogRecord(resolve(g.log), g.logFormat ?? 'text', 'error', line);
        d.setExitCode(1);
      }
    };

  /** guard() for a command whose first argument is a container id: the runtime's id rule comes first. */
  const withId = <A extends unknown[]>(fn: (id: string, ...a: A) => Promise<number | void>) =>
    guard(async (id: string, ...a: A) => fn(checkContainerId(id), ...a));

  program
    .command('create')
    .description('create a container (and its sandbox VM) from an OCI bundle; `start` runs its process')
    .option('-b, --bundle <dir>', 'bundle directory (config.json + rootfs)', '.')
    .option('--pid-file <file>', 'write the container pid (see `state`) to this file')
    .option('--console-socket <path>', 'unix socket that receives the pty master when process.terminal is true')
    .addOption(new Option('--no-pivot', 'accepted for runc compatibility; ignored').hideHelp())
    .addOption(new Option('--no-new-keyring', 'accepted for runc compatibility; ignored').hideHelp())
    .argument('<container-id>', 'container id')
    .action(
      withId(async (id: string, c: { bundle: string; pidFile?: string; consoleSocket?: string }) => {
        const rt = await d.runtime();
        await interruptible(d.forwardSignals, (signal) =>
          rt.create(opts(), id, {
            bundle: resolve(c.bundle),
            ...(c.pidFile !== undefined ? { pidFile: resolve(c.pidFile) } : {}),
            ...(c.consoleSocket !== undefined ? { consoleSocket: resolve(c.consoleSocket) } : {}),
            stdio: d.stdio,
            ...(signal ? { signal } : {}),
          }),
        );
      }),
    );

  program
    .command('start')
    .description('start the process of a created container')
    .argument('<container-id>', 'container id')
    .action(
      withId(async (id: string) => {
        await (await d.runtime()).start(opts(), id);
      }),
    );

  program
    .command('state')
    .description('print the runtime-spec state of a container as JSON')
    .argument('<container-id>', 'container id')
    .action(
      withId(async (id: string) => {
        const s = await (await d.runtime()).state(opts(), id);
        d.stdout(JSON.stringify(s, null, 2) + '\n');
      }),
    );

  program
    .command('kill')
    .description('send a signal (default SIGTERM) to the container process')
    .argument('<container-id>', 'container id')
    .argument('[signal]', 'signal name (TERM, SIGKILL, ...) or number', parseSignal)
    .option('-a, --all', 'send the signal to every process of the container')
    .action(
      withId(async (id: string, signal: number | undefined, c: { all?: boolean }) => {
        await (await d.runtime()).kill(opts(), id, signal ?? osConstants.signals.SIGTERM, c.all === true);
      }),
    );

  program
    .command('pause')
    .description('suspend every process of a running container')
    .argument('<container-id>', 'container id')
    .action(withId(async (id: string) => (await d.runtime()).pause(opts(), id)));

  program
    .command('resume')
    .description('resume the processes of a paused container')
    .argument('<container-id>', 'container id')
    .action(withId(async (id: string) => (await d.runtime()).resume(opts(), id)));

  program
    .command('delete')
    .description('delete a container, and its sandbox VM when it was the last one')
    .option('-f, --force', 'kill the container first if it is still running')
    .argument('<container-id>', 'container id')
    .action(
      withId(async (id: string, c: { force?: boolean }) => {
        const rt = await d.runtime();
        try {
          await rt.remove(opts(), id, c.force === true);
        } catch (e) {
          // runc: `delete --force` of a container that does not exist succeeds
          if (c.force === true && isCode(e, 'NOT_FOUND')) return;
          throw e;
        }
      }),
    );

  program
    .command('run')
    .description('create and start a container, wait for it and exit with its exit status')
    .option('-b, --bundle <dir>', 'bundle directory (config.json + rootfs)', '.')
    .option('-d, --detach', 'return once the container is started (create + start)')
    .option('--pid-file <file>', 'with --detach: write the container pid to this file')
    .option('--console-socket <path>', 'with --detach: unix socket that receives the pty master')
    .addOption(new Option('--no-pivot', 'accepted for runc compatibility; ignored').hideHelp())
    .addOption(new Option('--no-new-keyring', 'accepted for runc compatibility; ignored').hideHelp())
    .argument('<container-id>', 'container id')
    .action(
      withId(async (id: string, c: { bundle: string; detach?: boolean; pidFile?: string; consoleSocket?: string }) => {
        const rt = await d.runtime();
        const o = opts();
        const bundle = resolve(c.bundle);
        if (c.detach === true) {
          await interruptible(d.forwardSignals, (signal) =>
            rt.create(o, id, {
              bundle,
              ...(c.pidFile !== undefined ? { pidFile: resolve(c.pidFile) } : {}),
              ...(c.consoleSocket !== undefined ? { consoleSocket: resolve(c.consoleSocket) } : {}),
              stdio: d.stdio,
              ...(signal ? { signal } : {}),
            }),
          );
          await rt.start(o, id);
          return 0;
        }
        if (c.pidFile !== undefined || c.consoleSocket !== undefined) {
          throw new InvalidArgumentError('--pid-file and --console-socket need --detach with run (or use create + start)');
        }
        const relay = (sig: NodeJS.Signals): void => {
          rt.kill(o, id, osConstants.signals[sig]).catch(() => undefined); // not created yet, or already stopped
        };
        if (d.forwardSignals) for (const s of FORWARDED) process.on(s, relay);
        try {
          // a signal during the create step interrupts it (the container is not there to receive it yet)
          return await interruptible(d.forwardSignals, (signal) => rt.run(o, id, { bundle, stdio: d.stdio, ...(signal ? { signal } : {}) }));
        } finally {
          if (d.forwardSignals) for (const s of FORWARDED) process.off(s, relay);
        }
      }),
    );

  program
    .command('exec')
    .description('run another process in a running container and exit with its exit status')
    .option('-t, --tty', 'allocate a terminal for the process')
    .option('--cwd <dir>', 'working directory inside the container')
    .option('-e, --env <KEY=VALUE>', 'set an environment variable (repeatable)', collect)
    .option('-p, --process <file>', 'read the process (args, env, cwd, terminal) from an OCI process.json')
    .option('-d, --detach', 'return once the process runs; its stdio relay (the --pid-file pid) exits with its status')
    .option('--pid-file <file>', 'write the pid of the process (its stdio relay on the host) to this file')
    .option('--console-socket <path>', 'with --tty: unix socket that receives the pty master (SCM_RIGHTS), as with runc')
    .passThroughOptions()
    .argument('<container-id>', 'container id')
    .argument('[command...]', 'command and arguments')
    .action(
      withId(async (id: string, command: string[], c: { tty?: boolean; cwd?: string; env?: string[]; process?: string; detach?: boolean; pidFile?: string; consoleSocket?: string }) => {
        const pf = c.process !== undefined ? readProcessFile(resolve(c.process)) : undefined;
        const args = command.length > 0 ? command : pf?.args;
        if (args === undefined || args.length === 0) throw new InvalidArgumentError('exec needs a command: kata-ts exec ID CMD [ARG...] (or --process FILE)');
        for (const kv of c.env ?? []) if (!/^[^=]+=/.test(kv)) throw new InvalidArgumentError(`--env "${kv}" must be KEY=VALUE`);
        const rt = await d.runtime();
        const o = opts();
        // runc: --env adds to the process env (of --process, else of the container's config.json); the runtime
        // takes `env` as the whole environment, so the base is read here.
        const base = pf !== undefined ? (pf.env ?? []) : c.env !== undefined ? bundleEnv((await rt.state(o, id)).bundle) : [];
        const env = [...base, ...(c.env ?? [])];
        const cwd = c.cwd ?? pf?.cwd;
        const tty = c.tty === true || pf?.terminal === true;
        return rt.exec(o, id, {
          args,
          tty,
          ...(env.length > 0 ? { env } : {}),
          ...(cwd !== undefined ? { cwd } : {}),
          stdio: d.stdio,
          ...(c.detach === true ? { detach: true } : {}),
          ...(c.pidFile !== undefined ? { pidFile: resolve(c.pidFile) } : {}),
          ...(c.consoleSocket !== undefined ? { consoleSocket: resolve(c.consoleSocket) } : {}),
        });
      }),
    );

  program
    .command('ps')
    .description("list the processes of a container (guest pids; the table has ps -ef's columns)")
    .addOption(new Option('-f, --format <format>', 'output format').choices(['table', 'json']).default('table'))
    .argument('<container-id>', 'container id')
    .argument('[ps-options...]', 'ps options: only -ef, the default (the guest has no ps to pass others to)')
    .allowUnknownOption()
    .action(
      withId(async (id: string, psOptions: string[], c: { format: 'table' | 'json' }) => {
        const other = psOptions.filter((a) => a !== '-ef' && a !== '-e' && a !== '-f');
        if (other.length > 0) throw new InvalidArgumentError(`ps options ${other.join(' ')} are not supported: the table has the columns of ps -ef (use --format json for the pids)`);
        const procs = await (await d.runtime()).ps(opts(), id);
        // runc ps --format json prints the pids only
        d.stdout(c.format === 'json' ? JSON.stringify(procs.map((p) => p.pid)) + '\n' : formatPs(procs, Date.now()));
      }),
    );

  program
    .command('list')
    .description('list the containers under --root')
    .addOption(new Option('-f, --format <format>', 'output format').choices(['table', 'json']).default('table'))
    .option('-q, --quiet', 'print only the container ids')
    .action(
      guard(async (c: { format: 'table' | 'json'; quiet?: boolean }) => {
        const states = await (await d.runtime()).list(opts());
        if (c.quiet === true) d.stdout(states.map((s) => `${s.id}\n`).join(''));
        else if (c.format === 'json') d.stdout(JSON.stringify(states) + '\n');
        else d.stdout(formatList(states));
      }),
    );
}

function isCode(e: unknown, code: string): boolean {
  return e instanceof Error && (e as Error & { code?: unknown }).code === code;
}

/** Commander's own errors (unknown option, missing argument) as one `kata-ts:` line, for every command. */
export function useOneLineErrors(cmd: Command): void {
  cmd.configureOutput({ outputError: (str, write) => write(`kata-ts: ${errorLine(new Error(str))}\n`) });
  for (const sub of cmd.commands) useOneLineErrors(sub);
}
