import { binaryString } from '../../core/bytes.ts';
import { AnnounceEvent } from '../../core/types.ts';

/**
 * WebTorrent tracker protocol (JSON text frames over WebSocket), as spoken by webtorrent's
 * `bittorrent-tracker` client (`lib/client/websocket-tracker.js`). Pure: a decoded frame's text in,
 * a typed message or a static reason out; typed fields in, a JSON string out.
 *
 * Client → tracker:
 *   announce {action, info_hash, peer_id, event?, uploaded?, downloaded?, left?, numwant?,
 *             offers?: [{offer: {type:'offer', sdp}, offer_id}], trackerid?}
 *   answer   {action:'announce', info_hash, peer_id, to_peer_id, answer: {type:'answer', sdp}, offer_id}
 *   scrape   {action:'scrape', info_hash?: string | string[]}
 * `info_hash`, `peer_id`, `to_peer_id` and `offer_id` are 20-character "binary strings": each
 * UTF-16 code unit 0..255 is one byte (what `buf.toString('binary')` gives). They are neither hex
 * nor UTF-8. A WebSocket text frame carries them as UTF-8 (a byte 0x80..0xff becomes two bytes on
 * the wire) and the frame decoder gives the same code units back, so they arrive intact here.
 *
 * Leniency, on purpose:
 * - `null` is the same as an absent field everywhere (JSON.stringify writes NaN as null, and
 *   webtorrent sends `left: null` for a magnet whose metadata it does not have yet).
 * - Unknown fields (e.g. `trackerid`) are ignored.
 * - Offers and answers are relayed verbatim: only `sdp` (a string of bounded size) is checked.
 * Reasons are static strings (no client input echoed): safe to send back as `failure reason`
 * and to use as metric labels.
 */

export interface WsLimits {
  /** Largest message, in UTF-8 bytes, checked before JSON.parse. */
  maxBytes?: number;
  /** Most entries in `offers`. */
  maxOffers?: number;
  /** Largest `sdp` of one offer or answer, in UTF-8 bytes. */
  maxSdpBytes?: number;
  /** Most info hashes in one scrape. */
  maxInfoHashes?: number;
}

export const WS_LIMITS: Readonly<Required<WsLimits>> = Object.freeze({
  maxBytes: 64 * 1024,
  maxOffers: 20,
  maxSdpBytes: 16 * 1024,
  maxInfoHashes: 100,
});

/** Every reason `parseClientMessage` can give. */
export const WsReasons = {
  tooLarge: 'message too large',
  notText: 'message must be text',
  invalidJson: 'invalid JSON',
  notObject: 'message must be a JSON object',
  missingAction: 'missing action',
  invalidAction: 'unknown action',
  missingInfoHash: 'missing info_hash',
  invalidInfoHash: 'invalid info_hash: must be a 20-byte binary string',
  tooManyInfoHashes: 'too many info_hash values',
  missingPeerId: 'missing peer_id',
  invalidPeerId: 'invalid peer_id: must be a 20-byte binary string',
  invalidEvent: 'invalid event',
  invalidNumber: 'invalid uploaded, downloaded or left',
  invalidNumWant: 'invalid numwant',
  invalidOffers: 'invalid offers: must be an array',
  tooManyOffers: 'too many offers',
  invalidOffer: 'invalid offer: must be an object with a string sdp',
  invalidOfferId: 'invalid offer_id: must be a 20-byte binary string',
  sdpTooLarge: 'sdp too large',
  invalidAnswer: 'invalid answer: must be an object with a string sdp',
  missingToPeerId: 'missing to_peer_id (required with answer)',
  invalidToPeerId: 'invalid to_peer_id: must be a 20-byte binary string',
  missingOfferId: 'missing offer_id (required with answer)',
} as const;
export type WsReason = (typeof WsReasons)[keyof typeof WsReasons];

