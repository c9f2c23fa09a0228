// `kata-ts boot` device flags -> DeviceSpec list (slot order: disks, net, vsock, rng).
import t from 'tap';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deviceSpecs } from '../../src/cli/boot.js';

const dir = mkdtempSync(join(tmpdir(), 'kata-ts-cli-'));
const a = join(dir, 'a.img');
const b = join(dir, 'b:odd.img');
writeFileSync(a, Buffer.alloc(4096));
writeFileSync(b, Buffer.alloc(4096));

t.same(deviceSpecs({}), [], 'no flags, no devices');
t.same(
  deviceSpecs({ disk: [a, `${b}:ro`], net: 'tap0', vsockCid: 3, vsockUds: '/tmp/v.sock', rng: true }),
  [
    { kind: 'blk', path: a, readOnly: false },
    { kind: 'blk', path: b, readOnly: true },
    { kind: 'net', tap: 'tap0' },
    { kind: 'vsock', cid: 3, udsPath: '/tmp/v.sock' },
    { kind: 'rng' },
  ],
  'every flag, in slot order; only a trailing :ro is an option',
);
t.same(deviceSpecs({ disk: [`${a}:rw`] }), [{ kind: 'blk', path: a, readOnly: false }], ':rw is accepted');
t.throws(() => deviceSpecs({ disk: [join(dir, 'missing.img')] }), /disk image not found: .*missing\.img/);
t.throws(() => deviceSpecs({ disk: [':ro'] }), /give an image path/);
t.throws(() => deviceSpecs({ vsockUds: '/tmp/x' }), /--vsock-uds needs --vsock-cid/);
