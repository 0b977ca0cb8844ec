import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Errors, TrackerError } from '../../core/errors.ts';
import { AnnounceEvent } from '../../core/types.ts';
import { type AnnounceQuery, parseAnnounce, parseScrape } from './query.ts';

const q = (s: string) => {
  const b = Buffer.from(s, 'latin1');
  return parseAnnounce(b, 0, b.length);
};
const ok = (s: string): AnnounceQuery => {
  const r = q(s);
  if (r instanceof TrackerError) assert.fail(`${s}: ${r.message}`);
  return r;
};

const IH = '%12%34%56%78%9a%bc%de%f1%23%45%67%89%ab%cd%ef%12%34%56%78%9a';
const IH_BYTES = Buffer.from('123456789abcdef123456789abcdef123456789a', 'hex');

test('a qBittorrent-style announce', () => {
  const r = ok(
    `info_hash=${IH}&peer_id=-qB4650-abc%28%29%2A%2B_~.xy&port=51413&uploaded=0&downloaded=0&left=1048576&corrupt=0&key=1A2B3C4D&event=started&numwant=200&compact=1&no_peer_id=1&supportcrypto=1&redundant=0`,
  );
  assert.deepEqual(Buffer.from(r.infoHash), IH_BYTES);
  assert.equal(Buffer.from(r.peerId).toString('latin1'), '-qB4650-abc()*+_~.xy');
  assert.equal(r.port, 51413);
  assert.equal(r.left, 1048576);
  assert.equal(r.event, AnnounceEvent.started);
  assert.equal(r.numWant, 200);
  assert.equal(r.compact, true);
  assert.equal(r.noPeerId, true);
  assert.equal(r.key, '1A2B3C4D');
});

test('binary bytes decode byte for byte; literal bytes and + are kept as bytes', () => {
  const r = ok(`info_hash=%ff%FE%00%80${'a'.repeat(15)}+&peer_id=${'%00'.repeat(20)}&port=1`);
  assert.deepEqual([...r.infoHash.subarray(0, 4)], [0xff, 0xfe, 0, 0x80]);
  assert.equal(r.infoHash[19], 0x2b);
  assert.ok(r.peerId.every((b) => b === 0));
});

test('defaults: compact, no event, numwant absent, left absent is a leecher', () => {
  const r = ok(`info_hash=${IH}&peer_id=${IH}&port=6881`);
  assert.equal(r.compact, true);
  assert.equal(r.event, AnnounceEvent.none);
  assert.equal(r.numWant, -1);
  assert.equal(r.left, 1);
  assert.equal(ok(`info_hash=${IH}&peer_id=${IH}&port=6881&compact=0&numwant=-1&event=`).compact, false);
  assert.equal(
    ok(`info_hash=${IH}&peer_id=${IH}&port=6881&left=0&event=completed`).event,
    AnnounceEvent.completed,
  );
  assert.equal(ok(`info_hash=${IH}&peer_id=${IH}&port=6881&uploaded=9007199254740991`).uploaded, 2 ** 53 - 1);
});

test('every malformed field gets its own failure', () => {
  const base = `info_hash=${IH}&peer_id=${IH}`;
  const cases: [string, TrackerError][] = [
    [`peer_id=${IH}&port=1`, Errors.missingInfoHash],
    [`info_hash=${IH}&port=1`, Errors.missingPeerId],
    [base, Errors.missingPort],
    [`info_hash=%12%34&peer_id=${IH}&port=1`, Errors.invalidInfoHash],
    [`info_hash=${IH}%00&peer_id=${IH}&port=1`, Errors.invalidInfoHash],
    [`info_hash=${IH}&peer_id=abc&port=1`, Errors.invalidPeerId],
    [`info_hash=%zz&peer_id=${IH}&port=1`, Errors.invalidQuery],
    [`info_hash=${IH.slice(0, -1)}&peer_id=${IH}&port=1`, Errors.invalidQuery],
    [`${base}&port=65536`, Errors.invalidPort],
    [`${base}&port=-1`, Errors.invalidPort],
    [`${base}&port=`, Errors.invalidPort],
    [`${base}&port=1&left=-1`, Errors.invalidNumber],
    [`${base}&port=1&uploaded=1e5`, Errors.invalidNumber],
    [`${base}&port=1&downloaded=99999999999999999`, Errors.invalidNumber],
    [`${base}&port=1&event=paused2`, Errors.invalidEvent],
    [`${base}&port=1&numwant=lots`, Errors.invalidNumWant],
    [`${base}&port=1${'&x=1'.repeat(70)}`, Errors.invalidQuery],
  ];
  for (const [s, e] of cases) assert.equal(q(s), e, s);
});

test('text parameters: escapes and + decode, each parse starts clean, over-long ones are refused', () => {
  const base = `info_hash=${IH}&peer_id=${IH}&port=1`;
  const r = ok(`${base}&key=a+b%2Bc&trackerid=%41%42&ip=10.0.0.1`);
  assert.equal(r.key, 'a b+c');
  assert.equal(r.trackerId, 'AB');
  assert.equal(r.ip, '10.0.0.1');
  // The decoder's scratch is shared: a shorter value after a longer one carries nothing over.
  assert.equal(ok(`${base}&key=${'z'.repeat(300)}`).key, 'z'.repeat(300));
  assert.equal(ok(`${base}&key=q`).key, 'q');
  assert.equal(ok(base).key, null);
  assert.equal(ok(`${base}&key=${'k'.repeat(513)}`).key, null);
  // A malformed ip is no address (''): the frontend refuses it only where it trusts `ip` (it
  // ignores `ip` otherwise, as opentracker without WANT_IP_FROM_QUERY_STRING and bittorrent-tracker do).
  assert.equal(ok(`${base}&ip=${'1'.repeat(513)}`).ip, '');
  assert.equal(ok(`${base}&ip=%zz`).ip, '');
});

