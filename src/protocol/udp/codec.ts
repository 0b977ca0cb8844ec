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
/** BEP 41 URL data longer than this (after concatenation) is refused. */
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

function u64(buf: Uint8Array, off: number): number {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const hi = view.getUint32(off);
  const lo = view.getUint32(off + 4);
  // Exact below 2^53; larger counters (nobody transfers 9 PB) are clamped to 2^53 - 1.
  if (hi >= 0x200000) return Number.MAX_SAFE_INTEGER;
  return hi * 0x100000000 + lo;
}

function err(
  error: TrackerError,
  transactionId: number | null,
  connectionId: ConnectionId | null,
): RequestError {
  return { action: -1, error, transactionId, connectionId };
}

/** Parses one request datagram `buf[0, len)`. Never throws. */
export function parseRequest(buf: Uint8Array, len: number): UdpRequest {
  if (len < 16 || len > buf.length) return err(Errors.invalidPacket, null, null);
  const view = new DataView(buf.buffer, buf.byteOffset, len);
  const hi = view.getUint32(0);
  const lo = view.getUint32(4);
  const action = view.getUint32(8);
  const transactionId = view.getUint32(12);
  if (action === Action.connect) {
    if (hi !== PROTOCOL_ID_HI || lo !== PROTOCOL_ID_LO) return err(Errors.invalidPacket, null, null);
    return { action: 0, transactionId };
  }
  const connectionId = { hi, lo };
  if (action === Action.announce) {
    if (len < 98) return err(Errors.invalidPacket, transactionId, connectionId);
    const event = view.getUint32(80);
    if (event > 3) return err(Errors.invalidEvent, transactionId, connectionId);
    let urlData: string | null = null;
    if (len > 98) {
      const parsed = parseOptions(buf, 98, len);
      if (parsed === false) return err(Errors.invalidPacket, transactionId, connectionId);
      urlData = parsed;
    }
    return {
      action: 1,
      connectionId,
      transactionId,
      infoHash: buf.slice(16, 36),
      peerId: buf.slice(36, 56),
      downloaded: u64(buf, 56),
      left: u64(buf, 64),
      uploaded: u64(buf, 72),
      event: event as 0 | 1 | 2 | 3,
      ip: view.getUint32(84),
      key: view.getUint32(88),
      numWant: view.getInt32(92),
      port: view.getUint16(96),
      urlData,
    };
  }
  if (action === Action.scrape) {
    const n = (len - 16) / 20;
    if (n < 1 || !Number.isInteger(n)) return err(Errors.invalidPacket, transactionId, connectionId);
    if (n > MAX_SCRAPE_HASHES) return err(Errors.tooManyInfoHashes, transactionId, connectionId);
    const infoHashes: Uint8Array[] = new Array(n);
    for (let i = 0; i < n; i++) infoHashes[i] = buf.slice(16 + 20 * i, 36 + 20 * i);
    return { action: 2, connectionId, transactionId, infoHashes };
  }
  return err(Errors.invalidAction, transactionId, connectionId);
}

/**
 * BEP 41 options: 0x0 EndOfOptions, 0x1 NOP, 0x2 URLData (length byte, then bytes; several
 * concatenate). An unknown option type ends parsing (its length is not known, per BEP 41).
 * Returns the URL data (latin1), null when none, or false when an option is truncated or the
 * data exceeds MAX_URL_DATA.
 */
function parseOptions(buf: Uint8Array, start: number, end: number): string | null | false {
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
      if (i + 1 >= end) return false;
      const n = buf[i + 1];
      if (i + 2 + n > end) return false;
      let s = '';
      for (let k = i + 2; k < i + 2 + n; k++) s += String.fromCharCode(buf[k]);
      url = (url ?? '') + s;
      if (url.length > MAX_URL_DATA) return false;
      i += 2 + n;
      continue;
    }
    break;
  }
  return url;
}

function dv(out: Uint8Array): DataView {
  return new DataView(out.buffer, out.byteOffset, out.byteLength);
}

export function writeConnectResponse(out: Uint8Array, transactionId: number, id: ConnectionId): number {
  const v = dv(out);
  v.setUint32(0, Action.connect);
  v.setUint32(4, transactionId);
  v.setUint32(8, id.hi);
  v.setUint32(12, id.lo);
  return 16;
}

