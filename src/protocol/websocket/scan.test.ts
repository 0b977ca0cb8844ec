/**
 * The byte-level fast path (`scanAnnounce` / `parseClientFrame`) against the reference
 * (`parseClientMessage`: JSON.parse, then the checks; offers relayed as
 * `asciiJson(JSON.stringify(offer))`): for any frame, the same result, field for field and byte
 * for byte; the fast path taken for what browsers send; never a throw, never a hang.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { parseClientMessage, WS_LIMITS, type WsLimits, WsReasons } from './codec.ts';
import { parseClientFrame, scanAnnounce } from './scan.ts';

const bin = (b: Uint8Array) => Buffer.from(b).toString('latin1');
const ascii = (json: string) =>
  json.replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

/** The invariant: the fast path and the reference agree on `bytes` (valid UTF-8). */
function agree(bytes: Buffer, limits?: WsLimits): void {
  const text = bytes.toString('utf8');
  const want = parseClientMessage(text, limits);
  const got = parseClientFrame(bytes, limits);
  assert.deepStrictEqual(got, want, `for ${JSON.stringify(text).slice(0, 400)}`);
  const fast = scanAnnounce(bytes, limits);
  if (fast !== null) {
    assert.ok(want.ok, 'the scanner took a message the reference refuses');
    assert.deepStrictEqual(fast, want.msg);
  }
  if (want.ok && want.msg.action === 'announce' && want.msg.offers !== undefined) {
    // What is relayed: the offer object JSON.parse makes, as JSON.stringify writes it, in ASCII.
    const sent = (JSON.parse(text) as { offers: { offer: unknown }[] }).offers;
    for (let i = 0; i < sent.length; i++)
      assert.equal(bin(want.msg.offers[i].offerJson), ascii(JSON.stringify(sent[i].offer)));
  }
}

// ---- Generators ----

const id = fc.uint8Array({ minLength: 20, maxLength: 20 }).map(bin);
/** ASCII sdp as a browser makes it (CRLF lines), and anything else a string can be. */
const sdp = fc.oneof(
  fc
    .array(fc.string({ unit: fc.constantFrom(...'abcxyz0123456789 =:-./+'), maxLength: 60 }), {
      maxLength: 12,
    })
    .map((lines) => `${lines.join('\r\n')}\r\n`),
  fc.string({ maxLength: 80 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({
    unit: fc.constantFrom(
      '"',
      '\\',
      '/',
      '\b',
      '\f',
      '\n',
      '\r',
      '\t',
      '\x00',
      '\x1f',
      '\x7f',
      'é',
      '😀',
      '\ud800',
      'a',
    ),
    maxLength: 30,
  }),
);
/** Keys, including those V8 orders first (array indices), `__proto__`, duplicates, escapes. */
const key = fc.oneof(
  fc.constantFrom(
    'type',
    'sdp',
    '__proto__',
    '0',
    '1',
    '42',
    '01',
    '-1',
    '',
    'a"b',
    'é',
    'x/y',
    'constructor',
  ),
  fc.string({ maxLength: 6 }),
);
const numbers = fc.oneof(
  fc.integer(),
  fc.constantFrom(0, -0, 1e21, 123456789012345, 1234567890123456, 2 ** 53, 0.5, -1.5e-7, 1e300),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
);
const scalar = fc.oneof(fc.string({ maxLength: 10 }), numbers, fc.boolean(), fc.constant(null));
/** An arbitrary JSON value, as a list of entries for objects so that keys may repeat. */
type Value = string | number | boolean | null | Value[] | { entries: [string, Value][] };
const value: fc.Arbitrary<Value> = fc.letrec<{ v: Value }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    scalar,
    fc.array(tie('v'), { maxLength: 3 }),
    fc.array(fc.tuple(key, tie('v')), { maxLength: 3 }).map((entries) => ({ entries })),
  ),
})).v;
/** An offer: `type`, `sdp` and maybe more entries, in any order (sdp missing or twice, rarely). */
const offerObject = fc
  .tuple(
    fc.oneof({ weight: 8, arbitrary: sdp.map((s): Value => s) }, { weight: 1, arbitrary: value }),
    fc.array(fc.tuple(key, value), { maxLength: 3 }),
    fc.nat(),
    fc.oneof({ weight: 10, arbitrary: fc.constant(1) }, fc.constant(0), fc.constant(2)),
  )
  .map(([s, extra, at, sdps]): Value => {
    const entries: [string, Value][] = [['type', 'offer'], ...extra];
    for (let k = 0; k < sdps; k++) entries.splice((at + k) % (entries.length + 1), 0, ['sdp', s]);
    return { entries };
  });