test("into: the hashes are decoded into the caller's arrays, the last repeated key winning", () => {
  const into = { infoHash: new Uint8Array(20), peerId: new Uint8Array(20) };
  const s = Buffer.from(`info_hash=${'%00'.repeat(20)}&peer_id=${IH}&port=1&info_hash=${IH}`, 'latin1');
  const r = parseAnnounce(s, 0, s.length, into);
  assert.ok(!(r instanceof TrackerError));
  assert.equal(r.infoHash, into.infoHash);
  assert.equal(r.peerId, into.peerId);
  assert.deepEqual(Buffer.from(r.infoHash), IH_BYTES);
  const bad = Buffer.from(`info_hash=${IH}&peer_id=${IH}&port=1&info_hash=%41`, 'latin1');
  assert.equal(parseAnnounce(bad, 0, bad.length, into), Errors.invalidInfoHash);
});

test('scrape: parameters other than info_hash count towards the parameter cap', () => {
  const hashes = Array.from({ length: 3 }, () => `info_hash=${IH}`).join('&');
  const within = Buffer.from(`${hashes}${'&x=1'.repeat(60)}`, 'latin1');
  const r = parseScrape(within, 0, within.length, 10);
  assert.ok(Array.isArray(r) && r.length === 3);
  const over = Buffer.from(`${hashes}${'&x=1'.repeat(80)}`, 'latin1');
  assert.equal(parseScrape(over, 0, over.length, 10), Errors.invalidQuery);
});

test('scrape: many info_hash values, a cap, and none at all', () => {
  const b = Buffer.from(`info_hash=${IH}&info_hash=${'%00'.repeat(20)}&foo=bar`, 'latin1');
  const r = parseScrape(b, 0, b.length, 10);
  assert.ok(Array.isArray(r));
  assert.equal(r.length, 2);
  assert.deepEqual(Buffer.from(r[0]), IH_BYTES);
  const none = parseScrape(Buffer.alloc(0), 0, 0, 10);
  assert.deepEqual(none, []);
  const many = Buffer.from(Array.from({ length: 11 }, () => `info_hash=${IH}`).join('&'), 'latin1');
  assert.equal(parseScrape(many, 0, many.length, 10), Errors.tooManyInfoHashes);
  const badOne = Buffer.from('info_hash=%41', 'latin1');
  assert.equal(parseScrape(badOne, 0, badOne.length, 10), Errors.invalidInfoHash);
});

/** Test-only writer: what a client would send, every binary byte percent-encoded. */
function writeQuery(x: AnnounceQuery, eventName: string): string {
  const pct = (u: Uint8Array) => [...u].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');
  let s = `info_hash=${pct(x.infoHash)}&peer_id=${pct(x.peerId)}&port=${x.port}&uploaded=${x.uploaded}`;
  s += `&downloaded=${x.downloaded}&left=${x.left}&compact=${x.compact ? 1 : 0}`;
  if (eventName) s += `&event=${eventName}`;
  if (x.numWant >= 0) s += `&numwant=${x.numWant}`;
  if (x.noPeerId) s += '&no_peer_id=1';
  return s;
}

const EVENTS: [AnnounceEvent, string][] = [
  [AnnounceEvent.none, ''],
  [AnnounceEvent.started, 'started'],
  [AnnounceEvent.stopped, 'stopped'],
  [AnnounceEvent.completed, 'completed'],
];

test('property: parse(write(x)) equals x', () => {
  const big = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
  fc.assert(
    fc.property(
      fc.record({
        infoHash: fc.uint8Array({ minLength: 20, maxLength: 20 }),
        peerId: fc.uint8Array({ minLength: 20, maxLength: 20 }),
        port: fc.integer({ min: 0, max: 65535 }),
        uploaded: big,
        downloaded: big,
        left: big,
        ev: fc.constantFrom(...EVENTS),
        numWant: fc.integer({ min: -1, max: 1000 }),
        compact: fc.boolean(),
        noPeerId: fc.boolean(),
      }),
      (r) => {
        const x: AnnounceQuery = {
          infoHash: r.infoHash,
          peerId: r.peerId,
          port: r.port,
          uploaded: r.uploaded,
          downloaded: r.downloaded,
          left: r.left,
          event: r.ev[0],
          numWant: r.numWant,
          compact: r.compact,
          noPeerId: r.noPeerId,
          ip: null,
          key: null,
          trackerId: null,
        };
        assert.deepEqual(ok(writeQuery(x, r.ev[1])), x);
      },
    ),
    { numRuns: 1000 },
  );
});

test('fuzz: random and mutated queries never throw', () => {
  const valid = `info_hash=${IH}&peer_id=${IH}&port=6881&uploaded=1&downloaded=2&left=3&event=started&numwant=5`;
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
      const r = parseAnnounce(bytes, 0, bytes.length);
      assert.ok(r instanceof TrackerError || r.infoHash.length === 20);
      const s = parseScrape(bytes, 0, bytes.length, 5);
      assert.ok(s instanceof TrackerError || Array.isArray(s));
    }),
    { numRuns: 3000 },
  );
  fc.assert(
    fc.property(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.nat(), (at, byte, cut) => {
      const b = Buffer.from(valid, 'latin1');
      b[at % b.length] = byte;
      const end = b.length - (cut % 10);
      const r = parseAnnounce(b, 0, end);
      assert.ok(r instanceof TrackerError || (r.infoHash.length === 20 && r.peerId.length === 20));
    }),
    { numRuns: 3000 },
  );
});
