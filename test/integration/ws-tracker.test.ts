/**
 * WebTorrent in the whole tracker: the HTTP listener upgrades /announce to WebSocket, browsers
 * get swarms of their own (a desktop peer and a browser peer never receive each other), /stats
 * reports them apart and together, and private mode applies passkey policy and accounting.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WebSocket } from 'ws';
import type { Registry } from '../../src/db/registry.ts';
import { createTracker } from '../../src/index.ts';
import { announcePath, bdecode, hashOf, httpGet } from '../helpers/clients.ts';
import { privateTrackerConfig } from '../helpers/store-tracker.ts';
import { frame, rawWsClient } from '../helpers/ws-frames.ts';
import { id20, isOfferFor, Peer, sdp } from '../helpers/ws-peer.ts';

function open(url: string): Promise<{ ws: WebSocket; next: () => Promise<Record<string, unknown>> }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const queue: Record<string, unknown>[] = [];
    const waiting: ((m: Record<string, unknown>) => void)[] = [];
    ws.on('message', (d) => {
      const m = JSON.parse(String(d));
      const w = waiting.shift();
      if (w) w(m);
      else queue.push(m);
    });
    ws.once('open', () =>
      resolve({
        ws,
        next: () =>
          new Promise((r, j) => {
            const m = queue.shift();
            if (m) return r(m);
            const t = setTimeout(() => j(new Error('no message within 3 s')), 3000);
            waiting.push((x) => {
              clearTimeout(t);
              r(x);
            });
          }),
      }),
    );
    ws.once('error', reject);
  });
}

const bin = (b: Uint8Array) => Buffer.from(b).toString('latin1');

/** Registers a one-byte torrent of info hash `ih`. */
const register = (reg: Registry, ih: Uint8Array, name: string, restricted = false) =>
  reg.addTorrent({
    infoHash: Buffer.from(ih).toString('hex'),
    infoHashV2: null,
    name,
    size: 1,
    fileCount: 1,
    restricted,
  });

/** A private tracker on an in-memory database: HTTP only, flushes and policy reloads by hand. */
async function privateTracker() {
  const t = createTracker(privateTrackerConfig());
  await t.start();
  return t;
}

test('ws:// on the HTTP listener; browser and desktop swarms stay apart; /stats counts both', async () => {
  const t = createTracker({
    http: ['127.0.0.1:0'],
    udp: [],
    ws: ['127.0.0.1:0'],
    databaseUrl: 'sqlite::memory:',
    logLevel: 'silent',
  });
  await t.start();
  const port = t.addresses().http[0].port;
  const ih = hashOf(500);
  try {
    // A browser announces over the HTTP port (upgrade) as a seeder, another on the ws listener.
    const a = await open(`ws://127.0.0.1:${port}/announce`);
    a.ws.send(
      JSON.stringify({
        action: 'announce',
        info_hash: bin(ih),
        peer_id: '-WW0001-browser00001',
        left: 0,
        event: 'started',
        numwant: 5,
        offers: [],
      }),
    );
    const ra = await a.next();
    assert.equal(ra['failure reason'], undefined);
    assert.equal(ra.interval, t.config.interval);
    const b = await open(`ws://127.0.0.1:${t.addresses().ws[0].port}/announce`);
    b.ws.send(
      JSON.stringify({
        action: 'announce',
        info_hash: bin(ih),
        peer_id: '-WW0001-browser00002',
        left: 10,
        event: 'started',
        numwant: 5,
        offers: [],
      }),
    );
    const rb = await b.next();
    assert.equal(rb.complete, 1, 'the other browser is counted in the WebRTC swarm');

    // A desktop client on the same info hash sees neither browser.
    const d = bdecode(
      (await httpGet(port, '127.0.0.1', announcePath({ infoHash: ih, port: 6881, left: 0 }))).body,
    );
    assert.equal(d.get('complete'), 0);
    assert.equal(d.get('incomplete'), 0);
    assert.equal((d.get('peers') as Buffer).length, 0);

    const stats = JSON.parse((await httpGet(port, '127.0.0.1', '/stats')).body.toString());
    assert.equal(stats.webrtc.peers, 2);
    assert.equal(stats.webrtc.seeders, 1);
    assert.equal(stats.swarm.peers, 1);
    assert.equal(stats.total.peers, 3);
    assert.ok(stats.announces.ws >= 2);
    a.ws.close();
    b.ws.close();
  } finally {
    await t.stop();
  }
});

