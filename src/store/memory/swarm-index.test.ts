/**
 * SwarmIndex against a Map: thousands of info hashes added and deleted at random (the table
 * doubles and halves, clusters form and wrap around its end, backward-shift deletion moves
 * entries), including hashes that differ only in their last bytes; and a forced-collision
 * variant in which every hash lands in a handful of home slots.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import fc from 'fast-check';
import { halfSipHash13, SwarmIndex } from './swarm-index.ts';

/** A reference HalfSipHash-c-d (32-bit output) of any length, written from the paper's description. */
function halfSipHash(c: number, d: number, msg: Uint8Array, k0: number, k1: number): number {
  let v0 = k0 | 0;
  let v1 = k1 | 0;
  let v2 = 0x6c796765 ^ k0;
  let v3 = 0x74656462 ^ k1;
  const round = () => {
    v0 = (v0 + v1) | 0;
    v1 = (v1 << 5) | (v1 >>> 27);
    v1 ^= v0;
    v0 = (v0 << 16) | (v0 >>> 16);
    v2 = (v2 + v3) | 0;
    v3 = (v3 << 8) | (v3 >>> 24);
    v3 ^= v2;
    v0 = (v0 + v3) | 0;
    v3 = (v3 << 7) | (v3 >>> 25);
    v3 ^= v0;
    v2 = (v2 + v1) | 0;
    v1 = (v1 << 13) | (v1 >>> 19);
    v1 ^= v2;
    v2 = (v2 << 16) | (v2 >>> 16);
  };
  const full = msg.length - (msg.length % 4);
  const words: number[] = [];
  for (let i = 0; i < full; i += 4)
    words.push(new DataView(msg.buffer, msg.byteOffset + i, 4).getUint32(0, true));
  let last = (msg.length & 0xff) << 24;
  for (let i = full; i < msg.length; i++) last |= msg[i] << (8 * (i - full));
  words.push(last);
  for (const m of words) {
    v3 ^= m;
    for (let i = 0; i < c; i++) round();
    v0 ^= m;
  }
  v2 ^= 0xff;
  for (let i = 0; i < d; i++) round();
  return (v1 ^ v3) >>> 0;
}

const bytes = (n: number) => Uint8Array.from({ length: n }, (_, i) => i);

test('HalfSipHash: the reference matches the published HalfSipHash-2-4 vectors, and halfSipHash13 the reference', () => {
  // vectors_hsip32 from the SipHash reference code: key 00..07, message 00..len-1.
  const k0 = 0x03020100;
  const k1 = 0x07060504;
  assert.equal(halfSipHash(2, 4, bytes(0), k0, k1), 0x5b9f35a9);
  assert.equal(halfSipHash(2, 4, bytes(1), k0, k1), 0xb85a4727);
  assert.equal(halfSipHash(2, 4, bytes(20), k0, k1), 0x45104de3);
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 20, maxLength: 20 }),
      fc.integer({ min: 0, max: 0xffffffff }),
      fc.integer({ min: 0, max: 0xffffffff }),
      (h, a, b) => {
        assert.equal(halfSipHash13(h, 0, a, b), halfSipHash(1, 3, h, a, b));
        const shifted = new Uint8Array(23);
        shifted.set(h, 3);
        assert.equal(halfSipHash13(shifted, 3, a, b), halfSipHash(1, 3, h, a, b));
      },
    ),
  );
});

/** Every hash lands in one of the table's last 8 slots: long clusters that wrap around its end. */
class CollidingIndex extends SwarmIndex {
  override hash(b: Uint8Array, off: number): number {
    return 0xffffffff - (b[off + 19] & 7);
  }
}

/**
 * Info hash number n of a pool of POOL: four prefix groups, whose members share their first 16
 * bytes (group 0: 19 bytes, and bytes 16-17 only tell them apart).
 */
const POOL = 8000;
function poolHash(n: number): Uint8Array {
  const group = n & 3;
  const h = new Uint8Array(20).fill(0xab ^ group);
  const m = n >> 2;
  if (group === 0) {
    h[19] = m & 0xff;
    h[18] = m >> 8;
  } else {
    h[16] = m >> 8;
    h[17] = m & 0xff;
    h[19] = m & 3;
  }
  return h;
}

const op = fc.record({ add: fc.integer({ min: 0, max: 99 }), n: fc.integer({ min: 0, max: POOL - 1 }) });

