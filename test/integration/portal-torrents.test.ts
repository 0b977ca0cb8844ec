/**
 * Torrent files in the portal and the RSS feed, over real HTTP on every database engine (issue 15):
 * size and file-count caps at every way in (portal, API, CLI); personal copies built from a stored
 * template, byte for byte what re-encoding the stored file gives; the torrent page reading its file
 * list from the summary stored at upload, a page at a time; control characters kept out of feeds
 * and pages; restricted torrents served only to members holding a grant (or staff).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Registry } from '../../src/db/registry.ts';
import type { Tracker } from '../../src/index.ts';
import { type BValue, decode, encode } from '../../src/protocol/bencode/index.ts';
import { parseMetainfo } from '../../src/protocol/metainfo/index.ts';
import { hashPassword } from '../../src/web/portal/security.ts';
import { runHerald } from '../e2e/tracker-process.ts';
import { engines } from '../helpers/db.ts';
import { libtorrentHybrid } from '../helpers/libtorrent.ts';
import { makeTorrent, PortalClient } from '../helpers/portal-client.ts';
import { startPortalTracker } from '../helpers/portal-tracker.ts';
import { xmlWellFormedError } from '../helpers/xml.ts';

const PASSWORD = 'correct horse battery';
const API_TOKEN = 'portal-torrents-test-token-0123456789';
const MAX_FILES = 300;
const MAX_BYTES = 64 * 1024;

/** A v1 multi-file torrent with `n` one-kilobyte files (piece hashes are not checked by a tracker). */
function manyFiles(n: number, name: string): Buffer {
  const files = [];
  for (let i = 0; i < n; i++)
    files.push(
      new Map<string, unknown>([
        ['length', 1024],
        ['path', [Buffer.from(`dir ${i % 7}`), Buffer.from(`file ${String(i).padStart(4, '0')}.dat`)]],
      ]),
    );
  const pieceLength = 16384;
  return encode(
    new Map<string, unknown>([
      ['announce', Buffer.from('http://elsewhere.example/announce')],
      [
        'info',
        new Map<string, unknown>([
          ['files', files],
          ['name', Buffer.from(name)],
          ['piece length', pieceLength],
          ['pieces', Buffer.alloc(Math.ceil((n * 1024) / pieceLength) * 20, 7)],
        ]),
      ],
    ]) as never,
  );
}

/** A single-file v1 torrent of about `bytes` bytes: few files, many pieces. */
function bigPieces(bytes: number, name: string): Buffer {
  const pieces = Math.ceil(bytes / 20);
  return encode(
    new Map<string, unknown>([
      [
        'info',
        new Map<string, unknown>([
          ['length', pieces * 16384],
          ['name', Buffer.from(name)],
          ['piece length', 16384],
          ['pieces', Buffer.alloc(pieces * 20, 3)],
        ]),
      ],
    ]) as never,
  );
}

/**
 * What a personal copy has always been: the stored file decoded, `announce` and `announce-list`
 * set, encoded again (keys sorted). The template must give exactly these bytes.
 */
function reencoded(stored: Uint8Array, passkeyUrls: string[]): Buffer {
  const d = decode(stored);
  assert.ok(d.ok);
  const top = new Map(d.value as Map<string, BValue>) as Map<string, unknown>;
  const tier = (scheme: string) => passkeyUrls.filter((u) => u.startsWith(`${scheme}://`));
  const tiers = [tier('http'), tier('https'), tier('udp')].filter((t) => t.length > 0);
  top.set('announce', Buffer.from(tiers[0][0]));
  top.set(
    'announce-list',
    tiers.map((t) => t.map((u) => Buffer.from(u))),
  );
  return encode(top as never);
}

const sha1 = (b: Buffer) => createHash('sha1').update(b).digest('hex');

