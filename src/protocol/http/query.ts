import { Errors, type TrackerError } from '../../core/errors.ts';
import { AnnounceEvent } from '../../core/types.ts';

/**
 * A parsed `/announce` query. The hashes are fresh arrays owned by the caller, or the caller's own
 * `into` arrays when it passed them (see `parseAnnounce`).
 */
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
  /**
   * The raw `ip` parameter (only believed with trust_ip_param, by the frontend); '' when it was
   * malformed.
   */
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
 * and a literal `+` in a binary field means the byte `+` (RFC 3986), not a space. With
 * `plusIsSpace` (form-encoded text) a literal `+` is a space and `%2B` still a plus.
 * Returns the decoded length, -1 on a malformed escape, -2 when `out` overflows.
 */
function decodeInto(
  buf: Uint8Array,
  start: number,
  end: number,
  out: Uint8Array,
  plusIsSpace = false,
): number {
  let n = 0;
  for (let i = start; i < end; i++) {
    let c = buf[i];
    if (c === 43 && plusIsSpace) c = 32;
    else if (c === 37) {
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

/** Scratch for `decodeText` (parsing is synchronous, so one serves every call). */
const TEXT = Buffer.alloc(512);

/**
 * Decodes a short text parameter (ASCII): `+` is a space, `%2B` a plus (form encoding). Null when
 * malformed or too long.
 */
function decodeText(buf: Uint8Array, start: number, end: number): string | null {
  if (end - start > TEXT.length) return null;
  const n = decodeInto(buf, start, end, TEXT, true);
  return n < 0 ? null : TEXT.toString('latin1', 0, n);
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
 * A cursor over the `key=value` pairs of buf[start, end) separated by `&`: `next` moves to the
 * next non-empty pair and leaves its key in [ks, ke) and value in [vs, ve). One instance serves
 * every parse (they are synchronous): no closure and no object per request.
 */
class Params {
  ks = 0;
  ke = 0;
  vs = 0;
  ve = 0;
  #i = 0;
  #end = 0;
  #count = 0;

  reset(start: number, end: number): this {
    this.#i = start;
    this.#end = end;
    this.#count = 0;
    return this;
  }

  /** 1: a pair; 0: no more; -1: more than `max` pairs. */
  next(buf: Uint8Array, max: number): number {
    const end = this.#end;
    let i = this.#i;
    while (i < end) {
      let amp = i;
      while (amp < end && buf[amp] !== 38) amp++;
      if (amp > i) {
        if (++this.#count > max) return -1;
        let eq = i;
        while (eq < amp && buf[eq] !== 61) eq++;
        this.ks = i;
        this.ke = eq;
        this.vs = eq < amp ? eq + 1 : amp;
        this.ve = amp;
        this.#i = amp + 1;
        return 1;
      }
      i = amp + 1;
    }
    this.#i = i;
    return 0;
  }
}

const PARAMS = new Params();

/**
 * Parses the raw query string bytes of an announce (the part after `?`). Returns the query or a
 * preallocated `TrackerError`; never throws. Unknown keys are ignored; a repeated key: the last wins.
 * With `into` (two 20-byte arrays), the hashes are decoded into those instead of new arrays: for
 * a caller whose store reads them before the next parse (a synchronous store).
 */
export function parseAnnounce(
  buf: Uint8Array,
  start: number,
  end: number,
  into: { infoHash: Uint8Array; peerId: Uint8Array } | null = null,
): AnnounceQuery | TrackerError {
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

  const p = PARAMS.reset(start, end);
  for (;;) {
    const more = p.next(buf, MAX_PARAMS);
    if (more === 0) break;
    if (more < 0) return Errors.invalidQuery;
    const ks = p.ks;
    const ke = p.ke;
    const vs = p.vs;
    const ve = p.ve;
    const klen = ke - ks;
    if (klen === 9 && keyIs(buf, ks, ke, 'info_hash')) {
      const out = into !== null ? into.infoHash : new Uint8Array(20);
      const n = decodeInto(buf, vs, ve, out);
      if (n === -1) error = Errors.invalidQuery;
      else if (n !== 20) error = Errors.invalidInfoHash;
      else infoHash = out;
    } else if (klen === 7 && keyIs(buf, ks, ke, 'peer_id')) {
      const out = into !== null ? into.peerId : new Uint8Array(20);
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
      // Malformed (a bad escape, too long): no address, ''. Judged only where the frontend trusts
      // `ip` (it refuses '' as any non-address); ignored with the rest of `ip` elsewhere.
      ip = decodeText(buf, vs, ve) ?? '';
    } else if (klen === 3 && keyIs(buf, ks, ke, 'key')) {
      key = decodeText(buf, vs, ve);
    } else if (klen === 9 && keyIs(buf, ks, ke, 'trackerid')) {
      trackerId = decodeText(buf, vs, ve);
    }
    if (error !== null) return error;
  }
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
  const p = PARAMS.reset(start, end);
  for (;;) {
    const more = p.next(buf, maxHashes + MAX_PARAMS);
    if (more === 0) break;
    if (more < 0) return hashes.length >= maxHashes ? Errors.tooManyInfoHashes : Errors.invalidQuery;
    if (keyIs(buf, p.ks, p.ke, 'info_hash')) {
      if (hashes.length >= maxHashes) return Errors.tooManyInfoHashes;
      const out = new Uint8Array(20);
      const n = decodeInto(buf, p.vs, p.ve, out);
      if (n === -1) return Errors.invalidQuery;
      if (n !== 20) return Errors.invalidInfoHash;
      hashes.push(out);
    }
  }
  return hashes;
}
