/**
 * The shared-memory swarm store across processes (issue #13): two child processes map the
 * memfd the parent made (as workers would map the primary's) and see each other's peers; run at
 * the same time, their joins and stops in the same swarms are all counted (no update is lost
 * between the stripes' process-shared locks). A process that dies holding a stripe's lock leaves
 * the stripe to be re-validated by the next one.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, fork } from 'node:child_process';
import { closeSync } from 'node:fs';
import { after, before, test } from 'node:test';
import type { AnnounceResult, Family } from '../../src/core/types.ts';
import {
  createSharedSwarms,
  loadSharedSwarms,
  SharedMemorySwarmStore,
} from '../../src/store/shared/shared-memory-store.ts';
import { endpointOf, requestOf } from '../../src/swarm/contract.ts';
import type { ChildRequest } from '../helpers/shared-swarms-child.ts';

const skip = loadSharedSwarms() === null ? 'the http_batch addon is not built' : false;
/** As the child's (test/helpers/shared-swarms-child.ts; importing it would run it here). */
const hashOf = (t: number) => Buffer.alloc(20, 0x5a).fill(t, 0, 1);
const child = new URL('../helpers/shared-swarms-child.ts', import.meta.url).pathname;

let fd = -1;
let children: ChildProcess[] = [];

/** The child's answer to one request. */
function ask<T>(c: ChildProcess, m: ChildRequest): Promise<T> {
  return new Promise((resolve, reject) => {
    c.once('message', (a) => resolve(a as T));
    c.once('exit', (code) => reject(new Error(`child exited (${code})`)));
    c.send(m);
  });
}

before(() => {
  if (skip) return;
  fd = createSharedSwarms({ maxPeers: 100_000, maxTorrents: 1000 });
  children = [0, 1].map(() => fork(child, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc', fd] }));
});

after(() => {
  for (const c of children) c.disconnect();
  if (fd >= 0) closeSync(fd);
});

const key = (n: number) => {
  const e = endpointOf(n, 4);
  return `${Buffer.from(e.ip).toString('hex')}:${e.port}`;
};

test('two processes announce into one store and are handed each other’s peers', { skip }, async () => {
  const [a, b] = children;
  for (let n = 0; n < 5; n++) await ask(a, { op: 'announce', t: 1, n, seeder: true });
  for (let n = 5; n < 10; n++) await ask(b, { op: 'announce', t: 1, n, seeder: false });
  const fromB = await ask<{ complete: number; incomplete: number; peers: string[] }>(b, {
    op: 'announce',
    t: 1,
    n: 20,
    seeder: false,
  });
  assert.deepEqual([fromB.complete, fromB.incomplete], [5, 5]);
  assert.deepEqual(
    new Set(fromB.peers),
    new Set([0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map(key)),
    'A’s seeders and B’s leechers',
  );
  // A seeder in A is handed B's leechers (and the one B just added), never A's seeders.
  const fromA = await ask<{ peers: string[] }>(a, { op: 'announce', t: 1, n: 0, seeder: true });
  assert.deepEqual(new Set(fromA.peers), new Set([5, 6, 7, 8, 9, 20].map(key)));
  // B stops peer 5: A no longer hands it out.
  await ask(b, { op: 'announce', t: 1, n: 5, seeder: false, stop: true });
  const again = await ask<{ peers: string[] }>(a, { op: 'announce', t: 1, n: 0, seeder: true });
  assert.ok(!again.peers.includes(key(5)));
  assert.equal(again.peers.length, 5);
});

test('two processes churning the same swarms at once: every join and stop is counted', { skip }, async () => {
  const torrents = 40;
  const [heldA, heldB] = await Promise.all(
    children.map((c, k) =>
      ask<{ held: string[] }>(c, {
        op: 'churn',
        base: 1000 + k * 1000,
        torrents,
        count: 100_000,
        seed: 7 + k,
      }),
    ),
  );
  // The parent maps the same memfd: the store holds exactly what both left.
  const store = new SharedMemorySwarmStore({ peerTimeout: 1800, fd });
  try {
    const held = [...heldA.held, ...heldB.held];
    // The first test left 10 peers in swarm 1.
    assert.equal(store.stats().peers, held.length + 10);
    const perTorrent = new Array(torrents).fill(0);
    for (const h of held) perTorrent[Number(h.split('/')[0])]++;
    const counted = store.scrape(perTorrent.map((_, t) => hashOf(100 + t)));
    assert.deepEqual(
      counted.map((e) => e.complete + e.incomplete),
      perTorrent,
    );
    assert.equal(store.stats().torrents, torrents + 1);
  } finally {
    store.close();
  }
});

test('a process that dies holding a stripe’s lock: the next one re-validates the stripe, dropping only a half-updated table', {
  skip,
}, async () => {
  // A small store: 4 stripes, so that many swarms share the dead process's stripe.
  const fd2 = createSharedSwarms({ maxPeers: 10_000, maxTorrents: 100 });
  const store = new SharedMemorySwarmStore({ peerTimeout: 1800, fd: fd2 });
  const announce = (t: number, n: number, family: Family, seeder: boolean) =>
    store.announce(requestOf(hashOf(t), n, { family, seeder, numWant: 0 }), 1000) as AnnounceResult;
  const dies = (m: ChildRequest) =>
    new Promise<void>((resolve) => {
      const c = fork(child, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc', fd2] });
      c.once('exit', () => resolve());
      c.send(m);
    });
  const hashes = Array.from({ length: 40 }, (_, t) => hashOf(t));
  try {
    for (let t = 0; t < 40; t++) for (let n = 0; n < 5; n++) announce(t, n, 4, n === 0);
    for (let n = 0; n < 2; n++) announce(0, n, 6, false);
    const before = store.scrape(hashes);
    // Dead inside the lock with nothing half-done: nothing is lost.
    await dies({ op: 'abandon', t: 0, corrupt: false });
    assert.deepEqual(store.scrape(hashes), before);
    assert.deepEqual(Object.values(store.stats()), [40, 202, 40, 162, 200, 2]);
    // Dead with swarm 0's IPv4 table half-updated: that table goes (its 5 peers), the rest stays.
    await dies({ op: 'abandon', t: 0, corrupt: true });
    const after = store.scrape(hashes);
    assert.deepEqual(after[0], { complete: 0, incomplete: 2, downloaded: 0 }, 'its IPv6 peers stay');
    assert.deepEqual(after.slice(1), before.slice(1), 'the other swarms are whole');
    assert.deepEqual(Object.values(store.stats()), [40, 197, 39, 158, 195, 2], 'counts corrected');
    // The swarm takes IPv4 peers again, and the stripe's lock works as before.
    assert.deepEqual([announce(0, 9, 4, false).incomplete, announce(0, 10, 4, true).incomplete], [2, 3]);
    assert.equal(store.stats().peers4, 197);
  } finally {
    store.close();
    closeSync(fd2);
  }
});
