/**
 * The WebTorrent browser build, fetched at test time without installing webtorrent (one of its
 * dependencies has a broken install script): `npm pack` downloads only the package tarball from
 * the registry (npm checks its integrity), the ES module `dist/webtorrent.min.js` is extracted
 * and cached under `.cache/webtorrent/` (gitignored), and checked against a pinned SHA-256.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const WEBTORRENT_VERSION = '2.8.5';
/** SHA-256 of `package/dist/webtorrent.min.js` in webtorrent-2.8.5.tgz. */
const BUNDLE_SHA256 = '98f65d27e64f5872427544e53566bba011ace28af867ac44fc8fc08c2f92bcae';

const ROOT = new URL('../../../', import.meta.url).pathname;
export const CACHE_DIR = join(ROOT, '.cache/webtorrent');

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

/** The path of the cached bundle, downloading it first when it is missing or altered. */
export function ensureBundle(): string {
  const file = join(CACHE_DIR, `webtorrent-${WEBTORRENT_VERSION}.min.js`);
  if (existsSync(file) && sha256(readFileSync(file)) === BUNDLE_SHA256) return file;
  mkdirSync(CACHE_DIR, { recursive: true });
  const tgz = join(CACHE_DIR, `webtorrent-${WEBTORRENT_VERSION}.tgz`);
  if (!existsSync(tgz)) {
    try {
      execFileSync(
        'npm',
        ['pack', `webtorrent@${WEBTORRENT_VERSION}`, '--pack-destination', CACHE_DIR, '--silent'],
        { cwd: CACHE_DIR, stdio: ['ignore', 'ignore', 'pipe'], timeout: 60_000 },
      );
    } catch (err) {
      throw new Error(
        `could not download the WebTorrent browser build with "npm pack webtorrent@${WEBTORRENT_VERSION}" ` +
          `(needs the npm registry once; then it is cached in ${CACHE_DIR}): ${String(err)}`,
      );
    }
  }
  const js = execFileSync('tar', ['-xzf', tgz, '-O', 'package/dist/webtorrent.min.js'], {
    maxBuffer: 16 * 1024 * 1024,
    timeout: 30_000,
  });
  if (sha256(js) !== BUNDLE_SHA256) {
    rmSync(tgz, { force: true });
    throw new Error(
      `${tgz} holds an unexpected webtorrent.min.js (SHA-256 ${sha256(js)}): removed, run again`,
    );
  }
  writeFileSync(`${file}.tmp`, js);
  renameSync(`${file}.tmp`, file);
  return file;
}
