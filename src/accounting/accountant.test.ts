/**
 * The accountant's own bookkeeping (baselines found without key strings, least recently announced
 * order, pending rows reused after a flush), credit read back from a real (in-memory SQLite)
 * database on a manual clock.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { peerAnnounce } from '../../test/helpers/announce.ts';
import { ManualClock } from '../core/clock.ts';
import { createLogger } from '../core/log.ts';
import { AnnounceEvent } from '../core/types.ts';
import { openDatabase } from '../db/connect.ts';
import { Registry } from '../db/registry.ts';
import { PolicySnapshot } from '../policy/policy.ts';
import type { PolicyMember, PolicyTorrent } from '../policy/types.ts';
import { Accountant, type RemovePeer } from './accountant.ts';

const T0 = 1_900_000_000;

const req = peerAnnounce;

/** An accountant on a manual clock at T0 (no rate limit, an hour between flushes), connected to `reg`. */
function accountant(reg: Registry, maxPeers: number, evict?: RemovePeer): Accountant {
  const a = new Accountant({
    logger: createLogger('silent'),
    clock: new ManualClock(T0),
    snapshot: () => new PolicySnapshot(),
    flushInterval: 3600,
    maxRate: 0,
    peerTimeout: 1800,
    maxPeers,
    evict,
  });
  a.connect(reg);
  return a;
}

async function withAccountant(
  maxPeers: number,
  fn: (
    a: Accountant,
    m: PolicyMember,
    t: PolicyTorrent,
    credited: () => Promise<{ member: number; row: number; announces: number }>,
  ) => Promise<void>,
  evict?: RemovePeer,
): Promise<void> {
  const db = await openDatabase('sqlite::memory:', '');
  try {
    const reg = new Registry(db);
    const row = await reg.addMember({ username: 'acct' });
    const tr = await reg.addTorrent({
      infoHash: '22'.repeat(20),
      infoHashV2: null,
      name: 't',
      size: 1000,
      fileCount: 1,
    });
    const a = accountant(reg, maxPeers, evict);
    const credited = async () => {
      await a.flush();
      const mt = await db.kysely
        .selectFrom('member_torrents')
        .select(['uploaded', 'announces'])
        .where('member_id', '=', row.id)
        .where('torrent_id', '=', tr.id)
        .executeTakeFirst();
      return {
        member: (await reg.member(row.id)).uploaded,
        row: mt?.uploaded ?? 0,
        announces: mt?.announces ?? 0,
      };
    };
    await fn(
      a,
      { id: row.id, status: 0, groups: [] },
      { ...tr, restricted: false, route: new Uint8Array(20), downloadFactor: 100, uploadFactor: 100 },
      credited,
    );
  } finally {
    await db.close();
  }
}

test('twenty peer ids of one member on one torrent (beyond the byte-by-byte scan): each credited once; rows reused after a flush start from zero', async () => {
  await withAccountant(1000, async (a, m, t, credited) => {
    for (let p = 1; p <= 20; p++) a.account(req(p, { event: AnnounceEvent.started }), m, t, T0);
    assert.equal(a.peers, 20);
    for (let p = 1; p <= 20; p++) a.account(req(p, { uploaded: 100 * p }), m, t, T0 + 60);
    assert.deepEqual(await credited(), { member: 21_000, row: 21_000, announces: 40 });
    // The next interval's sums are the flushed rows reused: nothing of the last one is in them.
    for (let p = 1; p <= 20; p++) a.account(req(p, { uploaded: 100 * p + 5 }), m, t, T0 + 120);
    assert.deepEqual(await credited(), { member: 21_100, row: 21_100, announces: 60 });
    for (let p = 1; p <= 20; p++)
      a.account(req(p, { uploaded: 100 * p + 5, event: AnnounceEvent.stopped }), m, t, T0 + 180);
    assert.equal(a.peers, 0, 'every stopped peer forgotten');
    assert.deepEqual(await credited(), { member: 21_100, row: 21_100, announces: 80 });
    assert.equal(a.activity(m.id).leeching, 0);
  });
});

test('at maxPeers the least recently announced baseline is evicted (an announce moves its peer last); its gap is not credited', async () => {
  await withAccountant(3, async (a, m, t, credited) => {
    for (let p = 1; p <= 3; p++) a.account(req(p, { event: AnnounceEvent.started }), m, t, T0 + p);
    a.account(req(1, { uploaded: 10 }), m, t, T0 + 10);
    // Peer 2 is now the least recently announced: the new peer 4 takes its place.
    a.account(req(4, { event: AnnounceEvent.started }), m, t, T0 + 11);
    assert.equal(a.counts.evicted, 1);
    assert.equal(a.peers, 3);
    a.account(req(2, { uploaded: 500 }), m, t, T0 + 20); // a new baseline: nothing credited (evicts 3)
    a.account(req(1, { uploaded: 30 }), m, t, T0 + 21); // still known: 20 more
    assert.equal(a.counts.evicted, 2);
    assert.equal((await credited()).member, 30);
  });
});

test('an evicted baseline’s peer is taken out of the swarms (evict), unless it is the announcing endpoint', async () => {
  const removed: string[] = [];
  await withAccountant(
    2,
    async (a, m, t) => {
      a.account(req(1, { event: AnnounceEvent.started }), m, t, T0 + 1);
      a.account(req(2, { event: AnnounceEvent.started }), m, t, T0 + 2);
      a.account(req(3, { event: AnnounceEvent.started }), m, t, T0 + 3);
      assert.deepEqual(removed, ['10.0.0.1:6881'], 'peer 1 evicted, and out of its swarm');
      // A new peer id from peer 2's endpoint evicts peer 2's baseline: that endpoint is live.
      a.account(req(4, { ip: new Uint8Array([10, 0, 0, 2]) }), m, t, T0 + 4);
      assert.equal(a.counts.evicted, 2);
      assert.deepEqual(removed, ['10.0.0.1:6881']);
    },
    (_hash, _family, addr, port) => removed.push(`${[...Buffer.from(addr, 'latin1')].join('.')}:${port}`),
  );
});

