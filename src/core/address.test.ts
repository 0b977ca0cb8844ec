import assert from 'node:assert/strict';
import { isIPv6 } from 'node:net';
import { test } from 'node:test';
import fc from 'fast-check';
import { formatIp, parseHostPort, parseIp } from './address.ts';

test('parses IPv4, IPv6 and IPv4-mapped addresses', () => {
  assert.deepEqual(parseIp('127.0.0.1'), { family: 4, bytes: Uint8Array.of(127, 0, 0, 1) });
  assert.deepEqual(parseIp('::ffff:10.1.2.3'), { family: 4, bytes: Uint8Array.of(10, 1, 2, 3) });
  const v6 = parseIp('::1');
  assert.equal(v6?.family, 6);
  assert.equal(v6?.bytes[15], 1);
  assert.equal(parseIp('fe80::1%eth0')?.family, 6);
  for (const bad of [
    '',
    '1.2.3',
    '1.2.3.4.5',
    '256.1.1.1',
    '01.2.3.4',
    '1::2::3',
    'x',
    ':::',
    '1:2:3:4:5:6:7:8:9',
  ]) {
    assert.equal(parseIp(bad), null, bad);
  }
});

test('formatIp and parseIp round-trip for any IPv6 address (checked against node:net)', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (bytes) => {
      const text = formatIp(bytes);
      assert.ok(isIPv6(text), text);
      const back = parseIp(text);
      assert.ok(back);
      const expected = back.family === 4 ? bytes.slice(12) : bytes;
      assert.deepEqual(back.bytes, expected);
    }),
  );
});

test('parseIp never throws on random text', () => {
  fc.assert(fc.property(fc.string({ maxLength: 80 }), (s) => void parseIp(s)));
});

test('parseHostPort', () => {
  assert.deepEqual(parseHostPort('0.0.0.0:6969'), { host: '0.0.0.0', port: 6969 });
  assert.deepEqual(parseHostPort('[::]:6969'), { host: '::', port: 6969 });
  assert.equal(parseHostPort('::1:80'), null);
  assert.equal(parseHostPort('host:99999'), null);
  assert.equal(parseHostPort('[::1]80'), null);
});
