/**
 * Private mode with `herald serve --workers 2` (issue #13): one member's client whose announces
 * reach different workers (every announce is a new connection; the kernel spreads them) is
 * credited exactly once per byte, also when it announces both hashes of a hybrid torrent; the
 * totals are in the database after a graceful stop of the whole tracker. Without accounting in
 * the worker that owns the torrent, each worker would keep a baseline of its own and the credit
 * would be short (or, with a hybrid, doubled).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { shardOf } from '../../src/core/shard.ts';
import { encode } from '../../src/protocol/bencode/index.ts';
import { PRIVATE_SERVE, startTracker } from '../e2e/tracker-process.ts';
import { announcePath, announcer, bdecode, httpGet, text } from '../helpers/clients.ts';
import { privateTorrentFile } from '../helpers/libtorrent.ts';
import { adminJson } from '../helpers/private-instances.ts';

/**
 * Announces `started` until the policy of the worker that answers knows the torrent (every worker
 * polls the revision each second), then waits until every worker does.
 */
async function startWhenKnown(announce: () => Promise<Map<string, unknown>>): Promise<void> {
  const t0 = Date.now();
  let d = await announce();
  while (d.has('failure reason') && Date.now() - t0 < 15_000) {
    await new Promise((r) => setTimeout(r, 200));
    d = await announce();
  }
  assert.equal(d.get('failure reason'), undefined, text(d.get('failure reason')));
  await new Promise((r) => setTimeout(r, 2500));
}

test('private mode with 2 workers: a client alternating between workers is credited exactly once', async () => {
  const scratch = mkdtempSync(join(tmpdir(), 'herald-wp-'));
  const t = await startTracker([...PRIVATE_SERVE, '--workers', '2'], { ready: 'herald workers running' });
  try {
    // A hybrid (v1 + v2) torrent: two info hashes, one torrent.
    const file = privateTorrentFile(scratch, 'hybrid', Buffer.alloc(200_000, 3));
    const alice = adminJson<{ passkey: string }>(t.admin(['member', 'add', 'alice', '--json']));
    const torrent = adminJson<{ info_hash: string; info_hash_v2: string }>(
      t.admin(['torrent', 'add', file, '--json']),
    );
    assert.ok(torrent.info_hash && torrent.info_hash_v2, 'a hybrid torrent has both hashes');
    const v1 = Buffer.from(torrent.info_hash, 'hex');
    const v2 = Buffer.from(torrent.info_hash_v2.slice(0, 40), 'hex');
    const announce = async (ih: Buffer, f: Record<string, unknown>) => {
      const r = await httpGet(
        t.http[0].port,
        '127.0.0.1',
        announcePath({
          infoHash: ih,
          port: 9200,
          peerId: Buffer.from('-qB4500-workers00001'),
          base: `/announce/${alice.passkey}`,
          ...f,
        }),
      );
      return bdecode(r.body);
    };
    // Every worker polls the database revision every second.
    // Both workers must know the torrent before the alternating announces (policy_refresh 1 s).
    await startWhenKnown(() => announce(v1, { event: 'started', left: 0, uploaded: 0 }));
    // 30 announces, 1000 bytes more each, alternating the two hashes and landing on both workers.
    let total = 0;
    for (let i = 1; i <= 30; i++) {
      total += 1000;
      const r = await announce(i % 2 === 0 ? v1 : v2, { left: 0, uploaded: total });
      assert.equal(r.get('failure reason'), undefined, text(r.get('failure reason')));
    }
    await t.stopGracefully();
    const after = adminJson<{ uploaded: number }>(t.admin(['member', 'show', 'alice', '--json']));
    assert.equal(after.uploaded, total, 'every byte credited once, none twice');
  } finally {
    await t.stop();
    rmSync(scratch, { recursive: true, force: true });
  }
});

