// A tiny checker for JSON the runtime reads (state.json, sandbox.json, control messages, the sandbox's launch
// settings, a bundle's config.json): each `Check<T>` turns an `unknown` into a `T` or throws InvalidField naming
// the field (`process.args[0]`, `annotations["io.x"]`) and what it must be. `parseJson` adds the name of the file
// or message, so a malformed input ends as one line such as
//   state file /run/kata-ts/c1/state.json: field status must be one of 'created', 'running' (got "bogus")
// and never as a stack. Object checks keep only the fields they name.

/** A field failed its check. `path` is '' for the value itself. */
export class InvalidField extends Error {
  constructor(
    readonly path: string,
    /** what is wrong: "is missing", "must be a string (got number 3)" */
    readonly problem: string,
  ) {
    super(path === '' ? `the value ${problem}` : `field ${path} ${problem}`);
    this.name = 'InvalidField';
  }
}

/** The input of parseJson was not JSON, or did not pass its check. The message names `what`. */
export class InvalidJson extends Error {
  constructor(
    readonly what: string,
    readonly detail: string,
    /** the failing field, when the JSON parsed */
    readonly field: InvalidField | undefined,
  ) {
    super(`${what}: ${detail}`);
    this.name = 'InvalidJson';
  }
}

export interface Check<T> {
  (value: unknown, path: string): T;
  /** for messages: "a string", "an array of strings" */
  readonly expected: string;
  /** set by optional(): the field may be absent */
  readonly optional?: true;
}

/** A check from a function: `expected` says what the value must be ("a signal number"). */
export function define<T>(expected: string, fn: (value: unknown, path: string) => T): Check<T> {
  return Object.assign(fn, { expected });
}
const check = define;

/** A short, safe rendering of a bad value for a message. */
export function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v);
  return typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint' ? `${typeof v} ${v}` : typeof v;
}

/** Throws InvalidField for `v` at `path`: "is missing" when absent, "must be <expected> (got ...)" otherwise. */
export function fail(path: string, expected: string, v: unknown): never {
  if (v === undefined) throw new InvalidField(path, 'is missing');
  throw new InvalidField(path, `must be ${expected} (got ${describeValue(v)})`);
}

/** The path of field `key` of the value at `path`. */
export function sub(path: string, key: string): string {
  if (/^[A-Za-z_$][\w$]*$/.test(key)) return path === '' ? key : `${path}.${key}`;
  return `${path}[${JSON.stringify(key)}]`;
}

export const string: Check<string> = check('a string', (v, p) => (typeof v === 'string' ? v : fail(p, 'a string', v)));

export const nonEmptyString: Check<string> = check('a non-empty string', (v, p) =>
  typeof v === 'string' && v !== '' ? v : fail(p, 'a non-empty string', v),
);

export const boolean: Check<boolean> = check('a boolean', (v, p) => (typeof v === 'boolean' ? v : fail(p, 'a boolean', v)));

/** An integer in [min, max] (default: any safe integer). */
export function int(min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER): Check<number> {
  const what = min === Number.MIN_SAFE_INTEGER && max === Number.MAX_SAFE_INTEGER ? 'an integer' : max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer in ${min}..${max}`;
  return check(what, (v, p) => (typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max ? v : fail(p, what, v)));
}

/** One of the given strings. */
export function oneOf<const T extends string>(...values: T[]): Check<T> {
  const what = `one of ${values.map((x) => `'${x}'`).join(', ')}`;
  return check(what, (v, p) => (typeof v === 'string' && (values as string[]).includes(v) ? (v as T) : fail(p, what, v)));
}

/** The field may be absent (undefined); when present it must pass `c`. */
export function optional<T>(c: Check<T>): Check<T | undefined> {
  return Object.assign((v: unknown, p: string) => (v === undefined ? undefined : c(v, p)), { expected: c.expected, optional: true as const });
}

/** An array whose elements pass `c`; `nonEmpty` refuses []. A bad element is named by its index. */
export function array<T>(c: Check<T>, o: { nonEmpty?: boolean } = {}): Check<T[]> {
  const what = `${o.nonEmpty ? 'a non-empty array' : 'an array'} of ${c.expected.replace(/^an? /, '')}s`;
  return check(what, (v, p) => {
    if (!Array.isArray(v) || (o.nonEmpty && v.length === 0)) fail(p, what, v);
    return v.map((x, i) => c(x, `${p}[${i}]`));
  });
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Any JSON object, unchecked inside (an OCI spec travels through as it is). */
export const anyObject: Check<Record<string, unknown>> = check('an object', (v, p) => (isPlainObject(v) ? v : fail(p, 'an object', v)));

/** Any value at all (a reply's free-form result). */
export const anything: Check<unknown> = check('any value', (v) => v);

/** An object used as a map: every value passes `c`. */
export function record<T>(c: Check<T>): Check<Record<string, T>> {
  const what = `an object of ${c.expected.replace(/^an? /, '')}s`;
  return check(what, (v, p) => {
    if (!isPlainObject(v)) fail(p, what, v);
    const out: Record<string, T> = {};
    for (const [k, x] of Object.entries(v)) out[k] = c(x, sub(p, k));
    return out;
  });
}

type Shape = Record<string, Check<unknown>>;
type Value<C> = C extends Check<infer T> ? T : never;
type OptionalKeys<S extends Shape> = { [K in keyof S]: S[K] extends { optional: true } ? K : never }[keyof S];
type RequiredKeys<S extends Shape> = Exclude<keyof S, OptionalKeys<S>>;
export type Shaped<S extends Shape> = { [K in RequiredKeys<S>]: Value<S[K]> } & { [K in OptionalKeys<S>]?: Exclude<Value<S[K]>, undefined> };

/** An object with these fields (others are dropped; absent optional fields stay absent). */
export function object<S extends Shape>(shape: S): Check<Shaped<S>> {
  return check('an object', (v, p) => {
    if (!isPlainObject(v)) fail(p, 'an object', v);
    const out: Record<string, unknown> = {};
    for (const [k, c] of Object.entries(shape)) {
      const x = c(v[k], sub(p, k));
      if (x !== undefined) out[k] = x;
    }
    return out as Shaped<S>;
  });
}

/** A union told apart by a string field (`op`, `ok`...): the branch named by that field checks the rest. */
export function tagged<K extends string, M extends Record<string, Check<unknown>>>(key: K, branches: M): Check<Value<M[keyof M]>> {
  const tag = oneOf(...(Object.keys(branches) as (keyof M & string)[]));
  return check(`an object with ${key} ${tag.expected}`, (v, p) => {
    if (!isPlainObject(v)) fail(p, 'an object', v);
    return branches[tag(v[key], sub(p, key))]!(v, p) as Value<M[keyof M]>;
  });
}

/** Exactly this value (a branch's tag). */
export function literal<const T extends string | number | boolean>(value: T): Check<T> {
  const what = JSON.stringify(value);
  return check(what, (v, p) => (v === value ? value : fail(p, what, v)));
}

/** Checks an already-parsed value; InvalidJson names `what` and the field. */
export function validate<T>(value: unknown, c: Check<T>, what: string): T {
  try {
    return c(value, '');
  } catch (e) {
    if (e instanceof InvalidField) throw new InvalidJson(what, e.message, e);
    throw e;
  }
}

/** JSON.parse + check. `what` names the input: "state file /run/kata-ts/c1/state.json", "control reply". */
export function parseJson<T>(text: string, c: Check<T>, what: string): T {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new InvalidJson(what, `not valid JSON (${(e as Error).message})`, undefined);
  }
  return validate(value, c, what);
}