test("written sums are kept for reuse only as many as this process made (the workers' primary, which accounts no announce, keeps none)", async () => {
  await withAccountant(1000, async (a, m, t, credited) => {
    for (let p = 1; p <= 3; p++) a.account(req(p, { event: AnnounceEvent.started }), m, t, T0);
    await credited();
    assert.equal(a.reusable, 2, 'one member sum and one member × torrent row');
    // A batch another process accounted (what the primary absorbs from a worker): written, not kept.
    const wire = {
      members: [
        [m.id, { uploaded: 7, downloaded: 0, rawUploaded: 7, rawDownloaded: 0, seedTime: 0, lastAt: T0 }],
      ],
      memberTorrents: [
        [
          `${m.id}:${t.id}`,
          {
            memberId: m.id,
            torrentId: t.id,
            uploaded: 7,
            downloaded: 0,
            rawUploaded: 7,
            rawDownloaded: 0,
            seedTime: 0,
            lastAt: T0,
            announces: 1,
            completedAt: 0,
            firstAt: T0,
            state: 2,
          },
        ],
      ],
      flags: [],
    } as Parameters<Accountant['absorb']>[0];
    a.absorb(wire);
    assert.equal((await credited()).member, 7);
    assert.equal(a.reusable, 2, 'still only the two it made');
  });
});

test("a member x torrent's pending row is found again within a flush interval, never after it (a reused row belongs to another torrent by then)", async () => {
  const db = await openDatabase('sqlite::memory:', '');
  try {
    const reg = new Registry(db);
    const row = await reg.addMember({ username: 'rows' });
    const torrents: PolicyTorrent[] = [];
    for (const h of ['33', '44']) {
      const tr = await reg.addTorrent({
        infoHash: h.repeat(20),
        infoHashV2: null,
        name: h,
        size: 1000,
        fileCount: 1,
      });
      torrents.push({
        ...tr,
        restricted: false,
        route: new Uint8Array(20),
        downloadFactor: 100,
        uploadFactor: 100,
      });
    }
    const a = accountant(reg, 1000);
    const m: PolicyMember = { id: row.id, status: 0, groups: [] };
    const [t1, t2] = torrents;
    a.account(req(1, { event: AnnounceEvent.started }), m, t1, T0);
    a.account(req(1, { uploaded: 10 }), m, t1, T0 + 30);
    await a.flush();
    assert.equal(a.reusable, 2);
    // Torrent 2's first row is torrent 1's written one, reused; torrent 1's next announce makes its own.
    a.account(req(2, { event: AnnounceEvent.started }), m, t2, T0 + 40);
    a.account(req(1, { uploaded: 110 }), m, t1, T0 + 60);
    a.account(req(2, { uploaded: 5 }), m, t2, T0 + 70);
    a.account(req(1, { uploaded: 111 }), m, t1, T0 + 80);
    await a.flush();
    const rows = await db.kysely
      .selectFrom('member_torrents')
      .select(['torrent_id', 'uploaded', 'announces'])
      .where('member_id', '=', row.id)
      .orderBy('torrent_id')
      .execute();
    assert.deepEqual(
      rows.map((r) => [r.torrent_id, r.uploaded, r.announces]),
      [
        [t1.id, 111, 4],
        [t2.id, 5, 2],
      ],
    );
    assert.equal((await reg.member(row.id)).uploaded, 116);
  } finally {
    await db.close();
  }
});

test('flushes of more rows than one statement takes (600 members on one torrent), one after another: every row written each time', async () => {
  const db = await openDatabase('sqlite::memory:', '');
  try {
    const reg = new Registry(db);
    const tr = await reg.addTorrent({
      infoHash: '55'.repeat(20),
      infoHashV2: null,
      name: 'big',
      size: 1,
      fileCount: 1,
    });
    const t: PolicyTorrent = {
      ...tr,
      restricted: false,
      route: new Uint8Array(20),
      downloadFactor: 100,
      uploadFactor: 100,
    };
    const members: PolicyMember[] = [];
    for (let i = 0; i < 600; i++)
      members.push({ id: (await reg.addMember({ username: `big${i}` })).id, status: 0, groups: [] });
    const a = accountant(reg, 10_000);
    for (let i = 0; i < members.length; i++)
      a.account(req(i, { event: AnnounceEvent.started }), members[i], t, T0);
    for (let round = 1; round <= 3; round++) {
      for (let i = 0; i < members.length; i++)
        a.account(req(i, { uploaded: 10 * round }), members[i], t, T0 + 60 * round);
      await a.flush();
      assert.equal(a.counts.flushErrors, 0, `flush ${round} failed`);
      const sum = await db.kysely
        .selectFrom('member_torrents')
        .select((eb) => [eb.fn.sum<number>('uploaded').as('up'), eb.fn.sum<number>('announces').as('n')])
        .executeTakeFirstOrThrow();
      assert.deepEqual([Number(sum.up), Number(sum.n)], [600 * 10 * round, 600 * (round + 1)]);
    }
  } finally {
    await db.close();
  }
});
