/**
 * Private, whitelist and open-mode policy and private-mode accounting, over real sockets, on
 * every database engine (SQLite always; PostgreSQL in CI: test/helpers/db.ts).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ManualClock } from '../../src/core/clock.ts';
import type { Registry } from '../../src/db/registry.ts';
import { createTracker, type Tracker } from '../../src/index.ts';
import {
  type ConnectionId,
  parseResponse,
  writeAnnounceRequest,
  writeConnectRequest,
  writeScrapeRequest,
} from '../../src/protocol/udp/codec.ts';
import {
  type AnnounceFields,
  announcePath,
  bdecode,
  hashOf,
  httpGet,
  pct,
  text,
  udpClient,
} from '../helpers/clients.ts';
import { engines } from '../helpers/db.ts';
import { privateTrackerConfig } from '../helpers/store-tracker.ts';
import { id20, Peer } from '../helpers/ws-peer.ts';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const bin = (b: Uint8Array) => Buffer.from(b).toString('latin1');
const TOKEN = 'test-token-0123456789abcdef';

for (const engine of engines) {
  describe(`private mode on ${engine.name}`, () => {
    let tracker: Tracker;
    let reg: Registry;
    let port: number;
    let udpPort: number;
    let drop: () => Promise<void>;
    const clock = new ManualClock(1_900_000_000);
    let alice: { id: number; passkey: string };
    let bob: { id: number; passkey: string };
    const open = hashOf(1, 77);
    const restricted = hashOf(2, 77);
    const freeleech = hashOf(3, 77);
    const double = hashOf(4, 77);
    const unregistered = hashOf(5, 77);

    before(async () => {
      const db = await engine.create();
      drop = db.drop;
      tracker = createTracker(
        privateTrackerConfig({
          udp: ['127.0.0.1:0'],
          databaseUrl: db.url,
          maxRate: 100_000_000,
          apiToken: TOKEN,
          interval: 1200,
          minInterval: 60,
          peerTimeout: 1500,
        }),
        { clock },
      );
      await tracker.start();
      port = tracker.addresses().http[0].port;
      udpPort = tracker.addresses().udp[0].port;
      reg = tracker.registry();
      alice = await reg.addMember({ username: 'alice' });
      bob = await reg.addMember({ username: 'bob' });
      await reg.addTorrent({ infoHash: hex(open), infoHashV2: null, name: 'open', size: 1000, fileCount: 1 });
      await reg.addTorrent({
        infoHash: hex(restricted),
        infoHashV2: null,
        name: 'licensed',
        size: 1000,
        fileCount: 1,
        restricted: true,
      });
      await reg.addTorrent({
        infoHash: hex(freeleech),
        infoHashV2: null,
        name: 'free',
        size: 1000,
        fileCount: 1,
        downloadFactor: 0,
      });
      await reg.addTorrent({
        infoHash: hex(double),
        infoHashV2: null,
        name: 'double',
        size: 1000,
        fileCount: 1,
        uploadFactor: 200,
      });
      await tracker.policy.refresh();
    });
    after(async () => {
      await tracker.stop();
      await drop();
    });

    const announce = async (f: AnnounceFields & { passkey?: string | null; pathStyle?: 'prefix' }) => {
      const base =
        f.passkey === null || f.passkey === undefined
          ? '/announce'
          : f.pathStyle === 'prefix'
            ? `/${f.passkey}/announce`
            : `/announce/${f.passkey}`;
      const r = await httpGet(port, '127.0.0.1', announcePath({ ...f, base }));
      assert.equal(r.status, 200);
      return bdecode(r.body);
    };
    const failure = async (f: Parameters<typeof announce>[0]) => {
      const d = await announce(f);
      assert.ok(d.has('failure reason'), `expected a failure, got ${[...d.keys()]}`);
      return text(d.get('failure reason'));
    };
    const ok = async (f: Parameters<typeof announce>[0]) => {
      const d = await announce(f);
      assert.equal(d.get('failure reason'), undefined, `refused: ${text(d.get('failure reason'))}`);
      return d;
    };

    test('refusals each carry their failure reason', async () => {
      assert.match(
        await failure({ infoHash: open, port: 6001 }),
        /private tracker: use your personal announce URL/,
      );
      assert.match(await failure({ infoHash: open, port: 6001, passkey: 'f'.repeat(32) }), /unknown passkey/);
      assert.match(
        await failure({ infoHash: unregistered, port: 6001, passkey: alice.passkey }),
        /not registered/,
      );
      assert.match(await failure({ infoHash: restricted, port: 6001, passkey: alice.passkey }), /no access/);
      await ok({ infoHash: open, port: 6001, passkey: alice.passkey, event: 'stopped' });
      await ok({ infoHash: open, port: 6001, passkey: alice.passkey, pathStyle: 'prefix', event: 'stopped' });

      const carol = await reg.addMember({ username: 'carol' });
      await reg.setMemberStatus(carol.id, 'disabled', 'inactive');
      const dave = await reg.addMember({ username: 'dave' });
      await reg.setMemberStatus(dave.id, 'banned', 'cheating');
      await tracker.policy.refresh();
      assert.match(
        await failure({ infoHash: open, port: 6002, passkey: carol.passkey }),
        /account is disabled/,
      );
      assert.match(await failure({ infoHash: open, port: 6002, passkey: dave.passkey }), /account is banned/);
      // A reset passkey: the old one stops working, the new one works.
      const reset = await reg.resetPasskey(carol.id);
      await reg.setMemberStatus(carol.id, 'active', null);
      await tracker.policy.refresh();
      assert.match(await failure({ infoHash: open, port: 6002, passkey: carol.passkey }), /unknown passkey/);
      await ok({ infoHash: open, port: 6002, passkey: reset.passkey, event: 'stopped' });
    });

    test('scrape needs a passkey and answers only for registered torrents', async () => {
      const scrape = async (path: string) => bdecode((await httpGet(port, '127.0.0.1', path)).body);
      assert.match(
        text((await scrape(`/scrape?info_hash=${pct(open)}`)).get('failure reason')),
        /private tracker/,
      );
      assert.match(
        text((await scrape(`/scrape/${alice.passkey}?info_hash=${pct(unregistered)}`)).get('failure reason')),
        /not registered/,
      );
      const d = await scrape(`/scrape/${alice.passkey}?info_hash=${pct(open)}`);
      assert.ok((d.get('files') as Map<string, unknown>).has(Buffer.from(open).toString('latin1')));
      // Full scrape would list a private tracker's torrents to anyone: never offered.
      assert.match(
        text((await scrape(`/scrape/${alice.passkey}`)).get('failure reason')),
        /full scrape is disabled/,
      );
    });

    test('restricted torrents: grants to members and groups, revocation, expiry', async () => {
      const g = await reg.grant({ torrent: hex(restricted), member: alice.id, reference: 'order-17' });
      await tracker.policy.refresh();
      await ok({ infoHash: restricted, port: 6003, passkey: alice.passkey, event: 'stopped' });
      assert.match(await failure({ infoHash: restricted, port: 6003, passkey: bob.passkey }), /no access/);
      await reg.revoke({ id: g.id });
      await tracker.policy.refresh();
      assert.match(await failure({ infoHash: restricted, port: 6003, passkey: alice.passkey }), /no access/);

      await reg.addGroup('buyers');
      await reg.addToGroup('buyers', 'bob');
      await reg.grant({ torrent: hex(restricted), group: 'buyers' });
      await tracker.policy.refresh();
      await ok({ infoHash: restricted, port: 6003, passkey: bob.passkey, event: 'stopped' });
      await reg.removeFromGroup('buyers', 'bob');
      // An expired grant is no grant.
      await reg.grant({
        torrent: hex(restricted),
        member: bob.id,
        expiresAt: Math.floor(Date.now() / 1000) - 10,
      });
      await tracker.policy.refresh();
      assert.match(await failure({ infoHash: restricted, port: 6003, passkey: bob.passkey }), /no access/);
    });

    test('client whitelist by peer id prefix', async () => {
      await reg.addClientPrefix('-qB4');
      await tracker.policy.refresh();
      assert.match(
        await failure({
          infoHash: open,
          port: 6004,
          passkey: alice.passkey,
          peerId: Buffer.from('-XX1000-abcdefghijkl'),
        }),
        /client is not allowed/,
      );
      await ok({
        infoHash: open,
        port: 6004,
        passkey: alice.passkey,
        peerId: Buffer.from('-qB4500-abcdefghijkl'),
        event: 'stopped',
      });
      await reg.removeClientPrefix('-qB4');
      await tracker.policy.refresh();
      await ok({ infoHash: open, port: 6004, passkey: alice.passkey, event: 'stopped' });
    });

    test('UDP: the passkey travels in BEP 41 URL data', async () => {
      const c = await udpClient(4);
      const buf = Buffer.alloc(1024);
      try {
        const cr = parseResponse(
          (await c.request(buf.subarray(0, writeConnectRequest(buf, 1)), udpPort))!,
          16,
        ) as { connectionId: ConnectionId };
        const send = async (urlData: string | null, infoHash: Uint8Array) => {
          const n = writeAnnounceRequest(buf, {
            connectionId: cr.connectionId,
            transactionId: 9,
            infoHash,
            peerId: Buffer.from('-UD0001-abcdefghijkl'),
            downloaded: 0,
            left: 100,
            uploaded: 0,
            event: 3,
            numWant: 10,
            port: 6005,
            urlData,
          });
          const reply = (await c.request(buf.subarray(0, n), udpPort))!;
          return parseResponse(reply, reply.length);
        };
        assert.equal((await send(`/announce/${alice.passkey}`, open)).action, 1);
        const noKey = (await send(null, open)) as { action: number; message: string };
        assert.equal(noKey.action, 3);
        // No URL data (Transmission, aria2, rTorrent): told to use the https:// URL instead.
        assert.match(noKey.message, /passkey: use the https:\/\/ announce URL/);
        const bad = (await send('/announce/0123', open)) as { action: number; message: string };
        assert.match(bad.message, /unknown passkey/);
        // BEP 15 scrape carries no URL data: a private tracker cannot tell who asks.
        const sn = writeScrapeRequest(buf, cr.connectionId, 10, [open]);
        const sreply = (await c.request(buf.subarray(0, sn), udpPort))!;
        const sr = parseResponse(sreply, sreply.length) as {
          action: number;
          message: string;
        };
        assert.equal(sr.action, 3);
        assert.match(sr.message, /passkey: use the https:\/\/ announce URL/);
      } finally {
        c.close();
      }
    });

    const memberRow = async (id: number) => reg.member(id);
    const mt = async (memberId: number, infoHash: Uint8Array) => {
      const t = await reg.torrent(hex(infoHash));
      return (await reg.memberTorrents(memberId)).find((r) => r.torrent_id === t.id);
    };

    test('accounting: start, progress, complete, stop, restart with reset counters', async () => {
      const m = await reg.addMember({ username: 'erin' });
      await tracker.policy.refresh();
      const f = {
        infoHash: open,
        port: 7001,
        passkey: m.passkey,
        peerId: Buffer.from('-qB4500-erinerin0001'),
      };
      await ok({ ...f, uploaded: 0, downloaded: 0, left: 1000, event: 'started' });
      clock.advance(60);
      await ok({ ...f, uploaded: 100, downloaded: 500, left: 500 });
      clock.advance(60);
      await ok({ ...f, uploaded: 300, downloaded: 1000, left: 0, event: 'completed' });
      clock.advance(600);
      await ok({ ...f, uploaded: 400, downloaded: 1000, left: 0, event: 'stopped' });
      // The client restarts: counters start again from zero with `started`.
      clock.advance(60);
      await ok({ ...f, uploaded: 0, downloaded: 0, left: 0, event: 'started' });
      clock.advance(60);
      await ok({ ...f, uploaded: 50, downloaded: 0, left: 0 });
      // A completed event repeated by a buggy client is not a second snatch.
      await ok({ ...f, uploaded: 50, downloaded: 0, left: 0, event: 'completed' });
      await tracker.accountant!.flush();
      const row = await memberRow(m.id);
      assert.equal(row.uploaded, 450);
      assert.equal(row.downloaded, 1000);
      assert.equal(row.raw_uploaded, 450);
      assert.equal(row.raw_downloaded, 1000);
      // Seeding from the completed announce to the stop (600 s), then after the restart (60 s).
      assert.equal(row.seed_time, 660);
      const r = (await mt(m.id, open))!;
      assert.equal(r.uploaded, 450);
      assert.equal(r.downloaded, 1000);
      assert.equal(r.announces, 7);
      assert.ok(r.completed_at !== null);
      const t = await reg.torrent(hex(open));
      assert.equal(t.snatches, 1);
    });

    test('accounting: two peers of one member add up; counters that go backwards credit nothing', async () => {
      const m = await reg.addMember({ username: 'frank' });
      await tracker.policy.refresh();
      const a = {
        infoHash: open,
        port: 7002,
        passkey: m.passkey,
        peerId: Buffer.from('-qB4500-frankpeer001'),
      };
      const b = {
        infoHash: open,
        port: 7003,
        passkey: m.passkey,
        peerId: Buffer.from('-TR4000-frankpeer002'),
      };
      await ok({ ...a, event: 'started', left: 0 });
      await ok({ ...b, event: 'started', left: 0 });
      clock.advance(30);
      await ok({ ...a, uploaded: 100, left: 0 });
      await ok({ ...b, uploaded: 250, left: 0 });
      clock.advance(30);
      await ok({ ...a, uploaded: 40, left: 0 }); // reset without `started`: new baseline
      clock.advance(30);
      await ok({ ...a, uploaded: 70, left: 0 });
      await tracker.accountant!.flush();
      const row = await memberRow(m.id);
      assert.equal(row.uploaded, 100 + 250 + 30);
    });

    test('accounting: freeleech, upload multiplier, site-wide factor', async () => {
      const m = await reg.addMember({ username: 'gina' });
      await tracker.policy.refresh();
      const run = async (infoHash: Uint8Array, port: number) => {
        const f = { infoHash, port, passkey: m.passkey, peerId: Buffer.from(`-qB4500-gina${port}0000`) };
        await ok({ ...f, event: 'started', left: 1000 });
        clock.advance(10);
        await ok({ ...f, uploaded: 1000, downloaded: 800, left: 200 });
      };
      await run(freeleech, 7004);
      await run(double, 7005);
      await reg.setSetting('site_download_factor', '50');
      await tracker.policy.refresh();
      await run(open, 7006);
      await reg.setSetting('site_download_factor', '100');
      await tracker.policy.refresh();
      await tracker.accountant!.flush();
      assert.deepEqual(
        { up: (await mt(m.id, freeleech))!.uploaded, down: (await mt(m.id, freeleech))!.downloaded },
        { up: 1000, down: 0 },
      );
      assert.equal((await mt(m.id, freeleech))!.raw_downloaded, 800);
      assert.equal((await mt(m.id, double))!.uploaded, 2000);
      assert.equal((await mt(m.id, double))!.downloaded, 800);
      assert.equal((await mt(m.id, open))!.downloaded, 400);
      const row = await memberRow(m.id);
      assert.equal(row.uploaded, 1000 + 2000 + 1000);
      assert.equal(row.downloaded, 0 + 800 + 400);
      assert.equal(row.raw_downloaded, 2400);
    });

    test('accounting: a leecher that reports nothing left has snatched, even without `completed`', async () => {
      const m = await reg.addMember({ username: 'ivan' });
      await tracker.policy.refresh();
      const f = {
        infoHash: freeleech,
        port: 7008,
        passkey: m.passkey,
        peerId: Buffer.from('-AR1360-ivanivan0001'),
      };
      const before = (await reg.torrent(hex(freeleech))).snatches;
      await ok({ ...f, event: 'started', left: 1000 });
      clock.advance(20);
      await ok({ ...f, downloaded: 1000, left: 0, event: 'stopped' });
      // A seeder from the start has snatched nothing.
      const g = {
        infoHash: freeleech,
        port: 7009,
        passkey: m.passkey,
        peerId: Buffer.from('-AR1360-ivanivan0002'),
      };
      await ok({ ...g, event: 'started', left: 0 });
      clock.advance(20);
      await ok({ ...g, left: 0, event: 'stopped' });
      await tracker.accountant!.flush();
      assert.equal((await reg.torrent(hex(freeleech))).snatches, before + 1);
      assert.ok((await mt(m.id, freeleech))!.completed_at !== null);
    });

    test('accounting: a delta faster than max_rate is flagged, not credited', async () => {
      const m = await reg.addMember({ username: 'hank' });
      await tracker.policy.refresh();
      const f = {
        infoHash: open,
        port: 7007,
        passkey: m.passkey,
        peerId: Buffer.from('-qB4500-hankhank0001'),
      };
      await ok({ ...f, event: 'started', left: 0 });
      clock.advance(10);
      await ok({ ...f, uploaded: 5_000_000_000, left: 0 }); // 500 MB/s > 100 MB/s
      clock.advance(10);
      await ok({ ...f, uploaded: 5_000_000_100, left: 0 });
      await tracker.accountant!.flush();
      assert.equal((await memberRow(m.id)).uploaded, 100);
      const flags = await reg.db.kysely
        .selectFrom('accounting_flags')
        .selectAll()
        .where('member_id', '=', m.id)
        .execute();
      assert.equal(flags.length, 1);
      assert.equal(flags[0].kind, 'rate');
      assert.equal(flags[0].uploaded, 5_000_000_000);
      assert.equal(flags[0].seconds, 10);
    });

    test('API: bearer token, validation, grant and revoke in one call each', async () => {
      const api = async (method: string, path: string, body?: unknown, token = TOKEN) => {
        const r = await fetch(`http://127.0.0.1:${port}/api${path}`, {
          method,
          headers: {
            ...(token ? { authorization: `Bearer ${token}` } : {}),
            ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
          },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
        return { status: r.status, body: (await r.json()) as Record<string, unknown> & { error?: string } };
      };
      assert.equal((await api('GET', '/members', undefined, '')).status, 401);
      assert.equal((await api('GET', '/members', undefined, 'wrong-token-but-long')).status, 401);
      const created = await api('POST', '/members', { username: 'ivy', email: 'ivy@example.org' });
      assert.equal(created.status, 201);
      assert.match(String((created.body.announce_urls as string[])[0]), /\/announce\/[0-9a-f]{32}$/);
      const bad = await api('POST', '/members', { username: 'x', role: 'god', extra: 1 });
      assert.equal(bad.status, 400);
      assert.ok(Array.isArray(bad.body.issues) && (bad.body.issues as unknown[]).length >= 2);
      assert.equal((await api('POST', '/members', { username: 'ivy' })).status, 409);
      assert.equal((await api('GET', '/members/nobody')).status, 404);
      const raw = await fetch(`http://127.0.0.1:${port}/api/members`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'text/plain' },
        body: 'username=ivy',
      });
      assert.equal(raw.status, 415);

      const ivyKey = String(created.body.passkey);
      await api('POST', '/reload');
      assert.match(await failure({ infoHash: restricted, port: 7010, passkey: ivyKey }), /no access/);
      const grant = await api('POST', '/grants', {
        torrent: hex(restricted),
        member: 'ivy',
        reference: 'shop-1',
      });
      assert.equal(grant.status, 201);
      await api('POST', '/reload');
      await ok({ infoHash: restricted, port: 7010, passkey: ivyKey, event: 'stopped' });
      const revoked = await api('DELETE', `/grants?torrent=${hex(restricted)}&member=ivy`);
      assert.equal(revoked.body.revoked, 1);
      await api('POST', '/reload');
      assert.match(await failure({ infoHash: restricted, port: 7010, passkey: ivyKey }), /no access/);

      const freeleechOn = await api('PATCH', `/torrents/${hex(double)}`, { freeleech: true });
      assert.equal(freeleechOn.body.download_factor, 0);
      const banned = await api('PATCH', '/members/ivy', { status: 'banned', reason: 'test' });
      assert.equal(banned.body.status, 'banned');
      await api('POST', '/reload');
      assert.match(await failure({ infoHash: open, port: 7010, passkey: ivyKey }), /banned/);
    });
  });
}

describe('whitelist and open modes', () => {
  test('whitelist: only listed or registered info hashes; changes apply on refresh', async () => {
    const t = createTracker({
      http: ['127.0.0.1:0'],
      udp: [],
      mode: 'whitelist',
      databaseUrl: 'sqlite::memory:',
      policyRefresh: 3600,
      logLevel: 'silent',
    });
    await t.start();
    try {
      const port = t.addresses().http[0].port;
      const get = async (h: Uint8Array) =>
        bdecode((await httpGet(port, '127.0.0.1', announcePath({ infoHash: h, port: 8000 }))).body);
      assert.match(text((await get(hashOf(10))).get('failure reason')), /not on the whitelist/);
      await t.registry().addToList('allow', hex(hashOf(10)));
      await t
        .registry()
        .addTorrent({ infoHash: hex(hashOf(11)), infoHashV2: null, name: 'x', size: 1, fileCount: 1 });
      assert.equal(await t.policy.refresh(), true);
      assert.equal((await get(hashOf(10))).get('failure reason'), undefined);
      assert.equal((await get(hashOf(11))).get('failure reason'), undefined);
      await t.registry().removeFromList('allow', hex(hashOf(10)));
      await t.policy.refresh();
      assert.match(text((await get(hashOf(10))).get('failure reason')), /not on the whitelist/);
    } finally {
      await t.stop();
    }
  });

  for (const mode of ['whitelist', 'open'] as const)
    test(`${mode}: a hash ${mode === 'open' ? 'put on the deny list' : 'taken off the allow list'} leaves the full scrape at once (HTTP and WebSocket)`, async () => {
      const clock = new ManualClock(1_900_000_000);
      const t = createTracker(
        {
          http: ['127.0.0.1:0'],
          udp: [],
          mode,
          fullScrape: true,
          fullScrapeInterval: 1,
          databaseUrl: 'sqlite::memory:',
          policyRefresh: 3600,
          logLevel: 'silent',
        },
        { clock },
      );
      await t.start();
      const [gone, stays] = [hashOf(40), hashOf(41)];
      const sockets: Peer[] = [];
      try {
        const port = t.addresses().http[0].port;
        if (mode === 'whitelist')
          for (const h of [gone, stays]) await t.registry().addToList('allow', hex(h));
        await t.policy.refresh();
        for (const [i, h] of [gone, stays].entries()) {
          const d = bdecode(
            (await httpGet(port, '127.0.0.1', announcePath({ infoHash: h, port: 8000 }))).body,
          );
          assert.equal(d.get('failure reason'), undefined);
          const p = new Peer(`ws://127.0.0.1:${port}/announce`, id20(40, i));
          sockets.push(p);
          await p.opened();
          assert.equal((await p.announce(bin(h)))['failure reason'], undefined);
        }
        const listed = async () => {
          clock.advance(10); // past the full scrape's rate limit and its cached answer
          const d = bdecode((await httpGet(port, '127.0.0.1', '/scrape')).body);
          const http = [...(d.get('files') as Map<string, unknown>).keys()].sort();
          const ws = Object.keys(await sockets[1].scrape()).sort();
          return { http, ws };
        };
        assert.deepEqual(await listed(), { http: [bin(gone), bin(stays)], ws: [bin(gone), bin(stays)] });
        if (mode === 'whitelist') await t.registry().removeFromList('allow', hex(gone));
        else await t.registry().addToList('deny', hex(gone));
        await t.policy.refresh();
        assert.deepEqual(await listed(), { http: [bin(stays)], ws: [bin(stays)] });
      } finally {
        for (const p of sockets) p.ws.terminate();
        await t.stop();
      }
    });

  test('open: anything goes but the blacklist', async () => {
    const t = createTracker({
      http: ['127.0.0.1:0'],
      udp: [],
      databaseUrl: 'sqlite::memory:',
      policyRefresh: 3600,
      logLevel: 'silent',
    });
    await t.start();
    try {
      const port = t.addresses().http[0].port;
      const get = async (h: Uint8Array) =>
        bdecode((await httpGet(port, '127.0.0.1', announcePath({ infoHash: h, port: 8000 }))).body);
      assert.equal((await get(hashOf(20))).get('failure reason'), undefined);
      await t.registry().addToList('deny', hex(hashOf(20)));
      await t.policy.refresh();
      assert.match(text((await get(hashOf(20))).get('failure reason')), /blacklisted/);
      assert.equal((await get(hashOf(21))).get('failure reason'), undefined);
    } finally {
      await t.stop();
    }
  });
});