/** Ways to write the same JSON: as JSON.stringify does, or with spaces, other escapes, forms. */
interface Style {
  space: boolean;
  /** Escape every character as \uXXXX (upper or lower case hex). */
  uEscape: 'none' | 'lower' | 'upper';
  slash: boolean;
  raw: boolean;
}
const style: fc.Arbitrary<Style> = fc.oneof(
  { weight: 6, arbitrary: fc.constant<Style>({ space: false, uEscape: 'none', slash: false, raw: false }) },
  fc.record({
    space: fc.boolean(),
    uEscape: fc.constantFrom('none', 'lower', 'upper'),
    slash: fc.boolean(),
    raw: fc.boolean(),
  }),
);

function str(s: string, st: Style): string {
  if (st.uEscape !== 'none') {
    const hex = (c: number) => c.toString(16).padStart(4, '0');
    return `"${[...s].map((ch) => [...Array(ch.length)].map((_, k) => `\\u${st.uEscape === 'upper' ? hex(ch.charCodeAt(k)).toUpperCase() : hex(ch.charCodeAt(k))}`).join('')).join('')}"`;
  }
  let out = JSON.stringify(s);
  if (st.slash) out = out.replaceAll('/', '\\/');
  return out;
}

function write(v: Value, st: Style): string {
  const sp = st.space ? ' \n' : '';
  if (typeof v === 'string') return str(v, st);
  if (typeof v === 'number')
    return st.raw && Number.isInteger(v) && Math.abs(v) < 1e15 ? `${v}.0e0` : JSON.stringify(v);
  if (v === null || typeof v === 'boolean') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${sp}${v.map((x) => write(x, st)).join(`${sp},${sp}`)}${sp}]`;
  return `{${sp}${v.entries.map(([k, x]) => `${str(k, st)}${sp}:${sp}${write(x, st)}`).join(`${sp},${sp}`)}${sp}}`;
}

/** A message as entries, written in `st` except where `canonicalOffers` keeps offers as browsers write them. */
function message(entries: [string, Value][], st: Style): Buffer {
  return Buffer.from(write({ entries }, st), 'utf8');
}

const announceEntries = fc
  .record(
    {
      action: fc.constant<Value>('announce'),
      info_hash: id,
      peer_id: id,
      event: fc.constantFrom<Value>('started', 'completed', 'stopped', 'update', 'empty', 'paused', null),
      uploaded: fc.oneof(fc.nat(), fc.maxSafeNat(), fc.constant(null)),
      downloaded: fc.nat(),
      left: fc.oneof(fc.nat(), fc.constant(null)),
      numwant: fc.oneof(fc.nat(50), fc.constant(null)),
      offers: fc.oneof(
        { weight: 8, arbitrary: fc.array(fc.tuple(offerObject, id), { maxLength: 6 }) },
        fc.constant(null),
      ),
      trackerid: value,
    },
    { requiredKeys: ['action', 'info_hash', 'peer_id'] },
  )
  .map((m) => {
    const entries: [string, Value][] = [];
    for (const [k, v] of Object.entries(m)) {
      if (k === 'offers' && Array.isArray(v))
        entries.push([
          k,
          (v as unknown as [Value, string][]).map(([offer, offerId]) => ({
            entries: [
              ['offer', offer],
              ['offer_id', offerId],
            ] as [string, Value][],
          })),
        ]);
      else entries.push([k, v as Value]);
    }
    return entries;
  });

// ---- Properties ----

test('property: the fast path and JSON.parse agree on every announce, written every way', () => {
  fc.assert(
    fc.property(announceEntries, style, fc.nat(), (entries, st, seed) => {
      // Shuffle the keys: clients send them in any order.
      const e = entries.slice();
      for (let i = e.length - 1; i > 0; i--) {
        const j = (seed + i * 7919) % (i + 1);
        [e[i], e[j]] = [e[j], e[i]];
      }
      agree(message(e, st));
      agree(message(e, st), { maxBytes: 400, maxOffers: 2, maxSdpBytes: 20 });
    }),
    { numRuns: 3000 },
  );
});

test('property: what browsers send takes the fast path, and relays the offer text as sent', () => {
  const browserSdp = fc
    .array(fc.string({ unit: fc.constantFrom(...'abcxyz0123456789 =:-./+'), maxLength: 60 }), {
      maxLength: 12,
    })
    .map((lines) => `${lines.join('\r\n')}\r\n`);
  fc.assert(
    fc.property(
      id,
      id,
      fc.array(fc.tuple(browserSdp, id), { maxLength: 10 }),
      fc.constantFrom('started', 'completed', 'update', undefined),
      (infoHash, peerId, offers, event) => {
        // websocket-tracker.js: Object.assign({}, opts, {action, info_hash, peer_id}), offers of
        // simple-peer's `{type, sdp}`.
        const sent = {
          numwant: offers.length,
          uploaded: 0,
          downloaded: 12345,
          left: null,
          event,
          action: 'announce',
          info_hash: infoHash,
          peer_id: peerId,
          offers: offers.map(([s, offerId]) => ({ offer: { type: 'offer', sdp: s }, offer_id: offerId })),
        };
        const bytes = Buffer.from(JSON.stringify(sent), 'utf8');
        const m = scanAnnounce(bytes);
        assert.ok(m !== null, 'fast path');
        agree(bytes);
        for (let i = 0; i < offers.length; i++)
          assert.equal(bin(m.offers![i].offerJson), JSON.stringify(sent.offers[i].offer));
      },
    ),
    { numRuns: 500 },
  );
});

test('fuzz: byte edits of valid announces: the same result as JSON.parse, or the same refusal', () => {
  const edit = fc.record({
    at: fc.nat(),
    del: fc.nat(3),
    ins: fc.oneof(
      fc.string({ maxLength: 3 }),
      fc.constantFrom(
        '"',
        '\\',
        '\\u',
        '{',
        '}',
        '[',
        ']',
        ',',
        ':',
        'null',
        ' ',
        '-',
        '0',
        '.5',
        'e5',
        '\\/',
      ),
    ),
  });
  fc.assert(
    fc.property(
      announceEntries,
      style,
      fc.array(edit, { minLength: 1, maxLength: 3 }),
      (entries, st, edits) => {
        let s = write({ entries }, st);
        for (const e of edits) {
          const at = e.at % (s.length + 1);
          s = s.slice(0, at) + e.ins + s.slice(at + e.del);
        }
        const bytes = Buffer.from(s, 'utf8'); // a lone surrogate becomes U+FFFD: valid UTF-8
        agree(bytes);
        agree(bytes, { maxBytes: 300, maxOffers: 1, maxSdpBytes: 10 });
      },
    ),
    { numRuns: 5000 },
  );
});

test('fuzz: arbitrary bytes never throw (valid UTF-8: the same result as JSON.parse)', () => {
  fc.assert(
    fc.property(
      fc.oneof(
        fc.uint8Array({ maxLength: 200 }),
        fc
          .string({ unit: fc.constantFrom(...'{}[]":,0123456789-.eE \\tnulrfasoeci_'), maxLength: 200 })
          .map((s) => Buffer.from(s)),
      ),
      (raw) => {
        const bytes = Buffer.from(raw);
        const r = parseClientFrame(bytes);
        assert.equal(typeof r.ok, 'boolean');
        if (bytes.equals(Buffer.from(bytes.toString('utf8'), 'utf8'))) agree(bytes);
      },
    ),
    { numRuns: 5000 },
  );
});

// ---- Edge cases, one by one ----

const IH = 'ih'.padEnd(20, '.');
const PID = 'pid'.padEnd(20, '.');
const OID = 'oid'.padEnd(20, '.');
const base = (offer: string, more = '') =>
  Buffer.from(
    `{"action":"announce","info_hash":"${IH}","peer_id":"${PID}"${more},"offers":[{"offer":${offer},"offer_id":"${OID}"}]}`,
  );

test('offers the fast path relays as sent, and offers it leaves to JSON.parse', () => {
  const taken = [
    '{"type":"offer","sdp":"v=0\\r\\n"}',
    '{"sdp":""}',
    '{"sdp":"\\u0000\\u001f\\"\\\\\\b\\f\\n\\r\\t\\u007f"}'.replace('\\u007f', '\x7f'),
    '{"type":"offer","sdp":"x","n":[1,-2,0,123456789012345,true,false,null,{},[]],"o":{"a":{"b":"c"}}}',
    '{"__proto__":{"sdp":1},"sdp":"x"}',
    '{"a":1,"A":2,"sdp":"x"}',
  ];
  for (const offer of taken) {
    const bytes = base(offer);
    assert.ok(scanAnnounce(bytes) !== null, offer);
    agree(bytes);
    assert.equal(bin(scanAnnounce(bytes)!.offers![0].offerJson), offer);
  }
  const left = [
    '{"type":"offer", "sdp":"x"}', // whitespace
    '{"sdp":"\\u0041"}', // an escape JSON.stringify does not write
    '{"sdp":"\\u000A"}', // upper-case hex
    '{"sdp":"\\u000a"}', // \n has a short form
    '{"sdp":"a\\/b"}',
    '{"sdp":"é"}', // non-ASCII: relayed escaped
    '{"sdp":"\\u00e9"}',
    '{"sdp":"x","n":1.0}',
    '{"sdp":"x","n":-0}',
    '{"sdp":"x","n":1e2}',
    '{"sdp":"x","n":1234567890123456}',
    '{"sdp":"x","1":1}', // array index: V8 lists it first
    '{"sdp":"x","sdp":"y"}', // duplicate: the last value at the first place
    '{"sdp":"x","a":1,"a":2}',
    '{"s\\u0064p":"x"}',
    `{"sdp":"x","deep":${'['.repeat(40)}${']'.repeat(40)}}`,
    '{"sdp":"x","k":1,"l":1,"m":1,"n":1,"o":1,"p":1,"q":1,"r":1,"s":1,"t":1,"u":1,"v":1,"w":1,"x":1,"y":1,"z":1}',
  ];
  for (const offer of left) {
    const bytes = Buffer.from(base(offer).toString('latin1'), 'utf8');
    assert.equal(scanAnnounce(bytes), null, offer);
    agree(bytes);
    const r = parseClientFrame(bytes);
    assert.ok(r.ok, offer);
  }
  // Refused by both, with the reference's reason.
  const refused: [string, string][] = [
    ['{"type":"offer"}', WsReasons.invalidOffer],
    ['{"sdp":1}', WsReasons.invalidOffer],
    ['["sdp"]', WsReasons.invalidOffer],
    ['"v=0"', WsReasons.invalidOffer],
    ['{"sdp":"x"', WsReasons.invalidJson],
    ['{"sdp":"\x01"}', WsReasons.invalidJson],
    [`{"sdp":"${'a'.repeat(WS_LIMITS.maxSdpBytes + 1)}"}`, WsReasons.sdpTooLarge],
  ];
  for (const [offer, reason] of refused) {
    const bytes = base(offer);
    assert.equal(scanAnnounce(bytes), null, offer);
    assert.deepEqual(parseClientFrame(bytes), { ok: false, reason });
  }
  // The sdp limit is inclusive.
  const at = base(`{"sdp":"${'a'.repeat(WS_LIMITS.maxSdpBytes)}"}`);
  assert.ok(scanAnnounce(at) !== null);
  agree(at);
});

test('ids: every byte value, raw or escaped, as the reference decodes it', () => {
  for (let c = 0; c < 256; c++) {
    const ch = String.fromCharCode(c);
    const forms = [
      JSON.stringify(ch.repeat(20)),
      `"${`\\u00${c.toString(16).padStart(2, '0')}`.repeat(20)}"`,
      `"${`\\u00${c.toString(16).padStart(2, '0').toUpperCase()}`.repeat(20)}"`,
    ];
    for (const f of forms) {
      const bytes = Buffer.from(`{"action":"announce","info_hash":${f},"peer_id":"${PID}"}`, 'utf8');
      const m = scanAnnounce(bytes);
      assert.ok(m !== null, f);
      assert.ok(m.infoHash.equals(Buffer.alloc(20, c)));
      agree(bytes);
    }
  }
  // Not 20 units, above 0xff, not a string: left to the reference (which refuses).
  for (const f of [
    JSON.stringify('a'.repeat(19)),
    JSON.stringify('a'.repeat(21)),
    JSON.stringify(`${'a'.repeat(19)}Ā`),
    JSON.stringify(`${'a'.repeat(18)}😀`),
    `"${'a'.repeat(19)}\\u0100"`,
    'null',
    '5',
  ]) {
    const bytes = Buffer.from(`{"action":"announce","info_hash":${f},"peer_id":"${PID}"}`, 'utf8');
    assert.equal(scanAnnounce(bytes), null, f);
    agree(bytes);
    assert.equal(parseClientFrame(bytes).ok, false);
  }
});

test('messages left to the reference: answers, scrapes, repeated keys, numbers it does not take', () => {
  const m = (s: string) => Buffer.from(s, 'utf8');
  const ids = `"info_hash":"${IH}","peer_id":"${PID}"`;
  for (const s of [
    `{"action":"announce",${ids},"to_peer_id":"${OID}","offer_id":"${OID}","answer":{"type":"answer","sdp":"x"}}`,
    `{"action":"announce",${ids},"answer":null}`,
    `{"action":"scrape","info_hash":"${IH}"}`,
    `{"action":"announce",${ids},"action":"announce"}`,
    `{"action":"announce",${ids},"left":1.5}`,
    `{"action":"announce",${ids},"left":-1}`,
    `{"action":"announce",${ids},"left":-0}`,
    `{"action":"announce",${ids},"left":1e3}`,
    `{"action":"announce",${ids},"left":0123}`,
    `{"action":"announce",${ids},"left":9007199254740992}`,
    `{"action":"announce",${ids},"uploaded":1234567890123456}`,
    `{"action":"announce",${ids},"event":"Started"}`,
    `{"action":"announce",${ids},"event":"start"}`,
    `{"acti\\u006fn":"announce",${ids}}`,
    `{"action":"announce",${ids}} x`,
    `{"action":"announce",${ids},}`,
    `{"action":"announce",${ids},"offers":{}}`,
    `{"action":"announce",${ids},"offers":[null]}`,
    `{${ids}}`,
    `{"action":"announce","peer_id":"${PID}"}`,
    '{}',
    '[]',
    '',
  ]) {
    assert.equal(scanAnnounce(m(s)), null, s);
    agree(m(s));
  }
  // Whitespace, unknown keys of every kind, nulls, in any order: taken.
  for (const s of [
    ` \t\r\n{ "left" : null , ${ids.replace(',', ' ,\n')} , "action" : "announce" , "x" : [ 1 , { "y" : -2.5e-3 } , "\\u00e9" ] , "offers" : [ ] } \n`,
    `{"numwant":null,"uploaded":null,"event":null,"offers":null,"action":"announce",${ids},"trackerid":{"a":[true,false,null]}}`,
    `{"action":"announce",${ids},"left":0,"uploaded":999999999999999,"numwant":0}`,
  ]) {
    assert.ok(scanAnnounce(m(s)) !== null, s);
    agree(m(s));
  }
});

test('limits: size, offers and nesting are bounded; deep or long input gives up fast', () => {
  const offer = `{"offer":{"type":"offer","sdp":"v=0"},"offer_id":"${OID}"}`;
  const withOffers = (n: number) =>
    Buffer.from(
      `{"action":"announce","info_hash":"${IH}","peer_id":"${PID}","offers":[${Array(n).fill(offer).join(',')}]}`,
    );
  assert.ok(scanAnnounce(withOffers(WS_LIMITS.maxOffers)) !== null);
  assert.equal(scanAnnounce(withOffers(WS_LIMITS.maxOffers + 1)), null);
  assert.deepEqual(parseClientFrame(withOffers(WS_LIMITS.maxOffers + 1)), {
    ok: false,
    reason: WsReasons.tooManyOffers,
  });
  assert.deepEqual(parseClientFrame(withOffers(3), { maxOffers: 2 }), {
    ok: false,
    reason: WsReasons.tooManyOffers,
  });
  const bytes = withOffers(2);
  assert.ok(scanAnnounce(bytes, { maxBytes: bytes.length }) !== null);
  assert.deepEqual(parseClientFrame(bytes, { maxBytes: bytes.length - 1 }), {
    ok: false,
    reason: WsReasons.tooLarge,
  });
  // Very deep nesting, in an unknown field and in an offer: the scanner stops at its depth.
  const deep = (open: string, close: string) =>
    Buffer.from(
      `{"action":"announce","info_hash":"${IH}","peer_id":"${PID}","x":${open.repeat(20000)}${close.repeat(20000)}}`,
    );
  for (const b of [deep('[', ']'), deep('{"a":', '}')]) {
    const t0 = performance.now();
    assert.equal(scanAnnounce(b), null);
    agree(b);
    assert.ok(performance.now() - t0 < 2000);
  }
  const deepOffer = base(`{"sdp":"x","d":${'['.repeat(5000)}${']'.repeat(5000)}}`);
  assert.equal(scanAnnounce(deepOffer), null);
  agree(deepOffer);
  // Deeper than JSON.stringify can write (JSON.parse reads any depth): refused, not thrown.
  const tooDeep = base(`{"sdp":"x","d":${'['.repeat(30000)}${']'.repeat(30000)}}`);
  assert.deepEqual(parseClientFrame(tooDeep), { ok: false, reason: WsReasons.invalidOffer });
  // Many keys in offers (the duplicate check is bounded), in a message at the size limit.
  const keys = Array.from({ length: 2000 }, (_, i) => `"k${i}":0`).join(',');
  const wide = base(`{"sdp":"x",${keys}}`);
  const t0 = performance.now();
  agree(wide);
  assert.ok(performance.now() - t0 < 2000);
  const many = Array.from({ length: 15 }, (_, i) => `"k${i}":0`).join(',');
  assert.ok(scanAnnounce(base(`{"sdp":"x",${many}}`)) !== null, '16 keys');
  // A frame that is a view in the middle of a larger buffer, at any alignment.
  for (let shift = 0; shift < 8; shift++) {
    const whole = Buffer.concat([Buffer.alloc(shift, 0x20), withOffers(3), Buffer.from('trailing')]);
    const view = whole.subarray(shift, whole.length - 8);
    const m = scanAnnounce(view);
    assert.ok(m !== null);
    assert.equal(bin(m.offers![2].offerJson), '{"type":"offer","sdp":"v=0"}');
    agree(view);
  }
});
