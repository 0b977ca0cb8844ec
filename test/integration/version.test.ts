/**
 * Version and schema (issue #17): `herald --version`, `/stats` and `/metrics` say which Herald
 * runs and which database schema it has, so an operator can tell what an upgrade changed.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { SCHEMA_VERSION } from '../../src/db/migrations.ts';
import { createTracker } from '../../src/index.ts';
import { httpGet } from '../helpers/clients.ts';

const ROOT = new URL('../../', import.meta.url).pathname;
const PKG_VERSION: string = JSON.parse(readFileSync(`${ROOT}package.json`, 'utf8')).version;

test('herald --version prints the package version, the schema and the Node version', () => {
  const out = execFileSync(process.execPath, [`${ROOT}bin/herald.js`, '--version'], { encoding: 'utf8' });
  assert.equal(out, `herald ${PKG_VERSION} (database schema ${SCHEMA_VERSION}; node ${process.version})\n`);
  assert.match(SCHEMA_VERSION, /^\d{4}_/);
});

test('/stats and /metrics report the version and the database schema', async (t) => {
  const tracker = createTracker({
    http: ['127.0.0.1:0'],
    udp: [],
    logLevel: 'silent',
    databaseUrl: 'sqlite::memory:',
  });
  await tracker.start();
  t.after(() => tracker.stop());
  const port = tracker.addresses().http[0].port;
  const stats = JSON.parse((await httpGet(port, '127.0.0.1', '/stats')).body.toString());
  assert.equal(stats.version, PKG_VERSION);
  assert.equal(stats.schema, SCHEMA_VERSION);
  const metrics = (await httpGet(port, '127.0.0.1', '/metrics')).body.toString();
  assert.ok(
    metrics.includes(
      `herald_build_info{version="${PKG_VERSION}",schema="${SCHEMA_VERSION}",node="${process.version}"} 1\n`,
    ),
    metrics,
  );
});
