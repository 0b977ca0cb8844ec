/**
 * Two-factor authentication over real HTTP, on every database engine (issue #16): enrolment
 * confirmed by a code, the second login step, a code good once (replay refused), recovery codes
 * good once, code guessing limited like password guessing, turning it off with a code, staff
 * forced to enrol (`require_2fa_for_staff`), staff resetting a member's 2FA, and the secret
 * encrypted at rest under `totp_encryption_key`.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createTracker } from '../../src/index.ts';
import { totpCode } from '../../src/web/portal/two-factor.ts';
import { engines } from '../helpers/db.ts';
import { PortalClient } from '../helpers/portal-client.ts';

const PASSWORD = 'a long enough password';
const KEY = 'test-key-of-sixteen-characters';

const register = (c: PortalClient, username: string, invite = '') =>
  c.post('/register', { invite, username, email: '', password: PASSWORD, password2: PASSWORD });

/** Enrols the logged-in client: returns the secret and the recovery codes. */
async function enrol(c: PortalClient): Promise<{ secret: string; codes: string[]; used: string }> {
  await c.get('/me/security');
  const setup = await c.post('/me/2fa/setup', {});
  assert.equal(setup.status, 200);
  const secret = /id="totp-secret">([A-Z2-7]+)</.exec(setup.body)![1];
  assert.match(setup.body, /<img id="totp-qr" src="data:image\/svg\+xml;base64,/);
  // A session alone cannot turn it on: the password too.
  const used = totpCode(secret, Date.now());
  assert.equal((await c.post('/me/2fa/confirm', { code: used })).status, 403);
  assert.equal((await c.post('/me/2fa/confirm', { code: '000000', current: PASSWORD })).status, 400);
  const ok = await c.post('/me/2fa/confirm', { code: used, current: PASSWORD });
  assert.equal(ok.status, 200);
  const codes = [...ok.body.matchAll(/<li>([a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4})<\/li>/g)].map(
    (m) => m[1],
  );
  assert.equal(codes.length, 10);
  return { secret, codes, used };
}

/** A fresh login up to the code step. */
async function password(c: PortalClient, username: string) {
  const r = await c.login(username, PASSWORD);
  assert.equal(r.status, 303);
  assert.equal(r.location, '/login/2fa');
  await c.get('/login/2fa');
}

const logout = (c: PortalClient) => c.post('/logout', {});

for (const engine of engines) {
  describe(`two-factor authentication (${engine.name})`, () => {
    test('enrol, log in with a code and with recovery codes, each once; limits; off; staff forced and staff reset', async () => {
      const db = await engine.create();
      const tracker = createTracker({
        http: ['127.0.0.1:0'],
        udp: [],
        mode: 'private',
        databaseUrl: db.url,
        policyRefresh: 3600,
        logLevel: 'silent',
        require2faForStaff: true,
        totpEncryptionKey: KEY,
      });
      await tracker.start();
      try {
        const base = `http://127.0.0.1:${tracker.addresses().http[0].port}`;
        const reg = tracker.registry();
        const admin = new PortalClient(base);
        await admin.get('/register');
        await register(admin, 'admin');
        assert.equal((await admin.login('admin', PASSWORD)).location, '/torrents');

        // Staff without 2FA are sent to turn it on, from every staff page.
        for (const p of ['/staff', '/staff/members', '/staff/stats'])
          assert.equal((await admin.get(p)).location, '/me/security?msg=staff2fa', p);
        const sec = await admin.get('/me/security?msg=staff2fa');
        assert.match(sec.body, /Staff pages need two-factor authentication/);
        const a = await enrol(admin);
        assert.equal((await admin.get('/staff/stats')).status, 200);

        // At rest: sealed under the key, never the secret itself.
        const row = await reg.db.kysely
          .selectFrom('members')
          .select('totp_secret')
          .where('username', '=', 'admin')
          .executeTakeFirstOrThrow();
        assert.match(row.totp_secret!, /^gcm:/);
        assert.ok(!row.totp_secret!.includes(a.secret));

        // The password alone is no login: the pending session opens no member page.
        await logout(admin);
        await password(admin, 'admin');
        assert.equal((await admin.get('/torrents')).location, '/login');
        assert.equal((await admin.get('/staff')).location, '/login');
        // The enrolment's code again: a replay, refused. Wrong codes: refused.
        assert.equal((await admin.post('/login/2fa', { code: a.used })).status, 401);
        assert.equal((await admin.post('/login/2fa', { code: 'not a code' })).status, 401);
        // The next step's code (the phone is a little ahead): logged in, staff pages open.
        const next = totpCode(a.secret, Date.now() + 30_000);
        const ok = await admin.post('/login/2fa', { code: next });
        assert.equal(ok.location, '/torrents');
        assert.equal((await admin.get('/staff/stats')).status, 200);
        // The same code in another browser at once: refused (once per step).
        const other = new PortalClient(base);
        await password(other, 'admin');
        assert.equal((await other.post('/login/2fa', { code: next })).status, 401);

        // A recovery code logs in once, typed in any case.
        await logout(admin);
        await password(admin, 'admin');
        assert.equal(
          (await admin.post('/login/2fa', { code: a.codes[0].toUpperCase() })).location,
          '/torrents',
        );
        await logout(admin);
        await password(admin, 'admin');
        assert.equal((await admin.post('/login/2fa', { code: a.codes[0] })).status, 401);
        assert.equal((await admin.post('/login/2fa', { code: a.codes[1] })).location, '/torrents');
        assert.match((await admin.get('/me/security')).body, /Recovery codes left: <strong>8</);

        // A member, from another address: code guessing meets the per-member limit (5 in 15 min).
        const inv = await reg.accounts.createInvitation({
          inviterId: null,
          email: null,
          ttlSeconds: 600,
          spend: false,
        });
        const bob = new PortalClient(base, { localAddress: '127.0.0.2' });
        await bob.get(`/register?invite=${inv.code}`);
        assert.equal((await register(bob, 'bob', inv.code)).location, '/login?msg=registered');
        assert.equal((await bob.login('bob', PASSWORD)).location, '/torrents');
        const b = await enrol(bob);
        await logout(bob);
        await password(bob, 'bob');
        for (let i = 0; i < 5; i++)
          assert.equal((await bob.post('/login/2fa', { code: '123456' })).status, 401);
        const limited = await bob.post('/login/2fa', { code: totpCode(b.secret, Date.now() + 30_000) });
        assert.equal(limited.status, 429);
        assert.match(limited.body, /Too many failed attempts/);
        // Like failed passwords: the name is limited from an address bob never logged in from.
        assert.equal(
          (await new PortalClient(base, { localAddress: '127.0.0.3' }).login('bob', PASSWORD)).status,
          429,
        );

        // Staff reset bob's 2FA: off, and his sessions end; his password alone logs in again.
        const bobId = (await reg.member('bob')).id;
        await admin.get(`/member/${bobId}`);
        assert.match((await admin.get(`/member/${bobId}`)).body, /two-factor authentication: <strong>on</);
        assert.equal(
          (await admin.post(`/staff/members/${bobId}/2fa-reset`, {})).location,
          `/member/${bobId}?msg=twofactor`,
        );
        assert.equal((await reg.accounts.twoFactor(bobId)).enabledAt, null);
        // (From his own address: the code guessing above counted against his name elsewhere.)
        const bob2 = new PortalClient(base, { localAddress: '127.0.0.2' });
        assert.equal((await bob2.login('bob', PASSWORD)).location, '/torrents');
        // A moderator cannot reset an administrator's; nobody resets their own here.
        assert.equal(
          (await admin.post(`/staff/members/${(await reg.member('admin')).id}/2fa-reset`, {})).status,
          403,
        );

        // Staff make a reset link for a member (no mail configured): it works once.
        const made = await admin.post(`/staff/members/${bobId}/reset-link`, {});
        const link = /id="reset-link">([^<]+)</.exec(made.body)![1];
        const path = new URL(link).pathname;
        const anon = new PortalClient(base);
        assert.equal((await anon.get(path)).status, 200);
        assert.equal(
          (await anon.post(path, { password: 'brand new pass', password2: 'brand new pass' })).location,
          '/login?msg=reset',
        );
        assert.equal((await bob2.get('/torrents')).location, '/login');

        // Turning 2FA off needs a code; then staff pages want it again.
        await admin.get('/me/security');
        assert.equal((await admin.post('/me/2fa/disable', { code: '000000' })).status, 401);
        assert.equal(
          (await admin.post('/me/2fa/disable', { code: a.codes[2] })).location,
          '/me/security?msg=twofactor',
        );
        assert.equal((await reg.accounts.twoFactor((await reg.member('admin')).id)).recoveryLeft, 0);
        assert.equal((await admin.get('/staff')).location, '/me/security?msg=staff2fa');
      } finally {
        await tracker.stop();
        await db.drop();
      }
    });
  });
}
