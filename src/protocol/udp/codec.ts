import { copyBytes } from '../../core/bytes.ts';
import { Errors, type TrackerError } from '../../core/errors.ts';
import type { ScrapeEntry } from '../../core/types.ts';

/**
 * BEP 15 UDP tracker protocol, both ways, on bytes. Offsets follow the BEP:
 *   connect  req: 0 protocol_id u64 | 8 action u32 (0) | 12 transaction_id u32            (16 bytes)
 *   announce req: 0 connection_id u64 | 8 action (1) | 12 tid | 16 info_hash[20] | 36 peer_id[20]
 *                 | 56 downloaded u64 | 64 left u64 | 72 uploaded u64 | 80 event u32 | 84 ip u32
 *                 | 88 key u32 | 92 num_want i32 | 96 port u16 | 98 options (BEP 41)       (98+ bytes)
 *   scrape   req: 0 connection_id u64 | 8 action (2) | 12 tid | 16 info_hash[20] * N          (16+20N)
 * Connection ids are carried as two uint32 halves (hi, lo): cheaper than a BigInt per packet.
 */

export const PROTOCOL_ID_HI = 0x417;
export const PROTOCOL_ID_LO = 0x27101980;
export const Action = { connect: 0, announce: 1, scrape: 2, error: 3 } as const;
/** At most this many info hashes per scrape (BEP 15: "up to about 74"). */
export const MAX_SCRAPE_HASHES = 74;
/** BEP 41 URL data longer than this (after concatenation) is ignored. */
export const MAX_URL_DATA = 1024;
/** Peers per UDP announce reply at most; callers cap numWant to this. */
export const MAX_UDP_PEERS = 200;
/**
 * Largest reply Herald ever writes: an announce with MAX_UDP_PEERS IPv6 peers
 * (20 + 200 * 18 = 3620 bytes) or a scrape of 74 hashes (8 + 74 * 12 = 896).
 */
export const MAX_RESPONSE_SIZE = 20 + MAX_UDP_PEERS * 18;

export interface ConnectionId {
  hi: number;
  lo: number;
}

export interface ConnectRequest {
  action: 0;
  transactionId: number;
}

export interface AnnounceRequestPacket {
  action: 1;
  connectionId: ConnectionId;
  transactionId: number;
  /** Copies, owned by the caller. */
  infoHash: Uint8Array;
  peerId: Uint8Array;
  downloaded: number;
  left: number;
  uploaded: number;
  event: 0 | 1 | 2 | 3;
  ip: number;
  key: number;
  /** -1 (or any negative) means the default. */
  numWant: number;
  port: number;
  /** BEP 41 URL data (path and query, e.g. `/announce/<passkey>`), or null. */
  urlData: string | null;
}

export interface ScrapeRequestPacket {
  action: 2;
  connectionId: ConnectionId;
  transactionId: number;
  infoHashes: Uint8Array[];
}

export interface RequestError {
  action: -1;
  error: TrackerError;
  /** Null when the packet was too short to carry one: such a packet never gets a reply. */
  transactionId: number | null;
  connectionId: ConnectionId | null;
}

export type UdpRequest = ConnectRequest | AnnounceRequestPacket | ScrapeRequestPacket | RequestError;

// Big-endian fields read and written byte by byte: a DataView per packet is an object (and, when
// V8 does not inline its constructor, a call into C++) on every request of the hot path.

function u32(buf: Uint8Array, off: number): number {
  return ((buf[off] << 24) | (buf[off + 1] << 16) | (buf[off + 2] << 8) | buf[off + 3]) >>> 0;
}

function u64(buf: Uint8Array, off: number): number {
  const hi = u32(buf, off);
  // Exact below 2^53; larger counters (nobody transfers 9 PB) are clamped to 2^53 - 1.
  if (hi >= 0x200000) return Number.MAX_SAFE_INTEGER;
  return hi * 0x100000000 + u32(buf, off + 4);
}

/**
 * Writes `n` as a 32-bit word at `off`, big-endian (a negative `n` in two's complement); a typed
 * array keeps the low 8 bits of each byte written.
 */
function put32(out: Uint8Array, off: number, n: number): void {
  out[off] = n >>> 24;
  out[off + 1] = n >>> 16;
  out[off + 2] = n >>> 8;
  out[off + 3] = n;
}

