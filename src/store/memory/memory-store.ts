import { Errors, type TrackerError } from '../../core/errors.ts';
import { xorshift } from '../../core/random.ts';
import {
  AnnounceEvent,
  type AnnounceRequest,
  type AnnounceResult,
  type ScrapeEntry,
  type SwarmStats,
} from '../../core/types.ts';
import { COUNTED, MAX_TABLE_PEERS, PeerPool, SEEDER } from '../../swarm/peer-pool.ts';
import type { SwarmStore, SwarmStoreOptions } from '../../swarm/types.ts';
import { SwarmIndex } from './swarm-index.ts';

/**
 * JavaScript heap a peer can cost at most (measured: an IPv6 peer in a swarm with an endpoint
 * index, about 250 bytes of heap besides its typed-array bytes). `max_peers` times this must fit
 * the heap, or enough addresses could exhaust it before the ceiling is reached (compose warns).
 */
export const MAX_HEAP_BYTES_PER_PEER = 260;

/**
 * The default swarm store: everything in this process's memory, answered synchronously.
 *
 * Counts in an announce result exclude the requester: the response is computed before the
 * announce is applied (STYLE.md example 6), which is also what lets the requester never be in
 * its own list.
 *
 * Data model: no JavaScript object per swarm. A swarm is an integer id from `SwarmIndex` (info
 * hash → id, an open-addressing table over the raw 20 bytes), and its state is a row of typed
 * arrays indexed by that id: the info hash and the completion count (`downloaded`, saturating
 * at 2^32 - 1) in the index's record, and in each family's `PeerPool` its table (size class,
 * block, count, leechers: adjacent words) and peers. A swarm is live
 * while it has a table in either family, and is freed (id, index entry, snatch count) when its
 * last peer leaves, as in opentracker without persistence; private mode keeps snatches in the
 * database. Peer ids are kept only for swarms that served a compact=0 request (`#wantIds`).
 *
 * Memory ceiling: at most `maxPeers` peers and `maxTorrents` swarms. A peer the store does not
 * hold yet is refused (`Errors.trackerFull`) when either would be exceeded, before anything is
 * changed; a peer it holds is never refused (its update allocates nothing), and a stop frees a
 * place at once. Measured costs, for choosing the limits (README): about 40 bytes an IPv4 peer
 * and 50 an IPv6 peer in swarms of a few peers, with their swarm; in swarms above INDEX_AT
 * peers the endpoint index adds about 50 (IPv4) or 250 (IPv6, string keys) bytes of JavaScript
 * heap a peer, the worst case being about 340 bytes an IPv6 peer.
 */
export class MemorySwarmStore implements SwarmStore {
  readonly synchronous = true;
  #index = new SwarmIndex();
  /** Swarms that served a compact=0 request (sparse): from then on their peer ids are recorded. */
  #wantIds = new Set<number>();
  #pool4 = new PeerPool(4);
  #pool6 = new PeerPool(6);
  #peerTimeout: number;
  #random: () => number;
  #ep = new Uint8Array(18);
  #out = new Uint8Array(18 * 1024);
  #peers4 = 0;
  #peers6 = 0;
  #seeders = 0;
  /** Next swarm id the sweep visits. */
  #sweepAt = 0;
  #maxPeers: number;
  #maxTorrents: number;
  #maxTablePeers: number;

  /** `maxTablePeers` (tests): fewer than MAX_TABLE_PEERS peers per swarm and family. */
  constructor(opts: SwarmStoreOptions & { random?: () => number; maxTablePeers?: number }) {
    this.#peerTimeout = opts.peerTimeout;
    this.#random = opts.random ?? xorshift((Math.random() * 0x100000000) >>> 0);
    this.#maxPeers = opts.maxPeers ?? Number.POSITIVE_INFINITY;
    this.#maxTorrents = opts.maxTorrents ?? Number.POSITIVE_INFINITY;
    this.#maxTablePeers = Math.min(opts.maxTablePeers ?? MAX_TABLE_PEERS, MAX_TABLE_PEERS);
  }