for (const engine of engines) {
  describe(`torrents in the portal on ${engine.name}`, () => {
    let tracker: Tracker;
    let reg: Registry;
    let base: string;
    let stop: () => Promise<void>;
    const admin = new PortalClient('');
    const client = () => new PortalClient(base);

    /** A member with a password, logged in. */
    const member = async (username: string, role: 'member' | 'moderator' = 'member') => {
      await reg.addMember({ username, role, passwordHash: await hashPassword(PASSWORD) });
      const c = client();
      assert.equal((await c.login(username, PASSWORD)).status, 303);
      return { c, m: await reg.member(username) };
    };
    const upload = async (c: PortalClient, data: Buffer, fields: Record<string, string> = {}) => {
      await c.get('/upload');
      return c.postMultipart(
        '/upload',
        { category: 'Software', ...fields },
        { name: 'torrent', filename: 'x.torrent', data },
      );
    };
    const uploaded = async (c: PortalClient, data: Buffer, fields: Record<string, string> = {}) => {
      const up = await upload(c, data, fields);
      assert.equal(up.status, 303, up.body.slice(0, 2000));
      return Number(/\/torrent\/([0-9]+)/.exec(up.location ?? '')?.[1]);
    };
    const api = (method: string, path: string, body?: unknown) =>
      fetch(`${base}/api/${path}`, {
        method,
        headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    /** A row written the way releases before templates wrote it: the file, no summary. */
    const legacyRow = async (name: string, metainfo: Buffer, restricted = false) => {
      const parsed = parseMetainfo(metainfo);
      assert.ok(parsed.ok);
      const t = parsed.torrent;
      const r = await reg.db.kysely
        .insertInto('torrents')
        .values({
          info_hash: t.infoHashV1?.toString('hex') ?? null,
          info_hash_v2: t.infoHashV2?.toString('hex') ?? null,
          name,
          size: t.totalSize,
          file_count: t.files.length,
          category: 'TV',
          description: null,
          uploader_id: null,
          created_at: Math.floor(Date.now() / 1000),
          download_factor: 100,
          upload_factor: 100,
          restricted: restricted ? 1 : 0,
          snatches: 0,
          metainfo,
        })
        .returning('id')
        .executeTakeFirstOrThrow();
      return r.id;
    };

    before(async () => {
      ({ tracker, reg, base, stop } = await startPortalTracker(engine, {
        apiToken: API_TOKEN,
        maxTorrentFiles: MAX_FILES,
        maxTorrentBytes: MAX_BYTES,
      }));
      (admin as { base: string }).base = base;
      await admin.get('/register');
      await admin.post('/register', {
        invite: '',
        username: 'root',
        email: '',
        password: PASSWORD,
        password2: PASSWORD,
      });
      assert.equal((await admin.login('root', PASSWORD)).status, 303);
    });
    after(() => stop());

    test('a .torrent over max_torrent_files or max_torrent_bytes is refused with a clear message, in the portal and the API', async () => {
      const { c } = await member('capper');
      const tooMany = manyFiles(MAX_FILES + 1, 'too many');
      assert.ok(tooMany.length < MAX_BYTES, 'refused for its files, not its size');
      const r1 = await upload(c, tooMany);
      assert.equal(r1.status, 413);
      assert.match(r1.body, /more than 300 files/);
      const tooBig = bigPieces(MAX_BYTES + 1024, 'too big');
      const r2 = await upload(c, tooBig);
      assert.equal(r2.status, 413);
      assert.match(r2.body, /at most 64\.0 KiB/);
      for (const data of [tooMany, tooBig]) {
        const r = await api('POST', 'torrents', { metainfo: data.toString('base64') });
        assert.equal(r.status, 413);
        assert.match(((await r.json()) as { error: string }).error, /more than 300 files|at most 64\.0 KiB/);
      }
      assert.equal((await reg.listTorrents({ search: 'too' })).length, 0);
      // At the cap is fine.
      await uploaded(c, manyFiles(MAX_FILES, 'just enough'));
    });

    test('the torrent page lists the files from the summary stored at upload, a page at a time', async () => {
      const { c } = await member('pager');
      const id = await uploaded(c, manyFiles(250, 'paged'));
      // The page never needs the .torrent: without it the files and the magnet link still show.
      await reg.db.kysely.updateTable('torrents').set({ metainfo: null }).where('id', '=', id).execute();
      const first = await c.get(`/torrent/${id}`);
      assert.equal(first.status, 200);
      assert.match(first.body, /Files \(250\)/);
      assert.match(first.body, /magnet:\?xt=urn:btih:/);
      const rows = (body: string) => [...body.matchAll(/<td class="mono">([^<]+)<\/td>/g)].map((m) => m[1]);
      assert.equal(rows(first.body).length, 100);
      assert.equal(rows(first.body)[0], 'paged/dir 0/file 0000.dat');
      assert.match(first.body, new RegExp(`href="/torrent/${id}\\?files=2`));
      const last = await c.get(`/torrent/${id}?files=3`);
      assert.deepEqual(rows(last.body).length, 50);
      assert.equal(rows(last.body).at(-1), 'paged/dir 4/file 0249.dat');
      assert.doesNotMatch(last.body, /files=4/);
      assert.equal(rows((await c.get(`/torrent/${id}?files=99`)).body).length, 0);
    });

    test('personal copies come from the template: the bytes re-encoding the stored file gave, v1 and hybrid', async () => {
      const { c, m } = await member('copier');
      const urls = tracker.publicUrls().map((u) => `${u}/announce/${m.passkey}`);
      for (const data of [
        makeTorrent('template v1'),
        libtorrentHybrid('template hybrid', { 'a.bin': 40000, 'sub/b.txt': 100 }),
      ]) {
        const id = await uploaded(c, data);
        const stored = (await reg.files.file(id))!;
        const dl = await c.get(`/torrent/${id}/download`);
        assert.equal(dl.status, 200);
        assert.equal(sha1(dl.bytes), sha1(reencoded(stored, urls)));
        const t = parseMetainfo(dl.bytes);
        assert.ok(t.ok);
        assert.equal(t.torrent.private, true);
        assert.equal(t.torrent.infoHashV1?.toString('hex'), (await reg.torrent(id)).info_hash);
      }
    });

    test('a torrent stored before templates gets one on first download, and its summary on first view', async () => {
      const { c, m } = await member('legacy');
      const stored = libtorrentHybrid('legacy hybrid', { 'a.bin': 40000, 'sub/b.txt': 100 });
      const id = await legacyRow('legacy hybrid', stored);
      const urls = tracker.publicUrls().map((u) => `${u}/announce/${m.passkey}`);
      const saved = () =>
        reg.db.kysely
          .selectFrom('torrents')
          .select(['announce_slots', 'meta_version'])
          .where('id', '=', id)
          .executeTakeFirstOrThrow();
      assert.deepEqual({ ...(await saved()) }, { announce_slots: null, meta_version: null });
      for (let i = 0; i < 2; i++) {
        const dl = await c.get(`/torrent/${id}/download`);
        assert.equal(dl.status, 200);
        assert.equal(sha1(dl.bytes), sha1(reencoded(stored, urls)));
        assert.match((await saved()).announce_slots ?? '', /^[0-9]+,[0-9]+,[0-9]+,[0-9]+$/);
      }
      const page = await c.get(`/torrent/${id}`);
      assert.equal((await saved()).meta_version, 'hybrid');
      assert.match(page.body, /Files \(2\)/);
      assert.match(page.body, /legacy hybrid\/sub\/b\.txt/);
      assert.match(page.body, /hybrid · piece size 16.0 KiB/);
      assert.match(page.body, /urn:btmh:1220/);
    });

    test('a control character in a stored torrent name (a legacy row) does not break the feed or the pages', async () => {
      const { c, m } = await member('reader');
      await legacyRow('bad\x0bname\x01 \x1f!', makeTorrent('control chars'));
      const rss = await client().get(`/rss?key=${m.feed_key}`);
      assert.equal(rss.status, 200);
      assert.equal(xmlWellFormedError(rss.bytes), null);
      assert.match(rss.body, /<title>badname !<\/title>/);
      const list = await c.get('/torrents');
      assert.match(list.body, />badname !</);
      assert.doesNotMatch(list.body, /[\x00-\x08\x0b\x0c\x0e-\x1f]/);
    });

    test('control characters in names are refused at input: portal upload and edit, API, CLI; stripped from a .torrent name', async () => {
      const { c } = await member('typist');
      const up = await upload(c, makeTorrent('typed'), { name: 'a\x0bb' });
      assert.equal(up.status, 400);
      assert.match(up.body, /control characters/);
      const id = await uploaded(c, makeTorrent('from\x07torrent'));
      assert.equal((await reg.torrent(id)).name, 'fromtorrent');
      await admin.get(`/torrent/${id}`);
      const edit = await admin.post(`/staff/torrents/${id}`, {
        action: 'edit',
        name: 'x\x1by',
        category: 'Software',
        description: 'line one\nline two',
      });
      assert.equal(edit.status, 400);
      assert.match(edit.body, /control characters/);
      assert.equal((await reg.torrent(id)).name, 'fromtorrent');
      const patch = await api('PATCH', `torrents/${id}`, { name: 'x\u0000y' });
      assert.equal(patch.status, 400);
      const add = await api('POST', 'torrents', { info_hash: 'ab'.repeat(20), name: 'ctl\x0c' });
      assert.equal(add.status, 400);
      assert.match(((await add.json()) as { error: string }).error, /control characters/);
      // Descriptions keep their line breaks and tabs.
      const ok = await api('PATCH', `torrents/${id}`, { description: 'a\n\tb\r\n' });
      assert.equal(ok.status, 200);
    });

    test('one .torrent uploaded several times at once is registered once; every other upload gets 409, none an internal error', async () => {
      // Two members: one member's uploads are received one at a time (the second would be 429).
      const { c } = await member('twice');
      const { c: d } = await member('twice2');
      for (let round = 0; round < 3; round++) {
        const file = makeTorrent(`raced ${round}`);
        const viaApi = () =>
          api('POST', 'torrents', { metainfo: file.toString('base64') }).then(async (r) => ({
            status: r.status,
            body: await r.text(),
          }));
        // The API registers the file as it is; the portal marks it private first (another hash).
        const answers = await Promise.all([viaApi(), viaApi(), viaApi(), upload(c, file), upload(d, file)]);
        const statuses = answers.map((a) => a.status).sort();
        assert.equal(statuses.filter((s) => s === 201).length, 1, JSON.stringify(statuses));
        assert.equal(statuses.filter((s) => s === 303).length, 1, JSON.stringify(statuses));
        for (const a of answers)
          if (a.status !== 201 && a.status !== 303) {
            assert.equal(a.status, 409, a.body.slice(0, 300));
            assert.match(a.body, /already registered/);
          }
      }
    });

    test('bidirectional overrides (a name that reads "exe.pdf" backwards) are refused in typed names and stripped from a .torrent name and file list on pages and in the feed', async () => {
      const { c, m } = await member('spoofer');
      const typed = await upload(c, makeTorrent('typed bidi'), { name: 'report\u202efdp.exe' });
      assert.equal(typed.status, 400);
      assert.match(typed.body, /control characters/);
      const id = await uploaded(c, makeTorrent('invoice\u202efdp.exe\u2066'));
      assert.equal((await reg.torrent(id)).name, 'invoicefdp.exe');
      const page = await c.get(`/torrent/${id}`);
      assert.match(page.body, /invoicefdp\.exe/);
      const feed = await client().get(`/rss?key=${m.feed_key}`);
      for (const body of [page.body, (await c.get('/torrents')).body, feed.body])
        assert.doesNotMatch(body, /[\u202a-\u202e\u2066-\u2069]/);
      const patch = await api('PATCH', `torrents/${id}`, { name: 'x\u202dy' });
      assert.equal(patch.status, 400);
    });

    test('a restricted torrent: no .torrent, magnet link, hashes or file list without a grant; RSS leaves it out', async () => {
      const { c: uploader } = await member('owner');
      const { c: bob, m: bobM } = await member('bob');
      const { c: carol, m: carolM } = await member('carol');
      const { c: mod } = await member('mod', 'moderator');
      const id = await uploaded(uploader, makeTorrent('secret stuff'));
      await reg.updateTorrent(id, { restricted: true });
      const t = await reg.torrent(id);

      // Without a grant: the name (hide_restricted is off), nothing to download with.
      const page = await bob.get(`/torrent/${id}`);
      assert.equal(page.status, 200);
      assert.match(page.body, /secret stuff/);
      assert.doesNotMatch(page.body, /magnet:/);
      assert.doesNotMatch(page.body, new RegExp(t.info_hash!));
      assert.doesNotMatch(page.body, /\/download/);
      assert.doesNotMatch(page.body, /Files \(/);
      const dl = await bob.get(`/torrent/${id}/download`);
      assert.equal(dl.status, 403);
      assert.match(dl.body, /grant/);
      assert.match((await bob.get('/torrents')).body, /secret stuff/);
      const feed = await client().get(`/rss?key=${bobM.feed_key}`);
      assert.equal(xmlWellFormedError(feed.bytes), null);
      assert.doesNotMatch(feed.body, /secret stuff/);
      const viaFeed = await client().get(`/rss/download/${id}?key=${bobM.feed_key}`);
      assert.equal(viaFeed.status, 403);
      assert.doesNotMatch(viaFeed.bytes.toString('latin1'), /announce/);

      // A grant to a group carol is in opens everything to her, through the portal and the feed.
      await reg.addGroup('buyers');
      await reg.addToGroup('buyers', 'carol');
      await reg.grant({ torrent: id, group: 'buyers' });
      const cpage = await carol.get(`/torrent/${id}`);
      assert.match(cpage.body, /magnet:/);
      assert.match(cpage.body, /you hold a grant/);
      assert.equal((await carol.get(`/torrent/${id}/download`)).status, 200);
      const cfeed = await client().get(`/rss?key=${carolM.feed_key}`);
      assert.match(cfeed.body, /secret stuff/);
      assert.equal((await client().get(`/rss/download/${id}?key=${carolM.feed_key}`)).status, 200);
      // An expired grant is no grant.
      const g = await reg.grant({
        torrent: id,
        member: 'bob',
        expiresAt: Math.floor(Date.now() / 1000) - 10,
      });
      assert.equal((await bob.get(`/torrent/${id}/download`)).status, 403);
      await reg.revoke({ id: g.id });
      // Staff see and download everything (they manage the grants).
      assert.equal((await mod.get(`/torrent/${id}/download`)).status, 200);
      assert.match((await mod.get(`/torrent/${id}`)).body, /Grants/);
    });

    test('the CLI refuses a .torrent over the caps too', () => {
      if (engine.name !== 'sqlite') return;
      const dir = mkdtempSync(join(tmpdir(), 'herald-caps-'));
      try {
        const file = join(dir, 'many.torrent');
        writeFileSync(file, manyFiles(21, 'cli many'));
        const r = runHerald(['torrent', 'add', file, '--data-dir', dir, '--max-torrent-files', '20']);
        assert.equal(r.status, 1, r.stderr);
        assert.match(r.stderr, /more than 20 files/);
        const name = runHerald(['torrent', 'add', file, '--data-dir', dir, '--name', 'tab\there']);
        assert.equal(name.status, 1, name.stderr);
        assert.match(name.stderr, /control characters/);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });

  describe(`hide_restricted on ${engine.name}`, () => {
    let reg: Registry;
    let stop: () => Promise<void>;
    let base: string;

    before(async () => {
      ({ reg, base, stop } = await startPortalTracker(engine, { hideRestricted: true }));
    });
    after(() => stop());

    test('restricted torrents without a grant are left out of browse and search, and their pages are 404', async () => {
      await reg.addMember({ username: 'boss', role: 'admin', passwordHash: await hashPassword(PASSWORD) });
      await reg.addMember({ username: 'dave', passwordHash: await hashPassword(PASSWORD) });
      await reg.addMember({ username: 'erin', passwordHash: await hashPassword(PASSWORD) });
      const hidden = await reg.addTorrentFile(makeTorrent('hidden gem'), { restricted: true });
      await reg.addTorrentFile(makeTorrent('open gem'));
      await reg.grant({ torrent: hidden.id, member: 'erin' });
      const login = async (u: string) => {
        const c = new PortalClient(base);
        assert.equal((await c.login(u, PASSWORD)).status, 303);
        return c;
      };
      const dave = await login('dave');
      const browse = await dave.get('/torrents?q=gem');
      assert.match(browse.body, /open gem/);
      assert.doesNotMatch(browse.body, /hidden gem/);
      assert.match(browse.body, /1 torrent</);
      const page = await dave.get(`/torrent/${hidden.id}`);
      assert.equal(page.status, 404);
      assert.doesNotMatch(page.body, /hidden gem/);
      assert.equal((await dave.get(`/torrent/${hidden.id}/download`)).status, 404);
      const erin = await login('erin');
      assert.match((await erin.get('/torrents?q=gem')).body, /hidden gem/);
      assert.equal((await erin.get(`/torrent/${hidden.id}`)).status, 200);
      const boss = await login('boss');
      assert.match((await boss.get('/torrents?q=gem')).body, /hidden gem/);
    });

    test('a featured restricted torrent is named in the Featured box only to members who may have it', async () => {
      await reg.addMember({
        username: 'staffer',
        role: 'moderator',
        passwordHash: await hashPassword(PASSWORD),
      });
      await reg.addMember({ username: 'frank', passwordHash: await hashPassword(PASSWORD) });
      await reg.addMember({ username: 'gina', passwordHash: await hashPassword(PASSWORD) });
      const secret = await reg.addTorrentFile(makeTorrent('featured secret'), { restricted: true });
      const open = await reg.addTorrentFile(makeTorrent('featured open'));
      await reg.grant({ torrent: secret.id, member: 'gina' });
      const now = Math.floor(Date.now() / 1000);
      for (const t of [secret, open])
        await reg.promotions.feature(
          t.id,
          { startsAt: now - 60, endsAt: now + 86400, uploadFactor: 100 },
          null,
          now,
        );
      const featuredBox = async (u: string) => {
        const c = new PortalClient(base);
        assert.equal((await c.login(u, PASSWORD)).status, 303);
        const r = await c.get('/torrents');
        assert.equal(r.status, 200);
        const box = /<ul id="featured-list">([\s\S]*?)<\/ul>/.exec(r.body);
        assert.ok(box, 'the Featured box is shown');
        return box[1];
      };
      const frank = await featuredBox('frank');
      assert.match(frank, /featured open/);
      assert.doesNotMatch(frank, /featured secret/);
      assert.doesNotMatch(frank, new RegExp(`/torrent/${secret.id}"`));
      assert.match(await featuredBox('gina'), /featured secret/);
      assert.match(await featuredBox('staffer'), /featured secret/);
    });
  });
}
