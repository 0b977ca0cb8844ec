/**
 * Model-based property test: random announces, stops, clock moves and sweeps applied to the
 * MemorySwarmStore and to a plain reference model give the same swarms, counts and stats, and
 * every peer list is a valid selection (right family, no duplicates, never the requester,
 * leechers only for a seeder, exactly min(numWant, candidates) peers).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { TrackerError } from '../../core/errors.ts';
import { xorshift } from '../../core/random.ts';
import { AnnounceEvent, type AnnounceRequest } from '../../core/types.ts';
import { MemorySwarmStore } from './memory-store.ts';

interface ModelPeer {
  seeder: boolean;
  lastSeen: number;
  counted: boolean;
  family: 4 | 6;
}
interface ModelSwarm {
  peers: Map<string, ModelPeer>;
  downloaded: number;
}

const TIMEOUT = 50;

// A small pool of endpoints, IPv4 and IPv6, so that sequences revisit peers.
const ENDPOINTS: { family: 4 | 6; ip: Uint8Array; port: number }[] = [];
for (let i = 0; i < 12; i++) {
  const v6 = i % 4 === 0;
  const ip = v6
    ? new Uint8Array(16).fill(0).map((_, j) => (j === 15 ? i : j === 0 ? 0x20 : 0))
    : Uint8Array.of(10, 0, i >> 3, 1 + (i & 7));
  ENDPOINTS.push({ family: v6 ? 6 : 4, ip, port: 1000 + (i % 3) });
}
const keyOf = (e: { ip: Uint8Array; port: number }) => `${Buffer.from(e.ip).toString('hex')}:${e.port}`;
const recKey = (rec: Uint8Array) =>
  `${Buffer.from(rec.subarray(0, rec.length - 2)).toString('hex')}:${(rec[rec.length - 2] << 8) | rec[rec.length - 1]}`;

const op = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({
      kind: fc.constant('announce' as const),
      torrent: fc.integer({ min: 0, max: 2 }),
      endpoint: fc.integer({ min: 0, max: ENDPOINTS.length - 1 }),
      seeder: fc.boolean(),
      event: fc.constantFrom(
        AnnounceEvent.none,
        AnnounceEvent.started,
        AnnounceEvent.completed,
        AnnounceEvent.stopped,
      ),
      numWant: fc.integer({ min: 0, max: 30 }),
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

test('property: the memory store matches a reference model', () => {
  fc.assert(
    fc.property(fc.array(op, { maxLength: 300, size: 'max' }), fc.integer(), (ops, seed) => {
      const store = new MemorySwarmStore({ peerTimeout: TIMEOUT, random: xorshift(seed | 1) });
      const model = new Map<number, ModelSwarm>();
      let now = 1000;
      const hashOf = (t: number) => new Uint8Array(20).fill(t + 1);
      for (const o of ops) {
        if (o.kind === 'advance') {
          now += o.seconds;
          continue;
        }
        if (o.kind === 'sweep') {
          // The store may sweep incrementally; run it to completion, then expire the model.
          for (let i = 0; i < 1000 && store.sweep(now, o.budget) > 0; i++);
          store.sweep(now, 1e9);
          for (const [t, s] of model) {
            for (const [k, p] of s.peers) if (p.lastSeen + TIMEOUT <= now) s.peers.delete(k);
            if (s.peers.size === 0) model.delete(t);
          }
          continue;
        }
        const e = ENDPOINTS[o.endpoint];
        const k = keyOf(e);
        const req: AnnounceRequest = {
          infoHash: hashOf(o.torrent),
          peerId: new Uint8Array(20).fill(o.endpoint),
          family: e.family,
          ip: e.ip,
          port: e.port,
          uploaded: 0,
          downloaded: 0,
          left: o.seeder ? 0 : 100,
          event: o.event,
          numWant: o.numWant,
          wantPeerIds: false,
        };
        const r = store.announce(req, now);
        assert.ok(!(r instanceof TrackerError), 'no ceiling: never refused');
        // Model: counts before the announce, without the requester; candidates likewise.
        const ms = model.get(o.torrent);
        const others = ms ? [...ms.peers].filter(([pk]) => pk !== k) : [];
        const complete = others.filter(([, p]) => p.seeder).length;
        assert.equal(r.complete, complete, 'complete');
        assert.equal(r.incomplete, others.length - complete, 'incomplete');
        const candidates = new Set(
          others.filter(([, p]) => p.family === e.family && (!o.seeder || !p.seeder)).map(([pk]) => pk),
        );
        const stride = e.family === 4 ? 6 : 18;
        const expected = o.event === AnnounceEvent.stopped ? 0 : Math.min(o.numWant, candidates.size);
        assert.equal(r.peerCount, expected, 'peer count');
        assert.ok(r.peers.length >= r.peerCount * stride);
        const seen = new Set<string>();
        for (let i = 0; i < r.peerCount; i++) {
          const pk = recKey(r.peers.subarray(i * stride, (i + 1) * stride));
          assert.ok(candidates.has(pk), `not a candidate: ${pk}`);
          assert.ok(!seen.has(pk), 'duplicate');
          seen.add(pk);
        }
        // Apply to the model.
        if (o.event === AnnounceEvent.stopped) {
          if (ms) {
            ms.peers.delete(k);
            if (ms.peers.size === 0) model.delete(o.torrent);
          }
        } else {
          const s = ms ?? { peers: new Map<string, ModelPeer>(), downloaded: 0 };
          model.set(o.torrent, s);
          const p = s.peers.get(k) ?? { seeder: o.seeder, lastSeen: now, counted: false, family: e.family };
          p.seeder = o.seeder;
          p.lastSeen = now;
          if (o.event === AnnounceEvent.completed && !p.counted) {
            p.counted = true;
            s.downloaded++;
          }
          s.peers.set(k, p);
        }
        if (o.event !== AnnounceEvent.stopped)
          assert.equal(r.downloaded, model.get(o.torrent)!.downloaded, 'downloaded');
      }
      // Final state: scrape and stats agree with the model.
      for (let t = 0; t < 4; t++) {
        const [e] = store.scrape([hashOf(t)]);
        const ms = model.get(t);
        const peers = ms ? [...ms.peers.values()] : [];
        assert.equal(e.complete, peers.filter((p) => p.seeder).length, `scrape complete ${t}`);
        assert.equal(e.incomplete, peers.filter((p) => !p.seeder).length, `scrape incomplete ${t}`);
        if (ms) assert.equal(e.downloaded, ms.downloaded, `scrape downloaded ${t}`);
      }
      const st = store.stats();
      const all = [...model.values()].flatMap((s) => [...s.peers.values()]);
      assert.equal(st.torrents, model.size);
      assert.equal(st.peers, all.length);
      assert.equal(st.seeders, all.filter((p) => p.seeder).length);
      assert.equal(st.peers6, all.filter((p) => p.family === 6).length);
    }),
    { numRuns: 600 },
  );
});

test('tables grow through the size classes and shrink back, finding every peer throughout', () => {
  const store = new MemorySwarmStore({ peerTimeout: 100 });
  const h = new Uint8Array(20).fill(9);
  const req = (port: number, event: AnnounceEvent, left = 1): AnnounceRequest => ({
    infoHash: h,
    peerId: new Uint8Array(20),
    family: 4,
    ip: Uint8Array.of(10, 0, 0, 1),
    port,
    uploaded: 0,
    downloaded: 0,
    left,
    event,
    numWant: 1000,
    wantPeerIds: false,
  });
  for (let p = 1; p <= 300; p++) {
    const r = store.announce(req(p, AnnounceEvent.started, p % 3 ? 1 : 0), 10);
    assert.ok(!(r instanceof TrackerError));
    assert.equal(r.complete + r.incomplete, p - 1);
  }
  for (let p = 1; p <= 300; p++) {
    const r = store.announce(req(p, AnnounceEvent.none, p % 3 ? 1 : 0), 10);
    assert.ok(!(r instanceof TrackerError));
    assert.equal(r.complete + r.incomplete, 299, `re-announce of ${p} finds itself, not a new peer`);
  }
  for (let p = 300; p >= 2; p--) store.announce(req(p, AnnounceEvent.stopped), 10);
  const r = store.announce(req(1, AnnounceEvent.none), 10);
  assert.ok(!(r instanceof TrackerError));
  assert.equal(r.complete + r.incomplete, 0, 'only the requester is left');
  assert.equal(store.stats().peers, 1);
});
