/**
 * The portal over real HTTP on every database engine: first account, sessions, CSRF, login rate
 * limiting, invitations, applications, upload with the private flag, the personal .torrent
 * announcing on the running tracker, bans.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Registry } from '../../src/db/registry.ts';
import { createTracker, type Tracker } from '../../src/index.ts';
import { decode } from '../../src/protocol/bencode/index.ts';
import { parseMetainfo } from '../../src/protocol/metainfo/index.ts';
import {
  type ConnectionId,
  parseResponse,
  writeAnnounceRequest,
  writeConnectRequest,
} from '../../src/protocol/udp/codec.ts';
import { announcePath, bdecode, httpGet, text, udpClient } from '../helpers/clients.ts';
import { engines } from '../helpers/db.ts';
import { libtorrentHybrid } from '../helpers/libtorrent.ts';
import { makeTorrent, PortalClient } from '../helpers/portal-client.ts';
import { markHitAndRun } from '../helpers/scheduler.ts';

const PASSWORD = 'correct horse battery';

const ROOT = new URL('../../', import.meta.url).pathname;
const NODE = join(ROOT, 'node_modules/.bin/node');

for (const engine of engines) {
  describe(`portal on ${engine.name}`, () => {
    let tracker: Tracker;
    let reg: Registry;
    let base: string;
    let port: number;
    let drop: () => Promise<void>;
    const admin = new PortalClient('');

    before(async () => {
      const db = await engine.create();
      drop = db.drop;
      tracker = createTracker({
        http: ['127.0.0.1:0'],
        udp: ['127.0.0.1:0'],
        mode: 'private',
        databaseUrl: db.url,
        policyRefresh: 3600,
        applications: true,
        logLevel: 'silent',
        memberClasses: ['User', 'Power User: days=28 uploaded=25GiB ratio=105 invites=2'],
      });
      await tracker.start();
      port = tracker.addresses().http[0].port;
      base = `http://127.0.0.1:${port}`;
      (admin as { base: string }).base = base;
      reg = tracker.registry();
    });
    after(async () => {
      await tracker.stop();
      await drop();
    });

    const client = () => new PortalClient(base);
    const invite = async () => {
      await admin.get('/invites');
      const r = await admin.post('/invites', { email: '' });
      assert.equal(r.status, 200);
      const m = /\/register\?invite=([A-Za-z0-9_-]+)/.exec(r.body);
      assert.ok(m, 'the invitation link is shown');
      return m[1];
    };
    const register = async (c: PortalClient, username: string, code: string) => {
      await c.get(`/register?invite=${code}`);
      return c.post('/register', {
        invite: code,
        username,
        email: '',
        password: PASSWORD,
        password2: PASSWORD,
      });
    };

    test('the first account of a new installation is the administrator; later ones need an invitation', async () => {
      const r = await admin.get('/register');
      assert.equal(r.status, 200);
      assert.match(r.body, /first account becomes the <strong>administrator/);
      const done = await admin.post('/register', {
        invite: '',
        username: 'root',
        email: 'root@example.org',
        password: PASSWORD,
        password2: PASSWORD,
      });
      assert.equal(done.status, 303);
      assert.equal(done.location, '/login?msg=registered');
      assert.equal((await reg.member('root')).role, 'admin');
      const login = await admin.login('root', PASSWORD);
      assert.equal(login.status, 303);
      assert.equal(login.location, '/torrents');
      assert.ok(admin.cookies.has('herald_session'));
      const cookie = login.headers.getSetCookie().find((c) => c.startsWith('herald_session='))!;
      assert.match(cookie, /HttpOnly/);
      assert.match(cookie, /SameSite=Lax/);

      const stranger = client();
      assert.equal((await stranger.get('/register')).status, 403);
      const sneaky = await stranger.post('/register', {
        invite: '',
        username: 'sneaky',
        password: PASSWORD,
        password2: PASSWORD,
      });
      assert.equal(sneaky.status, 403);
      assert.equal(await reg.findMember('sneaky'), undefined);
    });

    test('pages need a session; staff pages need staff', async () => {
      const anon = client();
      const r = await anon.get('/torrents');
      assert.equal(r.status, 303);
      assert.equal(r.location, '/login');
      assert.equal((await admin.get('/staff/members')).status, 200);
    });

    test('every form post without the CSRF token, or from another origin, is refused with 403', async () => {
      const anon = client();
      await anon.get('/login');
      assert.equal(
        (await anon.post('/login', { _csrf: null, username: 'root', password: PASSWORD })).status,
        403,
      );
      assert.equal(
        (await anon.post('/login', { _csrf: 'x'.repeat(43), username: 'root', password: PASSWORD })).status,
        403,
      );
      assert.equal((await admin.post('/invites', { _csrf: null, email: '' })).status, 403);
      assert.equal(
        (await admin.post('/staff/lists', { _csrf: null, action: 'add', list: 'client', value: '-XX' }))
          .status,
        403,
      );
      const foreign = await admin.request('POST', '/invites', `_csrf=${admin.csrf}`, {
        'content-type': 'application/x-www-form-urlencoded',
        origin: 'https://evil.example',
      });
      assert.equal(foreign.status, 403);
      // A token from another session is no good either.
      const other = client();
      await other.get('/login');
      assert.equal((await admin.post('/invites', { _csrf: other.csrf, email: '' })).status, 403);
      assert.equal((await reg.listClientPrefixes()).length, 0);
    });

    test('malformed and oversized bodies get 400 and 413', async () => {
      const bad = await admin.request('POST', '/invites', '_csrf=%zz', {
        'content-type': 'application/x-www-form-urlencoded',
      });
      assert.equal(bad.status, 400);
      const big = await admin.request('POST', '/invites', `a=${'x'.repeat(300_000)}`, {
        'content-type': 'application/x-www-form-urlencoded',
      });
      assert.equal(big.status, 413);
      const odd = await admin.request('POST', '/invites', '{}', { 'content-type': 'application/json' });
      assert.equal(odd.status, 400);
      const multi = await admin.request('POST', '/invites', '--B\r\nbroken', {
        'content-type': 'multipart/form-data; boundary=B',
      });
      assert.equal(multi.status, 400);
    });

    test('login is rate limited per username (and wrong passwords say nothing more)', async () => {
      const c = client();
      await reg.addMember({ username: 'victim' });
      for (let i = 0; i < 5; i++) {
        await c.get('/login');
        const r = await c.post('/login', { username: 'victim', password: `guess ${i}` });
        assert.equal(r.status, 401);
        assert.match(r.body, /Wrong username or password/);
      }
      await c.get('/login');
      const blocked = await c.post('/login', { username: 'victim', password: 'anything' });
      assert.equal(blocked.status, 429);
      assert.match(blocked.body, /Too many failed attempts/);
    });

    test('an invitation registers one member, once; invited_by is kept', async () => {
      const code = await invite();
      const alice = client();
      assert.equal((await register(alice, 'alice', code)).status, 303);
      const m = await reg.member('alice');
      assert.equal(m.role, 'member');
      assert.equal(m.invited_by, (await reg.member('root')).id);
      const again = client();
      assert.equal((await again.get(`/register?invite=${code}`)).status, 403);
      const r = await again.post('/register', {
        invite: code,
        username: 'mallory',
        password: PASSWORD,
        password2: PASSWORD,
      });
      assert.equal(r.status, 403);
      assert.equal((await alice.login('alice', PASSWORD)).status, 303);
      // A member without invites cannot invite; staff can grant some.
      await alice.get('/invites');
      assert.equal((await alice.post('/invites', { email: '' })).status, 400);
      await admin.get(`/member/${m.id}`);
      assert.equal(
        (await admin.post(`/staff/members/${m.id}`, { action: 'invites', invites: '1' })).status,
        303,
      );
      await alice.get('/invites');
      const ok = await alice.post('/invites', { email: 'friend@example.org' });
      assert.equal(ok.status, 200);
      assert.match(ok.body, /register\?invite=/);
      assert.equal((await reg.member('alice')).invites, 0);
      const tree = await admin.get('/staff/invites');
      assert.match(tree.body, /alice/);
    });

    test('an expired invitation is refused', async () => {
      const root = await reg.member('root');
      const inv = await reg.accounts.createInvitation({
        inviterId: root.id,
        email: null,
        ttlSeconds: -10,
        spend: false,
      });
      const c = client();
      const page = await c.get(`/register?invite=${inv.code}`);
      assert.equal(page.status, 403);
      assert.match(page.body, /expired/);
      await c.get('/login'); // a CSRF token, so that what refuses the post is the expiry
      const r = await c.post('/register', {
        invite: inv.code,
        username: 'late',
        password: PASSWORD,
        password2: PASSWORD,
      });
      assert.equal(r.status, 403);
      assert.equal(await reg.findMember('late'), undefined);
    });

    test('upload sets the private flag, registers the new hash; the personal .torrent announces', async () => {
      const alice = client();
      await alice.login('alice', PASSWORD);
      const original = makeTorrent('portal test');
      const before = parseMetainfo(original);
      assert.ok(before.ok);
      await alice.get('/upload');
      const up = await alice.postMultipart(
        '/upload',
        { category: 'Software', name: '', description: 'a <b>test</b>' },
        { name: 'torrent', filename: 'x.torrent', data: original },
      );
      assert.equal(up.status, 303, up.body.slice(0, 2000));
      const id = Number(/\/torrent\/([0-9]+)/.exec(up.location ?? '')?.[1]);
      const t = await reg.torrent(id);
      assert.notEqual(
        t.info_hash,
        before.torrent.infoHashV1!.toString('hex'),
        'the private flag changes the hash',
      );
      const page = await alice.get(`/torrent/${id}`);
      assert.equal(page.status, 200);
      assert.match(page.body, /a &lt;b&gt;test&lt;\/b&gt;/);
      assert.match(page.body, /magnet:\?xt=urn:btih:/);

      const dl = await alice.get(`/torrent/${id}/download`);
      assert.equal(dl.status, 200);
      assert.equal(dl.headers.get('content-type'), 'application/x-bittorrent');
      const parsed = parseMetainfo(dl.bytes);
      assert.ok(parsed.ok);
      assert.equal(parsed.torrent.private, true);
      assert.equal(parsed.torrent.infoHashV1!.toString('hex'), t.info_hash);
      const passkey = (await reg.member('alice')).passkey;
      const urls = [parsed.torrent.announce!, ...parsed.torrent.announceList!.flat()];
      for (const u of urls) assert.ok(u.endsWith(`/announce/${passkey}`), u);
      const httpUrl = new URL(parsed.torrent.announce!);
      assert.equal(httpUrl.protocol, 'http:');
      assert.equal(Number(httpUrl.port), port);
      assert.ok(
        urls.some((u) => u.startsWith('udp://')),
        'a UDP tier',
      );

      await tracker.policy.refresh();
      const r = await httpGet(
        port,
        '127.0.0.1',
        announcePath({
          infoHash: parsed.torrent.infoHashV1!,
          port: 51413,
          left: 0,
          event: 'started',
          base: httpUrl.pathname,
        }),
      );
      const d = bdecode(r.body);
      assert.ok(!d.has('failure reason'), text(d.get('failure reason')));
      assert.ok(d.has('interval'));

      // The UDP tier works too: the passkey travels as BEP 41 URL data.
      const udpUrl = new URL(urls.find((u) => u.startsWith('udp://'))!);
      const c = await udpClient(4);
      try {
        const buf = Buffer.alloc(512);
        const udpPort = Number(udpUrl.port);
        const cr = parseResponse(
          (await c.request(buf.subarray(0, writeConnectRequest(buf, 1)), udpPort))!,
          16,
        ) as {
          connectionId: ConnectionId;
        };
        const n = writeAnnounceRequest(buf, {
          connectionId: cr.connectionId,
          transactionId: 2,
          infoHash: parsed.torrent.infoHashV1!,
          peerId: Buffer.from('-UD0001-portaltest01'),
          downloaded: 0,
          left: 0,
          uploaded: 0,
          event: 2,
          numWant: 10,
          port: 51414,
          urlData: udpUrl.pathname,
        });
        const reply = (await c.request(buf.subarray(0, n), udpPort))!;
        assert.equal(parseResponse(reply, reply.length).action, 1, 'a UDP announce, not an error');
      } finally {
        c.close();
      }

      // Browse shows it with the live seeders (the HTTP and the UDP peer).
      const list = await alice.get('/torrents?sort=seeders');
      assert.match(list.body, /portal test/);
      assert.match(list.body, /<td class="num">2<\/td>/);
      // The same file again is refused (already registered).
      await alice.get('/upload');
      const dup = await alice.postMultipart(
        '/upload',
        { category: 'Software' },
        { name: 'torrent', filename: 'x.torrent', data: original },
      );
      assert.equal(dup.status, 409);
      // Not a torrent at all.
      const junk = await alice.postMultipart(
        '/upload',
        { category: 'Software' },
        { name: 'torrent', filename: 'x.torrent', data: Buffer.from('hello') },
      );
      assert.equal(junk.status, 400);

      // The RSS feed (feed key, not passkey) links personal downloads.
      const me = await reg.member('alice');
      const rss = await client().get(`/rss?key=${me.feed_key}`);
      assert.equal(rss.status, 200);
      assert.match(rss.body, /<rss version="2.0">/);
      const link = /<link>([^<]+\/rss\/download\/[0-9]+\?key=[0-9a-f]+)<\/link>/.exec(rss.body)![1];
      const viaFeed = await client().get(new URL(link).pathname + new URL(link).search);
      assert.equal(viaFeed.status, 200);
      assert.ok(decode(viaFeed.bytes).ok);
      assert.equal((await client().get('/rss?key=0123456789abcdef0123456789abcdef')).status, 403);
      // Staff: freeleech through the portal reaches the policy.
      await admin.get(`/torrent/${id}`);
      assert.equal((await admin.post(`/staff/torrents/${id}`, { action: 'free' })).status, 303);
      assert.equal((await reg.torrent(id)).download_factor, 0);
    });

    test('a hybrid (v1+v2) upload registers both new hashes; peers announce under either', async () => {
      const alice = client();
      await alice.login('alice', PASSWORD);
      const hybrid = libtorrentHybrid('hybrid payload.bin');
      await alice.get('/upload');
      const up = await alice.postMultipart(
        '/upload',
        { category: 'Software' },
        { name: 'torrent', filename: 'h.torrent', data: hybrid },
      );
      assert.equal(up.status, 303, up.body.slice(0, 1000));
      const id = Number(/\/torrent\/([0-9]+)/.exec(up.location ?? '')?.[1]);
      const t = await reg.torrent(id);
      const dl = parseMetainfo((await alice.get(`/torrent/${id}/download`)).bytes);
      assert.ok(dl.ok);
      assert.equal(dl.torrent.version, 'hybrid');
      assert.equal(dl.torrent.private, true);
      assert.equal(t.info_hash, dl.torrent.infoHashV1!.toString('hex'));
      assert.equal(t.info_hash_v2, dl.torrent.infoHashV2!.toString('hex'));
      await tracker.policy.refresh();
      const base = new URL(dl.torrent.announce!).pathname;
      for (const [hash, p] of [
        [dl.torrent.infoHashV1!, 7101],
        [dl.torrent.infoHashV2Truncated!, 7102],
      ] as const) {
        const d = bdecode(
          (await httpGet(port, '127.0.0.1', announcePath({ infoHash: hash, port: p, base }))).body,
        );
        assert.ok(!d.has('failure reason'), text(d.get('failure reason')));
      }
    });

    test('staff approve an application; the applicant registers from the status page', async () => {
      const applicant = client();
      await applicant.get('/apply');
      const sent = await applicant.post('/apply', {
        username: 'newbie',
        email: 'newbie@example.org',
        body: 'I seed Linux ISOs around the clock and would like to join.',
      });
      assert.equal(sent.status, 303);
      const status = sent.location!;
      assert.match((await applicant.get(status)).body, /pending/);
      const q = await admin.get('/staff/applications');
      assert.match(q.body, /newbie/);
      const id = (await reg.accounts.listApplications('pending'))[0].id;
      const ok = await admin.post(`/staff/applications/${id}`, { action: 'approve' });
      assert.equal(ok.status, 200);
      assert.match(ok.body, /register\?invite=/);
      const st = await applicant.get(status);
      const code = /register\?invite=([A-Za-z0-9_-]+)/.exec(st.body)![1];
      assert.equal((await register(applicant, 'newbie', code)).status, 303);
      // Rejections need a reason.
      const other = client();
      await other.get('/apply');
      await other.post('/apply', {
        username: 'nope',
        email: 'nope@example.org',
        body: 'Please let me in, I promise to seed.',
      });
      const id2 = (await reg.accounts.listApplications('pending'))[0].id;
      await admin.get('/staff/applications');
      assert.equal(
        (await admin.post(`/staff/applications/${id2}`, { action: 'reject', reason: '' })).status,
        400,
      );
      assert.equal(
        (await admin.post(`/staff/applications/${id2}`, { action: 'reject', reason: 'no' })).status,
        303,
      );
    });

    test('staff restrict a torrent and grant it to a member from the portal', async () => {
      const t = (await reg.listTorrents())[0];
      const alice = await reg.member('alice');
      const newbie = await reg.member('newbie');
      await admin.get(`/torrent/${t.id}`);
      assert.equal((await admin.post(`/staff/torrents/${t.id}`, { action: 'restrict' })).status, 303);
      const page = await admin.get(`/torrent/${t.id}`);
      assert.match(page.body, /Grants/);
      const g = await admin.post(`/staff/torrents/${t.id}`, {
        action: 'grant',
        who: 'alice',
        reference: 'order 1',
        days: '',
      });
      assert.equal(g.status, 303);
      assert.equal(
        (await admin.post(`/staff/torrents/${t.id}`, { action: 'grant', who: 'nobody', days: '' })).status,
        404,
      );
      await tracker.policy.refresh();
      const ann = async (passkey: string, p: number) =>
        bdecode(
          (
            await httpGet(
              port,
              '127.0.0.1',
              announcePath({
                infoHash: Buffer.from(t.info_hash!, 'hex'),
                port: p,
                base: `/announce/${passkey}`,
              }),
            )
          ).body,
        );
      assert.ok(!(await ann(alice.passkey, 7001)).has('failure reason'), 'the grantee may announce');
      assert.ok((await ann(newbie.passkey, 7002)).has('failure reason'), 'others may not');
      const grant = (await reg.listGrants({ torrent: t.id }))[0];
      await admin.get(`/torrent/${t.id}`);
      assert.equal(
        (await admin.post(`/staff/torrents/${t.id}`, { action: 'revoke', grant: String(grant.id) })).status,
        303,
      );
      assert.equal((await reg.listGrants({ torrent: t.id })).length, 0);
      await admin.post(`/staff/torrents/${t.id}`, { action: 'unrestrict' });
      assert.equal((await reg.torrent(t.id)).restricted, 0);
    });

    test('a banned member is logged out, cannot log in, and the tracker refuses the passkey', async () => {
      const code = await invite();
      const bob = client();
      await register(bob, 'bob', code);
      assert.equal((await bob.login('bob', PASSWORD)).status, 303);
      const m = await reg.member('bob');
      const t = (await reg.listTorrents())[0];
      const path = (peerPort: number) =>
        announcePath({
          infoHash: Buffer.from(t.info_hash!, 'hex'),
          port: peerPort,
          base: `/announce/${m.passkey}`,
        });
      await tracker.policy.refresh();
      assert.ok(!bdecode((await httpGet(port, '127.0.0.1', path(6881))).body).has('failure reason'));
      await admin.get(`/member/${m.id}`);
      assert.equal(
        (await admin.post(`/staff/members/${m.id}`, { action: 'status', status: 'banned', reason: '' }))
          .status,
        400,
      );
      const ban = await admin.post(`/staff/members/${m.id}`, {
        action: 'status',
        status: 'banned',
        reason: 'cheating',
      });
      assert.equal(ban.status, 303);
      assert.equal((await bob.get('/torrents')).status, 303, 'the session ended');
      const again = await bob.login('bob', PASSWORD);
      assert.equal(again.status, 403);
      assert.match(again.body, /banned: cheating/);
      const d = bdecode((await httpGet(port, '127.0.0.1', path(6882))).body);
      assert.ok(d.has('failure reason'));
    });

    test('download rights (issue #16): the member reads why and how to recover; staff suspend and restore them', async () => {
      const code = await invite();
      const cy = client();
      await register(cy, 'cy', code);
      assert.equal((await cy.login('cy', PASSWORD)).status, 303);
      const m = await reg.member('cy');
      // Ratio watch's warning, as its scheduler writes it.
      await reg.applyRatioWatch([{ id: m.id, action: 'warn' }], Math.floor(Date.now() / 1000));
      const warned = await cy.get(`/member/${m.id}`);
      assert.match(warned.body, /Ratio warning since/);
      assert.match(warned.body, /Raise it by seeding before/);
      await admin.get(`/member/${m.id}`);
      const off = await admin.post(`/staff/members/${m.id}`, { action: 'leech', can_leech: 'no' });
      assert.equal(off.status, 303);
      assert.equal((await reg.member(m.id)).leech_reason, 'staff');
      const t = (await reg.listTorrents())[0];
      const d = bdecode(
        (
          await httpGet(
            port,
            '127.0.0.1',
            announcePath({
              infoHash: Buffer.from(t.info_hash!, 'hex'),
              port: 6990,
              base: `/announce/${m.passkey}`,
            }),
          )
        ).body,
      );
      assert.match(String(d.get('failure reason')), /suspended by staff/);
      const page = await cy.get(`/member/${m.id}`);
      assert.match(page.body, /suspended by staff/);
      assert.match(page.body, /Seeding still works/);
      assert.match((await admin.get('/staff/members')).body, /suspended \(staff\)/);
      await admin.get(`/member/${m.id}`);
      assert.equal(
        (await admin.post(`/staff/members/${m.id}`, { action: 'leech', can_leech: 'yes' })).status,
        303,
      );
      const back = await reg.member(m.id);
      assert.deepEqual([back.can_leech, back.ratio_warned_at], [1, null]);
      assert.equal(
        (await admin.post(`/staff/members/${m.id}`, { action: 'leech', can_leech: 'x' })).status,
        400,
      );
    });

    test('hit-and-runs (issue #16): the member sees them and why rights went; staff list, forgive and set immunity', async () => {
      const code = await invite();
      const dee = client();
      await register(dee, 'dee', code);
      assert.equal((await dee.login('dee', PASSWORD)).status, 303);
      const m = await reg.member('dee');
      const t = (await reg.listTorrents())[0];
      const at = Math.floor(Date.now() / 1000);
      // A snatch left unseeded, judged and its rights taken as the scheduler does.
      await markHitAndRun(reg, m.id, t.id, at);
      const own = await dee.get(`/member/${m.id}`);
      assert.match(own.body, /<h2 id="hnr">Hit-and-runs<\/h2>/);
      assert.match(own.body, /suspended for hit-and-runs/);
      assert.match(own.body, /seed the torrents listed under Hit-and-runs/);
      assert.doesNotMatch(own.body, /Forgive/, 'members do not forgive');
      const [h] = await reg.hnr.list({ member: m.id });
      const list = await admin.get('/staff/hit-and-runs');
      assert.match(list.body, new RegExp(`<a href="/member/${m.id}">dee</a>`));
      assert.match(list.body, /Hit-and-run is off/);
      assert.match((await admin.get('/staff/members')).body, /suspended \(hit-and-runs\)/);
      const f = await admin.post(`/staff/hit-and-runs/${h.id}/forgive`, {
        note: 'tracker outage',
        back: `/member/${m.id}`,
      });
      assert.equal(f.status, 303);
      assert.equal(f.location, `/member/${m.id}?msg=forgiven`);
      const after = await reg.hnr.one(h.id);
      assert.deepEqual([after.status, after.note], ['forgiven', 'tracker outage']);
      assert.equal((await reg.member(m.id)).can_leech, 1, 'hit-and-run off: forgiving gives rights back');
      assert.match((await dee.get(`/member/${m.id}`)).body, /forgiven \(tracker outage\)/);
      await admin.get('/staff/hit-and-runs');
      assert.equal((await admin.post(`/staff/hit-and-runs/${h.id}/forgive`, {})).status, 409);
      await admin.get(`/member/${m.id}`);
      assert.equal(
        (await admin.post(`/staff/members/${m.id}`, { action: 'hnr_immune', hnr_immune: 'yes' })).status,
        303,
      );
      assert.equal((await reg.member(m.id)).hnr_immune, 1);
      assert.match((await dee.get(`/member/${m.id}`)).body, /immune to hit-and-runs/);
    });

    test('member classes (issue #16): the member sees the class and what the next needs; staff set one by hand', async () => {
      const code = await invite();
      const ev = client();
      await register(ev, 'ev', code);
      assert.equal((await ev.login('ev', PASSWORD)).status, 303);
      const m = await reg.member('ev');
      const own = await ev.get(`/member/${m.id}`);
      assert.match(own.body, /<h2 id="class">Class: User<\/h2>/);
      assert.match(own.body, /Power User needs an account 28 days old, 25\.0 GiB uploaded, a ratio of 1\.05/);
      await admin.get(`/member/${m.id}`);
      const set = await admin.post(`/staff/members/${m.id}`, { action: 'class', class: 'Power User' });
      assert.equal(set.status, 303);
      const after = await reg.member(m.id);
      assert.deepEqual([after.class, after.class_locked], ['Power User', 1]);
      const page = await ev.get(`/member/${m.id}`);
      assert.match(page.body, /Class: Power User/);
      assert.match(page.body, /Set by staff/);
      assert.match(page.body, /User → Power User \(staff\)/);
      await admin.get(`/member/${m.id}`);
      assert.equal(
        (await admin.post(`/staff/members/${m.id}`, { action: 'class', class: 'Gold' })).status,
        400,
      );
      assert.equal(
        (await admin.post(`/staff/members/${m.id}`, { action: 'class', class: 'auto' })).status,
        303,
      );
      assert.equal((await reg.member(m.id)).class_locked, 0);
    });

    test('bonus points (issue #16): staff give points; the member spends them in the shop, never beyond the balance', async () => {
      const code = await invite();
      const fin = client();
      await register(fin, 'fin', code);
      assert.equal((await fin.login('fin', PASSWORD)).status, 303);
      const m = await reg.member('fin');
      await admin.get(`/member/${m.id}`);
      const give = await admin.post(`/staff/members/${m.id}`, {
        action: 'bonus',
        points: '6000.5',
        note: 'contest',
      });
      assert.equal(give.status, 303);
      assert.equal(await reg.bonus.balance(m.id), 600050);
      await admin.get(`/member/${m.id}`);
      assert.equal(
        (await admin.post(`/staff/members/${m.id}`, { action: 'bonus', points: '1.234' })).status,
        400,
      );
      const shop = await fin.get('/bonus');
      assert.match(shop.body, /<div class="value" id="bonus-balance">6000\.50<\/div>/);
      assert.match(shop.body, /Invites \(5000\.00 points each\)/);
      assert.match(shop.body, /contest/);
      const bought = await fin.post('/bonus/buy', { item: 'invite', count: '1' });
      assert.equal(bought.status, 303);
      assert.equal(bought.location, '/bonus?msg=bought');
      const after = await reg.member(m.id);
      assert.equal(after.invites, m.invites + 1);
      assert.equal(await reg.bonus.balance(m.id), 100050);
      await fin.get('/bonus');
      const short = await fin.post('/bonus/buy', { item: 'token', count: '1' });
      assert.equal(short.status, 409);
      assert.match(short.body, /not enough bonus points: 2000\.00 needed, 1000\.50 held/);
      await fin.get('/bonus');
      assert.equal((await fin.post('/bonus/buy', { item: 'gold', count: '1' })).status, 400);
      assert.equal(await reg.bonus.balance(m.id), 100050, 'nothing spent by refusals');
      assert.equal((await reg.bonus.ledger(m.id)).length, 2);
      // A freeleech token, bought and spent on a torrent's page.
      await reg.bonus.give(after, 200000, { note: null, by: null, at: Math.floor(Date.now() / 1000) });
      await fin.get('/bonus');
      assert.equal((await fin.post('/bonus/buy', { item: 'token', count: '1' })).status, 303);
      const t = (await reg.listTorrents())[0];
      const tp = await fin.get(`/torrent/${t.id}`);
      assert.match(tp.body, /Use a freeleech token \(1 left\): free for you for 3 days/);
      const spent = await fin.post(`/torrent/${t.id}/token`, {});
      assert.equal(spent.status, 303);
      assert.equal((await reg.member(m.id)).freeleech_tokens, 0);
      assert.match((await fin.get(`/torrent/${t.id}`)).body, /Freeleech for you until/);
      assert.equal((await fin.post(`/torrent/${t.id}/token`, {})).status, 409);
    });

    test('profile, staff statistics and lists render; history snapshots and invite earning work', async () => {
      await tracker.portal!.tick();
      const root = await reg.member('root');
      // Traffic history: one record per member per hour at most, and only when totals moved.
      const t0 = Math.floor(Date.now() / 1000);
      await reg.db.kysely
        .updateTable('members')
        .set({ uploaded: 5 * 1024 ** 3 })
        .where('id', '=', root.id)
        .execute();
      assert.equal(await reg.accounts.snapshotTraffic(t0 + 60), 0, 'too soon');
      assert.equal(await reg.accounts.snapshotTraffic(t0 + 3700), 1, 'only the member whose totals moved');
      assert.deepEqual(
        (await reg.accounts.trafficHistory(root.id)).map((r) => r.uploaded),
        [0, 5 * 1024 ** 3],
      );
      const p = await admin.get(`/member/${root.id}`);
      assert.equal(p.status, 200);
      assert.match(p.body, /data-chart=/);
      assert.match(p.body, /Reset passkey/);
      const s = await admin.get('/staff/stats');
      assert.equal(s.status, 200);
      assert.match(s.body, /Announces\/s/);
      assert.ok((await reg.accounts.siteHistory()).length >= 1);
      await admin.get('/staff/lists');
      assert.equal(
        (await admin.post('/staff/lists', { action: 'add', list: 'client', value: '-qB4', note: '' })).status,
        303,
      );
      assert.deepEqual(
        (await reg.listClientPrefixes()).map((c) => c.prefix),
        ['-qB4'],
      );
      await admin.get('/staff/lists');
      await admin.post('/staff/lists', { action: 'remove', list: 'client', value: '-qB4' });
      assert.equal((await reg.listClientPrefixes()).length, 0);
      const earned = await reg.accounts.grantEarnedInvites({
        minRatio: 1,
        minAgeSeconds: 0,
        minUploaded: 0,
        perPeriod: 2,
        periodSeconds: 86400,
        at: Math.floor(Date.now() / 1000) + 10,
      });
      assert.ok(earned >= 1);
      const again = await reg.accounts.grantEarnedInvites({
        minRatio: 1,
        minAgeSeconds: 0,
        minUploaded: 0,
        perPeriod: 2,
        periodSeconds: 86400,
        at: Math.floor(Date.now() / 1000) + 20,
      });
      assert.equal(again, 0, 'once per period');
    });
  });
}

describe('portal configuration', () => {
  test('own listeners (portal_listen), open registration, and the portal off in open mode', async () => {
    const tracker = createTracker({
      http: ['127.0.0.1:0'],
      udp: ['off'],
      mode: 'private',
      databaseUrl: 'sqlite::memory:',
      portalListen: ['127.0.0.1:0'],
      registration: 'open',
      logLevel: 'silent',
    });
    await tracker.start();
    try {
      const own = tracker.addresses().portal[0];
      const c = new PortalClient(`http://127.0.0.1:${own.port}`);
      await c.get('/register');
      await c.post('/register', { invite: '', username: 'first', password: PASSWORD, password2: PASSWORD });
      const r = await c.get('/register');
      assert.equal(r.status, 200, 'open registration needs no invitation');
      const second = await c.post('/register', {
        invite: '',
        username: 'second',
        password: PASSWORD,
        password2: PASSWORD,
      });
      assert.equal(second.status, 303);
      assert.equal((await tracker.registry().member('second')).role, 'member');
      // The tracker port does not serve the portal when it has its own listeners.
      const onTracker = await fetch(`http://127.0.0.1:${tracker.addresses().http[0].port}/login`);
      assert.equal(onTracker.status, 404);
    } finally {
      await tracker.stop();
    }
    const open = createTracker({
      http: ['127.0.0.1:0'],
      udp: ['off'],
      databaseUrl: 'sqlite::memory:',
      logLevel: 'silent',
    });
    await open.start();
    try {
      assert.equal(open.portal, null);
      const r = await fetch(`http://127.0.0.1:${open.addresses().http[0].port}/login`);
      assert.equal(r.status, 404);
    } finally {
      await open.stop();
    }
  });

  test('behind trusted proxies: per-address login limits use the X-Forwarded-For entry before them; X-Forwarded-Proto https gives Secure cookies', async () => {
    const tracker = createTracker({
      http: ['127.0.0.1:0'],
      udp: ['off'],
      mode: 'private',
      databaseUrl: 'sqlite::memory:',
      // Two proxies in a chain: 10.0.0.2 forwards to the one on 127.0.0.1.
      trustedProxies: ['127.0.0.1', '10.0.0.2'],
      logLevel: 'silent',
    });
    await tracker.start();
    try {
      const c = new PortalClient(`http://127.0.0.1:${tracker.addresses().http[0].port}`);
      const login = (user: string, from: string) =>
        c.request(
          'POST',
          '/login',
          new URLSearchParams({ _csrf: c.csrf, username: user, password: 'wrong password' }).toString(),
          {
            'content-type': 'application/x-www-form-urlencoded',
            'x-forwarded-for': `203.0.113.9, ${from}, 10.0.0.2`,
            'x-forwarded-proto': 'https',
          },
        );
      const first = await c.request('GET', '/login', undefined, { 'x-forwarded-proto': 'https' });
      assert.ok(first.headers.getSetCookie().every((k) => /; Secure/.test(k)));
      for (let i = 0; i < 10; i++) assert.equal((await login(`user${i}`, '198.51.100.1')).status, 401);
      assert.equal((await login('user99', '198.51.100.1')).status, 429, 'that address is blocked');
      assert.equal((await login('user99', '198.51.100.2')).status, 401, 'another address is not');
    } finally {
      await tracker.stop();
    }
  });

  test('under a path prefix (portal_path): links, redirects and the tracker paths around it', async () => {
    const tracker = createTracker({
      http: ['127.0.0.1:0'],
      udp: ['off'],
      mode: 'private',
      databaseUrl: 'sqlite::memory:',
      portalPath: '/portal',
      logLevel: 'silent',
    });
    await tracker.start();
    try {
      const port = tracker.addresses().http[0].port;
      const c = new PortalClient(`http://127.0.0.1:${port}/portal`);
      const r = await c.get('/register');
      assert.equal(r.status, 200);
      assert.match(r.body, /action="\/portal\/register"/);
      assert.match(r.body, /href="\/portal\/static\/portal.css"/);
      assert.equal((await c.get('/static/portal.css')).status, 200);
      const done = await c.post('/register', {
        invite: '',
        username: 'root',
        password: PASSWORD,
        password2: PASSWORD,
      });
      assert.equal(done.location, '/portal/login?msg=registered');
      assert.equal((await c.login('root', PASSWORD)).location, '/portal/torrents');
      assert.equal((await fetch(`http://127.0.0.1:${port}/login`)).status, 404);
      assert.equal((await fetch(`http://127.0.0.1:${port}/health`)).status, 200);
    } finally {
      await tracker.stop();
    }
    assert.throws(() => createTracker({ portalPath: 'portal/' }), /portal_path/);
  });

  test('CLI: member password (from standard input) and member invite work with the portal', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-portal-cli-'));
    try {
      const run = (args: string[], input?: string) =>
        spawnSync(NODE, [join(ROOT, 'bin/herald.js'), ...args, '--data-dir', dir], {
          input,
          encoding: 'utf8',
        });
      assert.equal(run(['member', 'add', 'boss', '--role', 'admin']).status, 0);
      assert.equal(run(['member', 'password', 'boss'], 'short\n').status, 1, 'too short');
      const set = run(['member', 'password', 'boss'], `${PASSWORD}\n`);
      assert.equal(set.status, 0, set.stderr);
      const inv = run(['member', 'invite', '--member', 'boss', '--json']);
      assert.equal(inv.status, 0, inv.stderr);
      const { code } = JSON.parse(inv.stdout) as { code: string };
      const tracker = createTracker({
        http: ['127.0.0.1:0'],
        udp: ['off'],
        mode: 'private',
        dataDir: dir,
        logLevel: 'silent',
      });
      await tracker.start();
      try {
        const c = new PortalClient(`http://127.0.0.1:${tracker.addresses().http[0].port}`);
        assert.equal((await c.login('boss', PASSWORD)).location, '/torrents');
        const n = new PortalClient(c.base);
        await n.get(`/register?invite=${code}`);
        const r = await n.post('/register', {
          invite: code,
          username: 'newcomer',
          password: PASSWORD,
          password2: PASSWORD,
        });
        assert.equal(r.status, 303);
        assert.equal(
          (await tracker.registry().member('newcomer')).invited_by,
          (await tracker.registry().member('boss')).id,
        );
      } finally {
        await tracker.stop();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
