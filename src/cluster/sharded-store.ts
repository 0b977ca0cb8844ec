import { Errors, TrackerError, trackerErrorOf } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { shardOf } from '../core/shard.ts';
import {
  AnnounceEvent,
  type AnnounceRequest,
  type AnnounceResult,
  type Family,
  type ScrapeEntry,
  type SwarmStats,
} from '../core/types.ts';
import type { PolicyMember, PolicyTorrent } from '../policy/policy.ts';
import type { SwarmStore } from '../swarm/types.ts';
import type { AccountStep, AccountVerdict, RequestContext } from '../tracker/service.ts';
import { ClusterBus } from './bus.ts';
import type { MemberLimits } from './member-limits.ts';
import {
  ANNOUNCE_BYTES,
  blankAnnounceRequest,
  bodyEnd,
  type FrameWriter,
  MessageType,
  readAccountTo,
  readAnnounce,
  readAnnounceOk,
  readAnnounceRevision,
  readScrape,
  readScrapeAllOk,
  readScrapeOk,
  writeAnnounce,
  writeAnnounceOk,
  writeScrape,
  writeScrapeAllOk,
  writeScrapeOk,
  writeText,
} from './messages.ts';
import { gatherStats, replyStats } from './stats-gather.ts';

/** What the owner of a swarm asks its own policy about an announce another worker judged. */
export interface RecheckPolicy {
  /** The revision of this worker's policy snapshot (the database's, when it was loaded). */
  revision(): number;
  /**
   * This worker's verdict on the announce: a refusal, or null. `memberId`/`torrentId`: who it is
   * accounted to (private mode), null otherwise; `keyPrint`: the fingerprint of the passkey the
   * sender admitted it by (`keyPrint`), null without a member.
   */
  recheck(
    req: AnnounceRequest,
    memberId: number | null,
    torrentId: number | null,
    keyPrint: number | null,
  ): TrackerError | null;
  /** The fingerprint of the member's passkey (the same function in every worker). */
  keyPrint(member: PolicyMember): number;
}

/**
 * The swarm store of one worker of `herald serve --workers N` (issue #13).
 *
 * Swarms are sharded by info hash (`shardOf`): each worker keeps the swarms it owns in its own
 * memory store and is the only one that touches them, so a swarm is one swarm whatever socket
 * its peers reach. An announce or scrape for a swarm this worker owns is answered at once,
 * synchronously, exactly as with one worker; one for another worker's swarm is handed to its
 * owner over the cluster bus and answered when the owner replies. Expiry is each owner's own
 * (`sweep` visits only the local shard); `stats` and `scrapeAll` gather every shard.
 *
 * A worker that is down (restarting) makes requests for its swarms fail with a retryable
 * `failure reason` (`Errors.shardUnavailable`) after at most a few seconds; its swarms are
 * rebuilt by the peers' next announces (memory stores keep nothing across a restart).
 */
export class ShardedSwarmStore implements SwarmStore {
  /** Answers may be promises (another worker's swarms); the local shard's are not. */
  readonly synchronous = false;
  /** A request for another worker is copied into its frame before `announce` returns. */
  readonly readsRequestAtOnce = true;
  readonly local: SwarmStore;
  readonly bus: ClusterBus;
  readonly #index: number;
  readonly #count: number;
  /** Owner side: one request object reused for every announce received from another worker. */
  readonly #req: AnnounceRequest = blankAnnounceRequest();
  #localStats: () => Promise<unknown>;
  readonly #logger: Logger;
  /** Private mode: the accounting step, run here for the torrents this worker owns. */
  #account: AccountStep | null = null;
  /** Private mode: the hash that routes a torrent (both hashes of a hybrid go to one owner). */
  #routeOf: ((infoHash: Uint8Array) => Uint8Array) | null = null;
  /** Private mode: a member's torrents seeding and leeching now, on this worker. */
  #activity: ((memberId: number) => { seeding: number; leeching: number }) | null = null;
  /** Private mode: peers per member and download slots over every worker (member-limits.ts). */
  #limits: MemberLimits | null = null;
  /** What an announce claims of its member's limits (`Accountant.claims`); 0 for nothing. */
  #claims: ((req: AnnounceRequest, member: PolicyMember, torrent: PolicyTorrent) => number) | null = null;
  /** This worker's policy: its snapshot's revision, and its verdict on an announce judged elsewhere. */
  #policy: RecheckPolicy | null = null;