export interface WsOffer {
  offerId: Buffer;
  /**
   * The client's offer object (`{type:'offer', sdp}`) as the JSON text relayed verbatim, in ASCII
   * bytes: `asciiJson(JSON.stringify(offer))`. From `parseClientFrame` it is usually a view of the
   * frame (valid while the frame is: relay it before returning).
   */
  offerJson: Uint8Array;
}

export interface WsAnswer {
  toPeerId: Buffer;
  offerId: Buffer;
  /** The client's answer object (`{type:'answer', sdp}`), to relay verbatim. */
  answer: unknown;
}

/**
 * An announce. Buffers are fresh (possibly slices of Node's small-buffer pool): a caller that
 * keeps one for long should copy it, as the swarm stores already do.
 */
export interface WsAnnounce {
  action: 'announce';
  infoHash: Buffer;
  peerId: Buffer;
  /** Absent, `update`, `empty` and `paused` (BEP 21) are `none`. */
  event: AnnounceEvent;
  /** 0 when absent. */
  uploaded: number;
  /** 0 when absent. */
  downloaded: number;
  /**
   * Bytes left. Absent or null means unknown (webtorrent before it has the metadata): treated as
   * a leecher, `left = 1`, never as a seeder (same rule as the HTTP codec).
   */
  left: number;
  /** As sent (no clamping here); absent when the client sent none. */
  numwant?: number;
  /** Present when the client sent `offers` (possibly empty). */
  offers?: WsOffer[];
  /**
   * Present on an answer message (a relay to `toPeerId`). Such a message carries no
   * uploaded/downloaded/left/event: it should not change the sender's state in the swarm.
   */
  answer?: WsAnswer;
}

export interface WsScrape {
  action: 'scrape';
  /** Empty means all torrents (no `info_hash`, null, or an empty array). */
  infoHashes: Buffer[];
}

export type WsClientMessage = WsAnnounce | WsScrape;
export type WsParseResult = { ok: true; msg: WsClientMessage } | { ok: false; reason: WsReason };

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function fail(reason: WsReason): { ok: false; reason: WsReason } {
  return { ok: false, reason };
}

/** A 20-character binary string as 20 bytes, or null when it is anything else. */
function binaryId(v: unknown): Buffer | null {
  if (typeof v !== 'string' || v.length !== 20) return null;
  for (let i = 0; i < 20; i++) if (v.charCodeAt(i) > 0xff) return null;
  return Buffer.from(v, 'latin1');
}

/**
 * The JSON text an offer is relayed as, in ASCII bytes; null for an object nested too deep for
 * JSON.stringify (JSON.parse takes any depth; no real offer comes near it).
 */
function relayText(offer: unknown): Buffer | null {
  try {
    return asciiBytes(asciiJson(JSON.stringify(offer)));
  } catch {
    return null;
  }
}

/** True when `text` is more than `max` UTF-8 bytes; counts bytes only when it must. */
function tooLarge(text: string, max: number): boolean {
  // Each UTF-16 code unit is 1 to 3 UTF-8 bytes (a surrogate pair: 4 bytes for 2 units).
  if (text.length > max) return true;
  if (text.length * 3 <= max) return false;
  return Buffer.byteLength(text, 'utf8') > max;
}

/** Safe non-negative integer; `undefined` when absent or null, -1 when invalid. */
function count(v: unknown): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) return -1;
  return v === 0 ? 0 : v; // -0 → 0
}

function eventOf(v: unknown): AnnounceEvent | -1 {
  if (v === undefined || v === null) return AnnounceEvent.none;
  switch (v) {
    case 'started':
      return AnnounceEvent.started;
    case 'completed':
      return AnnounceEvent.completed;
    case 'stopped':
      return AnnounceEvent.stopped;
    case 'update':
    case 'empty':
    case 'paused':
      return AnnounceEvent.none;
    default:
      return -1;
  }
}

/** An offer or answer object: an object whose `sdp` is a string of at most `maxSdp` bytes. */
function sdpCheck(v: unknown, maxSdp: number): 'ok' | 'shape' | 'size' {
  if (!isObject(v) || typeof v.sdp !== 'string') return 'shape';
  return tooLarge(v.sdp, maxSdp) ? 'size' : 'ok';
}

