// DESIGN.md "Who may import whom", enforced: every import of every file under src/ (static, type-only,
// re-exports, dynamic import() and worker-script URLs) is read and checked against the table below. A new
// top-level folder under src/ must be placed in the table before anything may import it.

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import t from 'tap';
import { packageRoot } from '../../src/host/package-root.js';

/**
 * What each layer may import besides itself. Read bottom-up: `memory`, `kvm` and `contract` are leaves;
 * `host` holds host facts (it probes /dev/kvm); devices (`virtio`) know no VM, transport owner or container;
 * `boot` takes (mem, layout), never the VM; above the hypervisor, everything reaches KVM, the VMM and the
 * devices only through the Hypervisor interface; the agent client talks over streams and knows no VMM.
 */
export const ALLOWED: Record<string, readonly string[]> = {
  memory: [],
  kvm: [],
  contract: [],
  host: ['kvm'],
  arch: ['kvm', 'memory'],
  boot: ['arch', 'memory'],
  virtio: ['memory', 'kvm', 'contract'],
  'vhost-user': ['virtio', 'memory', 'kvm', 'contract'],
  vmm: ['virtio', 'boot', 'arch', 'kvm', 'memory', 'contract'],
  hypervisor: ['vmm', 'vhost-user', 'boot', 'arch', 'host', 'contract'],
  agent: ['contract'],
  runtime: ['hypervisor', 'agent', 'host', 'contract'],
  shim: ['runtime', 'hypervisor', 'agent', 'host', 'contract'],
  cli: ['runtime', 'shim', 'hypervisor', 'agent', 'host', 'contract'],
};

const root = packageRoot();
const src = join(root, 'src');

function tsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return tsFiles(p);
    return name.endsWith('.ts') ? [p] : [];
  });
}

/** Every module specifier a file names: import/export ... from, import(), new URL(..., import.meta.url). */
export function specifiers(text: string): string[] {
  const out: string[] = [];
  const patterns = [
    /^\s*(?:import|export)\s[^;]*?\sfrom\s+['"]([^'"]+)['"]/gms,
    /^\s*import\s+['"]([^'"]+)['"]/gm,
    /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g,
    // a module loaded by URL (worker scripts); URLs of directories and data files are not imports
    /\bnew URL\(\s*['"]([^'"]+\.js)['"]\s*,\s*import\.meta\.url\s*\)/g,
  ];
  for (const re of patterns) for (const m of text.matchAll(re)) if (m[1] !== undefined) out.push(m[1]);
  return out;
}

/** The top-level folder under src/ a path is in, or undefined when it is outside src/. */
function layerOf(path: string): string | undefined {
  const rel = relative(src, path);
  if (rel.startsWith('..') || rel === '') return undefined;
  const [first] = rel.split(sep);
  return first;
}

t.test('the specifier reader sees every form of import', async (t) => {
  const text = [
    "import { a } from '../vmm/a.js';",
    "import type {\n  B,\n  C,\n} from '../virtio/b.js';",
    "export { d } from '../kvm/d.js';",
    "import '../memory/side-effect.js';",
    "const m = await import('../vhost-user/index.js');",
    "new URL('../virtio/worker/device-worker.js', import.meta.url)",
    "import { x } from 'node:fs';",
    "new URL('../../../', import.meta.url)",
  ].join('\n');
  t.same(
    specifiers(text).sort(),
    ['../kvm/d.js', '../memory/side-effect.js', '../virtio/b.js', '../virtio/worker/device-worker.js', '../vhost-user/index.js', '../vmm/a.js', 'node:fs'].sort(),
  );
});

t.test('every folder under src/ has a place in the rules', async (t) => {
  const folders = readdirSync(src).filter((n) => statSync(join(src, n)).isDirectory());
  for (const f of folders) t.ok(f in ALLOWED, `src/${f} is in the import rules`);
});

t.test('no file under src/ imports across a forbidden arrow', async (t) => {
  const violations: string[] = [];
  let checked = 0;
  for (const file of tsFiles(src)) {
    const from = layerOf(file);
    if (from === undefined) continue; // files directly under src/ (none today)
    for (const spec of specifiers(readFileSync(file, 'utf8'))) {
      if (!spec.startsWith('.')) continue; // node: built-ins and packages
      checked++;
      const target = resolve(dirname(file), spec);
      const to = layerOf(target);
      const where = `${relative(root, file)} -> ${spec}`;
      if (to === undefined) violations.push(`${where}: src/ must not import from outside src/ (tests, bench)`);
      else if (to !== from && !(ALLOWED[from] ?? []).includes(to)) violations.push(`${where}: ${from} may not import ${to}`);
    }
  }
  t.ok(checked > 300, `read the imports (${String(checked)} relative specifiers)`);
  t.same(violations, [], 'no forbidden imports');
});
