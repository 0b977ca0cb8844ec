/**
 * The connectable check (issue #16) over real sockets on loopback: a peer whose port answers a
 * BitTorrent handshake for its torrent is connectable; a closed port, a port that answers garbage,
 * one that answers for another torrent and one that never answers are not. The bounds (sockets
 * at once, queue), the peer-list option, IPv6, private addresses, and the result on the member
 * (API, /metrics).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { HeraldConfig } from '../../src/config/schema.ts';
import { createTracker, type Tracker } from '../../src/index.ts';
import { hashPassword } from '../../src/web/portal/security.ts';
import { closedPort, type FakePeer, fakePeer, Gauge, until } from '../helpers/bt-peer.ts';
import { announcePath, bdecode, hashOf, httpGet, text } from '../helpers/clients.ts';
import { PortalClient } from '../helpers/portal-client.ts';
import { deleteKeys, redisTargets, testPrefix } from '../helpers/redis.ts';

const TOKEN = 'connectable-token-0123456789abcdef';
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

async function start(extra: Partial<HeraldConfig>): Promise<Tracker> {
  const tracker = createTracker({
    http: ['127.0.0.1:0', '[::1]:0'],
    udp: [],
    mode: 'open',
    databaseUrl: 'sqlite::memory:',
    connectableCheck: 'any',
    connectablePrivateAddresses: true,
    connectableTimeout: 1,
    logLevel: 'silent',
    ...extra,
  });
  await tracker.start();
  return tracker;
}

/** One HTTP announce from 127.0.0.1 (or ::1 with `v6`): the decoded body. */
async function announce(
  t: Tracker,
  f: { infoHash: Uint8Array; port: number; left?: number; base?: string; v6?: boolean },
): Promise<Map<string, unknown>> {
  const a = t.addresses().http[f.v6 ? 1 : 0];
  const peerId = Buffer.from(`-TS0001-${String(f.port).padStart(12, '0')}`);
  const r = await httpGet(a.port, a.host, announcePath({ ...f, peerId, numwant: 200 }));
  return bdecode(r.body);
}

const stats = async (t: Tracker) => (await t.stats.snapshot()).connectable!;

/** Ports in a compact IPv4 peer list. */
function ports(peers: unknown): number[] {
  const b = peers as Buffer;
  const out: number[] = [];
  for (let i = 0; i + 6 <= b.length; i += 6) out.push(b.readUInt16BE(i + 4));
  return out.sort((x, y) => x - y);
}

describe('connectable check: what counts', () => {
  let t: Tracker;
  const hash = hashOf(1, 77);
  const other = hashOf(2, 77);
  const peers: FakePeer[] = [];
  before(async () => {
    t = await start({ connectableOnlyForUnconnectable: true });
  });
  after(async () => {
    await t.stop();
    for (const p of peers) await p.close();
  });

  test('a handshake for the torrent is connectable; closed, garbage, another torrent and silence are not', async () => {
    const good = await fakePeer('handshake', { infoHashes: [hash] });
    const garbage = await fakePeer('garbage');
    const wrong = await fakePeer('handshake', { infoHashes: [other] });
    const silent = await fakePeer('silent');
    peers.push(good, garbage, wrong, silent);
    const closed = await closedPort();
    for (const port of [good.port, garbage.port, wrong.port, silent.port, closed])
      await announce(t, { infoHash: hash, port });
    await until('five checks', async () => (await stats(t)).checks === 5);
    const s = await stats(t);
    assert.equal(s.connectable, 1);
    assert.equal(s.unconnectable, 4);
    assert.equal(s.timeouts, 1, 'the silent listener timed out');
    assert.equal(s.active, 0);
    // Each endpoint was checked once, with the torrent it announced and Herald's peer id.
    assert.deepEqual(good.handshakes, [hex(hash)]);
    assert.deepEqual(wrong.handshakes, [hex(hash)]);
    assert.equal(good.gauge.total, 1);
    // Within connectable_interval an endpoint is not checked again.
    await announce(t, { infoHash: hash, port: good.port });
    await announce(t, { infoHash: hash, port: closed });
    assert.equal((await stats(t)).checks, 5);
    assert.equal(good.gauge.total, 1);

    // connectable_only_for_unconnectable: the closed port's peer now gets only the connectable peer.
    const d = await announce(t, { infoHash: hash, port: closed });
    assert.equal(text(d.get('failure reason') ?? ''), '');
    assert.deepEqual(ports(d.get('peers')), [good.port]);
    // A connectable peer (and one not known) still gets everyone (but itself).
    const all = [garbage.port, wrong.port, silent.port, closed].sort((x, y) => x - y);
    assert.deepEqual(ports((await announce(t, { infoHash: hash, port: good.port })).get('peers')), all);

    const metrics = await (await fetch(`http://127.0.0.1:${t.addresses().http[0].port}/metrics`)).text();
    assert.match(metrics, /^herald_connectable_checks_total\{result="connectable"\} 1$/m);
    assert.match(metrics, /^herald_connectable_checks_total\{result="unconnectable"\} 4$/m);
    assert.match(metrics, /^herald_connectable_timeouts_total 1$/m);
  });

  test('IPv6: a peer on ::1 is checked on ::1', async () => {
    const good6 = await fakePeer('handshake', { host: '::1', infoHashes: [other] });
    peers.push(good6);
    const before = await stats(t);
    await announce(t, { infoHash: other, port: good6.port, v6: true });
    await until('the IPv6 check', async () => (await stats(t)).checks === before.checks + 1);
    assert.equal((await stats(t)).connectable, before.connectable + 1);
    assert.deepEqual(good6.handshakes, [hex(other)]);
  });
});

