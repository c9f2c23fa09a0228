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
  const all = JSON.parse(readFileSync(file, 'utf8')) as Record<string, { description?: string; cmdline?: unknown }>;
  const p = all[name];
  if (!p || !Array.isArray(p.cmdline) || !p.cmdline.every((x) => typeof x === 'string')) {
    const known = Object.keys(all).join(', ');
    throw new Error(`host-quirks profile '${name}' is missing or malformed in ${file} (known: ${known}; or use --quirks auto|none)`);
  }
  return { name, description: p.description ?? '', cmdline: p.cmdline };
}

/** Append the profile's parameters that the command line does not already carry. */
export function applyQuirks(cmdline: string, profile: QuirksProfile): string {
  const have = new Set(cmdline.split(/\s+/).filter(Boolean));
  const add = profile.cmdline.filter((p) => !have.has(p));
  return [cmdline.trim(), ...add].filter(Boolean).join(' ');
}
