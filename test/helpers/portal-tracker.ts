import assert from 'node:assert/strict';
import type { HeraldConfig } from '../../src/config/schema.ts';
import type { Registry } from '../../src/db/registry.ts';
import { createTracker, type Tracker } from '../../src/index.ts';
import { hashPassword } from '../../src/web/portal/security.ts';
import { linkTokenHash, newLinkToken } from '../../src/web/portal/two-factor.ts';
import type { Engine } from './db.ts';
import { PortalClient } from './portal-client.ts';

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

/**
 * A new member (or staff) with `password`, logged in through the login form from `localAddress`
 * (another loopback address is another client for the per-address limits).
 */
export async function loggedInMember(
  tracker: Tracker,
  base: string,
  opts: { name: string; password: string; role?: 'member' | 'moderator' | 'admin'; localAddress: string },
) {
  const m = await tracker.registry().addMember({
    username: opts.name,
    role: opts.role ?? 'member',
    passwordHash: await hashPassword(opts.password),
  });
  const c = new PortalClient(base, { localAddress: opts.localAddress });
  assert.equal((await c.login(opts.name, opts.password)).location, '/torrents');
  return { c, m };
}

/** A password reset link for a member, good for 10 minutes: one mailed, or handed over by staff. */
export async function resetLinkFor(reg: Registry, memberId: number): Promise<string> {
  const token = newLinkToken();
  await reg.accounts.createPasswordReset({
    memberId,
    tokenHash: linkTokenHash(token),
    expiresAt: Math.floor(Date.now() / 1000) + 600,
    by: null,
  });
  return token;
}
