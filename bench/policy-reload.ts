/**
 * How long the event loop stalls while one member hammers `POST /me/passkey` (every call changes
 * the database and waits for a policy reload) on a site of 10,000 members and 50,000 torrents.
 *
 *   node bench/policy-reload.ts                       SQLite under a temporary data directory
 *   DB_URL=postgres://USER:PW@127.0.0.1/DB node bench/policy-reload.ts   an empty PostgreSQL database
 *
 * Prints the time of one full reload, then, for 100 passkey resets sent 10 at a time: the time they
 * took, the event loop's delay (max, p99, mean; monitorEventLoopDelay, 1 ms resolution) and how
 * many snapshots were loaded.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { memberRow } from '../src/db/registry.ts';
import { createTracker } from '../src/index.ts';
import { PortalClient } from '../test/helpers/portal-client.ts';
import { torrentRow } from './harness/rows.ts';

const MEMBERS = 10_000;
const TORRENTS = 50_000;
const REQUESTS = 100;
const AT_ONCE = 10;
const PASSWORD = 'correct horse battery';

const dir = mkdtempSync(join(tmpdir(), 'herald-policy-reload-'));
const tracker = createTracker({
  http: ['127.0.0.1:0'],
  udp: ['off'],
  mode: 'private',
  dataDir: dir,
  databaseUrl: process.env.DB_URL ?? '',
  policyRefresh: 3600,
  logLevel: 'silent',
});
await tracker.start();
try {
  const base = `http://127.0.0.1:${tracker.addresses().http[0].port}`;
  const reg = tracker.registry();
  const k = reg.db.kysely;
  const me = new PortalClient(base);
  await me.get('/register');
  await me.post('/register', {
    invite: '',
    username: 'hammer',
    email: '',
    password: PASSWORD,
    password2: PASSWORD,
  });
  const hex = (n: number) => randomBytes(n).toString('hex');
  for (let i = 0; i < MEMBERS; i += 500)
    await k
      .insertInto('members')
      .values(Array.from({ length: 500 }, (_, j) => memberRow({ username: `member${i + j}` })))
      .execute();
  for (let i = 0; i < TORRENTS; i += 500)
    await k
      .insertInto('torrents')
      .values(Array.from({ length: 500 }, (_, j) => torrentRow(hex(20), `t${i + j}`, 1)))
      .execute();
  await reg.setSetting('bench', '1');
  let t0 = performance.now();
  await tracker.policy.refresh();
  const snap = tracker.policy.snapshot;
  console.log(
    `one full reload: ${Math.round(performance.now() - t0)} ms (${snap.members.size} members, ${snap.torrents.size} torrents)`,
  );

  await me.login('hammer', PASSWORD);
  await me.get('/torrents');
  const loads0 = tracker.policy.loads;
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  t0 = performance.now();
  let sent = 0;
  let failed = 0;
  const browser = async () => {
    for (; sent < REQUESTS; sent++) {
      const r = await me.post('/me/passkey', {}).catch(() => null);
      if (r?.status !== 303) failed++;
    }
  };
  await Promise.all(Array.from({ length: AT_ONCE }, browser));
  const elapsed = performance.now() - t0;
  delay.disable();
  const ms = (ns: number) => (ns / 1e6).toFixed(1);
  console.log(
    `${REQUESTS} passkey resets, ${AT_ONCE} at a time: ${Math.round(elapsed)} ms, ${failed} failed; ` +
      `event loop delay max ${ms(delay.max)} ms, p99 ${ms(delay.percentile(99))} ms, mean ${ms(delay.mean)} ms; ` +
      `${tracker.policy.loads - loads0} snapshots loaded`,
  );
  const last = (await reg.member('hammer')).passkey;
  console.log(`the last passkey is live: ${tracker.policy.snapshot.members.has(last)}`);
} finally {
  await tracker.stop();
  rmSync(dir, { recursive: true, force: true });
}
