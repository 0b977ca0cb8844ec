/**
 * Portal accounts under attack, over real HTTP on every database engine: login guessing in
 * parallel, locking a member out, the first-account race, usernames that differ only in case or
 * look like ids, and members forcing policy reloads. Other loopback addresses (127.0.0.2, ...)
 * are other clients: Linux routes all of 127/8 to the loopback interface.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { migrate } from '../../src/db/migrations.ts';
import { nodeSqliteDialect } from '../../src/db/node-sqlite.ts';
import { memberRow, type Registry } from '../../src/db/registry.ts';
import type { Database } from '../../src/db/schema.ts';
import { createTracker, type Tracker } from '../../src/index.ts';
import { PASSWORD_CONCURRENCY, PASSWORD_QUEUE } from '../../src/web/portal/security.ts';
import { type Engine, engines } from '../helpers/db.ts';
import { PortalClient } from '../helpers/portal-client.ts';

const PASSWORD = 'correct horse battery';

/** A private tracker with the portal on a fresh database, stopped (and the database dropped) after `fn`. */
async function withTracker(engine: Engine, fn: (tracker: Tracker, base: string) => Promise<void>) {
  const db = await engine.create();
  const tracker = createTracker({
    http: ['127.0.0.1:0'],
    udp: ['off'],
    mode: 'private',
    databaseUrl: db.url,
    policyRefresh: 3600,
    logLevel: 'silent',
  });
  await tracker.start();
  try {
    await fn(tracker, `http://127.0.0.1:${tracker.addresses().http[0].port}`);
  } finally {
    await tracker.stop();
    await db.drop();
  }
}

const registerFields = (username: string, invite = '') => ({
  invite,
  username,
  email: '',
  password: PASSWORD,
  password2: PASSWORD,
});

/** A new browser registers `username` with a fresh staff invitation; the answer to its form. */
async function registerInvited(reg: Registry, base: string, username: string) {
  const inv = await reg.accounts.createInvitation({
    inviterId: null,
    email: null,
    ttlSeconds: 600,
    spend: false,
  });
  const c = new PortalClient(base);
  await c.get(`/register?invite=${inv.code}`);
  return c.post('/register', registerFields(username, inv.code));
}

/** `n` copies of one request at once; their statuses. */
const parallel = async (n: number, one: (i: number) => Promise<{ status: number }>) =>
  (await Promise.all(Array.from({ length: n }, (_, i) => one(i)))).map((r) => r.status);
const count = (statuses: number[], status: number) => statuses.filter((s) => s === status).length;

/** 16 registrations without invitation at once on an empty database, as the portal makes them. */
const firstRegistrations = (reg: Registry, open: boolean) =>
  Promise.allSettled(
    Array.from({ length: 16 }, (_, i) =>
      reg.accounts.register({
        username: `racer${i}`,
        passwordHash: 'scrypt$1024$8$1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA',
        email: null,
        code: null,
        open,
      }),
    ),
  );

/** A members row for inserts that bypass the Registry's checks (fresh keys, zero counters). */
const rawMember = (username: string) => memberRow({ username });

/** The database at `url` without migrating it (a test of one migration runs them itself). */
function rawDatabase(engine: Engine, url: string): Kysely<Database> {
  if (engine.name === 'postgres')
    return new Kysely({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: url }) }) });
  return new Kysely({ dialect: nodeSqliteDialect(':memory:', { busyTimeoutMs: 1000 }) });
}

