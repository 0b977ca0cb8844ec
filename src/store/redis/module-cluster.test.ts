/**
 * Herald's Redis module on a Redis Cluster of the test's own (three masters with a replica each,
 * every node loading the module): the store contract through HERALD.ANNOUNCE; a record whose slot
 * another master serves is skipped untouched (the module's view of its slots); the replicas apply
 * what the module writes (it replicates the command), so a master's failover keeps its swarms.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import {
  freePort,
  MODULE_PATH,
  moduleAvailable,
  ownCluster,
  peerAnnounce,
  testPrefix,
} from '../../../test/helpers/redis.ts';
import type { AnnounceEvent, AnnounceRequest } from '../../core/types.ts';
import { swarmStoreContract } from '../../swarm/contract.ts';
import { keySlot } from './connect.ts';
import { announceRecord, bucketOf } from './records.ts';
import { RedisSwarmStore } from './redis-store.ts';

const available = moduleAvailable();

function request(h: Uint8Array, peer: number, left: number): AnnounceRequest {
  return peerAnnounce(h, peer, { left, event: 2 as AnnounceEvent });
}

/** The masters' ports and the slot ranges each serves (CLUSTER SLOTS). */
async function masters(port: number): Promise<Map<number, [number, number][]>> {
  const c = new Redis({ port, host: '127.0.0.1' });
  try {
    const slots = (await c.cluster('SLOTS')) as unknown as [number, number, [string, number]][];
    const out = new Map<number, [number, number][]>();
    for (const [lo, hi, [, p]] of slots) out.set(p, [...(out.get(p) ?? []), [lo, hi]]);
    return out;
  } finally {
    c.disconnect();
  }
}

