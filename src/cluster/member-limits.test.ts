/**
 * MemberLimits over real buses (abstract Unix sockets, in one process): the member's home judges
 * claims from every owner, silent peers are expired before a refusal, and a restarted owner's
 * places are dropped. Each "worker" has its own plain counts standing in for its accountant.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { CLAIM_PEER, CLAIM_SLOT } from '../accounting/rules.ts';
import { Errors } from '../core/errors.ts';
import { createLogger } from '../core/log.ts';
import { ClusterBus } from './bus.ts';
import { type LimitCounts, MemberLimits } from './member-limits.ts';

const logger = createLogger('silent');

/** One worker: its bus, its limits, and the peers and leeching torrents its baselines hold per member. */
interface Worker {
  bus: ClusterBus;
  limits: MemberLimits;
  peers: Map<number, number>;
  leeching: Map<number, number>;
  /** What `held(m, true)` forgets (silent peers), per member. */
  silent: Map<number, number>;
}

async function workers(
  n: number,
  peerLimit: number,
  slots: number,
  clusterId = randomBytes(4).toString('hex'),
) {
  const out: Worker[] = [];
  for (let i = 0; i < n; i++) out.push(await worker(clusterId, i, n, peerLimit, slots));
  for (const w of out) w.limits.start();
  return { list: out, clusterId };
}

async function worker(clusterId: string, index: number, count: number, peerLimit: number, slots: number) {
  const peers = new Map<number, number>();
  const leeching = new Map<number, number>();
  const silent = new Map<number, number>();
  const counts: LimitCounts = {
    peerLimit,
    slotsOf: () => slots,
    held(m, expire) {
      if (expire && (silent.get(m) ?? 0) > 0) {
        peers.set(m, (peers.get(m) ?? 0) - (silent.get(m) ?? 0));
        silent.delete(m);
      }
      return { peers: peers.get(m) ?? 0, leeching: leeching.get(m) ?? 0 };
    },
    note() {},
  };
  const bus = new ClusterBus({ clusterId, index, count, logger, handler: () => {} });
  const limits = new MemberLimits({ bus, logger, counts });
  await bus.start();
  return { bus, limits, peers, leeching, silent };
}

/** A new peer of member `m` on worker `w`: its claim, then (granted) its baseline. */
async function newPeer(w: Worker, m: number, need = CLAIM_PEER) {
  return await w.limits.run(m, need, () => {
    if (need & CLAIM_PEER) w.peers.set(m, (w.peers.get(m) ?? 0) + 1);
    if (need & CLAIM_SLOT) w.leeching.set(m, (w.leeching.get(m) ?? 0) + 1);
    return 'ok' as const;
  });
}

const settle = () => new Promise((r) => setTimeout(r, 50));

test('member limits: places over three workers; a stop frees one; new peers at once on every worker take only what is left', async () => {
  const { list } = await workers(3, 3, 0);
  try {
    // Member 4's home is worker 1.
    assert.equal(await newPeer(list[0], 4), 'ok');
    assert.equal(await newPeer(list[2], 4), 'ok');
    assert.equal(await newPeer(list[1], 4), 'ok');
    for (const w of list) assert.equal(await newPeer(w, 4), Errors.peerLimitMember);
    // A stop on worker 2: its baseline goes, and it reports.
    list[2].peers.set(4, 0);
    list[2].limits.touch(4);
    await settle();
    assert.equal(await newPeer(list[0], 4), 'ok');
    list[0].peers.set(4, 1);
    list[1].peers.set(4, 0);
    list[0].limits.touch(4);
    list[1].limits.touch(4);
    await settle();
    // Two places left (worker 0 holds one peer): three new peers at once, one a worker, take two.
    const r = await Promise.all(list.map((w) => newPeer(w, 4)));
    assert.equal(r.filter((x) => x === 'ok').length, 2, String(r));
    assert.equal(await newPeer(list[1], 4), Errors.peerLimitMember);
  } finally {
    for (const w of list) await w.bus.stop();
  }
});

test('member limits: silent peers on another worker and on the claiming one are forgotten before a refusal', async () => {
  const { list } = await workers(2, 2, 0);
  try {
    // Member 1's home is worker 1; worker 0 holds both places, one of them silent.
    assert.equal(await newPeer(list[0], 1), 'ok');
    assert.equal(await newPeer(list[0], 1), 'ok');
    list[0].silent.set(1, 1);
    assert.equal(await newPeer(list[1], 1), 'ok', 'the home asked worker 0 for fresh figures');
    assert.equal(await newPeer(list[1], 1), Errors.peerLimitMember);
    // The claiming worker's own silent peer.
    list[1].silent.set(1, 1);
    assert.equal(await newPeer(list[1], 1), 'ok', 'worker 1 forgot its silent peer and claimed again');
  } finally {
    for (const w of list) await w.bus.stop();
  }
});

test('member limits: download slots count leeching torrents over every worker, apart from peers', async () => {
  const { list } = await workers(2, 0, 1);
  try {
    assert.equal(await newPeer(list[0], 3, CLAIM_SLOT), 'ok');
    assert.equal(await newPeer(list[1], 3, CLAIM_SLOT), Errors.downloadSlots);
    list[0].leeching.set(3, 0);
    list[0].limits.touch(3);
    await settle();
    assert.equal(await newPeer(list[1], 3, CLAIM_SLOT), 'ok');
  } finally {
    for (const w of list) await w.bus.stop();
  }
});

test('member limits: a restarted owner’s places are dropped; a restarted home gets the live ones back', async () => {
  const { list, clusterId } = await workers(2, 2, 0);
  try {
    // Member 1 (home: worker 1): two places on worker 0.
    assert.equal(await newPeer(list[0], 1), 'ok');
    assert.equal(await newPeer(list[0], 1), 'ok');
    // The home restarts: it asks worker 0 at start.
    await list[1].bus.stop();
    list[1] = await worker(clusterId, 1, 2, 2, 0);
    list[1].limits.start();
    assert.equal(await newPeer(list[1], 1), Errors.peerLimitMember, 'the restarted home knows both places');
    // Worker 0 restarts (its swarms and baselines are gone): its start drops its places at the home.
    await list[0].bus.stop();
    list[0] = await worker(clusterId, 0, 2, 2, 0);
    list[0].limits.start();
    await settle();
    assert.equal(await newPeer(list[1], 1), 'ok');
    assert.equal(await newPeer(list[1], 1), 'ok');
    assert.equal(await newPeer(list[0], 1), Errors.peerLimitMember);
  } finally {
    for (const w of list) await w.bus.stop();
  }
});

test('member limits: a home that is down refuses with the retryable "tracker busy"', async () => {
  const { list } = await workers(2, 2, 0);
  await list[1].bus.stop();
  try {
    assert.equal(await newPeer(list[0], 1), Errors.shardUnavailable);
    assert.equal(await newPeer(list[0], 2), 'ok', 'a member whose home is up');
  } finally {
    await list[0].bus.stop();
  }
});