/**
 * One request read in place: the server keeps one and `readRequest` overwrites its fields for
 * each datagram, so the hot path allocates nothing per packet (no result object, no DataView, no
 * view per hash). Which fields hold a value depends on `action`; `parseRequest` turns one into
 * the plain objects above.
 */
export class UdpPacket {
  /** 0 connect, 1 announce, 2 scrape, -1 refused (see `error`). */
  action: -1 | 0 | 1 | 2 = -1;
  /** -1 when the packet was too short to carry one: such a packet never gets a reply. */
  transactionId = -1;
  /** Whether `hi`/`lo` hold a connection id (every packet but connect and runts). */
  hasConnectionId = false;
  /** The connection id's halves (the packet is itself a `ConnectionId`). */
  hi = 0;
  lo = 0;
  /** Announce: copied out of the datagram, overwritten by the next read. */
  readonly infoHash = new Uint8Array(20);
  readonly peerId = new Uint8Array(20);
  downloaded = 0;
  left = 0;
  uploaded = 0;
  event: 0 | 1 | 2 | 3 = 0;
  ip = 0;
  key = 0;
  /** -1 (or any negative) means the default. */
  numWant = -1;
  port = 0;
  /** BEP 41 URL data (path and query, e.g. `/announce/<passkey>`), or null. */
  urlData: string | null = null;
  /** Scrape: views of the datagram's hashes (a new array per scrape). */
  infoHashes: Uint8Array[] = [];
  /** Why the packet was refused (action -1). */
  error: TrackerError = Errors.invalidPacket;
}

function refuse(p: UdpPacket, error: TrackerError): -1 {
  p.action = -1;
  p.error = error;
  return -1;
}

function copy20(dst: Uint8Array, src: Uint8Array, at: number): void {
  for (let i = 0; i < 20; i++) dst[i] = src[at + i];
}

/** Reads one request datagram `buf[0, len)` into `p`; returns `p.action`. Never throws. */
export function readRequest(buf: Uint8Array, len: number, p: UdpPacket): -1 | 0 | 1 | 2 {
  p.transactionId = -1;
  p.hasConnectionId = false;
  if (len < 16 || len > buf.length) return refuse(p, Errors.invalidPacket);
  const hi = u32(buf, 0);
  const lo = u32(buf, 4);
  const action = u32(buf, 8);
  const transactionId = u32(buf, 12);
  if (action === Action.connect) {
    if (hi !== PROTOCOL_ID_HI || lo !== PROTOCOL_ID_LO) return refuse(p, Errors.invalidPacket);
    p.action = 0;
    p.transactionId = transactionId;
    return 0;
  }
  p.transactionId = transactionId;
  p.hasConnectionId = true;
  p.hi = hi;
  p.lo = lo;
  if (action === Action.announce) {
    if (len < 98) return refuse(p, Errors.invalidPacket);
    const event = u32(buf, 80);
    if (event > 3) return refuse(p, Errors.invalidEvent);
    const urlData = len > 98 ? parseOptions(buf, 98, len) : null;
    p.action = 1;
    copy20(p.infoHash, buf, 16);
    copy20(p.peerId, buf, 36);
    p.downloaded = u64(buf, 56);
    p.left = u64(buf, 64);
    p.uploaded = u64(buf, 72);
    p.event = event as 0 | 1 | 2 | 3;
    p.ip = u32(buf, 84);
    p.key = u32(buf, 88);
    p.numWant = u32(buf, 92) | 0;
    p.port = (buf[96] << 8) | buf[97];
    p.urlData = urlData;
    return 1;
  }
  if (action === Action.scrape) {
    const n = (len - 16) / 20;
    if (n < 1 || !Number.isInteger(n)) return refuse(p, Errors.invalidPacket);
    if (n > MAX_SCRAPE_HASHES) return refuse(p, Errors.tooManyInfoHashes);
    const infoHashes: Uint8Array[] = new Array(n);
    for (let i = 0; i < n; i++) infoHashes[i] = buf.subarray(16 + 20 * i, 36 + 20 * i);
    p.action = 2;
    p.infoHashes = infoHashes;
    return 2;
  }
  return refuse(p, Errors.invalidAction);
}

