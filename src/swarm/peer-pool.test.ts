/**
 * PeerPool against a plain model: many swarms share the size classes, so blocks move between
 * classes and are compacted (the class's last block fills a freed one) while other swarms keep
 * their peers; big swarms build and drop their endpoint index.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import fc from 'fast-check';
import { classFor, ID_KNOWN, INDEX_AT, PeerPool, SEEDER } from './peer-pool.ts';

interface ModelPeer {
  seeder: boolean;
  lastSeen: number;
  idKnown: boolean;
}

const SWARMS = 12;
const ENDPOINTS = 70;

function endpoint(family: 4 | 6, e: number): Uint8Array {
  if (family === 4) return Uint8Array.of(10, 0, e >> 2, 1, 0x1a, e & 3); // 4 ports per address
  // IPv6 endpoints share their first 15 bytes, so only the tail tells them apart.
  const ep = new Uint8Array(18).fill(0x20);
  ep[15] = e >> 1;
  ep[16] = 0x1a;
  ep[17] = e & 1;
  return ep;
}

function peerId(e: number): Uint8Array {
  return new Uint8Array(20).fill(e + 1);
}

/** Checks every table of the pool against the model, slot by slot. */
function checkAll(pool: PeerPool, model: Map<number, Map<number, ModelPeer>>): void {
  let tables = 0;
  for (let s = 0; s < SWARMS; s++) if (checkSwarm(pool, model, s)) tables++;
  assert.equal(pool.tables, tables);
  const blocks = pool.classUsage().reduce((a, c) => a + c.blocks, 0);
  assert.equal(blocks, tables, 'one block per table');
  for (const c of pool.classUsage())
    assert.ok(c.chunks <= Math.ceil(c.blocks / Math.max(1, Math.floor(4096 / c.cap))) + 1, 'one spare chunk');
}

/** Checks one swarm's table against the model; returns whether it has one. */
function checkSwarm(pool: PeerPool, model: Map<number, Map<number, ModelPeer>>, s: number): boolean {
  {
    const m = model.get(s);
    assert.equal(pool.has(s), m !== undefined, `swarm ${s} has a table`);
    if (m === undefined) {
      assert.equal(pool.countOf(s), 0);
      return false;
    }
    pool.open(s);
    assert.equal(pool.count, m.size, `count of ${s}`);
    assert.equal(pool.leechers, [...m.values()].filter((p) => !p.seeder).length, `leechers of ${s}`);
    assert.ok(pool.count <= pool.capacity);
    const k = classFor(pool.capacity);
    assert.ok(k === 0 || pool.count > pool.capacity / 4, 'a table shrinks when a quarter full');
    if (pool.count > INDEX_AT) assert.ok(pool.indexed, 'big tables are indexed');
    for (const [e, p] of m) {
      const slot = pool.find(endpoint(pool.family, e));
      assert.ok(slot >= 0, `endpoint ${e} of swarm ${s} found`);
      const f = pool.flagsAt(slot);
      assert.equal((f & SEEDER) !== 0, p.seeder);
      assert.equal(slot < pool.leechers, !p.seeder, 'partition: leechers first');
      assert.equal(pool.lastSeenAt(slot), p.lastSeen);
      assert.equal((f & ID_KNOWN) !== 0, p.idKnown);
    }
    // Every peer once: a full selection returns each endpoint of the table exactly once, with
    // its id when known.
    const out = new Uint8Array(pool.count * pool.stride);
    const ids = new Uint8Array(pool.count * 20);
    const known = new Uint8Array(pool.count);
    const n = pool.select(0, pool.count, -1, pool.count, Math.random, out, ids, known);
    assert.equal(n, m.size);
    const byRecord = new Map(
      [...m.keys()].map((x) => [Buffer.from(endpoint(pool.family, x)).toString('hex'), x]),
    );
    const seen = new Set<number>();
    for (let i = 0; i < n; i++) {
      const e = byRecord.get(
        Buffer.from(out.subarray(i * pool.stride, (i + 1) * pool.stride)).toString('hex'),
      );
      assert.ok(e !== undefined && !seen.has(e), 'each peer once');
      seen.add(e);
      assert.equal(known[i] === 1, m.get(e)!.idKnown, 'id known');
      if (known[i] === 1) assert.deepEqual(ids.subarray(i * 20, i * 20 + 20), peerId(e));
    }
  }
  return true;
}

