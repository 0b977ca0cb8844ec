import { readFileSync } from 'node:fs';

/**
 * The single-file build (scripts/build-sea.ts) sets this to the package version at bundle time:
 * there is no package.json next to that executable.
 */
declare const HERALD_BUILD_VERSION: string | undefined;

/**
 * Herald's version (package.json's): `herald --version`, `/stats`, `/metrics` (`herald_build_info`).
 * From src/core/ (a checkout) and dist/core/ (the npm package) package.json is two folders up.
 */
export const VERSION: string =
  typeof HERALD_BUILD_VERSION === 'string'
    ? HERALD_BUILD_VERSION
    : JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version;
