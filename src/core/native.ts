import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bundledFile } from './bundled.ts';

const loaded = new Map<string, unknown>();

/**
 * A native addon built at install (`native/build/Release/NAME.node`, see scripts/build-native.sh),
 * or null when it is absent or fails to load: callers then fall back to Node's own I/O.
 */
export function loadNativeAddon<T>(name: string): T | null {
  if (loaded.has(name)) return loaded.get(name) as T | null;
  let addon: T | null;
  try {
    const embedded = bundledFile(`${name}.node`);
    addon =
      embedded === null
        ? (createRequire(import.meta.url)(`../../native/build/Release/${name}.node`) as T)
        : loadEmbedded<T>(name, embedded);
  } catch {
    addon = null;
  }
  loaded.set(name, addon);
  return addon;
}

/**
 * The single-file build: the addon is written to a folder only this user can read (mkdtemp, 0700)
 * and loaded from there; the file is removed at once (the loaded library stays mapped), so nothing
 * is left behind and no other user can swap it between write and load.
 */
function loadEmbedded<T>(name: string, bytes: Buffer): T {
  const dir = mkdtempSync(join(tmpdir(), 'herald-addon-'));
  try {
    const file = join(dir, `${name}.node`);
    writeFileSync(file, bytes, { mode: 0o500 });
    const module = { exports: {} as T };
    process.dlopen(module, file);
    return module.exports;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
