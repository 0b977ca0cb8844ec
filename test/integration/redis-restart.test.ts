/**
 * Redis restarted, and Redis slow, under the Redis store (issue #14), on redis-servers of the
 * test's own (ports from 7101): what Herald keeps and what it loses.
 *
 * - Restarted with its data (AOF): every peer, completion count and private-mode accounting
 *   baseline is there again; the scripts Redis forgot are loaded again (NOSCRIPT, then EVAL), and
 *   the next announce of a private peer is credited from its last one before the restart.
 * - Restarted empty (no persistence): swarms refill with the peers' next announces; a private
 *   peer's first announce after it finds no baseline and credits nothing (the traffic since its
 *   last announce before the restart is not credited: lost, never counted twice), the one after
 *   is credited from it.
 * - Slow (DEBUG SLEEP, CLIENT PAUSE): calls fail at their deadline with the retryable refusal,
 *   nothing piles up, and announces are served again once Redis answers. A private announce
 *   refused at its deadline is not run by Redis when it wakes (the call carries its deadline by
 *   Redis's clock): the peer's baseline stays where the last answered announce left it, and the
 *   client's next announce is credited from there (through the script and through the module).
 *   Nor is a member's claim of a place (`peers_per_member`) or of a download slot refused at its
 *   deadline: it takes no place the member's other clients could use.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { after, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { Errors } from '../../src/core/errors.ts';
import { type AccountedResult, AnnounceEvent, type SharedAccountArgs } from '../../src/core/types.ts';
import { type RedisModuleMode, RedisSwarmStore } from '../../src/store/redis/redis-store.ts';
import { RedisPeers, RedisSlots } from '../../src/store/redis/slots.ts';
import { hashOf } from '../helpers/clients.ts';
import {
  freePort,
  MODULE_PATH,
  moduleAvailable,
  ownRedis,
  peerAnnounce,
  REDIS_URL,
} from '../helpers/redis.ts';

const cleanups: (() => Promise<void> | void)[] = [];

/** A store on `url` with a short deadline (a dead or sleeping Redis is noticed at once). */
async function storeOn(
  url: string,
  timeoutMs = 300,
  module: RedisModuleMode = 'auto',
): Promise<RedisSwarmStore> {
  const store = new RedisSwarmStore({ url, prefix: 'herald-restart', timeoutMs, peerTimeout: 2700, module });
  cleanups.push(() => store.close());
  await store.ready(10_000);
  return store;
}

/**
 * A redis-server of the test's own (from port `from`) that may be put to sleep, a store on it, and
 * a client to do so; with `module`, the server loads Herald's module and the store requires it.
 */
async function sleepyRedis(from: number, module = false): Promise<{ store: RedisSwarmStore; admin: Redis }> {
  const redis = ownRedis(await freePort(from), [
    '--enable-debug-command',
    'yes',
    ...(module ? ['--loadmodule', MODULE_PATH] : []),
  ]);
  await redis.start();
  cleanups.push(() => redis.kill());
  const store = await storeOn(redis.url, 300, module ? 'require' : 'off');
  const admin = new Redis(redis.url);
  cleanups.push(() => admin.disconnect());
  return { store, admin };
}

/** Clock seconds. */
const now = () => Math.floor(Date.now() / 1000);

/** Member 7's peer 1 on torrent 42 (route: the swarm's own hash). */
function acct(route: Uint8Array): SharedAccountArgs {
  return { route, torrentId: 42, memberId: 7, peersPerTorrent: 0, minGap: 0, refuseEarly: false };
}