/** Parses one request datagram `buf[0, len)` into a new object (hashes copied). Never throws. */
export function parseRequest(buf: Uint8Array, len: number): UdpRequest {
  const p = new UdpPacket();
  readRequest(buf, len, p);
  const transactionId = p.transactionId;
  const connectionId = p.hasConnectionId ? { hi: p.hi, lo: p.lo } : null;
  switch (p.action) {
    case 0:
      return { action: 0, transactionId };
    case 1:
      return {
        action: 1,
        connectionId: connectionId!,
        transactionId,
        infoHash: p.infoHash,
        peerId: p.peerId,
        downloaded: p.downloaded,
        left: p.left,
        uploaded: p.uploaded,
        event: p.event,
        ip: p.ip,
        key: p.key,
        numWant: p.numWant,
        port: p.port,
        urlData: p.urlData,
      };
    case 2:
      return {
        action: 2,
        connectionId: connectionId!,
        transactionId,
        infoHashes: p.infoHashes.map((h) => h.slice()),
      };
    default:
      return {
        action: -1,
        error: p.error,
        transactionId: transactionId < 0 ? null : transactionId,
        connectionId,
      };
  }
}

/**
 * BEP 41 options: 0x0 EndOfOptions, 0x1 NOP, 0x2 URLData (length byte, then bytes; several
 * concatenate). An unknown option type ends parsing (its length is not known, per BEP 41).
 * Returns the URL data (latin1), or null when there is none or it cannot be trusted: an option
 * cut short by the end of the packet, or data longer than MAX_URL_DATA.
 *
 * Malformed options never refuse the announce: the 98 bytes before them are a complete BEP 15
 * announce, and what follows them is optional. opentracker ignores it, and aquatic, which
 * refused trailing bytes, had to accept them for qBittorrent 5. Only private mode needs the URL
 * data (for the passkey), and there an unreadable one reads as absent (never as a partial
 * passkey), so the client is told what to do instead.
 */
function parseOptions(buf: Uint8Array, start: number, end: number): string | null {
  let url: string | null = null;
  let i = start;
  while (i < end) {
    const type = buf[i];
    if (type === 0) break;
    if (type === 1) {
      i++;
      continue;
    }
    if (type === 2) {
      if (i + 1 >= end) return null;
      const n = buf[i + 1];
      if (i + 2 + n > end) return null;
      if ((url === null ? 0 : url.length) + n > MAX_URL_DATA) return null;
      let s = '';
      for (let k = i + 2; k < i + 2 + n; k++) s += String.fromCharCode(buf[k]);
      url = (url ?? '') + s;
      i += 2 + n;
      continue;
    }
    break;
  }
  return url;
}

export function writeConnectResponse(out: Uint8Array, transactionId: number, id: ConnectionId): number {
  put32(out, 0, Action.connect);
  put32(out, 4, transactionId);
  put32(out, 8, id.hi);
  put32(out, 12, id.lo);
  return 16;
}

/** `peers` holds compact records (6 bytes v4, 18 bytes v6); its first `peersLength` bytes are copied. */
export function writeAnnounceResponse(
  out: Uint8Array,
  transactionId: number,
  interval: number,
  leechers: number,
  seeders: number,
  peers: Uint8Array,
  peersLength: number,
): number {
  put32(out, 0, Action.announce);
  put32(out, 4, transactionId);
  put32(out, 8, interval);
  put32(out, 12, Math.min(leechers, 0xffffffff));
  put32(out, 16, Math.min(seeders, 0xffffffff));
  copyBytes(out, 20, peers, 0, peersLength);
  return 20 + peersLength;
}

export function writeScrapeResponse(
  out: Uint8Array,
  transactionId: number,
  entries: readonly ScrapeEntry[],
): number {
  put32(out, 0, Action.scrape);
  put32(out, 4, transactionId);
  let off = 8;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    put32(out, off, e.complete);
    put32(out, off + 4, e.downloaded);
    put32(out, off + 8, e.incomplete);
    off += 12;
  }
  return off;
}

/** Error reply; the message is truncated so that the reply stays small. */
export function writeErrorResponse(out: Uint8Array, transactionId: number, message: string): number {
  put32(out, 0, Action.error);
  put32(out, 4, transactionId);
  const m = Buffer.from(message.slice(0, 200), 'utf8');
  out.set(m, 8);
  return 8 + m.length;
}

// ---- Client side: request writers and response parsers (tests, load generators). ----

