/**
 * Promotions in the portal (issue #16) over real HTTP on every database engine: staff schedule a
 * site-wide event (the banner every member sees, now or coming), edit and cancel it; feature a
 * torrent from its page (the Featured list and badge) and end it; give a member personal
 * freeleech from the member's page (listed on the profile and the Promotions page) and revoke it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Registry } from '../../src/db/registry.ts';
import { createTracker, type Tracker } from '../../src/index.ts';
import { hashPassword } from '../../src/web/portal/security.ts';
import { engines } from '../helpers/db.ts';
import { PortalClient } from '../helpers/portal-client.ts';

const PASSWORD = 'correct horse battery';
const local = (t: number) => new Date(t * 1000).toISOString().slice(0, 16);

for (const engine of engines) {
  describe(`portal promotions on ${engine.name}`, () => {
    let tracker: Tracker;
    let reg: Registry;
    let drop: () => Promise<void>;
    let staff: PortalClient;
    let member: PortalClient;
    let memberId: number;

    before(async () => {
      const db = await engine.create();
      drop = db.drop;
      tracker = createTracker({
        http: ['127.0.0.1:0'],
        udp: [],
        mode: 'private',
        databaseUrl: db.url,
        policyRefresh: 3600,
        logLevel: 'silent',
      });
      await tracker.start();
      const base = `http://127.0.0.1:${tracker.addresses().http[0].port}`;
      reg = tracker.registry();
      const hash = await hashPassword(PASSWORD);
      const root = await reg.addMember({ username: 'root', role: 'admin' });
      const m = await reg.addMember({ username: 'mia' });
      memberId = m.id;
      await reg.accounts.setPasswordHash(root.id, hash);
      await reg.accounts.setPasswordHash(m.id, hash);
      staff = new PortalClient(base);
      member = new PortalClient(base);
      assert.equal((await staff.login('root', PASSWORD)).status, 303);
      assert.equal((await member.login('mia', PASSWORD)).status, 303);
      await reg.addTorrent({
        infoHash: 'ab'.repeat(20),
        infoHashV2: null,
        name: 'Big Buck Bunny',
        size: 1,
        fileCount: 1,
      });
    });
    after(async () => {
      await tracker.stop();
      await drop();
    });

    test('a site-wide event: scheduled by staff, the banner members see (coming, then now), edited, cancelled', async () => {
      const now = Math.floor(Date.now() / 1000);
      assert.doesNotMatch((await member.get('/torrents')).body, /id="event-banner"/);
      const page = await staff.get('/staff/promotions');
      assert.equal(page.status, 200);
      assert.match(page.body, /Schedule an event/);
      assert.equal((await member.get('/staff/promotions')).status, 403);
      const bad = await staff.post('/staff/promotions/events', {
        name: 'Nothing',
        starts_at: local(now + 3600),
        ends_at: local(now + 7200),
        upload_factor: '100',
      });
      assert.equal(bad.status, 400);
      assert.match(bad.body, /an event is freeleech, or counts uploads more than 100%/);
      const made = await staff.post('/staff/promotions/events', {
        name: 'Winter freeleech',
        starts_at: local(now + 3600),
        ends_at: local(now + 2 * 86400),
        freeleech: '1',
        upload_factor: '200',
      });
      assert.equal(made.status, 303);
      const [e] = await reg.promotions.events({ after: now });
      assert.deepEqual([e.name, e.freeleech, e.upload_factor], ['Winter freeleech', 1, 200]);
      // The banner comes from the tracker's snapshot (the staff form reloaded it).
      assert.match(
        (await member.get('/torrents')).body,
        /id="event-banner">Coming: <strong>Winter freeleech<\/strong>, freeleech \+ double upload for everyone from/,
      );
      await staff.get(`/staff/promotions/events/${e.id}`);
      const edited = await staff.post(`/staff/promotions/events/${e.id}`, {
        name: 'Winter freeleech',
        starts_at: local(now - 60),
        ends_at: local(now + 2 * 86400),
        freeleech: '1',
        upload_factor: '200',
      });
      assert.equal(edited.status, 303);
      assert.match(
        (await member.get(`/member/${memberId}`)).body,
        /id="event-banner"><strong>Winter freeleech<\/strong>: freeleech \+ double upload for everyone until/,
      );
      await staff.get('/staff/promotions');
      assert.equal((await staff.post(`/staff/promotions/events/${e.id}/cancel`, {})).status, 303);
      assert.doesNotMatch((await member.get('/torrents')).body, /id="event-banner"/);
      assert.match(
        (await staff.get('/staff/promotions')).body,
        /<td>Winter freeleech<\/td>.*<td>ended early<\/td>/,
      );
    });

    test('a featured torrent: staff feature it from its page; the Featured list and badge; staff end it', async () => {
      const t = await reg.torrent('ab'.repeat(20));
      assert.doesNotMatch((await member.get(`/torrent/${t.id}`)).body, /id="feature-form"/, 'members cannot');
      assert.match((await staff.get(`/torrent/${t.id}`)).body, /id="feature-form"/);
      const done = await staff.post('/staff/promotions/featured', { torrent: String(t.id), days: '3' });
      assert.equal(done.status, 303);
      const list = await member.get('/torrents');
      assert.match(
        list.body,
        /<ul id="featured-list"><li><a href="\/torrent\/\d+">Big Buck Bunny<\/a> — freeleech \+ double upload/,
      );
      assert.match(list.body, /Big Buck Bunny<\/a> <span class="badge featured"/);
      assert.match(
        (await member.get(`/torrent/${t.id}`)).body,
        /id="featured-notice">Featured: freeleech \+ double upload/,
      );
      const [f] = await reg.promotions.featured({ after: Math.floor(Date.now() / 1000) });
      assert.equal(f.ends_at - f.starts_at, 3 * 86400);
      assert.equal(
        (await staff.post('/staff/promotions/featured', { torrent: String(t.id), days: '3' })).status,
        409,
      );
      await staff.get('/staff/promotions');
      assert.equal((await staff.post(`/staff/promotions/featured/${f.id}/end`, {})).status, 303);
      assert.doesNotMatch((await member.get('/torrents')).body, /featured-list/);
    });

    test("personal freeleech: staff give it on the member's page (listed on the profile and the Promotions page), then revoke it", async () => {
      const now = Math.floor(Date.now() / 1000);
      const page = await staff.get(`/member/${memberId}`);
      assert.match(page.body, /id="freeleech-form"/);
      const given = await staff.post('/staff/promotions/windows', {
        member: String(memberId),
        starts_at: local(now - 60),
        ends_at: local(now + 86400),
        double: '1',
        note: 'for seeding the archive',
      });
      assert.equal(given.status, 303);
      assert.equal(given.location, `/member/${memberId}?msg=saved`);
      const own = await member.get(`/member/${memberId}`);
      assert.match(own.body, /Personal freeleech/);
      assert.match(
        own.body,
        /<td>every torrent<\/td>.*freeleech \+ double upload <span class="muted">— for seeding the archive/s,
      );
      assert.doesNotMatch(own.body, /Revoke/, 'members cannot revoke');
      assert.equal(
        tracker.policy.snapshot.promotions.personal.get(memberId)?.get(0)?.[2],
        200,
        'in the snapshot',
      );
      const listed = await staff.get('/staff/promotions');
      assert.match(listed.body, /<a href="\/member\/\d+">mia<\/a>/);
      const [w] = await reg.freeleech.list({ member: memberId, after: now });
      const revoked = await staff.post(`/staff/promotions/windows/${w.id}/revoke`, {
        back: `/member/${memberId}`,
      });
      assert.equal(revoked.location, `/member/${memberId}?msg=saved`);
      assert.match((await member.get(`/member/${memberId}`)).body, /None now\./);
      const tokens = await staff.post('/staff/promotions/tokens', {
        member: String(memberId),
        count: '2',
        note: 'prize',
      });
      assert.equal(tokens.status, 303);
      assert.equal((await reg.member(memberId)).freeleech_tokens, 2);
      assert.match((await member.get(`/member/${memberId}`)).body, /None now\. 2 freeleech tokens to spend/);
      assert.equal(
        (await staff.post('/staff/promotions/tokens', { member: String(memberId), count: '-3' })).status,
        409,
      );
      assert.equal((await staff.post('/staff/promotions/windows', { member: '999999' })).status, 404);
      const self = await staff.post('/staff/promotions/windows', {
        member: String((await reg.member('root')).id),
      });
      assert.equal(self.status, 403);
    });
  });
}