/** Retries `f` every 100 ms while it answers a TrackerError, up to `ms`. */
async function served<T>(what: string, ms: number, f: () => Promise<T | Error>): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const r = await f();
    if (!(r instanceof Error)) return r;
    if (Date.now() > end) assert.fail(`${what}: still "${r.message}" after ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * Herald's event loop stalled past the stores' 300 ms deadline (a long GC, a burst of synchronous
 * work): nothing of Herald runs for 500 ms, while Redis answers.
 */
function stall(): void {
  const until = performance.now() + 500;
  while (performance.now() < until) {}
}

/** Member `memberId`'s peer `peer` on torrent 42 of swarm `h`, as `peers_per_member` counts it. */
const placeOn = (h: Uint8Array) => (memberId: number, peer: number) => ({
  memberId,
  route: h,
  torrentId: 42,
  peerId: peerAnnounce(h, peer, {}).peerId,
});

describe('Redis restarted, Redis slow', {
  skip: REDIS_URL ? false : 'no redis-server (HERALD_TEST_REDIS_URL unset)',
}, () => {
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  // With the module: the AOF holds HERALD.ANNOUNCE with each call's deadline, long past when it is
  // replayed; the replay applies it anyway (the master ran it in time).
  for (const [persistent, module] of [
    [true, false],
    [false, false],
    ...(moduleAvailable() ? [[true, true]] : []),
  ])
    test(`Redis restarted ${persistent ? 'with its data (AOF)' : 'empty'}${module ? ', through the module' : ''}: peers, completions and baselines ${persistent ? 'kept' : 'refilled; nothing credited twice'}`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'herald-restart-'));
      cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
      const redis = ownRedis(await freePort(7101), [
        ...(persistent ? ['--dir', dir, '--appendonly', 'yes', '--appendfsync', 'always'] : ['--dir', dir]),
        ...(module ? ['--loadmodule', MODULE_PATH] : []),
      ]);
      await redis.start();
      cleanups.push(() => redis.kill());
      const store = await storeOn(redis.url, 300, module ? 'require' : 'off');
      const h = hashOf(1, 4711);
      // A seeder that completed, and a private leecher with its baseline at 1000 bytes uploaded.
      await store.announce(peerAnnounce(h, 2, { left: 0, event: AnnounceEvent.completed }), now());
      const first = await store.announceAccounted(peerAnnounce(h, 1, { uploaded: 1000 }), now(), acct(h));
      assert.ok(!(first instanceof Error), 'announced before the restart');
      assert.deepEqual(await store.scrape([h]), [{ complete: 1, incomplete: 1, downloaded: 1 }]);

      // Past the deadline of every call made so far.
      await new Promise((resolve) => setTimeout(resolve, 400));
      await redis.kill();
      await redis.start();
      // Herald reconnects by itself; Redis has no script loaded now (EVALSHA answers NOSCRIPT).
      const next = (await served('announce after the restart', 15_000, () =>
        store.announceAccounted(peerAnnounce(h, 1, { uploaded: 1500 }), now(), acct(h)),
      )) as AccountedResult;
      if (persistent) {
        assert.equal(next.previous?.uploaded, 1000, 'credited from its last announce before the restart');
        assert.deepEqual([next.complete, next.incomplete], [1, 0], 'the seeder is still there');
        assert.deepEqual(await store.scrape([h]), [{ complete: 1, incomplete: 1, downloaded: 1 }]);
      } else {
        assert.equal(next.previous, null, 'no baseline: nothing credited for this announce');
        assert.deepEqual([next.complete, next.incomplete], [0, 0], 'the swarm starts again');
        const again = await store.announceAccounted(peerAnnounce(h, 1, { uploaded: 1700 }), now(), acct(h));
        assert.ok(!(again instanceof Error));
        assert.equal(again.previous?.uploaded, 1500, 'the announce after is credited from the new baseline');
        await store.announce(peerAnnounce(h, 2, { left: 0 }), now());
        assert.deepEqual(await store.scrape([h]), [{ complete: 1, incomplete: 1, downloaded: 0 }]);
      }
      assert.equal(store.health(), null);
    });

  for (const via of ['the script', ...(moduleAvailable() ? ['the module'] : [])])
    test(`private mode (${via}): an announce refused at its deadline is not run by Redis later: its traffic is credited once, at the retry`, async () => {
      const { store, admin } = await sleepyRedis(7108, via === 'the module');
      assert.equal(store.module, via === 'the module');
      const h = hashOf(1, 4713);
      const first = await store.announceAccounted(peerAnnounce(h, 1, { uploaded: 1000 }), now(), acct(h));
      assert.ok(!(first instanceof Error));
      // Redis stalls with the announce sent: Herald answers "try again later" at the deadline; the
      // script runs once Redis wakes (the command was on its socket).
      const sleep = admin.call('DEBUG', 'SLEEP', '1');
      await new Promise((resolve) => setTimeout(resolve, 100));
      const refused = await store.announceAccounted(peerAnnounce(h, 1, { uploaded: 2000 }), now(), acct(h));
      assert.equal(refused, Errors.storeUnavailable);
      await sleep;
      // The client announces again with the same counters: the 1000 bytes since its last served
      // announce are credited now, or never.
      const retry = (await served('the retry', 15_000, () =>
        store.announceAccounted(peerAnnounce(h, 1, { uploaded: 2000 }), now(), acct(h)),
      )) as AccountedResult;
      assert.equal(retry.previous?.uploaded, 1000, 'credited from the last announce whose answer was used');
      assert.deepEqual(await store.scrape([h]), [{ complete: 0, incomplete: 1, downloaded: 0 }]);
    });

  for (const via of ['the script', ...(moduleAvailable() ? ['the module'] : [])])
    test(`private mode (${via}): Herald's event loop stalled past redis_timeout while Redis answered in time: the answer is used, the traffic credited once`, async () => {
      const { store } = await sleepyRedis(7114, via === 'the module');
      const h = hashOf(1, 4716);
      const first = await store.announceAccounted(peerAnnounce(h, 1, { uploaded: 1000 }), now(), acct(h));
      assert.ok(!(first instanceof Error));
      const stalled = store.announceAccounted(peerAnnounce(h, 1, { uploaded: 2000 }), now(), acct(h));
      // The call leaves when the event loop next checks (the store's turn batch); then Herald's
      // event loop stalls past the deadline (a long GC, a burst of synchronous work) while Redis
      // runs the call at once and its answer waits in the socket.
      await new Promise((resolve) => setImmediate(resolve));
      stall();
      const r = await stalled;
      // Redis applied it: answered "try again later", the 1000 bytes it reported would never be
      // credited (the retry's previous baseline would be its own 2000).
      assert.ok(!(r instanceof Error), `answered, not refused (${r instanceof Error ? r.message : ''})`);
      assert.equal(r.previous?.uploaded, 1000, 'credited from the announce before');
      const next = await store.announceAccounted(peerAnnounce(h, 1, { uploaded: 2500 }), now(), acct(h));
      assert.ok(!(next instanceof Error));
      assert.equal(next.previous?.uploaded, 2000);
    });

  test("private mode, a WebTorrent peer's accounting (accountOnly): Herald's event loop stalled past redis_timeout while Redis answered in time: the answer is used", async () => {
    const { store } = await sleepyRedis(7115);
    const h = hashOf(1, 4717);
    const first = await store.accountOnly(peerAnnounce(h, 1, { uploaded: 1000 }), now(), acct(h));
    assert.ok(!(first instanceof Error));
    const stalled = store.accountOnly(peerAnnounce(h, 1, { uploaded: 2000 }), now(), acct(h));
    stall();
    const r = await stalled;
    assert.ok(!(r instanceof Error), `answered, not refused (${r instanceof Error ? r.message : ''})`);
    assert.equal(r.previous?.uploaded, 1000);
  });

  /** Redis asleep for a second while `claim` is made: it is refused at its deadline. */
  async function refusedWhileAsleep<T>(
    admin: Redis,
    store: RedisSwarmStore,
    claim: () => Promise<T> | null,
  ): Promise<T | null> {
    const sleep = admin.call('DEBUG', 'SLEEP', '1');
    await new Promise((resolve) => setTimeout(resolve, 100));
    const r = await claim();
    await sleep;
    // Redis has run what was on its socket: served again.
    await served('announce once Redis answers', 15_000, () =>
      store.announce(peerAnnounce(hashOf(9, 4714), 1, {}), now()),
    );
    return r;
  }

  test("peers_per_member: a new peer refused at its deadline takes no place from the member's other clients", async () => {
    const { store, admin } = await sleepyRedis(7111);
    const peers = new RedisPeers(store, 2700);
    const h = hashOf(1, 4714);
    const place = placeOn(h);
    // Another member's claim first: the script is loaded (EVALSHA would otherwise answer NOSCRIPT).
    assert.equal(await peers.claim(place(8, 1), 1, false), 'new');
    const refused = await refusedWhileAsleep(admin, store, () => peers.claim(place(7, 1), 1, false));
    assert.equal(refused, Errors.storeUnavailable);
    // One peer allowed: the member's other client takes the place the refused one never had.
    assert.equal(await peers.claim(place(7, 2), 1, false), 'new');
  });

  test("peers_per_member: Herald's event loop stalled past redis_timeout while Redis took a new peer's place in time: the answer is used (the place is the peer's, not held by a refused announce)", async () => {
    const { store } = await sleepyRedis(7116);
    const peers = new RedisPeers(store, 2700);
    const h = hashOf(1, 4718);
    const place = placeOn(h);
    assert.equal(await peers.claim(place(8, 1), 1, false), 'new', 'loads the script');
    const stalled = peers.claim(place(7, 1), 1, false);
    await new Promise((resolve) => setImmediate(resolve));
    stall();
    assert.equal(await stalled, 'new');
  });

  test('download slots: a leeching announce refused at its deadline takes no slot', async () => {
    const { store, admin } = await sleepyRedis(7112);
    const slots = new RedisSlots(store, 2700, 300);
    const h = hashOf(1, 4715);
    const claim = (memberId: number, torrentId: number) =>
      slots.claim({
        memberId,
        route: h,
        torrentId,
        slots: 1,
        now: now(),
        known: false,
        peerId: peerAnnounce(h, 1, {}).peerId,
      });
    assert.equal(await claim(8, 41), null, 'loads the script');
    assert.equal(await refusedWhileAsleep(admin, store, () => claim(7, 42)), Errors.storeUnavailable);
    // The member's set of leeching torrents is what answered announces claimed: nothing.
    assert.deepEqual(await admin.zrange('herald-restart:{m7}:l', 0, -1), []);
  });

  for (const [how, pause] of [
    ['DEBUG SLEEP', ['DEBUG', 'SLEEP', '2']],
    ['CLIENT PAUSE', ['CLIENT', 'PAUSE', '2000', 'ALL']],
  ] as const)
    test(`Redis slow (${how} 2 s): the retryable refusal at the deadline, nothing piles up, served after`, async () => {
      const { store, admin } = await sleepyRedis(7105);
      assert.ok(!((await store.announce(peerAnnounce(hashOf(1, 4712), 1, {}), now())) instanceof Error));
      const slow = admin.call(...(pause as unknown as [string, ...string[]]));
      if (pause[0] === 'CLIENT') await slow;
      const end = Date.now() + 1500;
      let mostInFlight = 0;
      const answers = new Set<string>();
      let asked = 0;
      while (Date.now() < end) {
        const burst = await Promise.all(
          Array.from({ length: 20 }, (_, i) => {
            const r = store.announce(peerAnnounce(hashOf(i, 4712), 10 + (asked++ % 200), {}), now());
            mostInFlight = Math.max(mostInFlight, store.inFlight);
            return r;
          }),
        );
        for (const r of burst) answers.add(r instanceof Error ? r.message : 'served');
      }
      await slow;
      assert.ok(answers.has(Errors.storeUnavailable.message), 'refused while Redis did not answer');
      assert.deepEqual(
        [...answers].filter((a) => a !== 'served' && a !== Errors.storeUnavailable.message),
        [],
      );
      assert.ok(mostInFlight <= 20 + 1, `at most the burst in flight (${mostInFlight})`);
      await served('announce once Redis answers', 15_000, () =>
        store.announce(peerAnnounce(hashOf(1, 4712), 1, {}), now()),
      );
      assert.equal(store.inFlight, 0);
    });
});