for (const [name, make, maxOps, poolSize] of [
  ['keyed hash', () => new SwarmIndex(), 12000, POOL],
  ['forced collisions', () => new CollidingIndex([1, 2]), 1500, 400],
] as const) {
  test(`property: SwarmIndex (${name}) matches a Map through growth, shrinking and deletions`, () => {
    let deletions = 0;
    const sizes = new Set<number>();
    fc.assert(
      fc.property(
        fc.array(op, { minLength: maxOps / 2, maxLength: maxOps, size: 'max' }),
        fc.integer({ min: 50, max: 90 }),
        (ops, addShare) => {
          const index = make();
          const ref = new Map<number, number>();
          for (const [i, o] of ops.entries()) {
            // A phase of mostly adds, then one of mostly deletes, so the table also halves.
            const adding = i < ops.length / 2 ? o.add < addShare : o.add >= addShare;
            const n = o.n % poolSize;
            const h = poolHash(n);
            const id = index.find(h);
            assert.equal(id, ref.get(n) ?? -1, 'find');
            if (id < 0 && adding) {
              const nid = index.add(h);
              assert.ok(nid >= 0 && nid < index.top);
              ref.set(n, nid);
            } else if (id >= 0 && !adding) {
              index.delete(id);
              ref.delete(n);
              deletions++;
            }
            assert.equal(index.size, ref.size);
            sizes.add(index.slotCount);
            if (i % 250 === 249 || i === ops.length - 1) {
              assert.equal(new Set(ref.values()).size, ref.size, 'ids are distinct');
              for (const [n, v] of ref) {
                assert.equal(index.find(poolHash(n)), v, 'every live hash is found');
                assert.deepEqual(index.hashOf(v), poolHash(n));
              }
            }
          }
          // Empty it: every entry must still be reachable, in any deletion order.
          for (const [n, v] of [...ref].reverse()) {
            assert.equal(index.find(poolHash(n)), v);
            index.delete(v);
          }
          assert.equal(index.size, 0);
          assert.equal(index.top, 0, 'ids start again from 0');
        },
      ),
      { numRuns: 10 },
    );
    // The runs did reach what they are for.
    assert.ok(deletions > (name === 'keyed hash' ? 5000 : 500), `${deletions} deletions`);
    if (name === 'keyed hash') assert.ok(sizes.has(4096), `table sizes ${[...sizes]}`);
  });
}

test('the lookup table doubles under load and halves when emptied', () => {
  const index = new SwarmIndex();
  const h = new Uint8Array(20);
  const ids: number[] = [];
  for (let i = 0; i < 5000; i++) {
    new DataView(h.buffer).setUint32(16, i);
    assert.equal(index.find(h), -1);
    ids.push(index.add(h));
    assert.ok(index.size <= index.slotCount * 0.7);
  }
  assert.equal(index.slotCount, 8192);
  assert.deepEqual(ids.slice(0, 3), [0, 1, 2], 'ids are dense from 0');
  for (let i = 0; i < 4900; i++) index.delete(ids[i]);
  assert.ok(index.slotCount <= 1024, `halved back to ${index.slotCount}`);
  for (let i = 4900; i < 5000; i++) {
    new DataView(h.buffer).setUint32(16, i);
    assert.equal(index.find(h), ids[i]);
  }
  // Freed ids are reused, most recent first.
  new DataView(h.buffer).setUint32(16, 99999);
  assert.equal(index.find(h), -1);
  assert.equal(index.add(h), ids[4899]);
});

test('growing gives the old records and lookup table back at once, not at the next full GC', () => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const index = new SwarmIndex();
  const h = new Uint8Array(20);
  const add = (i: number) => {
    new DataView(h.buffer).setUint32(16, i);
    index.add(h);
  };
  // 16,384 ids: records of 16,384 * 24 bytes, a table of 32,768 slots (both just grown).
  let i = 0;
  while (i < 16_384) add(i++);
  gc();
  gc();
  const held = process.memoryUsage().arrayBuffers;
  const slots = index.slotCount;
  // One more id doubles the records; a few thousand more double the lookup table.
  while (index.slotCount === slots) add(i++);
  const grown = process.memoryUsage().arrayBuffers - held;
  // What is held now is the new arrays' size minus the old ones': 16,384 * 24 + 32,768 * 4 more.
  const more = 16_384 * 24 + slots * 4;
  assert.ok(grown <= more + 4096, `${grown} bytes more held (the new arrays add ${more})`);
});
