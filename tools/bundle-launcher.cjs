// The launcher of one bundled entry point (tools/bundle.ts copies it to dist/bundle/<name>.js, with BODY set to
// '<name>.body.cjs'): it compiles the bundle body with V8's code cache, so a cold process skips most of compiling
// ~0.5 MB of JavaScript (Node 20 keeps no compile cache of its own; module.enableCompileCache is Node 22).
//
// The cache, '<body>.v8cache' beside the body, is used only when it is newer than the body (a rebuilt body never
// meets an old cache; V8 itself rejects a cache of another V8 version, other flags or another source length).
// A process that found no usable cache writes one as it exits, or after 2 s if it lives longer (a sandbox
// process, the shim, a device worker), with every function it compiled by then, when the directory is
// writable (tmp file + rename: concurrent writers cannot tear it). KATA_TS_CODE_CACHE=off turns the cache
// off; =report prints what happened to stderr at exit (tests/unit/bundle.test.ts).
'use strict';

const { accessSync, constants: fsConstants, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } = require('node:fs');
const Module = require('node:module');
const { join } = require('node:path');
const { Script } = require('node:vm');

const BODY = 'BODY';
const body = join(__dirname, BODY);
const cacheFile = `${body}.v8cache`;
const mode = process.env.KATA_TS_CODE_CACHE ?? 'on';
const WRITE_AFTER_MS = 2000;

let cachedData;
if (mode !== 'off') {
  try {
    if (statSync(cacheFile).mtimeMs >= statSync(body).mtimeMs) cachedData = readFileSync(cacheFile);
  } catch {
    // no cache yet
  }
}
// a #! line is not JavaScript inside the module wrapper
const source = readFileSync(body, 'utf8').replace(/^#!.*/, '');
// Module.wrap()'s parameters and one more: the body's import() of a module it does not bundle (a device class a
// spec names) is rewritten by the build to call __kataTsImport, this file's own import(). (Code compiled by
// vm.Script has no import() of its own without vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER, which on Node 20
// warns that it is experimental and fails once the code comes from the cache.)
const script = new Script(`(function (exports, require, module, __filename, __dirname, __kataTsImport) {${source}\n})`, {
  filename: body,
  cachedData,
});
const outcome = mode === 'off' ? 'off' : cachedData === undefined ? 'none' : script.cachedDataRejected ? 'rejected' : 'used';
/** Whether a cache can be written here at all (else making one, a few ms, would be for nothing on every run). */
function writable() {
  try {
    accessSync(__dirname, fsConstants.W_OK);
    return true;
  } catch {
    return false;
  }
}
let pending = (outcome === 'none' || outcome === 'rejected') && writable();
let wrote = '';
/** Write the cache once, with every function compiled so far. */
function writeCache() {
  if (!pending) return;
  pending = false;
  // unique per writer: the workers of one process share its pid
  const tmp = `${cacheFile}.${process.pid}.${Math.random().toString(36).slice(2)}`;
  try {
    writeFileSync(tmp, script.createCachedData());
    renameSync(tmp, cacheFile);
    wrote = ', written';
  } catch {
    try {
      unlinkSync(tmp);
    } catch {
      // never made
    }
  }
}
if (pending || mode === 'report') {
  process.once('exit', () => {
    writeCache();
    if (mode === 'report') process.stderr.write(`kata-ts code cache: ${outcome}${wrote}\n`);
  });
}
// a long-lived process or a worker (terminate() runs no exit handler) writes it once its start-up is compiled
if (pending) setTimeout(writeCache, WRITE_AFTER_MS).unref();

const m = new Module(body, module);
m.filename = body;
script.runInThisContext()(m.exports, Module.createRequire(body), m, body, __dirname, (specifier) => import(specifier));
