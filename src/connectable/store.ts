import { TrackerError } from '../core/errors.ts';
import type { AnnounceRequest, AnnounceResult, ScrapeEntry, SwarmStats } from '../core/types.ts';
import type { SwarmStore } from '../swarm/types.ts';
import type { ConnectableChecker } from './checker.ts';

/**
 * A swarm store that tells the connectable checker of every announce it accepts, and (with
 * `connectable_only_for_unconnectable`) filters the peer lists of peers known not to be
 * connectable. It wraps the store where the swarms are (with workers, each worker's own shard), so
 * the check runs in the process that owns the swarm and sees all its announces; WebTorrent peers
 * (their own swarms) never reach it.
 */
export class ConnectableStore implements SwarmStore {
  readonly synchronous?: boolean;
  readonly readsRequestAtOnce?: boolean;
  readonly #inner: SwarmStore;
  readonly #checker: ConnectableChecker;
  readonly #filter: boolean;

  constructor(inner: SwarmStore, checker: ConnectableChecker, filter: boolean) {
    this.#inner = inner;
    this.#checker = checker;
    this.#filter = filter;
    this.synchronous = inner.synchronous;
    this.readsRequestAtOnce = inner.readsRequestAtOnce;
  }

  announce(
    req: AnnounceRequest,
    now: number,
  ): AnnounceResult | TrackerError | Promise<AnnounceResult | TrackerError> {
    // Noted before the store answers: `note` copies what it keeps, and a store may reuse `req`.
    const r = this.#inner.announce(req, now);
    if (r instanceof Promise) {
      // An asynchronous store may have let the caller reuse `req` already: what `note` needs is
      // read now, the verdict on the peer list when the answer comes.
      const ip = Uint8Array.from(req.ip);
      const { port, family } = req;
      this.#checker.note(req, now);
      if (!this.#filter) return r;
      return r.then((v) => {
        if (!(v instanceof TrackerError)) this.#checker.filterPeers({ ...req, ip, port, family }, v);
        return v;
      });
    }
    if (r instanceof TrackerError) return r;
    this.#checker.note(req, now);
    if (this.#filter) this.#checker.filterPeers(req, r);
    return r;
  }

  scrape(infoHashes: readonly Uint8Array[], now: number): ScrapeEntry[] | Promise<ScrapeEntry[]> {
    return this.#inner.scrape(infoHashes, now);
  }

  scrapeAll(now: number): Iterable<[Uint8Array, ScrapeEntry]> | Promise<Iterable<[Uint8Array, ScrapeEntry]>> {
    return this.#inner.scrapeAll(now);
  }

  sweep(now: number, budget: number): number | Promise<number> {
    return this.#inner.sweep(now, budget);
  }

  stats(): SwarmStats | Promise<SwarmStats> {
    return this.#inner.stats();
  }

  close(): void | Promise<void> {
    this.#checker.close();
    return this.#inner.close();
  }
}
