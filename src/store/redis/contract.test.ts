/**
 * The shared SwarmStore contract (src/swarm/contract.ts) on a real Redis and a real Redis
 * Cluster (test/helpers/redis.ts says where they come from; skipped loudly when not configured),
 * and on a redis-server of this test's own with Herald's module loaded (native/redis/herald.c),
 * both through the module (HERALD.ANNOUNCE) and with redis_module = off (the Lua script).
 */
import assert from 'node:assert/strict';
import { after } from 'node:test';
import { deleteKeys, moduleRedis, redisTargets, testPrefix } from '../../../test/helpers/redis.ts';
import { swarmStoreContract } from '../../swarm/contract.ts';
import { type RedisModuleMode, RedisSwarmStore } from './redis-store.ts';

const withModule = moduleRedis();
after(() => withModule?.stop());

const targets: [string, () => Promise<string>, RedisModuleMode][] = [
  ...redisTargets.map(([name, url]): [string, () => Promise<string>, RedisModuleMode] => [
    name,
    async () => url,
    'auto',
  ]),
  ...(withModule === null
    ? []
    : ([
        ['redis with the herald module', withModule.url, 'require'],
        ['redis with the herald module, redis_module = off', withModule.url, 'off'],
      ] as [string, () => Promise<string>, RedisModuleMode][])),
];

for (const [name, urlOf, module] of targets)
  swarmStoreContract(
    name,
    async (opts) => {
      const url = await urlOf();
      const prefix = testPrefix();
      const store = new RedisSwarmStore({ ...opts, url, prefix, timeoutMs: 5000, module });
      await store.ready(10_000);
      if (module !== 'auto') assert.equal(store.module, module === 'require', 'announces go the way asked');
      return { store, dispose: () => deleteKeys(url, prefix) };
    },
    {
      skip: {
        ceilings:
          'max_peers and max_torrents bound this process’s memory; a shared store is bounded by Redis maxmemory (docs/redis.md)',
      },
    },
  );
