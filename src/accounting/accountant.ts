import { binaryString } from '../core/bytes.ts';
import type { Clock } from '../core/clock.ts';
import { TrackerError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { type AccountedResult, AnnounceEvent, type AnnounceRequest, type PeerPlace } from '../core/types.ts';
import type { Registry } from '../db/registry.ts';
import type { AccessChange, PolicyMember, PolicySnapshot, PolicyTorrent } from '../policy/policy.ts';
import { type Credit, credit } from '../policy/promotions.ts';
import type { AccountVerdict } from '../tracker/service.ts';
import type { MemberPending, MemberTorrentPending } from './flush-writer.ts';
import { type AccountingCounts, addTraffic, Pending, type WireBatch } from './pending.ts';
import { NO_RULES, type PeerRules, Rules } from './rules.ts';

export type { WireBatch } from './pending.ts';

/**
 * What can still be credited, in bytes, as of `at`: it grows by `max_rate` a second, up to
 * `peer_timeout` seconds' worth, and each credited delta uses it up. Kept per member × torrent
 * and per address, so that neither many peer ids nor many accounts multiply what one link can
 * carry (issue #15).
 */
interface Allowance {
  up: number;
  down: number;
  at: number;
  /** Live baselines under it; at 0 it is forgotten. */
  peers: number;
}

/** One member on one torrent, over all its peer ids. */
interface Holding extends Allowance {
  memberId: number;
  torrentId: number;
  /** Baselines that are seeding: the torrent counts as "seeding now" while one is. */
  seeders: number;
  /** Seeding time is credited up to here: it advances at most at the speed of the clock. */
  seededTo: number;
  /** Its baselines (`peers` of them), found by peer id without a key string per announce. */
  baselines: PeerState[];
  /** The same by peer id, once there are more than `SCAN_PEERS` (no peer limit configured). */
  byPeerId: Map<string, PeerState> | null;
  /**
   * The pending sums this member × torrent's last announce added to (its row and its member's),
   * valid while `rowEpoch` is the accountant's `#epoch` (until the next flush takes them): a peer
   * announcing again within a flush interval finds them without three map lookups.
   */
  row: MemberTorrentPending | null;
  memberRow: MemberPending | null;
  rowEpoch: number;
  /** The info hashes its peers announced with, as latin1 (a hybrid torrent's two at most): their swarms. */
  hashes: string[];
  /** The torrent's route hash (`PolicyTorrent.route`): where a shared store keeps its member's places. */
  route: Uint8Array;
}

/** Up to this many baselines of one member on one torrent are found by a scan, beyond by a map. */
const SCAN_PEERS = 8;

/**
 * An announce as a shared store (Redis) answered it: the peer's previous baseline, from whichever
 * instance the previous announce reached, and the seeding seconds the store credited. The store
 * also decided the per-torrent peer limit and early announces (the baselines are there).
 */
export type SharedAnnounce = Pick<AccountedResult, 'previous' | 'seed'>;

/** One address (IPv4, or IPv6 /64), over all members and torrents. */
interface Link extends Allowance {
  key: string;
}

/** What the accountant remembers of one peer (member × torrent × peer id) between announces. */
interface PeerState {
  uploaded: number;
  downloaded: number;
  at: number;
  seeding: boolean;
  holding: Holding;
  /** The address of the previous announce: the bytes reported now moved through it. */
  link: Link;
  /** The peer id, as a latin1 string (made once, at the peer's first announce). */
  peerId: string;
  /** Its endpoint in the swarm (address as latin1, port): where `revoke` removes it from. */
  addr: string;
  port: number;
  /** Neighbours in least-recently-announced order (null at either end). */
  older: PeerState | null;
  newer: PeerState | null;
}

/** Takes a peer out of one swarm (`infoHash` and the address as latin1), as a `stopped` from it would. */
export type RemovePeer = (infoHash: string, family: 4 | 6, addr: string, port: number) => void;

export interface AccountantOptions {
  logger: Logger;
  clock: Clock;
  /** Policy snapshot getter (site-wide factors). */
  snapshot: () => PolicySnapshot;
  /** Seconds between flushes: the most a crash can lose. */
  flushInterval: number;
  /**
   * Bytes per second credited at most per peer, per member × torrent and per address; a delta
   * beyond it is flagged and not credited (0 = no limit).
   */
  maxRate: number;
  /** A gap longer than this between two announces does not count as seeding time. */
  peerTimeout: number;
  /** Most per-peer baselines held; past it the least recently seen is forgotten. */
  maxPeers: number;
  /** The rules of issue #16 that need each peer's previous announce; all off when absent. */
  rules?: PeerRules;
  /**
   * Takes the peer of a baseline forgotten because `maxPeers` was full out of the swarms, so that
   * every peer in a private swarm has a baseline here and `revoke` finds them all (without it, a
   * member who lost access would leave such a peer behind until `peer_timeout`). The peer is back
   * at its next announce (within `interval`: the least recently announced goes first), with a new
   * baseline, as it would be anyway.
   */
  evict?: RemovePeer;
}

/**
 * Private-mode accounting (DESIGN.md "accounting"). Per announce, synchronously and without I/O:
 * the delta of `uploaded`/`downloaded` since the same peer's previous announce, credited with the
 * torrent's and the site's factors, seeding time, snatches. Deltas add up in memory and are
 * written by `flush()` in one transaction per interval, never one write per announce (the pending
 * sums, the batch and its write are src/accounting/pending.ts's; this file keeps the per-announce side).
 *
 * Rate limits and seeding time belong to the member on the torrent, not to a peer id: a member
 * who announces through twenty peer ids (or one who runs twenty real clients) is credited at most
 * `maxRate` bytes a second on that torrent, and at most one second of seeding time a second. An
 * address (IPv4, IPv6 /64) is credited at most `maxRate` over all members and torrents: one link
 * carries no more than that, however many accounts share it.
 *
 * Memory: at most `maxPeers` baselines, kept in least-recently-announced order (a list through
 * the baselines themselves: an announce moves its peer to the end, with no allocation and no
 * map entry deleted and added again), so the oldest is evicted first and expiry stops at the
 * first live one. A baseline is found from its member × torrent holding (small-integer maps,
 * then its few peer ids compared byte by byte): an announce builds no key string. A forgotten peer's next announce is a new baseline: the gap
 * is not credited, never credited twice. Member × torrent and address state lives exactly as long
 * as a baseline refers to it.
 *
 * What a crash can lose: the deltas since the last flush (at most `flushInterval` seconds), and
 * the per-peer baselines (the first announce of each peer after a restart credits nothing).
 */
export class Accountant {
  #o: AccountantOptions;
  /** Baselines held, and the least and most recently announced of them. */
  #count = 0;
  #oldest: PeerState | null = null;
  #newest: PeerState | null = null;
  /** member id → torrent id → holding. */
  #holdings = new Map<number, Map<number, Holding>>();
  #links = new Map<string, Link>();
  /** member id → peers (baselines) over all torrents: for `peersPerMember`. */
  #memberPeers = new Map<number, number>();
  /** The private-community verdicts (src/accounting/rules.ts), over these baselines. */
  readonly rules: Rules;
  /** The pending sums and flags, and their flush (src/accounting/pending.ts). */
  #pending: Pending;
  /** Baselines forgotten by expiry so far. */
  #expired = 0;
  /** `credit`'s answer, reused by every announce. */
  #credit: Credit = { up: 0, down: 0 };
  /** Counters for /stats and tests. */
  readonly counts: AccountingCounts = {
    flushes: 0,
    flushErrors: 0,
    flagged: 0,
    flagsDropped: 0,
    credited: 0,
    dropped: 0,
    /** Flushes written a second time, checked, after a removed torrent broke a foreign key. */
    rewrites: 0,
    evicted: 0,
    /** Baselines forgotten (and their peers taken out of the swarms) when their member lost access. */
    revoked: 0,
    /** Wall-clock seconds spent writing flushes that committed (herald_accounting_flush_seconds_total). */
    flushSeconds: 0,
    /** Member x torrent rows written by flushes that committed (herald_accounting_rows_written_total). */
    rowsWritten: 0,
  };

  constructor(opts: AccountantOptions) {
    this.#o = opts;
    this.#pending = new Pending({
      logger: opts.logger,
      clock: opts.clock,
      flushInterval: opts.flushInterval,
      maxPeers: opts.maxPeers,
      counts: this.counts,
      beforeTake: () => this.#expireBaselines(),
    });
    this.rules = new Rules(
      opts.rules ?? NO_RULES,
      {
        peersOn: (memberId, torrentId) => this.#holdings.get(memberId)?.get(torrentId)?.peers ?? 0,
        seedersOn: (memberId, torrentId) => this.#holdings.get(memberId)?.get(torrentId)?.seeders ?? 0,
        peersOf: (memberId) => this.#memberPeers.get(memberId) ?? 0,
        leeching: (memberId) => this.#leeching(memberId),
        expire: () => this.#expireBaselines(),
      },
      (memberId) => opts.snapshot().classById.get(memberId)?.slots ?? 0,
    );
  }

  /**
   * One announce that policy has accepted. Returns null, or a refusal (nothing is counted or
   * remembered: the peer's next accepted announce is credited from its last accepted one), or a
   * warning (the announce counts as usual: a delta is credited once whatever the gap).
   */
  account(
    req: AnnounceRequest,
    member: PolicyMember,
    torrent: PolicyTorrent,
    now: number,
    shared?: SharedAnnounce,
  ): AccountVerdict {
    let prev = this.#find(member.id, torrent.id, req.peerId);
    let verdict: AccountVerdict = null;
    if (shared === undefined) {
      const expired = this.#expired;
      verdict = this.rules.judge(prev?.at ?? null, req, member.id, torrent.id, now, prev?.seeding);
      if (verdict instanceof TrackerError) return verdict;
      // The rules may have expired silent baselines, this peer's among them: it is a new one then.
      if (prev !== undefined && this.#expired !== expired)
        prev = this.#find(member.id, torrent.id, req.peerId);
    } else if (prev === undefined && shared.previous !== null) {
      // The peer's previous announce reached another instance: this one's allowances for it start
      // from then (they refill over the same gap the delta covers, at least the clock's second).
      const since = Math.min(shared.previous.at, now - 1);
      prev = this.#remember(req, member.id, torrent, shared.previous.seeding, since, now);
    }
    // The baseline the delta is computed from: this process's own, or the shared store's.
    const base = shared === undefined ? prev : (shared.previous ?? undefined);
    const seeding = req.left === 0;
    const wasLeeching = base !== undefined && !base.seeding;
    let du = 0;
    let dd = 0;
    let seed = 0;
    if (base !== undefined && prev !== undefined && req.event !== AnnounceEvent.started) {
      du = req.uploaded - base.uploaded;
      dd = req.downloaded - base.downloaded;
      // Counters that went backwards were reset by the client (a restart without `started`):
      // the new values are the new baseline, nothing is credited or debited.
      if (du < 0) du = 0;
      if (dd < 0) dd = 0;
      const gap = now - base.at;
      const h = prev.holding;
      if (shared !== undefined) seed = shared.seed;
      else if (prev.seeding && gap <= this.#o.peerTimeout) {
        // Only the part of the gap that no other peer id of this member has been credited for.
        const from = Math.max(prev.at, h.seededTo);
        if (now > from) {
          seed = now - from;
          h.seededTo = now;
        }
      }
      const elapsed = Math.max(1, gap);
      const kind = this.#overRate(du, dd, elapsed, h, prev.link, now);
      if (kind !== null) {
        // Faster than any real link: recorded for staff, not credited.
        this.#pending.flag({
          memberId: member.id,
          torrentId: torrent.id,
          peerId: Buffer.from(req.peerId).toString('hex'),
          kind,
          uploaded: du,
          downloaded: dd,
          seconds: elapsed,
          at: now,
        });
        du = 0;
        dd = 0;
      }
    }
    // This member × torrent's holding, once this announce is remembered (or forgotten: a holding
    // whose last peer stopped has no peers left and is no longer held).
    let held: Holding | null = null;
    if (req.event === AnnounceEvent.stopped) {
      if (prev !== undefined) {
        held = prev.holding;
        this.#forget(prev);
      }
    } else if (prev === undefined)
      held = this.#remember(req, member.id, torrent, seeding, now - 1, now).holding;
    else {
      held = prev.holding;
      prev.uploaded = req.uploaded;
      prev.downloaded = req.downloaded;
      prev.at = now;
      if (prev.seeding !== seeding) prev.holding.seeders += seeding ? 1 : -1;
      prev.seeding = seeding;
      if (!sameAddress(prev.link.key, req)) {
        const link = this.#link(req, now - 1);
        this.#release(prev.link);
        link.peers++;
        prev.link = link;
      }
      if (prev.port !== req.port || !sameAddress(prev.addr, req, true)) {
        prev.addr = req.family === 4 ? prev.link.key : binaryString(req.ip);
        prev.port = req.port;
      }
      if (!sameLatin1(prev.holding.hashes[0], req.infoHash)) noteHash(prev.holding, req.infoHash);
      // Least recently announced first: move this peer to the end.
      if (prev !== this.#newest) {
        this.#unlink(prev);
        this.#append(prev);
      }
    }

    const snap = this.#o.snapshot();
    // Factors are percentages: torrent, site, class and promotions, combined by the rule in
    // policy/promotions.ts (freeleech wins; the largest upload factor applies, not a product).
    const c = credit(snap, member.id, torrent, snap.classById.get(member.id), du, dd, now, this.#credit);
    const up = c.up;
    const down = c.down;
    if (du > 0 || dd > 0) this.counts.credited++;

    let m: MemberPending;
    let mt: MemberTorrentPending;
    const pending = this.#pending;
    if (held !== null && held.rowEpoch === pending.epoch) {
      m = held.memberRow!;
      mt = held.row!;
    } else {
      m = pending.memberRow(member.id, now);
      mt = pending.row(member.id, torrent.id, now);
      if (held !== null) {
        held.memberRow = m;
        held.row = mt;
        held.rowEpoch = pending.epoch;
      }
    }
    addTraffic(m, up, down, du, dd, seed);
    m.lastAt = now;
    addTraffic(mt, up, down, du, dd, seed);
    mt.announces++;
    mt.lastAt = now;
    const h =
      held !== null ? (held.peers > 0 ? held : undefined) : this.#holdings.get(member.id)?.get(torrent.id);
    mt.state = h === undefined ? 0 : h.seeders > 0 ? 2 : 1;
    // A snatch: the client says `completed`, or a peer seen leeching now reports nothing left
    // (some clients, aria2 with --seed-time=0 among them, only send `stopped` with left=0).
    const finished = req.event === AnnounceEvent.completed || (wasLeeching && seeding);
    if (finished && mt.completedAt === 0) mt.completedAt = now;
    return verdict;
  }

  /**
   * With a shared store (Redis, several instances): the rule the store cannot decide, checked
   * before the store is asked (see `Rules.admit`).
   */
  admit(req: AnnounceRequest, member: PolicyMember, torrent: PolicyTorrent): TrackerError | null {
    return this.rules.admit(this.knows(req, member, torrent), req, member.id);
  }

  /**
   * With workers: what this announce would take of the member's limits counted over every worker
   * (`Rules.claims`: CLAIM_PEER, CLAIM_SLOT), from the peer's baseline here.
   */
  claims(req: AnnounceRequest, member: PolicyMember, torrent: PolicyTorrent): number {
    const r = this.rules;
    if (r.config.peersPerMember === 0 && (req.left === 0 || r.slotsOf(member.id) === 0)) return 0;
    const prev = this.#find(member.id, torrent.id, req.peerId);
    return this.rules.claims(prev === undefined ? null : prev.seeding, req, member.id, torrent.id);
  }

  /**
   * Whether this process holds a live baseline of the peer (it announced here within
   * `peerTimeout`); with `leeching`, one that is leeching.
   */
  knows(req: AnnounceRequest, member: PolicyMember, torrent: PolicyTorrent, leeching = false): boolean {
    const p = this.#find(member.id, torrent.id, req.peerId);
    return p !== undefined && p.at >= this.#o.clock.now() - this.#o.peerTimeout && !(leeching && p.seeding);
  }

  /**
   * Which limit a delta breaks, or null: the peer's own (more than `maxRate` × its own gap), its
   * member × torrent's, or its address's allowance. A delta within all three uses them up.
   */
  #overRate(du: number, dd: number, elapsed: number, h: Holding, link: Link, now: number): string | null {
    const max = this.#o.maxRate;
    if (max === 0) return null;
    if (du > max * elapsed || dd > max * elapsed) return 'rate';
    const cap = max * this.#o.peerTimeout;
    refill(h, now, max, cap);
    if (du > h.up || dd > h.down) return 'rate-member-torrent';
    refill(link, now, max, cap);
    if (du > link.up || dd > link.down) return 'rate-address';
    h.up -= du;
    h.down -= dd;
    link.up -= du;
    link.down -= dd;
    return null;
  }

  /** A new baseline: evicts the least recently announced peer when full. */
  #remember(
    req: AnnounceRequest,
    memberId: number,
    torrent: PolicyTorrent,
    seeding: boolean,
    since: number,
    now: number,
  ): PeerState {
    if (this.#count >= this.#o.maxPeers && this.#oldest !== null) {
      const evicted = this.#oldest;
      this.#forget(evicted);
      // Not when it is this announce's own endpoint (another peer id of it): that peer is live.
      if (this.#o.evict !== undefined && !(evicted.port === req.port && sameAddress(evicted.addr, req, true)))
        leaveSwarms(evicted, this.#o.evict);
      this.counts.evicted++;
    }
    let byTorrent = this.#holdings.get(memberId);
    if (byTorrent === undefined) {
      byTorrent = new Map();
      this.#holdings.set(memberId, byTorrent);
    }
    const torrentId = torrent.id;
    let holding = byTorrent.get(torrentId);
    if (holding === undefined) {
      // Starts with the clock's one second (as a peer's own gap counts at least 1 s): a new
      // baseline credits nothing, so nothing more can be owed yet.
      holding = {
        memberId,
        torrentId,
        up: 0,
        down: 0,
        at: since,
        peers: 0,
        seeders: 0,
        seededTo: 0,
        baselines: [],
        byPeerId: null,
        row: null,
        memberRow: null,
        rowEpoch: -1,
        hashes: [],
        route: torrent.route,
      };
      byTorrent.set(torrentId, holding);
    }
    noteHash(holding, req.infoHash);
    holding.peers++;
    this.#memberPeers.set(memberId, (this.#memberPeers.get(memberId) ?? 0) + 1);
    if (seeding) holding.seeders++;
    const link = this.#link(req, since);
    link.peers++;
    const p: PeerState = {
      uploaded: req.uploaded,
      downloaded: req.downloaded,
      at: now,
      seeding,
      holding,
      link,
      peerId: binaryString(req.peerId),
      addr: req.family === 4 ? link.key : binaryString(req.ip),
      port: req.port,
      older: null,
      newer: null,
    };
    holding.baselines.push(p);
    if (holding.byPeerId !== null) holding.byPeerId.set(p.peerId, p);
    else if (holding.baselines.length > SCAN_PEERS)
      holding.byPeerId = new Map(holding.baselines.map((b) => [b.peerId, b]));
    this.#append(p);
    this.#count++;
    return p;
  }

  /** The baseline of a member's peer id on a torrent, if one is held. */
  #find(memberId: number, torrentId: number, peerId: Uint8Array): PeerState | undefined {
    const h = this.#holdings.get(memberId)?.get(torrentId);
    if (h === undefined) return undefined;
    if (h.byPeerId !== null) return h.byPeerId.get(binaryString(peerId));
    const list = h.baselines;
    for (let i = 0; i < list.length; i++) if (sameLatin1(list[i].peerId, peerId)) return list[i];
    return undefined;
  }

  /** Puts a baseline at the most recently announced end of the list. */
  #append(p: PeerState): void {
    p.older = this.#newest;
    p.newer = null;
    if (this.#newest === null) this.#oldest = p;
    else this.#newest.newer = p;
    this.#newest = p;
  }

  #unlink(p: PeerState): void {
    if (p.older === null) this.#oldest = p.newer;
    else p.older.newer = p.newer;
    if (p.newer === null) this.#newest = p.older;
    else p.newer.older = p.older;
    p.older = null;
    p.newer = null;
  }

  #forget(p: PeerState): void {
    this.#unlink(p);
    this.#count--;
    const h = p.holding;
    const list = h.baselines;
    const i = list.indexOf(p);
    if (i >= 0) {
      list[i] = list[list.length - 1];
      list.pop();
    }
    h.byPeerId?.delete(p.peerId);
    if (p.seeding) h.seeders--;
    const n = (this.#memberPeers.get(h.memberId) ?? 1) - 1;
    if (n === 0) this.#memberPeers.delete(h.memberId);
    else this.#memberPeers.set(h.memberId, n);
    if (--h.peers === 0) {
      const byTorrent = this.#holdings.get(h.memberId);
      byTorrent?.delete(h.torrentId);
      if (byTorrent?.size === 0) this.#holdings.delete(h.memberId);
    }
    this.#release(p.link);
  }

  #release(link: Link): void {
    if (--link.peers === 0) this.#links.delete(link.key);
  }

  /** The address's allowance (IPv4 address, IPv6 /64: what one subscriber is given). */
  /** `since`: where a new allowance starts (a new baseline credits nothing before it). */
  #link(req: AnnounceRequest, since: number): Link {
    const key = binaryString(req.family === 4 ? req.ip : req.ip.subarray(0, 8));
    let link = this.#links.get(key);
    if (link === undefined) {
      link = { key, up: 0, down: 0, at: since, peers: 0 };
      this.#links.set(key, link);
    }
    return link;
  }

  /** Baselines held (tests and /stats): at most `maxPeers`. */
  get peers(): number {
    return this.#count;
  }

  /**
   * Seconds since the database last held every credit (`/metrics`
   * `herald_accounting_flush_age_seconds`): at most about `flushInterval` while flushes succeed,
   * growing while they fail (a database down or locked), which is what a crash would lose.
   */
  flushAge(): number {
    return this.#pending.flushAge();
  }

  /** Attaches the database (opened by `Tracker.start`). */
  connect(registry: Registry): void {
    this.#pending.connect(registry);
  }

  /** Pending member-torrent rows (tests and /stats). */
  get pending(): number {
    return this.#pending.rows;
  }

  /** Written pending sums kept for reuse (tests). */
  get reusable(): number {
    return this.#pending.reusable;
  }

  start(): void {
    this.#pending.start();
  }

  /**
   * Stops the timer and writes everything pending (graceful shutdown). A failed write is tried
   * again a few times, a little later each time (a lock held by the CLI or a backup, a database
   * restarting); after that what could not be written is logged, with its totals, and lost.
   */
  stop(): Promise<void> {
    return this.#pending.stop();
  }

  /**
   * Writes what has accumulated in one transaction. On failure the batch is merged back and
   * retried at the next flush: nothing is lost while the process lives.
   */
  flush(): Promise<void> {
    return this.#pending.flush();
  }

  /** Whether nothing waits to be written. */
  get idle(): boolean {
    return this.#pending.idle;
  }

  /**
   * With workers: everything pending, taken out for the primary, which writes the batches of all
   * workers in one transaction (src/cluster/accounting-link.ts). Null when nothing is pending.
   */
  takeBatch(): WireBatch | null {
    return this.#pending.takeBatch();
  }

  /** The primary: adds a worker's batch to what the next flush writes. */
  absorb(w: WireBatch): void {
    this.#pending.absorb(w);
  }

  /**
   * Torrents a member is on now: seeding (one of its peers there has nothing left) or leeching,
   * each torrent counted once however many peer ids the member announces it with. From the
   * baselines of the last `peerTimeout` seconds; O(the member's torrents).
   */
  activity(memberId: number): { seeding: number; leeching: number } {
    this.#expireBaselines();
    let seeding = 0;
    let leeching = 0;
    for (const h of this.#holdings.get(memberId)?.values() ?? []) {
      if (h.seeders > 0) seeding++;
      else leeching++;
    }
    return { seeding, leeching };
  }

  /** Torrents the member leeches now (none of its peers there seeds): O(the member's torrents). */
  #leeching(memberId: number): number {
    let leeching = 0;
    for (const h of this.#holdings.get(memberId)?.values() ?? []) if (h.seeders === 0) leeching++;
    return leeching;
  }

  /**
   * After policy judged access again (a reload, a grant's expiry): forgets the baselines of the
   * members who lost access to their torrents, and hands each one's swarm endpoint to `remove`,
   * which takes the peer out of the swarm (as expiry would, later). Nothing is credited: the last
   * accepted announce's deltas are pending already, and a refused one counts nothing. Visits only
   * what `change` names (the holdings of changed members, of revoked pairs; for changed torrents,
   * one map lookup per member holding baselines). Returns the baselines forgotten. `release`, when
   * given, is handed each forgotten peer's place (a shared store's count of the member's peers
   * frees it, as the peer's `stopped` would).
   */
  revoke(change: AccessChange, remove: RemovePeer, release?: (place: PeerPlace) => void): number {
    let n = 0;
    const visit = (h: Holding | undefined) => {
      if (h === undefined || h.peers === 0 || !change.lost(h.memberId, h.torrentId)) return;
      for (const p of h.baselines.slice()) {
        leaveSwarms(p, remove);
        release?.({
          memberId: h.memberId,
          route: h.route,
          torrentId: h.torrentId,
          peerId: Buffer.from(p.peerId, 'latin1'),
        });
        this.#forget(p);
        n++;
      }
    };
    for (const id of change.members) for (const h of [...(this.#holdings.get(id)?.values() ?? [])]) visit(h);
    for (const [id, torrents] of change.pairs) {
      const byTorrent = this.#holdings.get(id);
      if (byTorrent !== undefined) for (const t of torrents) visit(byTorrent.get(t));
    }
    if (change.torrents.size > 0)
      for (const byTorrent of [...this.#holdings.values()])
        for (const t of change.torrents) visit(byTorrent.get(t));
    this.counts.revoked += n;
    return n;
  }

  /** Forgets baselines of peers that stopped announcing (they would have expired anyway). */
  #expireBaselines(): void {
    const cutoff = this.#o.clock.now() - this.#o.peerTimeout;
    // Oldest first: the first live baseline ends the scan.
    while (this.#oldest !== null && this.#oldest.at < cutoff) {
      this.#forget(this.#oldest);
      this.#expired++;
    }
  }
}

/** Takes the peer of baseline `p` out of every swarm of its holding (both hashes of a hybrid). */
function leaveSwarms(p: PeerState, remove: RemovePeer): void {
  for (const hash of p.holding.hashes) remove(hash, p.addr.length === 4 ? 4 : 6, p.addr, p.port);
}

/** Adds `hash` to the holding's swarms when it is not one of them. */
function noteHash(h: Holding, hash: Uint8Array): void {
  for (let i = 0; i < h.hashes.length; i++) if (sameLatin1(h.hashes[i], hash)) return;
  h.hashes.push(binaryString(hash));
}

/** Whether a latin1 string (a peer id, an info hash) holds the bytes of `b` (no string made for `b`). */
function sameLatin1(s: string | undefined, b: Uint8Array): boolean {
  if (s === undefined || s.length !== b.length) return false;
  for (let i = 0; i < b.length; i++) if (s.charCodeAt(i) !== b[i]) return false;
  return true;
}

/**
 * Whether an address key (see `#link`) is the announce's address (IPv4, or IPv6 /64; `whole`: the
 * whole IPv6 address).
 */
function sameAddress(key: string, req: AnnounceRequest, whole = false): boolean {
  const n = req.family === 4 ? 4 : whole ? 16 : 8;
  if (key.length !== n) return false;
  for (let i = 0; i < n; i++) if (key.charCodeAt(i) !== req.ip[i]) return false;
  return true;
}

/** Grows an allowance by `rate` a second since it was last looked at, up to `cap`. */
function refill(a: Allowance, now: number, rate: number, cap: number): void {
  if (now <= a.at) return;
  const more = rate * (now - a.at);
  a.up = Math.min(cap, a.up + more);
  a.down = Math.min(cap, a.down + more);
  a.at = now;
}
