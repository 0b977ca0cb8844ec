/**
 * Several hosts, one set of swarms (issue #14): two `herald serve` processes on one Redis (and
 * on one Redis Cluster) serve the same swarms. A peer that announced to instance A is handed to
 * a peer announcing to instance B, over HTTP and UDP; a UDP connection id from A is accepted by
 * B (shared udp_secret); scrape and full scrape agree on both.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import {
  type ConnectionId,
  parseResponse,
  writeAnnounceRequest,
  writeConnectRequest,
  writeScrapeRequest,
} from '../../src/protocol/udp/codec.ts';
import { type RunningTracker, startTracker } from '../e2e/tracker-process.ts';
import { announcePath, bdecode, hashOf, httpGet, udpClient } from '../helpers/clients.ts';
import { compactPeers, deleteKeys, redisTargets, sharedServe, testPrefix } from '../helpers/redis.ts';

for (const [name, url] of redisTargets)
  describe(`two instances on one ${name}`, () => {
    const prefix = testPrefix();
    const secret = randomBytes(32).toString('hex');
    let a: RunningTracker;
    let b: RunningTracker;
    before(async () => {
      [a, b] = await Promise.all([
        startTracker(sharedServe(url, prefix, secret)),
        startTracker(sharedServe(url, prefix, secret)),
      ]);
    });
    after(async () => {
      await Promise.all([a?.stop(), b?.stop()]);
      await deleteKeys(url, prefix);
    });

    const announce = async (t: RunningTracker, ih: Buffer, port: number, left: number, extra = {}) => {
      const r = await httpGet(
        t.http[0].port,
        '127.0.0.1',
        announcePath({ infoHash: ih, port, left, ...extra }),
      );
      const d = bdecode(r.body);
      assert.equal(d.get('failure reason'), undefined, String(d.get('failure reason')));
      return d;
    };

    test('HTTP: a peer announced to A is handed out by B, and the other way round', async () => {
      const ih = hashOf(1, randomBytes(4).readUInt32BE(0));
      await announce(a, ih, 7001, 0, { event: 'started' });
      const fromB = await announce(b, ih, 7002, 500, { event: 'started' });
      assert.deepEqual(compactPeers(fromB.get('peers')), ['127.0.0.1:7001']);
      assert.deepEqual([fromB.get('complete'), fromB.get('incomplete')], [1, 0]);
      const fromA = await announce(a, ih, 7003, 500, { event: 'started' });
      assert.deepEqual(compactPeers(fromA.get('peers')), ['127.0.0.1:7001', '127.0.0.1:7002']);
      // A stop on B removes the peer for A at once.
      await announce(b, ih, 7002, 500, { event: 'stopped' });
      const again = await announce(a, ih, 7003, 500);
      assert.deepEqual(compactPeers(again.get('peers')), ['127.0.0.1:7001']);
      assert.deepEqual([again.get('complete'), again.get('incomplete')], [1, 0]);
    });

    test('UDP: a connection id from A is accepted by B; peers from both instances', async () => {
      const ih = hashOf(2, randomBytes(4).readUInt32BE(0));
      await announce(a, ih, 7101, 0, { event: 'started' });
      await announce(b, ih, 7102, 0, { event: 'started' });
      const c = await udpClient(4);
      try {
        const buf = Buffer.alloc(2048);
        const n = writeConnectRequest(buf, 11);
        const reply = await c.request(buf.subarray(0, n), a.udp[0].port);
        assert.ok(reply !== null, 'A answered connect');
        const id = (parseResponse(reply, reply.length) as { connectionId: ConnectionId }).connectionId;
        const len = writeAnnounceRequest(buf, {
          connectionId: id,
          transactionId: 12,
          infoHash: ih,
          peerId: Buffer.alloc(20, 3),
          downloaded: 0,
          left: 1000,
          uploaded: 0,
          event: 2,
          numWant: 50,
          port: 7103,
        });
        const ann = await c.request(buf.subarray(0, len), b.udp[0].port);
        assert.ok(ann !== null, 'B answered the announce');
        const r = parseResponse(ann, ann.length, 4);
        assert.equal(r.action, 1, `an announce reply, not ${JSON.stringify(r)}`);
        if (r.action !== 1) return;
        assert.deepEqual([r.seeders, r.leechers], [2, 0]);
        assert.deepEqual(compactPeers(Buffer.from(r.peers)), ['127.0.0.1:7101', '127.0.0.1:7102']);
        // The UDP peer is in the swarm for A's HTTP clients.
        const fromA = await announce(a, ih, 7104, 500);
        assert.ok(compactPeers(fromA.get('peers')).includes('127.0.0.1:7103'));
        // Scrape over UDP on B, with A's connection id.
        const sl = writeScrapeRequest(buf, id, 13, [ih]);
        const sr = await c.request(buf.subarray(0, sl), b.udp[0].port);
        const s = parseResponse(sr!, sr!.length);
        assert.equal(s.action, 2);
        if (s.action === 2) assert.deepEqual(s.entries[0], { complete: 2, incomplete: 2, downloaded: 0 });
      } finally {
        c.close();
      }
    });

    test('scrape and full scrape agree on both instances', async () => {
      const salt = randomBytes(4).readUInt32BE(0);
      const hashes = [hashOf(3, salt), hashOf(4, salt), hashOf(5, salt)];
      await announce(a, hashes[0], 7201, 0, { event: 'completed' });
      await announce(b, hashes[0], 7202, 100);
      await announce(b, hashes[1], 7203, 0);
      const scrape = async (t: RunningTracker) => {
        const q = hashes.map(
          (h) => `info_hash=${[...h].map((x) => `%${x.toString(16).padStart(2, '0')}`).join('')}`,
        );
        const d = bdecode((await httpGet(t.http[0].port, '127.0.0.1', `/scrape?${q.join('&')}`)).body);
        const files = d.get('files') as Map<string, Map<string, number>>;
        return hashes.map((h) => {
          const e = files.get(h.toString('latin1'));
          return e ? `${e.get('complete')}/${e.get('incomplete')}/${e.get('downloaded')}` : '-';
        });
      };
      const expected = ['1/1/1', '1/0/0', '0/0/0'];
      assert.deepEqual(await scrape(a), expected);
      assert.deepEqual(await scrape(b), expected);
      const full = async (t: RunningTracker) => {
        const d = bdecode((await httpGet(t.http[0].port, '127.0.0.1', '/scrape')).body);
        assert.equal(d.get('failure reason'), undefined);
        const files = d.get('files') as Map<string, Map<string, number>>;
        const mine = new Map<string, string>();
        for (const [k, e] of files)
          if (hashes.some((h) => h.toString('latin1') === k))
            mine.set(Buffer.from(k, 'latin1').toString('hex'), `${e.get('complete')}/${e.get('incomplete')}`);
        return mine;
      };
      const fa = await full(a);
      assert.deepEqual(fa, await full(b));
      assert.deepEqual([...fa.values()].sort(), ['1/0', '1/1']);
      for (const t of [a, b]) {
        const h = await httpGet(t.http[0].port, '127.0.0.1', '/health');
        assert.equal(h.status, 200, h.body.toString());
      }
    });
  });
