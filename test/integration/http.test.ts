/**
 * DESIGN.md protocol checklist, HTTP side, over real loopback sockets (IPv4 and IPv6).
 *
 * Runs with the default plain-HTTP I/O (`auto`: the batched addon when built); HERALD_HTTP_IO
 * (the `http_io` setting's own variable, which spawned `herald` processes read too) picks one:
 * `HERALD_HTTP_IO=node npm test`. http-node-io.test.ts runs this file on node:net.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import type { HeraldConfig } from '../../src/config/schema.ts';
import { ManualClock } from '../../src/core/clock.ts';
import { createTracker, type Tracker } from '../../src/index.ts';
import {
  announcePath,
  bdecode,
  hashOf,
  httpGet,
  pct,
  rawExchange,
  splitResponses,
  text,
} from '../helpers/clients.ts';

const httpIo = (process.env.HERALD_HTTP_IO ?? 'auto') as 'auto' | 'batched' | 'node';

let tracker: Tracker;
let port4: number;
let port6: number;
const clock = new ManualClock(1000);

before(async () => {
  tracker = createTracker(
    {
      http: ['127.0.0.1:0', '[::1]:0'],
      httpIo,
      udp: ['127.0.0.1:0'],
      interval: 1200,
      minInterval: 60,
      peerTimeout: 1500,
      defaultNumWant: 5,
      maxNumWant: 8,
      logLevel: 'silent',
      databaseUrl: 'sqlite::memory:',
    },
    { clock },
  );
  await tracker.start();
  const a = tracker.addresses();
  port4 = a.http.find((x) => x.host === '127.0.0.1')!.port;
  port6 = a.http.find((x) => x.host === '::1')!.port;
});
after(() => tracker.stop());

const get = (path: string, headers?: Record<string, string>) => httpGet(port4, '127.0.0.1', path, headers);

describe('announce', () => {
  test('raw percent-encoded info_hash bytes (not UTF-8) are kept byte for byte', async () => {
    const h = Buffer.from('ff00fe80c0ae2f3f3d26ffffffff0001020304ff', 'hex');
    const r = await get(announcePath({ infoHash: h, port: 7001, left: 0 }));
    assert.equal(r.status, 200);
    const s = bdecode((await get(`/scrape?info_hash=${pct(h)}`)).body);
    const files = s.get('files') as Map<string, Map<string, unknown>>;
    assert.deepEqual([...files.keys()], [h.toString('latin1')]);
    assert.equal(files.get(h.toString('latin1'))!.get('complete'), 1);
  });

  test('compact is the default; interval, min interval, external ip; never self; seeders get no seeders', async () => {
    const h = hashOf(1);
    const s1 = bdecode(
      (await get(announcePath({ infoHash: h, port: 7001, left: 0, event: 'started' }))).body,
    );
    assert.equal(s1.get('interval'), 1200);
    assert.equal(s1.get('min interval'), 60);
    assert.deepEqual(s1.get('external ip'), Buffer.from([127, 0, 0, 1]));
    assert.equal((s1.get('peers') as Buffer).length, 0, 'the first peer gets nobody, not itself');
    const s2 = bdecode((await get(announcePath({ infoHash: h, port: 7002, left: 0 }))).body);
    assert.equal((s2.get('peers') as Buffer).length, 0, 'a seeder is sent no seeders');
    const l1 = bdecode((await get(announcePath({ infoHash: h, port: 7003, left: 10 }))).body);
    const peers = l1.get('peers') as Buffer;
    assert.equal(peers.length, 12);
    const ports = [peers.readUInt16BE(4), peers.readUInt16BE(10)].sort();
    assert.deepEqual(ports, [7001, 7002]);
    assert.equal(l1.get('complete'), 2);
    assert.equal(l1.get('incomplete'), 0, 'counts exclude the requester');
    const again = bdecode((await get(announcePath({ infoHash: h, port: 7003, left: 10 }))).body);
    const p2 = again.get('peers') as Buffer;
    for (let i = 0; i < p2.length; i += 6) assert.notEqual(p2.readUInt16BE(i + 4), 7003, 'never self');
    const seeder = bdecode((await get(announcePath({ infoHash: h, port: 7001, left: 0 }))).body);
    const sp = seeder.get('peers') as Buffer;
    assert.equal(sp.length, 6);
    assert.equal(sp.readUInt16BE(4), 7003, 'a seeder is sent the leecher only');
  });

  test('compact=0 gives dictionaries with peer id; no_peer_id drops it', async () => {
    const h = hashOf(2);
    const pid = Buffer.from('-qB4650-abcdefghijkl');
    await get(announcePath({ infoHash: h, port: 7101, left: 0, compact: 0, peerId: pid }));
    // The swarm records ids once it has seen a compact=0 request: announce again.
    await get(announcePath({ infoHash: h, port: 7101, left: 0, compact: 0, peerId: pid }));
    const r = bdecode((await get(announcePath({ infoHash: h, port: 7102, left: 5, compact: 0 }))).body);
    const list = r.get('peers') as Map<string, unknown>[];
    assert.equal(list.length, 1);
    assert.equal(text(list[0].get('ip')), '127.0.0.1');
    assert.equal(list[0].get('port'), 7101);
    assert.deepEqual(list[0].get('peer id'), pid);
    const n = bdecode(
      (await get(announcePath({ infoHash: h, port: 7103, left: 5, compact: 0, noPeerId: true }))).body,
    );
    const l2 = n.get('peers') as Map<string, unknown>[];
    assert.ok(l2.length >= 1);
    for (const p of l2) assert.equal(p.has('peer id'), false);
  });

  test('IPv6 peers come in peers6 (18 bytes each); each family gets its own peers; counts cover both', async () => {
    const h = hashOf(3);
    await get(announcePath({ infoHash: h, port: 7201, left: 0 }));
    const v6a = await httpGet(port6, '::1', announcePath({ infoHash: h, port: 7202, left: 0 }));
    const d6a = bdecode(v6a.body);
    assert.equal(d6a.get('complete'), 1, 'the IPv4 seeder is counted');
    assert.equal((d6a.get('peers6') as Buffer).length, 0);
    assert.equal((d6a.get('external ip') as Buffer).length, 16);
    const v6b = bdecode(
      (await httpGet(port6, '::1', announcePath({ infoHash: h, port: 7203, left: 9 }))).body,
    );
    const p6 = v6b.get('peers6') as Buffer;
    assert.equal(p6.length, 18);
    assert.equal(p6[15], 1);
    assert.equal(p6.readUInt16BE(16), 7202);
    assert.equal(v6b.get('complete'), 2);
    const v4 = bdecode((await get(announcePath({ infoHash: h, port: 7204, left: 9 }))).body);
    const p4 = v4.get('peers') as Buffer;
    assert.equal(p4.length, 6);
    assert.equal(p4.readUInt16BE(4), 7201);
  });

  test('stopped removes the peer at once; completed counts once per peer', async () => {
    const h = hashOf(4);
    await get(announcePath({ infoHash: h, port: 7301, left: 5, event: 'started' }));
    await get(announcePath({ infoHash: h, port: 7301, left: 0, event: 'completed' }));
    await get(announcePath({ infoHash: h, port: 7301, left: 0, event: 'completed' }));
    let s = bdecode((await get(`/scrape?info_hash=${pct(h)}`)).body);
    let e = (s.get('files') as Map<string, Map<string, unknown>>).get(h.toString('latin1'))!;
    assert.equal(e.get('downloaded'), 1);
    assert.equal(e.get('complete'), 1);
    await get(announcePath({ infoHash: h, port: 7301, left: 0, event: 'stopped' }));
    s = bdecode((await get(`/scrape?info_hash=${pct(h)}`)).body);
    e = (s.get('files') as Map<string, Map<string, unknown>>).get(h.toString('latin1'))!;
    assert.equal(e.get('complete'), 0);
  });

  test('peers that stop announcing expire after the peer timeout', async () => {
    const h = hashOf(5);
    await get(announcePath({ infoHash: h, port: 7401, left: 0 }));
    clock.advance(1499);
    await tracker.service.store.sweep(clock.now(), 1e9);
    let e = await tracker.service.store.scrape([h], clock.now());
    assert.equal(e[0].complete, 1, 'still there before the timeout');
    clock.advance(2);
    await tracker.service.store.sweep(clock.now(), 1e9);
    e = await tracker.service.store.scrape([h], clock.now());
    assert.equal(e[0].complete, 0, 'gone after it');
  });

  test('a peer is its endpoint: another endpoint claiming its peer id can neither replace nor stop it', async () => {
    const h = hashOf(12);
    const pid = Buffer.from('-TR4000-victimvictim');
    await get(announcePath({ infoHash: h, port: 7451, left: 0, peerId: pid }));
    await get(announcePath({ infoHash: h, port: 7452, left: 0, peerId: pid, event: 'stopped' }));
    await get(announcePath({ infoHash: h, port: 7453, left: 0, peerId: pid }));
    const e = (await tracker.service.store.scrape([h], clock.now()))[0];
    assert.equal(e.complete, 2, 'the first peer is still there, and the impostor is a separate peer');
  });

  test('numwant has a default and a cap', async () => {
    const h = hashOf(6);
    for (let i = 0; i < 12; i++) await get(announcePath({ infoHash: h, port: 7500 + i, left: 0 }));
    const d = bdecode((await get(announcePath({ infoHash: h, port: 7600, left: 1 }))).body);
    assert.equal((d.get('peers') as Buffer).length, 5 * 6, 'default numwant');
    const m = bdecode((await get(announcePath({ infoHash: h, port: 7601, left: 1, numwant: 1000 }))).body);
    assert.equal((m.get('peers') as Buffer).length, 8 * 6, 'capped at maxNumWant');
    const z = bdecode((await get(announcePath({ infoHash: h, port: 7602, left: 1, numwant: 0 }))).body);
    assert.equal((z.get('peers') as Buffer).length, 0);
    const all = new Set<number>();
    const mm = m.get('peers') as Buffer;
    for (let i = 0; i < mm.length; i += 6) all.add(mm.readUInt16BE(i + 4));
    assert.equal(all.size, 8, 'no duplicates');
  });

  test('the ip parameter and X-Forwarded-For are ignored from untrusted peers', async () => {
    const h = hashOf(7);
    await get(announcePath({ infoHash: h, port: 7701, left: 0, ip: '10.9.8.7' }), {
      'X-Forwarded-For': '10.1.1.1',
    });
    const d = bdecode((await get(announcePath({ infoHash: h, port: 7702, left: 3 }))).body);
    const p = d.get('peers') as Buffer;
    assert.deepEqual([...p.subarray(0, 4)], [127, 0, 0, 1]);
  });
});

describe('errors', () => {
  test('protocol errors are a bencoded failure reason with status 200', async () => {
    const cases: [string, RegExp][] = [
      [`/announce?peer_id=${pct(hashOf(9))}&port=1`, /missing info_hash/],
      [`/announce?info_hash=${pct(hashOf(8))}&port=1`, /peer_id/],
      [`/announce?info_hash=%41&peer_id=${pct(hashOf(9))}&port=1`, /info_hash/],
      [`/announce?info_hash=${pct(hashOf(8))}&peer_id=${pct(hashOf(9))}&port=99999`, /port/],
      [`/announce?info_hash=${pct(hashOf(8))}&peer_id=${pct(hashOf(9))}&port=1&left=-5`, /invalid/],
      [`/announce?info_hash=${pct(hashOf(8))}&peer_id=${pct(hashOf(9))}&port=1&event=bogus`, /event/],
      ['/announce?info_hash=%zz', /./],
      ['/scrape', /full scrape is disabled/],
    ];
    for (const [path, re] of cases) {
      const r = await get(path);
      assert.equal(r.status, 200, path);
      const d = bdecode(r.body);
      assert.match(text(d.get('failure reason')), re, path);
    }
  });

  test('a request that is not a tracker request gets a plain HTTP error', async () => {
    const r = await get('/nope');
    assert.equal(r.status, 404);
    const bad = await rawExchange(port4, '127.0.0.1', 'BLAH\r\n\r\n');
    assert.match(bad.toString('latin1'), /^HTTP\/1\.1 400/);
    const huge = await rawExchange(port4, '127.0.0.1', `GET /announce?${'a'.repeat(20000)} HTTP/1.1\r\n\r\n`);
    assert.match(huge.toString('latin1'), /^HTTP\/1\.1 (414|431)/);
  });
});

describe('connections', () => {
  test('keep-alive with pipelined requests split at awkward places', async () => {
    const h = hashOf(10);
    const one = `GET ${announcePath({ infoHash: h, port: 7801, left: 0 })} HTTP/1.1\r\nHost: x\r\n\r\n`;
    const two = `GET /scrape?info_hash=${pct(h)} HTTP/1.1\r\nHost: x\r\n\r\n`;
    const three = 'GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n';
    const all = Buffer.from(one + two + three, 'latin1');
    const { connect } = await import('node:net');
    const chunks: Buffer[] = [];
    await new Promise<void>((resolve, reject) => {
      const s = connect(port4, '127.0.0.1', async () => {
        // Send in odd-sized pieces to exercise partial reads.
        for (let i = 0; i < all.length; i += 7) {
          s.write(all.subarray(i, i + 7));
          await new Promise((r) => setTimeout(r, 1));
        }
      });
      s.on('data', (d) => chunks.push(d));
      s.on('close', () => resolve());
      s.on('error', reject);
    });
    const rs = splitResponses(Buffer.concat(chunks));
    assert.equal(rs.length, 3);
    assert.equal(bdecode(rs[0].body).get('complete'), 0);
    const files = bdecode(rs[1].body).get('files') as Map<string, Map<string, unknown>>;
    assert.equal(files.get(h.toString('latin1'))!.get('complete'), 1);
    assert.equal(rs[2].status, 200);
    assert.match(rs[2].body.toString(), /ok/);
  });

  test('HTTP/1.0 without keep-alive is closed after one answer', async () => {
    const all = await rawExchange(
      port4,
      '127.0.0.1',
      `GET /scrape?info_hash=${pct(hashOf(11))} HTTP/1.0\r\n\r\n`,
    );
    const rs = splitResponses(all);
    assert.equal(rs.length, 1);
  });
});

describe('connection lifetime', () => {
  /** Connects, writes `data` (at once or in `drip` pieces 200 ms apart), resolves when closed. */
  const openUntilClosed = (port: number, data: string[], dripMs = 200) =>
    new Promise<{ ms: number; bytes: Buffer; errored: boolean; byServer: boolean }>((resolve) => {
      const t0 = Date.now();
      const chunks: Buffer[] = [];
      let errored = false;
      // The server ended the connection (not this client's 10 s guard).
      let byServer = false;
      const sock = connect({ port, host: '127.0.0.1' });
      const guard = setTimeout(() => sock.destroy(), 10_000);
      let i = 0;
      const next = () => {
        if (i < data.length && !sock.destroyed) {
          sock.write(data[i++]);
          setTimeout(next, dripMs);
        }
      };
      sock.on('connect', next);
      sock.on('data', (d) => chunks.push(d));
      sock.on('end', () => {
        byServer = true;
      });
      sock.on('error', () => {
        errored = true;
        byServer = true;
      });
      sock.on('close', () => {
        clearTimeout(guard);
        resolve({ ms: Date.now() - t0, bytes: Buffer.concat(chunks), errored, byServer });
      });
    });

  let idle: Tracker;
  let idlePort: number;
  before(async () => {
    idle = createTracker(
      {
        http: ['127.0.0.1:0'],
        httpIo,
        udp: [],
        httpIdleTimeout: 1,
        logLevel: 'silent',
        databaseUrl: 'sqlite::memory:',
      },
      { clock },
    );
    await idle.start();
    idlePort = idle.addresses().http[0].port;
  });
  after(() => idle.stop());

  test('Connection: close is answered in full and closed by the tracker at once', async () => {
    const r = await openUntilClosed(port4, [
      `GET ${announcePath({ infoHash: hashOf(12), port: 7301, left: 0 })} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
    ]);
    assert.ok(r.ms < 1500, `closed after ${r.ms} ms`);
    const rs = splitResponses(r.bytes);
    assert.equal(rs.length, 1);
    assert.equal(rs[0].status, 200);
    assert.match(text(rs[0].body), /^d8:completei/);
  });

  test('a connection that sends nothing, an idle keep-alive connection and a slow head are closed after http_idle_timeout', async () => {
    const silent = await openUntilClosed(idlePort, []);
    assert.ok(silent.ms >= 900 && silent.ms < 4000, `silent: ${silent.ms} ms`);
    const keepAlive = await openUntilClosed(idlePort, [
      `GET ${announcePath({ infoHash: hashOf(13), port: 7302, left: 0 })} HTTP/1.1\r\nHost: x\r\n\r\n`,
    ]);
    assert.equal(splitResponses(keepAlive.bytes).length, 1);
    assert.ok(keepAlive.ms >= 900 && keepAlive.ms < 4000, `keep-alive: ${keepAlive.ms} ms`);
    // A head dribbled a few bytes at a time never completes: activity alone does not keep it open.
    const slow = await openUntilClosed(
      idlePort,
      Array.from({ length: 40 }, () => 'X'),
      200,
    );
    assert.ok(slow.ms < 4000, `slow head: ${slow.ms} ms`);
    assert.equal(slow.bytes.length, 0);
    // The listener still serves afterwards.
    const r = await httpGet(idlePort, '127.0.0.1', `/scrape?info_hash=${pct(hashOf(13))}`);
    assert.equal(r.status, 200);
  });

  test('portal_listen listeners close a silent connection and a slow head after http_idle_timeout too', async () => {
    const portal = createTracker({
      http: ['127.0.0.1:0'],
      udp: [],
      mode: 'private',
      portalListen: ['127.0.0.1:0'],
      httpIdleTimeout: 1,
      logLevel: 'silent',
      databaseUrl: 'sqlite::memory:',
    });
    await portal.start();
    try {
      const own = portal.addresses().portal[0].port;
      // Node's defaults (60 s for a head, checked every 30 s) would leave both to this client's guard.
      const silent = await openUntilClosed(own, []);
      assert.ok(silent.byServer, 'the silent connection is closed by the portal');
      const slow = await openUntilClosed(own, [...'GET /login HTTP/1.1\r\nHost: x\r\n']);
      assert.ok(slow.byServer, 'the slow head is closed by the portal');
      assert.doesNotMatch(slow.bytes.toString('latin1'), /^HTTP\/1\.1 200 /);
      // It still serves.
      assert.equal((await fetch(`http://127.0.0.1:${own}/login`)).status, 200);
    } finally {
      await portal.stop();
    }
  });

  test('a portal form body that stops arriving, or dribbles, is closed after http_idle_timeout (tracker port and portal_listen)', async () => {
    for (const own of [false, true]) {
      const portal = createTracker({
        http: ['127.0.0.1:0'],
        udp: [],
        mode: 'private',
        portalListen: own ? ['127.0.0.1:0'] : [],
        httpIdleTimeout: 1,
        logLevel: 'silent',
        databaseUrl: 'sqlite::memory:',
      });
      await portal.start();
      try {
        const port = own ? portal.addresses().portal[0].port : portal.addresses().http[0].port;
        const head =
          'POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 200000\r\n\r\n';
        // Anyone can start a login form: node:http alone would hold it (and what it sent) for the
        // 5 minutes it gives a body, 128 connections per address.
        const stopped = await openUntilClosed(port, [head, `username=${'a'.repeat(100_000)}`]);
        assert.ok(stopped.byServer, `a body that stopped is closed by the portal (own listener: ${own})`);
        // Activity alone does not keep a form open: a form must arrive whole within the timeout.
        const dribbled = await openUntilClosed(port, [
          head,
          ...'username=abcdefghijklmnopqrstuvwxyz0123456789abcd',
        ]);
        assert.ok(dribbled.byServer, `a dribbled body is closed by the portal (own listener: ${own})`);
        assert.match(dribbled.bytes.toString('latin1'), /^HTTP\/1\.1 408 /);
        // It still serves.
        assert.equal((await fetch(`http://127.0.0.1:${port}/login`)).status, 200);
      } finally {
        await portal.stop();
      }
    }
  });

  test('a slow head on a connection that moved to node:http (after a web request) is closed after http_idle_timeout too', async () => {
    // /health leaves the raw path; the next head, dribbled, is node:http's to time out.
    const slow = await openUntilClosed(idlePort, [
      'GET /health HTTP/1.1\r\nHost: x\r\n\r\n',
      ...`GET /announce?info_hash=${'a'.repeat(40)}`,
    ]);
    assert.match(slow.bytes.toString('latin1'), /^HTTP\/1\.1 200 /);
    assert.ok(slow.ms < 4000, `slow head after a web request: ${slow.ms} ms`);
  });
});

