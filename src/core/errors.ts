/**
 * The catalogue of client-facing tracker errors (STYLE.md example 3, fastify `lib/errors.js`).
 *
 * Only a `TrackerError` ever reaches a client, as a bencoded `failure reason` (HTTP, status 200),
 * a BEP 15 error packet (UDP) or a `failure reason` message (WS). Messages are static strings so
 * that they are safe to send and safe to use as metric labels. Anything else that is thrown is an
 * internal error: it is logged with context and the client sees only "internal error".
 */
export class TrackerError extends Error {
  readonly code: string;
  /**
   * The refusal is temporary: HTTP adds BEP 31 `retry in` (the announce interval), so that the
   * client tries again later instead of giving the tracker up.
   */
  readonly retryLater: boolean;
  constructor(code: string, message: string, opts: { retryLater?: boolean } = {}) {
    super(message);
    this.code = code;
    this.name = 'TrackerError';
    this.retryLater = opts.retryLater ?? false;
  }
}

function def(code: string, message: string, opts?: { retryLater?: boolean }): TrackerError {
  return new TrackerError(code, message, opts);
}

/**
 * Preallocated errors: returning one costs no allocation on the hot path.
 * Keys are the codes; `.message` is what the client reads.
 */
export const Errors = {
  missingInfoHash: def('HERALD_MISSING_INFO_HASH', 'missing info_hash'),
  invalidInfoHash: def('HERALD_INVALID_INFO_HASH', 'invalid info_hash: must be 20 bytes'),
  missingPeerId: def('HERALD_MISSING_PEER_ID', 'missing peer_id'),
  invalidPeerId: def('HERALD_INVALID_PEER_ID', 'invalid peer_id: must be 20 bytes'),
  missingPort: def('HERALD_MISSING_PORT', 'missing port'),
  invalidPort: def('HERALD_INVALID_PORT', 'invalid port'),
  invalidNumber: def('HERALD_INVALID_NUMBER', 'invalid uploaded, downloaded or left'),
  invalidEvent: def('HERALD_INVALID_EVENT', 'invalid event'),
  invalidNumWant: def('HERALD_INVALID_NUMWANT', 'invalid numwant'),
  invalidIp: def('HERALD_INVALID_IP', 'invalid ip'),
  invalidQuery: def('HERALD_INVALID_QUERY', 'malformed query string'),
  tooManyInfoHashes: def('HERALD_TOO_MANY_INFO_HASHES', 'too many info_hash values'),
  fullScrapeDisabled: def('HERALD_FULL_SCRAPE_DISABLED', 'full scrape is disabled'),
  fullScrapeRateLimited: def('HERALD_FULL_SCRAPE_RATE_LIMITED', 'full scrape rate limited: try again later'),
  invalidConnectionId: def('HERALD_INVALID_CONNECTION_ID', 'invalid connection id'),
  invalidPacket: def('HERALD_INVALID_PACKET', 'malformed packet'),
  invalidAction: def('HERALD_INVALID_ACTION', 'unknown action'),
  internal: def('HERALD_INTERNAL', 'internal error'),
  shardUnavailable: def('HERALD_SHARD_UNAVAILABLE', 'tracker busy: try again in a minute'),
  // The swarm store holds max_peers peers or max_torrents torrents: a new peer or a new torrent
  // waits until peers leave or expire; peers already held keep announcing.
  trackerFull: def('HERALD_TRACKER_FULL', 'tracker is full, try later', { retryLater: true }),
  // The shared swarm store (Redis) did not answer in time or is unreachable: nothing changed;
  // the client tries again after `retry in`.
  storeUnavailable: def('HERALD_STORE_UNAVAILABLE', 'tracker storage unavailable, try again later', {
    retryLater: true,
  }),
  // Policy (issue 5): modes, passkeys, grants, client whitelist. Static strings: safe to send.
  infoHashDenied: def('HERALD_INFO_HASH_DENIED', 'this torrent is not allowed on this tracker (blacklisted)'),
  infoHashNotListed: def(
    'HERALD_INFO_HASH_NOT_LISTED',
    'this torrent is not tracked here (not on the whitelist)',
  ),
  passkeyRequired: def(
    'HERALD_PASSKEY_REQUIRED',
    'this is a private tracker: use your personal announce URL with your passkey',
  ),
  // UDP carries a passkey only in BEP 41 URL data, which libtorrent-based clients (qBittorrent,
  // Deluge) send and Transmission, aria2 and rTorrent do not: such a client is told what to use.
  // Under 200 bytes, so it fits a BEP 15 error packet whole (writeErrorResponse).
  udpPasskeyMissing: def(
    'HERALD_UDP_PASSKEY_MISSING',
    'this tracker needs your passkey: use the https:// announce URL from your torrent page; your client sends no URL over UDP (BEP 41)',
  ),
  passkeyUnknown: def('HERALD_PASSKEY_UNKNOWN', 'unknown passkey: download the torrent again from the site'),
  memberDisabled: def('HERALD_MEMBER_DISABLED', 'your account is disabled'),
  memberBanned: def('HERALD_MEMBER_BANNED', 'your account is banned'),
  torrentNotRegistered: def('HERALD_TORRENT_NOT_REGISTERED', 'torrent not registered with this tracker'),
  torrentNotGranted: def('HERALD_TORRENT_NOT_GRANTED', 'you have no access to this torrent'),
  clientNotAllowed: def(
    'HERALD_CLIENT_NOT_ALLOWED',
    'your client is not allowed here: see the site for the list of allowed clients',
  ),
  // The rules of private communities (issue #16). Each under 200 bytes (a BEP 15 error packet).
  peerLimitTorrent: def(
    'HERALD_PEER_LIMIT_TORRENT',
    'too many clients on this torrent for your account: stop one first (a stopped or silent client frees its place)',
  ),
  peerLimitMember: def(
    'HERALD_PEER_LIMIT_MEMBER',
    'too many peers for your account: stop some torrents first (a stopped or silent client frees its place)',
  ),
  announceTooSoon: def(
    'HERALD_ANNOUNCE_TOO_SOON',
    'announced too soon: wait the min interval between announces (nothing was counted; the next announce is)',
    { retryLater: true },
  ),
  leechRatio: def(
    'HERALD_LEECH_RATIO',
    'download rights suspended: your ratio stayed below the site minimum. Seeding still works: seed until your ratio is back above it',
  ),
  downloadSlots: def(
    'HERALD_DOWNLOAD_SLOTS',
    'download slots full: your class leeches a limited number of torrents at once; let one finish or stop it first (seeding is not limited)',
  ),
  leechHnr: def(
    'HERALD_LEECH_HNR',
    'download rights suspended for hit-and-runs: seeding still works; seed the torrents listed on your profile to clear them, or ask staff',
  ),
  leechStaff: def(
    'HERALD_LEECH_STAFF',
    'download rights suspended by staff: seeding still works; see the site or ask staff to restore them',
  ),
} as const;

