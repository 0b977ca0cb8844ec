/**
 * Faults of the Redis store (issue #14), on redis-servers of the test's own: Redis killed and
 * started again, and a Redis Cluster master killed and failed over to its replica. Herald keeps
 * answering (a clear refusal while Redis is away, never a crash or a hang), holds no queue of
 * waiting commands, reports /health unavailable (503), and recovers by itself.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import { after, describe, test } from 'node:test';
import { type Cluster, Redis } from 'ioredis';
import { Errors } from '../../src/core/errors.ts';
import { createTracker, type Tracker } from '../../src/index.ts';
import {
  type ConnectionId,
  parseResponse,
  writeAnnounceRequest,
  writeConnectRequest,
} from '../../src/protocol/udp/codec.ts';
import { keySlot } from '../../src/store/redis/connect.ts';
import { bucketOf } from '../../src/store/redis/records.ts';
import { RedisSwarmStore } from '../../src/store/redis/redis-store.ts';
import { announcePath, bdecode, hashOf, httpGet, text, udpClient } from '../helpers/clients.ts';
import {
  freePort,
  MODULE_PATH,
  moduleAvailable,
  ownCluster,
  ownRedis,
  peerAnnounce,
  REDIS_URL,
} from '../helpers/redis.ts';

/** `redisTimeout` short by default, so that a dead Redis is noticed at once. */
function tracker(url: string, redisTimeout = 300): Tracker {
  return createTracker({
    http: ['127.0.0.1:0'],
    udp: ['127.0.0.1:0'],
    store: url,
    fullScrape: true,
    fullScrapeInterval: 1,
    redisPrefix: 'herald-faults',
    redisTimeout,
    // The burst below opens 300 connections at once from one address; not what this test is about.
    maxConnectionsPerIp: 0,
    udpSecret: randomBytes(32).toString('hex'),
    logLevel: 'silent',
    databaseUrl: 'sqlite::memory:',
  });
}

/** An HTTP announce; the client waits up to 15 s (a burst of 300 on a loaded machine takes more than 2). */
async function announce(t: Tracker, ih: Buffer, port: number, left: number) {
  const r = await httpGet(
    t.addresses().http[0].port,
    '127.0.0.1',
    announcePath({ infoHash: ih, port, left }),
    {},
    { timeoutMs: 15_000 },
  );
  return bdecode(r.body);
}

async function health(t: Tracker) {
  const r = await httpGet(t.addresses().http[0].port, '127.0.0.1', '/health');
  return { status: r.status, body: JSON.parse(r.body.toString()) as Record<string, unknown> };
}