test('private mode with 2 workers: the primary writes every worker’s deltas in one transaction, each flush_interval and at stop', async () => {
  const scratch = mkdtempSync(join(tmpdir(), 'herald-wp1-'));
  // A long interval first: no collection happens during the test, so the stop writes everything.
  const t = await startTracker(
    [
      ...PRIVATE_SERVE.filter((a, i, all) => a !== '--flush-interval' && all[i - 1] !== '--flush-interval'),
      '--flush-interval',
      '60',
      '--workers',
      '2',
      '--log-level',
      'debug',
    ],
    { ready: 'herald workers running' },
  );
  try {
    // Two torrents whose swarms (and accounting) live on different workers.
    const byShard = new Map<number, Buffer>();
    for (let i = 0; byShard.size < 2 && i < 40; i++) {
      const file = privateTorrentFile(scratch, `t${i}`, Buffer.alloc(50_000, i + 1), 'v1');
      const added = adminJson<{ info_hash: string }>(t.admin(['torrent', 'add', file, '--json']));
      const ih = Buffer.from(added.info_hash, 'hex');
      if (!byShard.has(shardOf(ih, 2))) byShard.set(shardOf(ih, 2), ih);
    }
    assert.equal(byShard.size, 2, 'a torrent on each worker');
    const members = ['carol', 'dave'].map((name) =>
      adminJson<{ passkey: string }>(t.admin(['member', 'add', name, '--json'])),
    );
    const announce = async (who: number, f: Record<string, unknown>) => {
      const r = await httpGet(
        t.http[0].port,
        '127.0.0.1',
        announcePath({
          infoHash: byShard.get(who)!,
          port: 9300 + who,
          peerId: Buffer.from(`-qB4500-onewriter00${who}`),
          base: `/announce/${members[who].passkey}`,
          ...f,
        }),
      );
      return bdecode(r.body);
    };
    for (const who of [0, 1])
      await startWhenKnown(() => announce(who, { event: 'started', left: 0, uploaded: 0 }));
    for (const who of [0, 1]) await announce(who, { left: 0, uploaded: 1000 * (who + 3) });
    await t.stopGracefully();
    const flushes = t
      .stderr()
      .split('\n')
      .filter((l) => l.includes('"msg":"accounting flushed"'))
      .map((l) => JSON.parse(l) as { members: number; uploaded: number; worker?: number });
    assert.equal(flushes.length, 1, `one transaction: ${JSON.stringify(flushes)}`);
    assert.equal(flushes[0].worker, undefined, 'written by the primary, not a worker');
    assert.equal(flushes[0].members, 2, "both workers' members in it");
    assert.equal(flushes[0].uploaded, 7000);
    assert.equal(
      adminJson<{ uploaded: number }>(t.admin(['member', 'show', 'carol', '--json'])).uploaded,
      3000,
    );
    assert.equal(
      adminJson<{ uploaded: number }>(t.admin(['member', 'show', 'dave', '--json'])).uploaded,
      4000,
    );
  } finally {
    await t.stop();
    rmSync(scratch, { recursive: true, force: true });
  }
});

test('private mode with 2 workers: deltas reach the database each flush_interval while the tracker runs', async () => {
  const t = await startTracker([...PRIVATE_SERVE, '--workers', '2'], { ready: 'herald workers running' });
  const scratch = mkdtempSync(join(tmpdir(), 'herald-wp2-'));
  try {
    const file = privateTorrentFile(scratch, 't', Buffer.alloc(50_000, 9), 'v1');
    const ih = Buffer.from(
      adminJson<{ info_hash: string }>(t.admin(['torrent', 'add', file, '--json'])).info_hash,
      'hex',
    );
    const erin = adminJson<{ passkey: string }>(t.admin(['member', 'add', 'erin', '--json']));
    const announce = async (f: Record<string, unknown>) =>
      bdecode(
        (
          await httpGet(
            t.http[0].port,
            '127.0.0.1',
            announcePath({
              infoHash: ih,
              port: 9400,
              peerId: Buffer.from('-qB4500-periodic0001'),
              base: `/announce/${erin.passkey}`,
              ...f,
            }),
          )
        ).body,
      );
    await startWhenKnown(() => announce({ event: 'started', left: 0, uploaded: 0 }));
    await announce({ left: 0, uploaded: 5000 });
    let uploaded = 0;
    for (let i = 0; i < 50 && uploaded !== 5000; i++) {
      await new Promise((r) => setTimeout(r, 200));
      uploaded = adminJson<{ uploaded: number }>(t.admin(['member', 'show', 'erin', '--json'])).uploaded;
    }
    assert.equal(uploaded, 5000, 'written by a periodic flush, before any stop');
  } finally {
    await t.stop();
    rmSync(scratch, { recursive: true, force: true });
  }
});

