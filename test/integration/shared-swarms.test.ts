/**
 * The shared-memory swarm store across processes (issue #13): two child processes map the
 * memfd the parent made (as workers would map the primary's) and see each other's peers; run at
 * the same time, their joins and stops in the same swarms are all counted (no update is lost
 * between the stripes' process-shared locks).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, fork } from 'node:child_process';
import { closeSync } from 'node:fs';
import { after, before, test } from 'node:test';
import {
  createSharedSwarms,
  loadSharedSwarms,
  SharedMemorySwarmStore,
} from '../../src/store/shared/shared-memory-store.ts';
import { endpointOf } from '../../src/swarm/contract.ts';
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