async function until(what: string, ms: number, check: () => Promise<boolean>): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check().catch(() => false))) {
    if (Date.now() > end) assert.fail(`${what}: not within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

describe('herald redis module on a Redis Cluster', {
  skip: available ? false : 'no module (see above)',
}, () => {
  let cluster: Awaited<ReturnType<typeof ownCluster>>;
  const ports: number[] = [];
  before(async () => {
    for (let p = await freePort(7101, 10_000); ports.length < 6; p++)
      if ((await freePort(p, 10_000)) === p) ports.push(p);
    cluster = await ownCluster(ports, ['--loadmodule', MODULE_PATH]);
    // The module reads the slots it serves every 100 ms.
    await new Promise((resolve) => setTimeout(resolve, 300));
  });
  after(() => cluster?.stop());

  swarmStoreContract(
    'redis cluster with the herald module',
    async (opts) => {
      const store = new RedisSwarmStore({
        ...opts,
        url: cluster.url,
        prefix: testPrefix(),
        timeoutMs: 5000,
        module: 'auto',
      });
      await store.ready(10_000);
      // Found on every master at connection (redis_module = auto).
      assert.equal(store.module, true);
      return { store };
    },
    {
      skip: {
        ceilings:
          'max_peers and max_torrents bound this process’s memory; a shared store is bounded by Redis maxmemory (docs/redis.md)',
      },
    },
  );

  test('a record whose slot is on another master is skipped, untouched; the others applied', async () => {
    const map = await masters(ports[0]);
    const [here, ranges] = [...map.entries()][0];
    const serves = (b: number) => {
      const s = keySlot(String(b));
      return ranges.some(([lo, hi]) => s >= lo && s <= hi);
    };
    const hashOf = (mine: boolean) => {
      for (let x = 0; ; x++) {
        const h = new Uint8Array(20).fill(0x11);
        h[0] = x;
        if (serves(bucketOf(h)) === mine) return h;
      }
    };
    const [mine, other] = [hashOf(true), hashOf(false)];
    const prefix = 'skip';
    const rec = (h: Uint8Array) => announceRecord(request(h, 1, 5), bucketOf(h), 1000, 0.5, null, 100);
    const c = new Redis({ port: here, host: '127.0.0.1' });
    try {
      const r = (await c.callBuffer(
        'HERALD.ANNOUNCE',
        `${prefix}:{${bucketOf(mine)}}:i`,
        prefix,
        Buffer.concat([rec(other), rec(mine)]),
        '0',
      )) as Buffer;
      // Two headers of 24 bytes (no peers, no ids, no baseline): skipped, then done.
      assert.equal(r.length, 48);
      assert.deepEqual([r[0], r[24]], [3, 0]);
      assert.deepEqual(
        await c.keys(`${prefix}:{${bucketOf(other)}}:*`),
        [],
        'nothing written for the other slot',
      );
      assert.equal(await c.zcard(`${prefix}:{${bucketOf(mine)}}:i`), 1);
    } finally {
      c.disconnect();
    }
  });

  test('a replica promoted by a failover serves its new slots through the module at once', async () => {
    const map = await masters(ports[0]);
    const nodes = ports.map((port) => new Redis({ port, host: '127.0.0.1' }));
    try {
      // A replica, and a bucket of its master's slots.
      let replica: Redis | undefined;
      let master = 0;
      for (const n of nodes) {
        const info = await n.info('replication');
        const m = /master_port:(\d+)/.exec(info);
        if (info.includes('role:slave') && m !== null) {
          replica = n;
          master = Number(m[1]);
          break;
        }
      }
      assert.ok(replica !== undefined);
      const ranges = map.get(master) ?? [];
      const h = new Uint8Array(20).fill(0x21);
      for (let x = 0; ; x++) {
        h[0] = x;
        const s = keySlot(String(bucketOf(h)));
        if (ranges.some(([lo, hi]) => s >= lo && s <= hi)) break;
      }
      await replica.cluster('FAILOVER');
      for (let i = 0; !(await replica.info('replication')).includes('role:master'); i++) {
        assert.ok(i < 500, 'the replica did not take over');
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      // At once (before the module's 100 ms re-read of its slots): applied, not skipped.
      const prefix = 'promoted';
      const r = (await replica.callBuffer(
        'HERALD.ANNOUNCE',
        `${prefix}:{${bucketOf(h)}}:i`,
        prefix,
        announceRecord(request(h, 1, 5), bucketOf(h), 1000, 0.5, null, 100),
        '0',
      )) as Buffer;
      assert.equal(r[0], 0, "done (3 would be skipped as another master's slot)");
      // Before the next test: every node agrees on the new slot map (right after a failover a
      // node may still route by the old one, and an announce it takes for a slot its module no
      // longer counts as its own gets the retryable "storage unavailable": see docs/redis.md).
      await until('every node agrees on the slot map after the failover', 15_000, async () => {
        const views = await Promise.all(
          ports.map(async (p) => JSON.stringify([...(await masters(p))].sort())),
        );
        return views.every((v) => v === views[0]) && (await masters(ports[0])).has(replica!.options.port!);
      });
    } finally {
      for (const n of nodes) n.disconnect();
    }
  });

  test('replicas apply what the module writes; a failed-over master keeps its swarms', async () => {
    const store = new RedisSwarmStore({
      url: cluster.url,
      prefix: 'failover',
      timeoutMs: 2000,
      peerTimeout: 600,
      module: 'require',
    });
    await store.ready(10_000);
    try {
      assert.equal(store.module, true);
      // 48 swarms over the buckets (so over the three masters), 3 peers each, one a seeder.
      const hashes = Array.from({ length: 48 }, (_, i) => {
        const h = new Uint8Array(20).fill(0x5a);
        h[0] = i * 5;
        return h;
      });
      const now = Math.floor(Date.now() / 1000);
      const answers = await Promise.all(
        hashes.flatMap((h) => [1, 2, 3].map((p) => store.announce(request(h, p, p === 1 ? 0 : 5), now))),
      );
      for (const a of answers) assert.ok(!(a instanceof Error), String(a));
      const before = await store.scrape(hashes);
      assert.ok(before.every((e) => e.complete === 1 && e.incomplete === 2));
      // Each replica has what its master has (WAIT: the master's writes reached its replica).
      const nodes = ports.map((port) => new Redis({ port, host: '127.0.0.1' }));
      try {
        for (const n of nodes) {
          const info = await n.info('replication');
          if (!info.includes('role:master')) continue;
          assert.equal(await n.call('WAIT', 1, 5000), 1);
          const replica = nodes.find(
            (m) => m.options.port === Number(/slave0:ip=[^,]*,port=(\d+)/.exec(info)?.[1]),
          );
          assert.ok(replica !== undefined);
          assert.equal(
            await replica.dbsize(),
            await n.dbsize(),
            `replica of ${n.options.port}: same number of keys`,
          );
        }
      } finally {
        for (const n of nodes) n.disconnect();
      }
      // The master holding swarm 0 dies; its replica takes over with the swarms.
      const slot = keySlot(String(bucketOf(hashes[0])));
      const map = await masters(ports.find((p) => p !== ports[0]) ?? ports[1]);
      const owner = [...map.entries()].find(([, rs]) => rs.some(([lo, hi]) => slot >= lo && slot <= hi))?.[0];
      const node = cluster.nodes.find((n) => n.port === owner);
      assert.ok(node !== undefined);
      await node.kill();
      await until('the swarms served again after the failover', 30_000, async () => {
        const after = await store.scrape(hashes);
        return after.every((e) => e.complete === 1 && e.incomplete === 2);
      });
      // And announces through the module go on on the new master.
      const a = await store.announce(request(hashes[0], 4, 5), now + 1);
      assert.ok(!(a instanceof Error), String(a));
      assert.equal(a.complete, 1);
      assert.equal(a.incomplete, 2);
    } finally {
      await store.close();
    }
  });
});