  announce(req: AnnounceRequest, now: number): AnnounceResult | TrackerError {
    const stopped = req.event === AnnounceEvent.stopped;
    // At the ceiling, a peer the store does not hold yet is refused (below, wherever it shows).
    const full = this.#peers4 + this.#peers6 >= this.#maxPeers;
    let id = this.#index.find(req.infoHash);
    if (id < 0) {
      if (stopped)
        return {
          complete: 0,
          incomplete: 0,
          downloaded: 0,
          peers: EMPTY,
          peerCount: 0,
          peerIds: null,
          peerIdKnown: null,
        };
      if (full || this.#index.size >= this.#maxTorrents) return Errors.trackerFull;
      // A new swarm's completion count (the index's value word) starts at 0.
      id = this.#index.add(req.infoHash);
    }
    const v6 = req.family === 6;
    const pool = v6 ? this.#pool6 : this.#pool4;
    // Counts before this announce is applied (the requester is taken out below).
    let complete = this.#pool4.seedersOf(id) + this.#pool6.seedersOf(id);
    let incomplete = this.#pool4.leechersOf(id) + this.#pool6.leechersOf(id);
    if (!pool.has(id)) {
      // Nothing to remove, and no empty table may be left behind (it would keep the swarm alive).
      if (stopped)
        return {
          complete,
          incomplete,
          downloaded: this.#index.value(id),
          peers: EMPTY,
          peerCount: 0,
          peerIds: null,
          peerIdKnown: null,
        };
      // A new peer (the swarm's first of this family); refused before its table exists.
      if (full) return Errors.trackerFull;
      pool.create(id, this.#wantIds.size !== 0 && this.#wantIds.has(id));
    }
    pool.open(id);
    // Endpoint in wire form.
    const ep = this.#ep;
    const stride = pool.stride;
    ep.set(req.ip, 0);
    ep[stride - 2] = req.port >>> 8;
    ep[stride - 1] = req.port & 0xff;
    let slot = pool.find(ep);
    // A new peer in a table that exists: refused, with nothing changed, at either ceiling.
    if (slot < 0 && !stopped && (full || pool.count >= this.#maxTablePeers)) return Errors.trackerFull;
    if (req.wantPeerIds && !this.#wantIds.has(id)) {
      this.#wantIds.add(id);
      this.#pool4.enableIds(id);
      this.#pool6.enableIds(id);
    }
    const seeder = req.left === 0;
    if (slot >= 0) {
      if ((pool.flagsAt(slot) & SEEDER) !== 0) complete--;
      else incomplete--;
    }

    // Peers for the requester, before it is inserted.
    let peerCount = 0;
    let peers: Uint8Array = EMPTY;
    let peerIds: Uint8Array | null = null;
    let peerIdKnown: Uint8Array | null = null;
    if (!stopped && req.numWant > 0) {
      const want = Math.min(req.numWant, 1024);
      let ids: Uint8Array | null = null;
      if (req.wantPeerIds) {
        ids = new Uint8Array(want * 20);
        peerIdKnown = new Uint8Array(want);
      }
      peerCount = pool.select(
        0,
        seeder ? pool.leechers : pool.count,
        slot,
        want,
        this.#random,
        this.#out,
        ids,
        peerIdKnown,
      );
      // Not copied: the result is read before the store is called again (AnnounceResult.peers).
      peers = this.#out;
      if (ids !== null) peerIds = ids.subarray(0, peerCount * 20);
    }

    // Apply the announce.
    if (stopped) {
      // Read first: removing the last peer frees the swarm and its count.
      const downloaded = this.#index.value(id);
      if (slot >= 0) this.#remove(id, pool, slot);
      return { complete, incomplete, downloaded, peers, peerCount, peerIds, peerIdKnown };
    }
    if (slot < 0) {
      slot = pool.insert(ep, seeder, now);
      if (v6) this.#peers6++;
      else this.#peers4++;
      if (seeder) this.#seeders++;
    } else {
      if (((pool.flagsAt(slot) & SEEDER) !== 0) !== seeder) {
        slot = pool.setSeeder(slot, seeder);
        this.#seeders += seeder ? 1 : -1;
      }
      pool.touch(slot, now);
    }
    // A completion counts once per peer (a peer first seen with event=completed counts too).
    const flags = pool.flagsAt(slot);
    if (req.event === AnnounceEvent.completed && (flags & COUNTED) === 0) {
      pool.setFlags(slot, flags | COUNTED);
      const n = this.#index.value(id);
      if (n !== 0xffffffff) this.#index.setValue(id, n + 1);
    }
    if (pool.hasIds) pool.setPeerId(slot, req.peerId);
    return {
      complete,
      incomplete,
      downloaded: this.#index.value(id),
      peers,
      peerCount,
      peerIds,
      peerIdKnown,
    };
  }

  /**
   * Removes the peer in `slot` of the pool's current table (the swarm's); frees the swarm when
   * that was its last peer. Returns true when the table is gone.
   */
  #remove(id: number, pool: PeerPool, slot: number): boolean {
    if ((pool.flagsAt(slot) & SEEDER) !== 0) this.#seeders--;
    if (pool.family === 6) this.#peers6--;
    else this.#peers4--;
    if (!pool.remove(slot)) return false;
    if (!this.#pool4.has(id) && !this.#pool6.has(id)) {
      this.#index.delete(id);
      if (this.#wantIds.size !== 0) this.#wantIds.delete(id);
    }
    return true;
  }

  #entry(id: number): ScrapeEntry {
    return {
      complete: this.#pool4.seedersOf(id) + this.#pool6.seedersOf(id),
      incomplete: this.#pool4.leechersOf(id) + this.#pool6.leechersOf(id),
      downloaded: this.#index.value(id),
    };
  }

  scrape(infoHashes: readonly Uint8Array[]): ScrapeEntry[] {
    const out: ScrapeEntry[] = new Array(infoHashes.length);
    for (let i = 0; i < infoHashes.length; i++) {
      const id = this.#index.find(infoHashes[i]);
      out[i] = id < 0 ? { complete: 0, incomplete: 0, downloaded: 0 } : this.#entry(id);
    }
    return out;
  }

  *scrapeAll(): Iterable<[Uint8Array, ScrapeEntry]> {
    for (let id = 0; id < this.#index.top; id++)
      if (this.#pool4.has(id) || this.#pool6.has(id)) yield [this.#index.hashOf(id).slice(), this.#entry(id)];
  }

  /**
   * Visits about `budget` peers, resuming at the swarm id where the previous call stopped and
   * wrapping around at most once, removing peers whose last announce is `peerTimeout` or more
   * seconds old. Returns how many were removed. A swarm created behind the cursor (a reused id)
   * waits for the next round, as it would behind a Map iterator.
   */
  sweep(now: number, budget: number): number {
    let removed = 0;
    let visited = 0;
    const cutoff = now - this.#peerTimeout;
    let id = this.#sweepAt;
    // A call starting at the beginning makes one pass; one resuming may wrap once.
    let wrapped = id === 0;
    while (visited < budget) {
      if (id >= this.#index.top) {
        id = 0;
        if (wrapped) break;
        wrapped = true;
        continue;
      }
      for (let f = 0; f < 2; f++) {
        const pool = f === 0 ? this.#pool4 : this.#pool6;
        if (!pool.has(id)) continue;
        pool.open(id);
        const n = pool.count;
        visited += n;
        // Descending: a removal only moves already-visited (higher) slots down.
        for (let i = n - 1; i >= 0; i--) {
          if (pool.lastSeenAt(i) <= cutoff) {
            removed++;
            if (this.#remove(id, pool, i)) break;
          }
        }
      }
      id++;
    }
    this.#sweepAt = id;
    return removed;
  }

  dropSwarms(infoHashes: readonly Uint8Array[]): number {
    let removed = 0;
    for (const hash of infoHashes) {
      const id = this.#index.find(hash);
      if (id < 0) continue;
      for (const pool of [this.#pool4, this.#pool6]) {
        if (!pool.has(id)) continue;
        pool.open(id);
        // Last slot first, as the sweep does; the table goes with its last peer.
        for (let i = pool.count - 1; i >= 0; i--) {
          removed++;
          if (this.#remove(id, pool, i)) break;
        }
      }
    }
    return removed;
  }

  stats(): SwarmStats {
    const peers = this.#peers4 + this.#peers6;
    return {
      torrents: this.#index.size,
      peers,
      seeders: this.#seeders,
      leechers: peers - this.#seeders,
      peers4: this.#peers4,
      peers6: this.#peers6,
    };
  }

  close(): void {
    this.#index = new SwarmIndex();
    this.#wantIds.clear();
    this.#pool4 = new PeerPool(4);
    this.#pool6 = new PeerPool(6);
    this.#sweepAt = 0;
    this.#peers4 = this.#peers6 = this.#seeders = 0;
  }
}

const EMPTY = new Uint8Array(0);
