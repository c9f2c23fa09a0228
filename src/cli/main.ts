#!/usr/bin/env node
// The kata-ts command line.

import { startupSnapshot } from 'node:v8';
import { Command, InvalidArgumentError } from 'commander';
import { prewarmVcpuThreads } from '../hypervisor/prewarm.js';
import type { BootOptions } from './boot.js';
import { OCI_COMMANDS, registerOciCommands, useOneLineErrors } from './oci.js';
import type { VhostUserBackendCliOptions } from './vhost-user-backend.js';

function intArg(name: string) {
  return (v: string): number => {
    if (!/^\d+$/.test(v)) throw new InvalidArgumentError(`${name} must be a positive integer`);
    return Number(v);
  };
}

function collect(v: string, prev: string[] = []): string[] {
  return [...prev, v];
}

/**
 * Runs the command line `argv` (node's: [node, script, ...args]). Nothing runs at module load, so that a V8 startup
 * snapshot of the CLI (tools/bundle.ts) can hold this module evaluated and call main() when it starts.
 */
export function main(argv: string[]): void {
  // Each command's module is imported when that command runs, so no command pays for the others' start-up.
  // `boot` is latency-sensitive: start its vCPU worker thread now, so the thread loads its modules on the
  // other core while this one loads the VMM (boot.js is imported lazily below).
  if (argv[2] === 'boot') prewarmVcpuThreads(1);

  const program = new Command();
  program.name('kata-ts').description('secure container runtime with an in-process KVM microVM monitor').version('0.1.0');

  program
    .command('boot')
    .description('boot a microVM with the in-process VMM and stream its console')
    .requiredOption('--kernel <path>', 'ELF vmlinux with a PVH entry note (npm run --silent guest:kernel builds one)')
    .option('--initrd <path>', 'initramfs to pass to the kernel')
    .option('--cmdline <str>', 'kernel command line (default: console=ttyS0 reboot=k panic=1 ...)')
    .option('--vcpus <n>', 'number of vCPUs', intArg('--vcpus'), 1)
    .option('--memory <MiB>', 'guest memory in MiB', intArg('--memory'), 128)
    .option('--console <file>', 'write the guest console to this file instead of stdout')
    .option('--timeout <s>', 'stop the VM after this many seconds (exit status 124)', intArg('--timeout'))
    .option('--quirks <profile>', "host-quirks profile: 'auto' (default: applied on software KVM), 'none', or a name", 'auto')
    .option('--json', 'print a JSON summary line on stdout when the VM stops')
    .option('--disk <path[:ro]>', 'raw disk image as a virtio-blk device (repeatable; the first is /dev/vda)', collect)
    .option('--vsock-cid <n>', 'add a virtio-vsock device with this guest CID (3 or more)', intArg('--vsock-cid'))
    .option('--vsock-uds <path>', 'also serve the vsock device on this unix socket (CONNECT <port>)')
    .option('--net <tap>', 'add a virtio-net device on this tap interface')
    .option('--rng', 'add a virtio-rng device')
    .option('--hypervisor <kind>', "'inproc' (this process), 'qemu' (QEMU microvm: KVM on hardware virtualization, else TCG) or 'auto' (inproc on hardware KVM, else qemu)", 'inproc')
    .action(async (o: BootOptions) => {
      const { bootCommand } = await import('./boot.js');
      process.exitCode = await bootCommand(o);
    });

  program
    .command('check')
    .description('report whether this host can run kata-ts microVMs, and how')
    .option('--json', 'machine-readable output')
    .option('--no-probe', 'skip the guest ring-0 speed measurement')
    .action(async (o: { json?: boolean; probe: boolean }) => {
      const { checkCommand } = await import('./check.js');
      process.exitCode = checkCommand(o);
    });

  program
    .command('vhost-user-backend')
    .description('serve one virtio device (blk, vsock, rng or fs) to a vhost-user front-end such as QEMU')
    .requiredOption('--device <kind>', 'blk, vsock, rng or fs')
    .requiredOption('--socket <path>', 'unix socket to listen on (QEMU: -chardev socket,path=PATH)')
    .option('--disk <path[:ro]>', 'raw disk image (--device blk)')
    .option('--vsock-cid <n>', 'guest CID, 3 or more (--device vsock)', intArg('--vsock-cid'))
    .option('--cid <n>', 'alias of --vsock-cid', intArg('--cid'))
    .option('--vsock-uds <path>', 'also serve the vsock device on this unix socket (CONNECT <port>)')
    .option('--shared-dir <dir>', 'host directory to share (--device fs; QEMU: -device vhost-user-fs-device,tag=T)')
    .option('--tag <tag>', "virtio-fs mount tag, up to 36 bytes (--device fs; default 'kata-ts')")
    .option('--readonly', 'export the shared directory read-only (--device fs)')
    .option('--cache <mode>', 'virtio-fs cache policy: none, auto or always (--device fs; default auto, as virtiofsd)')
    .option('--no-xattr', 'answer extended-attribute requests with ENOSYS (--device fs; as virtiofsd -o no_xattr)')
    .option('--json', 'print the metrics as JSON on stderr when stopped')
    .action(async (o: VhostUserBackendCliOptions) => {
      const { vhostUserBackendCommand } = await import('./vhost-user-backend.js');
      process.exitCode = await vhostUserBackendCommand(o);
    });

  // The OCI commands (runc-compatible) and their global options: --root, --log, --log-format, --hypervisor, --config.
  registerOciCommands(program);
  useOneLineErrors(program);

  // An OCI command is done when its action returns; exit then even if the runtime left a handle open (the
  // sandbox process is detached and outlives this one). stdout/stderr writes are synchronous on Linux.
  let ociDone = false;
  program.hook('postAction', (_root, action) => {
    if ((OCI_COMMANDS as readonly string[]).includes(action.name())) ociDone = true;
  });

  program
    .parseAsync(argv)
    .then(() => {
      if (ociDone) process.exit();
    })
    .catch((e: Error) => {
      process.stderr.write(`kata-ts: ${e.message}\n`);
      process.exit(1);
    });
}

// Run now, unless this module is being evaluated into a startup snapshot: then the snapshot runs main() when it
// starts, with the arguments given then (a snapshot's process.argv has no script path: one is put back).
if (startupSnapshot.isBuildingSnapshot()) {
  startupSnapshot.setDeserializeMainFunction(() => main([process.argv[0] ?? 'node', 'kata-ts', ...process.argv.slice(1)]));
} else {
  main(process.argv);
}
