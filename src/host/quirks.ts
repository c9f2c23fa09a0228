// Named host-quirks profiles: guest kernel parameters that work around a host's KVM shortcomings. They live
// in kernel-config/host-quirks.json and are applied only where `kata-ts check` finds that host (never by
// default on hardware KVM).

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from './package-root.js';

export interface QuirksProfile {
  name: string;
  description: string;
  cmdline: string[];
}

export function loadQuirksProfile(name: string, file = join(packageRoot(), 'kernel-config/host-quirks.json')): QuirksProfile {
  let all: unknown;
  try {
    all = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`host-quirks file ${file} is unreadable or not JSON (${(e as Error).message}): restore it from the kata-ts package`);
  }
  if (typeof all !== 'object' || all === null || Array.isArray(all)) {
    throw new Error(`host-quirks file ${file} must hold an object of named profiles: restore it from the kata-ts package`);
  }
  const profiles = all as Record<string, unknown>;
  const p = profiles[name];
  const known = Object.keys(profiles).join(', ');
  if (typeof p !== 'object' || p === null) {
    throw new Error(`host-quirks profile '${name}' is missing in ${file} (known: ${known}; or use --quirks auto|none)`);
  }
  const { description, cmdline } = p as { description?: unknown; cmdline?: unknown };
  if (!Array.isArray(cmdline) || !cmdline.every((x): x is string => typeof x === 'string')) {
    throw new Error(`host-quirks profile '${name}' is malformed in ${file}: cmdline must be an array of strings`);
  }
  if (description !== undefined && typeof description !== 'string') {
    throw new Error(`host-quirks profile '${name}' is malformed in ${file}: description must be a string`);
  }
  return { name, description: description ?? '', cmdline };
}

/** Append the profile's parameters that the command line does not already carry. */
export function applyQuirks(cmdline: string, profile: QuirksProfile): string {
  const have = new Set(cmdline.split(/\s+/).filter(Boolean));
  const add = profile.cmdline.filter((p) => !have.has(p));
  return [cmdline.trim(), ...add].filter(Boolean).join(' ');
}