for (const engine of engines) {
  describe(`portal accounts on ${engine.name}`, () => {
    test('30 parallel wrong passwords for one member: at most the per-username limit are checked; the owner still logs in from an address it used before', async () => {
      await withTracker(engine, async (_tracker, base) => {
        const owner = new PortalClient(base, { localAddress: '127.0.0.1' });
        await owner.get('/register');
        assert.equal((await owner.post('/register', registerFields('owner'))).status, 303);
        assert.equal((await owner.login('owner', PASSWORD)).status, 303);
        await owner.get('/torrents'); // the session's CSRF token
        assert.equal((await owner.post('/logout', {})).status, 303);

        const attacker = new PortalClient(base, { localAddress: '127.0.0.2' });
        await attacker.get('/login');
        const statuses = await parallel(30, (i) =>
          attacker.post('/login', { username: 'owner', password: `guess number ${i}` }),
        );
        const checked = count(statuses, 401);
        assert.ok(checked >= 1 && checked <= 5, `${checked} passwords checked (per-username limit 5)`);
        assert.equal(count(statuses, 429), 30 - checked, 'every other attempt was refused unchecked');

        assert.equal((await owner.login('owner', PASSWORD)).status, 303, 'the owner, from its own address');
        const stranger = new PortalClient(base, { localAddress: '127.0.0.3' });
        const elsewhere = await stranger.login('owner', PASSWORD);
        assert.equal(elsewhere.status, 429, 'from an address the owner never used, the limit holds');
      });
    });

    test('30 parallel wrong logins for 30 names from one address: at most the per-address limit are checked', async () => {
      await withTracker(engine, async (_tracker, base) => {
        const c = new PortalClient(base, { localAddress: '127.0.0.4' });
        await c.get('/login');
        const statuses = await parallel(30, (i) =>
          c.post('/login', { username: `name${i}`, password: 'wrong password' }),
        );
        const checked = count(statuses, 401);
        assert.ok(checked >= 1 && checked <= 10, `${checked} checked (per-address limit 10)`);
        assert.equal(count(statuses, 429), 30 - checked);
        const other = new PortalClient(base, { localAddress: '127.0.0.5' });
        await other.get('/login');
        assert.equal((await other.post('/login', { username: 'name0', password: 'x' })).status, 401);
      });
    });

    test('a burst of logins from many addresses: at most PASSWORD_CONCURRENCY + PASSWORD_QUEUE are checked, the rest get 503 with Retry-After, none is a server error', async () => {
      await withTracker(engine, async (_tracker, base) => {
        const burst = PASSWORD_CONCURRENCY + PASSWORD_QUEUE + 80;
        // One client per address (the per-address limit is not what stops them here).
        const clients = Array.from(
          { length: burst },
          (_, i) => new PortalClient(base, { localAddress: `127.0.${1 + (i >> 8)}.${(i & 255) + 1}` }),
        );
        await Promise.all(clients.map((c) => c.get('/login')));
        const pages = await Promise.all(
          clients.map((c, i) => c.post('/login', { username: `burst${i}`, password: 'wrong password' })),
        );
        const statuses = pages.map((p) => p.status);
        const busy = pages.filter((p) => p.status === 503);
        assert.equal(
          count(statuses, 401) + busy.length,
          burst,
          `only 401 and 503: ${[...new Set(statuses)]}`,
        );
        assert.ok(busy.length >= 1, 'the burst went past the queue');
        assert.ok(count(statuses, 401) <= burst - 1);
        for (const p of busy) {
          assert.equal(p.headers.get('retry-after'), '5');
          assert.match(p.body, /busy/);
        }
        // A refused attempt was not counted: the same address may try again at once.
        const again = clients[pages.indexOf(busy[0])];
        assert.equal(
          (await again.post('/login', { username: 'burstx', password: 'wrong password' })).status,
          401,
        );
      });
    });

    test('16 simultaneous first registrations: exactly one administrator (open registration: the others are members; by invitation: refused)', async () => {
      await withTracker(engine, async (tracker) => {
        const reg = tracker.registry();
        const results = await firstRegistrations(reg, false);
        assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
        for (const r of results)
          if (r.status === 'rejected') assert.match(String(r.reason), /registration needs an invitation/);
        assert.deepEqual(
          (await reg.listMembers()).map((m) => m.role),
          ['admin'],
        );
      });
      await withTracker(engine, async (tracker) => {
        const reg = tracker.registry();
        const results = await firstRegistrations(reg, true);
        assert.deepEqual(
          results.map((r) => r.status),
          Array(16).fill('fulfilled'),
        );
        const roles = (await reg.listMembers()).map((m) => m.role).sort();
        assert.deepEqual(roles, ['admin', ...Array(15).fill('member')]);
      });
    });

    test('usernames are unique regardless of case; login and lookups ignore case', async () => {
      await withTracker(engine, async (tracker, base) => {
        const reg = tracker.registry();
        const c = new PortalClient(base);
        await c.get('/register');
        assert.equal((await c.post('/register', registerFields('Alice'))).status, 303);
        await assert.rejects(reg.addMember({ username: 'alice' }), /already exists/);
        const dup = await registerInvited(reg, base, 'ALICE');
        assert.equal(dup.status, 409);
        assert.match(dup.body, /is taken/);
        // The database itself refuses it too (a unique index on lower(username)).
        await assert.rejects(reg.db.kysely.insertInto('members').values(rawMember('aLiCe')).execute());
        assert.equal((await reg.member('ALICE')).username, 'Alice');
        assert.equal((await c.login('alice', PASSWORD)).status, 303, 'login ignores case');
      });
    });

    test('a username is never all digits (an id) nor 32 hex digits (a passkey): lookups are unambiguous', async () => {
      await withTracker(engine, async (tracker, base) => {
        const reg = tracker.registry();
        const first = await reg.addMember({ username: 'alpha' });
        let last = first;
        for (let i = 0; i < 11; i++) last = await reg.addMember({ username: `m${i}` });
        // Were "12" a name, `herald member show 12` could mean this member or the one named so.
        await assert.rejects(reg.addMember({ username: String(last.id) }), /only digits/);
        assert.equal((await reg.member(String(last.id))).username, last.username);
        await assert.rejects(reg.addMember({ username: '4242' }), /only digits/);
        await assert.rejects(reg.addMember({ username: 'DEADBEEF'.repeat(4) }), /passkey/);
        await assert.rejects(reg.addGroup('2024'), /only digits/, 'groups too are named by id or name');
        assert.equal((await reg.member(String(first.id))).username, 'alpha');
        assert.equal((await reg.member(first.passkey)).username, 'alpha');
        const r = await registerInvited(reg, base, '2024');
        assert.equal(r.status, 400);
        assert.match(r.body, /only digits/);
      });
    });

    test('upgrading: names that differ only in case, or look like an id or a passkey, are renamed; the oldest keeps its name', async () => {
      const db = await engine.create();
      const k = rawDatabase(engine, db.url);
      try {
        await migrate(k, engine.name, '0004_login_addresses');
        const names = [
          'alice',
          'Alice',
          'ALICE',
          '1234',
          'b'.repeat(32),
          'Alice-2',
          `${'x'.repeat(31)}X`,
          `${'x'.repeat(32)}`,
        ];
        for (const username of names) await k.insertInto('members').values(rawMember(username)).execute();
        await migrate(k, engine.name);
        const after = await k.selectFrom('members').select(['id', 'username']).orderBy('id').execute();
        assert.deepEqual(
          after.map((m) => m.username),
          [
            'alice',
            'Alice-2-1',
            'ALICE-3',
            '1234-4',
            `${'b'.repeat(30)}-5`,
            'Alice-2',
            `${'x'.repeat(31)}X`,
            `${'x'.repeat(30)}-8`,
          ],
        );
        await assert.rejects(k.insertInto('members').values(rawMember('alice-3')).execute());
      } finally {
        await k.destroy();
        await db.drop();
      }
    });

    test('a member keeps its 10 most recent login addresses', async () => {
      await withTracker(engine, async (tracker) => {
        const reg = tracker.registry();
        const m = await reg.addMember({ username: 'roamer' });
        for (let i = 0; i < 12; i++) await reg.accounts.rememberAddress(m.id, `192.0.2.${i}`, 1000 + i);
        const known = async (a: string) => (await reg.accounts.credentials('roamer', a))?.known;
        assert.equal(await known('192.0.2.0'), false, 'the oldest went');
        assert.equal(await known('192.0.2.1'), false);
        assert.equal(await known('192.0.2.2'), true);
        await reg.accounts.rememberAddress(m.id, '192.0.2.2', 2000); // used again: the most recent
        await reg.accounts.rememberAddress(m.id, '192.0.2.99', 2001);
        assert.equal(await known('192.0.2.2'), true);
        assert.equal(await known('192.0.2.3'), false, 'now the oldest');
        assert.equal(await known('192.0.2.99'), true);
      });
    });
  });
}