/**
 * Parses one client message (the text of a WebSocket text frame). Never throws. The size is
 * checked before JSON.parse; then the action and the type of every known field.
 */
export function parseClientMessage(text: string, limits?: WsLimits): WsParseResult {
  const maxBytes = limits?.maxBytes ?? WS_LIMITS.maxBytes;
  if (typeof text !== 'string') return fail(WsReasons.notText);
  if (tooLarge(text, maxBytes)) return fail(WsReasons.tooLarge);
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch {
    return fail(WsReasons.invalidJson);
  }
  if (!isObject(m)) return fail(WsReasons.notObject);
  const action = m.action;
  if (action === undefined || action === null) return fail(WsReasons.missingAction);
  if (action === 'announce') return parseAnnounce(m, limits);
  if (action === 'scrape') return parseScrape(m, limits);
  return fail(WsReasons.invalidAction);
}

function parseAnnounce(m: Json, limits: WsLimits | undefined): WsParseResult {
  const maxOffers = limits?.maxOffers ?? WS_LIMITS.maxOffers;
  const maxSdp = limits?.maxSdpBytes ?? WS_LIMITS.maxSdpBytes;

  if (m.info_hash === undefined || m.info_hash === null) return fail(WsReasons.missingInfoHash);
  const infoHash = binaryId(m.info_hash);
  if (infoHash === null) return fail(WsReasons.invalidInfoHash);
  if (m.peer_id === undefined || m.peer_id === null) return fail(WsReasons.missingPeerId);
  const peerId = binaryId(m.peer_id);
  if (peerId === null) return fail(WsReasons.invalidPeerId);

  const event = eventOf(m.event);
  if (event === -1) return fail(WsReasons.invalidEvent);
  const uploaded = count(m.uploaded);
  const downloaded = count(m.downloaded);
  const left = count(m.left);
  if (uploaded === -1 || downloaded === -1 || left === -1) return fail(WsReasons.invalidNumber);
  // A negative integer means "the default", as over HTTP and UDP (BEP 3 and 15 say nothing of it;
  // numwant=-1 is what many clients send there).
  const negative = typeof m.numwant === 'number' && Number.isSafeInteger(m.numwant) && m.numwant < 0;
  const numwant = negative ? undefined : count(m.numwant);
  if (numwant === -1) return fail(WsReasons.invalidNumWant);

  let offers: WsOffer[] | undefined;
  if (m.offers !== undefined && m.offers !== null) {
    if (!Array.isArray(m.offers)) return fail(WsReasons.invalidOffers);
    if (m.offers.length > maxOffers) return fail(WsReasons.tooManyOffers);
    offers = new Array(m.offers.length);
    for (let i = 0; i < m.offers.length; i++) {
      const o: unknown = m.offers[i];
      if (!isObject(o)) return fail(WsReasons.invalidOffer);
      const sdp = sdpCheck(o.offer, maxSdp);
      if (sdp === 'shape') return fail(WsReasons.invalidOffer);
      if (sdp === 'size') return fail(WsReasons.sdpTooLarge);
      const offerId = binaryId(o.offer_id);
      if (offerId === null) return fail(WsReasons.invalidOfferId);
      const offerJson = relayText(o.offer);
      if (offerJson === null) return fail(WsReasons.invalidOffer);
      offers[i] = { offerId, offerJson };
    }
  }

  // `to_peer_id` and `offer_id` mean something only with `answer`, but are checked when present.
  let toPeerId: Buffer | null = null;
  if (m.to_peer_id !== undefined && m.to_peer_id !== null) {
    toPeerId = binaryId(m.to_peer_id);
    if (toPeerId === null) return fail(WsReasons.invalidToPeerId);
  }
  let offerId: Buffer | null = null;
  if (m.offer_id !== undefined && m.offer_id !== null) {
    offerId = binaryId(m.offer_id);
    if (offerId === null) return fail(WsReasons.invalidOfferId);
  }
  let answer: WsAnswer | undefined;
  if (m.answer !== undefined && m.answer !== null) {
    const sdp = sdpCheck(m.answer, maxSdp);
    if (sdp === 'shape') return fail(WsReasons.invalidAnswer);
    if (sdp === 'size') return fail(WsReasons.sdpTooLarge);
    if (toPeerId === null) return fail(WsReasons.missingToPeerId);
    if (offerId === null) return fail(WsReasons.missingOfferId);
    // Relayed with JSON.stringify, which (unlike JSON.parse) overflows the stack on deep nesting:
    // an answer that cannot be relayed is refused here, as an offer is (relayText).
    if (relayText(m.answer) === null) return fail(WsReasons.invalidAnswer);
    answer = { toPeerId, offerId, answer: m.answer };
  }

  const msg: WsAnnounce = {
    action: 'announce',
    infoHash,
    peerId,
    event,
    uploaded: uploaded ?? 0,
    downloaded: downloaded ?? 0,
    left: left ?? 1,
  };
  if (numwant !== undefined) msg.numwant = numwant;
  if (offers !== undefined) msg.offers = offers;
  if (answer !== undefined) msg.answer = answer;
  return { ok: true, msg };
}

