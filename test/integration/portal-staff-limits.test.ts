/**
 * What staff may do to whom, over real HTTP on every database engine (docs/security.md: "staff
 * cannot change their own account there; only administrators change roles or other staff"): the
 * staff forms that act on one member's account (forgive a hit-and-run, revoke a freeleech
 * window, grant a restricted torrent) refuse a moderator acting on other staff, and anyone on
 * themselves; an administrator acts on a moderator.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Role } from '../../src/db/schema.ts';
import type { Tracker } from '../../src/index.ts';
import { hashPassword } from '../../src/web/portal/security.ts';
import { totpCode } from '../../src/web/portal/two-factor.ts';
import { engines } from '../helpers/db.ts';
import { PortalClient } from '../helpers/portal-client.ts';
import { startPortalTracker } from '../helpers/portal-tracker.ts';
import { markHitAndRun } from '../helpers/scheduler.ts';

const PASSWORD = 'a long enough password';

for (const engine of engines) {
  describe(`portal staff limits (${engine.name})`, () => {
    let tracker: Tracker;
    let stop: () => Promise<void>;
    let base = '';
    let n = 0;

    before(async () => {
      ({ tracker, base, stop } = await startPortalTracker(engine, { udp: [], hnrSeedHours: 24 }));
    });

    after(async () => {
      await stop();
    });

    /** A new member (or staff), logged in from its own loopback address. */
    async function member(name: string, role: Role = 'member') {
      const reg = tracker.registry();
      const m = await reg.addMember({ username: name, role, passwordHash: await hashPassword(PASSWORD) });
      const c = new PortalClient(base, { localAddress: `127.0.2.${++n}` });
      assert.equal((await c.login(name, PASSWORD)).location, '/torrents');
      return { c, m };
    }

    let hashes = 0;
    const torrent = (restricted = false) =>
      tracker.registry().addTorrent({
        infoHash: (++hashes).toString(16).padStart(40, '0'),
        infoHashV2: null,
        name: `staff limits ${hashes}`,
        size: 1,
        fileCount: 1,
        restricted,
      });

    test("a moderator cannot forgive another staff member's hit-and-run; an administrator can", async () => {
      const reg = tracker.registry();
      const at = Math.floor(Date.now() / 1000);
      const { c: mod } = await member('hnr-mod', 'moderator');
      const { c: boss, m: admin } = await member('hnr-admin', 'admin');
      const { m: mod2 } = await member('hnr-mod2', 'moderator');
      const t = await torrent();
      for (const who of [mod2, admin]) await markHitAndRun(reg, who.id, t.id, at);
      const [ofMod2] = await reg.hnr.list({ member: mod2.id });
      const [ofAdmin] = await reg.hnr.list({ member: admin.id });
      await mod.get('/staff/hit-and-runs');
      for (const h of [ofMod2, ofAdmin]) {
        const r = await mod.post(`/staff/hit-and-runs/${h.id}/forgive`, { note: 'a favour' });
        assert.equal(r.status, 403, `hit-and-run of ${h.username}`);
        assert.match(r.body, /Only an administrator/);
        assert.equal((await reg.hnr.one(h.id)).status, 'active');
      }
      assert.equal((await reg.member(mod2.id)).can_leech, 0, 'download rights still suspended');
      // The staff list offers no button for it either.
      assert.doesNotMatch(
        (await mod.get('/staff/hit-and-runs')).body,
        new RegExp(`/staff/hit-and-runs/${ofMod2.id}/forgive`),
      );
      await boss.get('/staff/hit-and-runs');
      const ok = await boss.post(`/staff/hit-and-runs/${ofMod2.id}/forgive`, { note: 'seedbox died' });
      assert.equal(ok.status, 303);
      assert.equal((await reg.hnr.one(ofMod2.id)).status, 'forgiven');
    });

    test("a moderator cannot revoke another staff member's freeleech window, nor staff their own", async () => {
      const reg = tracker.registry();
      const at = Math.floor(Date.now() / 1000);
      const { c: mod, m: self } = await member('fl-mod', 'moderator');
      const { c: boss, m: admin } = await member('fl-admin', 'admin');
      const { m: mod2 } = await member('fl-mod2', 'moderator');
      const give = (who: typeof admin) =>
        reg.freeleech.give(who, {
          startsAt: at,
          endsAt: at + 86400,
          uploadFactor: 100,
          note: null,
          by: null,
          at,
        });
      const [ofAdmin, ofMod2, own] = [await give(admin), await give(mod2), await give(self)];
      const revokeOf = (w: { id: number }) => new RegExp(`/staff/promotions/windows/${w.id}/revoke`);
      // The Promotions page and the members' pages offer no button for what the POST refuses.
      const page = (await mod.get('/staff/promotions')).body;
      for (const w of [ofAdmin, ofMod2, own]) {
        assert.match(page, new RegExp(`/member/${w.member_id}"`), `window of ${w.username} listed`);
        assert.doesNotMatch(page, revokeOf(w), `Revoke on the window of ${w.username}`);
        assert.doesNotMatch((await mod.get(`/member/${w.member_id}`)).body, revokeOf(w), w.username);
      }
      for (const w of [ofAdmin, ofMod2, own]) {
        const r = await mod.post(`/staff/promotions/windows/${w.id}/revoke`, {});
        assert.equal(r.status, 403, `window of ${w.username}`);
        assert.equal((await reg.freeleech.one(w.id)).revoked_at, null);
      }
      const bossPage = (await boss.get('/staff/promotions')).body;
      assert.match(bossPage, revokeOf(ofMod2));
      assert.match((await boss.get(`/member/${mod2.id}`)).body, revokeOf(ofMod2));
      assert.doesNotMatch(bossPage, revokeOf(ofAdmin), 'not their own');
      assert.equal((await boss.post(`/staff/promotions/windows/${ofMod2.id}/revoke`, {})).status, 303);
      assert.notEqual((await reg.freeleech.one(ofMod2.id)).revoked_at, null);
    });

    test('staff cannot grant themselves a restricted torrent, nor a moderator another staff member', async () => {
      const reg = tracker.registry();
      const { c: mod, m: self } = await member('grant-mod', 'moderator');
      const { c: boss, m: admin } = await member('grant-admin', 'admin');
      const { m: plain } = await member('grant-member');
      const t = await torrent(true);
      await mod.get(`/torrent/${t.id}`);
      for (const who of [self.username, String(self.id), self.passkey, admin.username]) {
        const r = await mod.post(`/staff/torrents/${t.id}`, { action: 'grant', who });
        assert.equal(r.status, 403, who);
      }
      await boss.get(`/torrent/${t.id}`);
      assert.equal(
        (await boss.post(`/staff/torrents/${t.id}`, { action: 'grant', who: 'grant-admin' })).status,
        403,
      );
      assert.deepEqual(await reg.listGrants({ torrent: t.id }), []);
      // Members, as before; and an administrator grants a moderator.
      assert.equal(
        (await mod.post(`/staff/torrents/${t.id}`, { action: 'grant', who: plain.username })).status,
        303,
      );
      assert.equal(
        (await boss.post(`/staff/torrents/${t.id}`, { action: 'grant', who: self.username })).status,
        303,
      );
      assert.deepEqual(
        (await reg.listGrants({ torrent: t.id })).map((g) => g.member_id).sort(),
        [plain.id, self.id].sort(),
      );
    });
    test("a moderator cannot revoke another staff member's grant, nor staff their own (as they cannot grant)", async () => {
      const reg = tracker.registry();
      const { c: mod, m: self } = await member('revoke-mod', 'moderator');
      const { m: other } = await member('revoke-mod2', 'moderator');
      const { c: boss, m: admin } = await member('revoke-admin', 'admin');
      const { m: plain } = await member('revoke-member');
      const t = await torrent(true);
      const ids = new Map<number, number>();
      for (const m of [self, other, admin, plain])
        ids.set(
          m.id,
          (await reg.grant({ torrent: t.id, member: m.id, reference: null, expiresAt: null })).id,
        );
      await mod.get(`/torrent/${t.id}`);
      for (const m of [other, admin, self]) {
        const r = await mod.post(`/staff/torrents/${t.id}`, {
          action: 'revoke',
          grant: String(ids.get(m.id)),
        });
        assert.equal(r.status, 403, m.username);
      }
      assert.equal((await reg.listGrants({ torrent: t.id })).length, 4);
      // The page offers no button for what the form refuses.
      const page = (await mod.get(`/torrent/${t.id}`)).body;
      assert.equal((page.match(/name="action" value="revoke"/g) ?? []).length, 1);
      // A member's grant, as before; and an administrator revokes a moderator's.
      assert.equal(
        (await mod.post(`/staff/torrents/${t.id}`, { action: 'revoke', grant: String(ids.get(plain.id)) }))
          .status,
        303,
      );
      await boss.get(`/torrent/${t.id}`);
      assert.equal(
        (await boss.post(`/staff/torrents/${t.id}`, { action: 'revoke', grant: String(ids.get(other.id)) }))
          .status,
        303,
      );
      assert.deepEqual(
        (await reg.listGrants({ torrent: t.id })).map((g) => g.member_id).sort(),
        [self.id, admin.id].sort(),
      );
    });

    test('staff cannot grant a restricted torrent to a group they belong to; other groups as before', async () => {
      const reg = tracker.registry();
      const { c: mod, m: self } = await member('group-mod', 'moderator');
      const { c: boss, m: admin } = await member('group-admin', 'admin');
      await reg.addGroup('mods-own');
      await reg.addToGroup('mods-own', self.id);
      await reg.addGroup('admins-own');
      await reg.addToGroup('admins-own', admin.id);
      await reg.addGroup('others');
      const t = await torrent(true);
      await mod.get(`/torrent/${t.id}`);
      await boss.get(`/torrent/${t.id}`);
      const r = await mod.post(`/staff/torrents/${t.id}`, { action: 'grant', who: 'group:mods-own' });
      assert.equal(r.status, 403);
      assert.match(r.body, /group of their own/);
      assert.equal(
        (await boss.post(`/staff/torrents/${t.id}`, { action: 'grant', who: 'group:admins-own' })).status,
        403,
      );
      assert.deepEqual(await reg.listGrants({ torrent: t.id }), []);
      assert.equal(
        (await mod.post(`/staff/torrents/${t.id}`, { action: 'grant', who: 'group:others' })).status,
        303,
      );
      assert.equal(
        (await boss.post(`/staff/torrents/${t.id}`, { action: 'grant', who: 'group:mods-own' })).status,
        303,
      );
      assert.equal((await reg.listGrants({ torrent: t.id })).length, 2);
    });
  });

  describe(`require_2fa_for_staff and sessions from before 2FA (${engine.name})`, () => {
    test('turning 2FA on ends the other sessions: one taken before gains no staff powers', async () => {
      const { tracker, base, stop } = await startPortalTracker(engine, { udp: [], require2faForStaff: true });
      try {
        const reg = tracker.registry();
        await reg.addMember({
          username: 'mod2fa',
          role: 'moderator',
          passwordHash: await hashPassword(PASSWORD),
        });
        // The moderator logs in here, and somewhere else (a shared computer; a cookie copied off it).
        const own = new PortalClient(base, { localAddress: '127.0.3.1' });
        const stolen = new PortalClient(base, { localAddress: '127.0.3.2' });
        for (const c of [own, stolen])
          assert.equal((await c.login('mod2fa', PASSWORD)).location, '/torrents');
        assert.equal((await stolen.get('/staff/stats')).location, '/me/security?msg=staff2fa');
        // The moderator turns 2FA on, as the staff pages ask.
        await own.get('/me/security');
        const setup = await own.post('/me/2fa/setup', {});
        const secret = /id="totp-secret">([A-Z2-7]+)</.exec(setup.body)![1];
        const on = await own.post('/me/2fa/confirm', {
          code: totpCode(secret, Date.now()),
          current: PASSWORD,
        });
        assert.equal(on.status, 200);
        assert.equal((await own.get('/staff/stats')).status, 200, 'this session proved password and code');
        // The other session never passed a second factor: it ends, staff pages included.
        const after = await stolen.get('/staff/stats');
        assert.equal(after.location, '/login');
        assert.equal((await stolen.get('/torrents')).location, '/login');
      } finally {
        await stop();
      }
    });
  });
}
