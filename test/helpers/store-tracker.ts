/**
 * An in-process tracker for one `describe` on one swarm store: 'memory', or a Redis URL under a
 * key prefix of its own (and the UDP secret a shared store asks for). Started before the suite's
 * tests, stopped after them, its Redis keys deleted.
 */
import { after, before } from 'node:test';
import type { HeraldConfig } from '../../src/config/schema.ts';
import type { Registry } from '../../src/db/registry.ts';
import { createTracker, type Tracker } from '../../src/index.ts';
import { deleteKeys, testPrefix } from './redis.ts';

export interface StoreTracker {
  t: Tracker;
  reg: Registry;
  /** The first HTTP and UDP listeners' ports (0 when there is none). */
  http: number;
  udp: number;
}

/**
 * The configuration of an in-process private tracker: one HTTP port on 127.0.0.1 and no UDP, its
 * database in memory, accounting flushed and policy reloaded only when a test asks (both hourly),
 * no log. `extra` adds keys or overrides these (`databaseUrl` for another engine, `udp` to listen).
 */
export function privateTrackerConfig(extra: Partial<HeraldConfig> = {}): Partial<HeraldConfig> {
  return {
    http: ['127.0.0.1:0'],
    udp: [],
    mode: 'private',
    databaseUrl: 'sqlite::memory:',
    flushInterval: 3600,
    policyRefresh: 3600,
    logLevel: 'silent',
    ...extra,
  };
}

/** A private tracker on one HTTP port (no UDP), its database in memory, flushing and reloading only when told. */
export const PRIVATE_ON_HTTP: Partial<HeraldConfig> = privateTrackerConfig();

export function trackerOnStore(storeUrl: string, config: Partial<HeraldConfig>): StoreTracker {
  const prefix = testPrefix();
  const s = { http: 0, udp: 0 } as StoreTracker;
  before(async () => {
    s.t = createTracker({
      logLevel: 'silent',
      ...config,
      store: storeUrl,
      redisPrefix: prefix,
      udpSecret: 'ab'.repeat(32),
    });
    await s.t.start();
    const a = s.t.addresses();
    s.http = a.http[0]?.port ?? 0;
    s.udp = a.udp[0]?.port ?? 0;
    s.reg = s.t.registry();
  });
  after(async () => {
    await s.t.stop();
    if (storeUrl !== 'memory') await deleteKeys(storeUrl, prefix);
  });
  return s;
}
