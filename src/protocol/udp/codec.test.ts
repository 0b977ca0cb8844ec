import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Errors } from '../../core/errors.ts';
import {
  MAX_RESPONSE_SIZE,
  MAX_SCRAPE_HASHES,
  parseRequest,
  parseResponse,
  readRequest,
  UdpPacket,
  writeAnnounceRequest,
  writeAnnounceResponse,
  writeConnectRequest,
  writeConnectResponse,
  writeErrorResponse,
  writeScrapeRequest,
  writeScrapeResponse,
} from './codec.ts';
import { ConnectionIds, sipHash24 } from './connection-id.ts';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

test('connect request and response bytes (BEP 15 offsets)', () => {
  const req = hex('00000417 27101980 00000000 deadbeef');
  assert.deepEqual(parseRequest(req, 16), { action: 0, transactionId: 0xdeadbeef });
  const out = Buffer.alloc(16);
  assert.equal(writeConnectResponse(out, 0xdeadbeef, { hi: 0x01020304, lo: 0x05060708 }), 16);
  assert.deepEqual(out, hex('00000000 deadbeef 01020304 05060708'));
  // Wrong protocol id: dropped without a transaction id (no reply).
  const bad = parseRequest(hex('00000417 27101981 00000000 deadbeef'), 16);
  assert.equal(bad.action, -1);
  if (bad.action === -1) assert.equal(bad.transactionId, null);
});

test('announce request: every field at its offset', () => {
  const b = Buffer.alloc(98);
  b.writeUInt32BE(0x11111111, 0);
  b.writeUInt32BE(0x22222222, 4);
  b.writeUInt32BE(1, 8);
  b.writeUInt32BE(77, 12);
  b.fill(0xaa, 16, 36);
  b.fill(0xbb, 36, 56);
  b.writeBigUInt64BE(5n, 56);
  b.writeBigUInt64BE(6n, 64);
  b.writeBigUInt64BE(7n, 72);
  b.writeUInt32BE(2, 80);
  b.writeUInt32BE(0x0a000001, 84);
  b.writeUInt32BE(99, 88);
  b.writeInt32BE(-1, 92);
  b.writeUInt16BE(6881, 96);
  const r = parseRequest(b, 98);
  assert.equal(r.action, 1);
  if (r.action !== 1) return;
  assert.deepEqual(r.connectionId, { hi: 0x11111111, lo: 0x22222222 });
  assert.equal(r.transactionId, 77);
  assert.ok(Buffer.from(r.infoHash).equals(Buffer.alloc(20, 0xaa)));
  assert.ok(Buffer.from(r.peerId).equals(Buffer.alloc(20, 0xbb)));
  assert.deepEqual(
    [r.downloaded, r.left, r.uploaded, r.event, r.ip, r.key, r.numWant, r.port],
    [5, 6, 7, 2, 0x0a000001, 99, -1, 6881],
  );
  assert.equal(r.urlData, null);
  // 64-bit counters beyond 2^53 clamp instead of losing precision silently.
  b.writeBigUInt64BE(2n ** 60n, 72);
  const big = parseRequest(b, 98);
  assert.equal(big.action === 1 && big.uploaded, Number.MAX_SAFE_INTEGER);
  // Event out of range, short announce: errors that carry the transaction id.
  b.writeUInt32BE(4, 80);
  const ev = parseRequest(b, 98);
  assert.ok(ev.action === -1 && ev.error === Errors.invalidEvent && ev.transactionId === 77);
  const short = parseRequest(b, 60);
  assert.ok(short.action === -1 && short.transactionId === 77);
  assert.ok(
    parseRequest(b, 10).action === -1 &&
      (parseRequest(b, 10) as { transactionId: null }).transactionId === null,
  );
});

