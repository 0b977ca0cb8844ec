/**
 * The npm package (issue #17): `npm pack` of this checkout, `npm install -g` of the tarball into
 * a scratch prefix (npm fetches the dependencies from its registry, as it does for users), and the
 * installed `herald` prints its version and serves an announce. On a Node older than 22.18,
 * bin/herald.js says so in one line instead of a stack trace: checked with this Node made to report
 * 20.0.0, and with a real older Node where one is installed (Debian's /usr/bin/node).
 * `npm run test:install` (scripts/test-all.sh runs it after `npm test`).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { SCHEMA_VERSION } from '../../src/db/migrations.ts';
import { announcePath, bdecode, hashOf, httpGet } from '../helpers/clients.ts';
import { serveInstalled } from './serve.ts';

const ROOT = new URL('../../', import.meta.url).pathname;
const VERSION: string = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version;
const NODE_BIN = dirname(process.execPath);
/** This Node, reporting an older version to the script it runs. */
const AS_NODE_20 = [
  '--import',
  'data:text/javascript,Object.defineProperty(process.versions,"node",{value:"20.0.0"})',
];
const TOO_OLD =
  /^herald: this Node\.js is [0-9.]+; Herald needs Node\.js 22\.18 or newer\. .*README "Install"/;

test('bin/herald.js on a Node that is too old says so, in one line', () => {
  const r = spawnSync(process.execPath, [...AS_NODE_20, join(ROOT, 'bin/herald.js'), '--version'], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 1);
  assert.match(r.stderr, TOO_OLD);
  assert.equal(r.stderr.trim().split('\n').length, 1);
  const system = spawnSync('/usr/bin/node', ['--version'], { encoding: 'utf8' });
  const [major, minor] = (system.stdout ?? '').replace('v', '').split('.').map(Number);
  if (system.error || major > 22 || (major === 22 && minor >= 18)) {
    process.stderr.write(
      '\n*** no Node older than 22.18 at /usr/bin/node: only the simulated one was checked ***\n\n',
    );
    return;
  }
  const real = spawnSync('/usr/bin/node', [join(ROOT, 'bin/herald.js'), '--version'], { encoding: 'utf8' });
  assert.equal(real.status, 1);
  assert.match(real.stderr, TOO_OLD);
});

test('npm pack, npm install -g: the installed herald runs and serves', async (t) => {
  const scratch = mkdtempSync(join(tmpdir(), 'herald-npm-'));
  t.after(() => rmSync(scratch, { recursive: true, force: true }));
  const env = { ...process.env, PATH: `${NODE_BIN}:${process.env.PATH}`, npm_config_loglevel: 'error' };
  execFileSync('npm', ['pack', '--pack-destination', scratch], { cwd: ROOT, env, stdio: 'pipe' });
  const [tgz] = readdirSync(scratch).filter((f) => f.endsWith('.tgz'));
  assert.ok(tgz, 'npm pack made a tarball');
  const prefix = join(scratch, 'prefix');
  execFileSync('npm', ['install', '-g', '--prefix', prefix, '--no-audit', '--no-fund', join(scratch, tgz)], {
    env,
    stdio: 'pipe',
    timeout: 300_000,
  });
  const herald = join(prefix, 'bin/herald');
  const version = spawnSync(herald, ['--version'], { env, encoding: 'utf8' });
  assert.equal(
    version.stdout,
    `herald ${VERSION} (database schema ${SCHEMA_VERSION}; node ${process.version})\n`,
  );
  const old = spawnSync(process.execPath, [...AS_NODE_20, herald, '--version'], { env, encoding: 'utf8' });
  assert.equal(old.status, 1);
  assert.match(old.stderr, TOO_OLD);

  const tracker = await serveInstalled(
    herald,
    ['--http', '127.0.0.1:0', '--udp', 'off', '--data-dir', join(scratch, 'data')],
    { env },
  );
  t.after(() => tracker.kill());
  const r = await httpGet(
    tracker.httpPort,
    '127.0.0.1',
    announcePath({ infoHash: hashOf(1, 31), port: 7000, left: 0 }),
  );
  assert.equal(bdecode(r.body).get('failure reason'), undefined);
  await tracker.stop();
});
