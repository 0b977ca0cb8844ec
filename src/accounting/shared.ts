import { TrackerError, Warnings } from '../core/errors.ts';
import {
  type AccountedResult,
  AnnounceEvent,
  type AnnounceRequest,
  type AnnounceResult,
  type PeerPlace,
  type SharedAccountArgs,
  type SharedAccounted,
  type SlotClaim,
} from '../core/types.ts';
import type { PolicyMember, PolicyTorrent } from '../policy/types.ts';
import type { AccountVerdict, Dispatch, RemoteAccountStep } from '../tracker/service.ts';
import type { Accountant } from './accountant.ts';
import type { PeerRules } from './rules.ts';

/** What private mode needs of a shared swarm store (RedisSwarmStore implements it). */
export interface SharedBaselineStore {
  announce(req: AnnounceRequest, now: number): Promise<AnnounceResult | TrackerError>;
  announceAccounted(
    req: AnnounceRequest,
    now: number,
    acct: SharedAccountArgs,
  ): Promise<AccountedResult | TrackerError>;
  /** A WebTorrent peer's announce (its swarm is elsewhere): the baseline exchange and its rules alone. */
  accountOnly(
    req: AnnounceRequest,
    now: number,
    acct: SharedAccountArgs,
  ): Promise<SharedAccounted | TrackerError>;
}

/** Download slots counted over every instance (RedisSlots, src/store/redis/slots.ts). */
export interface SharedSlots {
  /** Null when the member may leech the torrent, else the refusal (or a promise of either). */
  claim(c: SlotClaim): Promise<TrackerError | null> | null;
}

/** `peers_per_member` counted over every instance (RedisPeers, src/store/redis/slots.ts). */
export interface SharedPeers {
  /**
   * A peer's announce (not `stopped`): null when this instance knows the peer (its place is
   * refreshed without waiting), else its place taken ('new'), held already ('held'), or the refusal.
   */
  claim(p: PeerPlace, limit: number, known: boolean): Promise<'new' | 'held' | TrackerError> | null;
  /** Frees the peer's place. */
  release(p: PeerPlace): void;
}

/** An announce of a member on a torrent, judged (and accounted) over every instance. */
type MemberStep<R> = (
  req: AnnounceRequest,
  member: PolicyMember,
  torrent: PolicyTorrent,
  now: number,
) => R | TrackerError | Promise<R | TrackerError>;

/**
 * Private mode on a shared store (several instances on one Redis, issue #14): the service's
 * accounting-and-swarm step. Each peer's baseline lives with it in the store, and the store's
 * one announce script reads and replaces it, so a client whose announces alternate between
 * instances is credited each delta exactly once; the accountant of the instance that answered
 * credits it and flushes to the shared database as usual.
 *
 * Shared (exact over every instance): the baseline (uploaded, downloaded, time, seeding), hence
 * the delta, the per-peer rate check, the snatch (a leecher now seeding, or `completed`; written
 * once per member and torrent by the database), seeding time, `peers_per_torrent` and early
 * announces, download slots (`slots`) and `peers_per_member` (with `peers`; without, it is
 * counted per instance). Per instance: the allowances of `max_rate` per member × torrent and per
 * address, and the member activity the portal shows.
 */
export function sharedAccounting(
  store: SharedBaselineStore,
  accountant: Accountant,
  rules: PeerRules,
  slots?: SharedSlots,
  peers?: SharedPeers,
): Dispatch {
  const step = limited(accountant, rules, slots, peers, (req, member, torrent, now) =>
    store.announceAccounted(req, now, accountArgs(rules, member, torrent)).then((r) => {
      if (r instanceof TrackerError) {
        accountant.rules.note(r);
        return r;
      }
      accountant.account(req, member, torrent, now, r);
      if (r.early) {
        r.warning = Warnings.announceTooSoon;
        accountant.rules.note(r.warning);
      }
      return r;
    }),
  );
  return (req, ctx, now) =>
    ctx.member === null || ctx.torrent === null
      ? store.announce(req, now)
      : step(req, ctx.member, ctx.torrent, now);
}

/**
 * WebTorrent (WebSocket) peers on a shared store (several instances on Redis): their swarms are
 * not the announce script's, but their accounting baselines are the store's, beside the member's
 * other peers' (`accountOnly`), so every limit counted over every instance counts them with the
 * rest, HTTP and UDP peers included: `peers_per_torrent` and early announces (in the store),
 * download slots (`slots`, judged from those baselines) and `peers_per_member` (`peers`). The
 * instance holding the socket credits the delta. The service's `wsAccount`.
 */
