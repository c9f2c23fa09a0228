// Where the script of a process or worker entry point is. The build bundles the entry points (tools/bundle.ts:
// dist/bundle/<name>.js each, a launcher of one CommonJS body), so a cold process loads a few files instead of
// ~70 ES modules; code running from the bundle starts its child processes and workers from the bundle too, and
// code running from dist/src (tests that import modules directly) starts the unbundled scripts beside it.

/** Set by tools/bundle.ts to the bundle's own URL (every bundle file sits in one directory). */
const BUNDLED_AT: string | undefined = undefined;

/** The entry points tools/bundle.ts builds, by their file name in dist/bundle/. */
export type EntryName = 'kata-ts' | 'shim' | 'sandbox-main' | 'stdio-relay-main' | 'vcpu-worker' | 'device-worker';

/** The bundled script of `name` when this code runs from the bundle, else `unbundled`. */
export function entryUrl(name: EntryName, unbundled: URL): URL {
  return BUNDLED_AT === undefined ? unbundled : new URL(`./${name}.js`, BUNDLED_AT);
}

/** Whether this code runs from the bundle. */
export function isBundled(): boolean {
  return BUNDLED_AT !== undefined;
}
