import { getRawAsset, isSea } from 'node:sea';

/**
 * Files the single-file build (scripts/build-sea.ts) carries inside the `herald` executable as
 * single executable application assets: the native addons and the portal's static files. There
 * is no checkout or node_modules beside that executable, so code that reads such a file asks here
 * first; everywhere else (a checkout, the npm package) this is null and files are read from disk.
 */
export const IN_SINGLE_FILE: boolean = isSea();

/** The embedded file `key` (a copy), or null outside the single-file build. */
export function bundledFile(key: string): Buffer | null {
  return IN_SINGLE_FILE ? Buffer.from(getRawAsset(key)) : null;
}
