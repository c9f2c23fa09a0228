// Bundles kata-ts's process and worker entry points with esbuild: dist/bundle/<name>.js for each (a launcher
// of its body, <name>.body.cjs), built from tsc's output in dist/src (npm run build:ts runs tsc, then this).
// A cold `kata-ts` process then loads one file instead of ~70 ES modules: resolving, reading and linking those was most of a
// cold command's own start-up (bench/results/cli.md has the profile and the before/after).
//
// What changes in bundled code:
// - a module's `import.meta.url` still names its own file under dist/src (rewritten relative to the bundle, so the
//   tree stays relocatable): the paths it finds from there (the addon in build/Release, .proto files, the default
//   configuration.toml, the package root) are the same as unbundled;
// - src/contract/entry-point.ts learns the bundle's URL, so children and workers start from the bundle too;
// - commander and the other CommonJS dependencies are inlined;
// - each entry point is a CommonJS body (<name>.body.cjs) started by a launcher (<name>.js, from
//   tools/bundle-launcher.cjs) that compiles it with V8's code cache (<name>.body.cjs.v8cache).

import { spawnSync } from 'node:child_process';
import { chmodSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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

/** The URL of the bundle body being run: a constant its banner defines (bodies and the snapshot script sit in
 * dist/bundle, so children and files are found from the same directory). */
const CJS_BASE = '__kataTsBundleUrl';
/** What the launcher (tools/bundle-launcher.cjs) passes a body for import(). */
const IMPORT = '__kataTsImport';

/** Rewrites `import.meta.url` in our modules to their own file's URL, computed from the body's (CJS_BASE). */
const moduleUrls: Plugin = {
  name: 'kata-ts-module-urls',
  setup(b) {
    b.onLoad({ filter: /\.js$/ }, (args) => {
      if (!args.path.startsWith(join(dist, 'src') + sep)) return undefined;
      let text = readFileSync(args.path, 'utf8');
      const rel = relative(outdir, args.path).split(sep).join('/');
      text = text.replaceAll('import.meta.url', `new URL(${JSON.stringify(rel)}, ${CJS_BASE}).href`);
      // import() of a computed specifier stays a real import at run time: the launcher passes one in (a string
      // literal is bundled by esbuild instead)
      text = text.replace(/\bimport\((?!\s*['"`])/g, `${IMPORT}(`);
      if (args.path === ENTRY_POINT_MODULE) {
        if (!text.includes(MARKER)) throw new Error(`${args.path} lacks '${MARKER}': update tools/bundle.ts with it`);
        text = text.replace(MARKER, `const BUNDLED_AT = ${CJS_BASE};`);
      }
      return { contents: text, loader: 'js', resolveDir: dirname(args.path) };
    });
  },
};

/**
 * The CLI as a V8 startup snapshot (node --build-snapshot): the CLI's bundle body, evaluated once at build time
 * (every module's top level; nothing runs: cli/main.ts registers main() as the snapshot's entry), and a launcher
 * `kata-ts-snapshot` (built by `--snapshot`, which bench:cli passes) that starts node from the snapshot (or runs
 * the plain bundle when there is none). A snapshot belongs to the node binary that built it, so the launcher
 * names that binary.
 *
 * Measured (bench:cli, interleaved): on Node 20 a process started from this snapshot is 10-20 ms SLOWER than the
 * plain bundle (deserialising the ~5 MB heap costs more than compiling the bundle lazily, and a user snapshot
 * replaces Node's own), so the package's `kata-ts` is the plain bundle and this stays a measured variant.
 */
function buildSnapshot(): string {
  const script = join(outdir, 'kata-ts.snapshot.cjs');
  const blob = join(outdir, 'kata-ts.blob');
  // the snapshot builder runs the script with require and __filename but no `module`, which esbuild's CommonJS
  // output assigns its exports to; a #! line is not JavaScript past the script's start
  const body = readFileSync(join(outdir, 'kata-ts.body.cjs'), 'utf8').replace(/^#!.*/, '');
  writeFileSync(script, `var module = { exports: {} }; var ${IMPORT} = (s) => import(s);${body}`);
  const r = spawnSync(process.execPath, ['--snapshot-blob', blob, '--build-snapshot', script], { encoding: 'utf8', timeout: 120_000 });
  const launcher = join(outdir, 'kata-ts-snapshot');
  const node = JSON.stringify(process.execPath);
  writeFileSync(
    launcher,
    [
      '#!/bin/sh',
      '# kata-ts from its V8 startup snapshot (tools/bundle.ts: a measured variant, slower on Node 20 than the plain bundle), made by and for this node binary; the plain bundle without one.',
      'here=$(dirname "$(readlink -f "$0")")',
      `[ -r "$here/kata-ts.blob" ] && exec ${node} --snapshot-blob "$here/kata-ts.blob" -- "$@"`,
      `exec ${node} "$here/kata-ts.js" "$@"`,
      '',
    ].join('\n'),
    { mode: 0o755 },
  );
  if (r.status !== 0) {
    rmSync(blob, { force: true });
    return `no startup snapshot (node --build-snapshot failed: ${(r.stderr || r.error?.message || '').trim().split('\n').pop() ?? ''}): kata-ts-snapshot runs the plain bundle`;
  }
  return `startup snapshot ${relative(process.cwd(), blob) || blob}`;
}

async function main(): Promise<void> {
  const started = process.hrtime.bigint();
  rmSync(outdir, { recursive: true, force: true });
  // One self-contained file per entry point (no shared chunks): measured on this machine (interleaved runs,
  // bench/results/cli.md), shared chunks cut by six entry points and their lazy imports made 40-50 small files,
  // and loading those cost the boot path more than parsing one file costs `state`. Whitespace and syntax are
  // minified (less to parse); identifiers are kept, so stack traces still name functions.
  // Each entry point is a CommonJS body, <name>.body.cjs, started by a launcher, <name>.js, that compiles it with
  // V8's code cache (tools/bundle-launcher.cjs); dist/bundle/package.json makes its .js files CommonJS. Measured
  // on this machine (`state` of an unknown container, own cost over `node -e 0`, interleaved): ES module bundle
  // 60 ms, CommonJS bundle 44 ms (Node's ES module loader is gone), CommonJS with the code cache 33 ms.
  const res = await build({
    entryPoints: Object.fromEntries(Object.entries(ENTRIES).map(([name, file]) => [`${name}.body`, join(dist, file)])),
    outdir,
    outExtension: { '.js': '.cjs' },
    bundle: true,
    splitting: false,
    format: 'cjs',
    platform: 'node',
    target: 'node20',
    minifyWhitespace: true,
    minifySyntax: true,
    banner: { js: `const ${CJS_BASE} = require('node:url').pathToFileURL(__filename).href;` },
    plugins: [moduleUrls],
    logLevel: 'warning',
    metafile: true,
  });
  for (const out of Object.keys(res.metafile.outputs)) {
    // code compiled by the launcher's vm.Script has no import() of its own
    if (/[^\w$.]import\(/.test(readFileSync(out, 'utf8'))) throw new Error(`${out} still calls import(): tools/bundle.ts must rewrite it`);
  }
  writeFileSync(join(outdir, 'package.json'), `${JSON.stringify({ type: 'commonjs' })}\n`);
  const launcher = readFileSync(join(dist, '..', 'tools', 'bundle-launcher.cjs'), 'utf8');
  if (!launcher.includes("const BODY = 'BODY';")) throw new Error("tools/bundle-launcher.cjs lacks \"const BODY = 'BODY';\"");
  for (const name of Object.keys(ENTRIES)) {
    const shebang = (EXECUTABLES as string[]).includes(name) ? '#!/usr/bin/env node\n' : '';
    writeFileSync(join(outdir, `${name}.js`), shebang + launcher.replace("const BODY = 'BODY';", `const BODY = ${JSON.stringify(`${name}.body.cjs`)};`));
  }
  // the CLI's code cache, made now by one run that loads the runtime (a process that finds none writes one too,
  // where it can: this covers an install whose directory it cannot write)
  const warm = spawnSync(process.execPath, [join(outdir, 'kata-ts.js'), '--root', join(outdir, 'no-such-root'), 'state', 'code-cache'], { encoding: 'utf8', timeout: 60_000 });
  if (!/does not exist/.test(warm.stderr)) throw new Error(`the bundled CLI failed its first run: ${warm.stderr.trim() || `exit ${String(warm.status)}`}`);
  const files = Object.keys(res.metafile.outputs).length + Object.keys(ENTRIES).length + 1;
  for (const name of EXECUTABLES) chmodSync(join(outdir, `${name}.js`), 0o755);
  // the snapshot is a measured variant only (see buildSnapshot): built when bench:cli asks, not by every build
  const snapshot = process.argv.includes('--snapshot') ? `; ${buildSnapshot()}` : '';
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  process.stderr.write(`[bundle] ${Object.keys(ENTRIES).length} entry points, ${files} files in ${relative(process.cwd(), outdir) || outdir} (${ms.toFixed(0)} ms)${snapshot}\n`);
}

await main();
