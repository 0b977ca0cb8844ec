/**
 * The portal's guessing limits keep a row per key in `auth_attempts` (see `AuthAttempts.take`):
 * the keys are typed by strangers (usernames) or are their addresses, so the rows must stand for
 * attempts that were counted, never for requests that cost the sender nothing.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { sql } from 'kysely';
import { engines } from '../helpers/db.ts';
import { PortalClient } from '../helpers/portal-client.ts';
import { startPortalTracker } from '../helpers/portal-tracker.ts';

for (const engine of engines) {
  describe(`auth_attempts rows (${engine.name})`, () => {
    test('logins refused as busy (503) leave no rows: one row per checked attempt and address', async () => {
      const t = await startPortalTracker(engine, { udp: [] });
      try {
        // 20 addresses, 10 logins each at once with random usernames: more than the password
        // checks running and queued, so most are answered 503 (not checked, given back).
        const clients = Array.from(
          { length: 200 },
          (_, i) => new PortalClient(t.base, { localAddress: `127.0.7.${Math.floor(i / 10) + 1}` }),
        );
        await Promise.all(clients.map((c) => c.get('/login')));
        const statuses = (
          await Promise.all(
            clients.map((c, i) =>
              c.post('/login', { username: `random-${i}-${Math.random()}`, password: 'x' }),
            ),
          )
        ).map((r) => r.status);
        const count = (s: number) => statuses.filter((x) => x === s).length;
        const checked = count(401);
        assert.ok(count(503) > 0, `some were refused as busy: ${statuses.join(',')}`);
        assert.equal(checked + count(503) + count(429), 200);
        const rows = await t.reg.db.kysely
          .selectFrom('auth_attempts')
          .select(['scope', sql<number>`count(*)`.as('n')])
          .groupBy('scope')
          .execute();
        const byScope = Object.fromEntries(rows.map((r) => [r.scope, Number(r.n)]));
        // Before: a row for every username sent, checked or not (and an empty one per address).
        assert.equal(byScope['login-user'] ?? 0, checked, 'a login-user row per checked attempt');
        const empty = await t.reg.db.kysely
          .selectFrom('auth_attempts')
          .select(sql<number>`count(*)`.as('n'))
          .where('times', '=', '')
          .executeTakeFirstOrThrow();
        assert.equal(Number(empty.n), 0, 'no rows without an attempt in them');
      } finally {
        await t.stop();
      }
    });

    test('logins from ever new addresses with ever new usernames: the rows stay within the cap', async () => {
      const t = await startPortalTracker(engine, { udp: [] });
      try {
        // 100_000 by default, as the per-process limiter it replaced; small here.
        t.reg.accounts.attempts.maxRows = 20;
        const statuses: number[] = [];
        for (let i = 0; i < 40; i++) {
          const c = new PortalClient(t.base, { localAddress: `127.0.8.${i + 1}` });
          statuses.push((await c.login(`stranger-${i}`, 'wrong')).status);
        }
        assert.deepEqual(new Set(statuses), new Set([401]));
        const rows = await t.reg.db.kysely
          .selectFrom('auth_attempts')
          .select(['scope', sql<number>`count(*)`.as('n')])
          .groupBy('scope')
          .execute();
        // Before: 40 each (a login-ip and a login-user row per login), kept for the whole window.
        // The cap (per throttle) is checked every attempts.maxRows / 10 attempts: 2 more at most.
        for (const r of rows) assert.ok(Number(r.n) <= 22, `${r.n} ${r.scope} rows`);
        // The newest keys are the ones kept: the last login's username is still counted.
        const last = await t.reg.db.kysely
          .selectFrom('auth_attempts')
          .select('key')
          .where('key', '=', 'stranger-39')
          .execute();
        assert.equal(last.length, 1);
      } finally {
        await t.stop();
      }
    });

    test("a flood of one throttle's keys does not push out another's rows", async () => {
      const t = await startPortalTracker(engine, { udp: [] });
      try {
        const accounts = t.reg.accounts;
        accounts.attempts.maxRows = 20;
        const window = 15 * 60_000;
        const now = Date.now();
        // A username being guessed: its row is older than everything that follows.
        assert.equal(await accounts.attempts.take('login-user', 'target', 5, window, now), 0);
        // Reset mails asked from 100 new addresses: the cheap keys.
        for (let i = 0; i < 100; i++)
          assert.equal(await accounts.attempts.take('forgot-ip', `10.0.0.${i}`, 5, window, now + 1 + i), 0);
        const rows = await t.reg.db.kysely
          .selectFrom('auth_attempts')
          .select(['scope', 'key'])
          .where('scope', '=', 'login-user')
          .execute();
        // Before: the cap counted every throttle together, and the oldest row (this one) went.
        assert.deepEqual(
          rows.map((r) => r.key),
          ['target'],
        );
        const forgot = await t.reg.db.kysely
          .selectFrom('auth_attempts')
          .select(sql<number>`count(*)`.as('n'))
          .where('scope', '=', 'forgot-ip')
          .executeTakeFirstOrThrow();
        assert.ok(Number(forgot.n) <= 22, `${forgot.n} forgot-ip rows`);
      } finally {
        await t.stop();
      }
    });
  });
}
