#!/usr/bin/env node
// containerd-shim-kata-ts-v2: kata-ts as a containerd shim v2 runtime (`ctr run --runtime io.containerd.kata-ts.v2`,
// a Kubernetes RuntimeClass whose CRI handler names it). The long-lived shim is one sandbox: it serves
// containerd.task.v2.Task (service.ts) over ttRPC on its unix socket and runs the pod's VM in this process
// (src/runtime Sandbox; the in-process VMM, or QEMU as its child). Actions: start.ts, delete.ts; flags.ts.

import { closeSync, mkdirSync, rmdirSync, rmSync, writeSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { createLogger } from '../runtime/log.js';
import { bundleAnnotations, groupOf, shimRoot, socketAddress, socketPath, SOCKET_DIR } from './address.js';
import { deleteShim } from './delete.js';
import { parseFlags, UsageError, type ShimFlags } from './flags.js';
import { Publisher } from './publisher.js';
import { taskServer } from './server.js';
import { TaskService } from './service.js';
import { startShim, writeAtomic } from './start.js';

function signalReady(msg: string): void {
  try {
    writeSync(3, `${msg}\n`);
    closeSync(3);
  } catch {
    // started by hand, without the readiness pipe
  }
}

async function serve(f: ShimFlags): Promise<void> {
  process.umask(0o077);
  const bundle = process.cwd();
  const group = groupOf(f.id, bundleAnnotations(bundle));
  const log = createLogger('text', group, 2);
  process.on('uncaughtException', (e: Error) => log.error('uncaught exception', { error: e.stack ?? e.message }));
  const path = socketPath(socketAddress(f.address, f.namespace, group));
  const publisher = new Publisher(f.ttrpcAddress, f.namespace, log);
  let exiting = false;
  const exit = (code: number): void => {
    if (exiting) return;
    exiting = true;
    let timer: NodeJS.Timeout | undefined;
    void Promise.race([publisher.flush(), new Promise((r) => (timer = setTimeout(r, 5000)))]).then(() => {
      clearTimeout(timer);
      publisher.close();
      rmSync(path, { force: true });
      try {
        rmdirSync(shimRoot(f.address, f.namespace)); // the namespace's state root, once no sandbox is left in it
      } catch {
        // other sandboxes live there, or it was never made
      }
      log.info('shim exits');
      // let the Shutdown reply leave first
      setTimeout(() => process.exit(code), 100);
    });
  };
  const svc = new TaskService({
    namespace: f.namespace,
    root: shimRoot(f.address, f.namespace),
    log,
    publish: (n, e) => publisher.publish(n, e),
    onShutdown: () => exit(0),
  });
  const rpc = taskServer(svc, log);
  const server = createServer((s) => {
    s.on('error', () => undefined);
    rpc.serve(s);
  });
  mkdirSync(SOCKET_DIR, { recursive: true, mode: 0o711 });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  writeAtomic(join(bundle, 'shim.pid'), String(process.pid));
  process.on('SIGTERM', () => void svc.shutdown().finally(() => exit(0)));
  log.info('shim listening', { address: path, namespace: f.namespace, id: f.id });
  signalReady('ready');
}

async function main(argv: string[]): Promise<number> {
  let f: ShimFlags;
  try {
    f = parseFlags(argv);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`containerd-shim-kata-ts-v2: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  switch (f.action) {
    case 'start':
      process.stdout.write(await startShim(f));
      return 0;
    case 'delete': {
      const out = await deleteShim(f, (m) => process.stderr.write(`${m}\n`));
      process.stdout.write(out);
      return 0;
    }
    case 'serve':
      try {
        await serve(f);
      } catch (e) {
        signalReady(`error ${(e as Error).message.replace(/\n/g, ' ')}`);
        throw e;
      }
      return -1; // keeps running
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (e: Error) => {
    process.stderr.write(`containerd-shim-kata-ts-v2: ${e.message}\n`);
    process.exit(1);
  },
);