function parseScrape(m: Json, limits: WsLimits | undefined): WsParseResult {
  const maxHashes = limits?.maxInfoHashes ?? WS_LIMITS.maxInfoHashes;
  const v = m.info_hash;
  if (v === undefined || v === null) return { ok: true, msg: { action: 'scrape', infoHashes: [] } };
  if (typeof v === 'string') {
    const h = binaryId(v);
    if (h === null) return fail(WsReasons.invalidInfoHash);
    return { ok: true, msg: { action: 'scrape', infoHashes: [h] } };
  }
  if (!Array.isArray(v)) return fail(WsReasons.invalidInfoHash);
  if (v.length > maxHashes) return fail(WsReasons.tooManyInfoHashes);
  const infoHashes: Buffer[] = new Array(v.length);
  for (let i = 0; i < v.length; i++) {
    const h = binaryId(v[i]);
    if (h === null) return fail(WsReasons.invalidInfoHash);
    infoHashes[i] = h;
  }
  return { ok: true, msg: { action: 'scrape', infoHashes } };
}

// ---- Tracker → client. Ids are 20-byte arrays, written as latin1 binary strings. ----

/** Bytes as a binary string (one UTF-16 code unit per byte). */
export const toBinaryString = binaryString;

/** `\u00XX` escapes for bytes outside printable ASCII (and for `"` and `\`). */
const BYTE_JSON: string[] = [];
for (let b = 0; b < 256; b++)
  BYTE_JSON.push(
    b >= 0x20 && b < 0x7f && b !== 0x22 && b !== 0x5c
      ? String.fromCharCode(b)
      : `\\u00${b.toString(16).padStart(2, '0')}`,
  );

/** `asciiJson(JSON.stringify(c))` for each code unit 0..255, as bytes (DEL stays as it is). */
const SHORT_ESCAPES = new Map<number, string>([
  [0x08, '\\b'],
  [0x09, '\\t'],
  [0x0a, '\\n'],
  [0x0c, '\\f'],
  [0x0d, '\\r'],
  [0x22, '\\"'],
  [0x5c, '\\\\'],
]);
const BYTE_STRINGIFY: Buffer[] = BYTE_JSON.map((json, b) =>
  Buffer.from(SHORT_ESCAPES.get(b) ?? (b === 0x7f ? '\x7f' : json), 'latin1'),
);
const ID_SCRATCH = Buffer.allocUnsafeSlow(6 * 20 + 2);

/** `asciiJson(JSON.stringify(toBinaryString(b)))`, without the strings in between. */
function stringifyBinary(b: Uint8Array): string {
  const out = b.length <= 20 ? ID_SCRATCH : Buffer.allocUnsafe(6 * b.length + 2);
  let at = 0;
  out[at++] = 0x22;
  for (let i = 0; i < b.length; i++) {
    const e = BYTE_STRINGIFY[b[i]];
    for (let k = 0; k < e.length; k++) out[at++] = e[k];
  }
  out[at++] = 0x22;
  return out.toString('latin1', 0, at);
}

