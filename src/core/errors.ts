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
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
    this.name = 'TrackerError';
  }
}

function def(code: string, message: string): TrackerError {
  return new TrackerError(code, message);
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
} as const;

export type ErrorCode = (typeof Errors)[keyof typeof Errors]['code'];

export function isTrackerError(value: unknown): value is TrackerError {
  return value instanceof TrackerError;
}
