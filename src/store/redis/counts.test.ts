/**
 * The Redis store keeps a swarm's counts in its meta hash and each peer's state in its meta
 * value's flag byte (scripts.ts), beside the peer sets they describe. After a random run of
 * announces (every event, state switches, both families, concurrent batches) and sweeps, on a real
 * Redis and a real Cluster, they must still be exactly what the sets say: the counts the sets'
 * cardinalities, a meta value for every member and none for a non-member, its flag the set it is
 * in, the bucket statistics the sums, and the bucket index the swarms that have peers.
 * On a redis-server of the test's own with Herald's module loaded, the same through the module
 * (HERALD.ANNOUNCE), through the Lua script (redis_module = off), and through both at once: a
 * module instance and a Lua instance sharing the swarms, their announces meeting in them.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import {
  deleteKeys,
  moduleRedis,
  peerAnnounce,
  redisTargets,
  testPrefix,
} from '../../../test/helpers/redis.ts';
import type { AnnounceEvent, AnnounceRequest } from '../../core/types.ts';
import { endpointOf } from '../../swarm/contract.ts';
import { bucketOf } from './records.ts';
import { type RedisModuleMode, RedisSwarmStore } from './redis-store.ts';

/** A small deterministic generator (the run is the same every time). */
function rng(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (Math.imul(x ^ (x >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    return x / 2 ** 32;
  };
}

const withModule = moduleRedis();
after(() => withModule?.stop());
const moduleUrl = withModule === null ? null : await withModule.url();

/** [name, url, the redis_module of each instance the run announces through]. */
const targets: [string, string, RedisModuleMode[]][] = [
  ...redisTargets.map(([name, url]): [string, string, RedisModuleMode[]] => [name, url, ['auto']]),
  ...(moduleUrl === null
    ? []
    : ([
        ['redis with the herald module', moduleUrl, ['require']],
        ['redis with the herald module, redis_module = off', moduleUrl, ['off']],
        ['redis with the herald module, a module instance and a Lua instance', moduleUrl, ['require', 'off']],
      ] as [string, string, RedisModuleMode[]][])),
];

for (const [name, url, modes] of targets)
  describe(`redis store counts (${name})`, () => {
    const prefix = testPrefix();
    after(() => deleteKeys(url, prefix));

    test('counts, flags, statistics and index agree with the peer sets after a random run', async () => {
      const peerTimeout = 100;
      const stores = modes.map(
        (module) => new RedisSwarmStore({ url, prefix, timeoutMs: 5000, peerTimeout, module }),
      );
      const store = stores[0];
      for (const s of stores) await s.ready(10_000);
      assert.deepEqual(
        stores.map((s) => s.module),
        modes.map((m) => (m === 'auto' ? store.module : m === 'require')),
      );
      try {
        const random = rng(14);
        // 12 swarms, four of them in one bucket (one batch call carries several of a bucket).
        const hashes = Array.from({ length: 12 }, (_, i) => {
          const h = new Uint8Array(20).fill(i + 1);
          if (i < 4) h[0] = h[1] = 7;
          return h;
        });
        let now = 1000;
        for (let round = 0; round < 60; round++) {
          now += Math.floor(random() * 20);
          // One turn's announces leave together (ANNOUNCE_BATCH).
          const calls = Array.from({ length: 40 }, () => {
            const family = random() < 0.7 ? 4 : 6;
            const req: AnnounceRequest = {
              infoHash: hashes[Math.floor(random() * hashes.length)],
              peerId: new Uint8Array(20).fill(Math.floor(random() * 250)),
              family,
              ...endpointOf(Math.floor(random() * 30), family),
              uploaded: 0,
              downloaded: 0,
              left: random() < 0.4 ? 0 : 5,
              event: Math.floor(random() * 4) as AnnounceEvent,
              numWant: Math.floor(random() * 8),
              wantPeerIds: random() < 0.3,
            };
            // Each announce through one of the instances (with two, their batches interleave).
            const through = stores[Math.floor(random() * stores.length)];
            return through.announce(req, now - Math.floor(random() * 5));
          });
          for (const r of await Promise.all(calls)) assert.ok(!(r instanceof Error), String(r));
          if (round % 7 === 6) await store.sweep(now, 1_000_000);
        }
        if (stores.length > 1) {
          // The instances meet in one swarm: each sees the other's peers, counted exactly.
          const h = new Uint8Array(20).fill(0xc3);
          const at = (s: RedisSwarmStore, peer: number, left: number) =>
            s.announce(peerAnnounce(h, peer, { left, event: 2 as AnnounceEvent, numWant: 50 }), now);
          for (let p = 1; p <= 6; p++)
            assert.ok(!((await at(stores[p % 2], p, p <= 2 ? 0 : 5)) instanceof Error));
          for (const [k, s] of stores.entries()) {
            const r = await at(s, 100 + k, 5);
            assert.ok(!(r instanceof Error));
            assert.equal(r.complete, 2);
            assert.equal(r.incomplete, 4 + k, 'the other instance’s peers too');
            assert.equal(r.peerCount, 6 + k);
          }
          hashes.push(h);
        }
        await check(store, hashes);
        // Everything expires: every swarm is freed, and the statistics are back to zero.
        await store.sweep(now + peerTimeout + 1, 1_000_000);
        await check(store, hashes);
        assert.deepEqual(await stores[stores.length - 1].stats(), {
          torrents: 0,
          peers: 0,
          seeders: 0,
          leechers: 0,
          peers4: 0,
          peers6: 0,
        });
      } finally {
        for (const s of stores) await s.close();
      }
    });

    test('a swarm keeps peer ids only from its first request that asks for them', async () => {
      const store = new RedisSwarmStore({ url, prefix, timeoutMs: 5000, peerTimeout: 100, module: modes[0] });
      await store.ready(10_000);
      try {
        const h = new Uint8Array(20).fill(0xa5);
        const meta = Buffer.concat([
          Buffer.from(`${prefix}:{${bucketOf(h)}}:`, 'latin1'),
          h,
          Buffer.from(':m'),
        ]);
        const announce = (peer: number, wantPeerIds: boolean) =>
          store.announce(peerAnnounce(h, peer, { wantPeerIds }), 1000);
        for (let p = 1; p <= 5; p++) await announce(p, false);
        // Only compact (or UDP) requests so far: each peer's meta value is its flag byte alone.
        // The sizes of the peers' meta values (fields of 6 bytes: IPv4 endpoints).
        const sizes = async () => {
          const [names, vals] = await Promise.all([
            store.client.hkeysBuffer(meta),
            store.client.hvalsBuffer(meta),
          ]);
          return vals.filter((_, k) => names[k].length === 6).map((v) => v.length);
        };
        assert.deepEqual(await sizes(), [1, 1, 1, 1, 1]);
        const first = await announce(6, true);
        assert.ok(!(first instanceof Error));
        assert.equal(first.peerCount, 5);
        assert.deepEqual([...(first.peerIdKnown ?? [])], [0, 0, 0, 0, 0], 'ids announced before are unknown');
        // From then on every peer that announces keeps its id, and a compact=0 request gets it.
        await announce(2, false);
        const next = await announce(7, true);
        assert.ok(!(next instanceof Error));
        const known: number[] = [];
        for (let i = 0; i < next.peerCount; i++)
          if (next.peerIdKnown?.[i] === 1) known.push(next.peerIds?.[i * 20] ?? -1);
        assert.deepEqual(known.sort(), [2, 6]);
        assert.deepEqual((await sizes()).sort(), [1, 1, 1, 1, 21, 21, 21]);
      } finally {
        await store.close();
      }
    });
  });

async function check(store: RedisSwarmStore, hashes: Uint8Array[]): Promise<void> {
  const c = store.client;
  const fields = ['4s', '4l', '6s', '6l'];
  const buckets = new Map<number, number[]>();
  for (const h of hashes) {
    const b = bucketOf(h);
    const base = Buffer.from(`${store.prefix}:{${b}}:`, 'latin1');
    const key = (suffix: string) => Buffer.concat([base, h, Buffer.from(`:${suffix}`)]);
    // Binary fields: read them as buffers (HKEYS and HVALS list a hash in the same order).
    const [names, vals] = await Promise.all([c.hkeysBuffer(key('m')), c.hvalsBuffer(key('m'))]);
    const meta: Record<string, Buffer> = {};
    for (const [k, f] of names.entries()) meta[f.toString('latin1')] = vals[k];
    const sums = buckets.get(b) ?? [0, 0, 0, 0, 0];
    buckets.set(b, sums);
    let members = 0;
    for (const [i, f] of fields.entries()) {
      const eps = await c.zrangeBuffer(key(f), 0, -1);
      members += eps.length;
      sums[i + 1] += eps.length;
      assert.equal(Number(meta[f]?.toString() ?? 0), eps.length, `${f} count of swarm ${h[2]}`);
      for (const ep of eps) {
        const v = meta[ep.toString('latin1')];
        // The flag byte, then the peer id once the swarm keeps them (its first compact=0 request).
        assert.ok(
          v !== undefined && (v.length === 1 || v.length === 21),
          `a meta value for a member of ${f}`,
        );
        assert.equal(v[0] >= 50, f.endsWith('s'), `the flag of a member of ${f}`);
      }
    }
    const values = Object.keys(meta).filter((k) => k.length === 6 || k.length === 18);
    assert.equal(values.length, members, `meta values of swarm ${h[2]}: one per member`);
    const indexed = (await c.zscore(Buffer.concat([base, Buffer.from('i')]), Buffer.from(h))) !== null;
    assert.equal(indexed, members > 0, `swarm ${h[2]} in its bucket index while it has peers`);
    if (members > 0) sums[0]++;
    else assert.equal(Object.keys(meta).length, 0, 'a swarm without peers is freed');
  }
  for (const [b, sums] of buckets) {
    const n = await c.hmget(`${store.prefix}:{${b}}:n`, 't', ...fields);
    assert.deepEqual(
      n.map((x) => Number(x ?? 0)),
      sums,
      `bucket ${b} statistics`,
    );
  }
}
