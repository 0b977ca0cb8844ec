import type { HeraldConfig } from '../../src/config/schema.ts';
import { createTracker } from '../../src/index.ts';
import type { Engine } from './db.ts';

/**
 * A private tracker for portal tests, started on a fresh database of `engine`: HTTP and UDP on
 * loopback, ephemeral ports, policy reloaded only when a test asks. `stop()` also drops the database.
 * With `config.databaseUrl`, on that database instead (another instance on it), which `stop()` keeps.
 */
export async function startPortalTracker(engine: Engine, config: Partial<HeraldConfig> = {}) {
  const db =
    config.databaseUrl === undefined
      ? await engine.create()
      : { url: config.databaseUrl, drop: async () => {} };
  const tracker = createTracker({
    http: ['127.0.0.1:0'],
    udp: ['127.0.0.1:0'],
    mode: 'private',
    databaseUrl: db.url,
    policyRefresh: 3600,
    logLevel: 'silent',
    ...config,
  });
  await tracker.start();
  return {
    tracker,
    reg: tracker.registry(),
    base: `http://127.0.0.1:${tracker.addresses().http[0].port}`,
    async stop() {
      await tracker.stop();
      await db.drop();
    },
  };
}
