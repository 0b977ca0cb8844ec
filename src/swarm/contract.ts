/**
 * The SwarmStore contract (STYLE.md example 10): one suite, run against every implementation on
 * real servers (memory in `src/store/memory/contract.test.ts`, Redis and Redis Cluster in
 * `src/store/redis/contract.test.ts`). What a store must do is in `SwarmStore`'s doc comments
 * (`./types.ts`); each case here checks one sentence of it through the public methods only, and
 * awaits every answer, so that synchronous and asynchronous stores run the same code.
 *
 * A store that cannot honour a case lists it in `skip` with a reason; the run prints the reason
 * (a visible skip, not a silent pass).
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { Errors, TrackerError } from '../core/errors.ts';
import { AnnounceEvent, type AnnounceRequest, type AnnounceResult, type Family } from '../core/types.ts';
import type { SwarmStore, SwarmStoreOptions } from './types.ts';

/** A store for one case; `dispose` removes whatever it left on a shared server. */
export interface ContractStore {
  store: SwarmStore;
  dispose?: () => Promise<void> | void;
}

export type ContractCase =
  | 'counts'
  | 'completed-once'
  | 'stop'
  | 'selection'
  | 'numwant'
  | 'families'
  | 'peer-ids'
  | 'sweep'
  | 'drop'
  | 'scrape'
  | 'stats'
  | 'ceilings';

export interface ContractOptions {
  /** Cases this store does not run, each with the reason the run prints. */
  skip?: Partial<Record<ContractCase, string>>;
}

/** A copy of an announce result (a store may reuse its peer buffer). */
interface Answer {
  complete: number;
  incomplete: number;
  downloaded: number;
  /** Endpoints as "hex:port", in the order returned. */
  peers: string[];
  /** Peer id (hex) by endpoint, when ids were asked for and known. */
  ids: Map<string, string> | null;
}

const TIMEOUT = 100;

/** Endpoint n of a family: distinct addresses, a port that depends on n. */
export function endpointOf(n: number, family: Family): { ip: Uint8Array; port: number } {
  if (family === 4) return { ip: Uint8Array.of(10, 1, (n >> 8) & 0xff, n & 0xff), port: 6881 + (n % 7) };
  const ip = new Uint8Array(16);
  ip[0] = 0x20;
  ip[1] = 0x01;
  ip[2] = 0x0d;
  ip[3] = 0xb8;
  ip[14] = (n >> 8) & 0xff;
  ip[15] = n & 0xff;
  return { ip, port: 6881 + (n % 7) };
}

const keyOf = (ip: Uint8Array, port: number) => `${Buffer.from(ip).toString('hex')}:${port}`;
const peerIdOf = (n: number, family: Family) => {
  const id = Buffer.alloc(20, n & 0xff);
  id.write(`-CT${family}0-`, 0, 'latin1');
  id.writeUInt16BE(n, 18);
  return id;
};

/** Info hash t of a run (salted so that runs sharing a server never meet). */
function hashFor(salt: number, t: number): Uint8Array {
  const h = Buffer.alloc(20, 0xa5);
  h.writeUInt32BE(salt >>> 0, 0);
  h.writeUInt32BE(t >>> 0, 16);
  return h;
}

