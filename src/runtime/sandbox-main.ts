// The sandbox process: `node dist/src/runtime/sandbox-main.js '<SandboxLaunch JSON>'` (launch.ts), spawned
// detached by the CLI (api.ts) in its own session and process group, so QEMU and its vhost-user backends, which
// it spawns, are in that group and `delete` can kill them all after a crash. This entry script checks the launch
// JSON, makes the hypervisor (src/hypervisor/factory.ts), runs one Sandbox (sandbox.ts) and exits when it has
// shut down (after its last container is deleted, when the VM exits, or on SIGTERM).
// Readiness: it writes "ready\n" (or "error <message>\n") on fd 3, a pipe to the CLI that spawned it.
// Its umask is 077: whatever it or QEMU creates without an explicit mode (QEMU's work directory, the vhost-user
// sockets in it) is private to the runtime's user; the state files get explicit modes besides (private-files.ts).

import { closeSync, writeSync } from 'node:fs';
import { chooseHypervisor, createHypervisor, detectHost } from '../hypervisor/factory.js';
import { parseLaunch, type SandboxLaunch } from './launch.js';
import { createLogger, type RuntimeLogger } from './log.js';
import { Sandbox } from './sandbox.js';

function signalReady(msg: string): void {
  try {
    writeSync(3, `${msg}\n`);
    closeSync(3);
  } catch {
    // the CLI went away; nothing to tell
  }
}

function fatal(log: RuntimeLogger | undefined, e: Error): never {
  log?.error('sandbox start failed', { error: e.message });
  signalReady(`error ${e.message.replace(/\n/g, ' ')}`);
  process.exit(1);
}

async function main(launch: SandboxLaunch, log: RuntimeLogger): Promise<void> {
  process.env['TMPDIR'] = launch.tmpDir;
  const plan = chooseHypervisor(launch.hypervisor, detectHost());
  if (plan.kind === 'qemu' && launch.qemuPath && launch.qemuPath !== 'qemu-system-x86_64') plan.qemuPath = launch.qemuPath;
  if (plan.notice) log.info(plan.notice);
  // the hypervisor adds the plan's host-quirks profile to the command line (factory.ts)
  const sandbox = new Sandbox(launch, { hypervisor: createHypervisor(plan), logger: log });
  process.on('SIGTERM', () => void sandbox.shutdown('SIGTERM'));
  void sandbox.closed.then(() => process.exit(0));
  await sandbox.start();
  signalReady('ready');
}

process.umask(0o077);
let launch: SandboxLaunch;
try {
  launch = parseLaunch(process.argv[2] ?? '');
} catch (e) {
  fatal(createLogger('text', 'unknown'), e as Error);
}
const log = createLogger(launch.logFormat, launch.sid);
// a long-lived daemon: a stray socket error must not take every container of the sandbox down with it
process.on('uncaughtException', (e: Error) => log.error('uncaught exception', { error: e.stack ?? e.message }));
main(launch, log).catch((e: Error) => fatal(log, e));
