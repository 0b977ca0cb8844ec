import { createRequire } from 'node:module';

const loaded = new Map<string, unknown>();

/**
 * A native addon built at install (`native/build/Release/NAME.node`, see scripts/build-native.sh),
 * or null when it is absent or fails to load: callers then fall back to Node's own I/O.
 */
export function loadNativeAddon<T>(name: string): T | null {
  if (loaded.has(name)) return loaded.get(name) as T | null;
  let addon: T | null;
  try {
    addon = createRequire(import.meta.url)(`../../native/build/Release/${name}.node`) as T;
  } catch {
    addon = null;
  }
  loaded.set(name, addon);
  return addon;
}