export function swarmStoreContract(
  name: string,
  create: (opts: SwarmStoreOptions) => ContractStore | Promise<ContractStore>,
  options: ContractOptions = {},
): void {
  const skip = options.skip ?? {};
  let salt = (Math.random() * 0x7fffffff) >>> 0;

  describe(`SwarmStore contract: ${name}`, () => {
    const open: ContractStore[] = [];
    after(async () => {
      for (const c of open) {
        await c.store.close();
        await c.dispose?.();
      }
    });

    const cases = (id: ContractCase, title: string, body: (h: Harness) => Promise<void>) => {
      const reason = skip[id];
      if (reason !== undefined) {
        test(`${title} (SKIPPED for ${name}: ${reason})`, { skip: reason }, () => {});
        return;
      }
      test(title, async () => {
        salt++;
        const limits = id === 'ceilings' ? { maxPeers: 3, maxTorrents: 2 } : {};
        const c = await create({ peerTimeout: TIMEOUT, ...limits });
        open.push(c);
        await body(new Harness(c.store, salt));
      });
    };

    cases('counts', 'counts are exact and exclude the requester; scrape agrees', async (h) => {
      for (let n = 0; n < 3; n++) await h.announce(0, n, { seeder: true });
      for (let n = 3; n < 8; n++) await h.announce(0, n, { seeder: false });
      const a = await h.announce(0, 8, { seeder: false });
      assert.deepEqual([a.complete, a.incomplete, a.downloaded], [3, 5, 0], 'a new peer sees the others');
      // An update of a held peer does not count the requester itself.
      const b = await h.announce(0, 3, { seeder: false });
      assert.deepEqual([b.complete, b.incomplete], [3, 5], 'a held leecher sees the others only');
      const c = await h.announce(0, 0, { seeder: true });
      assert.deepEqual([c.complete, c.incomplete], [2, 6], 'a held seeder sees the others only');
      // A leecher becoming a seeder moves between the counts.
      await h.announce(0, 4, { seeder: true, event: AnnounceEvent.completed });
      assert.deepEqual(await h.scrape(0), { complete: 4, incomplete: 5, downloaded: 1 });
    });

    cases('completed-once', 'a completion counts once per peer', async (h) => {
      await h.announce(0, 1, { seeder: false });
      await h.announce(0, 1, { seeder: true, event: AnnounceEvent.completed });
      const again = await h.announce(0, 1, { seeder: true, event: AnnounceEvent.completed });
      assert.equal(again.downloaded, 1, 'the same peer completing twice counts once');
      // A peer first seen with event=completed counts too.
      const other = await h.announce(0, 2, { seeder: true, event: AnnounceEvent.completed });
      assert.equal(other.downloaded, 2);
      await h.announce(0, 2, { seeder: true });
      assert.equal((await h.scrape(0)).downloaded, 2);
    });

    cases('stop', 'event=stopped removes the peer at once and frees an empty swarm', async (h) => {
      await h.announce(0, 1, { seeder: true, event: AnnounceEvent.completed });
      await h.announce(0, 2, { seeder: false });
      const s = await h.announce(0, 2, { seeder: false, event: AnnounceEvent.stopped });
      assert.deepEqual([s.complete, s.incomplete, s.downloaded, s.peers.length], [1, 0, 1, 0]);
      assert.deepEqual(await h.scrape(0), { complete: 1, incomplete: 0, downloaded: 1 });
      const seen = await h.announce(0, 3, { seeder: false, numWant: 50 });
      assert.deepEqual(seen.peers, [h.key(1, 4)], 'the stopped peer is never handed out');
      await h.announce(0, 3, { seeder: false, event: AnnounceEvent.stopped });
      await h.announce(0, 1, { seeder: true, event: AnnounceEvent.stopped });
      assert.deepEqual(await h.scrape(0), { complete: 0, incomplete: 0, downloaded: 0 }, 'swarm freed');
      assert.equal((await h.all()).size, 0, 'not in a full scrape');
      // A stop from a peer the store does not hold changes nothing (and starts no swarm).
      const unknown = await h.announce(1, 9, { seeder: false, event: AnnounceEvent.stopped });
      assert.deepEqual([unknown.complete, unknown.incomplete, unknown.peers.length], [0, 0, 0]);
      assert.equal((await h.all()).size, 0);
    });

    cases('selection', 'seeders get leechers only; never the requester; no duplicates', async (h) => {
      for (let n = 0; n < 6; n++) await h.announce(0, n, { seeder: true });
      for (let n = 6; n < 16; n++) await h.announce(0, n, { seeder: false });
      const leechers = new Set(Array.from({ length: 10 }, (_, i) => h.key(6 + i, 4)));
      for (let round = 0; round < 5; round++) {
        const s = await h.announce(0, 0, { seeder: true, numWant: 50 });
        assert.deepEqual(new Set(s.peers), leechers, 'a seeder gets every leecher and no seeder');
        assert.equal(s.peers.length, 10, 'no duplicates');
        const few = await h.announce(0, 1, { seeder: true, numWant: 4 });
        assert.equal(few.peers.length, 4);
        assert.equal(new Set(few.peers).size, 4, 'no duplicates');
        for (const p of few.peers) assert.ok(leechers.has(p), 'leechers only');
        const l = await h.announce(0, 6, { seeder: false, numWant: 50 });
        assert.equal(l.peers.length, 15, 'a leecher gets seeders and leechers');
        assert.equal(new Set(l.peers).size, 15, 'no duplicates');
        assert.ok(!l.peers.includes(h.key(6, 4)), 'never the requester');
        const lf = await h.announce(0, 7, { seeder: false, numWant: 14 });
        assert.equal(new Set(lf.peers).size, 14);
        assert.ok(!lf.peers.includes(h.key(7, 4)), 'never the requester');
      }
      // A leecher that becomes a seeder is not sent to itself from the leechers it left.
      const became = await h.announce(0, 8, { seeder: true, numWant: 50 });
      assert.ok(!became.peers.includes(h.key(8, 4)));
      assert.equal(became.peers.length, 9);
      // Alone in its swarm: nobody.
      assert.deepEqual((await h.announce(1, 0, { seeder: false, numWant: 50 })).peers, []);
      assert.deepEqual((await h.announce(1, 0, { seeder: false, numWant: 50 })).peers, []);
    });

    cases('numwant', 'numwant: exactly min(numwant, candidates), a random choice', async (h) => {
      for (let n = 0; n < 40; n++) await h.announce(0, n, { seeder: n % 2 === 0 });
      const seen = new Set<string>();
      for (const want of [0, 1, 7, 25, 39, 100]) {
        const a = await h.announce(0, 100, { seeder: false, numWant: want });
        assert.equal(a.peers.length, Math.min(want, 40), `numwant ${want}`);
        assert.equal(new Set(a.peers).size, a.peers.length, 'no duplicates');
        for (const p of a.peers) seen.add(p);
      }
      for (let i = 0; i < 20; i++)
        for (const p of (await h.announce(0, 101, { seeder: false, numWant: 5 })).peers) seen.add(p);
      // 20 draws of 5 out of 41: a fixed prefix would show about 5 peers, a random choice most of them.
      assert.ok(seen.size > 30, `random selection reaches most peers (${seen.size})`);
      const stopped = await h.announce(0, 100, { seeder: false, numWant: 50, event: AnnounceEvent.stopped });
      assert.equal(stopped.peers.length, 0, 'a stop gets no peers');
    });

    cases('families', 'IPv4 and IPv6: peers of the requester family, 6 and 18 bytes', async (h) => {
      for (let n = 0; n < 4; n++) await h.announce(0, n, { seeder: false, family: 4 });
      for (let n = 0; n < 3; n++) await h.announce(0, n, { seeder: true, family: 6 });
      const v4 = await h.announce(0, 10, { seeder: false, family: 4, numWant: 50 });
      assert.deepEqual([v4.complete, v4.incomplete], [3, 4], 'counts cover both families');
      assert.deepEqual(new Set(v4.peers), new Set([0, 1, 2, 3].map((n) => h.key(n, 4))));
      const v6 = await h.announce(0, 10, { seeder: false, family: 6, numWant: 50 });
      assert.deepEqual([v6.complete, v6.incomplete], [3, 5]);
      assert.deepEqual(new Set(v6.peers), new Set([0, 1, 2].map((n) => h.key(n, 6))));
      assert.equal(h.lastStride, 18, 'IPv6 records are 18 bytes');
      // The same address and port in another family is another peer.
      const stats = await h.store.stats();
      assert.deepEqual([stats.peers4, stats.peers6, stats.torrents], [5, 4, 1]);
      await h.announce(0, 10, { seeder: false, family: 6, event: AnnounceEvent.stopped });
      assert.deepEqual(await h.scrape(0), { complete: 3, incomplete: 5, downloaded: 0 });
    });

    cases('peer-ids', 'compact=0: peer ids of peers announcing after the first such request', async (h) => {
      await h.announce(0, 1, { seeder: false, wantIds: true, numWant: 0 });
      await h.announce(0, 2, { seeder: true, wantIds: true, numWant: 0 });
      await h.announce(0, 3, { seeder: false, family: 6, wantIds: true, numWant: 0 });
      await h.announce(0, 4, { seeder: false, family: 6 });
      const a = await h.announce(0, 5, { seeder: false, wantIds: true, numWant: 50 });
      assert.ok(a.ids !== null);
      assert.equal(a.ids.size, 2);
      assert.equal(a.ids.get(h.key(1, 4)), Buffer.from(peerIdOf(1, 4)).toString('hex'));
      assert.equal(a.ids.get(h.key(2, 4)), Buffer.from(peerIdOf(2, 4)).toString('hex'));
      const b = await h.announce(0, 5, { seeder: false, family: 6, wantIds: true, numWant: 50 });
      assert.equal(b.ids?.get(h.key(3, 6)), Buffer.from(peerIdOf(3, 6)).toString('hex'));
      assert.equal(b.ids?.get(h.key(4, 6)), Buffer.from(peerIdOf(4, 6)).toString('hex'));
      // compact=1 answers carry no ids.
      assert.equal((await h.announce(0, 6, { seeder: false, numWant: 50 })).ids, null);
    });

    cases('drop', 'dropSwarms removes every peer of the named swarms, and only those', async (h) => {
      const drop = h.store.dropSwarms;
      assert.ok(drop !== undefined, 'the store drops swarms');
      for (let n = 0; n < 4; n++) await h.announce(0, n, { seeder: n === 0, event: AnnounceEvent.completed });
      for (let n = 0; n < 3; n++) await h.announce(0, 10 + n, { seeder: false, family: 6 });
      for (let n = 0; n < 2; n++) await h.announce(1, n, { seeder: false });
      await h.announce(2, 0, { seeder: true });
      // Swarm 3 was never announced: skipped.
      assert.equal(await drop.call(h.store, [h.hash(0), h.hash(2), h.hash(3)]), 4 + 3 + 1);
      assert.deepEqual(await h.scrape(0), { complete: 0, incomplete: 0, downloaded: 0 });
      assert.deepEqual(await h.scrape(2), { complete: 0, incomplete: 0, downloaded: 0 });
      assert.deepEqual(await h.scrape(1), { complete: 0, incomplete: 2, downloaded: 0 });
      const s = await h.store.stats();
      assert.deepEqual([s.torrents, s.peers, s.seeders, s.peers4, s.peers6], [1, 2, 0, 2, 0]);
      assert.equal(await drop.call(h.store, [h.hash(0)]), 0, 'removed once');
      // A new peer of a dropped swarm starts it afresh: none of the old peers is handed out.
      assert.deepEqual((await h.announce(0, 20, { seeder: false })).peers, []);
    });

    cases('sweep', 'expiry removes exactly the peers not seen for peer_timeout', async (h) => {
      for (let n = 0; n < 6; n++) await h.announce(0, n, { seeder: n < 2, at: 1000 });
      for (let n = 0; n < 3; n++) await h.announce(1, n, { seeder: false, family: 6, at: 1000 });
      await h.announce(1, 9, { seeder: false, at: 1000 });
      await h.announce(0, 3, { seeder: false, at: 1000 + TIMEOUT - 1 });
      await h.announce(0, 0, { seeder: true, event: AnnounceEvent.completed, at: 1000 + TIMEOUT - 1 });
      await h.announce(2, 0, { seeder: true, at: 1000 + TIMEOUT - 1 });
      // Not yet: last seen 1000, now 1000 + TIMEOUT - 1.
      assert.equal(await h.sweep(1000 + TIMEOUT - 1), 0);
      // At 1000 + TIMEOUT the peers last seen at 1000 are gone, the two refreshed ones stay.
      const removed = await h.sweep(1000 + TIMEOUT);
      assert.equal(removed, 4 + 4);
      assert.equal(await h.sweep(1000 + TIMEOUT), 0, 'removed once');
      assert.deepEqual(await h.scrape(0), { complete: 1, incomplete: 1, downloaded: 1 });
      assert.deepEqual(await h.scrape(1), { complete: 0, incomplete: 0, downloaded: 0 });
      const s = await h.store.stats();
      assert.deepEqual([s.torrents, s.peers, s.seeders, s.leechers, s.peers4, s.peers6], [2, 3, 2, 1, 3, 0]);
      assert.deepEqual(
        new Set((await h.announce(0, 50, { seeder: false, numWant: 50, at: 1000 + TIMEOUT })).peers),
        new Set([h.key(0, 4), h.key(3, 4)]),
      );
      const all = await h.all();
      assert.equal(all.size, 2, 'swarm 1 is freed');
    });

    cases(
      'scrape',
      'scrape keeps order, unknown hashes count zero; full scrape lists live swarms',
      async (h) => {
        await h.announce(0, 1, { seeder: true });
        await h.announce(0, 2, { seeder: false });
        await h.announce(2, 1, { seeder: false, event: AnnounceEvent.completed });
        await h.announce(2, 3, { seeder: true, family: 6, event: AnnounceEvent.completed });
        const entries = await h.store.scrape([h.hash(2), h.hash(1), h.hash(0)], 1000);
        assert.deepEqual(entries, [
          { complete: 1, incomplete: 1, downloaded: 2 },
          { complete: 0, incomplete: 0, downloaded: 0 },
          { complete: 1, incomplete: 1, downloaded: 0 },
        ]);
        const all = await h.all();
        assert.deepEqual(
          all,
          new Map([
            [Buffer.from(h.hash(0)).toString('hex'), '1/1/0'],
            [Buffer.from(h.hash(2)).toString('hex'), '1/1/2'],
          ]),
        );
      },
    );

    cases('stats', 'stats are exact after joins, moves, stops and completions', async (h) => {
      for (let t = 0; t < 5; t++)
        for (let n = 0; n < 4; n++) await h.announce(t, n, { seeder: n === 0, family: n === 3 ? 6 : 4 });
      await h.announce(0, 1, { seeder: true, event: AnnounceEvent.completed });
      await h.announce(1, 0, { seeder: false });
      for (let n = 0; n < 4; n++)
        await h.announce(4, n, { seeder: false, family: n === 3 ? 6 : 4, event: AnnounceEvent.stopped });
      const s = await h.store.stats();
      assert.deepEqual({ ...s }, { torrents: 4, peers: 16, seeders: 4, leechers: 12, peers4: 12, peers6: 4 });
    });

    cases('ceilings', 'max_peers and max_torrents refuse new peers and torrents only', async (h) => {
      const ok = async (t: number, n: number, o: Partial<AnnounceOpts> = {}) =>
        assert.ok(!((await h.raw(t, n, { seeder: false, ...o })) instanceof TrackerError));
      await ok(0, 1);
      await ok(0, 2);
      await ok(1, 3, { family: 6 });
      assert.equal(await h.raw(0, 4, { seeder: false }), Errors.trackerFull, 'a new peer');
      assert.equal(await h.raw(2, 4, { seeder: false }), Errors.trackerFull, 'a new torrent');
      await ok(0, 1, { seeder: true, event: AnnounceEvent.completed });
      await ok(2, 4, { event: AnnounceEvent.stopped });
      await ok(1, 3, { family: 6, event: AnnounceEvent.stopped });
      await ok(0, 4);
      assert.equal(await h.raw(2, 3, { seeder: false }), Errors.trackerFull, 'at max_peers');
    });
  });
}