/** Polls `check` every 200 ms until it is true; fails after `ms`. */
async function until(what: string, ms: number, check: () => Promise<boolean>): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) assert.fail(`${what}: not within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** ioredis's own queues (commands waiting for a connection, and sent but unanswered). */
function queued(t: Tracker): number {
  const c = (t.service.store as RedisSwarmStore).client as unknown as {
    offlineQueue: { length: number };
    commandQueue?: { length: number };
  };
  return c.offlineQueue.length + (c.commandQueue?.length ?? 0);
}

/**
 * A Cluster of the test's own (three masters, a replica each, ports from `from`), a tracker on it,
 * and 48 swarms spread over the buckets (info hashes `hashOf(i, tag)`), swarm i with one seeder
 * on port `port + i`.
 */
async function clusterWithSeeders(
  from: number,
  tag: number,
  port: number,
  redisTimeout?: number,
  extra: string[] = [],
) {
  const ports: number[] = [];
  for (let p = await freePort(from, 10_000); ports.length < 6; p++)
    if ((await freePort(p, 10_000)) === p) ports.push(p);
  const cluster = await ownCluster(ports, extra);
  cleanups.push(() => cluster.stop());
  const t = tracker(cluster.url, redisTimeout);
  await t.start();
  cleanups.push(() => t.stop());
  const hashes = Array.from({ length: 48 }, (_, i) => {
    const h = hashOf(i, tag);
    h[0] = i * 5;
    return h;
  });
  for (const [i, h] of hashes.entries())
    assert.equal((await announce(t, h, port + i, 0)).get('failure reason'), undefined);
  return { ports, cluster, t, hashes };
}

const cleanups: (() => Promise<void>)[] = [];

/** Clock seconds. */
const now = () => Math.floor(Date.now() / 1000);

describe('Redis store faults', {
  skip: REDIS_URL ? false : 'no redis-server (HERALD_TEST_REDIS_URL unset)',
}, () => {
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  test('Redis killed: clear refusals (HTTP, UDP), /health 503, no queue, recovery', async () => {
    const redis = ownRedis(await freePort(6390));
    await redis.start();
    cleanups.push(() => redis.kill());
    const t = tracker(redis.url);
    await t.start();
    cleanups.push(() => t.stop());
    const ih = hashOf(1, 77);
    assert.equal((await announce(t, ih, 8001, 0)).get('failure reason'), undefined);
    assert.equal((await health(t)).status, 200);

    await redis.kill();
    const refused = await announce(t, ih, 8002, 100);
    assert.equal(text(refused.get('failure reason')), Errors.storeUnavailable.message);
    assert.ok(refused.has('retry in'), 'BEP 31 retry in: the client comes back later');
    // UDP: a BEP 15 error with the same reason (connect needs no store).
    const c = await udpClient(4);
    try {
      const buf = Buffer.alloc(256);
      const port = t.addresses().udp[0].port;
      const cr = await c.request(buf.subarray(0, writeConnectRequest(buf, 5)), port);
      const id = (parseResponse(cr!, cr!.length) as { connectionId: ConnectionId }).connectionId;
      const n = writeAnnounceRequest(buf, {
        connectionId: id,
        transactionId: 6,
        infoHash: ih,
        peerId: Buffer.alloc(20, 1),
        downloaded: 0,
        left: 10,
        uploaded: 0,
        event: 2,
        numWant: 10,
        port: 8003,
      });
      const ar = await c.request(buf.subarray(0, n), port);
      assert.ok(ar !== null, 'UDP answered');
      assert.deepEqual(parseResponse(ar, ar.length), {
        action: 3,
        transactionId: 6,
        message: Errors.storeUnavailable.message,
      });
    } finally {
      c.close();
    }
    // Readiness answers are shared for a second (src/web/health.ts): the next round sees Redis gone.
    await until('/health 503', 5000, async () => (await health(t)).status === 503);
    const h = await health(t);
    assert.equal(h.status, 503);
    assert.equal(h.body.status, 'unavailable');
    assert.match(String((h.body.checks as Record<string, string>).store), /redis/);
    // A burst while Redis is away: every request is answered, and nothing waits in a queue.
    const burst = await Promise.all(
      Array.from({ length: 300 }, (_, i) => announce(t, hashOf(i, 78), 9000 + i, 100)),
    );
    for (const d of burst) assert.equal(text(d.get('failure reason')), Errors.storeUnavailable.message);
    assert.equal(queued(t), 0, 'no command waits for the connection');

    // Redis back (empty: no persistence): Herald reconnects by itself and serves again.
    await redis.start();
    await until(
      'announces served again',
      15_000,
      async () => !(await announce(t, ih, 8001, 0)).has('failure reason'),
    );
    const d = await announce(t, ih, 8002, 100);
    assert.deepEqual(compact(d.get('peers')), ['127.0.0.1:8001']);
    await until('/health ok again', 15_000, async () => (await health(t)).status === 200);
  });

  test('Redis killed: a full scrape gets the clear refusal announces get, /health 503', async () => {
    const redis = ownRedis(await freePort(6392));
    await redis.start();
    cleanups.push(() => redis.kill());
    const t = tracker(redis.url);
    await t.start();
    cleanups.push(() => t.stop());
    assert.equal((await announce(t, hashOf(1, 81), 8001, 0)).get('failure reason'), undefined);
    const full = async () =>
      bdecode((await httpGet(t.addresses().http[0].port, '127.0.0.1', '/scrape')).body);
    assert.equal((await full()).get('failure reason'), undefined);
    await redis.kill();
    // The full scrape answered earlier is cached 5 s: wait it out, then ask again.
    await new Promise((resolve) => setTimeout(resolve, 5100));
    const d = await full();
    assert.equal(text(d.get('failure reason')), Errors.storeUnavailable.message);
    assert.ok(d.has('retry in'), 'BEP 31 retry in, as announces get');
    await until('/health 503', 5000, async () => (await health(t)).status === 503);
  });

  test("a reply lost on the way (the connection stays open): the connection is made again, and no announce gets another swarm's answer", async () => {
    const redis = ownRedis(await freePort(6420));
    await redis.start();
    cleanups.push(() => redis.kill());
    // A relay in front of the real redis-server that can lose one reply, as a faulty middlebox or
    // link would: the stream then holds one reply fewer than the commands sent on it, and
    // replies are matched to commands in order.
    let lose = false;
    const links = new Set<Socket>();
    const relay = createServer((c) => {
      const up = connect(redis.port, '127.0.0.1');
      c.pipe(up);
      up.on('data', (d: Buffer) => {
        if (lose) lose = false;
        else c.write(d);
      });
      for (const s of [c, up]) {
        links.add(s);
        s.on('error', () => {});
        s.on('close', () => {
          c.destroy();
          up.destroy();
        });
      }
    });
    await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
    cleanups.push(async () => {
      for (const s of links) s.destroy();
      relay.close();
    });
    const t = tracker(`redis://127.0.0.1:${(relay.address() as AddressInfo).port}`, 500);
    await t.start();
    cleanups.push(() => t.stop());
    const full = hashOf(1, 4242);
    for (let i = 0; i < 5; i++)
      assert.equal((await announce(t, full, 7000 + i, 10)).get('failure reason'), undefined);
    lose = true;
    const lost = await announce(t, hashOf(2, 4242), 7100, 10);
    assert.equal(text(lost.get('failure reason')), Errors.storeUnavailable.message);
    // Herald drops the connection whose reply went missing and makes another: answers again.
    await until(
      'announces answered again',
      5000,
      async () => (await announce(t, hashOf(3, 4242), 7200, 10)).get('failure reason') === undefined,
    );
    // Announces in flight together each get their own swarm's answer.
    const answers = await Promise.all(
      Array.from({ length: 6 }, async (_, i) => {
        await new Promise((resolve) => setTimeout(resolve, i * 5));
        return i % 2 === 0
          ? announce(t, full, 7300 + i, 10)
          : announce(t, hashOf(10 + i, 4242), 7300 + i, 10);
      }),
    );
    for (const [i, a] of answers.entries()) {
      assert.equal(a.get('failure reason'), undefined, `announce ${i}`);
      assert.equal(a.get('incomplete'), i % 2 === 0 ? 5 + i / 2 : 0, `announce ${i}: its own swarm's count`);
    }
  });

  test('Redis Cluster: a slot moved to another master (MOVED) is followed, not failed', async () => {
    // Swarms over every master, each with a seeder; the first one's slot is moved below.
    const { ports, t, hashes } = await clusterWithSeeders(7151, 82, 8300, 5000);
    const store = t.service.store as RedisSwarmStore;
    const admin = ports.slice(0, 3).map((port) => new Redis({ port, host: '127.0.0.1' }));
    try {
      const slot = Number(await admin[0].cluster('KEYSLOT', `${store.prefix}:{${bucketOf(hashes[0])}}:i`));
      // Move the slot to each other master in turn, and back, announcing every swarm at once right
      // after each move (the calls to one master leave together): Herald's slot map still names
      // the old master, which answers MOVED to the moved swarm's call and runs the others.
      for (let round = 0; round < 3; round++) {
        await moveSlot(admin, slot);
        const all = await Promise.all(
          hashes.map((h) =>
            store.announce(
              {
                infoHash: h,
                peerId: Buffer.alloc(20, 2),
                family: 4,
                ip: Uint8Array.of(127, 0, 0, 1),
                port: 8400,
                uploaded: 0,
                downloaded: 0,
                left: 5,
                event: 0,
                numWant: 10,
                wantPeerIds: false,
              },
              t.service.clock.now(),
            ),
          ),
        );
        for (const [i, r] of all.entries()) {
          assert.ok(
            !(r instanceof Error),
            `round ${round}, swarm ${i}: ${r instanceof Error ? r.message : ''}`,
          );
          assert.deepEqual(compact(r.peers), [`127.0.0.1:${8300 + i}`], `round ${round}, swarm ${i}`);
        }
      }
    } finally {
      for (const c of admin) c.disconnect();
    }
  });

  test('Redis full (maxmemory, noeviction): announces are refused whole with "tracker is full"', async () => {
    const redis = ownRedis(await freePort(6395), ['--maxmemory', '3mb', '--maxmemory-policy', 'noeviction']);
    await redis.start();
    cleanups.push(() => redis.kill());
    // A generous deadline: on a loaded machine one call of the fill may take more than 300 ms,
    // and this test is about Redis's refusal, not about deadlines.
    const t = tracker(redis.url, 5000);
    await t.start();
    cleanups.push(() => t.stop());
    const ih = hashOf(2, 77);
    assert.equal((await announce(t, ih, 100, 0)).get('failure reason'), undefined);
    // Fill through the store itself (many distinct endpoints), until Redis refuses writes.
    const store = t.service.store;
    let refused: unknown = null;
    for (let i = 0; i < 200_000 && refused === null; i++) {
      const r = await store.announce(
        {
          infoHash: hashOf(i % 5000, 80),
          peerId: Buffer.alloc(20, 1),
          family: 4,
          ip: Uint8Array.of(10, (i >> 16) & 255, (i >> 8) & 255, i & 255),
          port: 1000,
          uploaded: 0,
          downloaded: 0,
          left: 5,
          event: 2,
          numWant: 0,
          wantPeerIds: false,
        },
        t.service.clock.now(),
      );
      if (r instanceof Error) refused = r;
    }
    assert.equal(refused, Errors.trackerFull, 'a full Redis is "tracker is full", not "unavailable"');
    // Over HTTP (Redis hovers at its limit: an answer that fits may still pass now and then).
    const reasons = new Set<string>();
    let full = 0;
    for (let i = 0; i < 50; i++) {
      const d = await announce(t, hashOf(3 + i, 77), 101, 0);
      if (!d.has('failure reason')) continue;
      reasons.add(text(d.get('failure reason')));
      if (d.has('retry in')) full++;
    }
    assert.deepEqual([...reasons], [Errors.trackerFull.message]);
    // How many: Redis's used memory includes its clients' buffers, which shrink once the fill
    // stops, so some new swarms fit again (as few as 12 of 50 were refused in one CI run).
    assert.ok(full >= 1, `announces refused with retry in (${full} of 50)`);
    assert.equal(t.service.counters.refusedFull, full, '/stats counts the refusals of Redis too');
  });

  test('Redis Cluster: a master killed fails over to its replica; swarms and service survive', async () => {
    // Swarms over every master: 48 info hashes spread over the buckets.
    const { cluster, t, hashes } = await clusterWithSeeders(7111, 79, 8100);
    // Let the replicas catch up, then kill the first master.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    await cluster.nodes[0].kill();
    // Within seconds (node timeout 1 s, then an election) every swarm answers again, with its
    // seeder: the replica had it.
    await until('every swarm served after the failover', 30_000, async () => {
      const all = await Promise.all(hashes.map((h) => announce(t, h, 8200, 100)));
      return all.every((d) => !d.has('failure reason'));
    });
    for (const [i, h] of hashes.entries()) {
      const d = await announce(t, h, 8200, 100);
      assert.deepEqual(compact(d.get('peers')), [`127.0.0.1:${8100 + i}`], `swarm ${i} kept its seeder`);
    }
    await until('/health ok after the failover', 15_000, async () => (await health(t)).status === 200);
  });

  test('Redis Cluster: a replica promoted by CLUSTER FAILOVER under announces: every announce answered, no peer written lost', async () => {
    const { ports, t, hashes } = await clusterWithSeeders(7211, 85, 9100, 1000);
    const store = t.service.store as RedisSwarmStore;
    const nodes = ports.map((port) => new Redis({ port, host: '127.0.0.1' }));
    try {
      const replica = (
        await Promise.all(nodes.map(async (n) => [n, await n.info('replication')] as const))
      ).find(([, info]) => info.includes(`master_port:${ports[0]}`))?.[0];
      assert.ok(replica !== undefined, `a replica of ${ports[0]}`);
      // Leechers announcing all along: each one an announce answered without a failure reason wrote.
      const written = hashes.map(() => new Set<number>());
      const reasons = new Set<string>();
      let running = true;
      let n = 0;
      const loops = Array.from({ length: 8 }, async () => {
        while (running) {
          const i = n++;
          const s = i % hashes.length;
          const port = 9200 + (i % 1000);
          const d = await announce(t, hashes[s], port, 100);
          if (d.has('failure reason')) reasons.add(text(d.get('failure reason')));
          else written[s].add(port);
        }
      });
      await new Promise((resolve) => setTimeout(resolve, 1000));
      assert.equal(await replica.cluster('FAILOVER'), 'OK');
      await until('the replica promoted', 15_000, async () =>
        (await replica.info('replication')).includes('role:master'),
      );
      await new Promise((resolve) => setTimeout(resolve, 1500));
      running = false;
      await Promise.all(loops);
      // A manual failover waits for the replica to catch up: nothing is refused but, at worst,
      // with the retryable reason; nothing answered is lost.
      assert.deepEqual(
        [...reasons].filter((r) => r !== Errors.storeUnavailable.message),
        [],
        'only the retryable refusal',
      );
      const cluster = store.client as Cluster;
      for (const [s, h] of hashes.entries()) {
        const key = Buffer.concat([Buffer.from(`${store.prefix}:{${bucketOf(h)}}:`), h, Buffer.from(':4l')]);
        const held = new Set((await cluster.zrangeBuffer(key, 0, -1)).map((ep) => ep.readUInt16BE(4)));
        const lost = [...written[s]].filter((port) => !held.has(port));
        assert.deepEqual(lost, [], `swarm ${s}: leechers answered but not held after the failover`);
      }
      assert.ok(n > 100, `announces went on (${n})`);
    } finally {
      for (const c of nodes) c.disconnect();
    }
  });

  test("Redis Cluster: a master killed: the other masters' swarms are served throughout its failover", async () => {
    // Nodes that keep serving their own slots while one master is down (Redis's own
    // cluster-require-full-coverage would refuse every slot until the failover): what is left
    // to see is Herald's part.
    const { ports, cluster, t, hashes } = await clusterWithSeeders(7131, 83, 8500, 1000, [
      '--cluster-require-full-coverage',
      'no',
    ]);
    const store = t.service.store as RedisSwarmStore;
    const dead = `127.0.0.1:${ports[0]}`;
    const slots = (store.client as Cluster).slots;
    const onDead = hashes.map((h) => slots[keySlot(String(bucketOf(h)))]?.[0] === dead);
    assert.ok(onDead.some(Boolean) && !onDead.every(Boolean), 'swarms on the killed master and on others');
    await new Promise((resolve) => setTimeout(resolve, 1000));
    await cluster.nodes[0].kill();
    // Every swarm announced at once, round after round, until the killed master's swarms are
    // served by its replica: the killed master's calls fail (at their deadline) meanwhile; the
    // others' are answered every time.
    const refused: string[] = [];
    // /health meanwhile, after each round: this instance answers most swarms, as every other
    // instance on the Cluster does, so a load balancer must not take them all out at once.
    const healths: { status: number; body: Record<string, unknown> }[] = [];
    await until("the killed master's swarms served by its replica", 30_000, async () => {
      const all = await Promise.all(hashes.map((h, i) => announce(t, h, 8600 + i, 100)));
      for (const [i, d] of all.entries())
        if (!onDead[i] && d.has('failure reason'))
          refused.push(`swarm ${i}: ${text(d.get('failure reason'))}`);
      const failing = all.some((d) => d.has('failure reason'));
      if (failing) healths.push(await health(t));
      return !failing;
    });
    assert.deepEqual(refused, [], "the other masters' swarms were refused during the failover");
    assert.deepEqual(
      healths.filter((h) => h.status !== 200).map((h) => JSON.stringify(h.body)),
      [],
      '/health stays 200 while only part of the swarms fail',
    );
    const degraded = healths.filter((h) => h.body.status === 'degraded');
    assert.ok(degraded.length > 0, `/health said degraded meanwhile: ${JSON.stringify(healths)}`);
    assert.match(
      String((degraded[0].body.checks as Record<string, string>).store),
      /redis: some calls failing/,
    );
    await until('/health ok after the failover', 15_000, async () => {
      const h = await health(t);
      return h.status === 200 && h.body.status === 'ok';
    });
    for (const [i, h] of hashes.entries())
      assert.deepEqual(
        compact((await announce(t, h, 8700, 100)).get('peers')).sort(),
        [`127.0.0.1:${8500 + i}`, `127.0.0.1:${8600 + i}`],
        `swarm ${i} kept its peers`,
      );
  });

  for (const via of ['the script', ...(moduleAvailable() ? ['the module'] : [])])
    test(`Redis Cluster, private mode (${via}): a master killed: no announce refused at its deadline is written after (ioredis's retry on the new master), so no baseline moves unseen`, async () => {
      const ports: number[] = [];
      for (let p = await freePort(via === 'the script' ? 7221 : 7251, 10_000); ports.length < 6; p++)
        if ((await freePort(p, 10_000)) === p) ports.push(p);
      const cluster = await ownCluster(ports, via === 'the module' ? ['--loadmodule', MODULE_PATH] : []);
      cleanups.push(() => cluster.stop());
      const store = new RedisSwarmStore({
        url: cluster.url,
        prefix: 'herald-faults-private',
        timeoutMs: 1000,
        peerTimeout: 2700,
        module: via === 'the module' ? 'require' : 'off',
      });
      cleanups.push(() => store.close());
      await store.ready(10_000);
      // 48 swarms over the buckets, a private peer in each (member 7 on torrent 100 + i).
      const hashes = Array.from({ length: 48 }, (_, i) => {
        const h = hashOf(i, 85);
        h[0] = i * 5;
        return h;
      });
      const dead = `127.0.0.1:${ports[0]}`;
      const onDead = hashes.map(
        (h) => (store.client as Cluster).slots[keySlot(String(bucketOf(h)))]?.[0] === dead,
      );
      assert.ok(onDead.some(Boolean), 'swarms on the master to be killed');
      // What each peer's answered announces reported: a baseline must be one of them (or none:
      // a write the old master had not replicated yet is lost, never credited twice).
      const answered = hashes.map(() => new Set<number>());
      const wrong: string[] = [];
      let refusedOnDead = 0;
      let round = 0;
      const announceAll = async () => {
        round++;
        const all = await Promise.all(
          hashes.map((h, i) =>
            store.announceAccounted(peerAnnounce(h, 1, { uploaded: round * 1000 }), now(), {
              route: h,
              torrentId: 100 + i,
              memberId: 7,
              peersPerTorrent: 0,
              minGap: 0,
              refuseEarly: false,
            }),
          ),
        );
        for (const [i, r] of all.entries()) {
          if (r instanceof Error) {
            if (onDead[i]) refusedOnDead++;
            continue;
          }
          const prev = r.previous?.uploaded;
          if (prev !== undefined && !answered[i].has(prev))
            wrong.push(`swarm ${i}: baseline ${prev} from a refused announce (round ${round})`);
          answered[i].add(round * 1000);
        }
        return all.every((r) => !(r instanceof Error));
      };
      await announceAll();
      await new Promise((resolve) => setTimeout(resolve, 1000));
      await cluster.nodes[0].kill();
      // Round after round (a new round while the last is refused or answered) until the killed
      // master's swarms are served by its replica, then a few more.
      await until("the killed master's swarms served by its replica", 30_000, announceAll);
      for (let k = 0; k < 3; k++) await announceAll();
      assert.ok(refusedOnDead > 0, 'announces refused during the failover');
      assert.deepEqual(wrong, []);
    });

  test("Redis Cluster: a master that stops answering (CLIENT PAUSE): only its connection is made again; the others' swarms are served", async () => {
    const { ports, t, hashes } = await clusterWithSeeders(7191, 84, 8800, 1000);
    const store = t.service.store as RedisSwarmStore;
    const slots = (store.client as Cluster).slots;
    const paused = `127.0.0.1:${ports[0]}`;
    const onPaused = hashes.map((h) => slots[keySlot(String(bucketOf(h)))]?.[0] === paused);
    const dropped: string[] = [];
    store.client.on('-node', (node: Redis) => dropped.push(`${node.options.host}:${node.options.port}`));
    const admin = new Redis({ port: ports[0], host: '127.0.0.1' });
    try {
      await admin.call('CLIENT', 'PAUSE', '2500', 'ALL');
      // Rounds of every swarm at once while the master sleeps: its swarms' calls fail at their
      // deadline (1 s, generous, so that a loaded machine makes no other master look asleep),
      // which drops the connection still waiting for their replies (a reply lost on a connection
      // that stays open would shift every later reply onto the wrong call).
      const refused: string[] = [];
      for (const end = Date.now() + 3000; Date.now() < end; ) {
        const all = await Promise.all(hashes.map((h, i) => announce(t, h, 8900 + i, 100)));
        for (const [i, d] of all.entries())
          if (!onPaused[i] && d.has('failure reason'))
            refused.push(`swarm ${i}: ${text(d.get('failure reason'))}`);
      }
      assert.deepEqual(refused, [], "the other masters' swarms were refused while one master slept");
      assert.deepEqual([...new Set(dropped)], [paused], 'the connection made again is the sleeping master’s');
      await until('every swarm served again', 15_000, async () => {
        const all = await Promise.all(hashes.map((h, i) => announce(t, h, 8900 + i, 100)));
        return all.every((d) => !d.has('failure reason'));
      });
    } finally {
      admin.disconnect();
    }
  });
});

