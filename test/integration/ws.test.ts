/**
 * The WebTorrent tracker over real WebSocket connections on 127.0.0.1 (the `ws` client):
 * announce, offer/answer relay, scrape, peer lifetime, and the abuse cases.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { WebSocket } from 'ws';
import { ManualClock } from '../../src/core/clock.ts';
import { Errors, type TrackerError } from '../../src/core/errors.ts';
import { createLogger } from '../../src/core/log.ts';
import { TrackerCounters } from '../../src/core/metrics.ts';
import type { AnnounceRequest } from '../../src/core/types.ts';
import { MAX_FRAGMENTS } from '../../src/frontend/ws/raw-websocket.ts';
import { WsFrontend, type WsFrontendOptions, wsPasskey } from '../../src/frontend/ws/server.ts';
import { WsSwarmErrors } from '../../src/frontend/ws/webrtc-swarms.ts';
import { WsReasons } from '../../src/protocol/websocket/codec.ts';
import { MemorySwarmStore } from '../../src/store/memory/memory-store.ts';
import { type RequestContext, TrackerService } from '../../src/tracker/service.ts';
import { closeCode, frame, rawWsClient } from '../helpers/ws-frames.ts';

type Msg = Record<string, unknown>;

const clock = new ManualClock(1000);
const logger = createLogger('silent');

function makeService(): TrackerService {
  return new TrackerService({
    store: new MemorySwarmStore({ peerTimeout: 1500 }),
    clock,
    counters: new TrackerCounters(),
    settings: { interval: 1200, minInterval: 60, defaultNumWant: 5, maxNumWant: 8 },
  });
}

/** Starts a frontend on 127.0.0.1:0; stopped when the calling test ends (unless `keep`). */
async function startFrontend(
  extra: Partial<WsFrontendOptions> = {},
  keep = false,
): Promise<{ f: WsFrontend; url: string; service: TrackerService }> {
  const service = extra.service ?? makeService();
  const f = new WsFrontend({
    service,
    listen: [{ host: '127.0.0.1', port: 0 }],
    logger,
    interval: 120,
    minInterval: 30,
    ...extra,
  });
  await f.start();
  if (!keep) after(() => f.stop());
  return { f, url: `ws://127.0.0.1:${f.addresses()[0].port}`, service };
}

/** A `ws` client with a message queue. */
class Client {
  ws: WebSocket;
  #queue: Msg[] = [];
  #waiters: (() => void)[] = [];
  closed: Promise<{ code: number; reason: string }>;
  opened: Promise<void>;

  constructor(url: string) {
    this.ws = new WebSocket(url);
    this.ws.on('message', (data) => {
      this.#queue.push(JSON.parse(String(data)) as Msg);
      for (const w of this.#waiters.splice(0)) w();
    });
    this.closed = new Promise((resolve) =>
      this.ws.on('close', (code, reason) => {
        resolve({ code, reason: reason.toString() });
        for (const w of this.#waiters.splice(0)) w();
      }),
    );
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('error', reject);
    });
    this.ws.on('error', () => {});
  }

  send(m: Msg | string): void {
    this.ws.send(typeof m === 'string' ? m : JSON.stringify(m));
  }

