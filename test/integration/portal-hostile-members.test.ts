/**
 * Hostile members against the portal over real HTTP, on every database engine: uploads a member
 * starts and never finishes (memory), reset links that outlive the e-mail address they were mailed
 * to, and the attacks that held (session fixation, redirects, markup in what staff read).
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { Tracker } from '../../src/index.ts';
import { UPLOADS_AT_ONCE } from '../../src/web/portal/portal.ts';
import { hashPassword } from '../../src/web/portal/security.ts';
import { engines } from '../helpers/db.ts';
import { makeTorrent, PortalClient } from '../helpers/portal-client.ts';
import { loggedInMember, resetLinkFor, startPortalTracker } from '../helpers/portal-tracker.ts';

const PASSWORD = 'a long enough password';
const API_TOKEN = 'hostile-members-api-token-0123456789';

for (const engine of engines) {
  describe(`portal against hostile members (${engine.name})`, () => {
    let tracker: Tracker;
    let stop: () => Promise<void>;
    let base = '';
    let n = 0;

    before(async () => {
      ({ tracker, base, stop } = await startPortalTracker(engine, {
        udp: [],
        apiToken: API_TOKEN,
        hideRestricted: true,
        uploadsPerHour: 12,
      }));
    });

    after(async () => {
      await stop();
    });

    /** A new member (or staff), logged in from its own loopback address. */
    const member = (name: string, role: 'member' | 'moderator' | 'admin' = 'member') =>
      loggedInMember(tracker, base, { name, password: PASSWORD, role, localAddress: `127.0.2.${++n}` });

    /**
     * Starts an upload as `c` and sends most of a 4 MiB .torrent, never the end: what a hostile
     * member (or a very slow link) holds open. The answer, if Herald sends one before the body ends.
     */
    async function unfinishedUpload(c: PortalClient): Promise<{ socket: Socket; answer: Promise<string> }> {
      await c.get('/upload');
      const boundary = 'hostile-boundary';
      const head = Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="_csrf"\r\n\r\n${c.csrf}\r\n` +
          `--${boundary}\r\nContent-Disposition: form-data; name="category"\r\n\r\nOther\r\n` +
          `--${boundary}\r\nContent-Disposition: form-data; name="torrent"; filename="big.torrent"\r\n\r\n`,
      );
      const part = Buffer.alloc(2 * 1024 * 1024, 0x61);
      const url = new URL(base);
      const socket = connect({ host: url.hostname, port: Number(url.port), localAddress: c.localAddress! });
      socket.on('error', () => {});
      const answer = new Promise<string>((resolve) => {
        // Not a timing assertion: without an answer the test fails here instead of hanging.
        setTimeout(() => resolve(''), 15_000).unref();
        let got = '';
        socket.on('data', (d) => {
          got += d.toString('latin1');
        });
        socket.on('close', () => resolve(got));
        socket.on('end', () => resolve(got));
        socket.on('data', () => {
          if (got.includes('\r\n\r\n')) resolve(got);
        });
      });
      const cookie = [...c.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
      socket.write(
        `POST /upload HTTP/1.1\r\nHost: ${url.host}\r\nCookie: ${cookie}\r\n` +
          `Content-Type: multipart/form-data; boundary=${boundary}\r\nContent-Length: ${head.length + 4 * 1024 * 1024}\r\n\r\n`,
      );
      socket.write(head);
      socket.write(part);
      return { socket, answer };
    }

    /** Uploads `file` through the form as `c` (category Other, and `fields`). */
    async function upload(c: PortalClient, file: Buffer, fields: Record<string, string> = {}) {
      await c.get('/upload');
      return c.postMultipart(
        '/upload',
        { category: 'Other', ...fields },
        { name: 'torrent', filename: 'x.torrent', data: file },
      );
    }

    const status = (answer: string) => Number(/^HTTP\/1\.1 ([0-9]{3})/.exec(answer)?.[1] ?? 0);

    test('uploads a member starts and never finishes: one per member and a few in all are read, the rest answered at once', async () => {
      const { c } = await member('slowpoke');
      const first = await unfinishedUpload(c);
      const more = [];
      for (let i = 0; i < 5; i++) more.push(await unfinishedUpload(c));
      // Each further upload of the same member is refused before its body is read: it would
      // otherwise hold up to max_torrent_bytes of memory for the 5 minutes a body may take.
      for (const u of more) {
        const a = await u.answer;
        assert.equal(status(a), 429, a.slice(0, 200));
        assert.match(a, /still being received/);
      }
      // A complete upload of the same member meanwhile: refused the same way.
      const during = await upload(c, makeTorrent());
      assert.equal(during.status, 429);
      // Other members: at most UPLOADS_AT_ONCE bodies are read at once in all; beyond, 503 with
      // Retry-After, before the body is read.
      const others = [];
      for (let i = 0; i < UPLOADS_AT_ONCE - 1; i++)
        others.push(await unfinishedUpload((await member(`slow${i}`)).c));
      const { c: late } = await member('latecomer');
      const refused = await unfinishedUpload(late);
      const a = await refused.answer;
      assert.equal(status(a), 503, a.slice(0, 200));
      assert.match(a, /retry-after: 5/i);
      // Once the slow uploads end (the clients give up), uploads are read again.
      for (const u of [first, ...more, ...others, refused]) u.socket.destroy();
      let done = 0;
      for (let i = 0; i < 200 && done !== 303; i++) {
        done = (await upload(late, makeTorrent())).status;
        if (done !== 303) await new Promise((r) => setTimeout(r, 25));
      }
      assert.equal(done, 303);
      const again = await upload(c, makeTorrent());
      assert.equal(again.status, 303);
    });

    test('a reset link mailed before the member changed the e-mail address no longer works (portal and API)', async () => {
      const reg = tracker.registry();
      const { c, m } = await member('moving');
      await reg.updateMember(m.id, { email: 'old@example.org' });
      // A link mailed to the old address (a mailbox the member gave up, perhaps because it was read
      // by someone else).
      const token = await resetLinkFor(reg, m.id);
      const anon = new PortalClient(base);
      assert.equal((await anon.get(`/reset/${token}`)).status, 200);
      await c.get('/me/security');
      assert.equal(
        (await c.post('/me/email', { email: 'new@example.org', current: PASSWORD })).location,
        '/me/security?msg=email',
      );
      assert.equal((await anon.get(`/reset/${token}`)).status, 404);
      const used = await anon.post(`/reset/${token}`, {
        password: 'the thief wins',
        password2: 'the thief wins',
      });
      assert.equal(used.status, 404);
      assert.equal((await new PortalClient(base).login('moving', PASSWORD)).location, '/torrents');
      // The same when staff change it through the API.
      const token2 = await resetLinkFor(reg, m.id);
      const r = await fetch(`${base}/api/members/${m.id}`, {
        method: 'PATCH',
        headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ email: 'newer@example.org' }),
      });
      assert.equal(r.status, 200);
      assert.equal((await anon.get(`/reset/${token2}`)).status, 404);
      // Saving the same address again voids nothing: a link made after the change works.
      const token3 = await resetLinkFor(reg, m.id);
      await reg.updateMember(m.id, { email: 'newer@example.org' });
      assert.equal((await anon.get(`/reset/${token3}`)).status, 200);
    });

    test('hide_restricted: uploading a copy of a restricted torrent does not tell its name or id', async () => {
      const reg = tracker.registry();
      const { c: staff } = await member('hider', 'admin');
      const file = makeTorrent('a-public-looking-file');
      const up = await upload(staff, file, { name: 'Secret Project Name' });
      assert.equal(up.status, 303);
      const id = Number(/\/torrent\/([0-9]+)/.exec(up.location!)![1]);
      await reg.updateTorrent(id, { restricted: true });
      // A member without a grant, holding the same .torrent from elsewhere.
      const { c } = await member('prober');
      assert.equal((await c.get(`/torrent/${id}`)).status, 404);
      const again = await upload(c, file);
      assert.equal(again.status, 409);
      assert.doesNotMatch(again.body, /Secret Project Name/);
      assert.doesNotMatch(again.body, new RegExp(`#${id}\\b`));
      assert.match(again.body, /already registered/);
      // Staff (and members who may see it) are told which torrent it is.
      const own = await upload(staff, file);
      assert.equal(own.status, 409);
      assert.match(own.body, /Secret Project Name/);
    });

    test('a torrent taken down (removed, its hash on the deny list) cannot be uploaded again', async () => {
      const reg = tracker.registry();
      const { c: staff } = await member('takedown', 'admin');
      const file = makeTorrent('taken-down');
      const up = await upload(staff, file);
      assert.equal(up.status, 303);
      const t = (await reg.findTorrent(Number(/\/torrent\/([0-9]+)/.exec(up.location!)![1])))!;
      await reg.removeTorrent(t.id);
      await reg.addToList('deny', t.info_hash!, 'takedown notice 42');
      // A member who kept the .torrent uploads it again: it would be listed, its files and magnet
      // link handed out, while every announce for it is refused.
      const { c } = await member('reuploader');
      const again = await upload(c, file);
      assert.equal(again.status, 409, again.body.slice(0, 300));
      assert.match(again.body, /deny list/);
      assert.equal(await reg.findTorrent(t.info_hash!), undefined);
      // The API and the CLI (operators) are told the same.
      const api = await fetch(`${base}/api/torrents`, {
        method: 'POST',
        headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ info_hash: t.info_hash, name: 'again' }),
      });
      assert.equal(api.status, 409);
      // Off the deny list, it can be registered again.
      await reg.removeFromList('deny', t.info_hash!);
      assert.equal((await upload(c, file)).status, 303);
    });

    test('uploads per member and hour are limited (uploads_per_hour), counted before the body is read; staff are not limited', async () => {
      // Each upload is parsed on the event loop the tracker shares (0.6-1.4 s at the caps,
      // measured), and one of a torrent registered already costs the parse too: a member looping
      // on one file kept the tracker's event loop busy most of the time.
      const { c } = await member('looper');
      const file = makeTorrent('looped');
      assert.equal((await upload(c, file)).status, 303);
      for (let i = 1; i < 12; i++) assert.equal((await upload(c, file)).status, 409);
      const limited = await upload(c, makeTorrent('a new one'));
      assert.equal(limited.status, 429);
      assert.match(limited.body, /uploads per hour/);
      assert.ok(Number(limited.headers.get('retry-after')) > 0);
      // Not an attempt once the limit is met: the count stays where it is (no sliding lock-out).
      assert.equal((await upload(c, makeTorrent('another'))).status, 429);
      // Staff are not limited.
      const { c: staff } = await member('bulk', 'admin');
      for (let i = 0; i < 14; i++) assert.equal((await upload(staff, makeTorrent(`bulk ${i}`))).status, 303);
    });

    test('the last active administrator keeps the role and the access: not demoted, disabled or banned, not even by two admins at once', async () => {
      const reg = tracker.registry();
      const api = (path: string, body: unknown) =>
        fetch(`${base}/api/${path}`, {
          method: 'PATCH',
          headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
      const admins = async () =>
        (await reg.listMembers({ limit: 1000 })).filter((m) => m.role === 'admin' && m.status === 'active');
      // Two administrators demote each other at the same moment, a few times over.
      for (let round = 0; round < 4; round++) {
        const a = await member(`duel-a${round}`, 'admin');
        const b = await member(`duel-b${round}`, 'admin');
        // Every other administrator steps down first (through the API, as an operator would).
        for (const other of await admins())
          if (other.id !== a.m.id && other.id !== b.m.id)
            assert.equal((await api(`members/${other.id}`, { role: 'moderator' })).status, 200);
        await a.c.get(`/member/${b.m.id}`);
        await b.c.get(`/member/${a.m.id}`);
        const both = await Promise.all([
          a.c.post(`/staff/members/${b.m.id}`, { action: 'role', role: 'member' }),
          b.c.post(`/staff/members/${a.m.id}`, { action: 'role', role: 'member' }),
        ]);
        assert.ok(both.some((r) => r.status === 303));
        assert.equal((await admins()).length, 1, `round ${round}: ${both.map((r) => r.status)}`);
      }
      // The operator cannot remove the last one either (make another first).
      const [last] = await admins();
      for (const change of [
        { role: 'member' },
        { status: 'banned', reason: 'oops' },
        { status: 'disabled', reason: 'x' },
      ]) {
        const r = await api(`members/${last.id}`, change);
        assert.equal(r.status, 409, JSON.stringify(change));
        assert.match(((await r.json()) as { error: string }).error, /last active administrator/);
      }
      assert.equal((await admins()).length, 1);
    });

    test('held: session fixation, redirects after login, markup in names and texts staff read', async () => {
      const reg = tracker.registry();
      // A session token planted before login (by a script on a sibling site, a shared computer)
      // is never adopted: the login makes a new one, and the planted value logs nobody in.
      const planted = 'P'.repeat(43);
      const victimMember = await reg.addMember({
        username: 'fixed',
        passwordHash: await hashPassword(PASSWORD),
      });
      const victim = new PortalClient(base, { localAddress: `127.0.2.${++n}` });
      victim.cookies.set('herald_session', planted);
      victim.cookies.set('herald_csrf', 'x'.repeat(43));
      assert.equal((await victim.login('fixed', PASSWORD)).location, '/torrents');
      const issued = victim.cookies.get('herald_session');
      assert.ok(issued !== undefined && issued !== planted);
      assert.equal((await victim.get('/me')).location, `/member/${victimMember.id}`);
      const attacker = new PortalClient(base, { localAddress: `127.0.2.${++n}` });
      attacker.cookies.set('herald_session', planted);
      assert.equal((await attacker.get('/me')).location, '/login');
      // No parameter chooses where a login goes.
      const r = new PortalClient(base, { localAddress: `127.0.2.${++n}` });
      await r.get('/login?next=https://evil.example/');
      const to = await r.request(
        'POST',
        '/login?next=//evil.example/&return_to=https://evil.example/',
        new URLSearchParams({ _csrf: r.csrf, username: 'fixed', password: PASSWORD }).toString(),
        { 'content-type': 'application/x-www-form-urlencoded' },
      );
      assert.equal(to.location, '/torrents');
      // Markup in what members write and staff read comes out as text.
      const evil = `<img src=x onerror="alert(1)"><script>alert(2)</script>"'`;
      const { c: writer, m: w } = await member('writer');
      const up = await upload(writer, makeTorrent(`inner <img src=x onerror="alert(1)">`), {
        name: `name ${evil}`,
        description: `desc ${evil}`,
      });
      assert.equal(up.status, 303, /class="flash error"[^>]*>([^<]*)/.exec(up.body)?.[1]);
      await reg.setMemberStatus(w.id, 'disabled', `reason ${evil}`);
      await reg.accounts.addApplication({
        username: 'applicant',
        email: 'a@example.org',
        body: `body ${evil}`,
      });
      const { c: staff } = await member('readerstaff', 'admin');
      const pages = [
        up.location!,
        '/staff/torrents',
        '/staff/applications',
        '/staff/members?status=disabled',
        `/member/${w.id}`,
      ];
      for (const p of pages) {
        const page = await staff.get(p);
        assert.equal(page.status, 200, p);
        assert.ok(!page.body.includes('<img src=x'), p);
        assert.ok(!page.body.includes('<script>alert'), p);
        assert.match(page.body, /&lt;img src=x onerror=&quot;alert\(1\)&quot;&gt;/, p);
        assert.match(page.headers.get('content-security-policy') ?? '', /script-src 'self'/);
      }
    });
  });
}