/**
 * Migrates `slot` (keys and ownership) from the master holding it to the next one, as
 * `redis-cli --cluster reshard` does: IMPORTING / MIGRATING, MIGRATE every key, then SETSLOT NODE
 * on every master.
 */
async function moveSlot(masters: Redis[], slot: number): Promise<void> {
  const ids = await Promise.all(masters.map((m) => m.cluster('MYID') as Promise<string>));
  const nodes = String(await masters[0].cluster('NODES'));
  const ownerId = nodes
    .split('\n')
    .find(
      (l) =>
        l.includes('master') &&
        l
          .split(' ')
          .slice(8)
          .some((r) => inRange(r, slot)),
    )
    ?.split(' ')[0];
  const from = ids.indexOf(ownerId ?? '');
  assert.ok(from >= 0, `the owner of slot ${slot}`);
  const to = (from + 1) % masters.length;
  await masters[to].cluster('SETSLOT', slot, 'IMPORTING', ids[from]);
  await masters[from].cluster('SETSLOT', slot, 'MIGRATING', ids[to]);
  const port = masters[to].options.port as number;
  for (;;) {
    // Binary keys (info hashes): read and pass them as bytes.
    const keys = (await masters[from].callBuffer('CLUSTER', 'GETKEYSINSLOT', slot, 100)) as Buffer[];
    if (keys.length === 0) break;
    await masters[from].call('MIGRATE', '127.0.0.1', port, '', 0, 5000, 'KEYS', ...keys);
  }
  for (const m of [masters[to], masters[from], ...masters.filter((_, i) => i !== to && i !== from)])
    await m.cluster('SETSLOT', slot, 'NODE', ids[to]);
}

function inRange(range: string, slot: number): boolean {
  const [a, b] = range.split('-').map(Number);
  return slot >= a && slot <= (b ?? a);
}

function compact(v: unknown): string[] {
  const b = v as Buffer;
  const out: string[] = [];
  for (let i = 0; i + 6 <= b.length; i += 6)
    out.push(`${b[i]}.${b[i + 1]}.${b[i + 2]}.${b[i + 3]}:${b.readUInt16BE(i + 4)}`);
  return out;
}
