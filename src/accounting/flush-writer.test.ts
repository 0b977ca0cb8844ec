/**
 * The flush writer's sums, read back from a real database on each engine: members' credit (one
 * statement per member on SQLite, UPDATE … FROM (VALUES …) on PostgreSQL) and member × torrent
 * rows, over more members than one statement's chunk, written twice: every delta counted once.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { engines } from '../../test/helpers/db.ts';
import { openDatabase } from '../db/connect.ts';
import { Registry } from '../db/registry.ts';
import { memberRow } from '../db/rows.ts';
import { type Batch, type MemberTorrentPending, writeBatch } from './flush-writer.ts';

const MEMBERS = 1234; // two full chunks of 500 and a shorter one
const T0 = 1_900_000_000;

/** Member i (1-based index) uploads i bytes, downloads 2i, seeds 3 s, on torrent i % 3, at `at`. */
function batch(memberIds: number[], torrentIds: number[], at: number): Batch {
  const b: Batch = { members: new Map(), memberTorrents: new Map(), flags: [] };
  memberIds.forEach((id, k) => {
    const i = k + 1;
    const traffic = {
      uploaded: i,
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
  test(`${engine.name}: members' credit and member × torrent rows over ${MEMBERS} members, two flushes, each delta once`, async () => {
    const created = await engine.create();
    const db = await openDatabase(created.url, '');
    try {
      const k = db.kysely;
      for (let i = 0; i < MEMBERS; i += 500) {
        const rows = [];
        for (let j = i; j < Math.min(MEMBERS, i + 500); j++)
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
        assert.deepEqual(r, { written: MEMBERS, dropped: 0, rewritten: false });
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
          [2 * i, 4 * i, 2 * i, 4 * i, 6, T0 + 10],
          `member ${m.id}`,
        );
      });
      const rows = await k
        .selectFrom('member_torrents')
        .select(['member_id', 'torrent_id', 'uploaded', 'announces', 'first_announce_at', 'last_announce_at'])
        .orderBy('member_id')
        .execute();
      assert.equal(rows.length, MEMBERS);
      rows.forEach((r, k0) => {
        const i = k0 + 1;
        assert.deepEqual(
          [r.member_id, r.torrent_id, r.uploaded, r.announces, r.first_announce_at, r.last_announce_at].map(
            Number,
          ),
          [memberIds[k0], torrentIds[i % 3], 2 * i, 2, T0, T0 + 10],
        );
      });
    } finally {
      await db.close();
      await created.drop();
    }
  });
}
