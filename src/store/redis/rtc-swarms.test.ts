/**
 * Several Herald instances' WebRTC swarms in one process (socket.io's cluster-adapter test shape),
 * on the real Redis and Redis Cluster: what the two-process test (test/integration/redis-rtc.test.ts)
 * cannot wait for or reach: an instance that dies (its heartbeat stops) loses its peers for the
 * others; a stopped instance leaves; peers expire by last-seen; offers remembered per socket are
 * bounded; the relay counters.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import dc from 'node:diagnostics_channel';
import { after, describe, test } from 'node:test';
import {
  deleteKeys,
  freePort,
  ownRedis,
  REDIS_CLUSTER_URL,
  redisTargets,
  testPrefix,
} from '../../../test/helpers/redis.ts';
import { createLogger } from '../../core/log.ts';
import { AnnounceEvent } from '../../core/types.ts';
import type { RtcConnection } from '../../frontend/ws/webrtc-swarms.ts';
import { asciiJson, type WsAnnounce } from '../../protocol/websocket/codec.ts';
import { SLOTS_REFRESH_MS } from './connect.ts';
import { RedisSwarmStore } from './redis-store.ts';
import { RedisPubSub, RedisRtcSwarms } from './rtc-swarms.ts';

const logger = createLogger('silent');
const id = (a: number, b = 0) => {
  const x = Buffer.alloc(20, 0x61);
  x.writeUInt32BE(a, 0);
  x.writeUInt32BE(b, 4);
  return x;
};

/** A socket: every text message it is sent, parsed. */
function socket(): RtcConnection & { got: Record<string, unknown>[] } {
  const got: Record<string, unknown>[] = [];
  const push = (t: string) => got.push(JSON.parse(t));
  return {
    got,
    joined: [],
    ws: { send: push, sendParts: (parts, n) => push(Buffer.concat(parts.slice(0, n)).toString('latin1')) },
  };
}

function announce(infoHash: Buffer, peerId: Buffer, extra: Partial<WsAnnounce> = {}): WsAnnounce {
  return {
    action: 'announce',
    infoHash,
    peerId,
    event: AnnounceEvent.none,
    uploaded: 0,
    downloaded: 0,
    left: 1,
    ...extra,
  };
}

const offer = (n: number) => ({
  offerId: id(0xfeed, n),
  offerJson: Buffer.from(asciiJson(JSON.stringify({ type: 'offer', sdp: `o${n}` })), 'latin1'),
});