const op = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('put' as const),
      swarm: fc.integer({ min: 0, max: SWARMS - 1 }),
      endpoint: fc.integer({ min: 0, max: ENDPOINTS - 1 }),
      seeder: fc.boolean(),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('remove' as const),
      swarm: fc.integer({ min: 0, max: SWARMS - 1 }),
      endpoint: fc.integer({ min: 0, max: ENDPOINTS - 1 }),
    }),
  },
  {
    // Fill a swarm with many endpoints at once, so tables pass INDEX_AT and several classes.
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('burst' as const),
      swarm: fc.integer({ min: 0, max: SWARMS - 1 }),
      from: fc.integer({ min: 0, max: ENDPOINTS - 1 }),
      n: fc.integer({ min: 1, max: ENDPOINTS }),
      remove: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('ids' as const),
      swarm: fc.integer({ min: 0, max: SWARMS - 1 }),
    }),
  },
);

for (const family of [4, 6] as const) {
  test(`property: PeerPool (IPv${family}) matches a model across many swarms`, () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 250, size: 'max' }), (ops) => {
        const pool = new PeerPool(family);
        const model = new Map<number, Map<number, ModelPeer>>();
        const wantIds = new Set<number>();
        let now = 1;
        const put = (s: number, e: number, seeder: boolean) => {
          now++;
          let m = model.get(s);
          if (m === undefined) {
            m = new Map();
            model.set(s, m);
            pool.create(s, wantIds.has(s));
          } else pool.open(s);
          const ep = endpoint(family, e);
          let slot = pool.find(ep);
          if (slot < 0) slot = pool.insert(ep, seeder, now);
          else {
            slot = pool.setSeeder(slot, seeder);
            pool.touch(slot, now);
          }
          if (pool.hasIds) pool.setPeerId(slot, peerId(e));
          const p = m.get(e) ?? { seeder, lastSeen: now, idKnown: false };
          p.seeder = seeder;
          p.lastSeen = now;
          p.idKnown ||= wantIds.has(s);
          m.set(e, p);
        };
        const remove = (s: number, e: number) => {
          const m = model.get(s);
          if (m === undefined) return;
          pool.open(s);
          const slot = pool.find(endpoint(family, e));
          assert.equal(slot >= 0, m.has(e));
          if (slot < 0) return;
          const gone = pool.remove(slot);
          m.delete(e);
          assert.equal(gone, m.size === 0);
          if (gone) {
            model.delete(s);
            wantIds.delete(s);
          }
        };
        for (const [i, o] of ops.entries()) {
          if (o.kind === 'put') put(o.swarm, o.endpoint, o.seeder);
          else if (o.kind === 'remove') remove(o.swarm, o.endpoint);
          else if (o.kind === 'burst') {
            for (let i = 0; i < o.n; i++) {
              const e = (o.from + i) % ENDPOINTS;
              if (o.remove) remove(o.swarm, e);
              else put(o.swarm, e, (e & 1) === 0);
            }
          } else if (!wantIds.has(o.swarm)) {
            wantIds.add(o.swarm);
            pool.enableIds(o.swarm);
            if (!model.has(o.swarm)) wantIds.delete(o.swarm); // no table: nothing to enable
          }
          // The touched swarm after every step; all of them (blocks moved under them) now and then.
          checkSwarm(pool, model, o.swarm);
          if (i % 16 === 15) checkAll(pool, model);
        }
        checkAll(pool, model);
      }),
      { numRuns: 100 },
    );
  });
}