test('private mode over WebSocket: passkey in the path, refusals, accounting', async () => {
  const t = await privateTracker();
  const port = t.addresses().http[0].port;
  const ih = hashOf(501);
  try {
    const reg = t.registry();
    const m = await reg.addMember({ username: 'webby' });
    await register(reg, ih, 'w');
    await t.policy.refresh();
    const anon = await open(`ws://127.0.0.1:${port}/announce`);
    anon.ws.send(
      JSON.stringify({ action: 'announce', info_hash: bin(ih), peer_id: '-WW0001-anonymous001', left: 5 }),
    );
    assert.match(String((await anon.next())['failure reason']), /private tracker/);
    anon.ws.close();

    const c = await open(`ws://127.0.0.1:${port}/announce/${m.passkey}`);
    const msg = (f: Record<string, unknown>) =>
      JSON.stringify({ action: 'announce', info_hash: bin(ih), peer_id: '-WW0001-webbywebby01', ...f });
    c.ws.send(msg({ event: 'started', uploaded: 0, downloaded: 0, left: 100 }));
    assert.equal((await c.next())['failure reason'], undefined);
    c.ws.send(msg({ uploaded: 300, downloaded: 100, left: 0, event: 'completed' }));
    assert.equal((await c.next())['failure reason'], undefined);
    await t.accountant!.flush();
    const row = await reg.member(m.id);
    assert.equal(row.uploaded, 300);
    assert.equal(row.downloaded, 100);
    c.ws.close();
  } finally {
    await t.stop();
  }
});

test('ws_first_announce_timeout, ws_idle_timeout and ws_ping_interval apply to WebSockets on the HTTP port', async () => {
  const t = createTracker({
    http: ['127.0.0.1:0'],
    udp: [],
    interval: 1,
    minInterval: 1,
    peerTimeout: 2,
    wsFirstAnnounceTimeout: 1,
    wsIdleTimeout: 2,
    wsPingInterval: 1,
    databaseUrl: 'sqlite::memory:',
    logLevel: 'silent',
  });
  await t.start();
  const port = t.addresses().http[0].port;
  const url = `ws://127.0.0.1:${port}/announce`;
  const closed = (ws: WebSocket) =>
    new Promise<[number, string]>((r) => ws.once('close', (code, reason) => r([code, String(reason)])));
  const announce = (peer: string) =>
    JSON.stringify({ action: 'announce', info_hash: bin(hashOf(502)), peer_id: peer, left: 1 });
  try {
    const silent = await open(url);
    const quiet = await open(url);
    const dead = await rawWsClient(port);
    quiet.ws.send(announce('-WW0001-quietquiet01'));
    assert.equal((await quiet.next())['failure reason'], undefined);
    dead.sock.write(frame(1, Buffer.from(announce('-WW0001-deaddeadde01'))));
    const scraping = setInterval(
      () => quiet.ws.send(JSON.stringify({ action: 'scrape', info_hash: bin(hashOf(502)) })),
      200,
    );
    try {
      const [s, q] = await Promise.all([closed(silent.ws), closed(quiet.ws), dead.closed]);
      assert.deepEqual(s, [1001, 'no announce']);
      assert.deepEqual(q, [1001, 'idle timeout']);
      assert.ok(
        dead.frames().some((f) => f.opcode === 9),
        'the client that answers no ping was pinged',
      );
    } finally {
      clearInterval(scraping);
    }
  } finally {
    await t.stop();
  }
});

