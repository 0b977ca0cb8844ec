import { binaryString } from '../../core/bytes.ts';
import {
  AnnounceEvent,
  type AnnounceRequest,
  type AnnounceResult,
  type ScrapeEntry,
  type SwarmStats,
} from '../../core/types.ts';
import { COUNTED, PeerPool, PeerTable, SEEDER } from '../../swarm/peer-table.ts';
import type { SwarmStore, SwarmStoreOptions } from '../../swarm/types.ts';

/** One torrent: a peer table per address family, created on demand, and its snatch count. */
class Swarm {
  v4: PeerTable | null = null;
  v6: PeerTable | null = null;
  downloaded = 0;
  /** Set by the first compact=0 request: from then on peer ids are recorded (see PeerTable). */
  wantIds = false;
}

function xorshift(seed: number): () => number {
  let x = seed >>> 0 || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x100000000;
  };
}

/**
 * The default swarm store: everything in this process's memory, answered synchronously.
 *
 * Counts in an announce result exclude the requester: the response is computed before the
 * announce is applied (STYLE.md example 6), which is also what lets the requester never be in
 * its own list. Swarms are keyed by the info hash as a 20-character latin1 string and deleted
 * when their last peer leaves (their snatch count goes with them, as in opentracker without
 * persistence; private mode keeps snatches in the database).
 */
export class MemorySwarmStore implements SwarmStore {
  #swarms = new Map<string, Swarm>();
  #peerTimeout: number;
  #random: () => number;
  #ep = new Uint8Array(18);
  #out = new Uint8Array(18 * 1024);
  #peers4 = 0;
  #peers6 = 0;
  #seeders = 0;
  #sweepIter: Iterator<[string, Swarm]> | null = null;
  #pool4 = new PeerPool(4);
  #pool6 = new PeerPool(6);

  constructor(opts: SwarmStoreOptions & { random?: () => number }) {
    this.#peerTimeout = opts.peerTimeout;
    this.#random = opts.random ?? xorshift((Math.random() * 0x100000000) >>> 0);
  }

  announce(req: AnnounceRequest, now: number): AnnounceResult {
    const key = binaryString(req.infoHash);
    let swarm = this.#swarms.get(key);
    const stopped = req.event === AnnounceEvent.stopped;
    if (swarm === undefined) {
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
      swarm = new Swarm();
      this.#swarms.set(key, swarm);
    }
    const v6 = req.family === 6;
    let table = v6 ? swarm.v6 : swarm.v4;
    if (table === null && stopped) {
      // Nothing to remove, and no empty table may be left behind (it would keep the swarm alive).
      const e = entryOf(swarm);
      return { ...e, peers: EMPTY, peerCount: 0, peerIds: null, peerIdKnown: null };
    }
    if (table === null) {
      table = new PeerTable(v6 ? this.#pool6 : this.#pool4);
      if (swarm.wantIds) table.enablePeerIds();
      if (v6) swarm.v6 = table;
      else swarm.v4 = table;
    }
    if (req.wantPeerIds && !swarm.wantIds) {
      swarm.wantIds = true;
      swarm.v4?.enablePeerIds();
      swarm.v6?.enablePeerIds();
    }
    // Endpoint in wire form.
    const ep = this.#ep;
    const stride = table.stride;
    ep.set(req.ip, 0);
    ep[stride - 2] = req.port >>> 8;
    ep[stride - 1] = req.port & 0xff;
    let slot = table.find(ep);
    const seeder = req.left === 0;

    // Counts before this announce is applied, without the requester.
    let complete = (swarm.v4?.seeders ?? 0) + (swarm.v6?.seeders ?? 0);
    let incomplete = (swarm.v4?.leechers ?? 0) + (swarm.v6?.leechers ?? 0);
    if (slot >= 0) {
      if ((table.flagsAt(slot) & SEEDER) !== 0) complete--;
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
      peerCount = table.select(
        0,
        seeder ? table.leechers : table.count,
        slot,
        want,
        this.#random,
        this.#out,
        ids,
        peerIdKnown,
      );
      peers = this.#out.slice(0, peerCount * stride);
      if (ids !== null) peerIds = ids.subarray(0, peerCount * 20);
    }

    // Apply the announce.
    if (stopped) {
      if (slot >= 0) this.#remove(swarm, key, table, slot, v6);
    } else {
      if (slot < 0) {
        slot = table.insert(ep, seeder, now);
        if (v6) this.#peers6++;
        else this.#peers4++;
        if (seeder) this.#seeders++;
      } else {
        const was = (table.flagsAt(slot) & SEEDER) !== 0;
        if (was !== seeder) {
          slot = table.setSeeder(slot, seeder);
          this.#seeders += seeder ? 1 : -1;
        }
        table.touch(slot, now);
      }
      // A completion counts once per peer (a peer first seen with event=completed counts too).
      const flags = table.flagsAt(slot);
      if (req.event === AnnounceEvent.completed && (flags & COUNTED) === 0) {
        table.setFlags(slot, flags | COUNTED);
        swarm.downloaded++;
      }
      if (table.peerIds !== null) table.setPeerId(slot, req.peerId);
    }
    return { complete, incomplete, downloaded: swarm.downloaded, peers, peerCount, peerIds, peerIdKnown };
  }

  #remove(swarm: Swarm, key: string, table: PeerTable, slot: number, v6: boolean): void {
    if ((table.flagsAt(slot) & SEEDER) !== 0) this.#seeders--;
    table.remove(slot);
    if (v6) this.#peers6--;
    else this.#peers4--;
    if (table.count === 0) {
      table.release();
      if (v6) swarm.v6 = null;
      else swarm.v4 = null;
      if (swarm.v4 === null && swarm.v6 === null) this.#swarms.delete(key);
    }
  }

