import { Errors, type TrackerError } from '../../core/errors.ts';
import { AnnounceEvent } from '../../core/types.ts';

/** A parsed `/announce` query. Byte arrays are fresh copies owned by the caller. */
export interface AnnounceQuery {
  infoHash: Uint8Array;
  peerId: Uint8Array;
  port: number;
  uploaded: number;
  downloaded: number;
  /** Bytes left. Absent means "unknown": treated as a leecher (left = 1), never as a seeder. */
  left: number;
  event: AnnounceEvent;
  /** -1 when absent. */
  numWant: number;
  compact: boolean;
  noPeerId: boolean;
  /** The raw `ip` parameter (only believed from trusted proxies, by the frontend). */
  ip: string | null;
  key: string | null;
  trackerId: string | null;
}

/** At most this many parameters are looked at; a longer query is refused. */
const MAX_PARAMS = 64;

function hex(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/**
 * Percent-decodes buf[start, end) into `out` byte by byte (never as UTF-8). `+` stays the byte
 * 0x2B: real clients percent-encode every byte of info_hash and peer_id that is not unreserved,
 * and a literal `+` in a binary field means the byte `+` (RFC 3986), not a space.
 * Returns the decoded length, or -1 on a malformed escape or overflow of `out`.
 */
function decodeInto(buf: Uint8Array, start: number, end: number, out: Uint8Array): number {
  let n = 0;
  for (let i = start; i < end; i++) {
    let c = buf[i];
    if (c === 37) {
      if (i + 2 >= end) return -1;
      const h = hex(buf[i + 1]);
      const l = hex(buf[i + 2]);
      if (h < 0 || l < 0) return -1;
      c = (h << 4) | l;
      i += 2;
    }
    if (n >= out.length) return -2;
    out[n++] = c;
  }
  return n;
}

/** Decodes a short text parameter (ASCII), `+` as space. Null when malformed or too long. */
function decodeText(buf: Uint8Array, start: number, end: number): string | null {
  if (end - start > 512) return null;
  const out = new Uint8Array(end - start);
  const n = decodeInto(buf, start, end, out);
  if (n < 0) return null;
  let s = '';
  for (let i = 0; i < n; i++) s += String.fromCharCode(out[i] === 43 ? 32 : out[i]);
  return s;
}

/** Parses unsigned decimal digits (no sign, no escapes) up to 2^53-1; -1 when invalid. */
function decimal(buf: Uint8Array, start: number, end: number): number {
  if (start >= end || end - start > 16) return -1;
  let v = 0;
  for (let i = start; i < end; i++) {
    const c = buf[i] - 48;
    if (c < 0 || c > 9) return -1;
    v = v * 10 + c;
  }
  return v <= Number.MAX_SAFE_INTEGER ? v : -1;
}

/** Parses a possibly negative decimal (numwant=-1 is common). NaN when invalid. */
function signedDecimal(buf: Uint8Array, start: number, end: number): number {
  if (start < end && buf[start] === 45) {
    const v = decimal(buf, start + 1, end);
    return v < 0 ? Number.NaN : -v;
  }
  const v = decimal(buf, start, end);
  return v < 0 ? Number.NaN : v;
}

function keyIs(buf: Uint8Array, start: number, end: number, key: string): boolean {
  if (end - start !== key.length) return false;
  for (let i = 0; i < key.length; i++) if (buf[start + i] !== key.charCodeAt(i)) return false;
  return true;
}

function eventOf(buf: Uint8Array, start: number, end: number): AnnounceEvent | -1 {
  if (start === end || keyIs(buf, start, end, 'empty')) return AnnounceEvent.none;
  if (keyIs(buf, start, end, 'started')) return AnnounceEvent.started;
  if (keyIs(buf, start, end, 'stopped')) return AnnounceEvent.stopped;
  if (keyIs(buf, start, end, 'completed')) return AnnounceEvent.completed;
  if (keyIs(buf, start, end, 'paused')) return AnnounceEvent.none; // BEP 21 partial seed
  return -1;
}

/**
 * Iterates `key=value` pairs of buf[start, end) separated by `&`, calling `visit` with index
 * ranges. Returns false when there are more than MAX_PARAMS pairs.
 */
function eachParam(
  buf: Uint8Array,
  start: number,
  end: number,
  maxParams: number,
  visit: (ks: number, ke: number, vs: number, ve: number) => boolean,
): boolean {
  let count = 0;
  let i = start;
  while (i < end) {
    let amp = i;
    while (amp < end && buf[amp] !== 38) amp++;
    if (amp > i) {
      if (++count > maxParams) return false;
      let eq = i;
      while (eq < amp && buf[eq] !== 61) eq++;
      const vs = eq < amp ? eq + 1 : amp;
      if (!visit(i, eq, vs, amp)) return false;
    }
    i = amp + 1;
  }
  return true;
}

/**
 * Parses the raw query string bytes of an announce (the part after `?`). Returns the query or a
 * preallocated `TrackerError`; never throws. Unknown keys are ignored; a repeated key: the last wins.
 */
export function parseAnnounce(buf: Uint8Array, start: number, end: number): AnnounceQuery | TrackerError {
  let infoHash: Uint8Array | null = null;
  let peerId: Uint8Array | null = null;
  let port = -1;
  let uploaded = 0;
  let downloaded = 0;
  let left = -1;
  let event: AnnounceEvent = AnnounceEvent.none;
  let numWant = -1;
  let compact = true;
  let noPeerId = false;
  let ip: string | null = null;
  let key: string | null = null;
  let trackerId: string | null = null;
  let error: TrackerError | null = null;

  const ok = eachParam(buf, start, end, MAX_PARAMS, (ks, ke, vs, ve) => {
    const klen = ke - ks;
    if (klen === 9 && keyIs(buf, ks, ke, 'info_hash')) {
      const out = new Uint8Array(20);
      const n = decodeInto(buf, vs, ve, out);
      if (n === -1) error = Errors.invalidQuery;
      else if (n !== 20) error = Errors.invalidInfoHash;
      else infoHash = out;
    } else if (klen === 7 && keyIs(buf, ks, ke, 'peer_id')) {
      const out = new Uint8Array(20);
      const n = decodeInto(buf, vs, ve, out);
      if (n === -1) error = Errors.invalidQuery;
      else if (n !== 20) error = Errors.invalidPeerId;
      else peerId = out;
    } else if (klen === 4 && keyIs(buf, ks, ke, 'port')) {
      port = decimal(buf, vs, ve);
      if (port < 0 || port > 65535) error = Errors.invalidPort;
    } else if (klen === 8 && keyIs(buf, ks, ke, 'uploaded')) {
      uploaded = decimal(buf, vs, ve);
      if (uploaded < 0) error = Errors.invalidNumber;
    } else if (klen === 10 && keyIs(buf, ks, ke, 'downloaded')) {
      downloaded = decimal(buf, vs, ve);
      if (downloaded < 0) error = Errors.invalidNumber;
    } else if (klen === 4 && keyIs(buf, ks, ke, 'left')) {
      left = decimal(buf, vs, ve);
      if (left < 0) error = Errors.invalidNumber;
    } else if (klen === 5 && keyIs(buf, ks, ke, 'event')) {
      const e = eventOf(buf, vs, ve);
      if (e === -1) error = Errors.invalidEvent;
      else event = e;
    } else if (klen === 7 && keyIs(buf, ks, ke, 'numwant')) {
      const n = signedDecimal(buf, vs, ve);
      if (Number.isNaN(n)) error = Errors.invalidNumWant;
      else numWant = n < 0 ? -1 : n;
    } else if (klen === 7 && keyIs(buf, ks, ke, 'compact')) {
      compact = !(ve - vs === 1 && buf[vs] === 48);
    } else if (klen === 10 && keyIs(buf, ks, ke, 'no_peer_id')) {
      noPeerId = !(ve - vs === 1 && buf[vs] === 48);
    } else if (klen === 2 && keyIs(buf, ks, ke, 'ip')) {
      ip = decodeText(buf, vs, ve);
      if (ip === null) error = Errors.invalidIp;
    } else if (klen === 3 && keyIs(buf, ks, ke, 'key')) {
      key = decodeText(buf, vs, ve);
    } else if (klen === 10 && keyIs(buf, ks, ke, 'trackerid')) {
      trackerId = decodeText(buf, vs, ve);
    }
    return error === null;
  });
  if (!ok && error === null) return Errors.invalidQuery;
  if (error !== null) return error;
  if (infoHash === null) return Errors.missingInfoHash;
  if (peerId === null) return Errors.missingPeerId;
  if (port < 0) return Errors.missingPort;
  return {
    infoHash,
    peerId,
    port,
    uploaded,
    downloaded,
    left: left < 0 ? 1 : left,
    event,
    numWant,
    compact,
    noPeerId,
    ip,
    key,
    trackerId,
  };
}

/**
 * Parses the `info_hash` values of a scrape (BEP 48: many in one request). An empty array means
 * none was given (a full scrape, which the caller may refuse). Never throws.
 */
export function parseScrape(
  buf: Uint8Array,
  start: number,
  end: number,
  maxHashes: number,
): Uint8Array[] | TrackerError {
  const hashes: Uint8Array[] = [];
  let error: TrackerError | null = null;
  const ok = eachParam(buf, start, end, maxHashes + MAX_PARAMS, (ks, ke, vs, ve) => {
    if (keyIs(buf, ks, ke, 'info_hash')) {
      if (hashes.length >= maxHashes) {
        error = Errors.tooManyInfoHashes;
        return false;
      }
      const out = new Uint8Array(20);
      const n = decodeInto(buf, vs, ve, out);
      if (n === -1) error = Errors.invalidQuery;
      else if (n !== 20) error = Errors.invalidInfoHash;
      else hashes.push(out);
    }
    return error === null;
  });
  if (error !== null) return error;
  if (!ok) return hashes.length >= maxHashes ? Errors.tooManyInfoHashes : Errors.invalidQuery;
  return hashes;
}
