import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { shardOf } from './shard.ts';

function hash(first: number[]): Uint8Array {
  const h = new Uint8Array(20).fill(0xee);
  h.set(first);
  return h;
}

test('shardOf is the first four bytes, big-endian and unsigned, modulo n', () => {
  assert.equal(shardOf(hash([0, 0, 0, 7]), 3), 1);
  assert.equal(shardOf(hash([0, 0, 1, 0]), 3), 256 % 3);
  // The top bit set: a signed reading would give a negative remainder.
  assert.equal(shardOf(hash([0xff, 0xff, 0xff, 0xff]), 3), 0xffffffff % 3);
  assert.equal(shardOf(hash([0x80, 0, 0, 0]), 7), 0x80000000 % 7);
  assert.equal(shardOf(hash([1, 2, 3, 4]), 1), 0);
});

test('shardOf reads only the first four bytes and stays in [0, n)', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 20, maxLength: 20 }),
      fc.integer({ min: 1, max: 1024 }),
      (h, n) => {
        const s = shardOf(h, n);
        assert.ok(Number.isInteger(s) && s >= 0 && s < n);
        const other = h.slice();
        other.fill(0x5a, 4);
        assert.equal(shardOf(other, n), s);
        assert.equal(s, Number(BigInt(`0x${Buffer.from(h.subarray(0, 4)).toString('hex')}`) % BigInt(n)));
      },
    ),
  );
});