export function sharedWebRtcAccounting(
  store: SharedBaselineStore,
  accountant: Accountant,
  rules: PeerRules,
  slots?: SharedSlots,
  peers?: SharedPeers,
): RemoteAccountStep {
  return limited<AccountVerdict>(accountant, rules, slots, peers, (req, member, torrent, now) =>
    store.accountOnly(req, now, accountArgs(rules, member, torrent)).then((r) => {
      if (r instanceof TrackerError) {
        accountant.rules.note(r);
        return r;
      }
      accountant.account(req, member, torrent, now, r);
      if (!r.early) return null;
      accountant.rules.note(Warnings.announceTooSoon);
      return Warnings.announceTooSoon;
    }),
  );
}

/** The private-mode part of an announce to the shared store. */
function accountArgs(rules: PeerRules, member: PolicyMember, torrent: PolicyTorrent): SharedAccountArgs {
  return {
    route: torrent.route,
    torrentId: torrent.id,
    memberId: member.id,
    peersPerTorrent: rules.peersPerTorrent,
    minGap: rules.minGap,
    refuseEarly: rules.early === 'refuse',
  };
}

/**
 * `last` (the store's call with the accounting) behind the member limits counted over every
 * instance: the peer's place under `peers_per_member` (`withPlace`; without `peers`, the rule
 * this instance decides alone, `admit`), then its download slot.
 */
function limited<R>(
  accountant: Accountant,
  rules: PeerRules,
  slots: SharedSlots | undefined,
  peers: SharedPeers | undefined,
  last: (
    req: AnnounceRequest,
    member: PolicyMember,
    torrent: PolicyTorrent,
    now: number,
  ) => Promise<R | TrackerError>,
): MemberStep<R> {
  /** Download slots, then `last`. */
  const admitted: MemberStep<R> = (req, member, torrent, now) => {
    if (peers === undefined) {
      const refused = accountant.admit(req, member, torrent);
      if (refused !== null) return refused;
    }
    // Download slots: only leeching announces of members whose class has slots.
    const n = req.left > 0 && req.event !== AnnounceEvent.stopped ? accountant.rules.slotsOf(member.id) : 0;
    const claimed =
      n > 0 && slots !== undefined
        ? slots.claim({
            memberId: member.id,
            route: torrent.route,
            torrentId: torrent.id,
            slots: n,
            now,
            known: accountant.knows(req, member, torrent, true),
            peerId: req.peerId,
          })
        : null;
    if (claimed === null) return last(req, member, torrent, now);
    return claimed.then((r) => r ?? last(req, member, torrent, now));
  };
  if (peers === undefined || rules.peersPerMember === 0) return admitted;
  return (req, member, torrent, now) =>
    withPlace(peers, rules.peersPerMember, accountant, req, member, torrent, () =>
      admitted(req, member, torrent, now),
    );
}

/**
 * `peers_per_member` counted in Redis around `admit` (the announce's accounting, and its store
 * update if any): a `stopped` frees the peer's place; a new peer waits for its place (an
 * asynchronous store's frontends hand it a request of its own, kept across the wait as download
 * slots keep theirs). So does a `started` one: this instance may hold the baseline of a peer that
 * stopped through another instance since (its place freed there) and now starts again. A peer
 * this instance knows refreshes its place without waiting.
 */
function withPlace<R>(
  peers: SharedPeers,
  limit: number,
  accountant: Accountant,
  req: AnnounceRequest,
  member: PolicyMember,
  torrent: PolicyTorrent,
  admit: () => R | Promise<R>,
): R | TrackerError | Promise<R | TrackerError> {
  const place: PeerPlace = {
    memberId: member.id,
    route: torrent.route,
    torrentId: torrent.id,
    peerId: req.peerId,
  };
  if (req.event === AnnounceEvent.stopped) {
    const r = admit();
    peers.release(place);
    return r;
  }
  const known = req.event !== AnnounceEvent.started && accountant.knows(req, member, torrent);
  const claimed = peers.claim(place, limit, known);
  if (claimed === null) return admit();
  return claimed.then(async (c) => {
    if (c instanceof TrackerError) {
      accountant.rules.note(c);
      return c;
    }
    const r = await admit();
    // Refused after all (peers per torrent, early, slots): the place it took is not held.
    if (r instanceof TrackerError && c === 'new') peers.release(place);
    return r;
  });
}