async function until(what: string, cond: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('a store and a subscriber on a Cluster, closed while refreshing its slots, leave no timer behind', {
  skip: REDIS_CLUSTER_URL === '' && 'no Redis Cluster',
}, async () => {
  const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
  // Resolves when the next TCP connection is opened: on a ready Cluster, a slot refresh's.
  const refreshing = () =>
    new Promise<void>((resolve) => {
      const seen = () => {
        dc.unsubscribe('net.client.socket', seen);
        resolve();
      };
      dc.subscribe('net.client.socket', seen);
    });
  const before = timers();
  const store = new RedisSwarmStore({
    url: REDIS_CLUSTER_URL,
    prefix: testPrefix(),
    timeoutMs: 2000,
    peerTimeout: 60,
  });
  await store.ready(10_000);
  const sub = new RedisPubSub(store, randomBytes(8));
  await sub.subscribed();
  // Each closed while a refresh of its own or of the other is in flight (ioredis opens a
  // connection per refresh); the store's client first, then the subscriber's.
  await refreshing();
  await store.close();
  await refreshing();
  await sub.close();
  // A refresh that outlived its client used to schedule the next one, and so on forever.
  await new Promise((r) => setTimeout(r, SLOTS_REFRESH_MS * 3));
  assert.equal(timers(), before, `active: ${JSON.stringify(process.getActiveResourcesInfo())}`);
});

for (const [name, url] of redisTargets)
  describe(`WebRTC swarms of several instances on one ${name}`, () => {
    const prefix = testPrefix();
    const stores: RedisSwarmStore[] = [];
    const all: RedisRtcSwarms[] = [];
    const clock = 1_000_000;
    async function instance(
      opts: { maxPendingOffers?: number; heartbeatMs?: number; instanceTimeoutMs?: number } = {},
      start = true,
    ) {
      const store = new RedisSwarmStore({ url, prefix, timeoutMs: 2000, peerTimeout: 60 });
      await store.ready(10_000);
      const rtc = new RedisRtcSwarms({
        store,
        logger,
        peerTimeout: 60,
        now: () => clock,
        heartbeatMs: 100,
        instanceTimeoutMs: 600,
        ...opts,
      });
      if (start) await rtc.start();
      stores.push(store);
      all.push(rtc);
      return { store, rtc };
    }
    after(async () => {
      for (const r of all) await r.close();
      for (const s of stores) await s.close();
      await deleteKeys(url, prefix);
    });
    const counts = async (rtc: RedisRtcSwarms, h: Buffer) => {
      const [e] = await rtc.scrape([h]);
      return `${e.complete}/${e.incomplete}/${e.downloaded}`;
    };

    test('an instance that stops beating loses its peers for the others', async () => {
      const a = await instance();
      const b = await instance();
      const h = id(1, Date.now() % 1e9);
      assert.deepEqual(await a.rtc.announce(socket(), announce(h, id(10)), 5, clock), {
        complete: 0,
        incomplete: 0,
      });
      assert.deepEqual(
        await b.rtc.announce(
          socket(),
          announce(h, id(11), { left: 0, event: AnnounceEvent.completed }),
          5,
          clock,
        ),
        {
          complete: 0,
          incomplete: 1,
        },
      );
      assert.equal(await counts(a.rtc, h), '1/1/1');
      // B "dies": its connection to Redis is gone, so it beats no more (and cannot clean up).
      b.store.client.disconnect();
      await until('B is found dead and its peer removed', async () => (await counts(a.rtc, h)) === '0/1/1');
    });

    test('a stopped instance leaves; a closed socket leaves; peers expire by last-seen', async () => {
      const a = await instance();
      const b = await instance();
      const h = id(2, Date.now() % 1e9);
      const onB = socket();
      await a.rtc.announce(socket(), announce(h, id(20)), 5, clock);
      await b.rtc.announce(onB, announce(h, id(21)), 5, clock);
      await b.rtc.announce(socket(), announce(h, id(22)), 5, clock);
      assert.equal(await counts(a.rtc, h), '0/3/0');
      b.rtc.closed(onB);
      await until('the closed socket leaves', async () => (await counts(a.rtc, h)) === '0/2/0');
      await b.rtc.close();
      assert.equal(await counts(a.rtc, h), '0/1/0', 'the stopped instance took its peers with it');
      // Expiry: nothing is removed before the timeout, the peer is after it.
      assert.equal(await a.rtc.sweep(clock + 30), 0);
      assert.ok((await a.rtc.sweep(clock + 61)) >= 1, 'this one (and the earlier tests’ peers)');
      assert.equal(await counts(a.rtc, h), '0/0/0');
      const [row] = (await a.rtc.scrapeAll()).filter((r) => Buffer.from(r.infoHash).equals(h));
      assert.equal(row, undefined, 'an empty swarm is freed');
    });

    test('offers reach the other instance; a socket remembers at most maxPendingOffers', async () => {
      const a = await instance({ maxPendingOffers: 2 });
      const b = await instance();
      const h = id(3, Date.now() % 1e9);
      const target = socket();
      const offerer = socket();
      await a.rtc.announce(target, announce(h, id(30)), 5, clock);
      // Three announces, one offer each, all to the one other peer; each waits for the one before
      // to arrive (on Cluster, two PUBLISHes may reach the subscriber out of order).
      for (let n = 0; n < 3; n++) {
        await b.rtc.announce(offerer, announce(h, id(31), { offers: [offer(n)] }), 5, clock);
        await until(`offer ${n} arrives`, async () => target.got.length === n + 1);
      }
      assert.deepEqual(
        target.got.map((m) => m.offer),
        [0, 1, 2].map((n) => ({ type: 'offer', sdp: `o${n}` })),
      );
      const answer = (n: number) =>
        a.rtc.answer(
          target,
          announce(h, id(30), {
            answer: { toPeerId: id(31), offerId: id(0xfeed, n), answer: { type: 'answer', sdp: `a${n}` } },
          }),
          clock,
        );
      answer(0); // forgotten: only the last two are remembered
      answer(2);
      answer(2); // once only
      answer(1);
      await until('two answers come back', async () => offerer.got.length === 2);
      assert.deepEqual(offerer.got.map((m) => (m.answer as { sdp: string }).sdp).sort(), ['a1', 'a2']);
      const s = a.rtc.stats();
      assert.deepEqual([s.offersRelayed, s.answersRelayed, s.answersDropped], [3, 2, 2]);
      // A peer id held by a socket (on any instance) is refused to another.
      assert.equal(
        (await a.rtc.announce(socket(), announce(h, id(31)), 5, clock)).constructor.name,
        'TrackerError',
      );
    });

    test('an instance whose clock is 60 s behind is not taken for dead: the beats are timed by Redis', async () => {
      // An instance timeout of 10 s (not 600 ms): B beats only once, so under load A's two beats
      // below could otherwise come after B's beat is legitimately stale; 60 s behind is still far past it.
      const a = await instance({ heartbeatMs: 100, instanceTimeoutMs: 10_000 });
      // B beats once (at start), with the clock of a host 60 s behind A's.
      const b = await instance({ heartbeatMs: 3600_000, instanceTimeoutMs: 10_000 }, false);
      const h = id(4, Date.now() % 1e9);
      await b.rtc.announce(socket(), announce(h, id(40)), 5, clock);
      const realNow = Date.now;
      Date.now = () => realNow() - 60_000;
      const started = b.rtc.start();
      Date.now = realNow;
      await started;
      const instances = `${prefix}:rtc:instances`;
      const score = (who: RedisRtcSwarms) => a.store.client.zscore(instances, who.instance);
      await until('B has beaten', async () => (await score(b.rtc)) !== null);
      // A beats twice after that: each time it looks for instances gone quiet (10 s).
      for (let n = 0; n < 2; n++) {
        const before = await score(a.rtc);
        await until('A beats', async () => (await score(a.rtc)) !== before);
      }
      // Before: B's beat was 60 s old on A's clock, so A removed B and its peer at once.
      assert.notEqual(await score(b.rtc), null, 'B is still counted alive');
      assert.equal(await counts(a.rtc, h), '0/1/0');
    });
  });

test('a full Redis (maxmemory, noeviction) does not make instances drop each other’s peers', async () => {
  const redis = ownRedis(await freePort(16_520), ['--maxmemory-policy', 'noeviction']);
  await redis.start();
  const made: { store: RedisSwarmStore; rtc: RedisRtcSwarms }[] = [];
  try {
    for (let i = 0; i < 2; i++) {
      const store = new RedisSwarmStore({ url: redis.url, prefix: 'full', timeoutMs: 2000, peerTimeout: 60 });
      await store.ready(10_000);
      const rtc = new RedisRtcSwarms({
        store,
        logger,
        peerTimeout: 60,
        now: () => 1000,
        heartbeatMs: 100,
        instanceTimeoutMs: 600,
      });
      await rtc.start();
      made.push({ store, rtc });
    }
    const [a, b] = made;
    const h = id(5, 5);
    await a.rtc.announce(socket(), announce(h, id(50)), 5, 1000);
    await b.rtc.announce(socket(), announce(h, id(51)), 5, 1000);
    // Full: every write that may grow memory is refused from now on.
    const used = Number(/used_memory:(\d+)/.exec(String(await a.store.client.info('memory')))![1]);
    await a.store.client.config('SET', 'maxmemory', String(Math.max(1, used - 256 * 1024)));
    const refused = await a.rtc.announce(socket(), announce(id(6, 6), id(52)), 5, 1000);
    assert.equal((refused as { code?: string }).code, 'HERALD_TRACKER_FULL');
    // Well past the instance timeout, then room again: had the beats been refused while it was
    // full, the first instance to beat again would find the other's beat stale and remove its peer.
    await new Promise((r) => setTimeout(r, 1500));
    await a.store.client.config('SET', 'maxmemory', '0');
    await new Promise((r) => setTimeout(r, 800));
    const [e] = await a.rtc.scrape([h]);
    assert.equal(e.incomplete, 2, 'both instances kept their peers');
  } finally {
    for (const m of made) {
      await m.rtc.close();
      await m.store.close();
    }
    await redis.kill();
  }
});
