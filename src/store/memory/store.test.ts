/**
 * What model.test.ts does not reach: swarms above INDEX_AT peers (index built and dropped,
 * classes grown and shrunk), IPv4 and IPv6 peers in one swarm, peer ids (compact=0), thousands
 * of swarms (the info hash table grows, shrinks and deletes), and sweeps with small budgets that
 * resume across calls.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Errors, TrackerError } from '../../core/errors.ts';
import { xorshift } from '../../core/random.ts';
import { AnnounceEvent, type AnnounceRequest, type Family } from '../../core/types.ts';
import { MemorySwarmStore } from './memory-store.ts';

interface ModelPeer {
  seeder: boolean;
  lastSeen: number;
  counted: boolean;
  idKnown: boolean;
}
interface ModelSwarm {
  peers: Map<number, ModelPeer>;
  downloaded: number;
  wantIds: boolean;
}

interface Endpoint {
  family: Family;
  ip: Uint8Array;
  port: number;
  key: string;
}

/** Endpoint n: every third is IPv6; IPv6 addresses share 14 bytes, IPv4 ones 3. */
function endpoint(n: number): Endpoint {
  const v6 = n % 3 === 0;
  const ip = v6 ? new Uint8Array(16).fill(0x20) : Uint8Array.of(10, 0, 0, 0);
  if (v6) {
    ip[14] = n >> 8;
    ip[15] = n & 0xff;
  } else ip[3] = (n >> 2) & 0xff;
  const port = 6881 + (n & 3);
  return { family: v6 ? 6 : 4, ip, port, key: `${Buffer.from(ip).toString('hex')}:${port}` };
}
const recordKey = (rec: Uint8Array) =>
  `${Buffer.from(rec.subarray(0, rec.length - 2)).toString('hex')}:${(rec[rec.length - 2] << 8) | rec[rec.length - 1]}`;

const ENDPOINTS = 96;
const EPS = Array.from({ length: ENDPOINTS }, (_, n) => endpoint(n));
const BY_KEY = new Map(EPS.map((e, n) => [e.key, n]));
const peerIdOf = (n: number) => new Uint8Array(20).fill(n + 1);

/** Info hashes of torrents t share their first 19 bytes. */
function hashOf(t: number): Uint8Array {
  const h = new Uint8Array(20).fill(0x5a);
  h[19] = t;
  return h;
}

function request(
  t: number,
  n: number,
  o: { seeder: boolean; event: AnnounceEvent; numWant: number; wantPeerIds: boolean },
): AnnounceRequest {
  const e = EPS[n];
  return {
    infoHash: hashOf(t),
    peerId: peerIdOf(n),
    family: e.family,
    ip: e.ip,
    port: e.port,
    uploaded: 0,
    downloaded: 0,
    left: o.seeder ? 0 : 100,
    event: o.event,
    numWant: o.numWant,
    wantPeerIds: o.wantPeerIds,
  };
}

const TIMEOUT = 50;

const event = fc.constantFrom(
  AnnounceEvent.none,
  AnnounceEvent.started,
  AnnounceEvent.completed,
  AnnounceEvent.stopped,
);
const op = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('announce' as const),
      torrent: fc.integer({ min: 0, max: 2 }),
      endpoint: fc.integer({ min: 0, max: ENDPOINTS - 1 }),
      seeder: fc.boolean(),
      event,
      numWant: fc.integer({ min: 0, max: 80 }),
      wantPeerIds: fc.integer({ min: 0, max: 4 }).map((v) => v === 0),
    }),
  },
  {
    // Many endpoints at once (joining or leaving): swarms cross INDEX_AT and several classes.
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('burst' as const),
      torrent: fc.integer({ min: 0, max: 2 }),
      from: fc.integer({ min: 0, max: ENDPOINTS - 1 }),
      count: fc.integer({ min: 1, max: ENDPOINTS }),
      seeder: fc.boolean(),
      event,
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('advance' as const), seconds: fc.integer({ min: 1, max: 40 }) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('sweep' as const), budget: fc.integer({ min: 1, max: 50 }) }),
  },
);

/**
 * Memory ceilings for a run: none in three runs of four (so that swarms grow big), else small
 * limits on peers, torrents and one swarm's peers of one family, so that those runs keep hitting
 * them.
 */