describe('scrape', () => {
  test('many info_hash values in one request; unknown hashes are zeros', async () => {
    const a = hashOf(20);
    const b = hashOf(21);
    await get(announcePath({ infoHash: a, port: 7901, left: 0 }));
    const d = bdecode((await get(`/scrape?info_hash=${pct(a)}&info_hash=${pct(b)}`)).body);
    const files = d.get('files') as Map<string, Map<string, unknown>>;
    assert.equal(files.size, 2);
    assert.equal(files.get(a.toString('latin1'))!.get('complete'), 1);
    assert.equal(files.get(b.toString('latin1'))!.get('complete'), 0);
  });
});

describe('web endpoints', () => {
  test('/health, /stats and /metrics', async () => {
    assert.equal((await get('/health')).status, 200);
    const stats = JSON.parse((await get('/stats')).body.toString());
    assert.ok(stats.swarm.torrents >= 1);
    assert.ok(stats.announces.http >= 1);
    assert.ok('peers6' in stats.swarm);
    const metrics = (await get('/metrics')).body.toString();
    assert.match(metrics, /herald_announces_total\{protocol="http"\} \d+/);
    assert.match(metrics, /herald_peers_by_family\{family="ipv6"\} \d+/);
  });
});

describe('full scrape when enabled', () => {
  test('gzip-compressed and rate-limited per address', async () => {
    const t = createTracker({
      http: ['127.0.0.1:0'],
      httpIo,
      udp: [],
      fullScrape: true,
      fullScrapeInterval: 60,
      logLevel: 'silent',
      databaseUrl: 'sqlite::memory:',
    });
    await t.start();
    try {
      const port = t.addresses().http[0].port;
      await httpGet(port, '127.0.0.1', announcePath({ infoHash: hashOf(30), port: 8001, left: 0 }));
      const r = await httpGet(port, '127.0.0.1', '/scrape', { 'Accept-Encoding': 'gzip' });
      assert.equal(r.headers['content-encoding'], 'gzip');
      const d = bdecode(gunzipSync(r.body));
      assert.equal((d.get('files') as Map<string, unknown>).size, 1);
      const again = await httpGet(port, '127.0.0.1', '/scrape');
      assert.match(text(bdecode(again.body).get('failure reason')), /rate limited/);
    } finally {
      await t.stop();
    }
  });
});

