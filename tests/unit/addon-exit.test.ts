// A process that exits while a worker thread is still loading the addon must exit with its own status, never
// abort. `kata-ts boot` starts its vCPU worker before it parses its arguments, so a quick error (no /dev/kvm,
// a bad flag) exits while that worker may be inside the addon's module init; node-addon-api then fails to throw
// into the terminating environment and, unless NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS is defined
// (binding.gyp), throws a C++ exception nobody catches: "terminate called after throwing an instance of
// 'Napi::Error'", SIGABRT. Without the define this test caught it in about 1 of 150 runs (4 of 600); it makes 240.

import { spawn } from 'node:child_process';
import { join } from 'node:path';
import t from 'tap';
import { packageRoot } from '../../src/host/package-root.js';

const WORKER = join(packageRoot(), 'dist', 'src', 'vmm', 'vcpu-worker.js');
const RUNS = 240;
const PARALLEL = 4;

// exits with status 3 after `delay` ms, with a vCPU worker (which loads the addon first thing) starting
const script = `
import { Worker } from 'node:worker_threads';
const w = new Worker(${JSON.stringify(WORKER)});
w.on('error', () => {});
setTimeout(() => process.exit(3), Number(process.argv[1]));
`;

function once(delay: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script, String(delay)], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('close', (code, signal) => resolve({ code, signal, stderr }));
  });
}

t.test('exiting while a worker loads the addon gives the exit status, not SIGABRT', async (t) => {
  const bad: string[] = [];
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < RUNS) {
      // delays from 0 to 150 ms cover the worker's start and its module loading on a slow machine
      const delay = (next++ * 37) % 150;
      const r = await once(delay);
      if (r.code !== 3) bad.push(`delay ${delay} ms: code ${String(r.code)} signal ${String(r.signal)} ${r.stderr.trim().slice(0, 200)}`);
    }
  };
  await Promise.all(Array.from({ length: PARALLEL }, lane));
  t.same(bad, [], `${RUNS} runs, each exited 3`);
});