const ceiling = fc.oneof(
  { weight: 3, arbitrary: fc.constant(null) },
  {
    weight: 1,
    arbitrary: fc.record({
      maxPeers: fc.integer({ min: 1, max: 80 }),
      maxTorrents: fc.integer({ min: 1, max: 3 }),
      maxTablePeers: fc.integer({ min: 1, max: 40 }),
    }),
  },
);

test('property: big mixed-family swarms with peer ids match a reference model (and its ceilings)', () => {
  let biggest = 0;
  let mixed = 0;
  let refused = 0;
  fc.assert(
    fc.property(fc.array(op, { maxLength: 200, size: 'max' }), fc.integer(), ceiling, (ops, seed, limits) => {
      const store = new MemorySwarmStore({ peerTimeout: TIMEOUT, random: xorshift(seed | 1), ...limits });
      const model = new Map<number, ModelSwarm>();
      let now = 1000;

      const announce = (
        t: number,
        n: number,
        o: { seeder: boolean; event: AnnounceEvent; numWant: number; wantPeerIds: boolean },
      ) => {
        const e = EPS[n];
        const r = store.announce(request(t, n, o), now);
        const ms = model.get(t);
        // The ceiling refuses a peer the store does not hold (never a stop), and nothing else.
        if (limits !== null && o.event !== AnnounceEvent.stopped && !ms?.peers.has(n)) {
          const held = [...model.values()].reduce((sum, m) => sum + m.peers.size, 0);
          const sameFamily = ms ? [...ms.peers.keys()].filter((pn) => EPS[pn].family === e.family).length : 0;
          if (
            held >= limits.maxPeers ||
            (ms === undefined && model.size >= limits.maxTorrents) ||
            sameFamily >= limits.maxTablePeers
          ) {
            assert.equal(r, Errors.trackerFull, 'refused at the ceiling');
            refused++;
            return;
          }
        }
        assert.ok(!(r instanceof TrackerError), 'below the ceiling, or a peer already held');
        const others = ms ? [...ms.peers].filter(([pn]) => pn !== n) : [];
        const complete = others.filter(([, p]) => p.seeder).length;
        assert.equal(r.complete, complete, 'complete');
        assert.equal(r.incomplete, others.length - complete, 'incomplete');
        const stopped = o.event === AnnounceEvent.stopped;
        const candidates = new Set(
          others
            .filter(([pn, p]) => EPS[pn].family === e.family && (!o.seeder || !p.seeder))
            .map(([pn]) => pn),
        );
        const expected = stopped ? 0 : Math.min(o.numWant, candidates.size);
        assert.equal(r.peerCount, expected, 'peer count');
        const stride = e.family === 4 ? 6 : 18;
        assert.ok(r.peers.length >= r.peerCount * stride);
        assert.equal(r.peerIds !== null, o.wantPeerIds && !stopped && o.numWant > 0, 'ids asked for');
        const seen = new Set<number>();
        for (let i = 0; i < r.peerCount; i++) {
          const pn = BY_KEY.get(recordKey(r.peers.subarray(i * stride, (i + 1) * stride)));
          assert.ok(pn !== undefined && candidates.has(pn), 'a candidate');
          assert.ok(!seen.has(pn), 'no duplicate');
          seen.add(pn);
          if (o.wantPeerIds) {
            // Ids are recorded from the swarm's first compact=0 request on (that request's own too).
            const known = ms!.peers.get(pn)!.idKnown;
            assert.equal(r.peerIdKnown![i] === 1, known, `id of ${pn} known`);
            assert.deepEqual(
              r.peerIds!.subarray(i * 20, i * 20 + 20),
              known ? peerIdOf(pn) : new Uint8Array(20),
              'peer id',
            );
          }
        }
        // A compact=0 stop turns id recording on too, when it reaches a table of its family.
        if (stopped && o.wantPeerIds && ms && [...ms.peers.keys()].some((pn) => EPS[pn].family === e.family))
          ms.wantIds = true;
        if (stopped) {
          assert.equal(r.downloaded, ms?.downloaded ?? 0, 'downloaded (stopped)');
          if (ms) {
            ms.peers.delete(n);
            if (ms.peers.size === 0) model.delete(t);
          }
          return;
        }
        const s = ms ?? { peers: new Map<number, ModelPeer>(), downloaded: 0, wantIds: false };
        model.set(t, s);
        s.wantIds ||= o.wantPeerIds;
        const p = s.peers.get(n) ?? { seeder: o.seeder, lastSeen: now, counted: false, idKnown: false };
        p.seeder = o.seeder;
        p.lastSeen = now;
        p.idKnown ||= s.wantIds;
        if (o.event === AnnounceEvent.completed && !p.counted) {
          p.counted = true;
          s.downloaded++;
        }
        s.peers.set(n, p);
        assert.equal(r.downloaded, s.downloaded, 'downloaded');
        biggest = Math.max(biggest, s.peers.size);
        if (e.family === 6 && [...s.peers.keys()].some((pn) => EPS[pn].family === 4)) mixed++;
      };

      for (const o of ops) {
        if (o.kind === 'advance') now += o.seconds;
        else if (o.kind === 'sweep') {
          // Small budgets, resumed until nothing is left to remove (each call advances at least
          // one swarm, so a few calls more than there are swarms cover a whole round).
          for (let i = 0; i < 10; i++) store.sweep(now, o.budget);
          store.sweep(now, 1e9);
          store.sweep(now, 1e9);
          for (const [t, s] of model) {
            for (const [k, p] of s.peers) if (p.lastSeen + TIMEOUT <= now) s.peers.delete(k);
            if (s.peers.size === 0) model.delete(t);
          }
        } else if (o.kind === 'burst') {
          for (let i = 0; i < o.count; i++)
            announce(o.torrent, (o.from + i) % ENDPOINTS, {
              seeder: o.seeder !== (i % 3 === 0),
              event: o.event,
              numWant: 50,
              wantPeerIds: false,
            });
        } else announce(o.torrent, o.endpoint, o);
      }
      for (let t = 0; t < 3; t++) {
        const [e] = store.scrape([hashOf(t)]);
        const peers = [...(model.get(t)?.peers.values() ?? [])];
        assert.equal(e.complete, peers.filter((p) => p.seeder).length, `scrape complete ${t}`);
        assert.equal(e.incomplete, peers.filter((p) => !p.seeder).length, `scrape incomplete ${t}`);
        assert.equal(e.downloaded, model.get(t)?.downloaded ?? 0, `scrape downloaded ${t}`);
      }
      const st = store.stats();
      const all = [...model.values()].flatMap((s) => [...s.peers.keys()]);
      assert.equal(st.torrents, model.size);
      assert.equal(st.peers, all.length);
      assert.equal(st.peers6, all.filter((n) => EPS[n].family === 6).length);
    }),
    { numRuns: 150 },
  );
  // The runs reached what this test is for: swarms far above INDEX_AT, both families in one swarm,
  // and the ceilings.
  assert.ok(biggest >= 60 && mixed > 100, `biggest swarm ${biggest}, mixed announces ${mixed}`);
  assert.ok(refused > 100, `refused at a ceiling ${refused}`);
});

