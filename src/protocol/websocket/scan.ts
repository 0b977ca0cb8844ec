import { AnnounceEvent } from '../../core/types.ts';
import {
  parseClientMessage,
  WS_LIMITS,
  type WsAnnounce,
  type WsLimits,
  type WsOffer,
  type WsParseResult,
} from './codec.ts';

/**
 * The byte-level fast path for the message that carries the load: an announce, usually with
 * offers. `parseClientFrame` scans the frame's bytes once, with no JSON.parse and no string for
 * the SDP, and gives each offer as the span of the frame that holds its JSON text: relayed as is,
 * it costs a copy instead of JSON.stringify (issue #7).
 *
 * The scanner accepts only what it can answer exactly: a message it takes gives the same result,
 * field for field, as `parseClientMessage` (JSON.parse, then the checks). Anything else makes it
 * give up, and the message goes to `parseClientMessage` on the decoded text, which has the last
 * word on every refusal and its reason. It gives up on:
 * - anything that is not an announce, an announce with `answer`, `to_peer_id` or `offer_id`, a
 *   known key twice, a key with an escape, a `null` id, or a number that is not a plain integer
 *   of at most 15 digits (so never -0, a fraction, an exponent or an unsafe integer);
 * - JSON that is invalid, nested deeper than `MAX_DEPTH`, or over `maxBytes`; more than
 *   `maxOffers` offers; an sdp over `maxSdpBytes`;
 * - an offer whose text is not exactly what JSON.stringify would write for the object JSON.parse
 *   makes of it, in ASCII (what `encodeOffer` relays: `asciiJson(JSON.stringify(offer))`). That
 *   text has no whitespace; only the escapes JSON.stringify writes (`\"` `\\` `\b` `\f` `\n` `\r`
 *   `\t`, `\u00xx` in lower case for the other controls); no byte above 0x7f (asciiJson would
 *   escape it; the scanner gives up rather than escape); integers as above; no key twice
 *   (JSON.parse keeps the last value at the first key's place); no key starting with a digit
 *   (V8 lists array-index keys first); at most `MAX_KEYS` keys in an object.
 * Browsers send `{type, sdp}` with an ASCII sdp, escaped as JSON.stringify escapes it: the fast
 * path takes those.
 *
 * Bounded: one pass, each byte looked at a fixed number of times; recursion only for nesting,
 * at most `MAX_DEPTH` deep; the duplicate-key check compares at most `MAX_KEYS` keys. The
 * scanner keeps a few values in module variables (no object per value): it is synchronous and
 * not re-entrant.
 */

/** Deepest nesting the scanner follows (the message object is depth 1). */
const MAX_DEPTH = 32;
/** Most keys in one object of an offer (duplicate detection is pairwise). */
const MAX_KEYS = 16;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const LBRACE = 0x7b;
const RBRACE = 0x7d;
const LBRACKET = 0x5b;
const RBRACKET = 0x5d;
const MINUS = 0x2d;
const ZERO = 0x30;
const NINE = 0x39;

/** Byte classes inside a JSON string. */
const PLAIN = 0; // 0x20..0x7f except " and \: itself, also in JSON.stringify's output
const END = 1; // "
const ESCAPE = 2; // \
const CONTROL = 3; // below 0x20: invalid in a JSON string
const HIGH = 4; // 0x80..0xff: part of a UTF-8 sequence
const STR = new Uint8Array(256);
for (let c = 0; c < 256; c++)
  STR[c] = c === QUOTE ? END : c === BACKSLASH ? ESCAPE : c < 0x20 ? CONTROL : c >= 0x80 ? HIGH : PLAIN;

/** The character a short escape stands for (`\"` → 0x22 ...), or -1. */
const SHORT = new Int16Array(256).fill(-1);
for (const [e, c] of [
  ['"', 0x22],
  ['\\', 0x5c],
  ['/', 0x2f],
  ['b', 0x08],
  ['f', 0x0c],
  ['n', 0x0a],
  ['r', 0x0d],
  ['t', 0x09],
] as const)
  SHORT[e.charCodeAt(0)] = c;

