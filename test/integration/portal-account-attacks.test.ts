/**
 * Attacks on the portal's account features (issue #16) over real HTTP, on every database engine:
 * a password reset link made before the member changed their password, staff powers on member
 * pages while `require_2fa_for_staff` wants 2FA first, and freeleech tokens spent on a torrent
 * the member may not see or that is free for everyone already.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Tracker } from '../../src/index.ts';
import { recoveryHash } from '../../src/web/portal/two-factor.ts';
import { engines } from '../helpers/db.ts';
import { PortalClient } from '../helpers/portal-client.ts';
import { loggedInMember, resetLinkFor, startPortalTracker } from '../helpers/portal-tracker.ts';

const PASSWORD = 'a long enough password';
const API_TOKEN = 'account-attacks-api-token-0123456789';

for (const engine of engines) {
  describe(`portal account attacks (${engine.name})`, () => {
    let tracker: Tracker;
    let stop: () => Promise<void>;
    let base = '';
    let n = 0;

    before(async () => {
      ({ tracker, base, stop } = await startPortalTracker(engine, {
        udp: [],
        require2faForStaff: true,
        freeleechTokenDays: 3,
        bonusTokenPrice: 1000,
        bonusInvitePrice: 1000,
        apiToken: API_TOKEN,
      }));
    });

    after(async () => {
      await stop();
    });

    /** A new member (or staff), logged in from its own loopback address. */
    const member = (name: string, role: 'member' | 'moderator' | 'admin' = 'member') =>
      loggedInMember(tracker, base, { name, password: PASSWORD, role, localAddress: `127.0.1.${++n}` });

    test('a reset link made before the member changed their password no longer works', async () => {
      const reg = tracker.registry();
      const { c, m } = await member('resetme');
      // A link somebody holds (a staff link handed over, a mail in a mailbox read by someone else).
      const token = await resetLinkFor(reg, m.id);
      const anon = new PortalClient(base);
      assert.equal((await anon.get(`/reset/${token}`)).status, 200);
      // The member, worried, changes the password.
      await c.get(`/member/${m.id}`);
      assert.equal(
        (
          await c.post('/me/password', {
            current: PASSWORD,
            password: 'another good one',
            password2: 'another good one',
          })
        ).location,
        '/login?msg=password',
      );
      // The old link must not set the password back over the member's new one.
      assert.equal((await anon.get(`/reset/${token}`)).status, 404);
      const used = await anon.post(`/reset/${token}`, {
        password: 'the thief wins',
        password2: 'the thief wins',
      });
      assert.equal(used.status, 404);
      assert.equal((await new PortalClient(base).login('resetme', 'another good one')).location, '/torrents');
    });

    test('require_2fa_for_staff: staff without 2FA get no staff powers on member pages either', async () => {
      const reg = tracker.registry();
      const { c: mod, m } = await member('mod2fa', 'moderator');
      const t = await reg.addTorrent({
        infoHash: 'cd'.repeat(20),
        infoHashV2: null,
        name: 'staff only',
        size: 1,
        fileCount: 1,
        restricted: true,
      });
      // Without 2FA: no free invitation (a member with no invites left is refused) ...
      await mod.get('/invites');
      const inv = await mod.post('/invites', { email: '' });
      assert.equal(inv.status, 400);
      assert.match(inv.body, /no invites left/);
      assert.equal((await reg.accounts.listInvitations({ inviterId: m.id })).length, 0);
      // ... and a restricted torrent is as closed as for any member without a grant.
      const page = await mod.get(`/torrent/${t.id}`);
      assert.equal(page.status, 200);
      assert.doesNotMatch(page.body, new RegExp(t.info_hash!));
      assert.equal((await mod.get(`/torrent/${t.id}/download`)).status, 403);
      // Nor through the feed key the password alone shows on the profile.
      assert.equal((await new PortalClient(base).get(`/rss/download/${t.id}?key=${m.feed_key}`)).status, 403);
      // With 2FA on, the same session has them.
      await reg.accounts.setTotpSecret(m.id, 'plain:JBSWY3DPEHPK3PXP');
      await reg.accounts.enableTwoFactor(m.id, Math.floor(Date.now() / 1000), 1, ['x']);
      assert.match((await mod.get(`/torrent/${t.id}`)).body, new RegExp(t.info_hash!));
      await mod.get('/invites');
      assert.equal((await mod.post('/invites', { email: '' })).status, 200);
      assert.equal((await reg.accounts.listInvitations({ inviterId: m.id })).length, 1);
    });

    test('a freeleech token is not spent on a torrent the member may not download, or one free for everyone', async () => {
      const reg = tracker.registry();
      const { c, m } = await member('spender');
      await reg.freeleech.giveTokens(m, 2, { note: null, by: null, at: Math.floor(Date.now() / 1000) });
      const add = (name: string, hash: string, o: { restricted?: boolean; downloadFactor?: number } = {}) =>
        reg.addTorrent({ infoHash: hash.repeat(20), infoHashV2: null, name, size: 1, fileCount: 1, ...o });
      const hidden = await add('not for you', 'e1', { restricted: true });
      const free = await add('free for all', 'e2', { downloadFactor: 0 });
      const featured = await add('featured', 'e3');
      const plain = await add('plain', 'e4');
      const now = Math.floor(Date.now() / 1000);
      await reg.promotions.feature(
        featured.id,
        { startsAt: now - 60, endsAt: now + 86400, uploadFactor: 100 },
        null,
        now,
      );
      await tracker.policy.refresh();
      const tokens = async () => (await reg.member(m.id)).freeleech_tokens;
      await c.get(`/torrent/${plain.id}`);
      // Restricted, no grant: the torrent page offers no token; a hand-made form spends none.
      const refused = await c.post(`/torrent/${hidden.id}/token`, {});
      assert.equal(refused.status, 403);
      assert.equal(await tokens(), 2);
      assert.match((await c.get(`/torrent/${plain.id}`)).body, /Use a freeleech token/);
      for (const t of [free, featured]) {
        assert.doesNotMatch((await c.get(`/torrent/${t.id}`)).body, /Use a freeleech token/);
        const r = await c.post(`/torrent/${t.id}/token`, {});
        assert.equal(r.status, 409, t.name);
        assert.match(r.body, /freeleech for everyone/);
        assert.equal(await tokens(), 2);
      }
      assert.equal(
        (await c.post(`/torrent/${plain.id}/token`, {})).location,
        `/torrent/${plain.id}?msg=token`,
      );
      assert.equal(await tokens(), 1);
    });

    test('the API spends no freeleech token on a restricted torrent the member holds no grant on (as the portal)', async () => {
      const reg = tracker.registry();
      const now = Math.floor(Date.now() / 1000);
      const spend = async (who: string, torrent: number) => {
        const res = await fetch(`${base}/api/members/${who}/tokens/spend`, {
          method: 'POST',
          headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json' },
          body: JSON.stringify({ torrent }),
        });
        return {
          status: res.status,
          body: (await res.json()) as { error?: string; freeleech_tokens?: number },
        };
      };
      const add = (name: string, hash: string) =>
        reg.addTorrent({
          infoHash: hash.repeat(20),
          infoHashV2: null,
          name,
          size: 1,
          fileCount: 1,
          restricted: true,
        });
      const locked = await add('api locked', 'f1');
      const granted = await add('api granted', 'f2');
      const m = await reg.addMember({ username: 'api-spender' });
      // Staff without 2FA have no staff powers while require_2fa_for_staff is on (as on the portal).
      const mod = await reg.addMember({ username: 'api-mod', role: 'moderator' });
      for (const who of [m, mod]) await reg.freeleech.giveTokens(who, 2, { note: null, by: null, at: now });
      await reg.grant({ torrent: granted.id, member: m.id });
      for (const who of [m, mod]) {
        const refused = await spend(who.username, locked.id);
        assert.equal(refused.status, 403, JSON.stringify(refused.body));
        assert.match(refused.body.error ?? '', /restricted/);
        assert.equal((await reg.member(who.id)).freeleech_tokens, 2, who.username);
        assert.deepEqual(await reg.freeleech.list({ member: who.id, source: 'token' }), []);
      }
      const ok = await spend(m.username, granted.id);
      assert.equal(ok.status, 201, JSON.stringify(ok.body));
      assert.equal(ok.body.freeleech_tokens, 1);
    });

    test('promotion forms: a date and time that does not exist is refused, not rolled over', async () => {
      const reg = tracker.registry();
      const { c, m } = await member('eventstaff', 'admin');
      await reg.accounts.setTotpSecret(m.id, 'plain:JBSWY3DPEHPK3PXP');
      await reg.accounts.enableTwoFactor(m.id, Math.floor(Date.now() / 1000), 1, ['x']);
      assert.equal((await c.get('/staff/promotions')).status, 200);
      for (const [starts, ends] of [
        ['2027-02-31T10:00', '2027-03-10T10:00'],
        ['2027-03-01T24:00', '2027-03-10T10:00'],
        ['2027-03-01T10:00', '2027-03-10T10:60'],
      ]) {
        const r = await c.post('/staff/promotions/events', {
          name: 'Spring',
          starts_at: starts,
          ends_at: ends,
          freeleech: '1',
          upload_factor: '100',
        });
        assert.equal(r.status, 400, `${starts} ${ends}`);
        assert.match(r.body, /a date and time \(UTC\) that exists/);
      }
      assert.equal((await reg.promotions.events({ all: true })).length, 0);
      const ok = await c.post('/staff/promotions/events', {
        name: 'Spring',
        starts_at: '2027-02-28T23:59',
        ends_at: '2027-03-10T10:00:30',
        freeleech: '1',
        upload_factor: '100',
      });
      assert.equal(ok.location, '/staff/promotions?msg=saved');
      const [e] = await reg.promotions.events({ all: true });
      assert.equal(e.starts_at, Date.parse('2027-02-28T23:59:00Z') / 1000);
      assert.equal(e.ends_at, Date.parse('2027-03-10T10:00:30Z') / 1000);
    });

    test('the same points, token or recovery code cannot be spent twice by requests at once', async () => {
      const reg = tracker.registry();
      const { c, m } = await member('racer');
      const at = Math.floor(Date.now() / 1000);
      // 10 points: one invite's worth. Eight purchases at once: one is bought.
      await reg.bonus.give(m, 1000, { note: null, by: null, at });
      await c.get('/bonus');
      const buys = await Promise.all(
        Array.from({ length: 8 }, () => c.post('/bonus/buy', { item: 'invite', count: '1' })),
      );
      assert.equal(buys.filter((r) => r.location === '/bonus?msg=bought').length, 1);
      assert.equal(buys.filter((r) => r.status === 409).length, 7);
      assert.equal(await reg.bonus.balance(m.id), 0);
      assert.equal((await reg.member(m.id)).invites, 1);
      // One token, eight torrents at once: one is free for the member.
      await reg.freeleech.giveTokens(m, 1, { note: null, by: null, at });
      const ts = await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          reg.addTorrent({
            infoHash: (0xa0 + i).toString(16).repeat(20),
            infoHashV2: null,
            name: `race ${i}`,
            size: 1,
            fileCount: 1,
          }),
        ),
      );
      const spends = await Promise.all(ts.map((t) => c.post(`/torrent/${t.id}/token`, {})));
      assert.equal(spends.filter((r) => r.status === 303).length, 1);
      assert.equal((await reg.member(m.id)).freeleech_tokens, 0);
      assert.equal((await reg.freeleech.list({ member: m.id, source: 'token' })).length, 1);
      // A recovery code at once in eight pending logins: one logs in.
      await reg.accounts.setTotpSecret(m.id, 'plain:JBSWY3DPEHPK3PXP');
      const code = 'abcdefghjkmnpqrs';
      await reg.accounts.enableTwoFactor(m.id, at, 1, [recoveryHash(code)]);
      // (Passwords one after another: the portal checks a few at a time, and says busy beyond.)
      const browsers: PortalClient[] = [];
      for (let i = 0; i < 8; i++) {
        const b = new PortalClient(base, { localAddress: `127.0.2.${i + 1}` });
        assert.equal((await b.login('racer', PASSWORD)).location, '/login/2fa');
        await b.get('/login/2fa');
        browsers.push(b);
      }
      const logins = await Promise.all(browsers.map((b) => b.post('/login/2fa', { code })));
      assert.equal(logins.filter((r) => r.location === '/torrents').length, 1);
      // The others: refused, as wrong (401) or, past the per-member limit on codes, 429.
      assert.equal(logins.filter((r) => r.status === 401 || r.status === 429).length, 7);
    });

    test('a session alone (no password) cannot change the e-mail address reset links go to, nor guess on', async () => {
      const reg = tracker.registry();
      const { c, m } = await member('victim');
      await reg.updateMember(m.id, { email: 'victim@example.org' });
      // A thief with a copy of the session cookie, not the password.
      const thief = new PortalClient(base);
      thief.cookies = new Map(c.cookies);
      await thief.get('/me/security');
      const taken = await thief.post('/me/email', { email: 'thief@example.org' });
      assert.equal(taken.status, 403);
      assert.match(taken.body, /current password/);
      assert.equal((await reg.member(m.id)).email, 'victim@example.org');
      // The owner, with the password, changes it.
      await c.get('/me/security');
      assert.equal(
        (await c.post('/me/email', { email: 'new@example.org', current: PASSWORD })).location,
        '/me/security?msg=email',
      );
      assert.equal((await reg.member(m.id)).email, 'new@example.org');
      // Guessing the password through the session meets a limit (shared with /me/password).
      for (let i = 0; i < 2; i++)
        assert.equal(
          (await thief.post('/me/email', { email: 'thief@example.org', current: `guess ${i}` })).status,
          403,
        );
      await thief.get(`/member/${m.id}`);
      for (let i = 0; i < 2; i++)
        assert.equal(
          (
            await thief.post('/me/password', {
              current: `guess ${i}`,
              password: 'x'.repeat(12),
              password2: 'x'.repeat(12),
            })
          ).status,
          400,
        );
      const limited = await thief.post('/me/password', {
        current: PASSWORD,
        password: 'x'.repeat(12),
        password2: 'x'.repeat(12),
      });
      assert.equal(limited.status, 429);
      await thief.get('/me/security');
      assert.equal(
        (await thief.post('/me/email', { email: 'thief@example.org', current: PASSWORD })).status,
        429,
      );
      assert.equal((await reg.member(m.id)).email, 'new@example.org');
    });

    test('a moderator cannot give another staff member freeleech or tokens (only an administrator touches staff)', async () => {
      const reg = tracker.registry();
      const at = Math.floor(Date.now() / 1000);
      const { c, m } = await member('modgiver', 'moderator');
      const { m: other } = await member('modtaker', 'moderator');
      const { m: plain } = await member('plaintaker');
      await reg.accounts.setTotpSecret(m.id, 'plain:JBSWY3DPEHPK3PXP');
      await reg.accounts.enableTwoFactor(m.id, at, 1, ['x']);
      await c.get(`/member/${other.id}`);
      const tokens = await c.post('/staff/promotions/tokens', { member: String(other.id), count: '50' });
      assert.equal(tokens.status, 403);
      const window = await c.post('/staff/promotions/windows', {
        member: String(other.id),
        starts_at: String(at),
        ends_at: String(at + 86400),
      });
      assert.equal(window.status, 403);
      assert.equal((await reg.member(other.id)).freeleech_tokens, 0);
      assert.equal((await reg.freeleech.list({ member: other.id })).length, 0);
      // A member, yes.
      assert.equal(
        (await c.post('/staff/promotions/tokens', { member: String(plain.id), count: '2' })).location,
        `/member/${plain.id}?msg=saved`,
      );
    });
  });
}