  scrape(infoHashes: readonly Uint8Array[]): ScrapeEntry[] {
    const out: ScrapeEntry[] = new Array(infoHashes.length);
    for (let i = 0; i < infoHashes.length; i++) {
      const h = infoHashes[i];
      const swarm = this.#swarms.get(binaryString(h));
      out[i] = swarm === undefined ? { complete: 0, incomplete: 0, downloaded: 0 } : entryOf(swarm);
    }
    return out;
  }

  *scrapeAll(): Iterable<[Uint8Array, ScrapeEntry]> {
    for (const [key, swarm] of this.#swarms) yield [Buffer.from(key, 'latin1'), entryOf(swarm)];
  }

  /**
   * Visits about `budget` peers, resuming from the previous call's place in the swarm map (Map
   * iterators survive deletion), removing peers whose last announce is `peerTimeout` or more
   * seconds old. Returns how many were removed.
   */
  sweep(now: number, budget: number): number {
    let removed = 0;
    let visited = 0;
    const cutoff = now - this.#peerTimeout;
    let restarted = false;
    while (visited < budget) {
      if (this.#sweepIter === null) {
        if (restarted) break;
        this.#sweepIter = this.#swarms.entries();
        restarted = true;
      }
      const next = this.#sweepIter.next();
      if (next.done) {
        this.#sweepIter = null;
        if (restarted) break;
        continue;
      }
      const [key, swarm] = next.value;
      for (const v6 of [false, true]) {
        const table = v6 ? swarm.v6 : swarm.v4;
        if (table === null) continue;
        visited += table.count;
        // Descending: a removal only moves already-visited (higher) slots down.
        for (let i = table.count - 1; i >= 0; i--) {
          if (table.lastSeenAt(i) <= cutoff) {
            this.#remove(swarm, key, table, i, v6);
            removed++;
            if (table.count === 0) break;
          }
        }
      }
    }
    return removed;
  }

  stats(): SwarmStats {
    const peers = this.#peers4 + this.#peers6;
    return {
      torrents: this.#swarms.size,
      peers,
      seeders: this.#seeders,
      leechers: peers - this.#seeders,
      peers4: this.#peers4,
      peers6: this.#peers6,
    };
  }

  close(): void {
    this.#swarms.clear();
    this.#pool4 = new PeerPool(4);
    this.#pool6 = new PeerPool(6);
    this.#sweepIter = null;
    this.#peers4 = this.#peers6 = this.#seeders = 0;
  }
}

const EMPTY = new Uint8Array(0);

function entryOf(s: Swarm): ScrapeEntry {
  return {
    complete: (s.v4?.seeders ?? 0) + (s.v6?.seeders ?? 0),
    incomplete: (s.v4?.leechers ?? 0) + (s.v6?.leechers ?? 0),
    downloaded: s.downloaded,
  };
}
