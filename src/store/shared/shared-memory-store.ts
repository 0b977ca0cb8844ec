import { closeSync } from 'node:fs';
import type { HeraldConfig } from '../../config/schema.ts';
import { Errors, type TrackerError } from '../../core/errors.ts';
import type { AnnounceRequest, AnnounceResult, ScrapeEntry, SwarmStats } from '../../core/types.ts';
import { AnnounceEvent } from '../../core/types.ts';
import { loadHttpBatchAddon } from '../../frontend/http/batch.ts';
import type { SwarmStore, SwarmStoreOptions } from '../../swarm/types.ts';

/**
 * The shared-memory swarm store's functions in the http_batch addon (native/src/shared_swarms.h).
 * A handle works on the request and answer in its io buffer (the layout below, IO_* in the addon).
 */
export interface SharedSwarmsAddon {
  sharedSwarmsCreate(
    peerCapacity: number,
    torrentCapacity: number,
    maxPeers: number,
    maxTorrents: number,
  ): number;
  sharedSwarmsOpen(fd: number, io: ArrayBuffer): object;
  /** 0 answered (counts and peers in io), 1 refused (tracker full). */
  sharedSwarmsAnnounce(store: object): number;
  sharedSwarmsScrape(store: object): void;
  /** 32-byte entries: info hash, then u32 complete, incomplete, downloaded (host order). */
  sharedSwarmsScrapeAll(store: object): Buffer;
  sharedSwarmsSweep(store: object, cutoff: number, budget: number): number;
  sharedSwarmsDrop(store: object): number;
  sharedSwarmsStats(store: object): void;
}

/** The addon's shared-memory store functions, or null when the addon is not built (or too old). */
export function loadSharedSwarms(): SharedSwarmsAddon | null {
  const addon = loadHttpBatchAddon() as Partial<SharedSwarmsAddon> | null;
  return typeof addon?.sharedSwarmsCreate === 'function' ? (addon as SharedSwarmsAddon) : null;
}

// The io buffer (must match IO_* in native/src/shared_swarms.h).
const IO_HASH = 0;
const IO_PEER_ID = 20;
const IO_IP = 40;
const IO_PORT = 56;
const IO_FAMILY = 58;
const IO_SEEDER = 59;
const IO_EVENT = 60;
const IO_WANT_IDS = 61;
const IO_NUMWANT = 64 / 4;
const IO_NOW = 68 / 4;
const IO_OUT = 128 / 4;
const MAX_WANT = 1024;
const IO_PEERS = 256;
const IO_IDS = IO_PEERS + 18 * MAX_WANT;
const IO_KNOWN = IO_IDS + 20 * MAX_WANT;
const IO_SIZE = IO_KNOWN + MAX_WANT;

/** Copies the first n bytes of src to dst at `at`. */
function put(dst: Uint8Array, at: number, src: Uint8Array, n: number): void {
  for (let i = 0; i < n; i++) dst[at + i] = src[i];
}

/** Sizing of a new store when the options set no ceiling (the mapping is sparse). */
export const DEFAULT_PEER_CAPACITY = 1 << 20;
export const DEFAULT_TORRENT_CAPACITY = 1 << 16;

export interface SharedStoreOptions extends SwarmStoreOptions {
  /** Descriptor of a store made by `createSharedSwarms` (another process's, inherited); a new one if absent. */
  fd?: number;
}

/**
 * Whether `herald serve --workers N` serves its swarms from this store (worker_swarms): with
 * workers and swarms in memory, not in private mode (accounting runs in the worker that owns a
 * torrent, so private swarms stay sharded), when asked for (`shared`).
 */
export function sharedSwarmsWanted(
  c: Pick<HeraldConfig, 'store' | 'mode' | 'workerSwarms'>,
  workers: number,
): boolean {
  if (workers <= 1 || c.store !== 'memory' || c.mode === 'private' || c.workerSwarms === 'sharded')
    return false;
  // auto is sharded for now: measured (docs/benchmarks.md "Workers", 2026-12-08 04:50), shared
  // swarms cost the same CPU per HTTP response as the relay, and their swarm table, sized from
  // max_torrents, is touched all over by a few ten thousand swarms (about 256 MB at the default
  // 2,000,000), until the table grows in place.
  return c.workerSwarms === 'shared';
}

/**
 * Primary: a new store in a memfd, sized from the ceilings (or the defaults), as a descriptor to
 * hand each worker. Throws when the addon is not built.
 */
export function createSharedSwarms(opts: Pick<SwarmStoreOptions, 'maxPeers' | 'maxTorrents'>): number {
  const addon = loadSharedSwarms();
  if (addon === null) throw new Error('the http_batch addon (with shared swarms) is not built');
  const peers = Math.min(opts.maxPeers ?? DEFAULT_PEER_CAPACITY, 0xffffffff);
  const torrents = Math.min(opts.maxTorrents ?? DEFAULT_TORRENT_CAPACITY, 0xffffffff);
  return addon.sharedSwarmsCreate(
    Math.max(peers, 1),
    Math.max(torrents, 1),
    Math.min(opts.maxPeers ?? 0, 0xffffffff),
    Math.min(opts.maxTorrents ?? 0, 0xffffffff),
  );
}

/**
 * Swarms in shared memory (issue #13, docs/shmstore-progress.md): every process that opens the
 * same memfd sees the same swarms, and answers synchronously, through N-API, with no hand-over to
 * an owner. Same semantics as MemorySwarmStore (src/swarm/contract.ts); the layout and locking
 * are in native/src/shared_swarms.h. The ceilings are the store's (set at creation): with several
 * processes announcing at once, `maxPeers` may be passed by at most one peer per process.
 *
 * The sweep's cursor is this process's: one process (worker 0) should sweep.
 */
