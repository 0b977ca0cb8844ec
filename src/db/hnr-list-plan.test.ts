/**
 * Staff › Hit-and-runs and `GET /api/hit-and-runs?status=…` on a big site, on both engines: a page
 * of one status, newest first, is read in id order through an index on (status, id) and stops at
 * its limit, instead of sorting every hit-and-run of that status for each page (SQLite) or
 * reading every hit-and-run to find a rare status (PostgreSQL).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CompiledQuery, sql } from 'kysely';
import { engines } from '../../test/helpers/db.ts';
import { torrentRow } from '../../test/helpers/scheduler.ts';
import { openDatabase } from './connect.ts';
import { Registry } from './registry.ts';
import { memberRow } from './rows.ts';

const MEMBERS = 100;
const TORRENTS = 200;

for (const engine of engines) {
  test(`a page of expired hit-and-runs is read through (status, id), not sorted whole (${engine.name})`, async () => {
    const made = await engine.create();
    const db = await openDatabase(made.url, '');
    try {
      const reg = new Registry(db);
      const k = db.kysely;
      const members = await k
        .insertInto('members')
        .values(Array.from({ length: MEMBERS }, (_, i) => memberRow({ username: `m${i}`, createdAt: 0 })))
        .returning('id')
        .execute();
      const torrents = await k
        .insertInto('torrents')
        .values(Array.from({ length: TORRENTS }, (_, i) => torrentRow(i, `t${i}`)))
        .returning('id')
        .execute();
      // 20,000 hit-and-runs, nearly all expired (a site that has run for years), 1 in 100 active.
      const rows = members.flatMap((m, i) =>
        torrents.map((t, j) => ({
          member_id: m.id,
          torrent_id: t.id,
          snatched_at: 0,
          marked_at: 0,
          seed_time: 0,
          status: (i * TORRENTS + j) % 100 === 0 ? 'active' : 'expired',
        })),
      );
      for (let i = 0; i < rows.length; i += 1000)
        await k
          .insertInto('hit_and_runs')
          .values(rows.slice(i, i + 1000) as never)
          .execute();
      await sql`ANALYZE`.execute(k);
      const explain = engine.name === 'sqlite' ? 'EXPLAIN QUERY PLAN ' : 'EXPLAIN ';
      // Of the common status and of the rare one. SQLite reads either through the index, in order,
      // stopping at the limit. PostgreSQL may walk the primary key backwards for the common one (as
      // good: it stops at the limit too) and may sort the rare one's few rows; it must not read every
      // hit-and-run for the rare one.
      for (const status of ['expired', 'active'] as const) {
        const q = reg.hnr.listQuery({ status, limit: 500 }).compile();
        const plan = (await k.executeQuery(CompiledQuery.raw(explain + q.sql, [...q.parameters]))).rows
          .map((r) => Object.values(r as Record<string, unknown>).join(' '))
          .join('\n');
        if (engine.name === 'sqlite') {
          assert.match(plan, /hit_and_runs_status_id/, plan);
          assert.doesNotMatch(plan, /TEMP B-TREE/, plan);
        } else if (status === 'active') assert.match(plan, /hit_and_runs_status_id/, plan);
      }
      const page = await reg.hnr.list({ status: 'expired', limit: 500 });
      assert.equal(page.length, 500);
      assert.ok(page.every((h, i) => h.status === 'expired' && (i === 0 || h.id < page[i - 1].id)));
    } finally {
      await db.close();
      await made.drop();
    }
  });
}
