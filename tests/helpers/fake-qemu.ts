// A stand-in for qemu-system-x86_64 in unit tests: it speaks just enough QMP and writes to the sockets the
// qemu backend hands it. Behaviour from FAKE_QEMU_MODE: 'reset' (on cont: console text, the boot-timer
// byte, the marker, then a guest-reset SHUTDOWN and exit 0), 'hang' (runs until QMP quit or a signal; like
// QEMU it outlives its QMP connection), 'crash' (an
// error on stderr and exit 1 before QMP). FAKE_QEMU_ARGV (a path) receives the argv as JSON.
import { writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';

const argv = process.argv.slice(2);
const mode = process.env.FAKE_QEMU_MODE ?? 'reset';
if (process.env.FAKE_QEMU_ARGV) writeFileSync(process.env.FAKE_QEMU_ARGV, JSON.stringify(argv));
if (mode === 'crash') {
  process.stderr.write('qemu-system-x86_64: -device bogus: fake failure\n');
  process.exit(1);
}
const after = (flag: string, re: RegExp): string => {
  for (let i = 0; i < argv.length; i++) if (argv[i] === flag && re.test(argv[i + 1]!)) return argv[i + 1]!;
  throw new Error(`fake qemu: no ${flag} matching ${String(re)}`);
};
const qmpPath = after('-qmp', /^unix:/).slice('unix:'.length);
const btPath = /path=(.*)$/.exec(after('-chardev', /^socket,id=boottimer,/))![1]!;
const bt = createConnection(btPath);
const qmp = createConnection(qmpPath);
// like QEMU: a socket it cannot connect to ends it; one that breaks later (its owner killed) does not
for (const [name, s] of [['qmp', qmp], ['boottimer', bt]] as const) {
  let up = false;
  s.once('connect', () => (up = true));
  s.on('error', (e) => {
    if (up) return;
    process.stderr.write(`qemu-system-x86_64: -chardev ${name}: Failed to connect to '${s === qmp ? qmpPath : btPath}': ${e.message}\n`);
    process.exit(1);
  });
}
if (mode === 'hang') setInterval(() => undefined, 1 << 30);
const send = (o: unknown): boolean => qmp.write(JSON.stringify(o) + '\r\n');
const shutdown = (reason: string): void => {
  send({ event: 'SHUTDOWN', data: { guest: reason.startsWith('guest'), reason }, timestamp: { seconds: 0, microseconds: 0 } });
  setTimeout(() => process.exit(0), 20);
};
send({ QMP: { version: { qemu: { major: 7, minor: 2, micro: 0 }, package: 'fake' }, capabilities: [] } });
let buf = '';
qmp.on('data', (b) => {
  buf += b.toString();
  let nl;
  while ((nl = buf.indexOf('\n')) >= 0) {
    const cmd = JSON.parse(buf.slice(0, nl)) as { execute: string; id?: number };
    buf = buf.slice(nl + 1);
    send({ return: {}, id: cmd.id });
    if (cmd.execute === 'quit') shutdown('host-qmp-quit');
    if (cmd.execute === 'cont' && mode === 'reset') {
      process.stdout.write('Linux version fake\n');
      setTimeout(() => {
        bt.write(Buffer.from([123]));
        setTimeout(() => {
          process.stdout.write('KATA_TS_');
          process.stdout.write('INIT_OK\n');
          setTimeout(() => shutdown('guest-reset'), 20);
        }, 20);
      }, 20);
    }
  }
});