/** Lists a swarm's peers of one family by announcing from a probe endpoint, then stopping it. */
function peersOf(store: MemorySwarmStore, hash: Uint8Array, family: Family): Set<string> {
  const probe: AnnounceRequest = {
    infoHash: hash,
    peerId: new Uint8Array(20),
    family,
    ip: family === 4 ? Uint8Array.of(192, 0, 2, 1) : new Uint8Array(16).fill(0xfe),
    port: 1,
    uploaded: 0,
    downloaded: 0,
    left: 1,
    event: AnnounceEvent.started,
    numWant: 1024,
    wantPeerIds: false,
  };
  const r = store.announce(probe, 0);
  assert.ok(!(r instanceof TrackerError));
  const stride = family === 4 ? 6 : 18;
  const out = new Set<string>();
  // Read before the next call: the store reuses its peer buffer (AnnounceResult.peers).
  for (let i = 0; i < r.peerCount; i++) out.add(recordKey(r.peers.subarray(i * stride, (i + 1) * stride)));
  store.announce({ ...probe, event: AnnounceEvent.stopped }, 0);
  return out;
}

test('property: sweeps with small budgets resume across calls and remove exactly the expired peers', () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.record({
          size: fc.integer({ min: 1, max: 40 }),
          ages: fc.array(fc.integer({ min: 0, max: 100 }), { minLength: 40, maxLength: 40 }),
        }),
        { minLength: 1, maxLength: 120, size: 'max' },
      ),
      fc.integer({ min: 1, max: 30 }),
      fc.array(fc.record({ torrent: fc.nat(), n: fc.nat({ max: ENDPOINTS - 1 }), stop: fc.boolean() }), {
        maxLength: 120,
        size: 'max',
      }),
      (swarms, budget, churn) => {
        const store = new MemorySwarmStore({ peerTimeout: TIMEOUT });
        const now = 200;
        const hash = (t: number) => {
          const h = new Uint8Array(20).fill(7);
          h[0] = t >> 8;
          h[1] = t & 0xff;
          return h;
        };
        // lastSeen per swarm per endpoint
        const model = new Map<number, Map<number, number>>();
        for (const [t, s] of swarms.entries()) {
          const m = new Map<number, number>();
          for (let i = 0; i < s.size; i++) {
            const n = (t * 7 + i * 5) % ENDPOINTS;
            const at = now - s.ages[i];
            const r = request(t, n, {
              seeder: i % 4 === 0,
              event: AnnounceEvent.none,
              numWant: 0,
              wantPeerIds: false,
            });
            store.announce({ ...r, infoHash: hash(t) }, at);
            m.set(n, at);
          }
          model.set(t, m);
        }
        // Small sweeps, with fresh announces and stops landing between them (behind and ahead of
        // the cursor; none of them is expired). Each call covers at least one swarm, so this many
        // calls make a whole round only if every call resumes where the last one stopped.
        for (let call = 0; call < swarms.length + 2; call++) {
          store.sweep(now, budget);
          const c = churn[call];
          if (c === undefined) continue;
          const t = c.torrent % swarms.length;
          const r = request(t, c.n, {
            seeder: false,
            event: c.stop ? AnnounceEvent.stopped : AnnounceEvent.started,
            numWant: 0,
            wantPeerIds: false,
          });
          store.announce({ ...r, infoHash: hash(t) }, now);
          if (c.stop) model.get(t)!.delete(c.n);
          else model.get(t)!.set(c.n, now);
        }
        for (const m of model.values()) for (const [n, at] of m) if (at <= now - TIMEOUT) m.delete(n);
        assert.equal(store.sweep(now, 1e9), 0, 'nothing left for a full sweep');
        let peers = 0;
        let torrents = 0;
        for (const [t, m] of model) {
          peers += m.size;
          if (m.size > 0) torrents++;
          for (const family of [4, 6] as const) {
            const want = new Set(
              [...m.keys()].filter((n) => EPS[n].family === family).map((n) => EPS[n].key),
            );
            assert.deepEqual(peersOf(store, hash(t), family), want, `peers of swarm ${t}, IPv${family}`);
          }
        }
        assert.equal(store.stats().peers, peers);
        assert.equal(store.stats().torrents, torrents);
      },
    ),
    { numRuns: 60 },
  );
});

