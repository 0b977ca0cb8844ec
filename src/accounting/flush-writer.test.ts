/**
 * The flush writer's sums, read back from a real database on each engine: members' credit (one
 * statement per member on SQLite, UPDATE … FROM unnest(…) on PostgreSQL) and member × torrent
 * rows, over more members than one statement's chunk, written twice: every delta counted once.
 * Uploads above 2^32 bytes: PostgreSQL's array parameters carry 64-bit sums.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sql } from 'kysely';
import { engines } from '../../test/helpers/db.ts';
import { openDatabase } from '../db/connect.ts';
import { Registry } from '../db/registry.ts';
import { memberRow } from '../db/rows.ts';
import { type Batch, type MemberTorrentPending, writeBatch } from './flush-writer.ts';

/** More than one statement: 500 rows a statement on SQLite, 10,000 on PostgreSQL. */
const MEMBERS = { sqlite: 1234, postgres: 10_234 };
/** Member i uploads i × BIG bytes (2^33: over 32 bits from the first member on). */
const BIG = 2 ** 33;
const T0 = 1_900_000_000;

/** Member i (1-based index) uploads i bytes, downloads 2i, seeds 3 s, on torrent i % 3, at `at`. */
function batch(memberIds: number[], torrentIds: number[], at: number): Batch {
  const b: Batch = { members: new Map(), memberTorrents: new Map(), flags: [] };
  memberIds.forEach((id, k) => {
    const i = k + 1;
    const traffic = {
      uploaded: i * BIG,
      downloaded: 2 * i,
      rawUploaded: i,
      rawDownloaded: 2 * i,
      seedTime: 3,
      lastAt: at,
    };
    b.members.set(id, { ...traffic });
    const torrentId = torrentIds[i % 3];
    const row: MemberTorrentPending = {
      ...traffic,
      memberId: id,
      torrentId,
      announces: 1,
      completedAt: 0,
      firstAt: at,
      state: 2,
    };
    b.memberTorrents.set(id, new Map([[torrentId, row]]));
  });
  return b;
}

for (const engine of engines) {
  const n = MEMBERS[engine.name];
  test(`${engine.name}: members' credit and member × torrent rows over ${n} members, two flushes, each delta once`, async () => {
    const created = await engine.create();
    const db = await openDatabase(created.url, '');
    try {
      const k = db.kysely;
      for (let i = 0; i < n; i += 500) {
        const rows = [];
        for (let j = i; j < Math.min(n, i + 500); j++)
          rows.push(memberRow({ username: `m${j}`, createdAt: 0 }));
        await k.insertInto('members').values(rows).execute();
      }
      const reg = new Registry(db);
      for (const n of [0, 1, 2])
        await reg.addTorrent({
          infoHash: String(n).repeat(40),
          infoHashV2: null,
          name: `t${n}`,
          size: 1000,
          fileCount: 1,
        });
      const memberIds = (await k.selectFrom('members').select('id').orderBy('id').execute()).map((r) => r.id);
      const torrentIds = (await k.selectFrom('torrents').select('id').orderBy('id').execute()).map(
        (r) => r.id,
      );
      for (const at of [T0, T0 + 10]) {
        const r = await writeBatch(reg, batch(memberIds, torrentIds, at));
        assert.deepEqual(r, { written: n, dropped: 0, rewritten: false });
      }
      const members = await k
        .selectFrom('members')
        .select([
          'id',
          'uploaded',
          'downloaded',
          'raw_uploaded',
          'raw_downloaded',
          'seed_time',
          'last_announce_at',
        ])
        .orderBy('id')
        .execute();
      members.forEach((m, k0) => {
        const i = k0 + 1;
        assert.deepEqual(
          [m.uploaded, m.downloaded, m.raw_uploaded, m.raw_downloaded, m.seed_time, m.last_announce_at].map(
            Number,
          ),
          [2 * i * BIG, 4 * i, 2 * i, 4 * i, 6, T0 + 10],
          `member ${m.id}`,
        );
      });
      const rows = await k
        .selectFrom('member_torrents')
        .select(['member_id', 'torrent_id', 'uploaded', 'announces', 'first_announce_at', 'last_announce_at'])
        .orderBy('member_id')
        .execute();
      assert.equal(rows.length, n);
      rows.forEach((r, k0) => {
        const i = k0 + 1;
        assert.deepEqual(
          [r.member_id, r.torrent_id, r.uploaded, r.announces, r.first_announce_at, r.last_announce_at].map(
            Number,
          ),
          [memberIds[k0], torrentIds[i % 3], 2 * i * BIG, 2, T0, T0 + 10],
        );
      });
      if (engine.name === 'postgres') {
        // Room on each page for the flush's updates (migration 0016_update_room): HOT updates.
        const r = await sql<{ relname: string; reloptions: string[] | null }>`
          SELECT relname, reloptions FROM pg_class WHERE relname IN ('members', 'member_torrents') ORDER BY relname`.execute(
          k,
        );
        assert.deepEqual(
          r.rows.map((x) => [x.relname, x.reloptions]),
          [
            ['member_torrents', ['fillfactor=80']],
            ['members', ['fillfactor=80']],
          ],
        );
      }
    } finally {
      await db.close();
      await created.drop();
    }
  });
}
