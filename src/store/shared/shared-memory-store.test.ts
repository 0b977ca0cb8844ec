/**
 * The shared-memory store against the memory store on the same random announces, in swarms big
 * enough to grow and shrink their blocks many times (the endpoint index, the moves between the
 * leecher and seeder partitions, the removals): counts, peer lists (numwant above the candidates,
 * so both answer every candidate, with peer ids once a swarm served compact=0) and stats must
 * agree after every step.
 */
import assert from 'node:assert/strict';
import { closeSync } from 'node:fs';
import { test } from 'node:test';
import { xorshift } from '../../core/random.ts';
import { AnnounceEvent, type AnnounceResult, type Family } from '../../core/types.ts';
import { requestOf } from '../../swarm/contract.ts';
import type { SwarmStore } from '../../swarm/types.ts';
import { MemorySwarmStore } from '../memory/memory-store.ts';
import { loadSharedSwarms, SharedMemorySwarmStore } from './shared-memory-store.ts';

const skip = loadSharedSwarms() === null ? 'the http_batch addon is not built' : false;

const hashOf = (t: number) => Buffer.alloc(20, 0x30 + t);

const request = (
  t: number,
  n: number,
  family: Family,
  seeder: boolean,
  event: AnnounceEvent,
  numWant: number,
  wantIds: boolean,
) => requestOf(hashOf(t), n, { family, seeder, event, numWant, wantIds });

/** Counts and the set of peers handed out (with their ids where known). */
function summary(r: AnnounceResult | unknown, stride: number): string {
  const a = r as AnnounceResult;
  const peers: string[] = [];
  for (let i = 0; i < a.peerCount; i++) {
    const id =
      a.peerIdKnown?.[i] === 1
        ? `=${Buffer.from(a.peerIds!.subarray(i * 20, i * 20 + 20)).toString('hex')}`
        : '';
    peers.push(Buffer.from(a.peers.subarray(i * stride, (i + 1) * stride)).toString('hex') + id);
  }
  return `${a.complete}/${a.incomplete}/${a.downloaded} ${peers.sort().join(',')}`;
}

test('random joins, moves, completions, stops and expiry in big swarms: the same answers as the memory store', {
  skip,
}, () => {
  const random = xorshift(12345);
  const stores: SwarmStore[] = [
    new MemorySwarmStore({ peerTimeout: 50 }),
    new SharedMemorySwarmStore({ peerTimeout: 50 }),
  ];
  try {
    let now = 1000;
    for (let step = 0; step < 60_000; step++) {
      if (step % 2000 === 1999) {
        now += 20;
        const removed = stores.map((s) => s.sweep(now, 1_000_000) as number);
        assert.equal(removed[0], removed[1], `sweep at step ${step}`);
      }
      const t = Math.floor(random() * 3);
      // Swarm 0 grows to about 900 peers, 1 and 2 stay small; both families.
      const n = Math.floor(random() * (t === 0 ? 900 : 12));
      const family: Family = random() < 0.7 ? 4 : 6;
      const r = random();
      const event =
        r < 0.15 ? AnnounceEvent.stopped : r < 0.25 ? AnnounceEvent.completed : AnnounceEvent.none;
      const seeder = event === AnnounceEvent.completed || random() < 0.3;
      // Most answers carry no peers (cheap); one in 50 asks for every candidate.
      const numWant = step % 50 === 0 ? 1024 : random() < 0.5 ? 3 : 0;
      // After step 20,000, compact=0 now and then: ids are recorded from then on, and compared.
      const wantIds = step > 20_000 && (numWant === 1024 || random() < 0.01) && random() < 0.5;
      const answers = stores.map((s) =>
        s.announce(request(t, n, family, seeder, event, numWant, wantIds), now),
      );
      const stride = family === 4 ? 6 : 18;
      if (numWant === 1024)
        assert.equal(summary(answers[1], stride), summary(answers[0], stride), `step ${step}`);
      else {
        const [a, b] = answers as AnnounceResult[];
        assert.deepEqual(
          [b.complete, b.incomplete, b.downloaded, b.peerCount],
          [a.complete, a.incomplete, a.downloaded, a.peerCount],
          `step ${step}`,
        );
      }
      if (step % 1000 === 0) assert.deepEqual(stores[1].stats(), stores[0].stats(), `stats at step ${step}`);
    }
    assert.deepEqual(
      stores[1].scrape([0, 1, 2, 3].map(hashOf), now),
      stores[0].scrape([0, 1, 2, 3].map(hashOf), now),
    );
    // Everything expires; every block and swarm is given back.
    now += 1000;
    stores[1].sweep(now, 1_000_000);
    assert.deepEqual(Object.values(stores[1].stats()), [0, 0, 0, 0, 0, 0]);
  } finally {
    for (const s of stores) s.close();
  }
});

