/**
 * The portal's guessing limits hold across the processes that serve one database: two Herald
 * instances on one database (what `--workers N` is too: N processes on one database), on every
 * engine. A guesser who spreads wrong passwords or wrong 2FA codes over the instances gets the
 * limit once, not once per instance: the attempts are counted in the database. And the command
 * users run, `herald serve --workers 2`, on its SQLite file.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { Registry } from '../../src/db/registry.ts';
import { hashPassword } from '../../src/web/portal/security.ts';
import { newTotpSecret, recoveryHash, sealSecret, totpStep } from '../../src/web/portal/two-factor.ts';
import { PRIVATE_SERVE, startTracker } from '../e2e/tracker-process.ts';
import { engines } from '../helpers/db.ts';
import { PortalClient } from '../helpers/portal-client.ts';
import { startPortalTracker } from '../helpers/portal-tracker.ts';

const PASSWORD = 'a long enough password';
const KEY = 'test-key-of-sixteen-characters';

for (const engine of engines) {
  describe(`portal guessing limits across instances on one database (${engine.name})`, () => {
    /** Two instances on one database (SQLite: one file, as `--workers` shares it). */
    async function twoInstances(fn: (bases: [string, string], reg: Registry) => Promise<void>) {
      const dir = engine.name === 'sqlite' ? mkdtempSync(join(tmpdir(), 'herald-limits-')) : null;
      const db =
        dir === null ? await engine.create() : { url: `sqlite:${join(dir, 'h.db')}`, drop: async () => {} };
      const instances: Awaited<ReturnType<typeof startPortalTracker>>[] = [];
      try {
        for (let i = 0; i < 2; i++)
          instances.push(
            await startPortalTracker(engine, { udp: [], databaseUrl: db.url, totpEncryptionKey: KEY }),
          );
        await fn([instances[0].base, instances[1].base], instances[0].reg);
      } finally {
        for (const t of instances) await t.stop();
        await db.drop();
        if (dir !== null) rmSync(dir, { recursive: true, force: true });
      }
    }

    test('wrong passwords for one username, spread over two instances: 5 in all, then 429 on both', async () => {
      await twoInstances(async (bases, reg) => {
        await reg.addMember({ username: 'target', passwordHash: await hashPassword(PASSWORD) });
        // Each guess from another address (a botnet): only the per-username limit applies.
        let n = 0;
        const guess = (i: number, password: string) =>
          new PortalClient(bases[i % 2], { localAddress: `127.0.2.${++n}` }).login('target', password);
        for (let i = 0; i < 5; i++) assert.equal((await guess(i, `wrong ${i}`)).status, 401, `guess ${i}`);
        for (const i of [0, 1]) {
          const limited = await guess(i, PASSWORD);
          assert.equal(limited.status, 429, `instance ${i}`);
          assert.match(limited.body, /Too many failed attempts/);
        }
      });
    });

    test('wrong passwords for one username sent at once to both instances: exactly 5 are checked', async () => {
      await twoInstances(async (bases, reg) => {
        await reg.addMember({ username: 'rushed', passwordHash: await hashPassword(PASSWORD) });
        const clients = Array.from(
          { length: 12 },
          (_, i) => new PortalClient(bases[i % 2], { localAddress: `127.0.5.${i + 1}` }),
        );
        for (const c of clients) await c.get('/login');
        const statuses = await Promise.all(
          clients.map((c, i) => c.post('/login', { username: 'rushed', password: `wrong ${i}` })),
        );
        assert.deepEqual(statuses.map((r) => r.status).sort(), [
          ...Array(5).fill(401),
          ...Array(7).fill(429),
        ]);
      });
    });

    test('wrong passwords from one address, spread over two instances: 10 in all, then 429 on both', async () => {
      await twoInstances(async (bases) => {
        const clients = bases.map((b) => new PortalClient(b, { localAddress: '127.0.3.1' }));
        for (let i = 0; i < 10; i++)
          assert.equal((await clients[i % 2].login(`nobody${i}`, 'wrong')).status, 401, `guess ${i}`);
        for (const c of clients) assert.equal((await c.login('nobody-else', 'wrong')).status, 429);
      });
    });

    test('wrong 2FA codes for one member, spread over two instances: 5 in all, then 429 on both', async () => {
      await twoInstances(async (bases, reg) => {
        const m = await reg.addMember({ username: 'guarded', passwordHash: await hashPassword(PASSWORD) });
        await reg.accounts.setTotpSecret(m.id, sealSecret(newTotpSecret(), KEY));
        await reg.accounts.enableTwoFactor(m.id, Math.floor(Date.now() / 1000), totpStep(Date.now()), [
          recoveryHash('aaaa-bbbb-cccc-dddd'),
        ]);
        // The password step on the first instance; the session (in the database) works on both.
        const a = new PortalClient(bases[0], { localAddress: '127.0.4.1' });
        assert.equal((await a.login('guarded', PASSWORD)).location, '/login/2fa');
        const b = new PortalClient(bases[1], { localAddress: '127.0.4.2' });
        b.cookies = a.cookies;
        for (const c of [a, b]) assert.equal((await c.get('/login/2fa')).status, 200);
        for (let i = 0; i < 5; i++)
          assert.equal((await [a, b][i % 2].post('/login/2fa', { code: '000000' })).status, 401, `code ${i}`);
        for (const c of [a, b]) assert.equal((await c.post('/login/2fa', { code: '000000' })).status, 429);
      });
    });
  });
}

test('herald serve --workers 2: wrong passwords for one username over new connections meet the limit once', async () => {
  const t = await startTracker([...PRIVATE_SERVE, '--workers', '2'], { ready: 'herald workers running' });
  try {
    const base = `http://127.0.0.1:${t.http[0].port}`;
    // Twelve guesses, each on a connection of its own from another address: the kernel spreads
    // them over both workers (all twelve on one worker: 2 in 4096).
    const statuses: number[] = [];
    for (let i = 0; i < 12; i++)
      statuses.push(
        (await new PortalClient(base, { localAddress: `127.0.6.${i + 1}` }).login('target', 'wrong')).status,
      );
    assert.deepEqual(statuses, [...Array(5).fill(401), ...Array(7).fill(429)]);
  } finally {
    await t.stop();
  }
});
