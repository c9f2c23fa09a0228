// configuration.toml: the runtime's settings (Kata's configuration.toml shape, trimmed to what kata-ts uses).
// Which file: --config FILE, else $KATA_TS_CONFIG, else /etc/kata-ts/configuration.toml, else the package
// default (src/runtime/configuration.default.toml). The chosen file is laid over the built-in defaults, so
// it may leave keys out. Unknown sections/keys and wrong types are errors that name the file and line.

import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse, TomlError } from 'smol-toml';

export const SYSTEM_CONFIG = '/etc/kata-ts/configuration.toml';
/** dist/src/runtime/config.js → src/runtime/configuration.default.toml (the .toml is not compiled) */
export const PACKAGE_CONFIG = fileURLToPath(new URL('../../../src/runtime/configuration.default.toml', import.meta.url));

export interface HypervisorSection {
  /** QEMU binary (qemu only) */
  path: string;
  /** '' = the cached guest kernel (kernel-config/build.sh full) */
  kernel: string;
  /** '' = the cached agent initrd (guest/build-agent-initrd.sh) */
  initrd: string;
  kernel_params: string;
  default_vcpus: number;
  /** MiB */
  default_memory: number;
  /** MiB: console.log and console.log.1 under the state root each hold at most this much (console-ring.ts) */
  console_log_max_mib: number;
  /** how container rootfs reach the guest: 'virtio-fs' (a share per sandbox) or 'none' (a disk image copy each) */
  shared_fs: 'virtio-fs' | 'none';
}

export interface RuntimeConfig {
  /** the file read, or 'built-in' */
  source: string;
  hypervisor: { qemu: HypervisorSection; inproc: HypervisorSection };
  agent: { dial_timeout: number; request_timeout: number };
  runtime: {
    hypervisor: 'inproc' | 'qemu' | 'auto';
    spare_block_devices: number;
    spare_block_size: number;
    enable_annotations: string[];
  };
}

/** A bad configuration file; the message starts with `file:line:` when the line is known. */
export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly line: number | undefined,
    what: string,
  ) {
    super(`${file}${line !== undefined ? `:${line}` : ''}: ${what}`);
    this.name = 'ConfigError';
  }
}

const DEFAULT_PARAMS = 'console=ttyS0 reboot=k panic=-1';

export function builtinConfig(): RuntimeConfig {
  const hv = (): HypervisorSection => ({
    path: 'qemu-system-x86_64',
    kernel: '',
    initrd: '',
    kernel_params: DEFAULT_PARAMS,
    default_vcpus: 1,
    default_memory: 512,
    console_log_max_mib: 1,
    shared_fs: 'virtio-fs',
  });
  return {
    source: 'built-in',
    hypervisor: { qemu: hv(), inproc: hv() },
    agent: { dial_timeout: 60, request_timeout: 60 },
    runtime: { hypervisor: 'auto', spare_block_devices: 3, spare_block_size: 256, enable_annotations: ['default_vcpus', 'default_memory', 'kernel_params'] },
  };
}

type Kind = 'string' | 'int' | 'string[]';
interface KeySpec {
  kind: Kind;
  /** inclusive range for ints */
  min?: number;
  max?: number;
  oneOf?: readonly string[];
}

const HV_KEYS: Record<string, KeySpec> = {
  path: { kind: 'string' },
  kernel: { kind: 'string' },
  initrd: { kind: 'string' },
  kernel_params: { kind: 'string' },
  // limits: the qemu microvm machine / our PVH boot (layout.ts memmap) — keep them sane
  default_vcpus: { kind: 'int', min: 1, max: 64 },
  default_memory: { kind: 'int', min: 64, max: 65536 },
  // the state root is usually /run (RAM): two files of this size per sandbox
  console_log_max_mib: { kind: 'int', min: 1, max: 1024 },
  shared_fs: { kind: 'string', oneOf: ['virtio-fs', 'none'] },
};