test('sweep: one call visits about its budget and the next resumes where it stopped', () => {
  const store = new MemorySwarmStore({ peerTimeout: 10 });
  // 50 swarms of 4 peers; all expired at t=100.
  for (let t = 0; t < 50; t++)
    for (let i = 0; i < 4; i++)
      store.announce(
        {
          ...request(0, i * 3 + 1, {
            seeder: false,
            event: AnnounceEvent.none,
            numWant: 0,
            wantPeerIds: false,
          }),
          infoHash: hashOf(t),
        },
        50,
      );
  assert.equal(store.stats().peers, 200);
  const removedPerCall: number[] = [];
  for (let i = 0; i < 16; i++) removedPerCall.push(store.sweep(100, 10));
  // Budget 10 over swarms of 4: three swarms (12 peers) a call, resuming each time.
  assert.deepEqual(removedPerCall, Array(16).fill(12));
  assert.equal(store.stats().peers, 8);
  assert.equal(store.sweep(100, 10), 8);
  assert.equal(store.stats().torrents, 0);
});

test('thousands of swarms with similar info hashes: scrape, full scrape and stats stay exact', () => {
  const store = new MemorySwarmStore({ peerTimeout: 1000 });
  const ref = new Map<string, { seeders: number; leechers: number }>();
  let rnd = 12345;
  const next = () => {
    rnd = (Math.imul(rnd, 1103515245) + 12345) >>> 0;
    return rnd >>> 8;
  };
  const hash = (t: number) => {
    const h = new Uint8Array(20).fill(0xcc);
    h[18] = t >> 8;
    h[19] = t & 0xff;
    return h;
  };
  // Waves of joins and leaves over 6000 torrents (two peers each at most: one v4, one v6).
  for (let wave = 0; wave < 4; wave++) {
    for (let i = 0; i < 9000; i++) {
      const t = next() % 6000;
      const n = next() % 2 === 0 ? 1 : 3; // endpoint 1 is IPv4, 3 is IPv6
      const seeder = next() % 2 === 0;
      const stop = wave % 2 === 1 ? next() % 4 !== 0 : next() % 5 === 0;
      const key = Buffer.from(hash(t)).toString('hex');
      store.announce(
        {
          ...request(0, n, {
            seeder,
            event: stop ? AnnounceEvent.stopped : AnnounceEvent.none,
            numWant: 5,
            wantPeerIds: false,
          }),
          infoHash: hash(t),
        },
        wave,
      );
      const peers = ref.get(key) ?? { seeders: 0, leechers: 0 };
      // Track each torrent's two possible peers by bit: seeders bit n, leechers bit n.
      const bit = n === 1 ? 1 : 2;
      peers.seeders &= ~bit;
      peers.leechers &= ~bit;
      if (!stop) {
        if (seeder) peers.seeders |= bit;
        else peers.leechers |= bit;
      }
      if (peers.seeders === 0 && peers.leechers === 0) ref.delete(key);
      else ref.set(key, peers);
    }
    const bits = (b: number) => (b & 1) + ((b >> 1) & 1);
    assert.equal(store.stats().torrents, ref.size, `torrents after wave ${wave}`);
    const all = new Map<string, string>();
    for (const [h, e] of store.scrapeAll())
      all.set(Buffer.from(h).toString('hex'), `${e.complete}/${e.incomplete}`);
    assert.equal(all.size, ref.size);
    for (const [k, p] of ref) {
      assert.equal(all.get(k), `${bits(p.seeders)}/${bits(p.leechers)}`, `full scrape of ${k}`);
      const [e] = store.scrape([Buffer.from(k, 'hex')]);
      assert.equal(`${e.complete}/${e.incomplete}`, `${bits(p.seeders)}/${bits(p.leechers)}`);
    }
  }
});

