/**
 * The portal's pass that ends expired sessions (`deleteExpiredSessions`, every portal tick) on a
 * site with many sessions, on both engines: the database finds the expired ones through an index
 * on `expires_at` (the plan, by EXPLAIN QUERY PLAN / EXPLAIN), not by reading every session, and
 * it ends those and only those.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CompiledQuery, sql } from 'kysely';
import { engines } from '../../test/helpers/db.ts';
import { expiredSessions } from './accounts.ts';
import { openDatabase } from './connect.ts';
import { Registry } from './registry.ts';
import { memberRow } from './rows.ts';

const T0 = 1_900_000_000;
/** Sessions, of which `EXPIRED` have expired: a big site's logged-in members, a few leaving each tick. */
const N = 20_000;
const EXPIRED = 50;

for (const engine of engines) {
  test(`expired sessions are found through an index on expires_at, not a scan of every session (${engine.name})`, async () => {
    const made = await engine.create();
    const db = await openDatabase(made.url, '');
    try {
      const reg = new Registry(db);
      const k = db.kysely;
      const [{ id }] = await k
        .insertInto('members')
        .values(memberRow({ username: 'regular', createdAt: 0 }))
        .returning('id')
        .execute();
      for (let i = 0; i < N; i += 1000)
        await k
          .insertInto('sessions')
          .values(
            Array.from({ length: 1000 }, (_, j) => ({
              id: `s${i + j}`,
              member_id: id,
              csrf: 'c',
              created_at: T0 - 86400,
              // The first EXPIRED have expired; the rest expire over the next weeks.
              expires_at: i + j < EXPIRED ? T0 - 1 - j : T0 + 1 + (i + j) * 60,
              ip: null,
            })),
          )
          .execute();
      await sql`ANALYZE`.execute(k);
      const q = expiredSessions(k, T0).compile();
      const explain = engine.name === 'sqlite' ? 'EXPLAIN QUERY PLAN ' : 'EXPLAIN ';
      const plan = (await k.executeQuery(CompiledQuery.raw(explain + q.sql, [...q.parameters]))).rows
        .map((r) => Object.values(r as Record<string, unknown>).join(' '))
        .join('\n');
      assert.match(plan, /sessions_expires/, plan);
      assert.doesNotMatch(plan, /Seq Scan|SCAN sessions(?! USING)/, plan);
      await reg.accounts.deleteExpiredSessions(T0);
      const left = await k
        .selectFrom('sessions')
        .select((e) => e.fn.countAll().as('n'))
        .executeTakeFirstOrThrow();
      assert.equal(Number(left.n), N - EXPIRED);
    } finally {
      await db.close();
      await made.drop();
    }
  });
}
