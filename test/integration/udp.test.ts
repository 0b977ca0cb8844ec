/**
 * DESIGN.md protocol checklist, UDP side (BEP 15), over real loopback sockets.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ManualClock } from '../../src/core/clock.ts';
import type { Tracker } from '../../src/index.ts';
import {
  type ConnectionId,
  parseResponse,
  writeAnnounceRequest,
  writeConnectRequest,
  writeScrapeRequest,
} from '../../src/protocol/udp/codec.ts';
import { hashOf, udpClient } from '../helpers/clients.ts';
import { udpTracker } from '../helpers/udp-tracker.ts';

// Every case runs on both transports: the batched addon (required: CI builds it) and dgram.
for (const io of ['batched', 'dgram'] as const) describe(`UDP over ${io}`, () => suite(io));

function suite(io: 'batched' | 'dgram') {
  let tracker: Tracker;
  let port4: number;
  let port6: number;
  const clock = new ManualClock(1_800_000_000);

  before(async () => {
    ({ tracker, port4, port6 } = await udpTracker(io, clock, { policyRefresh: 2 }));
  });
  after(() => tracker.stop());

  const buf = Buffer.alloc(2048);
  let tid = 1;

  async function connect(c: Awaited<ReturnType<typeof udpClient>>, port: number): Promise<ConnectionId> {
    const t = tid++;
    const reply = await c.request(buf.subarray(0, writeConnectRequest(buf, t)), port);
    assert.ok(reply, 'connect answered');
    assert.equal(reply.length, 16, 'the connect reply is no larger than the request');
    const r = parseResponse(reply, reply.length);
    assert.equal(r.action, 0);
    assert.equal(r.transactionId, t);
    return (r as { connectionId: ConnectionId }).connectionId;
  }

  function announce(
    id: ConnectionId,
    infoHash: Uint8Array,
    port: number,
    left: number,
    event: 0 | 1 | 2 | 3 = 0,
    numWant = -1,
    urlData: string | null = null,
  ) {
    const peerId = Buffer.alloc(20, port & 0xff);
    const n = writeAnnounceRequest(buf, {
      connectionId: id,
      transactionId: tid++,
      infoHash,
      peerId,
      downloaded: 0,
      left,
      uploaded: 0,
      event,
      numWant,
      port,
      urlData,
    });
    return buf.subarray(0, n);
  }

  describe('BEP 15 over IPv4 and IPv6', () => {
    test('connect, announce (6-byte peers on IPv4, 18-byte on IPv6), scrape; one swarm for both', async () => {
      const c4 = await udpClient(4);
      const c6 = await udpClient(6);
      try {
        const h = hashOf(100);
        const id4 = await connect(c4, port4);
        const id6 = await connect(c6, port6);
        const a1 = parseResponse((await c4.request(announce(id4, h, 6001, 0, 2), port4))!, 20, 4);
        assert.equal(a1.action, 1);
        assert.equal((a1 as { interval: number }).interval, 1200);
        await c6.request(announce(id6, h, 6002, 0, 2), port6);
        const r4 = await c4.request(announce(id4, h, 6003, 100, 2), port4);
        const p4 = parseResponse(r4!, r4!.length, 4) as {
          action: 1;
          seeders: number;
          leechers: number;
          peers: Uint8Array;
        };
        assert.equal(p4.action, 1);
        assert.equal(p4.seeders, 2, 'both families counted');
        assert.equal(p4.peers.length, 6, 'IPv4 requester gets the IPv4 seeder only');
        assert.equal(Buffer.from(p4.peers).readUInt16BE(4), 6001);
        const r6 = await c6.request(announce(id6, h, 6004, 100, 2), port6);
        const p6 = parseResponse(r6!, r6!.length, 6) as { action: 1; peers: Uint8Array };
        assert.equal(p6.peers.length, 18);
        assert.equal(p6.peers[15], 1, '::1');
        assert.equal(Buffer.from(p6.peers).readUInt16BE(16), 6002);
        const n = writeScrapeRequest(buf, id4, tid++, [h, hashOf(101)]);
        const s = parseResponse((await c4.request(buf.subarray(0, n), port4))!, 32) as {
          action: 2;
          entries: { complete: number; incomplete: number }[];
        };
        assert.equal(s.action, 2);
        assert.deepEqual(
          s.entries.map((e) => [e.complete, e.incomplete]),
          [
            [2, 2],
            [0, 0],
          ],
        );
      } finally {
        c4.close();
        c6.close();
      }
    });

    test('stopped removes the peer; BEP 41 URL data is accepted', async () => {
      const c = await udpClient(4);
      try {
        const h = hashOf(102);
        const id = await connect(c, port4);
        await c.request(announce(id, h, 6101, 0, 2, -1, '/announce?passkey=abc'), port4);
        let s = tracker.service.store.scrape([h], clock.now()) as { complete: number }[];
        assert.equal(s[0].complete, 1);
        await c.request(announce(id, h, 6101, 0, 3), port4);
        s = tracker.service.store.scrape([h], clock.now()) as { complete: number }[];
        assert.equal(s[0].complete, 0);
      } finally {
        c.close();
      }
    });
  });

  describe('connection ids', () => {
    test('a forged connection id gets no reply (no amplification), and is counted as dropped', async () => {
      const c = await udpClient(4);
      try {
        const before = tracker.service.counters.udpDropped;
        const r = await c.request(announce({ hi: clock.now(), lo: 12345 }, hashOf(103), 6201, 0), port4, 300);
        assert.equal(r, null);
        const n = writeScrapeRequest(buf, { hi: 0, lo: 0 }, tid++, [hashOf(103)]);
        assert.equal(await c.request(buf.subarray(0, n), port4, 300), null);
        assert.equal(tracker.service.counters.udpDropped, before + 2);
      } finally {
        c.close();
      }
    });

    test('an id from another address or port is refused; ids expire after about two minutes', async () => {
      const a = await udpClient(4);
      const b = await udpClient(4);
      try {
        const id = await connect(a, port4);
        assert.equal(await b.request(announce(id, hashOf(104), 6301, 0), port4, 300), null, 'other port');
        assert.ok(await a.request(announce(id, hashOf(104), 6301, 0), port4), 'own id works');
        clock.advance(121);
        assert.equal(await a.request(announce(id, hashOf(104), 6301, 0), port4, 300), null, 'expired');
        clock.advance(-121);
      } finally {
        a.close();
        b.close();
      }
    });
  });

  describe('malformed packets', () => {
    test('garbage is dropped; an error packet answers only a sender with a valid connection id', async () => {
      const c = await udpClient(4);
      try {
        for (const junk of [Buffer.alloc(3), Buffer.alloc(16, 0xff), Buffer.from('GET / HTTP/1.1\r\n\r\n')]) {
          assert.equal(await c.request(junk, port4, 200), null);
        }
        const id = await connect(c, port4);
        // A valid id with an unknown action: answered with a BEP 15 error.
        const bad = Buffer.alloc(16);
        bad.writeUInt32BE(id.hi, 0);
        bad.writeUInt32BE(id.lo, 4);
        bad.writeUInt32BE(9, 8);
        bad.writeUInt32BE(777, 12);
        const r = await c.request(bad, port4);
        assert.ok(r);
        const e = parseResponse(r, r.length);
        assert.equal(e.action, 3);
        assert.equal(e.transactionId, 777);
        // A truncated announce with a valid id: also an error, not silence and not a crash.
        const t = announce(id, hashOf(105), 6401, 0).subarray(0, 60);
        const r2 = await c.request(t, port4);
        assert.equal(parseResponse(r2!, r2!.length).action, 3);
        // Scrape of 75 hashes: refused with an error (74 is the most that fits).
        const hashes = Array.from({ length: 75 }, (_, i) => hashOf(200 + i));
        const n = writeScrapeRequest(buf, id, tid++, hashes);
        const r3 = await c.request(buf.subarray(0, n), port4);
        assert.equal(parseResponse(r3!, r3!.length).action, 3);
        // And the tracker still answers.
        assert.ok(await connect(c, port4));
      } finally {
        c.close();
      }
    });
  });
}