/**
 * An announce of endpoint n (`endpointOf`) of `o.family` (4 if absent) into the swarm of
 * `infoHash`, with its contract peer id; numwant 50 if absent.
 */
export function requestOf(infoHash: Uint8Array, n: number, o: Omit<AnnounceOpts, 'at'>): AnnounceRequest {
  const family = o.family ?? 4;
  const e = endpointOf(n, family);
  return {
    infoHash,
    peerId: peerIdOf(n, family),
    family,
    ip: e.ip,
    port: e.port,
    uploaded: 0,
    downloaded: 0,
    left: o.seeder ? 0 : 1000,
    event: o.event ?? AnnounceEvent.none,
    numWant: o.numWant ?? 50,
    wantPeerIds: o.wantIds ?? false,
  };
}

export interface AnnounceOpts {
  seeder: boolean;
  family?: Family;
  event?: AnnounceEvent;
  numWant?: number;
  wantIds?: boolean;
  at?: number;
}

class Harness {
  readonly store: SwarmStore;
  #salt: number;
  lastStride = 0;
  constructor(store: SwarmStore, salt: number) {
    this.store = store;
    this.#salt = salt;
  }

  hash(t: number): Uint8Array {
    return hashFor(this.#salt, t);
  }

  key(n: number, family: Family): string {
    const e = endpointOf(n, family);
    return keyOf(e.ip, e.port);
  }

  request(t: number, n: number, o: AnnounceOpts): AnnounceRequest {
    return requestOf(this.hash(t), n, o);
  }

  async raw(t: number, n: number, o: AnnounceOpts): Promise<AnnounceResult | TrackerError> {
    return await this.store.announce(this.request(t, n, o), o.at ?? 1000);
  }

  async announce(t: number, n: number, o: AnnounceOpts): Promise<Answer> {
    const r = await this.raw(t, n, o);
    assert.ok(
      !(r instanceof TrackerError),
      `announce refused: ${r instanceof TrackerError ? r.message : ''}`,
    );
    const stride = (o.family ?? 4) === 4 ? 6 : 18;
    this.lastStride = stride;
    assert.ok(r.peers.length >= r.peerCount * stride, 'records of the family stride');
    const peers: string[] = [];
    for (let i = 0; i < r.peerCount; i++) {
      const rec = r.peers.subarray(i * stride, (i + 1) * stride);
      peers.push(keyOf(rec.subarray(0, stride - 2), (rec[stride - 2] << 8) | rec[stride - 1]));
    }
    let ids: Map<string, string> | null = null;
    if (r.peerIds !== null) {
      ids = new Map();
      for (let i = 0; i < r.peerCount; i++)
        if (r.peerIdKnown?.[i] === 1)
          ids.set(peers[i], Buffer.from(r.peerIds.subarray(i * 20, i * 20 + 20)).toString('hex'));
    }
    return { complete: r.complete, incomplete: r.incomplete, downloaded: r.downloaded, peers, ids };
  }

  async scrape(t: number) {
    const [e] = await this.store.scrape([this.hash(t)], 1000);
    return { ...e };
  }

  /** Sweeps until nothing more is removed; the number removed. */
  async sweep(now: number): Promise<number> {
    let total = 0;
    for (;;) {
      const n = await this.store.sweep(now, 1_000_000);
      total += n;
      if (n === 0) return total;
    }
  }

  /** This run's swarms in a full scrape, as hex → "complete/incomplete/downloaded". */
  async all(): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    const prefix = Buffer.from(this.hash(0).subarray(0, 4)).toString('hex');
    for (const [h, e] of await this.store.scrapeAll(1000)) {
      const hex = Buffer.from(h).toString('hex');
      if (hex.startsWith(prefix)) out.set(hex, `${e.complete}/${e.incomplete}/${e.downloaded}`);
    }
    return out;
  }
}