/** section path → allowed keys */
const SCHEMA: Record<string, Record<string, KeySpec>> = {
  'hypervisor.qemu': HV_KEYS,
  'hypervisor.inproc': HV_KEYS,
  agent: {
    dial_timeout: { kind: 'int', min: 1, max: 3600 },
    request_timeout: { kind: 'int', min: 1, max: 3600 },
  },
  runtime: {
    hypervisor: { kind: 'string', oneOf: ['inproc', 'qemu', 'auto'] },
    spare_block_devices: { kind: 'int', min: 0, max: 16 },
    spare_block_size: { kind: 'int', min: 16, max: 65536 },
    enable_annotations: { kind: 'string[]' },
  },
};
export const ANNOTATION_KEYS: readonly string[] = ['default_vcpus', 'default_memory', 'kernel_params'];
export const ANNOTATION_PREFIX = 'io.katacontainers.config.hypervisor.';

/** Line (1-based) of `key` inside table `section` ('' = top level), by scanning the text; undefined if not found. */
export function findKeyLine(text: string, section: string, key: string | undefined): number | undefined {
  const lines = text.split('\n');
  let cur = '';
  let headerLine: number | undefined;
  for (const [i, raw] of lines.entries()) {
    const line = raw.replace(/^\s+/, '');
    const h = /^\[\[?\s*([^\]]+?)\s*\]\]?/.exec(line);
    if (h) {
      cur = h[1]!.replace(/\s*\.\s*/g, '.').replace(/"/g, '');
      if (cur === section && key === undefined) return i + 1;
      if (cur === section) headerLine = i + 1;
      continue;
    }
    if (key === undefined) continue;
    const k = /^("?)([A-Za-z0-9_.-]+)\1\s*=/.exec(line);
    if (!k) continue;
    const full = cur ? `${cur}.${k[2]!}` : k[2]!;
    if (full === (section ? `${section}.${key}` : key)) return i + 1;
  }
  return key === undefined ? undefined : headerLine;
}

function typeName(v: unknown): string {
  if (Array.isArray(v)) return 'array';
  if (v instanceof Date) return 'date';
  if (typeof v === 'object' && v !== null) return 'table';
  if (typeof v === 'number' && Number.isInteger(v)) return 'integer';
  return typeof v;
}

function isTable(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

/** Parses and validates TOML text; `file` names it in errors. */
export function parseConfig(text: string, file: string): RuntimeConfig {
  let doc: Record<string, unknown>;
  try {
    doc = parse(text);
  } catch (e) {
    if (e instanceof TomlError) throw new ConfigError(file, e.line, `invalid TOML: ${e.message.split('\n')[0]!}`);
    throw new ConfigError(file, undefined, `invalid TOML: ${(e as Error).message}`);
  }
  const cfg = builtinConfig();
  cfg.source = file;
  const err = (section: string, key: string | undefined, what: string): ConfigError => new ConfigError(file, findKeyLine(text, section, key), what);
  const known = Object.keys(SCHEMA).join('], [');

  const apply = (section: string, table: Record<string, unknown>): void => {
    const spec = SCHEMA[section]!;
    const target = section === 'agent' ? cfg.agent : section === 'runtime' ? cfg.runtime : section === 'hypervisor.qemu' ? cfg.hypervisor.qemu : cfg.hypervisor.inproc;
    const out = target as unknown as Record<string, unknown>;
    for (const [key, value] of Object.entries(table)) {
      const ks = spec[key];
      if (!ks) throw err(section, key, `unknown key '${key}' in [${section}] (known: ${Object.keys(spec).join(', ')})`);
      switch (ks.kind) {
        case 'string':
          if (typeof value !== 'string') throw err(section, key, `[${section}] ${key} must be a string (got ${typeName(value)})`);
          if (ks.oneOf && !ks.oneOf.includes(value)) throw err(section, key, `[${section}] ${key} must be one of ${ks.oneOf.join(', ')} (got '${value}')`);
          break;
        case 'int':
          if (typeof value !== 'number' || !Number.isInteger(value)) throw err(section, key, `[${section}] ${key} must be an integer (got ${typeName(value)})`);
          if (value < ks.min! || value > ks.max!) throw err(section, key, `[${section}] ${key} must be in ${ks.min!}..${ks.max!} (got ${value})`);
          break;
        case 'string[]':
          if (!Array.isArray(value) || !value.every((x) => typeof x === 'string')) throw err(section, key, `[${section}] ${key} must be an array of strings`);
          break;
      }
      if (key === 'enable_annotations') {
        for (const a of value as string[]) if (!ANNOTATION_KEYS.includes(a)) throw err(section, key, `[${section}] enable_annotations: '${a}' cannot be overridden (allowed: ${ANNOTATION_KEYS.join(', ')})`);
      }
      out[key] = value;
    }
  };

  for (const [top, value] of Object.entries(doc)) {
    if (!isTable(value)) throw err('', top, `unknown top-level key '${top}' (sections: [${known}])`);
    if (top === 'hypervisor') {
      for (const [name, sub] of Object.entries(value)) {
        if (name !== 'qemu' && name !== 'inproc') {
          const line = findKeyLine(text, `hypervisor.${name}`, undefined) ?? findKeyLine(text, 'hypervisor', name);
          throw new ConfigError(file, line, `unknown section [hypervisor.${name}] (known: [hypervisor.qemu], [hypervisor.inproc])`);
        }
        if (!isTable(sub)) throw err('hypervisor', name, `[hypervisor] ${name} must be a table`);
        apply(`hypervisor.${name}`, sub);
      }
    } else if (top === 'agent' || top === 'runtime') {
      apply(top, value);
    } else {
      throw err(top, undefined, `unknown section [${top}] (known: [${known}])`);
    }
  }
  return cfg;
}

export interface ConfigSource {
  /** --config */
  config?: string | undefined;
  /** default process.env */
  env?: NodeJS.ProcessEnv;
  /** default SYSTEM_CONFIG (tests point it elsewhere) */
  systemPath?: string;
  /** default PACKAGE_CONFIG */
  packagePath?: string;
}

/** Which file would be read, in precedence order: --config, KATA_TS_CONFIG, /etc/kata-ts, package default. */
export function configPath(s: ConfigSource = {}): { path: string; explicit: boolean } | undefined {
  const env = s.env ?? process.env;
  if (s.config) return { path: s.config, explicit: true };
  const fromEnv = env['KATA_TS_CONFIG'];
  if (fromEnv) return { path: fromEnv, explicit: true };
  const sys = s.systemPath ?? SYSTEM_CONFIG;
  if (existsSync(sys)) return { path: sys, explicit: false };
  const pkg = s.packagePath ?? PACKAGE_CONFIG;
  if (existsSync(pkg)) return { path: pkg, explicit: false };
  return undefined;
}

export function loadConfig(s: ConfigSource = {}): RuntimeConfig {
  const p = configPath(s);
  if (!p) return builtinConfig();
  let text: string;
  try {
    text = readFileSync(p.path, 'utf8');
  } catch (e) {
    throw new ConfigError(p.path, undefined, `cannot read the configuration file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): fix the path given by --config or KATA_TS_CONFIG`);
  }
  return parseConfig(text, p.path);
}

/**
 * The hypervisor section after OCI annotation overrides (io.katacontainers.config.hypervisor.<key>), only for
 * keys listed in [runtime] enable_annotations. Throws ConfigError (file 'annotation') for bad values.
 */
export function applyAnnotations(hv: HypervisorSection, cfg: RuntimeConfig, annotations: Record<string, string> | undefined): HypervisorSection {
  const out = { ...hv };
  for (const [k, v] of Object.entries(annotations ?? {})) {
    if (!k.startsWith(ANNOTATION_PREFIX)) continue;
    const key = k.slice(ANNOTATION_PREFIX.length);
    if (!cfg.runtime.enable_annotations.includes(key)) {
      throw new ConfigError(`annotation ${k}`, undefined, `overriding '${key}' is not enabled: add it to [runtime] enable_annotations in ${cfg.source}`);
    }
    if (key === 'kernel_params') out.kernel_params = v;
    else {
      const spec = HV_KEYS[key]!;
      const n = Number(v);
      if (!/^\d+$/.test(v) || n < spec.min! || n > spec.max!) throw new ConfigError(`annotation ${k}`, undefined, `must be an integer in ${spec.min!}..${spec.max!} (got '${v}')`);
      if (key === 'default_vcpus') out.default_vcpus = n;
      else out.default_memory = n;
    }
  }
  return out;
}
