/** The shared SwarmStore contract (src/swarm/contract.ts) on the memory store. */
import { swarmStoreContract } from '../../swarm/contract.ts';
import { MemorySwarmStore } from './memory-store.ts';

swarmStoreContract('memory', (opts) => ({ store: new MemorySwarmStore(opts) }));