  constructor(opts: {
    local: SwarmStore;
    clusterId: string;
    /** See ClusterBus: the secret connections between workers start with. */
    token?: Buffer | null;
    /** See ClusterBus: where the workers' sockets are. */
    dir?: string | null;
    index: number;
    count: number;
    logger: Logger;
    /** This worker's own figures for `/stats` of the whole tracker (StatsReporter.localSnapshot). */
    localStats?: () => Promise<unknown>;
  }) {
    if (opts.local.synchronous !== true) throw new Error('ShardedSwarmStore needs a synchronous local store');
    this.local = opts.local;
    this.#index = opts.index;
    this.#count = opts.count;
    this.#logger = opts.logger;
    this.#localStats = opts.localStats ?? (async () => ({}));
    this.bus = new ClusterBus({
      clusterId: opts.clusterId,
      token: opts.token ?? null,
      dir: opts.dir ?? null,
      index: opts.index,
      count: opts.count,
      logger: opts.logger,
      handler: (type, id, body, at, reply, done) => this.#serve(type, id, body, at, reply, done),
    });
  }

  /**
   * Each worker reloads policy on its own (every `policy_refresh`), so for a moment after a change
   * one worker may judge by the old snapshot while the owner of the swarm has the new one, and has
   * already taken out the peers the change removed (a hash delisted or denied, a member banned or
   * a grant revoked: `dropSwarms`, `revoke`). An announce sends the revision it was judged by; the
   * owner, when its own snapshot is newer, judges it again and refuses what it no longer admits, so
   * a lagging worker cannot put such a peer back (it stayed until `peer_timeout`). When the owner
   * is the one behind, the sender's newer verdict stands, as it would with one process.
   */
  recheckWith(policy: RecheckPolicy): void {
    this.#policy = policy;
  }