test('private mode over WebSocket: a revoked grant, a disabled member or a reset passkey gets no more offers once policy reloads', {
  timeout: 20_000,
}, async () => {
  const t = await privateTracker();
  const port = t.addresses().http[0].port;
  const ih = hashOf(502);
  const h = bin(ih);
  const peers: Peer[] = [];
  try {
    const reg = t.registry();
    await register(reg, ih, 'licensed', true);
    const names = ['seller', 'revoked', 'disabled', 'reset', 'kept'];
    const members = new Map<string, { id: number; passkey: string }>();
    const grants = new Map<string, number>();
    for (const [i, name] of names.entries()) {
      const m = await reg.addMember({ username: name });
      members.set(name, m);
      grants.set(name, (await reg.grant({ torrent: Buffer.from(ih).toString('hex'), member: m.id })).id);
      const p = new Peer(`ws://127.0.0.1:${port}/announce/${m.passkey}`, id20(502, i));
      await p.opened();
      peers.push(p);
    }
    await t.policy.refresh();
    const [seller, revoked, disabled, reset, kept] = peers;
    const closes = peers.map(
      (p) => new Promise<[number, string]>((r) => p.ws.once('close', (code, why) => r([code, String(why)]))),
    );
    for (const p of [revoked, disabled, reset, kept])
      assert.equal((await p.announce(h, { event: 'started' }))['failure reason'], undefined);
    const offers = (n: number, from: number) =>
      Array.from({ length: n }, (_, i) => ({ offer: sdp('offer', from + i), offer_id: id20(9, from + i) }));
    // Everyone holding a grant is offered to.
    const first = await seller.announce(h, { event: 'started', left: 0, offers: offers(4, 0) });
    assert.equal(first['failure reason'], undefined);
    for (const p of [revoked, disabled, reset, kept]) await p.waitFor(isOfferFor(h));

    await reg.revoke({ id: grants.get('revoked')! });
    await reg.setMemberStatus(members.get('disabled')!.id, 'disabled', 'inactive');
    await reg.resetPasskey(members.get('reset')!.id);
    await t.policy.refresh();
    // Those who lost access are told why and their sockets closed (policy violation), at once.
    const [r1, r2, r3] = await Promise.race([
      Promise.all(closes.slice(1, 4)),
      new Promise<never>((_, j) =>
        setTimeout(() => j(new Error('sockets still open 3 s after the reload')), 3000),
      ),
    ]);
    for (const [[code, why], reason] of [
      [r1, /no access to this torrent/],
      [r2, /account is disabled/],
      [r3, /unknown passkey/],
    ] as const) {
      assert.equal(code, 1008);
      assert.match(why, reason);
    }
    assert.match(String(revoked.got.at(-1)?.['failure reason']), /no access/);
    // Besides the seller, the swarm holds the one member still granted: only she is offered to.
    const second = await seller.announce(h, { left: 0, offers: offers(4, 10) });
    assert.equal(Number(second.complete) + Number(second.incomplete), 1);
    await kept.waitFor(isOfferFor(h), 2);
    for (const p of [revoked, disabled, reset]) assert.equal(p.got.filter(isOfferFor(h)).length, 1);
    assert.equal(kept.ws.readyState, WebSocket.OPEN);
  } finally {
    for (const p of peers) p.ws.terminate();
    await t.stop();
  }
});

test('private mode over WebSocket: a grant that expires closes the member’s socket when it expires, with no reload', {
  timeout: 20_000,
}, async () => {
  const t = await privateTracker();
  const port = t.addresses().http[0].port;
  const ih = hashOf(503);
  const h = bin(ih);
  const peers: Peer[] = [];
  try {
    const reg = t.registry();
    await register(reg, ih, 'licensed', true);
    const seller = await reg.addMember({ username: 'seller' });
    const renter = await reg.addMember({ username: 'renter' });
    await reg.grant({ torrent: Buffer.from(ih).toString('hex'), member: seller.id });
    const expiresAt = Math.floor(Date.now() / 1000) + 2;
    await reg.grant({ torrent: Buffer.from(ih).toString('hex'), member: renter.id, expiresAt });
    await t.policy.refresh();
    const loads = t.policy.loads;
    const [s, r] = [seller, renter].map(
      (m, i) => new Peer(`ws://127.0.0.1:${port}/announce/${m.passkey}`, id20(503, i)),
    );
    peers.push(s, r);
    await Promise.all([s.opened(), r.opened()]);
    const closed = new Promise<[number, string]>((res) =>
      r.ws.once('close', (code, why) => res([code, String(why)])),
    );
    assert.equal((await r.announce(h, { event: 'started' }))['failure reason'], undefined);
    assert.equal((await s.announce(h, { event: 'started', left: 0 }))['failure reason'], undefined);
    // The grant expires: nothing changed in the database, no reload runs; the expiry timer judges again.
    const [code, why] = await Promise.race([
      closed,
      new Promise<never>((_, j) =>
        setTimeout(() => j(new Error('socket still open 10 s after the expiry')), 10_000),
      ),
    ]);
    assert.equal(code, 1008);
    assert.match(why, /no access to this torrent/);
    assert.equal(t.policy.loads, loads, 'no reload ran');
    const again = await s.announce(h, { left: 0 });
    assert.equal(Number(again.complete) + Number(again.incomplete), 0);
  } finally {
    for (const p of peers) p.ws.terminate();
    await t.stop();
  }
});