describe('connectable check: bounds', () => {
  test('never more than connectable_concurrency sockets; a full queue skips (counted); an endpoint once at a time', async () => {
    // Checks that last (a long timeout): the counts below are taken while they are open, and the
    // listeners end them by closing their side.
    const t = await start({ connectableConcurrency: 3, connectableQueue: 10, connectableTimeout: 60 });
    const gauge = new Gauge();
    const silent: FakePeer[] = [];
    for (let i = 0; i < 20; i++) silent.push(await fakePeer('silent', { gauge }));
    /** The listeners close what they hold until `n` checks have ended. */
    const drain = (n: number) =>
      until(`${n} checks`, async () => {
        for (const p of silent) p.drop();
        return (await stats(t)).checks === n;
      });
    try {
      const hash = hashOf(3, 77);
      for (const p of silent) await announce(t, { infoHash: hash, port: p.port });
      // 3 checking, 10 waiting, 7 skipped.
      const s = await stats(t);
      assert.equal(s.skippedQueueFull, 7);
      assert.equal(s.queued, 10);
      // The listeners' own count: three connections, and the waiting ten not connected.
      await until('three connections', () => gauge.total === 3);
      assert.equal(gauge.open, 3);
      assert.equal((await stats(t)).active, 3);
      // Never the same endpoint twice at once: announcing again while it is checked or waiting.
      await announce(t, { infoHash: hash, port: silent[0].port });
      await announce(t, { infoHash: hash, port: silent[5].port });
      assert.equal((await stats(t)).queued, 10);
      assert.equal(gauge.total, 3);
      await drain(13);
      const done = await stats(t);
      assert.equal(done.unconnectable, 13, 'closed without a handshake: not connectable');
      assert.equal(done.peakActive, 3);
      assert.equal(gauge.total, 13, 'connections the listeners accepted');
      // The skipped ones are tried at their next announce; the others have their result.
      for (const p of silent) await announce(t, { infoHash: hash, port: p.port });
      await drain(20);
      assert.equal((await stats(t)).peakActive, 3);
      assert.equal(gauge.total, 20);
    } finally {
      await t.stop();
      for (const p of silent) await p.close();
    }
  });

  test('loopback and private addresses are skipped unless connectable_private_addresses', async () => {
    const t = await start({ connectablePrivateAddresses: false });
    const good = await fakePeer('handshake', { infoHashes: [hashOf(4, 77)] });
    try {
      await announce(t, { infoHash: hashOf(4, 77), port: good.port });
      await announce(t, { infoHash: hashOf(4, 77), port: good.port });
      const s = await stats(t);
      assert.equal(s.skippedAddress, 1, 'counted once per endpoint and interval');
      assert.equal(s.checks, 0);
      assert.equal(good.gauge.total, 0);
    } finally {
      await t.stop();
      await good.close();
    }
  });

  test('off by default: nothing connects', async () => {
    const t = await start({ connectableCheck: 'off' });
    const good = await fakePeer('handshake', { infoHashes: [hashOf(5, 77)] });
    try {
      await announce(t, { infoHash: hashOf(5, 77), port: good.port });
      assert.equal((await t.stats.snapshot()).connectable, undefined);
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(good.gauge.total, 0);
    } finally {
      await t.stop();
      await good.close();
    }
  });
});