  #revision(): number {
    return this.#policy === null ? 0 : this.#policy.revision();
  }

  /** The fingerprint of the passkey this worker admitted `member` by, for the owner's `recheck`. */
  #keyPrint(member: PolicyMember): number {
    return this.#policy === null ? 0 : this.#policy.keyPrint(member);
  }

  set localStats(fn: () => Promise<unknown>) {
    this.#localStats = fn;
  }

  /**
   * Private mode (issue #13): accounting runs in the worker that owns the torrent, where every
   * announce of its peers arrives, so each peer's baseline is in one place and a delta is
   * credited exactly once whichever worker the client reached. `routeOf` maps an info hash to
   * its torrent's route hash (`PolicyTorrent.route`).
   */
  privateMode(opts: {
    account: AccountStep;
    routeOf: (infoHash: Uint8Array) => Uint8Array;
    activity: (memberId: number) => { seeding: number; leeching: number };
    /**
     * Per-member limits over every worker: a new peer (or leeching torrent) of a member with a
     * limit is admitted once the member's home worker grants its place (see MemberLimits).
     */
    limits?: MemberLimits;
    claims?: (req: AnnounceRequest, member: PolicyMember, torrent: PolicyTorrent) => number;
  }): void {
    this.#account = opts.account;
    this.#routeOf = opts.routeOf;
    this.#activity = opts.activity;
    this.#limits = opts.limits ?? null;
    this.#claims = opts.claims ?? null;
  }

  /**
   * The owner's part of an announce of a member with a limit counted over every worker: null
   * when it claims nothing (it is answered at once, as before), else its answer: at once when
   * this worker is the member's home and the place is free, else once the home has judged the
   * claim (a promise; the request is copied: the caller may reuse it).
   */
  #claimed(
    req: AnnounceRequest,
    member: PolicyMember,
    torrent: PolicyTorrent,
    now: number,
    swarm = true,
  ): AnnounceResult | TrackerError | Promise<AnnounceResult | TrackerError> | null {
    const limits = this.#limits;
    if (limits === null || this.#claims === null) return null;
    const need = this.#claims(req, member, torrent);
    if (need === 0) {
      // A stop or a seeding announce may free a place the home counts.
      if ((req.event === AnnounceEvent.stopped || req.left === 0) && limits.holds(member.id))
        limits.touch(member.id);
      return null;
    }
    const copy = copyRequest(req);
    return limits.run(member.id, need, () => this.#admit(copy, member, torrent, now, swarm));
  }

  /**
   * Accounting, then the swarm update (unless refused, or `swarm` is false: a WebTorrent peer's
   * accounting alone, answered as an empty result); the owner's warning on the answer.
   */
  #admit(
    req: AnnounceRequest,
    member: PolicyMember,
    torrent: PolicyTorrent,
    now: number,
    swarm = true,
  ): AnnounceResult | TrackerError {
    const v = this.#account?.(req, member, torrent, now) ?? null;
    if (v instanceof TrackerError) return v;
    if (!swarm) return { ...ACCOUNTED, warning: v };
    const r = this.local.announce(req, now) as AnnounceResult | TrackerError;
    if (v !== null && !(r instanceof TrackerError)) r.warning = v;
    return r;
  }

  #ownerOf(infoHash: Uint8Array): number {
    return shardOf(this.#routeOf === null ? infoHash : this.#routeOf(infoHash), this.#count);
  }

  /**
   * The service's dispatch (TrackerService `dispatch`): accounting and the swarm update in the
   * owner of the torrent; policy has run in this worker and filled `ctx`.
   */
  dispatch(
    req: AnnounceRequest,
    ctx: RequestContext,
    now: number,
  ): AnnounceResult | TrackerError | Promise<AnnounceResult | TrackerError> {
    const member = ctx.member;
    const torrent = ctx.torrent;
    const owner = shardOf(torrent !== null ? torrent.route : req.infoHash, this.#count);
    if (owner === this.#index) {
      if (member !== null && torrent !== null) {
        const claimed = this.#claimed(req, member, torrent, now);
        if (claimed !== null) return claimed;
      }
      const v =
        member !== null && torrent !== null ? (this.#account?.(req, member, torrent, now) ?? null) : null;
      if (v instanceof TrackerError) return v;
      const r = this.local.announce(req, now) as AnnounceResult | TrackerError;
      if (v !== null && ctx.warning === null) ctx.warning = v;
      return r;
    }
    const acct =
      member !== null && torrent !== null ? { member, torrent, keyPrint: this.#keyPrint(member) } : null;
    return this.bus.request<AnnounceResult | TrackerError>(
      owner,
      (w, id) => writeAnnounce(w, id, req, now, acct, this.#revision()),
      announceReply,
      refusal,
    );
  }

  /**
   * A WebTorrent (WebSocket) announce in private mode when a limit counted over every worker
   * applies (`peers_per_torrent`, `peers_per_member`, download slots): its accounting alone (its
   * WebRTC swarm is the WebSocket frontend's) in the worker that owns the torrent, beside the
   * baselines of the torrent's HTTP and UDP peers, so that the per-torrent limit counts them
   * together and a new peer claims its place from the member's home worker as theirs do. The
   * verdict (null, a refusal, a warning): at once when this worker owns the torrent and no claim
   * waits, else a promise (the request is copied before this returns).
   */
  account(
    req: AnnounceRequest,
    member: PolicyMember,
    torrent: PolicyTorrent,
    now: number,
  ): AccountVerdict | Promise<AccountVerdict> {
    const owner = shardOf(torrent.route, this.#count);
    if (owner === this.#index) {
      const r =
        this.#claimed(req, member, torrent, now, false) ?? this.#admit(req, member, torrent, now, false);
      return r instanceof Promise ? r.then(verdictOf) : verdictOf(r);
    }
    return this.bus
      .request<AnnounceResult | TrackerError>(
        owner,
        (w, id) =>
          writeAnnounce(
            w,
            id,
            req,
            now,
            { member, torrent, accountOnly: true, keyPrint: this.#keyPrint(member) },
            this.#revision(),
          ),
        announceReply,
        refusal,
      )
      .then(verdictOf);
  }

  /** A member's torrents seeding and leeching now, over every worker (private mode). */
  async activity(memberId: number): Promise<{ seeding: number; leeching: number }> {
    const sum = this.#activity?.(memberId) ?? { seeding: 0, leeching: 0 };
    const parts = await Promise.all(
      this.#others().map((to) =>
        this.bus.request(
          to,
          (w, id) => writeText(w, MessageType.activity, id, String(memberId)),
          (body, at, type) => {
            if (type === MessageType.activityOk)
              return JSON.parse(textOf(body, at)) as { seeding: number; leeching: number };
            throw failureOf(body, at, type);
          },
        ),
      ),
    ).catch(unavailable);
    for (const p of parts) {
      sum.seeding += p.seeding;
      sum.leeching += p.leeching;
    }
    return sum;
  }

  start(): Promise<void> {
    return this.bus.start();
  }

  /** Whether this worker owns the swarm of `infoHash`. */
  owns(infoHash: Uint8Array): boolean {
    return this.#ownerOf(infoHash) === this.#index;
  }

  announce(
    req: AnnounceRequest,
    now: number,
  ): AnnounceResult | TrackerError | Promise<AnnounceResult | TrackerError> {
    const owner = this.#ownerOf(req.infoHash);
    if (owner === this.#index) return this.local.announce(req, now) as AnnounceResult | TrackerError;
    return this.bus.request<AnnounceResult | TrackerError>(
      owner,
      (w, id) => writeAnnounce(w, id, req, now, null, this.#revision()),
      announceReply,
      refusal,
    );
  }

  /** A scrape that cannot reach an owner rejects with `Errors.shardUnavailable`. */
  scrape(infoHashes: readonly Uint8Array[], now: number): ScrapeEntry[] | Promise<ScrapeEntry[]> {
    // Group by owner; the local shard is read at once.
    let remote = false;
    for (let i = 0; i < infoHashes.length; i++) if (!this.owns(infoHashes[i])) remote = true;
    if (!remote) return this.local.scrape(infoHashes, now) as ScrapeEntry[];
    const out: ScrapeEntry[] = new Array(infoHashes.length);
    const byOwner = new Map<number, number[]>();
    for (let i = 0; i < infoHashes.length; i++) {
      const owner = this.#ownerOf(infoHashes[i]);
      const list = byOwner.get(owner);
      if (list === undefined) byOwner.set(owner, [i]);
      else list.push(i);
    }
    const waits: Promise<void>[] = [];
    for (const [owner, positions] of byOwner) {
      const hashes = positions.map((i) => infoHashes[i]);
      if (owner === this.#index) {
        const entries = this.local.scrape(hashes, now) as ScrapeEntry[];
        positions.forEach((p, k) => {
          out[p] = entries[k];
        });
        continue;
      }
      waits.push(
        this.bus
          .request(
            owner,
            (w, id) => writeScrape(w, id, hashes, now),
            (body, at, type) => {
              if (type === MessageType.scrapeOk) return readScrapeOk(body, at);
              throw failureOf(body, at, type);
            },
          )
          .then((entries) => {
            positions.forEach((p, k) => {
              out[p] = entries[k];
            });
          }),
      );
    }
    return Promise.all(waits).then(() => out, unavailable);
  }

  async scrapeAll(now: number): Promise<Iterable<[Uint8Array, ScrapeEntry]>> {
    const parts = await Promise.all(
      this.#others().map((to) =>
        this.bus.request(
          to,
          (w, id) => writeText(w, MessageType.scrapeAll, id, String(now)),
          (body, at, type) => {
            if (type === MessageType.scrapeAllOk) return readScrapeAllOk(body, at);
            throw failureOf(body, at, type);
          },
        ),
      ),
    ).catch(unavailable);
    const local = await this.local.scrapeAll(now);
    return [...local, ...parts.flat()];
  }

  /** Expiry of the local shard only: every owner sweeps its own swarms. */
  sweep(now: number, budget: number): number | Promise<number> {
    return this.local.sweep(now, budget);
  }

  /** The whole tracker's swarm figures: every shard summed. */
  async stats(): Promise<SwarmStats> {
    const all = [
      await this.local.stats(),
      ...(await this.gather<{ swarm: SwarmStats }>()).map((s) => s.swarm),
    ];
    const sum: SwarmStats = { torrents: 0, peers: 0, seeders: 0, leechers: 0, peers4: 0, peers6: 0 };
    for (const s of all) {
      sum.torrents += s.torrents;
      sum.peers += s.peers;
      sum.seeders += s.seeders;
      sum.leechers += s.leechers;
      sum.peers4 += s.peers4;
      sum.peers6 += s.peers6;
    }
    return sum;
  }

  /** Every other worker's `localStats()` (for /stats and /metrics of the whole tracker). */
  gather<T>(): Promise<T[]> {
    return gatherStats<T>(this.bus);
  }

  async close(): Promise<void> {
    await this.bus.stop();
    await this.local.close();
  }

  #others(): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.#count; i++) if (i !== this.#index) out.push(i);
    return out;
  }

  /** Owner side: answer another worker's request about swarms of this shard. */
  #serve(
    type: MessageType,
    id: number,
    body: Buffer,
    at: number,
    reply: FrameWriter,
    done: () => void,
  ): void {
    try {
      switch (type) {
        case MessageType.announce: {
          if (bodyEnd(body, at) - at < ANNOUNCE_BYTES) throw new Error('short announce frame');
          const req = this.#req;
          const now = readAnnounce(body, at, req);
          const acct = readAccountTo(body, at, bodyEnd(body, at));
          const policy = this.#policy;
          const since = readAnnounceRevision(body, at);
          if (policy !== null && policy.revision() > since) {
            const refused = policy.recheck(
              req,
              acct?.member.id ?? null,
              acct?.torrent.id ?? null,
              acct?.keyPrint ?? null,
            );
            if (refused !== null) {
              writeAnnounceResult(reply, id, refused, req.family);
              break;
            }
          }
          // Private mode: the owner's verdict (peer limits, announce discipline, issue #16); a
          // refusal leaves the swarm untouched and crosses back as its code.
          if (acct === null) {
            writeAnnounceResult(
              reply,
              id,
              this.local.announce(req, now) as AnnounceResult | TrackerError,
              req.family,
            );
            break;
          }
          const swarm = acct.accountOnly !== true;
          const claimed = this.#claimed(req, acct.member, acct.torrent, now, swarm);
          if (claimed === null) {
            writeAnnounceResult(
              reply,
              id,
              this.#admit(req, acct.member, acct.torrent, now, swarm),
              req.family,
            );
            break;
          }
          if (!(claimed instanceof Promise)) {
            writeAnnounceResult(reply, id, claimed, req.family);
            break;
          }
          // Asynchronous: answered once the member's home has judged the claim.
          const family = req.family;
          claimed.then((r) => {
            writeAnnounceResult(reply, id, r, family);
            done();
          });
          return;
        }
        case MessageType.scrape: {
          const { now, hashes } = readScrape(body, at);
          writeScrapeOk(reply, id, this.local.scrape(hashes, now) as ScrapeEntry[]);
          break;
        }
        case MessageType.scrapeAll: {
          const now = Number(textOf(body, at));
          writeScrapeAllOk(reply, id, this.local.scrapeAll(now) as Iterable<[Uint8Array, ScrapeEntry]>);
          break;
        }
        case MessageType.activity: {
          const a = this.#activity?.(Number(textOf(body, at))) ?? { seeding: 0, leeching: 0 };
          writeText(reply, MessageType.activityOk, id, JSON.stringify(a));
          break;
        }
        case MessageType.stats:
          // Asynchronous: the reply is written when the figures are ready.
          replyStats(this.#localStats(), reply, id, done);
          return;
        default:
          throw new Error(`unknown cluster message ${type}`);
      }
    } catch (err) {
      this.#logger.error('cluster: cannot answer a request', { err: String(err), type });
      writeText(reply, MessageType.failure, id, err instanceof TrackerError ? err.code : 'internal error');
    }
    done();
  }
}

/** An owner's answer to an announce: the result, or its refusal as its code. */
function writeAnnounceResult(
  reply: FrameWriter,
  id: number,
  r: AnnounceResult | TrackerError,
  family: Family,
): void {
  if (r instanceof TrackerError) writeText(reply, MessageType.failure, id, r.code);
  else writeAnnounceOk(reply, id, r, family);
}

/** What the owner answers for a WebTorrent peer's accounting alone (`account`): no swarm, no peers. */
const ACCOUNTED: AnnounceResult = {
  complete: 0,
  incomplete: 0,
  downloaded: 0,
  peers: new Uint8Array(0),
  peerCount: 0,
  peerIds: null,
  peerIdKnown: null,
};

/** The accounting verdict an owner's answer carries. */
function verdictOf(r: AnnounceResult | TrackerError): AccountVerdict {
  return r instanceof TrackerError ? r : (r.warning ?? null);
}

/** A copy of a request that outlives the call (the frontends and the bus reuse theirs). */
function copyRequest(req: AnnounceRequest): AnnounceRequest {
  return { ...req, infoHash: req.infoHash.slice(), peerId: req.peerId.slice(), ip: req.ip.slice() };
}

function textOf(body: Buffer, at: number): string {
  return body.toString('utf8', at, bodyEnd(body, at));
}

function failureOf(body: Buffer, at: number, type: MessageType): Error {
  if (type !== MessageType.failure) return new Error(`cluster: unexpected reply ${type}`);
  // The owner's refusal from the catalogue (a peer limit, tracker full): the client reads it.
  const text = textOf(body, at);
  return trackerErrorOf(text) ?? new Error(`cluster: ${text}`);
}

/** The owner's answer to an announce: the result, or its refusal (thrown: `refusal` maps it). */
function announceReply(body: Buffer, at: number, type: MessageType): AnnounceResult {
  if (type === MessageType.announceOk) return readAnnounceOk(body, at);
  throw failureOf(body, at, type);
}

/** Any failure to reach the owner becomes the retryable refusal a client can act on. */
function refusal(err: unknown): TrackerError {
  return err instanceof TrackerError ? err : Errors.shardUnavailable;
}

/** For the rare whole-tracker reads (stats, full scrape): a plain rejection. */
function unavailable(err: unknown): never {
  throw err instanceof TrackerError ? err : Errors.shardUnavailable;
}
