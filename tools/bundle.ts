// Bundles kata-ts's process and worker entry points with esbuild: dist/bundle/<name>.js for each,
// built from tsc's output in dist/src (npm run build:ts runs tsc, then this). A cold `kata-ts`
// process then loads one file instead of ~70 ES modules: resolving, reading and linking those was most of a
// cold command's own start-up (bench/results/cli.md has the profile and the before/after).
//
// What changes in bundled code:
// - a module's `import.meta.url` still names its own file under dist/src (rewritten relative to the bundle, so the
//   tree stays relocatable): the paths it finds from there (the addon in build/Release, .proto files, the default
//   configuration.toml, the package root) are the same as unbundled;
// - src/contract/entry-point.ts learns the bundle's URL, so children and workers start from the bundle too;
// - commander and the other CommonJS dependencies are inlined; `require` of Node built-ins goes through
//   createRequire.

import { chmodSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Plugin } from 'esbuild';
import type { EntryName } from '../src/contract/entry-point.js';

const dist = join(dirname(fileURLToPath(import.meta.url)), '..');
const outdir = join(dist, 'bundle');

/** Entry points, by the file name the runtime asks for (src/contract/entry-point.ts). */
const ENTRIES: Record<EntryName, string> = {
  'kata-ts': 'src/cli/main.js',
  shim: 'src/shim/main.js',
  'sandbox-main': 'src/runtime/sandbox-main.js',
  'stdio-relay-main': 'src/runtime/stdio-relay-main.js',
  'vcpu-worker': 'src/vmm/vcpu-worker.js',
  'device-worker': 'src/virtio/worker/device-worker.js',
};
/** The commands users run: executable, with their #! line. */
const EXECUTABLES: EntryName[] = ['kata-ts', 'shim'];

const MARKER = 'const BUNDLED_AT = undefined;';
const ENTRY_POINT_MODULE = join(dist, 'src', 'contract', 'entry-point.js');

const moduleUrls: Plugin = {
  name: 'kata-ts-module-urls',
  setup(b) {
    b.onLoad({ filter: /\.js$/ }, (args) => {
      if (!args.path.startsWith(join(dist, 'src') + sep)) return undefined;
      let text = readFileSync(args.path, 'utf8');
      const rel = relative(outdir, args.path).split(sep).join('/');
      text = text.replaceAll('import.meta.url', `new URL(${JSON.stringify(rel)}, import.meta.url).href`);
      if (args.path === ENTRY_POINT_MODULE) {
        if (!text.includes(MARKER)) throw new Error(`${args.path} lacks '${MARKER}': update tools/bundle.ts with it`);
        text = text.replace(MARKER, 'const BUNDLED_AT = import.meta.url;');
      }
      return { contents: text, loader: 'js', resolveDir: dirname(args.path) };
    });
  },
};

async function main(): Promise<void> {
  const started = process.hrtime.bigint();
  rmSync(outdir, { recursive: true, force: true });
  // One self-contained file per entry point (no shared chunks): measured on this machine (interleaved runs,
  // bench/results/cli.md), shared chunks cut by six entry points and their lazy imports made 40-50 small files,
  // and loading those cost the boot path more than parsing one file costs `state`. Whitespace and syntax are
  // minified (less to parse); identifiers are kept, so stack traces still name functions.
  const res = await build({
    entryPoints: Object.fromEntries(Object.entries(ENTRIES).map(([name, file]) => [name, join(dist, file)])),
    outdir,
    bundle: true,
    splitting: false,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    minifyWhitespace: true,
    minifySyntax: true,
    // CommonJS dependencies (commander, protobufjs, pino) call require() for Node built-ins
    banner: { js: "import { createRequire as __kataTsCreateRequire } from 'node:module'; const require = __kataTsCreateRequire(import.meta.url);" },
    plugins: [moduleUrls],
    logLevel: 'warning',
    metafile: true,
  });
  const files = Object.keys(res.metafile.outputs).length;
  for (const name of EXECUTABLES) chmodSync(join(outdir, `${name}.js`), 0o755);
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  process.stderr.write(`[bundle] ${Object.keys(ENTRIES).length} entry points, ${files} files in ${relative(process.cwd(), outdir) || outdir} (${ms.toFixed(0)} ms)\n`);
}

await main();
