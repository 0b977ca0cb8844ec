import type { TrackerWarning } from './errors.ts';

/**
 * Protocol-neutral request and response types shared by every frontend, the announce service and
 * the swarm stores. Names follow the wire fields (STYLE.md: `infoHash`, `peerId`, `numWant`).
 */

/** BEP 15 numbering, used everywhere (HTTP `event=` strings map onto it). */
export const AnnounceEvent = {
  none: 0,
  completed: 1,
  started: 2,
  stopped: 3,
} as const;
export type AnnounceEvent = (typeof AnnounceEvent)[keyof typeof AnnounceEvent];

/** Address family of a peer: 4 or 6. An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is family 4. */
export type Family = 4 | 6;

/**
 * One announce, as the swarm store sees it. Byte arrays are owned by the caller and may be reused
 * after `announce` returns: a store copies what it keeps.
 */
export interface AnnounceRequest {
  /** 20 raw bytes (a v2 info hash is truncated to 20 bytes, BEP 52). */
  infoHash: Uint8Array;
  /** 20 raw bytes. Kept only where a `compact=0` response needs it. */
  peerId: Uint8Array;
  family: Family;
  /** 4 bytes for family 4, 16 bytes for family 6, network order. */
  ip: Uint8Array;
  /** 1..65535 (0 is refused by the parsers). */
  port: number;
  uploaded: number;
  downloaded: number;
  left: number;
  event: AnnounceEvent;
  /** Peers wanted, already clamped by the service to [0, maxNumWant]. */
  numWant: number;
  /** True when the response will list peers as dictionaries with peer ids (HTTP `compact=0`). */
  wantPeerIds: boolean;
  /**
   * Private mode with the connectable check on: the member and torrent the announce is accounted
   * to, set by the accounting step (in the process that owns the swarm) before the store sees the
   * request; the check records its result for them (ConnectableStore). Absent otherwise.
   */
  memberId?: number;
  torrentId?: number;
}

/**
 * What the store answers. Counts exclude the requester (the response is built before the
 * requester is inserted, STYLE.md example 6).
 */
export interface AnnounceResult {
  complete: number;
  incomplete: number;
  downloaded: number;
  /**
   * Compact peers of the requester's family, 6 bytes each (v4) or 18 bytes each (v6): the first
   * `peerCount` records. It may be a buffer the store reuses (the memory store's is): read it
   * before calling the store again. A store that answers asynchronously returns its own buffer.
   */
  peers: Uint8Array;
  /** Number of peers in `peers`. */
  peerCount: number;
  /**
   * Only when `wantPeerIds`: 20 bytes per peer in `peers` order; a peer whose id is not known
   * (see MemorySwarmStore: ids are recorded lazily) has 20 zero bytes and `peerIdKnown` false.
   */
  peerIds: Uint8Array | null;
  peerIdKnown: Uint8Array | null;
  /**
   * A `warning message` for the client (private-mode rules, issue #16): set by the service when a
   * rule warns, absent otherwise (stores never set it).
   */
  warning?: TrackerWarning | null;
}

/**
 * A peer's previous announce as a shared store keeps it for private-mode accounting (several
 * instances on Redis, issue #14): what the accountant computes the next delta from.
 */
export interface SharedBaseline {
  uploaded: number;
  downloaded: number;
  /** Clock seconds of that announce. */
  at: number;
  seeding: boolean;
}

/**
 * A leeching announce of a member whose class has download slots, to a shared store's slot count
 * (RedisSlots, src/store/redis/slots.ts).
 */
export interface SlotClaim {
  memberId: number;
  /** The torrent's route hash (its bucket holds the member's baselines on it). */
  route: Uint8Array;
  torrentId: number;
  /** The member's download slots (above 0). */
  slots: number;
  now: number;
  /** This instance holds the peer's live baseline, leeching: it leeches the torrent already. */
  known: boolean;
  /** The announcing peer's id (a seeder of the torrent about to leech it holds no slot by seeding). */
  peerId: Uint8Array;
}

/** A member's peer whose place `peers_per_member` counts over every instance (RedisPeers). */
export interface PeerPlace {
  memberId: number;
  /** The torrent's route hash (its bucket). */
  route: Uint8Array;
  torrentId: number;
  peerId: Uint8Array;
}

/** The private-mode part of an announce to a shared store (RedisSwarmStore `announceAccounted`). */
export interface SharedAccountArgs {
  /** The torrent's route hash: its bucket holds the swarm and the member's baselines. */
  route: Uint8Array;
  torrentId: number;
  memberId: number;
  /** Most live peers of the member on the torrent (0 = no limit); a new one beyond is refused. */
  peersPerTorrent: number;
  /** An announce closer than this to the same peer's previous one is early (0 = off). */
  minGap: number;
  /** Refuse an early announce (else it is answered with a warning). */
  refuseEarly: boolean;
}

/** An accounted announce: the swarm's answer and the peer's previous accounting baseline. */
export interface AccountedResult extends AnnounceResult {
  previous: SharedBaseline | null;
  /** Seeding seconds to credit (the member's, over all its peer ids, at most one a second). */
  seed: number;
  /** The announce was early (a warning, when early announces are not refused). */
  early: boolean;
}

/**
 * The accounting part of an accounted announce: what a shared store answers for a WebTorrent
 * peer, whose swarm is elsewhere (RedisSwarmStore `accountOnly`).
 */
export type SharedAccounted = Pick<AccountedResult, 'previous' | 'seed' | 'early'>;

export interface ScrapeEntry {
  complete: number;
  incomplete: number;
  downloaded: number;
}

export interface SwarmStats {
  torrents: number;
  peers: number;
  seeders: number;
  leechers: number;
  peers4: number;
  peers6: number;
}

export const EMPTY_SCRAPE: ScrapeEntry = Object.freeze({ complete: 0, incomplete: 0, downloaded: 0 });
