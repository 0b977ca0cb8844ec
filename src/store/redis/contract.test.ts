/**
 * The shared SwarmStore contract (src/swarm/contract.ts) on a real Redis and a real Redis
 * Cluster (test/helpers/redis.ts says where they come from; skipped loudly when not configured).
 */
import { deleteKeys, redisTargets, testPrefix } from '../../../test/helpers/redis.ts';
import { swarmStoreContract } from '../../swarm/contract.ts';
import { RedisSwarmStore } from './redis-store.ts';

for (const [name, url] of redisTargets)
  swarmStoreContract(
    name,
    async (opts) => {
      const prefix = testPrefix();
      const store = new RedisSwarmStore({ ...opts, url, prefix, timeoutMs: 5000 });
      await store.ready(10_000);
      return { store, dispose: () => deleteKeys(url, prefix) };
    },
    {
      skip: {
        ceilings:
          'max_peers and max_torrents bound this process’s memory; a shared store is bounded by Redis maxmemory (docs/redis.md)',
      },
    },
  );
