import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { type BEncodable, type BValue, decode, dictEntries, encode } from './index.ts';

const ok = (s: string | Buffer) => {
  const r = decode(typeof s === 'string' ? Buffer.from(s, 'latin1') : s);
  if (!r.ok) assert.fail(`expected ok: ${r.error} at ${r.offset}`);
  return r.value;
};
const bad = (s: string, why: RegExp) => {
  const r = decode(Buffer.from(s, 'latin1'));
  assert.equal(r.ok, false, s);
  if (!r.ok) assert.match(r.error, why, s);
};

test('decodes every type; dictionaries keep raw byte keys', () => {
  assert.equal(ok('i42e'), 42);
  assert.equal(ok('i-7e'), -7);
  assert.equal(ok('i0e'), 0);
  assert.equal(ok('i123456789012345678901234567890e'), 123456789012345678901234567890n);
  assert.deepEqual(ok('4:spam'), Buffer.from('spam'));
  assert.deepEqual(ok('0:'), Buffer.alloc(0));
  assert.deepEqual(ok('l4:spami3ee'), [Buffer.from('spam'), 3]);
  const d = ok(Buffer.from('d3:cowi2e2:\xff\x00i1ee', 'latin1')) as Map<string, BValue>;
  assert.deepEqual([...d.keys()], ['cow', '\xff\x00']);
  assert.equal(d.get('\xff\x00'), 1);
});

test('rejects malformed input with a reason and an offset', () => {
  bad('', /truncated/);
  bad('i01e', /leading zero/);
  bad('i-0e', /negative zero/);
  bad('ie', /digits/);
  bad('i12', /truncated/);
  bad('5:abc', /beyond/);
  bad('99999999999:x', /beyond/);
  bad('-1:x', /unexpected/);
  bad('l', /truncated/);
  bad('d3:fooe', /truncated|unexpected/);
  bad('d3:zzzi1e3:aaai2ee', /sorted/);
  bad('d3:aaai1e3:aaai2ee', /duplicate/);
  bad('di1ei2ee', /key must be a string/);
  bad('i1ei2e', /trailing/);
  bad('x', /unexpected/);
  bad(`${'l'.repeat(100)}${'e'.repeat(100)}`, /deep/);
  const loose = decode(Buffer.from('d3:zzzi1e3:aaai2ee'), { strict: false });
  assert.ok(loose.ok);
});

test('reports the raw span of a top-level key (the info dictionary of a .torrent)', () => {
  const info = 'd6:lengthi5e4:name1:xe';
  const buf = Buffer.from(`d8:announce3:url4:info${info}e`);
  const r = decode(buf, { spanOf: 'info' });
  assert.ok(r.ok);
  assert.deepEqual(r.span, [buf.indexOf(info), buf.indexOf(info) + info.length]);
});

const value: fc.Arbitrary<BEncodable> = fc.letrec<{ v: BEncodable }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small' },
    fc.integer(),
    fc.bigInt({ min: -(2n ** 80n), max: 2n ** 80n }).filter((b) => b < -(2n ** 53n) || b > 2n ** 53n),
    fc.uint8Array({ maxLength: 40 }).map((u) => Buffer.from(u)),
    fc.array(tie('v'), { maxLength: 5 }),
    fc
      .array(fc.tuple(fc.uint8Array({ maxLength: 8 }), tie('v')), { maxLength: 5 })
      .map((entries) => new Map(entries.map(([k, v]) => [Buffer.from(k).toString('latin1'), v]))),
  ),
})).v;

test('property: decode(encode(x)) equals x', () => {
  fc.assert(
    fc.property(value, (x) => {
      const r = decode(encode(x));
      assert.ok(r.ok);
      assert.deepEqual(r.value, x);
      assert.deepEqual(encode(r.value as BEncodable), encode(x));
    }),
    { numRuns: 500 },
  );
});

test('fuzz: random and mutated input never throws', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      const r = decode(bytes);
      assert.equal(typeof r.ok, 'boolean');
    }),
    { numRuns: 3000 },
  );
  fc.assert(
    fc.property(value, fc.nat(), fc.integer({ min: 0, max: 255 }), (x, at, byte) => {
      const b = Buffer.from(encode(x));
      if (b.length === 0) return;
      b[at % b.length] = byte;
      const r = decode(b.subarray(0, b.length - (at % 3)));
      assert.equal(typeof r.ok, 'boolean');
    }),
    { numRuns: 2000 },
  );
});

test('dictEntries: each entry of a dictionary as byte offsets, values skipped, not built', () => {
  const buf = Buffer.from('d8:announce3:url4:infod6:lengthi-5e4:name1:xe1:zli1el0:eee');
  const r = dictEntries(buf);
  assert.ok(r);
  assert.deepEqual(
    r.entries.map((e) => [
      e.key,
      buf.toString('latin1', e.start, e.end),
      buf.toString('latin1', e.valueStart, e.end),
    ]),
    [
      ['announce', '8:announce3:url', '3:url'],
      ['info', '4:infod6:lengthi-5e4:name1:xe', 'd6:lengthi-5e4:name1:xe'],
      ['z', '1:zli1el0:ee', 'li1el0:ee'],
    ],
  );
  assert.equal(r.close, buf.length - 1);
  // A nested dictionary, by its offset.
  const info = dictEntries(buf, r.entries[1].valueStart);
  assert.deepEqual(
    info?.entries.map((e) => e.key),
    ['length', 'name'],
  );
  assert.deepEqual(dictEntries(Buffer.from('de')), { entries: [], close: 1 });
  for (const junk of [
    '',
    'le',
    'd',
    'd3:abc',
    'd3:abci1e',
    'd1:ai1x',
    'd1:a5:abce',
    'di1ei2ee',
    'd1:ad-1:xi1eee',
  ])
    assert.equal(dictEntries(Buffer.from(junk, 'latin1')), null, junk);
});

test('property: dictEntries agrees with decode on every encoded dictionary, and never throws', () => {
  const dict = fc
    .array(fc.tuple(fc.uint8Array({ maxLength: 8 }), value), { maxLength: 6 })
    .map((entries) => new Map(entries.map(([k, v]) => [Buffer.from(k).toString('latin1'), v])));
  fc.assert(
    fc.property(dict, (d) => {
      const buf = encode(d);
      const r = dictEntries(buf);
      assert.ok(r);
      const decoded = decode(buf);
      assert.ok(decoded.ok);
      assert.deepEqual(
        r.entries.map((e) => e.key),
        [...(decoded.value as Map<string, BValue>).keys()],
      );
      for (const e of r.entries) {
        const v = decode(buf.subarray(e.valueStart, e.end));
        assert.ok(v.ok);
        assert.deepEqual(v.value, (decoded.value as Map<string, BValue>).get(e.key));
      }
    }),
    { numRuns: 500 },
  );
  fc.assert(
    fc.property(dict, fc.nat(), fc.integer({ min: 0, max: 255 }), (d, at, byte) => {
      const b = Buffer.from(encode(d));
      b[at % b.length] = byte;
      const r = dictEntries(b.subarray(0, b.length - (at % 3)));
      assert.ok(r === null || r.close < b.length);
    }),
    { numRuns: 2000 },
  );
});
