/**
 * SharedPeerLists over real buses (abstract Unix sockets, in one process): a member's peer lists
 * are counted by its home over every worker; the home tells the others when the window is full;
 * lists given before the news arrived are counted (the overshoot) and the window ends for all.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { createLogger } from '../core/log.ts';
import { ClusterBus } from './bus.ts';
import { SharedPeerLists } from './peer-list-gate.ts';

const logger = createLogger('silent');
const WINDOW = 3600;

interface Worker {
  bus: ClusterBus;
  gate: SharedPeerLists;
}

async function worker(clusterId: string, index: number, count: number, limit: number, now: () => number) {
  const bus = new ClusterBus({ clusterId, index, count, logger, handler: () => {} });
  const gate = new SharedPeerLists({ bus, logger, limit, window: WINDOW, now });
  await bus.start();
  return { bus, gate };
}

async function workers(n: number, limit: number, now: () => number) {
  const clusterId = randomBytes(4).toString('hex');
  const list: Worker[] = [];
  for (let i = 0; i < n; i++) list.push(await worker(clusterId, i, n, limit, now));
  return { list, clusterId };
}

/** Turns of the event loop (and bus round trips) until `cond` holds; fails after 2,000 turns. */
async function until(what: string, cond: () => boolean): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 1));
  }
  assert.fail(`never: ${what}`);
}

test('peer lists: counted by the home over three workers; a full window is withheld on every worker until it ends', async () => {
  let now = 1_900_000_000;
  const { list } = await workers(3, 3, () => now);
  try {
    // Member 4's home is worker 1: lists on workers 0 and 2 are reported to it.
    assert.equal(list[0].gate.take(4, now), true);
    assert.equal(list[2].gate.take(4, now), true);
    await until('the home counts both', () => list[1].gate.listsOf(4, now) === 2);
    assert.equal(list[1].gate.take(4, now), true, 'the third list: the home fills the window');
    assert.equal(list[1].gate.take(4, now), false, 'the home refuses at once');
    await until('the others are told', () => list[0].gate.full === 1 && list[2].gate.full === 1);
    for (const w of list) assert.equal(w.gate.take(4, now + 10), false);
    assert.equal(list[1].gate.overshoot, 0);
    // Another member (home: worker 2) is not affected.
    assert.equal(list[0].gate.take(5, now), true);
    // The window ends (from the member's first list): lists again, on every worker.
    now += WINDOW;
    for (const w of list) assert.equal(w.gate.take(4, now), true);
  } finally {
    for (const w of list) await w.bus.stop();
  }
});

test('peer lists: lists given before the news arrived are counted beyond the limit (the overshoot), and the sender is told', async () => {
  const now = 1_900_000_000;
  const { list, clusterId } = await workers(2, 2, () => now);
  try {
    // Member 1's home is worker 1; of five lists asked on worker 0 in one turn, it gives its own
    // count's limit (two), and the home is told.
    const given = [0, 1, 2, 3, 4].map(() => list[0].gate.take(1, now));
    assert.deepEqual(given, [true, true, false, false, false]);
    await until('worker 0 is told', () => list[0].gate.full === 1);
    assert.equal(list[1].gate.overshoot, 0);
    assert.equal(list[0].gate.take(1, now), false);
    assert.equal(list[1].gate.take(1, now), false);
    // Worker 0 restarts and has forgotten the news: its next list is counted, and it is told again.
    await list[0].bus.stop();
    list[0] = await worker(clusterId, 0, 2, 2, () => now);
    assert.equal(list[0].gate.take(1, now), true);
    await until('the restarted worker is told', () => list[0].gate.full === 1);
    assert.equal(list[0].gate.take(1, now), false);
    assert.equal(list[1].gate.overshoot, 1);
  } finally {
    for (const w of list) await w.bus.stop();
  }
});

test('peer lists: a burst on a worker before the home’s news arrives gets at most the limit there (at most workers × limit over all)', async () => {
  const now = 1_900_000_000;
  const { list } = await workers(2, 2, () => now);
  try {
    // Member 1's home is worker 1. Many announces reach worker 0 in one turn (a scraper opening
    // many connections at a window's start), while the home gives its own.
    const given = [0, 0];
    for (let i = 0; i < 50; i++) if (list[0].gate.take(1, now)) given[0]++;
    for (let i = 0; i < 50; i++) if (list[1].gate.take(1, now)) given[1]++;
    assert.deepEqual(given, [2, 2], 'each worker gives at most the limit before it hears from the home');
    await until('the home counts worker 0’s two beyond its own', () => list[1].gate.overshoot === 2);
    await until('worker 0 is told', () => list[0].gate.full === 1);
    assert.equal(list[0].gate.take(1, now), false);
  } finally {
    for (const w of list) await w.bus.stop();
  }
});