test('max_torrents is reached exactly: no region of the swarm table fills up before it', { skip }, () => {
  // Five stores (five random hash seeds), each filled to max_torrents and past it.
  for (let round = 0; round < 5; round++) {
    const s = new SharedMemorySwarmStore({ peerTimeout: 50, maxTorrents: 1000 });
    const hash = (t: number) => Buffer.alloc(20, t & 0xff).fill(t >> 8, 0, 1);
    const announce = (t: number, event: AnnounceEvent) =>
      s.announce({ ...request(0, 1, 4, false, event, 0, false), infoHash: hash(t) }, 1);
    try {
      // The first 1000 torrents are all taken, every one after them refused.
      const refused: number[] = [];
      for (let t = 0; t < 1200; t++) if (!('complete' in announce(t, AnnounceEvent.none))) refused.push(t);
      assert.deepEqual(
        refused,
        Array.from({ length: 200 }, (_, i) => 1000 + i),
        `round ${round}`,
      );
      assert.equal(s.stats().torrents, 1000);
      assert.ok(!('complete' in announce(1100, AnnounceEvent.none)));
      assert.ok('complete' in announce(5, AnnounceEvent.stopped));
      assert.ok('complete' in announce(1100, AnnounceEvent.none), 'the stopped swarm’s place');
      assert.equal(s.stats().torrents, 1000);
    } finally {
      s.close();
    }
  }
});

test('a store whose arena is full refuses new peers only: held peers update and stop, and a stop makes room', {
  skip,
}, () => {
  // Sized for 10 peers and no ceilings: the arena (a few KiB) runs out before any limit.
  const fd = loadSharedSwarms()!.sharedSwarmsCreate(10, 1, 0, 0);
  const s = new SharedMemorySwarmStore({ peerTimeout: 50, fd });
  const announce = (n: number, event: AnnounceEvent = AnnounceEvent.none, seeder = n % 3 === 0) =>
    s.announce(request(0, n, 4, seeder, event, 50, false), 1);
  try {
    let n = 0;
    while ('complete' in announce(n)) n++;
    assert.ok(n >= 10, `${n} peers before the arena ran out`);
    const held = s.stats();
    assert.equal(held.peers, n);
    assert.ok(!('complete' in announce(n + 1)), 'still refused');
    for (let k = 0; k < n; k++) assert.ok('complete' in announce(k), `held peer ${k} updates`);
    assert.ok('complete' in announce(1, AnnounceEvent.completed, true), 'a held leecher completes');
    assert.deepEqual(s.stats(), { ...held, seeders: held.seeders + 1, leechers: held.leechers - 1 });
    // Emptied, the swarm's blocks go back to the allocator: as many peers fit again.
    for (let k = 0; k < n; k++) assert.ok('complete' in announce(k, AnnounceEvent.stopped));
    assert.equal(s.stats().torrents, 0);
    let again = 0;
    while ('complete' in announce(100 + again)) again++;
    assert.equal(again, n);
  } finally {
    s.close();
    closeSync(fd);
  }
});