test('BEP 41 options: URL data concatenates, NOP and EndOfOptions; malformed options are ignored', () => {
  const base = Buffer.alloc(98);
  base.writeUInt32BE(1, 8);
  const withOpts = (opts: number[]) => Buffer.concat([base, Buffer.from(opts)]);
  const s = (t: string) => [...Buffer.from(t)];
  const two = parseRequest(
    withOpts([2, 9, ...s('/announce'), 1, 2, 4, ...s('?a=b'), 0, 2, 3, ...s('xyz')]),
    98 + 2 + 9 + 1 + 2 + 4 + 1 + 5,
  );
  assert.equal(two.action === 1 && two.urlData, '/announce?a=b');
  // Cut short or too long: the announce stands, without URL data (never a partial one).
  const trunc = parseRequest(withOpts([2, 30, ...s('short')]), 98 + 7);
  assert.ok(trunc.action === 1 && trunc.urlData === null);
  const noLength = parseRequest(withOpts([2, 9, ...s('/announce'), 2]), 98 + 12);
  assert.ok(noLength.action === 1 && noLength.urlData === null);
  const long = Array.from({ length: 5 }, () => [2, 255, ...Array(255).fill(0x61)]).flat();
  assert.ok(parseRequest(withOpts(long), 98 + long.length).action === 1);
  assert.equal((parseRequest(withOpts(long), 98 + long.length) as { urlData: null }).urlData, null);
  const unknown = parseRequest(withOpts([7, 1, 2, 3]), 102);
  assert.equal(unknown.action === 1 && unknown.urlData, null);
});

test('scrape: 1..74 hashes; 75 is refused; ragged lengths are errors', () => {
  const out = Buffer.alloc(2048);
  const hashes = Array.from({ length: MAX_SCRAPE_HASHES }, (_, i) => Buffer.alloc(20, i));
  const n = writeScrapeRequest(out, { hi: 1, lo: 2 }, 9, hashes);
  const r = parseRequest(out, n);
  assert.ok(r.action === 2 && r.infoHashes.length === 74);
  const n75 = writeScrapeRequest(out, { hi: 1, lo: 2 }, 9, [...hashes, Buffer.alloc(20)]);
  const r75 = parseRequest(out, n75);
  assert.ok(r75.action === -1 && r75.error === Errors.tooManyInfoHashes);
  assert.equal(parseRequest(out, 16 + 19).action, -1);
  assert.equal(parseRequest(out, 16).action, -1);
  // The biggest scrape reply and the biggest announce reply fit the reply buffer.
  const big = Buffer.alloc(MAX_RESPONSE_SIZE);
  assert.equal(
    writeScrapeResponse(
      big,
      1,
      hashes.map(() => ({ complete: 1, incomplete: 2, downloaded: 3 })),
    ),
    8 + 74 * 12,
  );
  assert.equal(
    writeAnnounceResponse(big, 1, 1800, 1, 2, Buffer.alloc(200 * 18), 200 * 18),
    MAX_RESPONSE_SIZE,
  );
});

test('unknown action with a connection id: an error carrying both ids', () => {
  const b = hex('00000001 00000002 00000009 0000000a');
  const r = parseRequest(b, 16);
  assert.ok(r.action === -1 && r.error === Errors.invalidAction && r.transactionId === 10);
  if (r.action === -1) assert.deepEqual(r.connectionId, { hi: 1, lo: 2 });
  const out = Buffer.alloc(64);
  const n = writeErrorResponse(out, 10, 'nope');
  assert.deepEqual(parseResponse(out, n), { action: 3, transactionId: 10, message: 'nope' });
});

test('every catalogue message fits a BEP 15 error packet whole (writeErrorResponse keeps 200)', () => {
  const out = Buffer.alloc(512);
  for (const e of Object.values(Errors)) {
    const n = writeErrorResponse(out, 1, e.message);
    const r = parseResponse(out, n);
    assert.ok(r.action === 3 && r.message === e.message, e.code);
  }
});

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const bytes20 = fc.uint8Array({ minLength: 20, maxLength: 20 });

test('property: request writers and parseRequest round-trip', () => {
  const out = Buffer.alloc(2048);
  fc.assert(
    fc.property(
      fc.record({
        connectionId: fc.record({ hi: u32, lo: u32 }),
        transactionId: u32,
        infoHash: bytes20,
        peerId: bytes20,
        downloaded: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
        left: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
        uploaded: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
        event: fc.constantFrom(0 as const, 1 as const, 2 as const, 3 as const),
        ip: u32,
        key: u32,
        numWant: fc.integer({ min: -2147483648, max: 2147483647 }),
        port: fc.integer({ min: 0, max: 65535 }),
        urlData: fc.option(
          fc.string({ minLength: 1, maxLength: 600 }).map((s) => Buffer.from(s, 'latin1').toString('latin1')),
        ),
      }),
      (f) => {
        const n = writeAnnounceRequest(out, f);
        const r = parseRequest(out, n);
        assert.equal(r.action, 1);
        if (r.action !== 1) return;
        const { action: _a, infoHash, peerId, ...rest } = r;
        assert.deepEqual(Buffer.from(infoHash), Buffer.from(f.infoHash));
        assert.deepEqual(Buffer.from(peerId), Buffer.from(f.peerId));
        const { infoHash: _i, peerId: _p, ...want } = f;
        assert.deepEqual(rest, { ...want, connectionId: { ...f.connectionId }, urlData: f.urlData ?? null });
      },
    ),
    { numRuns: 1000 },
  );
  fc.assert(
    fc.property(u32, (t) => {
      const n = writeConnectRequest(out, t);
      assert.deepEqual(parseRequest(out, n), { action: 0, transactionId: t });
    }),
  );
});