/** The code of every catalogued error (a worker's refusal crosses to another worker as its code). */
const BY_CODE = new Map<string, TrackerError>(Object.values(Errors).map((e) => [e.code, e]));

/** The catalogued error with this code, or undefined. */
export function trackerErrorOf(code: string): TrackerError | undefined {
  return BY_CODE.get(code);
}

/**
 * A `warning message` (BEP 3): the announce is answered as usual, with this text beside it.
 * HTTP and WebSocket carry it; BEP 15 has no field for it, so UDP clients get the answer alone.
 */
export class TrackerWarning {
  readonly code: string;
  readonly message: string;
  /** Its number in `WARNING_LIST` (how a worker names it to another; 0 is none). */
  readonly index: number;
  constructor(code: string, message: string, index: number) {
    this.code = code;
    this.message = message;
    this.index = index;
  }
}

export const Warnings = {
  announceTooSoon: new TrackerWarning(
    'HERALD_WARN_ANNOUNCE_TOO_SOON',
    'you announce too often: wait the min interval between announces',
    1,
  ),
  ratioWatch: new TrackerWarning(
    'HERALD_WARN_RATIO',
    'ratio warning: your ratio is below the site minimum; seed to raise it, or you lose download rights (see your profile)',
    2,
  ),
  hitAndRun: new TrackerWarning(
    'HERALD_WARN_HNR',
    'hit-and-run: you stopped seeding a torrent you downloaded before seeding it long enough; seed it again (see your profile) or lose download rights',
    3,
  ),
} as const;

/** Warnings by index (index 0: none). */
export const WARNING_LIST: readonly (TrackerWarning | null)[] = [
  null,
  Warnings.announceTooSoon,
  Warnings.ratioWatch,
  Warnings.hitAndRun,
];

export type ErrorCode = (typeof Errors)[keyof typeof Errors]['code'];

export function isTrackerError(value: unknown): value is TrackerError {
  return value instanceof TrackerError;
}

/** With workers: a worker that is down (starting, restarting) could not answer; a known state, not a fault. */
export function isShardUnavailable(value: unknown): boolean {
  return value instanceof TrackerError && value.code === Errors.shardUnavailable.code;
}
