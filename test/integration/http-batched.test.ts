/**
 * The batched plain-HTTP transport (native/src/http_batch.c, src/frontend/http/batched-listener.ts)
 * over real loopback sockets: both families, pipelining and partial heads cut at awkward places,
 * every way a connection leaves the addon for a Node socket (node:http, WebSocket upgrade,
 * asynchronous answers, responses larger than the arena; short writes are tested in
 * src/frontend/http/batched-listener.test.ts), idle close, stop(), many connections and random bytes.
 * Skipped (with the reason printed) when the addon is not built.
 */

import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { WebSocket } from 'ws';
import { ManualClock } from '../../src/core/clock.ts';
import type { Logger } from '../../src/core/log.ts';
import { xorshift } from '../../src/core/random.ts';
import type { AnnounceResult } from '../../src/core/types.ts';
import { loadHttpBatchAddon } from '../../src/frontend/http/batch.ts';
import { createTracker, type Tracker } from '../../src/index.ts';
import { MemorySwarmStore } from '../../src/store/memory/memory-store.ts';
import type { SwarmStore } from '../../src/swarm/types.ts';
import {
  announcePath,
  bdecode,
  hashOf,
  httpGet,
  pct,
  type RawResponse,
  seederRequest,
  splitResponses,
} from '../helpers/clients.ts';

const skip = loadHttpBatchAddon() === null ? 'the http_batch addon is not built (npm rebuild)' : false;

/** A logger that keeps what the tracker reports at start (the `herald listening` fields). */
function captureLogger(seen: Record<string, unknown>[]): Logger {
  const l: Logger = {
    trace: () => {},
    debug: () => {},
    info: (msg, fields) => {
      if (msg === 'herald listening') seen.push(fields ?? {});
    },
    warn: () => {},
    error: (msg, fields) => {
      seen.push({ error: msg, ...fields });
    },
    child: () => l,
  };
  return l;
}

/** Complete responses at the start of `all` (a partial last one is left out). */
function completeResponses(all: Buffer): RawResponse[] {
  const out: RawResponse[] = [];
  let off = 0;
  while (off < all.length) {
    const end = all.indexOf('\r\n\r\n', off);
    if (end < 0) break;
    const m = /content-length:\s*(\d+)/i.exec(all.toString('latin1', off, end));
    const len = m ? Number(m[1]) : 0;
    if (end + 4 + len > all.length) break;
    out.push(...splitResponses(all.subarray(off, end + 4 + len)));
    off = end + 4 + len;
  }
  return out;
}

interface Conversation {
  /** Resolves once `count` complete responses have arrived (or rejects after `ms`). */
  responses(count: number, ms?: number): Promise<RawResponse[]>;
  /** Resolves when the server closes the connection. */
  closed: Promise<{ bytes: Buffer; ms: number }>;
  socket: Socket;
}

function converse(port: number, host: string): Promise<Conversation> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const chunks: Buffer[] = [];
    const waiters: (() => void)[] = [];
    const socket = connect({ port, host });
    let onClose: (v: { bytes: Buffer; ms: number }) => void = () => {};
    const closed = new Promise<{ bytes: Buffer; ms: number }>((r) => {
      onClose = r;
    });
    socket.on('data', (d) => {
      chunks.push(d);
      for (const w of waiters.splice(0)) w();
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      onClose({ bytes: Buffer.concat(chunks), ms: Date.now() - t0 });
      for (const w of waiters.splice(0)) w();
    });
    socket.once('connect', () =>
      resolve({
        socket,
        closed,
        responses: (count, ms = 5000) =>
          new Promise((res, rej) => {
            const timer = setTimeout(() => {
              rej(
                new Error(
                  `${completeResponses(Buffer.concat(chunks)).length} of ${count} responses after ${ms} ms`,
                ),
              );
            }, ms);
            const check = () => {
              const rs = completeResponses(Buffer.concat(chunks));
              if (rs.length >= count) {
                clearTimeout(timer);
                res(rs);
              } else if (socket.destroyed) {
                clearTimeout(timer);
                rej(new Error(`closed after ${rs.length} of ${count} responses`));
              } else waiters.push(check);
            };
            check();
          }),
      }),
    );
    socket.once('error', reject);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Writes `data` in pieces cut at `cuts` (offsets), `gapMs` apart. */