describe('trusted proxy', () => {
  /** Peers of `h` as "a.b.c.d:port", sorted, from an announce that names no address of its own. */
  async function peersOf(port: number, h: Buffer, headers: Record<string, string>): Promise<string[]> {
    const r = await httpGet(port, '127.0.0.1', announcePath({ infoHash: h, port: 8199, left: 1 }), headers);
    const p = bdecode(r.body).get('peers') as Buffer;
    const out: string[] = [];
    for (let i = 0; i < p.length; i += 6)
      out.push(`${p.subarray(i, i + 4).join('.')}:${p.readUInt16BE(i + 4)}`);
    return out.sort();
  }

  /** Runs `fn` against a tracker on 127.0.0.1 with these settings, then stops it. */
  async function withTracker(cfg: Partial<HeraldConfig>, fn: (port: number) => Promise<void>): Promise<void> {
    const t = createTracker({
      http: ['127.0.0.1:0'],
      httpIo,
      udp: [],
      logLevel: 'silent',
      databaseUrl: 'sqlite::memory:',
      ...cfg,
    });
    await t.start();
    try {
      await fn(t.addresses().http[0].port);
    } finally {
      await t.stop();
    }
  }

  test('behind a trusted proxy the client is the X-Forwarded-For entry the proxy appended; ip= is ignored', async () => {
    await withTracker({ trustedProxies: ['127.0.0.1'] }, async (port) => {
      const h = hashOf(40);
      const via = (client: string) => ({ 'X-Forwarded-For': client });
      const announce = (f: Parameters<typeof announcePath>[0], headers: Record<string, string>) =>
        httpGet(port, '127.0.0.1', announcePath(f), headers);
      // The victim, seen by the proxy as 203.0.113.9.
      await announce({ infoHash: h, port: 8101, left: 0 }, via('203.0.113.9'));
      // A client that writes its own X-Forwarded-For: the proxy appends the real address.
      await announce({ infoHash: h, port: 8102, left: 0 }, via('9.9.9.9, 198.51.100.20'));
      // A stranger names the victim's address and port to remove its peer.
      await announce(
        { infoHash: h, port: 8101, left: 0, event: 'stopped', ip: '203.0.113.9' },
        via('198.51.100.30'),
      );
      // ip= alone does not move a peer either.
      await announce({ infoHash: h, port: 8104, left: 0, ip: '198.51.100.7' }, via('198.51.100.31'));
      assert.deepEqual(await peersOf(port, h, via('198.51.100.40')), [
        '198.51.100.20:8102',
        '198.51.100.31:8104',
        '203.0.113.9:8101',
      ]);
      // On a connection already handed over to node:http (after a /health request).
      const g = hashOf(41);
      const both = await rawExchange(
        port,
        '127.0.0.1',
        'GET /health HTTP/1.1\r\nHost: t\r\n\r\n' +
          `GET ${announcePath({ infoHash: g, port: 8105, left: 0, ip: '198.51.100.8' })} HTTP/1.1\r\n` +
          'Host: t\r\nX-Forwarded-For: 9.9.9.9\r\nX-Forwarded-For: 198.51.100.21\r\nConnection: close\r\n\r\n',
      );
      assert.equal(splitResponses(both).length, 2);
      assert.deepEqual(await peersOf(port, g, via('198.51.100.40')), ['198.51.100.21:8105']);
    });
  });

  test('a chain of trusted proxies: the rightmost X-Forwarded-For entry that is not one of them', async () => {
    await withTracker({ trustedProxies: ['127.0.0.1', '10.0.0.2'] }, async (port) => {
      const h = hashOf(42);
      await httpGet(port, '127.0.0.1', announcePath({ infoHash: h, port: 8111, left: 0 }), {
        'X-Forwarded-For': '9.9.9.9, 203.0.113.5, 10.0.0.2',
      });
      assert.deepEqual(await peersOf(port, h, {}), ['203.0.113.5:8111']);
    });
  });

  test('behind a trusted proxy the full scrape is rate-limited per client, not for everyone behind the proxy', async () => {
    await withTracker({ trustedProxies: ['127.0.0.1'], fullScrape: true }, async (port) => {
      const scrape = async (client: string) =>
        bdecode((await httpGet(port, '127.0.0.1', '/scrape', { 'X-Forwarded-For': client })).body);
      assert.ok((await scrape('203.0.113.1')).has('files'));
      assert.ok((await scrape('203.0.113.2')).has('files'), 'another client behind the same proxy');
      assert.match(text((await scrape('203.0.113.1')).get('failure reason')), /rate limited/);
    });
  });

  test('ip= is believed only with trust_ip_param', async () => {
    await withTracker({ trustIpParam: true }, async (port) => {
      const h = hashOf(43);
      await httpGet(
        port,
        '127.0.0.1',
        announcePath({ infoHash: h, port: 8121, left: 0, ip: '198.51.100.7' }),
      );
      // X-Forwarded-For is still not believed: no proxy is trusted.
      await httpGet(port, '127.0.0.1', announcePath({ infoHash: h, port: 8122, left: 0 }), {
        'X-Forwarded-For': '198.51.100.9',
      });
      assert.deepEqual(await peersOf(port, h, {}), ['127.0.0.1:8122', '198.51.100.7:8121']);
      for (const ip of ['nonsense', '%zz', '1'.repeat(513)]) {
        const bad = await httpGet(port, '127.0.0.1', announcePath({ infoHash: h, port: 8123, ip }));
        assert.match(text(bdecode(bad.body).get('failure reason')), /invalid ip/);
      }
    });
  });

  test('without trust_ip_param, ip= is ignored, a malformed one too (the socket address is used)', async () => {
    await withTracker({}, async (port) => {
      const h = hashOf(44);
      for (const [p, ip] of [
        [8124, '198.51.100.7'],
        [8125, '%zz'],
        [8126, '1'.repeat(513)],
        [8127, 'nonsense'],
      ] as const) {
        const r = bdecode(
          (await httpGet(port, '127.0.0.1', announcePath({ infoHash: h, port: p, left: 0, ip }))).body,
        );
        assert.equal(r.get('failure reason'), undefined, `ip=${ip.slice(0, 20)}`);
      }
      assert.deepEqual(await peersOf(port, h, {}), [
        '127.0.0.1:8124',
        '127.0.0.1:8125',
        '127.0.0.1:8126',
        '127.0.0.1:8127',
      ]);
    });
  });
});
