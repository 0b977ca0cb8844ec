/**
 * Faults under announce load (issue #14). One of two `herald serve` instances on one Redis is
 * killed (SIGKILL) while clients announce through both: the other still has every swarm with
 * every peer, and the clients that switch to it lose nothing. Redis itself killed and started
 * again while clients keep announcing: Herald answers every request (a clear refusal while Redis
 * is away), reports it on /health, keeps no queue and no growing set of waiting calls, and serves
 * again by itself.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, test } from 'node:test';
import { Errors } from '../../src/core/errors.ts';
import { createTracker } from '../../src/index.ts';
import type { RedisSwarmStore } from '../../src/store/redis/redis-store.ts';
import { type RunningTracker, startTracker } from '../e2e/tracker-process.ts';
import { announceAt, bdecode, hashOf, httpGet, pct, text } from '../helpers/clients.ts';
import {
  compactPeers,
  deleteKeys,
  freePort,
  ownRedis,
  REDIS_URL,
  sharedServe,
  testPrefix,
} from '../helpers/redis.ts';

const SWARMS = 20;
const PEERS = 10;

/** Runs `step` with `workers` requests in flight until `stop()`; counts what it did. */
function load(step: (i: number) => Promise<void>, workers: number) {
  let running = true;
  let n = 0;
  let failed: unknown = null;
  const loops = Array.from({ length: workers }, async () => {
    while (running)
      await step(n++).catch((err) => {
        failed ??= err;
        running = false;
      });
  });
  return {
    get done() {
      return n;
    },
    async stop() {
      running = false;
      await Promise.all(loops);
      if (failed !== null) throw failed;
    },
  };
}

