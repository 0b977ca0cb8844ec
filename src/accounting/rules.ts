import { Errors, type TrackerError, Warnings } from '../core/errors.ts';
import { AnnounceEvent, type AnnounceRequest } from '../core/types.ts';
import type { AccountVerdict } from '../tracker/service.ts';

/** What an announce takes of a member's limits counted over every worker (`Rules.claims`). */
export const CLAIM_PEER = 1;
export const CLAIM_SLOT = 2;

/**
 * Peer limits and announce discipline (issue #16). A peer is a member × torrent × peer id, as the
 * accountant remembers it: it takes its place at its first announce and frees it with `stopped`,
 * or when it has been silent for `peerTimeout` (its baseline expires).
 */
export interface PeerRules {
  /** Most peers of one member on one torrent (0 = no limit). */
  peersPerTorrent: number;
  /** Most peers of one member over all torrents (0 = no limit). */
  peersPerMember: number;
  /** An announce closer than this many seconds to the same peer's previous one is early (0 = off). */
  minGap: number;
  /** What an early announce gets: a `warning message` beside the usual answer, or a refusal. */
  early: 'warn' | 'refuse';
}

/** Every rule off. */
export const NO_RULES: PeerRules = { peersPerTorrent: 0, peersPerMember: 0, minGap: 0, early: 'warn' };

/**
 * What the rules read of the accountant's baselines: live peers, counted the accountant's way
 * (a peer holds its place until `stopped` or until it has been silent for `peerTimeout`).
 */
export interface Baselines {
  /** Peers of the member on the torrent. */
  peersOn(memberId: number, torrentId: number): number;
  /** Those of them that are seeding. */
  seedersOn(memberId: number, torrentId: number): number;
  /** Peers of the member over all torrents. */
  peersOf(memberId: number): number;
  /** Torrents the member leeches now (none of its peers there is seeding). */
  leeching(memberId: number): number;
  /** Forgets silent peers now (expiry is otherwise lazy): their places are freed. */
  expire(): void;
}

/**
 * The private-community verdicts on one announce (issue #16): peer limits per member and torrent
 * and per member, download slots of the member's class, early announces. Each verdict is O(1)
 * from the baselines, except download slots (O(the member's torrents), only for a new peer of a
 * member whose class has slots); silent peers are expired only when a limit would refuse.
 */
export class Rules {
  readonly config: PeerRules;
  #baselines: Baselines;
  #slots: (memberId: number) => number;
  /** Announces refused by a peer limit, and early ones (refused or warned). */
  readonly counts = { refusedPeerLimit: 0, early: 0 };

  /** `slots`: the member's download slots (its class's; 0 = no limit). */
  constructor(config: PeerRules, baselines: Baselines, slots: (memberId: number) => number) {
    this.config = config;
    this.#baselines = baselines;
    this.#slots = slots;
  }