  /** The first queued message matching `pred` (removed from the queue). */
  async waitFor(pred: (m: Msg) => boolean = () => true, timeoutMs = 2000): Promise<Msg> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.#queue.findIndex(pred);
      if (i >= 0) return this.#queue.splice(i, 1)[0];
      const left = deadline - Date.now();
      if (left <= 0 || this.ws.readyState === WebSocket.CLOSED)
        throw new Error(`no matching message (queue: ${JSON.stringify(this.#queue)})`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Asserts that no message matching `pred` arrives within `ms`. */
  async none(pred: (m: Msg) => boolean = () => true, ms = 150): Promise<void> {
    await new Promise((r) => setTimeout(r, ms));
    const found = this.#queue.find(pred);
    assert.equal(found, undefined, `unexpected message ${JSON.stringify(found)}`);
  }

  close(): void {
    this.ws.close();
  }
}

async function client(url: string): Promise<Client> {
  const c = new Client(url);
  await c.opened;
  after(() => c.ws.terminate());
  return c;
}

/** A 20-byte binary string: `n` in the first bytes, 0xff at the end (not UTF-8 on its own). */
function id(n: number, salt = 0): string {
  const b = Buffer.alloc(20);
  b.writeUInt32BE(n >>> 0, 0);
  b.writeUInt32BE(salt >>> 0, 4);
  b[19] = 0xff;
  return b.toString('latin1');
}
let nextHash = 1;
const freshHash = () => id(nextHash++, 0xa5a5);
let nextPeer = 1;
const freshPeer = () => id(nextPeer++, 0x5050);

const isAnnounceFor = (h: string) => (m: Msg) =>
  m.action === 'announce' && m.info_hash === h && m.offer === undefined && m.answer === undefined;

async function announce(c: Client, fields: Msg): Promise<Msg> {
  c.send({ action: 'announce', left: 100, uploaded: 0, downloaded: 0, ...fields });
  return c.waitFor(isAnnounceFor(fields.info_hash as string));
}

async function scrape(c: Client, info_hash?: string | string[]): Promise<Msg> {
  c.send(info_hash === undefined ? { action: 'scrape' } : { action: 'scrape', info_hash });
  return c.waitFor((m) => m.action === 'scrape');
}

const filesOf = (m: Msg) =>
  m.files as Record<string, { complete: number; incomplete: number; downloaded: number }>;

/** `p`, or a rejection once `ms` have passed without it. */
function within<T>(p: Promise<T>, ms = 5000): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    t = setTimeout(() => reject(new Error(`nothing after ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(t));
}

async function until(cond: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 10));
  }
}

const sdp = (type: 'offer' | 'answer', n: number) => ({
  type,
  sdp: `v=0\r\no=- ${n} 2 IN IP4 127.0.0.1\r\n`,
});

const REFUSED_BYTE = 0xee;
const seenPasskeys: (string | null)[] = [];
function authorize(req: AnnounceRequest, ctx: RequestContext): TrackerError | null {
  seenPasskeys.push(ctx.passkey);
  assert.equal(ctx.protocol, 'ws');
  return req.infoHash[0] === REFUSED_BYTE ? Errors.infoHashNotListed : null;
}

let main: { f: WsFrontend; url: string; service: TrackerService };
before(async () => {
  main = await startFrontend({ authorize }, true);
});
after(() => main.f.stop());

describe('announce', () => {
  test('the response carries action, info_hash, complete, incomplete, interval and min interval', async () => {
    const h = freshHash();
    const a = await client(main.url);
    const r = await announce(a, { info_hash: h, peer_id: freshPeer(), event: 'started', left: 0 });
    assert.deepEqual(r, {
      action: 'announce',
      interval: 120,
      'min interval': 30,
      info_hash: h,
      complete: 0,
      incomplete: 0,
    });
    const b = await client(main.url);
    const r2 = await announce(b, { info_hash: h, peer_id: freshPeer(), left: 5 });
    assert.equal(r2.complete, 1, 'the other peer (a seeder) is counted');
    assert.equal(r2.incomplete, 0, 'the requester is not counted in its own response');
    assert.ok(main.service.counters.announces.ws >= 2);
  });

  test('binary-string info_hash and peer_id with every byte 0x00..0xff round trip', async () => {
    const a = await client(main.url);
    const hashes: string[] = [];
    for (let start = 0; start < 256; start += 20) {
      const b = Buffer.alloc(20);
      for (let i = 0; i < 20; i++) b[i] = (start + i) & 0xff;
      if (b[0] === REFUSED_BYTE) b[0] = 0; // keep clear of the test's authorize hook
      hashes.push(b.toString('latin1'));
    }
    for (let i = 0; i < hashes.length; i++) {
      const r = await announce(a, { info_hash: hashes[i], peer_id: hashes[hashes.length - 1 - i], left: 0 });
      assert.equal(r.info_hash, hashes[i]);
    }
    const s = await scrape(a, hashes);
    assert.deepEqual(Object.keys(filesOf(s)).sort(), [...hashes].sort());
    for (const h of hashes) assert.deepEqual(filesOf(s)[h], { complete: 1, incomplete: 0, downloaded: 0 });
  });

  test('the authorize hook refuses with a failure reason (action and info_hash set); the socket stays open', async () => {
    const a = await client(main.url);
    const b = Buffer.from(id(1, 1), 'latin1');
    b[0] = REFUSED_BYTE;
    const h = b.toString('latin1');
    a.send({ action: 'announce', info_hash: h, peer_id: freshPeer(), left: 1 });
    const r = await a.waitFor();
    assert.deepEqual(r, {
      'failure reason': Errors.infoHashNotListed.message,
      action: 'announce',
      info_hash: h,
    });
    const s = await scrape(a, h);
    assert.deepEqual(filesOf(s)[h], { complete: 0, incomplete: 0, downloaded: 0 }, 'nothing was stored');
  });

  test('the passkey in /announce/<passkey> reaches the authorize hook', async () => {
    const a = await client(`${main.url}/announce/s3cr3tpasskey`);
    seenPasskeys.length = 0;
    await announce(a, { info_hash: freshHash(), peer_id: freshPeer() });
    assert.deepEqual(seenPasskeys, ['s3cr3tpasskey']);
    const b = await client(`${main.url}/announce`);
    seenPasskeys.length = 0;
    await announce(b, { info_hash: freshHash(), peer_id: freshPeer() });
    assert.deepEqual(seenPasskeys, [null]);
  });

  test('other paths are refused before the upgrade (404)', async () => {
    const c = new WebSocket(`${main.url}/scrape/x/y`);
    const status = await new Promise<number>((resolve) => {
      c.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      c.on('error', () => resolve(-1));
    });
    assert.equal(status, 404);
    assert.equal(wsPasskey('/'), '');
    assert.equal(wsPasskey('/announce?x=1'), '');
    assert.equal(wsPasskey('/announce/abc'), 'abc');
    assert.equal(wsPasskey('/abc/announce'), 'abc');
    assert.equal(wsPasskey('/scrape'), null);
    assert.equal(wsPasskey('/a/b/c'), null);
  });
});

describe('offers and answers', () => {
  test('an offer reaches another peer with offer_id and the sender peer_id; the answer goes back once', async () => {
    const h = freshHash();
    const [pa, pb] = [freshPeer(), freshPeer()];
    const a = await client(main.url);
    const b = await client(main.url);
    await announce(a, { info_hash: h, peer_id: pa, event: 'started', offers: [] });
    const offerId = id(77, 1);
    const before = main.f.stats();
    const r = await announce(b, {
      info_hash: h,
      peer_id: pb,
      event: 'started',
      numwant: 1,
      offers: [{ offer: sdp('offer', 1), offer_id: offerId }],
    });
    assert.equal(r.incomplete, 1);
    const got = await a.waitFor((m) => m.offer !== undefined);
    assert.deepEqual(got, {
      action: 'announce',
      info_hash: h,
      peer_id: pb,
      offer_id: offerId,
      offer: sdp('offer', 1),
    });
    await b.none((m) => m.offer !== undefined, 50);
    assert.equal(main.f.stats().offersRelayed, before.offersRelayed + 1);

    const answer = { action: 'announce', info_hash: h, peer_id: pa, to_peer_id: pb, offer_id: offerId };
    a.send({ ...answer, answer: sdp('answer', 2) });
    const back = await b.waitFor((m) => m.answer !== undefined);
    assert.deepEqual(back, {
      action: 'announce',
      info_hash: h,
      peer_id: pa,
      offer_id: offerId,
      answer: sdp('answer', 2),
    });
    assert.equal(main.f.stats().answersRelayed, before.answersRelayed + 1);
    // The offer was forgotten once answered: a replay is dropped.
    a.send({ ...answer, answer: sdp('answer', 3) });
    await b.none((m) => m.answer !== undefined);
    assert.equal(main.f.stats().answersRelayed, before.answersRelayed + 1);
  });

  test('a forged answer (no offer was sent to the answering peer) is dropped, not delivered', async () => {
    const h = freshHash();
    const [pa, pb, pc] = [freshPeer(), freshPeer(), freshPeer()];
    const a = await client(main.url);
    const b = await client(main.url);
    const c = await client(main.url);
    await announce(a, { info_hash: h, peer_id: pa });
    const offerId = id(78, 1);
    await announce(b, {
      info_hash: h,
      peer_id: pb,
      numwant: 1,
      offers: [{ offer: sdp('offer', 1), offer_id: offerId }],
    });
    await a.waitFor((m) => m.offer !== undefined);
    await announce(c, { info_hash: h, peer_id: pc });
    const before = main.f.stats();
    // c got no offer from b, yet answers it with the right offer id.
    c.send({
      action: 'announce',
      info_hash: h,
      peer_id: pc,
      to_peer_id: pb,
      offer_id: offerId,
      answer: sdp('answer', 9),
    });
    // c answers as a (a peer id bound to another socket).
    c.send({
      action: 'announce',
      info_hash: h,
      peer_id: pa,
      to_peer_id: pb,
      offer_id: offerId,
      answer: sdp('answer', 9),
    });
    // A wrong offer id from the right peer.
    a.send({
      action: 'announce',
      info_hash: h,
      peer_id: pa,
      to_peer_id: pb,
      offer_id: id(79, 1),
      answer: sdp('answer', 9),
    });
    await b.none((m) => m.answer !== undefined);
    await c.none((m) => m['failure reason'] !== undefined, 0);
    const s = main.f.stats();
    assert.equal(s.answersRelayed, before.answersRelayed);
    assert.equal(s.answersDropped, before.answersDropped + 3);
    // The genuine answer still goes through.
    a.send({
      action: 'announce',
      info_hash: h,
      peer_id: pa,
      to_peer_id: pb,
      offer_id: offerId,
      answer: sdp('answer', 1),
    });
    assert.equal((await b.waitFor((m) => m.answer !== undefined)).peer_id, pa);
  });

  test('2 offers go to 2 distinct peers, never back to the sender', async () => {
    for (let round = 0; round < 5; round++) {
      const h = freshHash();
      const peers = [];
      for (let i = 0; i < 3; i++) {
        const c = await client(main.url);
        await announce(c, { info_hash: h, peer_id: freshPeer() });
        peers.push(c);
      }
      const s = await client(main.url);
      const sp = freshPeer();
      const ids = [id(100 + round, 2), id(200 + round, 2)];
      await announce(s, {
        info_hash: h,
        peer_id: sp,
        numwant: 2,
        offers: ids.map((offer_id, i) => ({ offer: sdp('offer', i), offer_id })),
      });
      const got: string[] = [];
      for (const c of peers) {
        try {
          const m = await c.waitFor((x) => x.offer !== undefined, 200);
          assert.equal(m.peer_id, sp);
          got.push(m.offer_id as string);
        } catch {}
        await c.none((x) => x.offer !== undefined, 0);
      }
      assert.deepEqual(
        got.sort(),
        [...ids].sort(),
        'each offer reached exactly one peer, and not the same one',
      );
      await s.none((x) => x.offer !== undefined, 0);
    }
  });

  test('a negative numwant means the default, as over HTTP and UDP: the offers are relayed', async () => {
    const h = freshHash();
    const [l1, l2] = [await client(main.url), await client(main.url)];
    for (const l of [l1, l2]) await announce(l, { info_hash: h, peer_id: freshPeer(), left: 10 });
    const s = await client(main.url);
    const offers = [0, 1].map((i) => ({ offer: sdp('offer', i), offer_id: id(320 + i, 3) }));
    const r = await announce(s, { info_hash: h, peer_id: freshPeer(), left: 0, numwant: -1, offers });
    assert.equal(r['failure reason'], undefined);
    for (const l of [l1, l2]) assert.ok((await l.waitFor((m) => m.offer !== undefined)).offer_id);
  });

  test('numwant caps the offers relayed; a seeder offers to leechers only', async () => {
    const h = freshHash();
    const l = await client(main.url);
    const seed = await client(main.url);
    await announce(l, { info_hash: h, peer_id: freshPeer(), left: 10 });
    await announce(seed, { info_hash: h, peer_id: freshPeer(), left: 0 });
    const s = await client(main.url);
    const offers = [0, 1, 2].map((i) => ({ offer: sdp('offer', i), offer_id: id(300 + i, 3) }));
    await announce(s, { info_hash: h, peer_id: freshPeer(), left: 0, numwant: 3, offers });
    assert.ok((await l.waitFor((m) => m.offer !== undefined)).offer_id);
    await seed.none((m) => m.offer !== undefined);
    await l.none((m) => m.offer !== undefined, 0);
    const s2 = await client(main.url);
    await announce(s2, { info_hash: h, peer_id: freshPeer(), left: 5, numwant: 1, offers });
    const x = await Promise.any([
      l.waitFor((m) => m.offer !== undefined, 300),
      seed.waitFor((m) => m.offer !== undefined, 300),
      s.waitFor((m) => m.offer !== undefined, 300),
    ]);
    assert.ok(x);
    await Promise.all([l, seed, s].map((c) => c.none((m) => m.offer !== undefined, 50)));
  });
});

describe('scrape', () => {
  test('single, several (unknown ones zero), and full scrape refused when off', async () => {
    const [h1, h2, unknown] = [freshHash(), freshHash(), freshHash()];
    const a = await client(main.url);
    const b = await client(main.url);
    await announce(a, { info_hash: h1, peer_id: freshPeer(), left: 0 });
    await announce(b, { info_hash: h1, peer_id: freshPeer(), left: 3 });
    await announce(b, { info_hash: h2, peer_id: freshPeer(), left: 3 });
    const one = await scrape(a, h1);
    assert.deepEqual(filesOf(one), { [h1]: { complete: 1, incomplete: 1, downloaded: 0 } });
    const many = await scrape(a, [h1, h2, unknown]);
    assert.deepEqual(filesOf(many), {
      [h1]: { complete: 1, incomplete: 1, downloaded: 0 },
      [h2]: { complete: 0, incomplete: 1, downloaded: 0 },
      [unknown]: { complete: 0, incomplete: 0, downloaded: 0 },
    });
    a.send({ action: 'scrape' });
    assert.deepEqual(await a.waitFor(), {
      'failure reason': Errors.fullScrapeDisabled.message,
      action: 'scrape',
    });
    assert.equal(a.ws.readyState, WebSocket.OPEN);
  });

  test('full scrape: one per interval per address, for every socket of that address', async () => {
    const { url } = await startFrontend({ fullScrape: true, fullScrapeInterval: 600 });
    const a = await client(url);
    await announce(a, { info_hash: freshHash(), peer_id: freshPeer(), left: 0 });
    assert.equal(Object.keys(filesOf(await scrape(a))).length, 1);
    a.send({ action: 'scrape' });
    assert.deepEqual(await a.waitFor(), {
      'failure reason': Errors.fullScrapeRateLimited.message,
      action: 'scrape',
    });
    const b = await client(url);
    b.send({ action: 'scrape' });
    assert.equal(
      (await b.waitFor())['failure reason'],
      Errors.fullScrapeRateLimited.message,
      'a new socket too',
    );
    assert.equal(a.ws.readyState, WebSocket.OPEN);
  });

  test('full scrape lists every WebRTC swarm when enabled, and none of the TCP/UDP store', async () => {
    const { url, service } = await startFrontend({ fullScrape: true });
    const tcpHash = Buffer.alloc(20, 7);
    service.announce(
      {
        infoHash: tcpHash,
        peerId: Buffer.alloc(20, 1),
        family: 4,
        ip: new Uint8Array([10, 0, 0, 1]),
        port: 6881,
        uploaded: 0,
        downloaded: 0,
        left: 0,
        event: 2,
        numWant: 0,
        wantPeerIds: false,
      },
      { protocol: 'http', passkey: null, member: null, torrent: null, warning: null },
    );
    const a = await client(url);
    const [h1, h2] = [freshHash(), freshHash()];
    await announce(a, { info_hash: h1, peer_id: freshPeer(), left: 0 });
    await announce(a, { info_hash: h2, peer_id: freshPeer() });
    const all = await scrape(a);
    assert.deepEqual(filesOf(all), {
      [h1]: { complete: 1, incomplete: 0, downloaded: 0 },
      [h2]: { complete: 0, incomplete: 1, downloaded: 0 },
    });
    const s = await scrape(a, tcpHash.toString('latin1'));
    assert.deepEqual(filesOf(s)[tcpHash.toString('latin1')], { complete: 0, incomplete: 0, downloaded: 0 });
  });
});

describe('peer lifetime', () => {
  test('stopped removes the peer at once', async () => {
    const h = freshHash();
    const a = await client(main.url);
    const b = await client(main.url);
    const pa = freshPeer();
    await announce(a, { info_hash: h, peer_id: pa, left: 0 });
    await announce(b, { info_hash: h, peer_id: freshPeer(), left: 1 });
    assert.deepEqual(filesOf(await scrape(a, h))[h], { complete: 1, incomplete: 1, downloaded: 0 });
    const r = await announce(a, { info_hash: h, peer_id: pa, event: 'stopped', left: 0 });
    assert.equal(r.complete, 0);
    assert.equal(r.incomplete, 1);
    assert.deepEqual(filesOf(await scrape(a, h))[h], { complete: 0, incomplete: 1, downloaded: 0 });
  });

  test('closing a socket removes its peers from all its swarms at once', async () => {
    const hashes = [freshHash(), freshHash(), freshHash()];
    const a = await client(main.url);
    const watcher = await client(main.url);
    const pa = freshPeer();
    for (const h of hashes) await announce(a, { info_hash: h, peer_id: pa, left: 7 });
    await announce(watcher, { info_hash: hashes[0], peer_id: freshPeer(), left: 0 });
    const before = main.f.stats();
    a.close();
    await a.closed;
    await until(() => main.f.stats().peers === before.peers - 3);
    assert.equal(main.f.stats().leechers, before.leechers - 3);
    const s = await scrape(watcher, hashes);
    assert.deepEqual(filesOf(s), {
      [hashes[0]]: { complete: 1, incomplete: 0, downloaded: 0 },
      [hashes[1]]: { complete: 0, incomplete: 0, downloaded: 0 },
      [hashes[2]]: { complete: 0, incomplete: 0, downloaded: 0 },
    });
  });

  test('completed counts a download once per peer', async () => {
    const h = freshHash();
    const a = await client(main.url);
    const b = await client(main.url);
    const pa = freshPeer();
    await announce(a, { info_hash: h, peer_id: pa, event: 'started', left: 10 });
    await announce(a, { info_hash: h, peer_id: pa, event: 'completed', left: 0 });
    await announce(a, { info_hash: h, peer_id: pa, event: 'completed', left: 0 });
    assert.deepEqual(filesOf(await scrape(a, h))[h], { complete: 1, incomplete: 0, downloaded: 1 });
    await announce(b, { info_hash: h, peer_id: freshPeer(), event: 'completed', left: 0 });
    assert.deepEqual(filesOf(await scrape(a, h))[h], { complete: 2, incomplete: 0, downloaded: 2 });
  });

  test('peers that stop announcing expire', async () => {
    const h = freshHash();
    const a = await client(main.url);
    const pa = freshPeer();
    await announce(a, { info_hash: h, peer_id: pa, left: 1 });
    clock.advance(120);
    assert.equal(main.f.sweep(), 0, 'not before the peer timeout (2 × interval)');
    assert.equal(filesOf(await scrape(a, h))[h].incomplete, 1);
    clock.advance(121);
    assert.ok(main.f.sweep() >= 1);
    assert.equal(filesOf(await scrape(a, h))[h].incomplete, 0);
    // Its socket is still open: announcing again brings the peer back.
    await announce(a, { info_hash: h, peer_id: pa, left: 1 });
    assert.equal(filesOf(await scrape(a, h))[h].incomplete, 1);
  });

  test('a peer id bound to one socket cannot be taken by another; a socket keeps one peer id per swarm', async () => {
    const h = freshHash();
    const pa = freshPeer();
    const a = await client(main.url);
    const thief = await client(main.url);
    await announce(a, { info_hash: h, peer_id: pa, left: 0 });
    for (const event of ['started', 'stopped', 'completed']) {
      thief.send({ action: 'announce', info_hash: h, peer_id: pa, left: 0, event });
      assert.deepEqual(await thief.waitFor(), {
        'failure reason': WsSwarmErrors.peerIdInUse.message,
        action: 'announce',
        info_hash: h,
      });
    }
    assert.deepEqual(filesOf(await scrape(a, h))[h], { complete: 1, incomplete: 0, downloaded: 0 });
    a.send({ action: 'announce', info_hash: h, peer_id: freshPeer(), left: 0 });
    assert.equal((await a.waitFor())['failure reason'], WsSwarmErrors.peerIdChanged.message);
    // Once its socket closed, the peer id is free again.
    const peersBefore = main.f.stats().peers;
    a.close();
    await a.closed;
    await until(() => main.f.stats().peers === peersBefore - 1);
    const r = await announce(thief, { info_hash: h, peer_id: pa, left: 0 });
    assert.equal(r['failure reason'], undefined);
  });

  test('a socket may join at most maxSwarmsPerSocket torrents', async () => {
    const { url } = await startFrontend({ maxSwarmsPerSocket: 2 });
    const a = await client(url);
    const pa = freshPeer();
    await announce(a, { info_hash: freshHash(), peer_id: pa });
    await announce(a, { info_hash: freshHash(), peer_id: pa });
    const h = freshHash();
    a.send({ action: 'announce', info_hash: h, peer_id: pa, left: 1 });
    assert.equal((await a.waitFor())['failure reason'], WsSwarmErrors.tooManyTorrents.message);
  });

  test('a socket that announced is closed idleTimeoutMs after its last announce: scrapes do not keep it open', async () => {
    const { url, f } = await startFrontend({ idleTimeoutMs: 1000, firstAnnounceTimeoutMs: 60_000 });
    const quiet = await client(url); // announces once, then only scrapes
    const steady = await client(url); // keeps announcing
    const h = freshHash();
    const ps = freshPeer();
    await announce(quiet, { info_hash: h, peer_id: freshPeer() });
    await announce(steady, { info_hash: h, peer_id: ps });
    const timers = [
      setInterval(() => quiet.send({ action: 'scrape', info_hash: h }), 50),
      setInterval(() => steady.send({ action: 'announce', info_hash: h, peer_id: ps, left: 1 }), 50),
    ];
    try {
      assert.deepEqual(await within(quiet.closed), { code: 1001, reason: 'idle timeout' });
      assert.equal(steady.ws.readyState, WebSocket.OPEN, 'a socket that keeps announcing stays');
    } finally {
      for (const t of timers) clearInterval(t);
    }
    await until(() => f.stats().sockets === 1 && f.stats().peers === 1);
  });

  test('a socket that does not announce (scrapes and refused announces do not count) is closed firstAnnounceTimeoutMs after it opened', async () => {
    const { url, f } = await startFrontend({ authorize, firstAnnounceTimeoutMs: 300 });
    const scraper = await client(url);
    const refused = await client(url);
    const h = freshHash();
    const bad = Buffer.from(freshHash(), 'latin1');
    bad[0] = REFUSED_BYTE;
    const timers = [
      setInterval(() => scraper.send({ action: 'scrape', info_hash: h }), 50),
      setInterval(
        () =>
          refused.send({
            action: 'announce',
            info_hash: bad.toString('latin1'),
            peer_id: freshPeer(),
            left: 1,
          }),
        50,
      ),
    ];
    try {
      assert.deepEqual(await within(scraper.closed), { code: 1001, reason: 'no announce' });
      assert.deepEqual(await within(refused.closed), { code: 1001, reason: 'no announce' });
    } finally {
      for (const t of timers) clearInterval(t);
    }
    await until(() => f.stats().sockets === 0);
  });

  test('a socket that answers no ping is dropped and its peers leave; one that answers stays', async () => {
    const { url, f } = await startFrontend({ pingIntervalMs: 500 });
    const live = await client(url); // the ws client answers pings by itself
    const dead = await rawWsClient(Number(new URL(url).port)); // never answers
    after(() => dead.sock.destroy());
    const h = freshHash();
    await announce(live, { info_hash: h, peer_id: freshPeer() });
    const msg = { action: 'announce', info_hash: h, peer_id: freshPeer(), left: 1 };
    dead.sock.write(frame(1, Buffer.from(JSON.stringify(msg))));
    await until(() => f.stats().peers === 2);
    await within(dead.closed);
    assert.ok(
      dead.frames().some((x) => x.opcode === 9),
      'it was pinged first',
    );
    assert.equal(live.ws.readyState, WebSocket.OPEN);
    await until(() => f.stats().sockets === 1 && f.stats().peers === 1);
  });

  test('a message that does not arrive whole within firstAnnounceTimeoutMs of its first byte closes the socket (1008)', async () => {
    const { url, f } = await startFrontend({ firstAnnounceTimeoutMs: 300, pingIntervalMs: 0 });
    const port = Number(new URL(url).port);
    const h = freshHash();
    const hello = (peer: string) =>
      frame(1, Buffer.from(JSON.stringify({ action: 'announce', info_hash: h, peer_id: peer, left: 1 })));
    // A frame sent a byte at a time, and a fragmented message kept going with pings only.
    const trickle = await rawWsClient(port);
    const fragments = await rawWsClient(port);
    for (const c of [trickle, fragments]) after(() => c.sock.destroy());
    trickle.sock.write(hello(freshPeer()));
    fragments.sock.write(hello(freshPeer()));
    await until(() => trickle.frames().length === 1 && fragments.frames().length === 1);
    const big = frame(1, Buffer.alloc(30_000, 0x20));
    let i = 0;
    fragments.sock.write(frame(1, Buffer.from('{"action":'), false));
    const timer = setInterval(() => {
      if (!trickle.sock.destroyed) trickle.sock.write(big.subarray(i, i + 100));
      i += 100;
      if (!fragments.sock.destroyed) fragments.sock.write(frame(9, Buffer.alloc(0)));
    }, 20);
    try {
      for (const c of [trickle, fragments]) {
        await within(c.closed);
        const close = c.frames().find((x) => x.opcode === 8);
        assert.ok(close, 'a close frame');
        assert.equal(closeCode(close), 1008);
        assert.equal(close.payload.subarray(2).toString(), 'message too slow');
      }
    } finally {
      clearInterval(timer);
    }
    await until(() => f.stats().sockets === 0);
  });

  test('own listeners: an upgrade request not complete within firstAnnounceTimeoutMs gets 408, an oversized one 431', async () => {
    const { url } = await startFrontend({ firstAnnounceTimeoutMs: 300 });
    const port = Number(new URL(url).port);
    const exchange = async (text: string) => {
      const sock = connect(port, '127.0.0.1');
      sock.on('error', () => {});
      after(() => sock.destroy());
      let got = '';
      sock.on('data', (d) => {
        got += d.toString('latin1');
      });
      const closed = new Promise((r) => sock.once('close', r));
      sock.write(text);
      await within(closed);
      return got;
    };
    const upgrade = 'GET /announce HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n';
    assert.match(await exchange(upgrade), /^HTTP\/1.1 408 /);
    assert.match(await exchange(`${upgrade}X-Big: ${'a'.repeat(20_000)}\r\n\r\n`), /^HTTP\/1.1 431 /);
  });
});

describe('malformed and hostile input', () => {
  test('invalid JSON gets a failure, then close 1008', async () => {
    const a = await client(main.url);
    a.send('{"action":"announce",');
    assert.deepEqual(await a.waitFor(), { 'failure reason': WsReasons.invalidJson });
    const closed = await a.closed;
    assert.equal(closed.code, 1008);
    assert.equal(closed.reason, WsReasons.invalidJson);
  });

  test('a bad field and a binary frame also close with 1008', async () => {
    const a = await client(main.url);
    a.send({ action: 'announce', info_hash: 'short', peer_id: freshPeer() });
    assert.equal((await a.waitFor())['failure reason'], WsReasons.invalidInfoHash);
    assert.equal((await a.closed).code, 1008);
    const b = await client(main.url);
    b.ws.send(Buffer.from('{"action":"scrape"}'), { binary: true });
    assert.equal((await b.waitFor())['failure reason'], WsReasons.notText);
    assert.equal((await b.closed).code, 1008);
  });

  test('an oversized message gets a failure, then close 1009; far over, ws cuts it off with 1009', async () => {
    const a = await client(main.url);
    a.send(`{"action":"scrape","x":"${'x'.repeat(64 * 1024)}"}`);
    assert.deepEqual(await a.waitFor(), { 'failure reason': WsReasons.tooLarge });
    const closed = await a.closed;
    assert.equal(closed.code, 1009);
    assert.equal(closed.reason, WsReasons.tooLarge);
    const b = await client(main.url);
    b.send('x'.repeat(1024 * 1024));
    assert.equal((await b.closed).code, 1009);
  });

  test('a flood of empty continuation frames is closed with 1008 once a message has MAX_FRAGMENTS frames', async () => {
    const { f, url } = await startFrontend();
    const port = Number(new URL(url).port);
    const raw = await rawWsClient(port);
    after(() => raw.sock.destroy());
    assert.equal(f.stats().sockets, 1);
    raw.sock.write(frame(1, Buffer.from('{"action":'), false));
    const empty = frame(0, Buffer.alloc(0), false);
    // 300 000 empty fragments after the first frame (1.8 MB), in 64 KiB writes.
    const batch = Buffer.concat(Array.from({ length: 10_000 }, () => empty));
    for (let i = 0; i < 30 && !raw.sock.destroyed; i++) raw.sock.write(batch);
    await within(raw.closed);
    const frames = raw.frames();
    assert.deepEqual(
      frames.map((x) => x.opcode),
      [8],
    );
    assert.equal(closeCode(frames[0]), 1008);
    assert.equal(frames[0].payload.subarray(2).toString(), 'too many fragments');
    await until(() => f.stats().sockets === 0);
    // Up to the cap, a fragmented announce is read as usual.
    const ok = await rawWsClient(port);
    after(() => ok.sock.destroy());
    const h = freshHash();
    const msg = Buffer.from(
      JSON.stringify({ action: 'announce', info_hash: h, peer_id: freshPeer(), left: 1, event: 'started' }),
    );
    const parts = [frame(1, msg.subarray(0, 10), false)];
    for (let i = 0; i < MAX_FRAGMENTS - 2; i++) parts.push(empty);
    parts.push(frame(0, msg.subarray(10)));
    ok.sock.write(Buffer.concat(parts));
    await until(() => ok.frames().length > 0);
    const answer = JSON.parse(ok.frames()[0].payload.toString());
    assert.equal(answer.info_hash, h);
    assert.equal(answer.interval, 120);
  });

  test('a client that half-closes its TCP side without a close frame is closed, and its peers leave', async () => {
    const { f, url } = await startFrontend();
    const raw = await rawWsClient(Number(new URL(url).port));
    after(() => raw.sock.destroy());
    const h = freshHash();
    const msg = { action: 'announce', info_hash: h, peer_id: freshPeer(), left: 1, event: 'started' };
    raw.sock.write(frame(1, Buffer.from(JSON.stringify(msg))));
    await until(() => raw.frames().length > 0);
    assert.equal(f.stats().peers, 1);
    raw.sock.end(); // FIN, no close frame; the listener is node:http's (allowHalfOpen)
    await within(raw.closed);
    await until(() => f.stats().sockets === 0 && f.stats().peers === 0);
  });

  test('random messages never crash the server; it still answers a valid announce', async () => {
    const binaryId = fc.string({ unit: 'binary', minLength: 20, maxLength: 20 });
    const anyId = fc.oneof(binaryId, fc.string({ maxLength: 25 }), fc.constant(null), fc.integer());
    const shaped = fc
      .record(
        {
          action: fc.oneof(fc.constantFrom('announce', 'scrape', 'answer'), fc.anything()),
          info_hash: fc.oneof(anyId, fc.array(anyId, { maxLength: 5 })),
          peer_id: anyId,
          to_peer_id: anyId,
          offer_id: anyId,
          event: fc.oneof(fc.constantFrom('started', 'stopped', 'completed', 'update'), fc.anything()),
          left: fc.oneof(fc.nat(), fc.double(), fc.constant(null), fc.string()),
          numwant: fc.oneof(fc.nat(100), fc.integer(), fc.anything()),
          offers: fc.oneof(
            fc.array(
              fc.record({ offer: fc.oneof(fc.record({ sdp: fc.string() }), fc.anything()), offer_id: anyId }),
              {
                maxLength: 4,
              },
            ),
            fc.anything(),
          ),
          answer: fc.oneof(fc.record({ type: fc.constant('answer'), sdp: fc.string() }), fc.anything()),
        },
        { requiredKeys: [] },
      )
      .map((o) => JSON.stringify(o));
    const message = fc.oneof(
      fc.string(),
      fc.string({ unit: 'binary' }),
      fc.string({ unit: 'grapheme' }),
      fc.json(),
      shaped,
    );
    const h = freshHash();
    const internalBefore = main.service.counters.internalErrors;
    await fc.assert(
      fc.asyncProperty(message, async (text) => {
        const c = new Client(main.url);
        await c.opened;
        try {
          c.send(text);
          // Then a valid scrape: either it is answered, or the random message closed the socket.
          c.send({ action: 'scrape', info_hash: h });
          await Promise.race([c.closed, c.waitFor((m) => m.action === 'scrape' && m.files !== undefined)]);
        } finally {
          c.ws.terminate();
        }
      }),
      { numRuns: 300 },
    );
    assert.equal(main.service.counters.internalErrors, internalBefore, 'no internal error');
    const a = await client(main.url);
    const r = await announce(a, { info_hash: h, peer_id: freshPeer(), left: 0 });
    assert.equal(r.interval, 120);
  });
});

describe('handed over by an HTTP listener', () => {
  let server: Server;
  let f: WsFrontend;
  before(async () => {
    f = new WsFrontend({ service: makeService(), listen: [], logger, interval: 120, minInterval: 30 });
    await f.start();
    server = createServer((_req, res) => res.end('web'));
    server.on('upgrade', (req, socket, head) => f.handleUpgrade(req, socket, head));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  });
  after(async () => {
    await f.stop();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  test('an Upgrade on /announce/<passkey> is served; stop() closes it with 1001', async () => {
    const port = (server.address() as { port: number }).port;
    assert.deepEqual(f.addresses(), []);
    const a = new Client(`ws://127.0.0.1:${port}/announce/abc`);
    await a.opened;
    const h = freshHash();
    const r = await announce(a, { info_hash: h, peer_id: freshPeer(), left: 0 });
    assert.equal(r.info_hash, h);
    assert.equal(f.stats().sockets, 1);
    await f.stop();
    assert.equal((await a.closed).code, 1001);
    assert.equal(f.stats().peers, 0);
  });
});