test('property: response writers and parseResponse round-trip', () => {
  const out = Buffer.alloc(MAX_RESPONSE_SIZE);
  fc.assert(
    fc.property(
      u32,
      u32,
      u32,
      u32,
      fc.constantFrom(4 as const, 6 as const),
      fc.integer({ min: 0, max: 200 }),
      (t, iv, le, se, fam, n) => {
        const stride = fam === 4 ? 6 : 18;
        const peers = Buffer.alloc(n * stride, 7);
        const len = writeAnnounceResponse(out, t, iv, le, se, peers, peers.length);
        const r = parseResponse(out, len, fam);
        assert.ok(r.action === 1);
        assert.deepEqual(
          { ...r, peers: Buffer.from(r.peers) },
          { action: 1, transactionId: t, interval: iv, leechers: le, seeders: se, peers },
        );
      },
    ),
    { numRuns: 300 },
  );
  fc.assert(
    fc.property(
      u32,
      fc.array(fc.record({ complete: u32, incomplete: u32, downloaded: u32 }), { maxLength: 74 }),
      (t, entries) => {
        const len = writeScrapeResponse(out, t, entries);
        assert.deepEqual(parseResponse(out, len), {
          action: 2,
          transactionId: t,
          entries: entries.map((e) => ({ ...e })),
        });
      },
    ),
    { numRuns: 300 },
  );
});

test('fuzz: random datagrams and mutated valid packets never throw', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 400 }), (b) => {
      const r = parseRequest(b, b.length);
      assert.equal(typeof r.action, 'number');
      const p = parseResponse(b, b.length);
      assert.equal(typeof p.action, 'number');
    }),
    { numRuns: 5000 },
  );
  const valid = Buffer.alloc(160);
  const n = writeAnnounceRequest(valid, {
    connectionId: { hi: 1, lo: 2 },
    transactionId: 3,
    infoHash: Buffer.alloc(20, 1),
    peerId: Buffer.alloc(20, 2),
    downloaded: 1,
    left: 2,
    uploaded: 3,
    event: 2,
    numWant: 50,
    port: 6881,
    urlData: '/announce/0123456789abcdef',
  });
  fc.assert(
    fc.property(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.nat(), (at, byte, cut) => {
      const b = Buffer.from(valid.subarray(0, n));
      b[at % n] = byte;
      const r = parseRequest(b, n - (cut % 40));
      assert.equal(typeof r.action, 'number');
    }),
    { numRuns: 5000 },
  );
});

