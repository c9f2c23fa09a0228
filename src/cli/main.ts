#!/usr/bin/env node
// The kata-ts command line.

import { Command, InvalidArgumentError } from 'commander';
import { bootCommand } from './boot.js';
import { checkCommand } from './check.js';

function intArg(name: string) {
  return (v: string): number => {
    if (!/^\d+$/.test(v)) throw new InvalidArgumentError(`${name} must be a positive integer`);
    return Number(v);
  };
}

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
  .action(async (o) => {
    process.exitCode = await bootCommand(o);
  });

program
  .command('check')
  .description('report whether this host can run kata-ts microVMs, and how')
  .option('--json', 'machine-readable output')
  .option('--no-probe', 'skip the guest ring-0 speed measurement')
  .action((o: { json?: boolean; probe: boolean }) => {
    process.exitCode = checkCommand(o);
  });

program.parseAsync(process.argv).catch((e: Error) => {
  process.stderr.write(`kata-ts: ${e.message}\n`);
  process.exit(1);
});
