/** The shared SwarmStore contract (src/swarm/contract.ts) on the shared-memory store. */
import { test } from 'node:test';
import { swarmStoreContract } from '../../swarm/contract.ts';
import { loadSharedSwarms, SharedMemorySwarmStore } from './shared-memory-store.ts';

if (loadSharedSwarms() !== null)
  swarmStoreContract('shared memory', (opts) => ({ store: new SharedMemorySwarmStore(opts) }));
else if (process.env.HERALD_REQUIRE_NATIVE === '1')
  test('SwarmStore contract: shared memory', () => {
    throw new Error('the http_batch addon (with shared swarms) is not built');
  });
else test('SwarmStore contract: shared memory', { skip: 'the http_batch addon is not built' }, () => {});