async function writeCut(socket: Socket, data: Buffer, cuts: number[], gapMs = 15): Promise<void> {
  let prev = 0;
  for (const c of [...cuts, data.length]) {
    if (c > prev) socket.write(data.subarray(prev, c));
    prev = Math.max(prev, c);
    await sleep(gapMs);
  }
}

const announceReq = (h: Buffer, port: number, extra = '') =>
  `GET ${announcePath({ infoHash: h, port, left: 0 })} HTTP/1.1\r\nHost: x\r\n${extra}\r\n`;
const scrapeReq = (h: Buffer) => `GET /scrape?info_hash=${pct(h)} HTTP/1.1\r\nHost: x\r\n\r\n`;

describe('batched HTTP listeners', { skip }, () => {
  let tracker: Tracker;
  let port4: number;
  let port6: number;
  const seen: Record<string, unknown>[] = [];
  const clock = new ManualClock(1000);

  before(async () => {
    tracker = createTracker(
      {
        http: ['127.0.0.1:0', '[::1]:0'],
        httpIo: 'batched',
        udp: [],
        fullScrape: true,
        fullScrapeInterval: 1,
        maxNumWant: 50,
        // 500 concurrent connections from one address below.
        maxConnectionsPerIp: 0,
        databaseUrl: 'sqlite::memory:',
      },
      { logger: captureLogger(seen), clock },
    );
    await tracker.start();
    const a = tracker.addresses();
    port4 = a.http.find((x) => x.host === '127.0.0.1')!.port;
    port6 = a.http.find((x) => x.host === '::1')!.port;
  });
  after(() => tracker.stop());

  test('the batched transport is the one serving', () => {
    assert.equal(seen[0]?.httpIo, 'batched');
  });

  test('IPv4 and IPv6 listeners: each family sees its own address and peers', async () => {
    const h = hashOf(9001);
    const a = bdecode(
      (await httpGet(port4, '127.0.0.1', announcePath({ infoHash: h, port: 6001, left: 0 }))).body,
    );
    assert.deepEqual(a.get('external ip'), Buffer.from([127, 0, 0, 1]));
    const b = bdecode((await httpGet(port6, '::1', announcePath({ infoHash: h, port: 6002, left: 5 }))).body);
    const ext = b.get('external ip') as Buffer;
    assert.equal(ext.length, 16);
    assert.equal(ext[15], 1);
    assert.equal(b.get('complete'), 1, 'the IPv4 seeder is counted');
    await httpGet(port6, '::1', announcePath({ infoHash: h, port: 6003, left: 0 }));
    const c = bdecode((await httpGet(port6, '::1', announcePath({ infoHash: h, port: 6004, left: 5 }))).body);
    const p6 = c.get('peers6') as Buffer;
    assert.equal(p6.length, 36);
    assert.deepEqual([p6.readUInt16BE(16), p6.readUInt16BE(34)].sort(), [6002, 6003]);
    assert.equal((c.get('peers') as Buffer).length, 0, 'IPv4 peers are not sent to an IPv6 peer');
  });

  test('keep-alive: sequential requests on one connection stay in the addon', async () => {
    const c = await converse(port4, '127.0.0.1');
    const h = hashOf(9002);
    for (let i = 0; i < 5; i++) {
      c.socket.write(announceReq(h, 6100 + i));
      const rs = await c.responses(i + 1);
      assert.equal(rs[i].status, 200);
      assert.equal(bdecode(rs[i].body).get('complete'), i);
    }
    c.socket.destroy();
  });

  test('pipelined requests cut at every awkward place are answered in order', async () => {
    const h = hashOf(9003);
    const req = Buffer.from(
      announceReq(h, 6201) + scrapeReq(h) + announceReq(h, 6202) + scrapeReq(h),
      'latin1',
    );
    const first = req.indexOf('\r\n\r\n');
    // Inside the method, inside the query, between CR and LF, inside and just after the blank
    // line, at the start of the second request, plus one read with everything.
    const cutSets = [
      [2],
      [20, 60],
      [first + 1],
      [first + 2],
      [first + 3],
      [first + 4],
      [first + 4, first + 5, first + 40],
      [],
    ];
    for (const cuts of cutSets) {
      const c = await converse(port4, '127.0.0.1');
      await writeCut(c.socket, req, cuts);
      const rs = await c.responses(4);
      assert.equal(rs.length, 4, `cuts ${cuts}`);
      assert.ok(bdecode(rs[0].body).has('interval'), `cuts ${cuts}: announce first`);
      assert.ok(bdecode(rs[1].body).has('files'), `cuts ${cuts}: then scrape`);
      assert.ok(bdecode(rs[2].body).has('interval'), `cuts ${cuts}`);
      const files = bdecode(rs[3].body).get('files') as Map<string, Map<string, unknown>>;
      assert.equal(files.get(h.toString('latin1'))!.get('complete'), 2, `cuts ${cuts}`);
      // The connection is still usable afterwards (back in the addon or on a Node socket).
      c.socket.write(scrapeReq(h));
      assert.equal((await c.responses(5))[4].status, 200);
      c.socket.destroy();
    }
  });

  test('a partial head is completed later, on a fresh and on a kept-alive connection', async () => {
    const h = hashOf(9004);
    const c = await converse(port6, '::1');
    const one = Buffer.from(announceReq(h, 6301), 'latin1');
    c.socket.write(one.subarray(0, 30));
    await sleep(150);
    c.socket.write(one.subarray(30));
    assert.equal((await c.responses(1))[0].status, 200);
    const two = Buffer.from(scrapeReq(h), 'latin1');
    c.socket.write(two.subarray(0, two.length - 1));
    await sleep(150);
    c.socket.write(two.subarray(two.length - 1));
    const rs = await c.responses(2);
    const files = bdecode(rs[1].body).get('files') as Map<string, Map<string, unknown>>;
    assert.equal(files.get(h.toString('latin1'))!.get('complete'), 1);
    c.socket.destroy();
  });

  test('hand-over to node:http: /stats on a fresh connection and after tracker requests on the same connection', async () => {
    const fresh = await httpGet(port4, '127.0.0.1', '/stats');
    assert.equal(fresh.status, 200);
    assert.ok(JSON.parse(fresh.body.toString()).announces.http >= 1);
    const h = hashOf(9005);
    // Sequential: an announce answered by the addon, then /stats on the kept connection.
    const c = await converse(port4, '127.0.0.1');
    c.socket.write(announceReq(h, 6401));
    await c.responses(1);
    c.socket.write('GET /stats HTTP/1.1\r\nHost: x\r\n\r\n');
    const rs = await c.responses(2);
    assert.equal(rs[1].status, 200);
    assert.ok(JSON.parse(rs[1].body.toString()).swarm.torrents >= 1);
    // node:http keeps serving tracker requests that follow on the handed-over connection.
    c.socket.write(scrapeReq(h));
    const rs3 = await c.responses(3);
    const files = bdecode(rs3[2].body).get('files') as Map<string, Map<string, unknown>>;
    assert.equal(files.get(h.toString('latin1'))!.get('complete'), 1);
    c.socket.destroy();
    // Pipelined in one write: announce, /health, announce.
    const p = await converse(port4, '127.0.0.1');
    p.socket.write(`${announceReq(h, 6402)}GET /health HTTP/1.1\r\nHost: x\r\n\r\n${announceReq(h, 6403)}`);
    const pr = await p.responses(3);
    assert.ok(bdecode(pr[0].body).has('interval'));
    assert.match(pr[1].body.toString(), /ok/);
    assert.equal(bdecode(pr[2].body).get('complete'), 2);
    p.socket.destroy();
    // A 404 from the web side, with Connection: close.
    const nf = await httpGet(port6, '::1', '/no-such-page');
    assert.equal(nf.status, 404);
  });

  test('WebSocket (WebTorrent) upgrade through the batched listener', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${port4}/announce`);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const reply = new Promise<Record<string, unknown>>((resolve) =>
      ws.once('message', (d) => resolve(JSON.parse(String(d)))),
    );
    ws.send(
      JSON.stringify({
        action: 'announce',
        info_hash: hashOf(9006).toString('latin1'),
        peer_id: Buffer.from('-WW0001-abcdefghijkl').toString('latin1'),
        numwant: 0,
        uploaded: 0,
        downloaded: 0,
        left: 0,
        event: 'started',
        offers: [],
      }),
    );
    const m = await reply;
    assert.equal(m.action, 'announce');
    assert.ok(typeof m.interval === 'number');
    ws.close();
  });

  test('full scrapes larger than 256 KiB arrive intact (the client reading late; larger than the addon arena)', async () => {
    const fill = async (from: number, to: number) => {
      const now = clock.now();
      for (let i = from; i < to; i++) {
        await tracker.service.store.announce(seederRequest(hashOf(100_000 + i, 7), i), now);
      }
    };
    // About 840 KB: fits the addon's 1 MiB arena and is written by the addon, to a client that
    // reads only later, with an announce pipelined behind it. (Short writes, which loopback's
    // multi-megabyte send buffers hardly ever cause, are tested in batched-listener.test.ts.)
    await fill(0, 12_000);
    const c = await converse(port6, '::1');
    c.socket.pause();
    c.socket.write(`GET /scrape HTTP/1.1\r\nHost: x\r\n\r\n${announceReq(hashOf(9007), 6501)}`);
    await sleep(300);
    c.socket.resume();
    const rs = await c.responses(2, 10_000);
    assert.ok(rs[0].body.length > 256 * 1024, `${rs[0].body.length} bytes`);
    assert.ok((bdecode(rs[0].body).get('files') as Map<string, unknown>).size >= 12_000);
    assert.ok(bdecode(rs[1].body).has('interval'), 'the announce after it is answered, in order');
    c.socket.write(scrapeReq(hashOf(9007)));
    assert.equal((await c.responses(3))[2].status, 200, 'and the connection goes on');
    c.socket.destroy();
    // About 1.2 MB: larger than the arena, written from a Node socket; the gzip form too.
    clock.advance(10); // past the full-scrape cache and rate limit
    await fill(12_000, 17_000);
    const big = await httpGet(port4, '127.0.0.1', '/scrape');
    assert.ok(big.body.length > 1 << 20, `${big.body.length} bytes`);
    assert.ok((bdecode(big.body).get('files') as Map<string, unknown>).size >= 17_000);
    const gz = await httpGet(port6, '::1', '/scrape', { 'Accept-Encoding': 'gzip' });
    assert.equal(gz.headers['content-encoding'], 'gzip');
    assert.ok((bdecode(gunzipSync(gz.body)).get('files') as Map<string, unknown>).size >= 17_000);
  });

  test('500 concurrent connections are each answered (one-shot and keep-alive)', async () => {
    const h = hashOf(9008);
    const conns = await Promise.all(
      Array.from({ length: 500 }, (_, i) => converse(i % 2 ? port4 : port6, i % 2 ? '127.0.0.1' : '::1')),
    );
    // Half close after their answer, half keep the connection and ask twice.
    for (let i = 0; i < conns.length; i++)
      conns[i].socket.write(announceReq(h, 10_000 + i, i % 4 === 0 ? 'Connection: close\r\n' : ''));
    const firsts = await Promise.all(conns.map((c) => c.responses(1, 15_000)));
    for (const rs of firsts) assert.equal(rs[0].status, 200);
    const keep = conns.filter((_, i) => i % 4 !== 0);
    for (const c of keep) c.socket.write(scrapeReq(h));
    const seconds = await Promise.all(keep.map((c) => c.responses(2, 15_000)));
    for (const rs of seconds) {
      const files = bdecode(rs[1].body).get('files') as Map<string, Map<string, unknown>>;
      assert.ok((files.get(h.toString('latin1'))!.get('complete') as number) > 0);
    }
    const closes = await Promise.all(conns.filter((_, i) => i % 4 === 0).map((c) => c.closed));
    assert.equal(closes.length, 125);
    for (const c of conns) c.socket.destroy();
  });

  test('a reset or a half-close from a kept-alive client is closed silently', async () => {
    const h = hashOf(9009);
    const a = await converse(port4, '127.0.0.1');
    a.socket.write(announceReq(h, 6601));
    await a.responses(1);
    a.socket.resetAndDestroy();
    const b = await converse(port4, '127.0.0.1');
    b.socket.write(announceReq(h, 6602));
    await b.responses(1);
    b.socket.end();
    const { ms } = await b.closed;
    assert.ok(ms < 3000);
    assert.equal((await httpGet(port4, '127.0.0.1', scrapeReq(h).split(' ')[1])).status, 200);
  });

  test('fuzz: random bytes, random cuts, random request fragments never crash or hang it', async () => {
    const next = xorshift(0x5eed);
    const h = hashOf(9010);
    const pieces = [
      announceReq(h, 6701),
      scrapeReq(h),
      'GET /stats HTTP/1.1\r\nHost: x\r\n\r\n',
      'GET /announce HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n',
      'POST /announce HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello',
      'GET /announce?info_hash=%zz HTTP/1.0\r\n\r\n',
      'GET / HTTP/1.1\r\n',
      '\r\n',
      'HTTP/1.1 200 OK\r\n\r\n',
      `GET /announce?${'a'.repeat(9000)} HTTP/1.1\r\n\r\n`,
    ];
    const rounds = 120;
    await Promise.all(
      Array.from({ length: rounds }, async (_, r) => {
        const parts: Buffer[] = [];
        const count = 1 + Math.floor(next() * 4);
        for (let i = 0; i < count; i++) {
          const k = next();
          if (k < 0.5) parts.push(Buffer.from(pieces[Math.floor(next() * pieces.length)], 'latin1'));
          else if (k < 0.8) {
            const junk = Buffer.alloc(1 + Math.floor(next() * 3000));
            for (let j = 0; j < junk.length; j++) junk[j] = Math.floor(next() * 256);
            parts.push(junk);
          } else {
            // A valid request with one byte flipped.
            const b = Buffer.from(pieces[Math.floor(next() * 2)], 'latin1');
            b[Math.floor(next() * b.length)] = Math.floor(next() * 256);
            parts.push(b);
          }
        }
        const data = Buffer.concat(parts);
        const cuts = Array.from({ length: Math.floor(next() * 4) }, () =>
          Math.floor(next() * data.length),
        ).sort((a, b) => a - b);
        const resetEarly = next() < 0.2;
        const c = await converse(r % 2 ? port4 : port6, r % 2 ? '127.0.0.1' : '::1');
        await writeCut(c.socket, data, cuts, 5);
        if (resetEarly) c.socket.resetAndDestroy();
        else {
          await Promise.race([c.closed, sleep(300)]);
          c.socket.destroy();
        }
      }),
    );
    // Still serving, on both listeners, fresh and kept-alive.
    assert.equal(
      (await httpGet(port4, '127.0.0.1', announcePath({ infoHash: h, port: 6702, left: 0 }))).status,
      200,
    );
    assert.equal(
      (await httpGet(port6, '::1', announcePath({ infoHash: h, port: 6703, left: 0 }))).status,
      200,
    );
    const c = await converse(port4, '127.0.0.1');
    c.socket.write(announceReq(h, 6704) + scrapeReq(h));
    const rs = await c.responses(2);
    assert.equal(rs[1].status, 200);
    c.socket.destroy();
  });
});

describe('batched HTTP: idle connections and stop()', { skip }, () => {
  let t: Tracker;
  let port: number;
  before(async () => {
    t = createTracker({
      http: ['127.0.0.1:0'],
      httpIo: 'batched',
      udp: [],
      httpIdleTimeout: 1,
      logLevel: 'silent',
      databaseUrl: 'sqlite::memory:',
    });
    await t.start();
    port = t.addresses().http[0].port;
  });
  after(() => t.stop());

  test('silent and kept-alive connections in the addon are closed after http_idle_timeout', async () => {
    const silent = await converse(port, '127.0.0.1');
    const kept = await converse(port, '127.0.0.1');
    kept.socket.write(announceReq(hashOf(9100), 6801));
    await kept.responses(1);
    // Kept busy: a request every 300 ms keeps it open while the others time out.
    const busy = await converse(port, '127.0.0.1');
    let done = false;
    const both = Promise.all([silent.closed, kept.closed]).then((r) => {
      done = true;
      return r;
    });
    let answered = 0;
    while (!done) {
      busy.socket.write(scrapeReq(hashOf(9100)));
      answered = (await busy.responses(answered + 1)).length;
      await sleep(300);
    }
    assert.ok(answered >= 3);
    const [s, k] = await both;
    // A silent connection is accepted (TCP_DEFER_ACCEPT) after about a second, then times out.
    assert.ok(s.ms >= 900 && s.ms < 4000, `silent: ${s.ms} ms`);
    assert.ok(k.ms >= 900 && k.ms < 4000, `kept-alive: ${k.ms} ms`);
    assert.equal(busy.socket.destroyed, false, 'a connection in use is not idle');
    busy.socket.destroy();
  });

  test('stop() closes the listener and every connection the addon holds', async () => {
    const own = createTracker({
      http: ['127.0.0.1:0'],
      httpIo: 'batched',
      udp: [],
      logLevel: 'silent',
      databaseUrl: 'sqlite::memory:',
    });
    await own.start();
    const p = own.addresses().http[0].port;
    // Waiting in the addon: a kept-alive connection, and one that sent a partial head long ago
    // (on a Node socket). A connection that has sent nothing at all is not accepted yet
    // (TCP_DEFER_ACCEPT): the kernel drops it with the listener, and it learns so when it writes.
    const kept = await converse(p, '127.0.0.1');
    kept.socket.write(announceReq(hashOf(9101), 6901));
    await kept.responses(1);
    const partial = await converse(p, '127.0.0.1');
    partial.socket.write('GET /ann');
    const silent = await converse(p, '127.0.0.1');
    await sleep(50);
    await own.stop();
    const [k, q] = await Promise.all([kept.closed, partial.closed]);
    assert.ok(k.ms < 3000 && q.ms < 3000);
    silent.socket.write(announceReq(hashOf(9101), 6902));
    const sc = await silent.closed;
    assert.equal(sc.bytes.length, 0, 'no answer after stop()');
    await assert.rejects(
      new Promise((resolve, reject) => {
        const x = connect({ port: p, host: '127.0.0.1' });
        x.on('connect', () => {
          x.destroy();
          resolve(null);
        });
        x.on('error', reject);
      }),
      /ECONNREFUSED/,
    );
  });
});

/**
 * A store that answers announce and scrape later, as Redis would: when `gate` is set, only once it
 * is opened; an announce for `rejects` fails (a rejected promise), one for `throws` throws at once.
 */
function asynchronousStore(opts: { rejects?: Buffer; throws?: Buffer } = {}) {
  const memory = new MemorySwarmStore({ peerTimeout: 1800 });
  let gate: Promise<void> | null = null;
  let open: () => void = () => {};
  const later = <T>(v: T) =>
    new Promise<void>((r) => setTimeout(r, 5)).then(() => (gate === null ? v : gate.then(() => v)));
  const store = new Proxy(memory, {
    get(target, key) {
      if (key === 'synchronous') return false;
      const v = Reflect.get(target, key, target);
      if (key === 'announce' || key === 'scrape')
        return (...args: unknown[]) => {
          if (key === 'announce') {
            const h = Buffer.from((args[0] as { infoHash: Uint8Array }).infoHash);
            if (opts.throws?.equals(h)) throw new Error('store: bad connection state');
            if (opts.rejects?.equals(h)) return Promise.reject(new Error('store: connection lost'));
          }
          const r = (v as (...a: unknown[]) => unknown).apply(target, args);
          // An asynchronous store owns the peers it returns (AnnounceResult.peers).
          const own =
            key === 'announce' ? { ...(r as AnnounceResult), peers: (r as AnnounceResult).peers.slice() } : r;
          return later(own);
        };
      return typeof v === 'function' ? v.bind(target) : v;
    },
  }) as unknown as SwarmStore;
  return {
    store,
    /** Holds every answer from now until `release()`. */
    hold: () => {
      gate = new Promise<void>((r) => {
        open = r;
      });
    },
    release: () => {
      gate = null;
      open();
    },
  };
}

/** A tracker over `store` (plain HTTP through `io`), started for `fn` and stopped after. */
async function withTracker(
  store: SwarmStore,
  fn: (t: Tracker) => Promise<void>,
  io: 'batched' | 'node' = 'batched',
): Promise<void> {
  const t = createTracker(
    { http: ['127.0.0.1:0'], httpIo: io, udp: [], logLevel: 'silent', databaseUrl: 'sqlite::memory:' },
    { store },
  );
  await t.start();
  try {
    await fn(t);
  } finally {
    await t.stop();
  }
}

describe('batched HTTP with an asynchronous store', { skip }, () => {
  test('Promise answers park the connection in the addon and come back in order, pipelined or not', async () => {
    const s = asynchronousStore();
    await withTracker(s.store, async (t) => {
      const port = t.addresses().http[0].port;
      const h = hashOf(9200);
      const c = await converse(port, '127.0.0.1');
      s.hold();
      c.socket.write(announceReq(h, 7001) + scrapeReq(h) + announceReq(h, 7002));
      // While the store has not answered, the connection waits in the addon, parked.
      const deadline = Date.now() + 5000;
      while ((await t.stats.snapshot()).http!.parked !== 1) {
        assert.ok(Date.now() < deadline, 'parked while the store answers');
        await sleep(10);
      }
      s.release();
      const rs = await c.responses(3);
      assert.ok(bdecode(rs[0].body).has('interval'));
      const files = bdecode(rs[1].body).get('files') as Map<string, Map<string, unknown>>;
      assert.equal(files.get(h.toString('latin1'))!.get('complete'), 1);
      assert.equal(bdecode(rs[2].body).get('complete'), 1);
      assert.equal((await t.stats.snapshot()).http!.parked, 0);
      c.socket.write(announceReq(h, 7003, 'Connection: close\r\n'));
      const { bytes } = await c.closed;
      assert.equal(completeResponses(bytes).length, 4);
      const one = await httpGet(port, '127.0.0.1', announcePath({ infoHash: h, port: 7004, left: 1 }));
      assert.equal(bdecode(one.body).get('complete'), 3);
    });
  });

  for (const io of ['batched', 'node'] as const)
    test(`${io}: a store that rejects or throws: that request gets a failure reason, the connection goes on`, async () => {
      const rejects = hashOf(9301);
      const throws = hashOf(9302);
      const s = asynchronousStore({ rejects, throws });
      await withTracker(
        s.store,
        async (t) => {
          const port = t.addresses().http[0].port;
          const h = hashOf(9300);
          const c = await converse(port, '127.0.0.1');
          c.socket.write(
            announceReq(h, 7001) + announceReq(rejects, 7002) + announceReq(throws, 7003) + scrapeReq(h),
          );
          const rs = await c.responses(4);
          assert.ok(bdecode(rs[0].body).has('interval'));
          assert.equal(String(bdecode(rs[1].body).get('failure reason')), 'internal error');
          assert.equal(String(bdecode(rs[2].body).get('failure reason')), 'internal error');
          const files = bdecode(rs[3].body).get('files') as Map<string, Map<string, unknown>>;
          assert.equal(files.get(h.toString('latin1'))!.get('complete'), 1);
          c.socket.write(announceReq(h, 7004));
          const more = await c.responses(5);
          assert.equal(bdecode(more[4].body).get('complete'), 1, 'the same connection goes on');
          assert.equal((await t.stats.snapshot()).internalErrors, 2);
          c.socket.destroy();
        },
        io,
      );
    });
});