describe('connectable check: private mode records the result with the member', () => {
  test("the API's member object and the profile say yes for a connectable peer's torrent, no for another's", async () => {
    const t = await start({
      mode: 'private',
      connectableCheck: 'private',
      apiToken: TOKEN,
      flushInterval: 1,
    });
    const reg = t.registry();
    const hash = hashOf(6, 77);
    await reg.addTorrent({
      infoHash: hex(hash),
      infoHashV2: null,
      name: 'checked',
      size: 1000,
      fileCount: 1,
    });
    const alice = await reg.addMember({ username: 'alice' });
    const bob = await reg.addMember({ username: 'bob' });
    await t.policy.refresh();
    const good = await fakePeer('handshake', { infoHashes: [hash] });
    const closed = await closedPort();
    const api = async (id: number) => {
      const res = await fetch(`http://127.0.0.1:${t.addresses().http[0].port}/api/members/${id}`, {
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      assert.equal(res.status, 200);
      return (await res.json()) as {
        torrents_now: { torrent_id: number; state: string; connectable: string }[];
      };
    };
    try {
      await announce(t, { infoHash: hash, port: good.port, left: 0, base: `/announce/${alice.passkey}` });
      await announce(t, { infoHash: hash, port: closed, left: 10, base: `/announce/${bob.passkey}` });
      await until('results in the database', async () => {
        const [a, b] = [await api(alice.id), await api(bob.id)];
        return a.torrents_now[0]?.connectable === 'yes' && b.torrents_now[0]?.connectable === 'no';
      });
      const a = (await api(alice.id)).torrents_now;
      assert.equal(a.length, 1);
      assert.equal(a[0].state, 'seeding');
      assert.equal((await api(bob.id)).torrents_now[0].state, 'leeching');
      // The profile, as staff see it: the torrent's row says seeding / yes (and leeching / no).
      const password = 'connectable-staff-password';
      await reg.addMember({ username: 'staff', role: 'admin', passwordHash: await hashPassword(password) });
      const portal = new PortalClient(`http://127.0.0.1:${t.addresses().http[0].port}`);
      assert.equal((await portal.login('staff', password)).status, 303);
      const row = async (id: number) => {
        const page = await portal.get(`/member/${id}`);
        assert.equal(page.status, 200);
        return /<tr><td><a href="\/torrent\/\d+">checked<\/a>.*?<\/tr>/.exec(page.body)?.[0] ?? page.body;
      };
      assert.match(await row(alice.id), /<td>seeding<\/td><td class="connectable-yes"[^>]*>yes<\/td>/);
      assert.match(await row(bob.id), /<td>leeching<\/td><td class="connectable-no"[^>]*>no<\/td>/);
    } finally {
      await t.stop();
      await good.close();
    }
  });
});

for (const [name, url] of redisTargets)
  describe(`connectable check, private mode on a shared ${name} store`, () => {
    test('accepted announces are checked and recorded, a refused one is not; the peer-list option', async () => {
      const prefix = testPrefix();
      const t = await start({
        mode: 'private',
        connectableCheck: 'private',
        connectableOnlyForUnconnectable: true,
        peersPerTorrent: 1,
        store: url,
        redisPrefix: prefix,
        apiToken: TOKEN,
        flushInterval: 1,
      });
      const reg = t.registry();
      const hash = hashOf(8, 77);
      await reg.addTorrent({
        infoHash: hex(hash),
        infoHashV2: null,
        name: 'shared',
        size: 1000,
        fileCount: 1,
      });
      const alice = await reg.addMember({ username: 'alice' });
      const bob = await reg.addMember({ username: 'bob' });
      await t.policy.refresh();
      const good = await fakePeer('handshake', { infoHashes: [hash] });
      const second = await fakePeer('handshake', { infoHashes: [hash] });
      const closed = await closedPort();
      try {
        await announce(t, { infoHash: hash, port: good.port, left: 0, base: `/announce/${alice.passkey}` });
        await announce(t, { infoHash: hash, port: closed, left: 10, base: `/announce/${bob.passkey}` });
        // Bob's second client is over peers_per_torrent: refused, so never checked.
        const refused = await announce(t, {
          infoHash: hash,
          port: second.port,
          base: `/announce/${bob.passkey}`,
        });
        assert.match(text(refused.get('failure reason')), /too many clients on this torrent/);
        await until('two checks', async () => (await stats(t)).checks === 2);
        const s = await stats(t);
        assert.equal(s.connectable, 1);
        assert.equal(s.unconnectable, 1);
        assert.equal(second.gauge.total, 0);
        // Bob is not connectable: his list holds only Alice's connectable peer.
        const d = await announce(t, {
          infoHash: hash,
          port: closed,
          left: 10,
          base: `/announce/${bob.passkey}`,
        });
        assert.deepEqual(ports(d.get('peers')), [good.port]);
        const api = async (id: number) => {
          const res = await fetch(`http://127.0.0.1:${t.addresses().http[0].port}/api/members/${id}`, {
            headers: { authorization: `Bearer ${TOKEN}` },
          });
          return ((await res.json()) as { torrents_now: { connectable: string }[] }).torrents_now;
        };
        await until('results in the database', async () => {
          const [a, b] = [await api(alice.id), await api(bob.id)];
          return a[0]?.connectable === 'yes' && b[0]?.connectable === 'no';
        });
      } finally {
        await t.stop();
        await good.close();
        await second.close();
        await deleteKeys(url, prefix);
      }
    });
  });
