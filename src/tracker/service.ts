import type { Clock } from '../core/clock.ts';
import { Errors, TrackerError, type TrackerWarning } from '../core/errors.ts';
import type { TrackerCounters } from '../core/metrics.ts';
import type { AnnounceRequest, AnnounceResult, ScrapeEntry } from '../core/types.ts';
import type { PolicyMember, PolicyTorrent } from '../policy/types.ts';
import type { SwarmStore } from '../swarm/types.ts';

/** The tracker rules every frontend shares. Resolved once at start. */
export interface TrackerSettings {
  /** Seconds a client should wait between announces. */
  interval: number;
  /** Seconds a client must wait between announces. */
  minInterval: number;
  /** Peers returned when the client does not say (`numwant` absent or negative). */
  defaultNumWant: number;
  /** Upper bound on peers returned, whatever the client asks. */
  maxNumWant: number;
}

/**
 * Who is asking, as far as policy cares. Frontends fill `protocol` and `passkey` (HTTP path, UDP
 * BEP 41 URL data, WS path) and null the rest; private-mode policy fills `member` and `torrent`
 * for the accounting step.
 */
export interface RequestContext {
  protocol: 'http' | 'udp' | 'ws';
  passkey: string | null;
  member: PolicyMember | null;
  torrent: PolicyTorrent | null;
  /**
   * A `warning message` a rule gave this announce (issue #16); the service clears it at the start
   * of each announce, and puts it on the result.
   */
  warning: TrackerWarning | null;
}

/** A fresh context for one request. */
export function requestContext(protocol: RequestContext['protocol'], passkey: string | null): RequestContext {
  return { protocol, passkey, member: null, torrent: null, warning: null };
}

/**
 * What the accounting step says of an announce: null to accept it; a `TrackerError` to refuse it
 * (nothing is counted and the swarm is not touched: the peer's next accepted announce is credited
 * from its last accepted one); a `TrackerWarning` to accept it with a `warning message`.
 */
export type AccountVerdict = TrackerError | TrackerWarning | null;

/**
 * Called after policy accepted an announce, before the swarm update (private mode), in the worker
 * that owns the torrent: peer limits and announce discipline are decided here, where every
 * announce of the torrent's peers arrives (issue #16).
 */
export type AccountStep = (
  req: AnnounceRequest,
  member: PolicyMember,
  torrent: PolicyTorrent,
  now: number,
) => AccountVerdict;

/** An accounting verdict as a refusal or null; a warning goes on `ctx` (a policy warning wins). */
function verdict(v: AccountVerdict, ctx: RequestContext): TrackerError | null {
  if (v === null) return null;
  if (v instanceof TrackerError) return v;
  if (ctx.warning === null) ctx.warning = v;
  return null;
}

/**
 * Puts a warning on an answer (a promise's, when it comes). A policy warning (set before the
 * owner's verdict) wins over the owner's: it says more to the member.
 */
export function withWarning<R extends AnnounceResult | TrackerError>(
  r: R | Promise<R>,
  warning: TrackerWarning,
): R | Promise<R> {
  if (r instanceof Promise) return r.then((v) => withWarning(v, warning) as R);
  if (!(r instanceof TrackerError)) (r as AnnounceResult).warning = warning;
  return r;
}

/**
 * The accounting step of a WebTorrent (WebSocket) announce where a limit is counted beyond this
 * process (the owner of the torrent with workers, Redis with several instances): its verdict may
 * come later.
 */
export type RemoteAccountStep = (
  req: AnnounceRequest,
  member: PolicyMember,
  torrent: PolicyTorrent,
  now: number,
) => AccountVerdict | Promise<AccountVerdict>;

/** Accounting and the swarm update, wherever the owner of the torrent is (workers). */
export type Dispatch = (
  req: AnnounceRequest,
  ctx: RequestContext,
  now: number,
) => AnnounceResult | TrackerError | Promise<AnnounceResult | TrackerError>;

/**
 * A policy step (STYLE.md example 5): returns a `TrackerError` to refuse, or null to pass. Steps
 * are assembled once at start; open mode has none and pays nothing for them.
 */
export type AnnounceStep = (req: AnnounceRequest, ctx: RequestContext) => TrackerError | null;
export type ScrapeStep = (infoHashes: readonly Uint8Array[], ctx: RequestContext) => TrackerError | null;

/**
 * The one announce/scrape service behind every frontend (STYLE.md example 4). A frontend
 * parses, calls `announce` or `scrape`, and encodes what comes back; no frontend has tracker
 * rules of its own.
 *
 * Results may be promises when the store is asynchronous (Redis); with the memory store they
 * are plain values and nothing awaits (STYLE.md example 9).
 */
export class TrackerService {
  readonly settings: TrackerSettings;
  readonly store: SwarmStore;
  readonly clock: Clock;
  readonly counters: TrackerCounters;
  #announceSteps: AnnounceStep[] | null;
  #scrapeSteps: ScrapeStep[] | null;
  #account: AccountStep | null;
  #dispatch: Dispatch | null;
  #wsAccount: RemoteAccountStep | null;

  constructor(opts: {
    store: SwarmStore;
    clock: Clock;
    settings: TrackerSettings;
    counters: TrackerCounters;
    announceSteps?: AnnounceStep[];
    scrapeSteps?: ScrapeStep[];
    account?: AccountStep;
    /**
     * Workers (issue #13): accounting and the swarm update happen in the worker that owns the
     * torrent, which may be another process; policy has run here.
     */
    dispatch?: Dispatch;
    /**
     * WebTorrent peers' accounting when a limit counts them beyond this process (`authorizeWs`);
     * absent, they are accounted here by `account`, synchronously.
     */
    wsAccount?: RemoteAccountStep;
  }) {
    this.store = opts.store;
    this.clock = opts.clock;
    this.settings = opts.settings;
    this.counters = opts.counters;
    // Empty step lists are stored as null so the hot path skips them with one test (fastify).
    this.#announceSteps = opts.announceSteps?.length ? opts.announceSteps : null;
    this.#scrapeSteps = opts.scrapeSteps?.length ? opts.scrapeSteps : null;
    this.#account = opts.account ?? null;
    this.#dispatch = opts.dispatch ?? null;
    this.#wsAccount = opts.wsAccount ?? null;
  }

