// The one container-id rule (src/runtime/container-id.ts, issue 14 item 11): the runtime API and the command
// line accept and refuse the same ids with the same one-line message, and the message repeats at most the first
// 64 characters of a long id.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import t from 'tap';
import { registerOciCommands, useOneLineErrors, type OciRuntime } from '../../src/cli/oci.js';
import * as api from '../../src/runtime/api.js';
import { checkContainerId, idForMessage, isValidId, MAX_ID_LENGTH } from '../../src/runtime/container-id.js';
import { RuntimeError } from '../../src/runtime/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'kata-ts-id-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

/** The message the runtime API gives for `id` (state of a container that cannot exist). */
async function runtimeMessage(id: string): Promise<string> {
  try {
    await api.state({ root: join(dir, 'root') }, id);
  } catch (e) {
    return (e as Error).message;
  }
  return '(accepted)';
}

/** The stderr line the command line gives for `kata-ts state <id>`; the runtime it would call is never reached. */
async function cliMessage(id: string): Promise<{ err: string; reached: boolean }> {
  let err = '';
  let reached = false;
  const program = new Command().name('kata-ts').exitOverride();
  registerOciCommands(program, {
    runtime: () => {
      reached = true;
      return Promise.resolve(api as OciRuntime);
    },
    stderr: (s) => (err += s),
    stdout: () => undefined,
    setExitCode: () => undefined,
    forwardSignals: false,
    env: {},
  });
  useOneLineErrors(program);
  await program.parseAsync(['--root', join(dir, 'root'), 'state', id], { from: 'user' });
  return { err, reached };
}

t.test('the rule: [A-Za-z0-9_.-], 1..64 characters, no leading dot', async (t) => {
  for (const ok of ['a', 'c1', 'my_container-1.2', '-x', 'x'.repeat(64)]) t.equal(checkContainerId(ok), ok, ok);
  for (const bad of ['', '.', '..', '.hidden', 'a/b', '../etc', 'x'.repeat(65), 'sp ace', 'ü', 'a+b', 'a\nb']) {
    t.notOk(isValidId(bad), JSON.stringify(bad));
    t.throws(() => checkContainerId(bad), { name: 'RuntimeError', code: 'INVALID' });
  }
});

t.test('the message: one line, the id quoted and cut to 64 characters + ...', async (t) => {
  const long = `${'a'.repeat(MAX_ID_LENGTH)}${'b'.repeat(5000)}`;
  let e: RuntimeError | undefined;
  try {
    checkContainerId(long);
  } catch (x) {
    e = x as RuntimeError;
  }
  t.equal(e?.message, `invalid container id "${'a'.repeat(64)}...": use 1..64 characters of [A-Za-z0-9_.-], not starting with '.'`);
  t.ok((e?.message.length ?? Infinity) < 200, 'the message does not carry the whole id');
  t.equal(idForMessage('a\nb'), '"a\\nb"', 'control characters are escaped: the message stays one line');
  t.equal(idForMessage('x'.repeat(64)), `"${'x'.repeat(64)}"`, 'a 64-character id is shown whole');
});

t.test('the runtime API and the command line give the same verdict and the same message', async (t) => {
  for (const id of ['a+b', 'x'.repeat(65), `${'z'.repeat(64)}${'y'.repeat(1100)}`, '.hidden', 'a/b']) {
    const fromApi = await runtimeMessage(id);
    const fromCli = await cliMessage(id);
    t.match(fromApi, /^invalid container id "/, `runtime refuses ${idForMessage(id)}`);
    t.equal(fromCli.err, `kata-ts: ${fromApi}\n`, 'the CLI prints the runtime\'s message as its one line');
    t.notOk(fromCli.reached, 'the CLI refused it before loading the runtime');
  }
  // an id the CLI used to take (runc allows '+' and 1,024 characters) and the runtime refused is refused by both
  t.match((await cliMessage('a+b')).err, /invalid container id "a\+b"/);
  // a valid id reaches the runtime, which reports that it does not exist
  const ok = await cliMessage('c1');
  t.ok(ok.reached);
  t.match(ok.err, /container 'c1' does not exist/);
});