describe('a verdict that comes later (a limit counted in another process)', () => {
  /** Announces whose hash starts with SLOW wait for `release`; REFUSED_BYTE ones are refused. */
  const SLOW = 0x77;
  const calls: string[] = [];
  const waiting: (() => void)[] = [];
  const later: NonNullable<WsFrontendOptions['authorize']> = (req) => {
    const what = `${req.event === 3 ? 'stopped ' : ''}${Buffer.from(req.infoHash).toString('latin1')}`;
    calls.push(what);
    const verdict = req.infoHash[1] === REFUSED_BYTE ? Errors.peerLimitMember : null;
    if (req.infoHash[0] !== SLOW) return verdict;
    return new Promise((resolve) => waiting.push(() => resolve(verdict)));
  };
  const slowHash = (refused = false) => {
    const b = Buffer.from(freshHash(), 'latin1');
    b[0] = SLOW;
    if (refused) b[1] = REFUSED_BYTE;
    return b.toString('latin1');
  };

  test('a socket’s next messages wait for the verdict: answers in order, one verdict pending at most', async () => {
    const { url } = await startFrontend({ authorize: later });
    const a = await client(url);
    const [h1, h2, h3, h4] = [slowHash(), freshHash(), slowHash(true), freshHash()];
    for (const h of [h1, h2, h3, h4])
      a.send({
        action: 'announce',
        info_hash: h,
        peer_id: freshPeer(),
        left: 100,
        uploaded: 0,
        downloaded: 0,
      });
    a.send({ action: 'scrape', info_hash: h2 });
    await until(() => waiting.length === 1);
    // The frames after the first are not even looked at until its verdict.
    await a.none(() => true);
    assert.deepEqual(calls.slice(-1), [h1]);
    waiting.shift()!();
    await until(() => waiting.length === 1);
    assert.deepEqual(calls.slice(-3), [h1, h2, h3]);
    waiting.shift()!();
    const got: Msg[] = [];
    for (let i = 0; i < 5; i++) got.push(await a.waitFor());
    assert.deepEqual(
      got.map((m) => [m.action, m.info_hash ?? null, m['failure reason'] ?? null]),
      [
        ['announce', h1, null],
        ['announce', h2, null],
        ['announce', h3, Errors.peerLimitMember.message],
        ['announce', h4, null],
        ['scrape', null, null],
      ],
    );
  });

  test('a socket closed while its verdict is pending joins no swarm; with freeOnClose, its places are freed', async () => {
    const { url, f } = await startFrontend({ authorize: later, freeOnClose: true });
    const a = await client(url);
    const h0 = freshHash();
    const p0 = freshPeer();
    await announce(a, { info_hash: h0, peer_id: p0 });
    const h1 = slowHash();
    a.send({
      action: 'announce',
      info_hash: h1,
      peer_id: freshPeer(),
      left: 100,
      uploaded: 0,
      downloaded: 0,
    });
    await until(() => waiting.length === 1);
    a.ws.terminate();
    await a.closed;
    await until(() => calls.includes(`stopped ${h0}`));
    waiting.shift()!();
    await until(() => calls.includes(`stopped ${h1}`));
    waiting.shift()?.(); // the stop of h1 waits too
    assert.equal(f.stats().peers, 0);
  });
});
