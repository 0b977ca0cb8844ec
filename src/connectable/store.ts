import { TrackerError } from '../core/errors.ts';
import type { AnnounceRequest, AnnounceResult, ScrapeEntry, SwarmStats } from '../core/types.ts';
import type { SwarmStore } from '../swarm/types.ts';
import type { Dispatch } from '../tracker/service.ts';
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
    const r = this.#inner.announce(req, now);
    return checked(r, req, req.memberId, req.torrentId, now, this.#checker, this.#filter);
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

/**
 * Private mode on a shared store (Redis): the service's dispatch (accounting and the swarm update
 * in one script, `sharedAccounting`) followed by the check, as `ConnectableStore` does for a store
 * of this process. Each instance checks the endpoints that announce to it and filters with its own
 * results.
 */
export function connectableDispatch(
  dispatch: Dispatch,
  checker: ConnectableChecker,
  filter: boolean,
): Dispatch {
  return (req, ctx, now) =>
    checked(dispatch(req, ctx, now), req, ctx.member?.id, ctx.torrent?.id, now, checker, filter);
}

/**
 * The check of announce `req` (member `memberId`'s on torrent `torrentId` in private mode) once
 * the store answered `r`: noted only if the announce was accepted. When the answer is a promise,
 * what the check needs of `req` is copied now (the caller may reuse the request once the store
 * has read it).
 */
function checked(
  r: AnnounceResult | TrackerError | Promise<AnnounceResult | TrackerError>,
  req: AnnounceRequest,
  memberId: number | undefined,
  torrentId: number | undefined,
  now: number,
  checker: ConnectableChecker,
  filter: boolean,
): AnnounceResult | TrackerError | Promise<AnnounceResult | TrackerError> {
  if (r instanceof Promise) {
    const copy: AnnounceRequest = {
      ...req,
      ip: Uint8Array.from(req.ip),
      infoHash: Uint8Array.from(req.infoHash),
    };
    return r.then((v) => checked(v, copy, memberId, torrentId, now, checker, filter));
  }
  if (r instanceof TrackerError) return r;
  checker.note(req, now, memberId, torrentId);
  if (filter) checker.filterPeers(req, r);
  return r;
}
