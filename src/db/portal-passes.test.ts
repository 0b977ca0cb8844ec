/**
 * The portal's periodic passes (traffic records, earned invites) on more members than a page
 * (SQLite and PostgreSQL): every member is reached, past the first page too, and on SQLite, where
 * a statement holds the event loop, the loop turns between pages (turns counted, not time).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { engines } from '../../test/helpers/db.ts';
import { turnsDuring } from '../../test/helpers/turns.ts';
import { openDatabase } from './connect.ts';
import { Registry } from './registry.ts';
import { memberRow } from './rows.ts';

const GiB = 1024 ** 3;
const DAY = 86400;
const T0 = 1_900_000_000;
/** Members: two pages and a half (pages of 1,000). */
const N = 2500;

async function withSite(fn: (reg: Registry, engine: string, ids: number[]) => Promise<void>) {
  for (const engine of engines) {
    const made = await engine.create();
    const db = await openDatabase(made.url, '');
    try {
      const reg = new Registry(db);
      const k = db.kysely;
      for (let i = 0; i < N; i += 500) {
        const rows = [];
        for (let j = i; j < Math.min(N, i + 500); j++)
          rows.push({ ...memberRow({ username: `m${j}`, createdAt: 0 }), uploaded: GiB });
        await k.insertInto('members').values(rows).execute();
      }
      const ids = (await k.selectFrom('members').select('id').orderBy('id').execute()).map((r) => r.id);
      await fn(reg, engine.name, ids);
    } finally {
      await db.close();
      await made.drop();
    }
  }
}

test('traffic records for more members than a page: each member once an hour, the last member too, old records dropped; the loop turns between pages', async () => {
  await withSite(async (reg, engine, ids) => {
    const k = reg.db.kysely;
    const last = ids[ids.length - 1];
    // A record past the keeping time, for the last member: dropped by the snapshot.
    await k
      .insertInto('traffic_history')
      .values({ member_id: last, at: T0 - 401 * DAY, uploaded: 1, downloaded: 0 })
      .execute();
    const first = await turnsDuring(() => reg.accounts.snapshotTraffic(T0));
    assert.equal(first.out, N, engine);
    // Without pages: one statement over every member and record, and 0 turns.
    if (engine === 'sqlite') assert.ok(first.turns >= 2, `the event loop turned ${first.turns} times`);
    assert.equal(await reg.accounts.snapshotTraffic(T0 + 60), 0, 'too soon');
    await k
      .updateTable('members')
      .set({ uploaded: 2 * GiB })
      .where('id', '=', last)
      .execute();
    assert.equal(await reg.accounts.snapshotTraffic(T0 + 3700), 1, 'only the member whose totals moved');
    assert.deepEqual(
      (await reg.accounts.trafficHistory(last)).map((r) => [Number(r.at), Number(r.uploaded)]),
      [
        [T0, GiB],
        [T0 + 3700, 2 * GiB],
      ],
      'the old record is gone',
    );
  });
});

test('earned invites for more members than a page: each member once a period, past the first page too; the loop turns between pages', async () => {
  await withSite(async (reg, engine, ids) => {
    const rules = {
      minRatio: 0,
      minAgeSeconds: 0,
      minUploaded: 0,
      perPeriod: 2,
      periodSeconds: 30 * DAY,
      at: T0,
    };
    const first = await turnsDuring(() => reg.accounts.grantEarnedInvites(rules));
    assert.equal(first.out, N, engine);
    if (engine === 'sqlite') assert.ok(first.turns >= 2, `the event loop turned ${first.turns} times`);
    assert.equal(await reg.accounts.grantEarnedInvites({ ...rules, at: T0 + DAY }), 0, 'once a period');
    assert.equal((await reg.member(ids[ids.length - 1])).invites, 2);
  });
});