/**
 * A JSON string literal (quotes included) of bytes as a binary string, in ASCII only. The value
 * is the same as `JSON.stringify(toBinaryString(b))`; the ASCII form matters for speed: a frame
 * of ASCII text is encoded to UTF-8 by a copy, while raw chars 0x80-0xFF take V8's slow path
 * (measured: 3.5 → 0.9 µs for a relayed offer).
 */
export function jsonBinary(b: Uint8Array): string {
  let out = '"';
  for (let i = 0; i < b.length; i++) out += BYTE_JSON[b[i]];
  return `${out}"`;
}

/** Bytes that `jsonBinary` writes as they are (printable ASCII but `"` and `\`). */
const PLAIN_BYTE = new Uint8Array(256).map((_, b) => (BYTE_JSON[b].length === 1 ? 1 : 0));
const HEX_DIGIT = Buffer.from('0123456789abcdef', 'latin1');

/** The length of `jsonBinary(b)`. */
function jsonBinaryLength(b: Uint8Array): number {
  let n = 2;
  for (let i = 0; i < b.length; i++) n += PLAIN_BYTE[b[i]] === 1 ? 1 : 6;
  return n;
}

/** Writes `jsonBinary(b)` into `out` at `at`; returns the index after it. */
function writeJsonBinary(out: Uint8Array, at: number, b: Uint8Array): number {
  out[at++] = 0x22;
  for (let i = 0; i < b.length; i++) {
    const c = b[i];
    if (PLAIN_BYTE[c] === 1) out[at++] = c;
    else {
      out[at] = 0x5c;
      out[at + 1] = 0x75;
      out[at + 2] = 0x30;
      out[at + 3] = 0x30;
      out[at + 4] = HEX_DIGIT[c >> 4];
      out[at + 5] = HEX_DIGIT[c & 15];
      at += 6;
    }
  }
  out[at++] = 0x22;
  return at;
}

/** `jsonBinary` as bytes. */
export function jsonBinaryBytes(b: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(jsonBinaryLength(b));
  writeJsonBinary(out, 0, b);
  return out;
}

/** ASCII text as bytes (one byte per code unit). */
function asciiBytes(s: string): Buffer {
  return Buffer.from(s, 'latin1');
}

const NON_ASCII_ALL = /[\u0080-\uffff]/g;
const escapeUnit = (c: string) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;

/** The same JSON text with every non-ASCII code unit escaped (see `jsonBinary`). */
export function asciiJson(json: string): string {
  // byteLength is a native scan, several times cheaper than a regular expression test here.
  return Buffer.byteLength(json) === json.length ? json : json.replace(NON_ASCII_ALL, escapeUnit);
}

export interface WsAnnounceResponse {
  infoHash: Uint8Array;
  complete: number;
  incomplete: number;
  /** Seconds (the client multiplies by 1000). */
  interval: number;
  minInterval?: number;
  warning?: string;
}

/** A number as JSON.stringify writes it. */
function jsonNumber(n: number): string {
  return Number.isFinite(n) ? String(n) : 'null';
}

/** The same text as `asciiJson(JSON.stringify({action, interval, ...}))`, built without an object. */
export function encodeAnnounceResponse(r: WsAnnounceResponse): string {
  let out = `{"action":"announce","interval":${jsonNumber(r.interval)}`;
  if (r.minInterval !== undefined) out += `,"min interval":${jsonNumber(r.minInterval)}`;
  out += `,"info_hash":${stringifyBinary(r.infoHash)},"complete":${jsonNumber(r.complete)},"incomplete":${jsonNumber(r.incomplete)}`;
  if (r.warning !== undefined) out += `,"warning message":${asciiJson(JSON.stringify(r.warning))}`;
  return `${out}}`;
}

