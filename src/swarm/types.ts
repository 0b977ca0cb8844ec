import type { TrackerError } from '../core/errors.ts';
import type { AnnounceRequest, AnnounceResult, ScrapeEntry, SwarmStats } from '../core/types.ts';

/**
 * Where swarms live. The memory implementation answers synchronously; a distributed
 * implementation (Redis) returns promises. Callers branch once on `instanceof Promise`
 * (STYLE.md example 9), so the memory path never pays for an await.
 *
 * Identity: within a swarm a peer is its endpoint (address and port), never the peer id it
 * claims, so no host can stop or replace another host's peer by sending its peer id.
 */
export interface SwarmStore {
  /**
   * True when every method answers synchronously (the memory store). The batched UDP transport
   * answers within its batch and needs this; anything else is served through `node:dgram`,
   * answering each request when its promise settles.
   */
  readonly synchronous?: boolean;
  /**
   * True when `announce` has read all it needs from the request (its hash and peer id arrays
   * included) by the time it returns, even when its answer is a promise (the sharded store of
   * workers copies it into a frame at once): callers may then reuse those arrays for the next
   * request. Implied by `synchronous`.
   */
  readonly readsRequestAtOnce?: boolean;
  /**
   * True when every process that opened it holds the same swarms (the shared-memory store):
   * workers then answer every announce from it, with no sharding and no hand-over.
   */
  readonly sharedByProcesses?: boolean;
  /**
   * Select peers for the requester, then apply its announce (insert, update, complete, or remove
   * on `stopped`). Seeders (left = 0) are sent leechers only; the requester is never in its own
   * list; no peer appears twice. `now` is the clock's seconds. A store may refuse with a
   * `TrackerError` the client reads (a worker that owns the swarm is restarting, say).
   *
   * Refuses (returns `Errors.trackerFull`, changing nothing) only a new peer when the store holds
   * `maxPeers` peers, or one that would start a new torrent when it holds `maxTorrents`: an
   * update or a stop of a peer already held is never refused.
   */
  announce(
    req: AnnounceRequest,
    now: number,
  ): AnnounceResult | TrackerError | Promise<AnnounceResult | TrackerError>;
  /** One entry per info hash, in order; unknown hashes give zero counts. */
  scrape(infoHashes: readonly Uint8Array[], now: number): ScrapeEntry[] | Promise<ScrapeEntry[]>;
  /** Every swarm (full scrape); `infoHash` is 20 raw bytes. */
  scrapeAll(now: number): Iterable<[Uint8Array, ScrapeEntry]> | Promise<Iterable<[Uint8Array, ScrapeEntry]>>;
  /**
   * Incremental expiry: remove peers not seen since `now - peerTimeout`, visiting at most
   * `budget` peers, resuming where the previous call stopped. Frees swarms left empty.
   * Returns the number of peers removed.
   */
  sweep(now: number, budget: number): number | Promise<number>;
  /**
   * Removes every peer of these swarms (policy no longer tracks their info hashes: off the allow
   * list, onto the deny list) and frees them; unknown hashes are skipped. Returns the number of
   * peers removed. Called on the store of each process (a worker's own shard, or the shared store),
   * so a store that spans processes without holding their swarms need not have it.
   */
  dropSwarms?(infoHashes: readonly Uint8Array[]): number | Promise<number>;
  stats(): SwarmStats | Promise<SwarmStats>;
  close(): void | Promise<void>;
}

export interface SwarmStoreOptions {
  /** Seconds after its last announce that a peer is dropped. */
  peerTimeout: number;
  /** Most peers held (all swarms, both families); new peers beyond are refused. Unlimited if absent. */
  maxPeers?: number;
  /** Most torrents (swarms) held; announces that would add one are refused. Unlimited if absent. */
  maxTorrents?: number;
}