export class SharedMemorySwarmStore implements SwarmStore {
  readonly synchronous = true;
  /** Every process that maps the memfd holds these same swarms (no sharding over workers). */
  readonly sharedByProcesses = true;
  readonly fd: number;
  #addon: SharedSwarmsAddon;
  #handle: object | null;
  /** The descriptor was made here (closed by `close`), not handed in. */
  #ownsFd: boolean;
  #peerTimeout: number;
  #io = new ArrayBuffer(IO_SIZE);
  #bytes = new Uint8Array(this.#io);
  #words = new Uint32Array(this.#io, 0, IO_PEERS / 4);
  /** The answer's peers (its first peerCount records). */
  #peers = new Uint8Array(this.#io, IO_PEERS, 18 * MAX_WANT);

  /** Opens `opts.fd`, or creates a store (see `createSharedSwarms`) when it is absent. */
  constructor(opts: SharedStoreOptions) {
    const addon = loadSharedSwarms();
    if (addon === null) throw new Error('the http_batch addon (with shared swarms) is not built');
    this.#addon = addon;
    this.#peerTimeout = opts.peerTimeout;
    this.#ownsFd = opts.fd === undefined;
    this.fd = opts.fd ?? createSharedSwarms(opts);
    this.#handle = addon.sharedSwarmsOpen(this.fd, this.#io);
  }

  #store(): object {
    if (this.#handle === null) throw new Error('the shared swarm store is closed');
    return this.#handle;
  }

  announce(req: AnnounceRequest, now: number): AnnounceResult | TrackerError {
    const b = this.#bytes;
    const w = this.#words;
    // Byte loops: TypedArray#set costs more than these few bytes (measured, docs/shmstore-progress.md).
    put(b, IO_HASH, req.infoHash, 20);
    put(b, IO_PEER_ID, req.peerId, 20);
    put(b, IO_IP, req.ip, req.family === 6 ? 16 : 4);
    b[IO_PORT] = req.port >>> 8;
    b[IO_PORT + 1] = req.port & 0xff;
    b[IO_FAMILY] = req.family;
    b[IO_SEEDER] = req.left === 0 ? 1 : 0;
    b[IO_EVENT] = req.event;
    b[IO_WANT_IDS] = req.wantPeerIds ? 1 : 0;
    w[IO_NUMWANT] = req.numWant;
    w[IO_NOW] = now;
    if (this.#addon.sharedSwarmsAnnounce(this.#store()) !== 0) return Errors.trackerFull;
    const peerCount = w[IO_OUT + 4];
    let peerIds: Uint8Array | null = null;
    let peerIdKnown: Uint8Array | null = null;
    if (req.wantPeerIds && req.event !== AnnounceEvent.stopped && req.numWant > 0) {
      peerIds = b.slice(IO_IDS, IO_IDS + peerCount * 20);
      peerIdKnown = b.slice(IO_KNOWN, IO_KNOWN + peerCount);
    }
    return {
      complete: w[IO_OUT + 1],
      incomplete: w[IO_OUT + 2],
      downloaded: w[IO_OUT + 3],
      // Not copied: the result is read before the store is called again (AnnounceResult.peers).
      peers: this.#peers,
      peerCount,
      peerIds,
      peerIdKnown,
    };
  }

  scrape(infoHashes: readonly Uint8Array[]): ScrapeEntry[] {
    const store = this.#store();
    const w = this.#words;
    return infoHashes.map((hash) => {
      this.#bytes.set(hash, IO_HASH);
      this.#addon.sharedSwarmsScrape(store);
      return { complete: w[IO_OUT + 1], incomplete: w[IO_OUT + 2], downloaded: w[IO_OUT + 3] };
    });
  }

  *scrapeAll(): Iterable<[Uint8Array, ScrapeEntry]> {
    const buf = this.#addon.sharedSwarmsScrapeAll(this.#store());
    for (let at = 0; at < buf.length; at += 32) {
      const entry = {
        complete: buf.readUInt32LE(at + 20),
        incomplete: buf.readUInt32LE(at + 24),
        downloaded: buf.readUInt32LE(at + 28),
      };
      yield [buf.subarray(at, at + 20), entry];
    }
  }

  sweep(now: number, budget: number): number {
    const cutoff = now - this.#peerTimeout;
    if (cutoff < 0) return 0;
    return this.#addon.sharedSwarmsSweep(this.#store(), cutoff, Math.min(budget, 0xffffffff));
  }

  dropSwarms(infoHashes: readonly Uint8Array[]): number {
    const store = this.#store();
    let removed = 0;
    for (const hash of infoHashes) {
      this.#bytes.set(hash, IO_HASH);
      removed += this.#addon.sharedSwarmsDrop(store);
    }
    return removed;
  }

  stats(): SwarmStats {
    this.#addon.sharedSwarmsStats(this.#store());
    const w = this.#words;
    const peers4 = w[IO_OUT + 1];
    const peers6 = w[IO_OUT + 2];
    const seeders = w[IO_OUT + 3];
    return {
      torrents: w[IO_OUT + 4],
      peers: peers4 + peers6,
      seeders,
      leechers: peers4 + peers6 - seeders,
      peers4,
      peers6,
    };
  }

  /**
   * Forgets this process's handle (its mapping goes when the handle is collected); closes the
   * descriptor if it was made here (one handed in stays the caller's).
   */
  close(): void {
    if (this.#handle === null) return;
    this.#handle = null;
    if (this.#ownsFd) closeSync(this.fd);
  }
}