test('ceiling: new peers and new torrents are refused at the limit; peers held keep announcing', () => {
  const store = new MemorySwarmStore({ peerTimeout: TIMEOUT, maxPeers: 3, maxTorrents: 2 });
  const at = (t: number, n: number, event: AnnounceEvent = AnnounceEvent.none, seeder = false) =>
    store.announce(request(t, n, { seeder, event, numWant: 10, wantPeerIds: false }), 1000);
  // EPS: endpoints 1, 2, 4 are IPv4; 3 is IPv6.
  assert.ok(!(at(0, 1) instanceof TrackerError));
  assert.ok(!(at(0, 2) instanceof TrackerError));
  assert.ok(!(at(1, 3) instanceof TrackerError));
  assert.equal(store.stats().peers, 3);
  // Full: a new peer in a held swarm, a new family's table, and a new torrent are all refused
  // and leave nothing behind.
  assert.equal(at(0, 4), Errors.trackerFull);
  assert.equal(at(1, 4), Errors.trackerFull, 'the IPv4 table of a swarm that has only IPv6 peers');
  assert.equal(at(2, 4), Errors.trackerFull);
  assert.deepEqual([store.stats().peers, store.stats().torrents, [...store.scrapeAll()].length], [3, 2, 2]);
  // Peers held: updates, becoming a seeder, completing, and stopping are never refused.
  assert.ok(!(at(0, 1, AnnounceEvent.completed, true) instanceof TrackerError));
  assert.ok(!(at(0, 2, AnnounceEvent.started) instanceof TrackerError));
  assert.ok(!(at(2, 4, AnnounceEvent.stopped) instanceof TrackerError), 'a stop is never refused');
  assert.ok(!(at(1, 3, AnnounceEvent.stopped) instanceof TrackerError));
  // Places are free again: a new peer enters; then, at max_peers, a new torrent is refused though
  // max_torrents is not reached.
  assert.ok(!(at(0, 4) instanceof TrackerError));
  assert.deepEqual([store.stats().peers, store.stats().torrents], [3, 1]);
  assert.equal(at(2, 3), Errors.trackerFull);
});
