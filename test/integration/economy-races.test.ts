/**
 * The private community's economy under concurrency (issue #16), on every database engine: the
 * same request fired many times at once, from one instance or from two instances on one database,
 * must take effect once. Over real HTTP (the portal's forms with their CSRF tokens) where the
 * request comes from a browser; through each instance's registry where a timer makes it.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Tracker } from '../../src/index.ts';
import { hashPassword } from '../../src/web/portal/security.ts';
import { engines } from '../helpers/db.ts';
import { PortalClient } from '../helpers/portal-client.ts';
import { startPortalTracker } from '../helpers/portal-tracker.ts';

const PASSWORD = 'a long enough password';
const API_TOKEN = 'economy-races-api-token-0123456789';

for (const engine of engines) {
  describe(`economy races (${engine.name})`, () => {
    let dir = '';
    let drop: () => Promise<void> = async () => {};
    let one: { tracker: Tracker; base: string; stop: () => Promise<void> };
    let two: { tracker: Tracker; base: string; stop: () => Promise<void> };
    let n = 0;

    before(async () => {
      // Two instances on one database (SQLite: one file, as two processes would share it).
      let url: string;
      if (engine.name === 'sqlite') {
        dir = mkdtempSync(join(tmpdir(), 'herald-races-'));
        url = `sqlite:${join(dir, 'herald.db')}`;
      } else {
        const db = await engine.create();
        url = db.url;
        drop = db.drop;
      }
      const config = {
        udp: [],
        databaseUrl: url,
        applications: true,
        dataDir: dir || undefined,
        bonusInvitePrice: 1000,
        bonusTokenPrice: 400,
        apiToken: API_TOKEN,
      };
      one = await startPortalTracker(engine, config);
      two = await startPortalTracker(engine, config);
    });

    after(async () => {
      await two?.stop();
      await one?.stop();
      await drop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    async function staff(name: string, base: string) {
      const reg = one.tracker.registry();
      await reg.addMember({ username: name, role: 'admin', passwordHash: await hashPassword(PASSWORD) });
      const c = new PortalClient(base, { localAddress: `127.0.2.${++n}` });
      assert.equal((await c.login(name, PASSWORD)).location, '/torrents');
      await c.get('/staff/applications');
      return c;
    }

    async function apply(username: string): Promise<number> {
      const c = new PortalClient(one.base, { localAddress: `127.0.3.${++n}` });
      await c.get('/apply');
      const sent = await c.post('/apply', {
        username,
        email: `${username}@example.org`,
        body: 'I seed Linux ISOs around the clock and would like to join.',
      });
      assert.equal(sent.status, 303);
      const a = (await one.tracker.registry().accounts.listApplications('pending')).find(
        (x) => x.username === username,
      );
      assert.ok(a);
      return a.id;
    }

    async function invitationsFor(email: string) {
      return (await one.tracker.registry().accounts.listInvitations()).filter((i) => i.email === email);
    }

    test('one application approved many times at once (a double click, two staff) issues one invitation', async () => {
      const a = await staff('approver-a', one.base);
      const b = await staff('approver-b', two.base);
      const id = await apply('doubled');
      const pages = await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          (i % 2 === 0 ? a : b).post(`/staff/applications/${id}`, { action: 'approve' }),
        ),
      );
      const codes = pages.flatMap((p) => /register\?invite=([A-Za-z0-9_-]+)/.exec(p.body)?.[1] ?? []);
      assert.equal(codes.length, 1, `approvals that issued a code: ${codes.length}`);
      assert.deepEqual(pages.map((p) => p.status).sort(), [200, 409, 409, 409, 409, 409, 409, 409]);
      const issued = await invitationsFor('doubled@example.org');
      assert.equal(issued.length, 1, 'invitations issued for one application');
      assert.equal(issued[0].code, codes[0]);
      const app = await one.tracker.registry().accounts.application(id);
      assert.equal(app?.status, 'approved');
      assert.equal(app?.invitation_id, issued[0].id);
    });

    test('an approval and a rejection at once: one decides, and a rejected applicant holds no invitation', async () => {
      const a = await staff('decider-a', one.base);
      const b = await staff('decider-b', two.base);
      for (let round = 0; round < 4; round++) {
        const username = `torn${round}`;
        const id = await apply(username);
        const pages = await Promise.all([
          a.post(`/staff/applications/${id}`, { action: 'approve' }),
          b.post(`/staff/applications/${id}`, { action: 'reject', reason: 'not now' }),
          a.post(`/staff/applications/${id}`, { action: 'reject', reason: 'not now' }),
          b.post(`/staff/applications/${id}`, { action: 'approve' }),
        ]);
        const decided = pages.filter((p) => p.status === 200 || p.status === 303);
        assert.equal(decided.length, 1, `decisions that took effect: ${pages.map((p) => p.status)}`);
        const app = await one.tracker.registry().accounts.application(id);
        const issued = await invitationsFor(`${username}@example.org`);
        if (app?.status === 'rejected')
          assert.equal(issued.length, 0, 'a rejected application has an invitation');
        else {
          assert.equal(app?.status, 'approved');
          assert.equal(issued.length, 1);
          assert.equal(app?.invitation_id, issued[0].id);
        }
      }
    });

    test('points taken by staff while the member buys, on two instances: never below 0, the ledger adds up', async () => {
      const reg = one.tracker.registry();
      const m = await reg.addMember({ username: 'spender', passwordHash: await hashPassword(PASSWORD) });
      await reg.bonus.give(m, 1000, { note: null, by: null, at: Math.floor(Date.now() / 1000) });
      const c = new PortalClient(one.base, { localAddress: `127.0.4.${++n}` });
      assert.equal((await c.login('spender', PASSWORD)).location, '/torrents');
      await c.get('/bonus');
      const take = () =>
        fetch(`${two.base}/api/members/${m.id}/bonus`, {
          method: 'POST',
          headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json' },
          body: JSON.stringify({ points: -1000, note: 'penalty' }),
        });
      const [buys, takes] = await Promise.all([
        Promise.all(Array.from({ length: 4 }, () => c.post('/bonus/buy', { item: 'invite', count: '1' }))),
        Promise.all(Array.from({ length: 2 }, take)),
      ]);
      const bought = buys.filter((p) => p.status === 303).length;
      const taken = takes.filter((r) => r.status === 201).length;
      assert.equal(bought + taken, 1, `purchases ${bought}, takes ${taken}`);
      for (const r of takes) if (r.status !== 201) assert.equal(r.status, 409, await r.text());
      const balance = await reg.bonus.balance(m.id);
      assert.equal(balance, 0);
      const ledger = await reg.bonus.ledger(m.id, 100);
      assert.equal(
        ledger.reduce((sum, r) => sum + r.delta, 0),
        balance,
      );
      assert.equal((await reg.member(m.id)).invites, bought);
      // Beyond the balance, a take is refused and changes nothing.
      await reg.bonus.give(m, 250, { note: null, by: null, at: Math.floor(Date.now() / 1000) });
      assert.equal((await take()).status, 409);
      assert.equal(await reg.bonus.balance(m.id), 250);
    });

    /** A member with `invites`, logged in on each instance. */
    async function memberOnBoth(username: string, invites = 0) {
      const m = await one.tracker.registry().addMember({
        username,
        invites,
        passwordHash: await hashPassword(PASSWORD),
      });
      const clients = [];
      for (const base of [one.base, two.base]) {
        const c = new PortalClient(base, { localAddress: `127.0.5.${++n}` });
        assert.equal((await c.login(username, PASSWORD)).location, '/torrents');
        clients.push(c);
      }
      return { m, clients };
    }

    test('invites spent, one invitation redeemed, the shop and tokens, many times at once on two instances: each once', async () => {
      const reg = one.tracker.registry();
      // Two invites, six invitations asked for at once: two issued, none left.
      const inviter = await memberOnBoth('inviter', 2);
      for (const c of inviter.clients) await c.get('/invites');
      const asked = await Promise.all(
        Array.from({ length: 6 }, (_, i) => inviter.clients[i % 2].post('/invites', { email: '' })),
      );
      const codes = (await reg.accounts.listInvitations({ inviterId: inviter.m.id })).map((i) => i.code);
      assert.equal(codes.length, 2, `invitations issued (${asked.map((p) => p.status)})`);
      assert.equal((await reg.member(inviter.m.id)).invites, 0);
      // One code, six registrations at once: one account.
      const applicants = Array.from({ length: 6 }, (_, i) => new PortalClient(i % 2 ? two.base : one.base));
      for (const c of applicants) await c.get(`/register?invite=${codes[0]}`);
      const regs = await Promise.all(
        applicants.map((c, i) =>
          c.post('/register', {
            invite: codes[0],
            username: `redeemer${i}`,
            email: '',
            password: PASSWORD,
            password2: PASSWORD,
          }),
        ),
      );
      assert.equal(regs.filter((p) => p.status === 303).length, 1, `${regs.map((p) => p.status)}`);
      const made = await Promise.all(applicants.map((_, i) => reg.findMember(`redeemer${i}`)));
      assert.equal(made.filter((x) => x !== undefined).length, 1, 'accounts made with one invitation');
      // 1000 points, six tokens at 400 bought at once: two, 200 points left, the ledger adds up.
      const buyer = await memberOnBoth('shopper');
      await reg.bonus.give(buyer.m, 1000, { note: null, by: null, at: Math.floor(Date.now() / 1000) });
      for (const c of buyer.clients) await c.get('/bonus');
      const bought = await Promise.all(
        Array.from({ length: 6 }, (_, i) =>
          buyer.clients[i % 2].post('/bonus/buy', { item: 'token', count: '1' }),
        ),
      );
      assert.equal(bought.filter((p) => p.status === 303).length, 2);
      assert.equal(await reg.bonus.balance(buyer.m.id), 200);
      const ledger = await reg.bonus.ledger(buyer.m.id, 100);
      assert.equal(
        ledger.reduce((sum, r) => sum + r.delta, 0),
        200,
      );
      assert.equal((await reg.member(buyer.m.id)).freeleech_tokens, 2);
      // Two tokens spent at once, six times over, on three torrents: two windows, no token left.
      const ts: { id: number }[] = [];
      for (let i = 0; i < 3; i++)
        ts.push(
          await reg.addTorrent({
            infoHash: randomBytes(20).toString('hex'),
            infoHashV2: null,
            name: `race${i}`,
            size: 1000,
            fileCount: 1,
          }),
        );
      const spent = await Promise.all(
        Array.from({ length: 6 }, (_, i) => buyer.clients[i % 2].post(`/torrent/${ts[i % 3].id}/token`, {})),
      );
      assert.equal(spent.filter((p) => p.status === 303).length, 2, `${spent.map((p) => p.status)}`);
      assert.equal((await reg.member(buyer.m.id)).freeleech_tokens, 0);
      const windows = await reg.freeleech.list({ member: buyer.m.id });
      assert.equal(windows.length, 2);
      assert.notEqual(windows[0].torrent_id, windows[1].torrent_id);
    });

    test('earned invites granted by two instances at once are granted once per period', async () => {
      const reg = one.tracker.registry();
      const earners = [];
      for (let i = 0; i < 5; i++) earners.push(await reg.addMember({ username: `earner${i}` }));
      const before = new Map<number, number>();
      for (const m of earners) before.set(m.id, (await reg.member(m.id)).invites);
      // As each instance's portal timer does, at the same moment (a day later: every member is due).
      const rules = {
        minRatio: 0,
        minAgeSeconds: 0,
        minUploaded: 0,
        perPeriod: 1,
        periodSeconds: 7 * 86400,
        at: Math.floor(Date.now() / 1000) + 86400,
      };
      const regs = [one.tracker.registry(), two.tracker.registry()];
      await Promise.all(Array.from({ length: 8 }, (_, i) => regs[i % 2].accounts.grantEarnedInvites(rules)));
      for (const m of earners)
        assert.equal((await reg.member(m.id)).invites, before.get(m.id)! + 1, `${m.username}'s invites`);
    });
  });
}