  /**
   * Clamp the client's `numwant` (negative or absent means "the default") to the configured cap.
   */
  numWant(asked: number): number {
    if (asked < 0) return this.settings.defaultNumWant;
    return Math.min(asked, this.settings.maxNumWant);
  }

  /**
   * Runs the policy steps, then the swarm update. `req.numWant` must already be the client's raw
   * value or -1; it is clamped here. Returns a `TrackerError` when a step refuses.
   */
  announce(
    req: AnnounceRequest,
    ctx: RequestContext,
  ): AnnounceResult | TrackerError | Promise<AnnounceResult | TrackerError> {
    // Port 0 cannot be connected to: such a peer would only pollute other peers' lists.
    if (req.port === 0) return Errors.invalidPort;
    req.numWant = this.numWant(req.numWant);
    if (this.#dispatch !== null) {
      ctx.warning = null;
      const refused = this.#policy(req, ctx);
      if (refused !== null) return refused;
      const r = this.#dispatch(req, ctx, this.clock.now());
      return ctx.warning === null ? r : withWarning(r, ctx.warning);
    }
    const refused = this.authorize(req, ctx);
    if (refused !== null) return refused;
    const now = this.clock.now();
    const res = this.store.announce(req, now);
    return ctx.warning === null ? res : withWarning(res, ctx.warning);
  }

  /**
   * Counts a refusal a frontend is about to send, for /stats and /metrics (`refusedFull`: the
   * store's ceiling). Counted where the answer is encoded, so that a refusal arriving as a promise
   * (another worker's shard, Redis) counts as a synchronous one does.
   */
  refused(err: TrackerError): void {
    if (err === Errors.trackerFull) this.counters.refusedFull++;
  }

  /**
   * Policy, then accounting, without the swarm update: what `announce` runs first, and all that
   * the WebSocket frontend (which keeps WebRTC peers in swarms of its own) needs from the service.
   */
  authorize(req: AnnounceRequest, ctx: RequestContext): TrackerError | null {
    ctx.warning = null;
    const refused = this.#policy(req, ctx);
    if (refused !== null) return refused;
    const account = this.#account;
    if (account !== null && ctx.member !== null && ctx.torrent !== null)
      return verdict(account(req, ctx.member, ctx.torrent, this.clock.now()), ctx);
    return null;
  }

  /**
   * `authorize` for a WebTorrent announce: the same, unless its limits are counted beyond this
   * process (`wsAccount`: workers, Redis), where the verdict may be a promise (the WebSocket
   * frontend then holds the socket's next messages until it comes). Open mode, and one process,
   * stay synchronous.
   */
  authorizeWs(req: AnnounceRequest, ctx: RequestContext): TrackerError | null | Promise<TrackerError | null> {
    const remote = this.#wsAccount;
    if (remote === null) return this.authorize(req, ctx);
    ctx.warning = null;
    const refused = this.#policy(req, ctx);
    if (refused !== null || ctx.member === null || ctx.torrent === null) return refused;
    const v = remote(req, ctx.member, ctx.torrent, this.clock.now());
    return v instanceof Promise ? v.then((v) => verdict(v, ctx)) : verdict(v, ctx);
  }

  /** The announce policy steps alone. */
  #policy(req: AnnounceRequest, ctx: RequestContext): TrackerError | null {
    const steps = this.#announceSteps;
    if (steps !== null) {
      for (let i = 0; i < steps.length; i++) {
        const refused = steps[i](req, ctx);
        if (refused !== null) return refused;
      }
    }
    return null;
  }

  /** The scrape policy steps alone (see `authorize`). */
  authorizeScrape(infoHashes: readonly Uint8Array[], ctx: RequestContext): TrackerError | null {
    const steps = this.#scrapeSteps;
    if (steps !== null) {
      for (let i = 0; i < steps.length; i++) {
        const refused = steps[i](infoHashes, ctx);
        if (refused !== null) return refused;
      }
    }
    return null;
  }

  /**
   * Full scrape: every swarm of the store that policy answers a scrape for now. A hash taken off
   * the allow list (or put on the deny list) keeps its swarm until its peers expire; it is no
   * longer listed (open mode: one test of an empty deny list per row).
   */
  scrapeAll(
    ctx: RequestContext,
  ): Iterable<[Uint8Array, ScrapeEntry]> | Promise<Iterable<[Uint8Array, ScrapeEntry]>> {
    const all = this.store.scrapeAll(this.clock.now());
    if (this.#scrapeSteps === null) return all;
    const allowed = (rows: Iterable<[Uint8Array, ScrapeEntry]>) => {
      const out: [Uint8Array, ScrapeEntry][] = [];
      for (const row of rows) if (this.authorizeScrape([row[0]], ctx) === null) out.push(row);
      return out;
    };
    return all instanceof Promise ? all.then(allowed) : allowed(all);
  }

  scrape(
    infoHashes: readonly Uint8Array[],
    ctx: RequestContext,
  ): ScrapeEntry[] | TrackerError | Promise<ScrapeEntry[] | TrackerError> {
    const refused = this.authorizeScrape(infoHashes, ctx);
    if (refused !== null) return refused;
    return this.store.scrape(infoHashes, this.clock.now());
  }
}