test('property: one reused UdpPacket reads every datagram of a sequence as a fresh one does', () => {
  // The server reads every datagram into one UdpPacket: nothing of an earlier packet may show
  // through in a later one, whatever the mix of actions, refusals and lengths.
  const fields = (p: UdpPacket) => {
    const base = {
      action: p.action,
      transactionId: p.transactionId,
      conn: p.hasConnectionId ? [p.hi, p.lo] : null,
    };
    if (p.action === -1) return { ...base, error: p.error.message };
    if (p.action === 1)
      return {
        ...base,
        infoHash: Buffer.from(p.infoHash).toString('hex'),
        peerId: Buffer.from(p.peerId).toString('hex'),
        figures: [p.downloaded, p.left, p.uploaded, p.event, p.ip, p.key, p.numWant, p.port],
        urlData: p.urlData,
      };
    if (p.action === 2) return { ...base, hashes: p.infoHashes.map((h) => Buffer.from(h).toString('hex')) };
    return base;
  };
  const datagram = fc.oneof(
    fc
      .record({
        t: u32,
        h: bytes20,
        id: bytes20,
        left: fc.nat(),
        url: fc.option(fc.constant('/announce/abc')),
      })
      .map((f) => {
        const b = Buffer.alloc(160);
        const n = writeAnnounceRequest(b, {
          connectionId: { hi: 5, lo: 6 },
          transactionId: f.t,
          infoHash: f.h,
          peerId: f.id,
          downloaded: 1,
          left: f.left,
          uploaded: 2,
          event: 1,
          numWant: 30,
          port: 6881,
          urlData: f.url,
        });
        return b.subarray(0, n);
      }),
    u32.map((t) => {
      const b = Buffer.alloc(16);
      return b.subarray(0, writeConnectRequest(b, t));
    }),
    fc.array(bytes20, { minLength: 1, maxLength: 80 }).map((hs) => {
      const b = Buffer.alloc(16 + 20 * hs.length);
      return b.subarray(0, writeScrapeRequest(b, { hi: 7, lo: 8 }, 9, hs));
    }),
    fc.uint8Array({ maxLength: 200 }),
  );
  const shared = new UdpPacket();
  fc.assert(
    fc.property(fc.array(fc.tuple(datagram, fc.nat({ max: 30 })), { minLength: 1, maxLength: 40 }), (seq) => {
      for (const [b, cut] of seq) {
        const len = Math.max(0, b.length - (cut % 3 === 0 ? cut : 0));
        const fresh = new UdpPacket();
        assert.equal(readRequest(b, len, shared), readRequest(b, len, fresh));
        assert.deepEqual(fields(shared), fields(fresh));
        // Announce hashes are copies: the datagram buffer may be reused at once.
        if (shared.action === 1) {
          const before = Buffer.from(shared.infoHash);
          b.fill(0xee);
          assert.deepEqual(Buffer.from(shared.infoHash), before);
        }
      }
    }),
    { numRuns: 300 },
  );
});

test('SipHash-2-4 reference vectors (key 00..0f, message 00..len-1)', () => {
  const key = new Uint8Array(16).map((_, i) => i);
  const dv = new DataView(key.buffer);
  const k = Uint32Array.of(
    dv.getUint32(0, true),
    dv.getUint32(4, true),
    dv.getUint32(8, true),
    dv.getUint32(12, true),
  );
  const m = new Uint8Array(64).map((_, i) => i);
  const out = new Uint32Array(2);
  const vectors: [number, string][] = [
    [0, '726fdb47dd0e0e31'],
    [1, '74f839c593dc67fd'],
    [7, 'ab0200f58b01d137'],
    [8, '93f5f5799a932462'],
    [15, 'a129ca6149be45e5'],
  ];
  for (const [len, want] of vectors) {
    sipHash24(k, m, len, out);
    assert.equal(
      out[1].toString(16).padStart(8, '0') + out[0].toString(16).padStart(8, '0'),
      want,
      `len ${len}`,
    );
  }
});

test('property: connection ids are bound to address, port and a two-minute window', () => {
  const ids = new ConnectionIds(Buffer.alloc(32, 9));
  const other = new ConnectionIds(Buffer.alloc(32, 8));
  const twin = new ConnectionIds(Buffer.alloc(32, 9));
  const addr = fc.oneof(
    fc.uint8Array({ minLength: 4, maxLength: 4 }),
    fc.uint8Array({ minLength: 16, maxLength: 16 }),
  );
  fc.assert(
    fc.property(
      addr,
      fc.integer({ min: 1, max: 65535 }),
      fc.integer({ min: 1e9, max: 2e9 }),
      fc.integer({ min: 0, max: 120 }),
      (ip, port, t, age) => {
        const id = ids.make(ip, port, t);
        assert.ok(ids.check(id, ip, port, t + age), 'valid within its lifetime');
        assert.ok(twin.check(id, ip, port, t + age), 'an instance with the same secret accepts it');
        assert.ok(!ids.check(id, ip, port, t + 121), 'expired');
        assert.ok(!ids.check(id, ip, port, t - 6), 'dated in the future');
        assert.ok(!ids.check(id, ip, port === 1 ? 2 : port - 1, t), 'another port');
        const ip2 = Uint8Array.from(ip);
        ip2[0] ^= 1;
        assert.ok(!ids.check(id, ip2, port, t), 'another address');
        assert.ok(!other.check(id, ip, port, t), 'another secret');
      },
    ),
    { numRuns: 1000 },
  );
  let accepted = 0;
  const ip = Uint8Array.of(203, 0, 113, 7);
  for (let i = 0; i < 20_000; i++)
    if (ids.check({ hi: 1_800_000_000, lo: (Math.random() * 2 ** 32) >>> 0 }, ip, 4242, 1_800_000_000))
      accepted++;
  assert.ok(accepted <= 1, `forged ids accepted: ${accepted}`);
});