/** `peers` holds compact records (6 bytes v4, 18 bytes v6); `peersLength` bytes are copied. */
export function writeAnnounceResponse(
  out: Uint8Array,
  transactionId: number,
  interval: number,
  leechers: number,
  seeders: number,
  peers: Uint8Array,
  peersLength: number,
): number {
  const v = dv(out);
  v.setUint32(0, Action.announce);
  v.setUint32(4, transactionId);
  v.setUint32(8, interval);
  v.setUint32(12, Math.min(leechers, 0xffffffff));
  v.setUint32(16, Math.min(seeders, 0xffffffff));
  out.set(peers.subarray(0, peersLength), 20);
  return 20 + peersLength;
}

export function writeScrapeResponse(
  out: Uint8Array,
  transactionId: number,
  entries: readonly ScrapeEntry[],
): number {
  const v = dv(out);
  v.setUint32(0, Action.scrape);
  v.setUint32(4, transactionId);
  let off = 8;
  for (const e of entries) {
    v.setUint32(off, e.complete);
    v.setUint32(off + 4, e.downloaded);
    v.setUint32(off + 8, e.incomplete);
    off += 12;
  }
  return off;
}

/** Error reply; the message is truncated so that the reply stays small. */
export function writeErrorResponse(out: Uint8Array, transactionId: number, message: string): number {
  const v = dv(out);
  v.setUint32(0, Action.error);
  v.setUint32(4, transactionId);
  const m = Buffer.from(message.slice(0, 200), 'utf8');
  out.set(m, 8);
  return 8 + m.length;
}

// ---- Client side: request writers and response parsers (tests, load generators). ----

export function writeConnectRequest(out: Uint8Array, transactionId: number): number {
  const v = dv(out);
  v.setUint32(0, PROTOCOL_ID_HI);
  v.setUint32(4, PROTOCOL_ID_LO);
  v.setUint32(8, Action.connect);
  v.setUint32(12, transactionId);
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

function setU64(v: DataView, off: number, n: number): void {
  v.setUint32(off, Math.floor(n / 0x100000000));
  v.setUint32(off + 4, n >>> 0);
}

export function writeAnnounceRequest(out: Uint8Array, f: AnnounceFields): number {
  const v = dv(out);
  v.setUint32(0, f.connectionId.hi);
  v.setUint32(4, f.connectionId.lo);
  v.setUint32(8, Action.announce);
  v.setUint32(12, f.transactionId);
  out.set(f.infoHash, 16);
  out.set(f.peerId, 36);
  setU64(v, 56, f.downloaded);
  setU64(v, 64, f.left);
  setU64(v, 72, f.uploaded);
  v.setUint32(80, f.event);
  v.setUint32(84, f.ip ?? 0);
  v.setUint32(88, f.key ?? 0);
  v.setInt32(92, f.numWant);
  v.setUint16(96, f.port);
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
  const v = dv(out);
  v.setUint32(0, connectionId.hi);
  v.setUint32(4, connectionId.lo);
  v.setUint32(8, Action.scrape);
  v.setUint32(12, transactionId);
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
  const v = new DataView(buf.buffer, buf.byteOffset, len);
  const action = v.getUint32(0);
  const transactionId = v.getUint32(4);
  if (action === 0) {
    if (len !== 16) return { action: -1, reason: 'connect size' };
    return { action: 0, transactionId, connectionId: { hi: v.getUint32(8), lo: v.getUint32(12) } };
  }
  if (action === 1) {
    const stride = family === 4 ? 6 : 18;
    if (len < 20 || (len - 20) % stride !== 0) return { action: -1, reason: 'announce size' };
    return {
      action: 1,
      transactionId,
      interval: v.getUint32(8),
      leechers: v.getUint32(12),
      seeders: v.getUint32(16),
      peers: buf.slice(20, len),
    };
  }
  if (action === 2) {
    if ((len - 8) % 12 !== 0) return { action: -1, reason: 'scrape size' };
    const entries: ScrapeEntry[] = [];
    for (let off = 8; off < len; off += 12)
      entries.push({
        complete: v.getUint32(off),
        downloaded: v.getUint32(off + 4),
        incomplete: v.getUint32(off + 8),
      });
    return { action: 2, transactionId, entries };
  }
  if (action === 3)
    return { action: 3, transactionId, message: Buffer.from(buf.subarray(8, len)).toString('utf8') };
  return { action: -1, reason: 'unknown action' };
}