test('a big table builds its index, grows through the classes, shrinks and drops the index', () => {
  const pool = new PeerPool(4);
  // Neighbours in the same classes, so that the big table's blocks are compacted around them.
  for (let s = 1; s <= 3; s++) {
    pool.create(s, false);
    pool.insert(endpoint(4, s), false, 1);
  }
  pool.create(0, true);
  const caps = new Set<number>();
  let indexedSeen = false;
  for (let e = 0; e < 200; e++) {
    pool.open(0);
    const slot = pool.insert(Uint8Array.of(10, 1, e >> 8, e & 0xff, 0, 80), e % 5 === 0, e);
    pool.setPeerId(slot, peerId(e));
    caps.add(pool.capacity);
    indexedSeen ||= pool.indexed;
    assert.equal(pool.indexed, pool.count > INDEX_AT);
  }
  assert.ok(indexedSeen && caps.size >= 10, `grew through ${caps.size} classes`);
  const shrunk = new Set<number>();
  for (let e = 199; e >= 1; e--) {
    pool.open(0);
    const slot = pool.find(Uint8Array.of(10, 1, e >> 8, e & 0xff, 0, 80));
    assert.ok(slot >= 0, `peer ${e} found`);
    assert.equal(pool.lastSeenAt(slot), e);
    assert.equal(pool.remove(slot), false);
    shrunk.add(pool.capacity);
    if (pool.count <= INDEX_AT / 2) assert.equal(pool.indexed, false, 'index dropped');
    // The neighbours' peers are still where they were.
    for (let s = 1; s <= 3; s++) {
      pool.open(s);
      assert.equal(pool.find(endpoint(4, s)), 0);
    }
  }
  assert.ok(shrunk.size >= 7, `shrank through ${shrunk.size} classes`);
  pool.open(0);
  assert.equal(pool.count, 1);
  assert.equal(pool.capacity, 2);
  const out = new Uint8Array(6);
  const ids = new Uint8Array(20);
  const known = new Uint8Array(1);
  assert.equal(pool.select(0, 1, -1, 10, Math.random, out, ids, known), 1);
  assert.deepEqual(out, Uint8Array.of(10, 1, 0, 0, 0, 80));
  assert.equal(known[0], 1);
  assert.deepEqual(ids, peerId(0));
  assert.equal(pool.remove(0), true);
  assert.equal(pool.has(0), false);
});

test('select: two runs, no duplicates, never the excluded slot, exactly min(want, candidates)', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 60 }),
      fc.integer({ min: 0, max: 60 }),
      fc.integer({ min: -1, max: 60 }),
      fc.integer({ min: 0, max: 70 }),
      fc.double({ min: 0, max: 0.999999, noNaN: true }),
      fc.double({ min: 0, max: 0.999999, noNaN: true }),
      (count, leechers, exclude, want, r1, r2) => {
        const pool = new PeerPool(4);
        pool.create(7, false);
        leechers = Math.min(leechers, count);
        for (let i = 0; i < count; i++) pool.insert(Uint8Array.of(1, 2, 3, i, 0, 1), i >= leechers, 0);
        assert.equal(pool.leechers, leechers);
        if (exclude >= count) exclude = -1;
        const to = pool.leechers; // a seeder's candidates
        for (const end of [to, count]) {
          const rs = [r1, r2];
          const out = new Uint8Array(70 * 6);
          const n = pool.select(0, end, exclude, want, () => rs.shift()!, out, null, null);
          const candidates = end - (exclude >= 0 && exclude < end ? 1 : 0);
          assert.equal(n, Math.min(want, candidates));
          const seen = new Set<number>();
          for (let i = 0; i < n; i++) {
            const slot = pool.find(out.subarray(i * 6, i * 6 + 6));
            assert.ok(slot >= 0 && slot < end && slot !== exclude && !seen.has(slot));
            seen.add(slot);
          }
        }
      },
    ),
    { numRuns: 500 },
  );
});

test('a class that shrinks gives its chunks back at once, not at the next full GC', () => {
  // The chunks are made old first (two full collections): an old buffer that is merely dropped
  // waits for a mark-compact, which a process whose heap barely grows runs rarely.
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const pool = new PeerPool(4);
  const swarms = 20_000; // ten chunks of class 0 (2,048 two-slot blocks each)
  for (let s = 0; s < swarms; s++) {
    pool.create(s, false);
    pool.insert(endpoint(4, s % ENDPOINTS), false, 1);
  }
  assert.equal(pool.classUsage()[0].chunks, 10);
  gc();
  gc();
  const held = process.memoryUsage().arrayBuffers;
  for (let s = 0; s < swarms; s++) {
    pool.open(s);
    assert.equal(pool.remove(0), true);
  }
  const freed = held - process.memoryUsage().arrayBuffers;
  assert.equal(pool.classUsage()[0].chunks, 1, 'one spare chunk kept');
  // Nine chunks of 2,048 blocks of 24 bytes and their 2,048 owner words.
  assert.ok(freed >= 9 * 2048 * 28, `${freed} bytes given back`);
});
