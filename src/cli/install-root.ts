/**
 * The folder Berth is installed in: the nearest folder above this module that holds a package.json.
 * That is the checkout when Berth runs from src/ (tsx), /opt/berth in the container image, and the
 * folder above dist/ for the bundle `npm run build` writes (its chunks all sit in dist/, so a path
 * relative to one module's own folder would not survive bundling). Without a package.json anywhere
 * above (a bundle copied somewhere bare), the folder above the module's own.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function installRoot(start: string): string {
  for (let dir = start; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) return dirname(start);
  }
}

export const INSTALL_ROOT = installRoot(dirname(fileURLToPath(import.meta.url)));

/** The version in the installed package's package.json; 'unknown' when it cannot be read or has none. */
export async function packageVersion(): Promise<string> {
  try {
    const pkg: unknown = JSON.parse(await readFile(join(INSTALL_ROOT, 'package.json'), 'utf8'));
    const v = typeof pkg === 'object' && pkg !== null ? (pkg as Record<string, unknown>)['version'] : undefined;
    return typeof v === 'string' ? v : 'unknown';
  } catch {
    return 'unknown';
  }
}
