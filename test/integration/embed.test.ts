/**
 * The library API as another Node program uses it: the package's compiled JavaScript (what
 * `npm pack` ships), `createTracker(config)`, `start()`, `stop()`.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { announcePath, bdecode, hashOf, httpGet } from '../helpers/clients.ts';

const ROOT = new URL('../../', import.meta.url).pathname;

test('the built package embeds a tracker: start, serve, stop', async () => {
  // Inside the checkout, so that the build resolves the package's own node_modules.
  const out = mkdtempSync(join(ROOT, '.dist-test-'));
  try {
    execFileSync(
      join(ROOT, 'node_modules/.bin/tsc'),
      ['-p', join(ROOT, 'tsconfig.build.json'), '--outDir', out],
      {
        stdio: 'pipe',
      },
    );
    const lib = await import(pathToFileURL(join(out, 'index.js')).href);
    const tracker = lib.createTracker({
      http: ['127.0.0.1:0'],
      udp: ['127.0.0.1:0'],
      interval: 600,
      minInterval: 300,
      logLevel: 'silent',
      databaseUrl: 'sqlite::memory:',
    });
    await tracker.start();
    const { http, udp } = tracker.addresses();
    assert.equal(udp.length, 1);
    const r = await httpGet(
      http[0].port,
      '127.0.0.1',
      announcePath({ infoHash: hashOf(1), port: 7000, left: 0 }),
    );
    assert.equal(bdecode(r.body).get('interval'), 600);
    await tracker.stop();
    await assert.rejects(
      httpGet(http[0].port, '127.0.0.1', '/health'),
      'stopped trackers close their sockets',
    );
    assert.throws(() => lib.createTracker({ intervall: 5 }), /unknown key "intervall"/);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