/** Hex digit values (either case), or -1. */
const HEX = new Int8Array(256).fill(-1);
for (let c = 0; c < 256; c++) {
  if (c >= ZERO && c <= NINE) HEX[c] = c - ZERO;
  else if (c >= 0x61 && c <= 0x66) HEX[c] = c - 0x61 + 10;
  else if (c >= 0x41 && c <= 0x46) HEX[c] = c - 0x41 + 10;
}

function isWs(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

function skipWs(b: Uint8Array, i: number): number {
  const n = b.length;
  while (i < n && isWs(b[i])) i++;
  return i;
}

/** `lit` (true, false, null) at `i`: the index after it, or -1. */
function literal(b: Uint8Array, i: number, lit: Uint8Array): number {
  if (i + lit.length > b.length) return -1;
  for (let k = 0; k < lit.length; k++) if (b[i + k] !== lit[k]) return -1;
  return i + lit.length;
}
const TRUE = new TextEncoder().encode('true');
const FALSE = new TextEncoder().encode('false');
const NULL = new TextEncoder().encode('null');

// ---- Validating skips (any valid JSON; whitespace allowed) ----

/** A JSON string starting at `i` (its quote): the index after its closing quote, or -1. */
function skipString(b: Uint8Array, i: number): number {
  const n = b.length;
  i++;
  while (i < n) {
    const k = STR[b[i]];
    if (k === PLAIN || k === HIGH) i++;
    else if (k === END) return i + 1;
    else if (k === CONTROL) return -1;
    else if (i + 1 < n && SHORT[b[i + 1]] >= 0) i += 2;
    else if (
      i + 5 < n &&
      b[i + 1] === 0x75 &&
      (HEX[b[i + 2]] | HEX[b[i + 3]] | HEX[b[i + 4]] | HEX[b[i + 5]]) >= 0
    )
      i += 6;
    else return -1;
  }
  return -1;
}

/** A JSON number at `i`: the index after it, or -1 (RFC 8259 grammar). */
function skipNumber(b: Uint8Array, i: number): number {
  const n = b.length;
  if (i < n && b[i] === MINUS) i++;
  if (i >= n) return -1;
  if (b[i] === ZERO) i++;
  else if (b[i] > ZERO && b[i] <= NINE) while (i < n && b[i] >= ZERO && b[i] <= NINE) i++;
  else return -1;
  if (i < n && b[i] === 0x2e) {
    i++;
    const s = i;
    while (i < n && b[i] >= ZERO && b[i] <= NINE) i++;
    if (i === s) return -1;
  }
  if (i < n && (b[i] === 0x65 || b[i] === 0x45)) {
    i++;
    if (i < n && (b[i] === 0x2b || b[i] === MINUS)) i++;
    const s = i;
    while (i < n && b[i] >= ZERO && b[i] <= NINE) i++;
    if (i === s) return -1;
  }
  return i;
}

/** Any JSON value at `i` (no leading whitespace): the index after it, or -1. */
function skipValue(b: Uint8Array, i: number, depth: number): number {
  const n = b.length;
  if (i >= n) return -1;
  const c = b[i];
  if (c === QUOTE) return skipString(b, i);
  if (c === LBRACE || c === LBRACKET) {
    if (depth >= MAX_DEPTH) return -1;
    const close = c === LBRACE ? RBRACE : RBRACKET;
    i = skipWs(b, i + 1);
    if (i < n && b[i] === close) return i + 1;
    for (;;) {
      if (c === LBRACE) {
        if (i >= n || b[i] !== QUOTE) return -1;
        i = skipString(b, i);
        if (i < 0) return -1;
        i = skipWs(b, i);
        if (i >= n || b[i] !== COLON) return -1;
        i = skipWs(b, i + 1);
      }
      i = skipValue(b, i, depth + 1);
      if (i < 0) return -1;
      i = skipWs(b, i);
      if (i >= n) return -1;
      if (b[i] === close) return i + 1;
      if (b[i] !== COMMA) return -1;
      i = skipWs(b, i + 1);
    }
  }
  if (c === 0x74) return literal(b, i, TRUE);
  if (c === 0x66) return literal(b, i, FALSE);
  if (c === 0x6e) return literal(b, i, NULL);
  return skipNumber(b, i);
}

// ---- Canonical values: exactly asciiJson(JSON.stringify(JSON.parse(text))), ASCII only ----

/** Code units of the last string `canonString` accepted (all ASCII: also its UTF-8 bytes). */
let stringUnits = 0;

/** The message being scanned, for reads of four bytes at once (set by `scanAnnounce`). */
const NO_VIEW = new DataView(new ArrayBuffer(0));
let view: DataView = NO_VIEW;

/** A string in JSON.stringify's own form, ASCII only: the index after it, or -1. */
function canonString(b: Uint8Array, i: number): number {
  const n = b.length;
  const dv = view;
  let units = 0;
  i++;
  for (;;) {
    // Four plain bytes at a time (the sdp is most of an announce; 2x faster than byte by byte,
    // measured): a word with no byte below 0x20 or above 0x7f, no `"` and no `\`. Each test
    // has false positives only (SWAR "has less than" / "has zero byte"): such a word goes on
    // byte by byte below.
    while (i + 4 <= n) {
      const x = dv.getInt32(i, true);
      const q = x ^ 0x22222222;
      const e = x ^ 0x5c5c5c5c;
      if (
        ((x | ((x - 0x20202020) & ~x) | ((q - 0x01010101) & ~q) | ((e - 0x01010101) & ~e)) & 0x80808080) !==
        0
      )
        break;
      i += 4;
      units += 4;
    }
    if (i >= n) return -1;
    const k = STR[b[i]];
    if (k === PLAIN) {
      i++;
      units++;
      continue;
    }
    if (k === END) {
      stringUnits = units;
      return i + 1;
    }
    // A control character is invalid JSON; a non-ASCII one would come out escaped.
    if (k !== ESCAPE || i + 1 >= n) return -1;
    const e = b[i + 1];
    if (e === 0x75) {
      // \u00xx, lower case, for a control character that has no short form.
      if (i + 5 >= n || b[i + 2] !== ZERO || b[i + 3] !== ZERO) return -1;
      const hi = b[i + 4];
      const lo = b[i + 5];
      if ((hi !== ZERO && hi !== 0x31) || HEX[lo] < 0 || (lo >= 0x41 && lo <= 0x46)) return -1;
      const v = (hi - ZERO) * 16 + HEX[lo];
      if (v === 0x08 || v === 0x09 || v === 0x0a || v === 0x0c || v === 0x0d) return -1;
      i += 6;
    } else if (e === 0x2f || SHORT[e] < 0)
      return -1; // `\/` comes out as `/`
    else i += 2;
    units++;
  }
}

/** An integer as JSON.stringify writes it, of at most 15 digits: the index after it, or -1. */
function canonInteger(b: Uint8Array, i: number): number {
  const n = b.length;
  if (i < n && b[i] === MINUS) {
    i++;
    if (i >= n || b[i] === ZERO) return -1; // -0 comes out as 0
  }
  if (i >= n || b[i] < ZERO || b[i] > NINE) return -1;
  if (b[i] === ZERO) i++;
  else {
    const s = i;
    while (i < n && b[i] >= ZERO && b[i] <= NINE) i++;
    if (i - s > 15) return -1;
  }
  // Not followed by more of a number (leading zero, fraction, exponent).
  if (i < n && ((b[i] >= ZERO && b[i] <= NINE) || b[i] === 0x2e || b[i] === 0x65 || b[i] === 0x45)) return -1;
  return i;
}

/** Key spans of the objects being checked, MAX_KEYS pairs per depth. */
const keySpans = new Int32Array(2 * MAX_KEYS * (MAX_DEPTH + 1));
/** Set by `canonObject` at depth 1: code units of the `sdp` string, -1 when there is none. */
let sdpUnits = -1;
const SDP = new TextEncoder().encode('sdp');

function sameSpan(b: Uint8Array, s1: number, e1: number, s2: number, e2: number): boolean {
  if (e1 - s1 !== e2 - s2) return false;
  for (let k = 0; k < e1 - s1; k++) if (b[s1 + k] !== b[s2 + k]) return false;
  return true;
}

/** A canonical value at `i`: the index after it, or -1. */
function canonValue(b: Uint8Array, i: number, depth: number): number {
  if (i >= b.length) return -1;
  const c = b[i];
  if (c === QUOTE) return canonString(b, i);
  if (c === LBRACE) return canonObject(b, i, depth + 1);
  if (c === LBRACKET) return canonArray(b, i, depth + 1);
  if (c === 0x74) return literal(b, i, TRUE);
  if (c === 0x66) return literal(b, i, FALSE);
  if (c === 0x6e) return literal(b, i, NULL);
  return canonInteger(b, i);
}

function canonArray(b: Uint8Array, i: number, depth: number): number {
  if (depth > MAX_DEPTH) return -1;
  const n = b.length;
  i++;
  if (i < n && b[i] === RBRACKET) return i + 1;
  for (;;) {
    i = canonValue(b, i, depth);
    if (i < 0 || i >= n) return -1;
    if (b[i] === RBRACKET) return i + 1;
    if (b[i] !== COMMA) return -1;
    i++;
  }
}

/**
 * A canonical object at `i` (its brace): the index after it, or -1. At depth 1 (the offer
 * itself) it also sets `sdpUnits`, and refuses an `sdp` that is not a string.
 */
function canonObject(b: Uint8Array, i: number, depth: number): number {
  if (depth > MAX_DEPTH || i >= b.length || b[i] !== LBRACE) return -1;
  const n = b.length;
  const base = 2 * MAX_KEYS * depth;
  let keys = 0;
  i++;
  if (i < n && b[i] === RBRACE) return i + 1;
  for (;;) {
    // Key: printable ASCII with no escape, not starting with a digit (V8 orders index keys first).
    if (i >= n || b[i] !== QUOTE || keys === MAX_KEYS) return -1;
    const ks = i + 1;
    i = ks;
    while (i < n && STR[b[i]] === PLAIN) i++;
    if (i >= n || b[i] !== QUOTE) return -1;
    const ke = i;
    if (ke > ks && b[ks] >= ZERO && b[ks] <= NINE) return -1;
    for (let k = 0; k < keys; k++)
      if (sameSpan(b, ks, ke, keySpans[base + 2 * k], keySpans[base + 2 * k + 1])) return -1;
    keySpans[base + 2 * keys] = ks;
    keySpans[base + 2 * keys + 1] = ke;
    keys++;
    i++;
    if (i >= n || b[i] !== COLON) return -1;
    i++;
    const isSdp = depth === 1 && ke - ks === 3 && isSdpKey(b, ks);
    if (isSdp && (i >= n || b[i] !== QUOTE)) return -1;
    i = canonValue(b, i, depth);
    if (i < 0 || i >= n) return -1;
    if (isSdp) sdpUnits = stringUnits;
    if (b[i] === RBRACE) return i + 1;
    if (b[i] !== COMMA) return -1;
    i++;
  }
}

function isSdpKey(b: Uint8Array, ks: number): boolean {
  return b[ks] === SDP[0] && b[ks + 1] === SDP[1] && b[ks + 2] === SDP[2];
}

// ---- Ids ----

/**
 * A binary id (a string of 20 code units, each 0..255) at `i`, its bytes written to `out`: the
 * index after the string, or -1 (not a string, a unit above 0xff, not 20 units long).
 */
function binaryIdAt(b: Uint8Array, i: number, out: Uint8Array): number {
  const n = b.length;
  if (i >= n || b[i] !== QUOTE) return -1;
  i++;
  let units = 0;
  while (i < n) {
    const c = b[i];
    const k = STR[c];
    let u: number;
    if (k === PLAIN) {
      u = c;
      i++;
    } else if (k === END) return units === 20 ? i + 1 : -1;
    else if (k === HIGH) {
      // U+0080..U+00FF are C2 80..C2 BF and C3 80..C3 BF in UTF-8; anything else is above 0xff.
      if ((c !== 0xc2 && c !== 0xc3) || i + 1 >= n || (b[i + 1] & 0xc0) !== 0x80) return -1;
      u = ((c & 0x03) << 6) | (b[i + 1] & 0x3f);
      i += 2;
    } else if (k === CONTROL || i + 1 >= n) return -1;
    else if (SHORT[b[i + 1]] >= 0) {
      u = SHORT[b[i + 1]];
      i += 2;
    } else {
      if (i + 5 >= n || b[i + 1] !== 0x75 || b[i + 2] !== ZERO || b[i + 3] !== ZERO) return -1;
      const hi = HEX[b[i + 4]];
      const lo = HEX[b[i + 5]];
      if ((hi | lo) < 0) return -1;
      u = hi * 16 + lo;
      i += 6;
    }
    if (units === 20) return -1;
    out[units++] = u;
  }
  return -1;
}

// ---- Integers and keys ----

/** Set by `countAt`: the value of the integer it accepted. */
let countValue = 0;

/** A plain non-negative integer of at most 15 digits at `i`: the index after it, or -1. */
function countAt(b: Uint8Array, i: number): number {
  const n = b.length;
  if (i >= n || b[i] < ZERO || b[i] > NINE) return -1;
  let v = b[i] - ZERO;
  const s = i;
  i++;
  if (v !== 0)
    while (i < n && b[i] >= ZERO && b[i] <= NINE) {
      v = v * 10 + (b[i] - ZERO);
      i++;
    }
  if (i - s > 15) return -1;
  // Not followed by more of a number (leading zero, fraction, exponent): JSON.parse decides those.
  if (i < n && ((b[i] >= ZERO && b[i] <= NINE) || b[i] === 0x2e || b[i] === 0x65 || b[i] === 0x45)) return -1;
  countValue = v;
  return i;
}

const K_UNKNOWN = 0;
const K_ACTION = 1;
const K_INFO_HASH = 2;
const K_PEER_ID = 3;
const K_EVENT = 4;
const K_UPLOADED = 5;
const K_DOWNLOADED = 6;
const K_LEFT = 7;
const K_NUMWANT = 8;
const K_OFFERS = 9;
/** `answer`, `to_peer_id`, `offer_id`: an answer, left to `parseClientMessage`. */
const K_GIVE_UP = -1;

const KEYS: [Uint8Array, number][] = (
  [
    ['action', K_ACTION],
    ['info_hash', K_INFO_HASH],
    ['peer_id', K_PEER_ID],
    ['event', K_EVENT],
    ['uploaded', K_UPLOADED],
    ['downloaded', K_DOWNLOADED],
    ['left', K_LEFT],
    ['numwant', K_NUMWANT],
    ['offers', K_OFFERS],
    ['answer', K_GIVE_UP],
    ['to_peer_id', K_GIVE_UP],
    ['offer_id', K_GIVE_UP],
  ] as const
).map(([k, v]) => [new TextEncoder().encode(k), v]);

function spanIs(b: Uint8Array, s: number, e: number, word: Uint8Array): boolean {
  if (e - s !== word.length) return false;
  for (let k = 0; k < word.length; k++) if (b[s + k] !== word[k]) return false;
  return true;
}

function keyOf(b: Uint8Array, s: number, e: number): number {
  for (let k = 0; k < KEYS.length; k++) if (spanIs(b, s, e, KEYS[k][0])) return KEYS[k][1];
  return K_UNKNOWN;
}

const ANNOUNCE = new TextEncoder().encode('"announce"');
const OFFER = new TextEncoder().encode('offer');
const OFFER_ID = new TextEncoder().encode('offer_id');
const EVENTS: [Uint8Array, AnnounceEvent][] = (
  [
    ['"started"', AnnounceEvent.started],
    ['"completed"', AnnounceEvent.completed],
    ['"stopped"', AnnounceEvent.stopped],
    ['"update"', AnnounceEvent.none],
    ['"empty"', AnnounceEvent.none],
    ['"paused"', AnnounceEvent.none],
  ] as const
).map(([k, v]) => [new TextEncoder().encode(k), v]);

/** A key (no escape) at `i`: sets `keyEnd` to its closing quote; returns the index after it or -1. */
let keyEnd = 0;
function keyAt(b: Uint8Array, i: number): number {
  const n = b.length;
  if (i >= n || b[i] !== QUOTE) return -1;
  i++;
  while (i < n) {
    const k = STR[b[i]];
    if (k === PLAIN || k === HIGH) i++;
    else if (k === END) {
      keyEnd = i;
      return i + 1;
    } else return -1; // an escape (the scanner compares raw bytes) or a control character
  }
  return -1;
}

// ---- The message ----

/**
 * One element of `offers`: `{offer, offer_id}` (any order, other keys ignored) appended to
 * `offers`. Returns the index after it, or -1.
 */
function offerAt(b: Uint8Array, i: number, maxSdp: number, offers: WsOffer[]): number {
  const n = b.length;
  if (i >= n || b[i] !== LBRACE) return -1;
  i = skipWs(b, i + 1);
  let start = -1;
  let end = -1;
  let id: Buffer | null = null;
  for (;;) {
    const ks = i + 1;
    i = keyAt(b, i);
    if (i < 0) return -1;
    const ke = keyEnd;
    i = skipWs(b, i);
    if (i >= n || b[i] !== COLON) return -1;
    i = skipWs(b, i + 1);
    if (spanIs(b, ks, ke, OFFER)) {
      if (start >= 0) return -1;
      start = i;
      sdpUnits = -1;
      i = canonObject(b, i, 1);
      if (i < 0 || sdpUnits < 0 || sdpUnits > maxSdp) return -1;
      end = i;
    } else if (spanIs(b, ks, ke, OFFER_ID)) {
      if (id !== null) return -1;
      id = Buffer.allocUnsafe(20);
      i = binaryIdAt(b, i, id);
    } else i = skipValue(b, i, 3);
    if (i < 0) return -1;
    i = skipWs(b, i);
    if (i >= n) return -1;
    if (b[i] === RBRACE) break;
    if (b[i] !== COMMA) return -1;
    i = skipWs(b, i + 1);
  }
  if (start < 0 || id === null) return -1;
  offers.push({ offerId: id, offerJson: b.subarray(start, end) });
  return i + 1;
}

/**
 * An announce without `answer`, straight from the frame's bytes, or null when the scanner gives
 * up (see the file comment). `offerJson` of each offer is a view of `b`.
 */
export function scanAnnounce(b: Uint8Array, limits?: WsLimits): WsAnnounce | null {
  view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const msg = scan(b, limits);
  view = NO_VIEW; // not kept: it would hold on to the frame
  return msg;
}

function scan(b: Uint8Array, limits: WsLimits | undefined): WsAnnounce | null {
  const maxBytes = limits?.maxBytes ?? WS_LIMITS.maxBytes;
  const maxOffers = limits?.maxOffers ?? WS_LIMITS.maxOffers;
  const maxSdp = limits?.maxSdpBytes ?? WS_LIMITS.maxSdpBytes;
  const n = b.length;
  if (n > maxBytes) return null;
  let i = skipWs(b, 0);
  if (i >= n || b[i] !== LBRACE) return null;
  i = skipWs(b, i + 1);
  let seen = 0;
  let infoHash: Buffer | null = null;
  let peerId: Buffer | null = null;
  let event: AnnounceEvent = AnnounceEvent.none;
  let uploaded = 0;
  let downloaded = 0;
  let left = 1;
  let numwant = -1;
  let offers: WsOffer[] | undefined;
  for (;;) {
    const ks = i + 1;
    i = keyAt(b, i);
    if (i < 0) return null;
    const key = keyOf(b, ks, keyEnd);
    i = skipWs(b, i);
    if (i >= n || b[i] !== COLON) return null;
    i = skipWs(b, i + 1);
    if (key === K_GIVE_UP) return null;
    if (key !== K_UNKNOWN) {
      if ((seen & (1 << key)) !== 0) return null;
      seen |= 1 << key;
    }
    const isNull = i < n && b[i] === 0x6e;
    switch (key) {
      case K_UNKNOWN:
        i = skipValue(b, i, 1);
        break;
      case K_ACTION:
        i = literal(b, i, ANNOUNCE);
        break;
      case K_INFO_HASH:
        infoHash = Buffer.allocUnsafe(20);
        i = binaryIdAt(b, i, infoHash);
        break;
      case K_PEER_ID:
        peerId = Buffer.allocUnsafe(20);
        i = binaryIdAt(b, i, peerId);
        break;
      case K_EVENT:
        if (isNull) i = literal(b, i, NULL);
        else {
          let j = -1;
          for (let k = 0; k < EVENTS.length && j < 0; k++) {
            j = literal(b, i, EVENTS[k][0]);
            if (j >= 0) event = EVENTS[k][1];
          }
          i = j;
        }
        break;
      case K_OFFERS:
        if (isNull) {
          i = literal(b, i, NULL);
          break;
        }
        if (b[i] !== LBRACKET) return null;
        offers = [];
        i = skipWs(b, i + 1);
        if (i < n && b[i] === RBRACKET) {
          i++;
          break;
        }
        for (;;) {
          if (offers.length === maxOffers) return null;
          i = offerAt(b, i, maxSdp, offers);
          if (i < 0) return null;
          i = skipWs(b, i);
          if (i >= n) return null;
          if (b[i] === RBRACKET) {
            i++;
            break;
          }
          if (b[i] !== COMMA) return null;
          i = skipWs(b, i + 1);
        }
        break;
      default:
        // uploaded, downloaded, left, numwant: null is absent.
        if (isNull) {
          i = literal(b, i, NULL);
          break;
        }
        i = countAt(b, i);
        if (key === K_UPLOADED) uploaded = countValue;
        else if (key === K_DOWNLOADED) downloaded = countValue;
        else if (key === K_LEFT) left = countValue;
        else numwant = countValue;
    }
    if (i < 0) return null;
    i = skipWs(b, i);
    if (i >= n) return null;
    if (b[i] === RBRACE) break;
    if (b[i] !== COMMA) return null;
    i = skipWs(b, i + 1);
  }
  if (skipWs(b, i + 1) !== n) return null;
  if ((seen & (1 << K_ACTION)) === 0 || infoHash === null || peerId === null) return null;
  const msg: WsAnnounce = { action: 'announce', infoHash, peerId, event, uploaded, downloaded, left };
  if (numwant >= 0) msg.numwant = numwant;
  if (offers !== undefined) msg.offers = offers;
  return msg;
}

/**
 * Parses one client message from a text frame's payload (valid UTF-8, as RawWebSocket delivers
 * it): an announce through the scanner when it can, anything else by `parseClientMessage`. Same
 * results as `parseClientMessage(bytes as text)`; `offerJson` may be a view of `bytes`.
 */
export function parseClientFrame(bytes: Uint8Array, limits?: WsLimits): WsParseResult {
  const msg = scanAnnounce(bytes, limits);
  if (msg !== null) return { ok: true, msg };
  return parseClientMessage(
    Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'),
    limits,
  );
}
