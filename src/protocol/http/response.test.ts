import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { formatIp } from '../../core/address.ts';
import type { AnnounceResult } from '../../core/types.ts';
import { type BValue, decode, encode } from '../bencode/index.ts';
import { encodeAnnounce, encodeFailure, encodeScrape, httpResponse } from './response.ts';

const dec = (b: Buffer) => {
  const r = decode(b);
  if (!r.ok) assert.fail(`not valid bencode: ${r.error}`);
  return r.value as Map<string, BValue>;
};

const result = fc
  .record({
    family: fc.constantFrom(4 as const, 6 as const),
    n: fc.integer({ min: 0, max: 30 }),
    complete: fc.nat(),
    incomplete: fc.nat(),
    downloaded: fc.maxSafeNat(),
    seed: fc.uint8Array({ minLength: 30 * 38, maxLength: 30 * 38 }),
    known: fc.uint8Array({ minLength: 30, maxLength: 30 }),
  })
  .map((r) => {
    const stride = r.family === 4 ? 6 : 18;
    const res: AnnounceResult = {
      complete: r.complete,
      incomplete: r.incomplete,
      downloaded: r.downloaded,
      peers: r.seed.slice(0, r.n * stride),
      peerCount: r.n,
      peerIds: r.seed.slice(540, 540 + r.n * 20),
      peerIdKnown: r.known.slice(0, r.n).map((b) => b & 1),
    };
    return { family: r.family, res };
  });

test('property: compact announce equals the general encoder, byte for byte', () => {
  fc.assert(
    fc.property(
      result,
      fc.boolean(),
      fc.option(fc.string({ maxLength: 20 })),
      ({ family, res }, withIp, warning) => {
        const externalIp = withIp ? new Uint8Array(family === 4 ? 4 : 16).fill(7) : null;
        const body = encodeAnnounce(res, {
          family,
          compact: true,
          noPeerId: false,
          interval: 1800,
          minInterval: 900,
          externalIp,
          warning,
        });
        const expected: Record<string, Uint8Array | number | string> = {
          complete: res.complete,
          downloaded: res.downloaded,
          incomplete: res.incomplete,
          interval: 1800,
          'min interval': 900,
        };
        if (externalIp) expected['external ip'] = externalIp;
        if (family === 4) expected.peers = res.peers;
        else {
          expected.peers = new Uint8Array(0);
          expected.peers6 = res.peers;
        }
        if (warning) expected['warning message'] = warning;
        assert.deepEqual(body, encode(expected));
      },
    ),
    { numRuns: 500 },
  );
});

test('property: compact=0 lists dictionaries with ip text, port and known peer ids', () => {
  fc.assert(
    fc.property(result, fc.boolean(), ({ family, res }, noPeerId) => {
      const body = encodeAnnounce(res, {
        family,
        compact: false,
        noPeerId,
        interval: 60,
        minInterval: 30,
        externalIp: null,
      });
      const d = dec(body);
      const list = d.get('peers') as Map<string, BValue>[];
      assert.equal(list.length, res.peerCount);
      const stride = family === 4 ? 6 : 18;
      list.forEach((p, i) => {
        const rec = res.peers.subarray(i * stride, (i + 1) * stride);
        assert.equal((p.get('ip') as Buffer).toString('latin1'), formatIp(rec.subarray(0, stride - 2)));
        assert.equal(p.get('port'), (rec[stride - 2] << 8) | rec[stride - 1]);
        const wantId = !noPeerId && res.peerIdKnown![i] === 1;
        assert.equal(p.has('peer id'), wantId);
        if (wantId)
          assert.deepEqual(p.get('peer id'), Buffer.from(res.peerIds!.subarray(i * 20, i * 20 + 20)));
      });
    }),
    { numRuns: 300 },
  );
});

test('property: scrape equals the general encoder (sorted, deduplicated keys)', () => {
  const entry = fc.record({ complete: fc.nat(), incomplete: fc.nat(), downloaded: fc.nat() });
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.uint8Array({ minLength: 20, maxLength: 20 }), entry), { maxLength: 20 }),
      (entries) => {
        const withDup = entries.length ? [...entries, entries[0]] : entries;
        const files = new Map<string, Record<string, number>>();
        for (const [h, e] of withDup)
          if (!files.has(Buffer.from(h).toString('latin1'))) files.set(Buffer.from(h).toString('latin1'), e);
        assert.deepEqual(
          encodeScrape(withDup),
          encode({ files: new Map([...files].map(([k, v]) => [k, v])) }),
        );
      },
    ),
    { numRuns: 300 },
  );
});

test('failure reason, BEP 31 retry in (minutes), HTTP framing', () => {
  assert.equal(encodeFailure('nope').toString(), 'd14:failure reason4:nopee');
  const d = dec(encodeFailure('slow down', 61));
  assert.equal(d.get('retry in'), 2);
  const r = httpResponse(200, Buffer.from('abc'), { keepAlive: false }).toString('latin1');
  assert.equal(
    r,
    'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc',
  );
  assert.match(
    httpResponse(200, Buffer.alloc(0), { keepAlive: true }).toString('latin1'),
    /^HTTP\/1\.1 200 OK\r\n(?!.*Connection)/s,
  );
});