describe('faults under announce load', {
  skip: REDIS_URL ? false : 'no redis-server (HERALD_TEST_REDIS_URL unset)',
}, () => {
  const cleanups: (() => Promise<void>)[] = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  test('one of two instances killed: the other keeps every swarm, clients that switch lose nothing', async () => {
    const prefix = testPrefix();
    const secret = randomBytes(32).toString('hex');
    const [a, b] = await Promise.all([
      startTracker(sharedServe(REDIS_URL, prefix, secret)),
      startTracker(sharedServe(REDIS_URL, prefix, secret)),
    ]);
    cleanups.push(async () => {
      await Promise.all([a.stop(), b.stop()]);
      await deleteKeys(REDIS_URL, prefix);
    });
    const salt = randomBytes(4).readUInt32BE(0);
    const hashes = Array.from({ length: SWARMS }, (_, s) => hashOf(s, salt));
    // Peer p of swarm s: port 20000 + s * 100 + p; even peers are seeders. A client announces
    // to its instance (half to A, half to B) and, when that one does not answer, to the other.
    const alive = new Set<RunningTracker>([a, b]);
    const switched = new Set<string>();
    const announce = async (s: number, p: number) => {
      const home = p % 2 === 0 ? a : b;
      const other = home === a ? b : a;
      for (const t of alive.has(home) ? [home, other] : [other]) {
        let d: Map<string, unknown>;
        try {
          d = await announceAt(t.http[0].port, {
            infoHash: hashes[s],
            port: 20000 + s * 100 + p,
            left: p % 2 === 0 ? 0 : 1000,
          });
        } catch (err) {
          // Only the killed instance may fail to answer.
          if (t === b || alive.has(t)) throw err;
          continue;
        }
        assert.equal(d.get('failure reason'), undefined, text(d.get('failure reason')));
        if (t !== home) switched.add(`${s}:${p}`);
        return;
      }
      throw new Error('no instance answered');
    };
    for (let s = 0; s < SWARMS; s++) for (let p = 0; p < PEERS; p++) await announce(s, p);
    const traffic = load((i) => announce(i % SWARMS, Math.floor(i / SWARMS) % PEERS), 16);
    await new Promise((r) => setTimeout(r, 1500));
    alive.delete(a);
    await a.crash();
    const before = traffic.done;
    await new Promise((r) => setTimeout(r, 1500));
    await traffic.stop();
    assert.ok(traffic.done > before + 50, `announces went on through B (${traffic.done - before})`);
    assert.ok(switched.size > 0, 'clients of A switched to B');
    // Every swarm, with every peer, on B: by scrape, and in the peer list a new leecher gets.
    const q = hashes.map((h) => `info_hash=${pct(h)}`).join('&');
    const files = bdecode((await httpGet(b.http[0].port, '127.0.0.1', `/scrape?${q}`)).body).get(
      'files',
    ) as Map<string, Map<string, number>>;
    for (const [s, h] of hashes.entries()) {
      const e = files.get(h.toString('latin1'));
      assert.deepEqual(
        [e?.get('complete'), e?.get('incomplete')],
        [PEERS / 2, PEERS / 2],
        `swarm ${s} whole`,
      );
      const d = await announceAt(b.http[0].port, { infoHash: h, port: 29999, left: 1000, numwant: 50 });
      const want = Array.from({ length: PEERS }, (_, p) => `127.0.0.1:${20000 + s * 100 + p}`).sort();
      assert.deepEqual(compactPeers(d.get('peers')), want, `swarm ${s}: every peer handed out by B`);
    }
    assert.equal((await httpGet(b.http[0].port, '127.0.0.1', '/health')).status, 200);
  });

  test('Redis killed and started again under load: every request answered, /health reports it, nothing piles up', async () => {
    const redis = ownRedis(await freePort(6400));
    await redis.start();
    cleanups.push(() => redis.kill());
    const t = createTracker({
      http: ['127.0.0.1:0'],
      udp: [],
      store: redis.url,
      redisPrefix: 'herald-load-faults',
      redisTimeout: 300,
      logLevel: 'silent',
      databaseUrl: 'sqlite::memory:',
    });
    await t.start();
    cleanups.push(() => t.stop());
    const store = t.service.store as RedisSwarmStore;
    const port = t.addresses().http[0].port;
    const health = async () => (await httpGet(port, '127.0.0.1', '/health')).status;
    const reasons = new Map<string, number>();
    let served = 0;
    let mostInFlight = 0;
    const traffic = load(async (i) => {
      const d = await announceAt(port, {
        infoHash: hashOf(i % 50, 91),
        port: 30000 + (i % 500),
        left: i % 2,
      });
      const reason = d.get('failure reason');
      if (reason === undefined) served++;
      else reasons.set(text(reason), (reasons.get(text(reason)) ?? 0) + 1);
      mostInFlight = Math.max(mostInFlight, store.inFlight);
    }, 16);
    await new Promise((r) => setTimeout(r, 1000));
    assert.ok(served > 0, 'served before the fault');
    await redis.kill();
    // ioredis's own queues: commands waiting for a connection, and sent but unanswered.
    const queues = store.client as unknown as {
      offlineQueue: { length: number };
      commandQueue: { length: number };
    };
    const statuses = new Set<number>();
    let mostQueued = 0;
    for (let i = 0; i < 15; i++) {
      await new Promise((r) => setTimeout(r, 200));
      statuses.add(await health());
      mostInFlight = Math.max(mostInFlight, store.inFlight);
      mostQueued = Math.max(mostQueued, queues.offlineQueue.length + queues.commandQueue.length);
    }
    assert.ok(statuses.has(503), '/health reports the store down');
    // At most one call per request in flight, and the sweep's window of 64 bucket calls: nothing
    // accumulates while Redis is away (each call fails at once or at its deadline). Nothing
    // waits for the connection (no offline queue); a batch written just as Redis died may sit in
    // the command queue until the client sees the connection close.
    assert.equal(queues.offlineQueue.length, 0, 'no command waits for the connection');
    assert.ok(mostInFlight <= 16 + 64, `calls in flight stay bounded (${mostInFlight})`);
    assert.ok(mostQueued <= 16 + 64, `commands queued stay bounded (${mostQueued})`);
    const servedBefore = served;
    await redis.start();
    const end = Date.now() + 15_000;
    while (served === servedBefore && Date.now() < end) await new Promise((r) => setTimeout(r, 200));
    assert.ok(served > servedBefore, 'served again after Redis came back');
    let up = 0;
    for (let i = 0; i < 75 && up !== 200; i++) {
      await new Promise((r) => setTimeout(r, 200));
      up = await health();
    }
    await traffic.stop();
    assert.equal(up, 200, '/health ok again');
    assert.deepEqual(
      [...reasons.keys()],
      [Errors.storeUnavailable.message],
      'the one refusal, while Redis was away',
    );
    // Nothing left behind: the last calls (a sweep's window of 64 may be running) settle.
    for (let i = 0; i < 50 && store.inFlight !== 0; i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(store.inFlight, 0);
  });
});
