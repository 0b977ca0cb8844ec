/** The shared SwarmStore contract (src/swarm/contract.ts) on the shared-memory store. */
import { swarmStoreContract } from '../../swarm/contract.ts';
import { loadSharedSwarms, SharedMemorySwarmStore } from './shared-memory-store.ts';

if (loadSharedSwarms() === null && process.env.HERALD_REQUIRE_NATIVE === '1')
  throw new Error('the http_batch addon (with shared swarms) is not built');
if (loadSharedSwarms() !== null)
  swarmStoreContract('shared memory', (opts) => ({ store: new SharedMemorySwarmStore(opts) }));