/**
 * A relayed offer is `offerHead(infoHash, fromPeerId)`, the offer id as a JSON string
 * (`jsonBinaryBytes`), `OFFER_KEY`, the offer's JSON text (`WsOffer.offerJson`) and `OFFER_END`:
 * `{"action":"announce","info_hash":…,"peer_id":…,"offer_id":…,"offer":{…}}`. The head is the
 * same for every offer of one announce; a relay copies the parts into the frame, with no string
 * and no JSON.stringify per offer.
 */
export function offerHead(infoHash: Uint8Array, fromPeerId: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(
    HEAD_START.length +
      jsonBinaryLength(infoHash) +
      HEAD_PEER_ID.length +
      jsonBinaryLength(fromPeerId) +
      HEAD_OFFER_ID.length,
  );
  out.set(HEAD_START, 0);
  let at = writeJsonBinary(out, HEAD_START.length, infoHash);
  out.set(HEAD_PEER_ID, at);
  at = writeJsonBinary(out, at + HEAD_PEER_ID.length, fromPeerId);
  out.set(HEAD_OFFER_ID, at);
  return out;
}
const HEAD_START = asciiBytes('{"action":"announce","info_hash":');
const HEAD_PEER_ID = asciiBytes(',"peer_id":');
const HEAD_OFFER_ID = asciiBytes(',"offer_id":');
export const OFFER_KEY: Uint8Array = asciiBytes(',"offer":');
export const OFFER_END: Uint8Array = asciiBytes('}');

/** An offer relayed to a peer of the swarm (as text: the relay sends the same bytes in parts). */
export function encodeOffer(f: {
  infoHash: Uint8Array;
  fromPeerId: Uint8Array;
  offerId: Uint8Array;
  /** The offer object, or its JSON text as `WsOffer.offerJson` holds it. */
  offer?: unknown;
  offerJson?: Uint8Array;
}): string {
  const offerJson = f.offerJson ?? asciiBytes(asciiJson(JSON.stringify(f.offer)));
  return Buffer.concat([
    offerHead(f.infoHash, f.fromPeerId),
    jsonBinaryBytes(f.offerId),
    OFFER_KEY,
    offerJson,
    OFFER_END,
  ]).toString('latin1');
}

/** An answer relayed to the peer that made the offer; `answer` is the sender's object, verbatim. */
export function encodeAnswer(f: {
  infoHash: Uint8Array;
  fromPeerId: Uint8Array;
  offerId: Uint8Array;
  answer: unknown;
}): string {
  return asciiJson(
    JSON.stringify({
      action: 'announce',
      info_hash: toBinaryString(f.infoHash),
      peer_id: toBinaryString(f.fromPeerId),
      offer_id: toBinaryString(f.offerId),
      answer: f.answer,
    }),
  );
}

export interface WsScrapeEntry {
  infoHash: Uint8Array;
  complete: number;
  incomplete: number;
  downloaded: number;
}

/** `files` is keyed by binary info hash; a repeated hash: the last entry wins. */
export function encodeScrapeResponse(entries: readonly WsScrapeEntry[]): string {
  // No prototype: no key can be special.
  const files: Record<string, { complete: number; incomplete: number; downloaded: number }> =
    Object.create(null);
  for (const e of entries)
    files[toBinaryString(e.infoHash)] = {
      complete: e.complete,
      incomplete: e.incomplete,
      downloaded: e.downloaded,
    };
  return asciiJson(JSON.stringify({ action: 'scrape', files }));
}

/**
 * A failure. The client routes a message by `action` (a message without one makes it drop the
 * socket and reconnect) and drops an announce reply whose `info_hash` is not its own: pass both
 * to have the reason shown to the user.
 */
export function encodeFailure(
  reason: string,
  opts: { action?: 'announce' | 'scrape'; infoHash?: Uint8Array } = {},
): string {
  const o: Json = { 'failure reason': reason };
  if (opts.action !== undefined) o.action = opts.action;
  if (opts.infoHash !== undefined) o.info_hash = toBinaryString(opts.infoHash);
  return asciiJson(JSON.stringify(o));
}