  /**
   * One announce: a new peer (`prevAt` null) beyond a limit or a slot is refused; so is a known
   * peer that was seeding (`prevSeeding`) and now reports something left, when it was the
   * member's only seeder there and no slot is free (the torrent would become a leeching one: a
   * client must not take a slot by announcing as a seeder first); an announce of a known peer
   * closer than `minGap` to its previous one (at `prevAt`) is early (`stopped` and `completed`
   * always pass: a client must be able to leave, and a snatch must count).
   */
  judge(
    prevAt: number | null,
    req: AnnounceRequest,
    memberId: number,
    torrentId: number,
    now: number,
    prevSeeding = false,
  ): AccountVerdict {
    const r = this.config;
    const event = req.event;
    if (event === AnnounceEvent.stopped) return null;
    if (prevSeeding && req.left > 0 && this.#slotsFull(memberId, torrentId, true))
      return Errors.downloadSlots;
    if (prevAt === null) {
      if (req.left > 0 && this.#slotsFull(memberId, torrentId, false)) return Errors.downloadSlots;
      if (r.peersPerTorrent === 0 && r.peersPerMember === 0) return null;
      let over = this.#overLimit(memberId, torrentId);
      // Places held by peers that went silent are freed first.
      if (over !== null) {
        this.#baselines.expire();
        over = this.#overLimit(memberId, torrentId);
        if (over !== null) this.counts.refusedPeerLimit++;
      }
      return over;
    }
    if (r.minGap === 0 || event === AnnounceEvent.completed || now - prevAt >= r.minGap) return null;
    this.counts.early++;
    return r.early === 'refuse' ? Errors.announceTooSoon : Warnings.announceTooSoon;
  }

  /**
   * With a shared store (Redis, several instances): `peersPerMember`, the rule the store cannot
   * decide, checked before the store is asked, over the member's peers this instance has seen
   * (its other torrents' baselines are in other buckets, out of one script's reach). `known`:
   * whether this instance holds the peer's baseline already.
   */
  admit(known: boolean, req: AnnounceRequest, memberId: number): TrackerError | null {
    const max = this.config.peersPerMember;
    if (max === 0 || req.event === AnnounceEvent.stopped || known) return null;
    if (this.#baselines.peersOf(memberId) < max) return null;
    this.#baselines.expire();
    if (this.#baselines.peersOf(memberId) < max) return null;
    this.counts.refusedPeerLimit++;
    return Errors.peerLimitMember;
  }

  /** The member's download slots (its class's; 0 = no limit). */
  slotsOf(memberId: number): number {
    return this.#slots(memberId);
  }

  /**
   * With workers (src/cluster/member-limits.ts): what an announce would take of the member's
   * limits that count over every worker: CLAIM_PEER for a new peer when `peersPerMember` is set,
   * CLAIM_SLOT for a torrent it starts leeching when its class has slots (a new leeching peer on a
   * torrent the member is not on, or its only seeder there now leeching), as `judge` counts them.
   * `prevSeeding`: the peer's baseline here, seeding or not; null when it has none. O(1).
   */
  claims(prevSeeding: boolean | null, req: AnnounceRequest, memberId: number, torrentId: number): number {
    if (req.event === AnnounceEvent.stopped) return 0;
    let c = prevSeeding === null && this.config.peersPerMember > 0 ? CLAIM_PEER : 0;
    if (req.left > 0 && (prevSeeding === null || prevSeeding) && this.#slots(memberId) > 0) {
      const b = this.#baselines;
      if (prevSeeding === null ? b.peersOn(memberId, torrentId) === 0 : b.seedersOn(memberId, torrentId) <= 1)
        c |= CLAIM_SLOT;
    }
    return c;
  }

  /**
   * What the member holds in these baselines, as the limits count it: its peers (when
   * `peersPerMember` is set) and its leeching torrents (when its class has slots); with
   * `expire`, silent peers are forgotten first.
   */
  held(memberId: number, expire = false): { peers: number; leeching: number } {
    const b = this.#baselines;
    if (expire) b.expire();
    return {
      peers: this.config.peersPerMember > 0 ? b.peersOf(memberId) : 0,
      leeching: this.#slots(memberId) > 0 ? b.leeching(memberId) : 0,
    };
  }

  /** Counts a verdict reached elsewhere (a shared store, the member's home worker). */
  note(verdict: AccountVerdict): void {
    if (verdict === Errors.peerLimitTorrent || verdict === Errors.peerLimitMember)
      this.counts.refusedPeerLimit++;
    else if (verdict === Errors.announceTooSoon || verdict === Warnings.announceTooSoon) this.counts.early++;
  }

  /**
   * Download slots: a member whose class has `slots` may leech that many torrents at once; a new
   * leeching torrent beyond them is refused (one already held, and seeding, are not). Counted
   * over the torrents of this process (with workers, the member's home worker counts them over
   * every worker before this runs: src/cluster/member-limits.ts); silent peers' places are freed first.
   * `seeder`: the announcing peer is known and was seeding (the torrent is held unless it was
   * the only seeder there); otherwise it is new (the torrent is held if any peer is on it).
   */
  #slotsFull(memberId: number, torrentId: number, seeder: boolean): boolean {
    const slots = this.#slots(memberId);
    if (slots === 0) return false;
    const b = this.#baselines;
    const held = () => (seeder ? b.seedersOn(memberId, torrentId) > 1 : b.peersOn(memberId, torrentId) > 0);
    if (held() || b.leeching(memberId) < slots) return false;
    b.expire();
    return !held() && b.leeching(memberId) >= slots;
  }

  #overLimit(memberId: number, torrentId: number): AccountVerdict {
    const r = this.config;
    const b = this.#baselines;
    if (r.peersPerTorrent > 0 && b.peersOn(memberId, torrentId) >= r.peersPerTorrent)
      return Errors.peerLimitTorrent;
    if (r.peersPerMember > 0 && b.peersOf(memberId) >= r.peersPerMember) return Errors.peerLimitMember;
    return null;
  }
}