test('private mode with 2 workers: peer limits and early-announce warnings reach the client from whichever worker owns the torrent', async () => {
  const scratch = mkdtempSync(join(tmpdir(), 'herald-wp-'));
  const t = await startTracker([...PRIVATE_SERVE, '--workers', '2', '--peers-per-torrent', '2'], {
    ready: 'herald workers running',
  });
  try {
    const bob = adminJson<{ passkey: string }>(t.admin(['member', 'add', 'bob', '--json']));
    // Several torrents: some are owned by the worker a connection reaches, some by the other.
    const hashes: Buffer[] = [];
    for (const n of [1, 2, 3, 4]) {
      const file = join(scratch, `w${n}.torrent`);
      const info = {
        length: 1000 * n,
        name: `w${n}`,
        'piece length': 16384,
        pieces: Buffer.alloc(20, n),
        private: 1,
      };
      writeFileSync(file, encode({ announce: 'http://127.0.0.1/announce', info }));
      const added = adminJson<{ info_hash: string }>(t.admin(['torrent', 'add', file, '--json']));
      hashes.push(Buffer.from(added.info_hash, 'hex'));
    }
    const announce = announcer(t.http[0].port, bob.passkey, 9300, 'limit', {});
    const t0 = Date.now();
    while (
      (await announce(hashes[3], 9, { event: 'stopped' })).has('failure reason') &&
      Date.now() - t0 < 15_000
    )
      await new Promise((r) => setTimeout(r, 200));
    await new Promise((r) => setTimeout(r, 2500)); // every worker has the torrents (policy_refresh 1 s)
    for (const h of hashes) {
      for (const n of [1, 2]) {
        const d = await announce(h, n, { event: 'started' });
        assert.equal(d.get('failure reason'), undefined, text(d.get('failure reason')));
      }
      // Ten tries over new connections land on both workers: each is refused with the limit's reason.
      for (let i = 0; i < 10; i++)
        assert.match(
          text((await announce(h, 3, { event: 'started' })).get('failure reason')),
          /too many clients/,
        );
      // The same peer again at once: answered, with the warning (from the owner, across workers).
      for (let i = 0; i < 4; i++)
        assert.match(text((await announce(h, 1)).get('warning message')), /announce too often/);
      await announce(h, 2, { event: 'stopped' });
      const d = await announce(h, 3, { event: 'started' });
      assert.equal(d.get('failure reason'), undefined, 'a stopped peer freed its place');
    }
  } finally {
    await t.stop();
    rmSync(scratch, { recursive: true, force: true });
  }
});

test('private mode with 2 workers: download slots are counted by the worker that owns the torrents, and refused from whichever worker answers', async () => {
  const scratch = mkdtempSync(join(tmpdir(), 'herald-ws-'));
  const t = await startTracker(
    [...PRIVATE_SERVE, '--workers', '2', '--member-classes', 'User: slots=1', '--early-announce', 'off'],
    { ready: 'herald workers running' },
  );
  try {
    const eve = adminJson<{ passkey: string }>(t.admin(['member', 'add', 'eve', '--json']));
    // Two torrents owned by the same worker.
    const byShard = new Map<number, Buffer[]>();
    for (let n = 1; n <= 12 && ![...byShard.values()].some((l) => l.length >= 2); n++) {
      const file = join(scratch, `s${n}.torrent`);
      const info = {
        length: 1000 * n,
        name: `s${n}`,
        'piece length': 16384,
        pieces: Buffer.alloc(20, n),
        private: 1,
      };
      writeFileSync(file, encode({ announce: 'http://127.0.0.1/announce', info }));
      const ih = Buffer.from(
        adminJson<{ info_hash: string }>(t.admin(['torrent', 'add', file, '--json'])).info_hash,
        'hex',
      );
      const list = byShard.get(shardOf(ih, 2)) ?? [];
      list.push(ih);
      byShard.set(shardOf(ih, 2), list);
    }
    const [a, b] = [...byShard.values()].find((l) => l.length >= 2)!;
    const announce = announcer(t.http[0].port, eve.passkey, 9400, 'slots', { left: 1000 });
    await startWhenKnown(() => announce(a, 1, { event: 'started' }));
    for (let i = 0; i < 10; i++)
      assert.match(
        text((await announce(b, 2, { event: 'started' })).get('failure reason')),
        /download slots full/,
      );
    assert.equal(
      (await announce(b, 3, { event: 'started', left: 0 })).get('failure reason'),
      undefined,
      'seeding',
    );
    await announce(b, 3, { event: 'stopped', left: 0 });
    assert.match(
      text((await announce(b, 2, { event: 'started' })).get('failure reason')),
      /download slots full/,
    );
    await announce(a, 1, { event: 'stopped' });
    assert.equal((await announce(b, 2, { event: 'started' })).get('failure reason'), undefined, 'slot freed');
  } finally {
    await t.stop();
    rmSync(scratch, { recursive: true, force: true });
  }
});