export function writeConnectRequest(out: Uint8Array, transactionId: number): number {
  put32(out, 0, PROTOCOL_ID_HI);
  put32(out, 4, PROTOCOL_ID_LO);
  put32(out, 8, Action.connect);
  put32(out, 12, transactionId);
  return 16;
}

export interface AnnounceFields {
  connectionId: ConnectionId;
  transactionId: number;
  infoHash: Uint8Array;
  peerId: Uint8Array;
  downloaded: number;
  left: number;
  uploaded: number;
  event: 0 | 1 | 2 | 3;
  ip?: number;
  key?: number;
  numWant: number;
  port: number;
  urlData?: string | null;
}

function put64(out: Uint8Array, off: number, n: number): void {
  put32(out, off, Math.floor(n / 0x100000000));
  put32(out, off + 4, n >>> 0);
}

export function writeAnnounceRequest(out: Uint8Array, f: AnnounceFields): number {
  put32(out, 0, f.connectionId.hi);
  put32(out, 4, f.connectionId.lo);
  put32(out, 8, Action.announce);
  put32(out, 12, f.transactionId);
  out.set(f.infoHash, 16);
  out.set(f.peerId, 36);
  put64(out, 56, f.downloaded);
  put64(out, 64, f.left);
  put64(out, 72, f.uploaded);
  put32(out, 80, f.event);
  put32(out, 84, f.ip ?? 0);
  put32(out, 88, f.key ?? 0);
  put32(out, 92, f.numWant); // two's complement: -1 is ff ff ff ff
  out[96] = f.port >>> 8;
  out[97] = f.port;
  let off = 98;
  if (f.urlData) {
    const data = Buffer.from(f.urlData, 'latin1');
    for (let i = 0; i < data.length; i += 255) {
      const chunk = data.subarray(i, i + 255);
      out[off++] = 2;
      out[off++] = chunk.length;
      out.set(chunk, off);
      off += chunk.length;
    }
    out[off++] = 0;
  }
  return off;
}

export function writeScrapeRequest(
  out: Uint8Array,
  connectionId: ConnectionId,
  transactionId: number,
  infoHashes: readonly Uint8Array[],
): number {
  put32(out, 0, connectionId.hi);
  put32(out, 4, connectionId.lo);
  put32(out, 8, Action.scrape);
  put32(out, 12, transactionId);
  let off = 16;
  for (const h of infoHashes) {
    out.set(h, off);
    off += 20;
  }
  return off;
}

export type UdpResponse =
  | { action: 0; transactionId: number; connectionId: ConnectionId }
  | {
      action: 1;
      transactionId: number;
      interval: number;
      leechers: number;
      seeders: number;
      peers: Uint8Array;
    }
  | { action: 2; transactionId: number; entries: ScrapeEntry[] }
  | { action: 3; transactionId: number; message: string }
  | { action: -1; reason: string };

/** Parses a tracker reply. `family` tells the peer record size (6 or 18). Never throws. */
export function parseResponse(buf: Uint8Array, len: number, family: 4 | 6 = 4): UdpResponse {
  if (len < 8 || len > buf.length) return { action: -1, reason: 'short' };
  const action = u32(buf, 0);
  const transactionId = u32(buf, 4);
  if (action === 0) {
    if (len !== 16) return { action: -1, reason: 'connect size' };
    return { action: 0, transactionId, connectionId: { hi: u32(buf, 8), lo: u32(buf, 12) } };
  }
  if (action === 1) {
    const stride = family === 4 ? 6 : 18;
    if (len < 20 || (len - 20) % stride !== 0) return { action: -1, reason: 'announce size' };
    return {
      action: 1,
      transactionId,
      interval: u32(buf, 8),
      leechers: u32(buf, 12),
      seeders: u32(buf, 16),
      peers: buf.slice(20, len),
    };
  }
  if (action === 2) {
    if ((len - 8) % 12 !== 0) return { action: -1, reason: 'scrape size' };
    const entries: ScrapeEntry[] = [];
    for (let off = 8; off < len; off += 12)
      entries.push({
        complete: u32(buf, off),
        downloaded: u32(buf, off + 4),
        incomplete: u32(buf, off + 8),
      });
    return { action: 2, transactionId, entries };
  }
  if (action === 3)
    return { action: 3, transactionId, message: Buffer.from(buf.subarray(8, len)).toString('utf8') };
  return { action: -1, reason: 'unknown action' };
}
