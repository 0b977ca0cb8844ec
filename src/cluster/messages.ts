import { WARNING_LIST } from '../core/errors.ts';
import type { AnnounceEvent, AnnounceRequest, AnnounceResult, Family, ScrapeEntry } from '../core/types.ts';
import type { PolicyMember, PolicyTorrent } from '../policy/policy.ts';

/**
 * The messages workers send each other (issue #13): a typed union with a byte codec, kept apart
 * from the transport (STYLE.md example 11, socket.io's ClusterMessage). Pure: bytes in, values
 * out, and back.
 *
 * A frame is `u32 length` (of what follows), `u8 type`, `u32 id`, then the body. A request's id
 * is chosen by the sender; the reply carries the same id. Numbers are big-endian; uploaded,
 * downloaded and left are float64 (they are JavaScript numbers up to 2^53 on both sides). Member
 * and torrent ids are u64 (`writeRowId`): database integers, exact up to 2^53 (a snapshot with a
 * larger one is refused at load, `loadSnapshot`); cut to 32 bits, two members whose ids differ by
 * 2^32 shared limits and accounting.
 */
export const MessageType = {
  announce: 1,
  announceOk: 2,
  scrape: 3,
  scrapeOk: 4,
  /** Whole-shard requests (rare: /stats, /metrics, full scrape): JSON bodies. */
  stats: 5,
  statsOk: 6,
  scrapeAll: 7,
  scrapeAllOk: 8,
  /** The owner could not answer (a refusal or an internal error): a message for the client. */
  failure: 9,
  /** A member's torrents seeding and leeching now, on this worker (the portal's profile). */
  activity: 10,
  activityOk: 11,
  /**
   * Per-member limits over every worker (src/cluster/member-limits.ts, codec in
   * limit-messages.ts): a claim to the member's home worker and its verdict, a one-way report of
   * what an owner holds, the home asking an owner for fresh figures of one member (refresh) or of
   * all its members (sync, when the home has just started).
   */
  limitsClaim: 12,
  limitsClaimOk: 13,
  limitsReport: 14,
  limitsRefresh: 15,
  limitsRefreshOk: 16,
  limitsSync: 17,
  limitsSyncOk: 18,
  /**
   * The full scrape's rate limit for the whole tracker (src/cluster/full-scrape-gate.ts): may this
   * address full-scrape now, asked of worker 0, which keeps the limits; the answer "1" or "0".
   */
  fullScrapePermit: 19,
  fullScrapePermitOk: 20,
  /**
   * `peer_list_limit` over every worker (src/cluster/peer-list-gate.ts, codec in
   * limit-messages.ts), both one-way: the peer lists a worker gave members since its last report,
   * to each member's home; from a home, the members whose window is full and until when.
   */
  peerListsReport: 21,
  peerListsFull: 22,
  /**
   * WebTorrent across workers (src/cluster/webrtc-shard.ts, codec in rtc-messages.ts), from 32 on.
   * Requests with a reply: an announce to the swarm's owner, scrapes. One-way (id 0, no reply):
   * an answer to the swarm's owner, a message for a socket to the worker holding it, a socket
   * closed, a worker (re)started.
   */
  rtcAnnounce: 32,
  rtcAnnounceOk: 33,
  rtcRefused: 34,
  rtcAnswer: 35,
  rtcDeliver: 36,
  rtcClosed: 37,
  rtcHello: 38,
  rtcScrape: 39,
  rtcScrapeOk: 40,
  rtcScrapeAll: 41,
  rtcScrapeAllOk: 42,
} as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

export const HEADER = 9;
/** Largest frame accepted from a peer worker (a full scrape of a big shard is the biggest). */
export const MAX_FRAME = 256 * 1024 * 1024;

/**
 * An announce as sent to its owner: the request, the sender's clock, and the revision of the
 * policy snapshot the sender judged it by (the owner judges it again when its own is newer).
 */
export const ANNOUNCE_BYTES = 20 + 20 + 1 + 16 + 2 + 8 + 8 + 8 + 1 + 2 + 1 + 4 + 4;
/**
 * Then, in private mode, who announced (policy ran at the sender): a flag byte, and when it is 1
 * (or 2: the accounting alone, `AccountTo.accountOnly`) the member (id, status) and the torrent
 * (id, restricted, factors, route hash) the owner's accounting needs, then the fingerprint of the
 * passkey the sender admitted it by (`AccountTo.keyPrint`).
 */
export const ACCOUNT_BYTES = 1 + 8 + 1 + 8 + 1 + 4 + 4 + 20 + 4;

/**
 * A member or torrent id (a database integer, a safe integer: `loadSnapshot` refuses others) as
 * a u64 at `o`.
 */
export function writeRowId(b: Buffer, o: number, id: number): void {
  b.writeUInt32BE(Math.floor(id / 0x1_0000_0000) >>> 0, o);
  b.writeUInt32BE(id >>> 0, o + 4);
}

/** The id `writeRowId` wrote at `o`. */
export function readRowId(b: Buffer, o: number): number {
  return b.readUInt32BE(o) * 0x1_0000_0000 + b.readUInt32BE(o + 4);
}

/** Who an announce is accounted to (private mode). */
export interface AccountTo {
  member: PolicyMember;
  torrent: PolicyTorrent;
  /**
   * The accounting alone, no swarm update (flag byte 2): a WebTorrent peer, whose swarm is the
   * WebSocket frontend's, accounted where the torrent's baselines are (`ShardedSwarmStore.account`).
   */
  accountOnly?: boolean;
  /**
   * The fingerprint of the passkey the sender admitted the announce by (`Policy.keyPrint`): the
   * owner, when its snapshot is newer, refuses it unless it is the member's key there.
   */
  keyPrint?: number;
}

/** A growable output buffer that frames are appended to. */
export class FrameWriter {
  buf: Buffer;
  len = 0;
  constructor(size = 64 * 1024) {
    this.buf = Buffer.allocUnsafe(size);
  }
  #room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.len + n));
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }
  /** Starts a frame; returns where its body begins. `end(start)` writes the length. */
  begin(type: MessageType, id: number, bodyMax: number): number {
    this.#room(HEADER + bodyMax);
    const at = this.len;
    this.buf[at + 4] = type;
    this.buf.writeUInt32BE(id >>> 0, at + 5);
    this.len = at + HEADER;
    return at;
  }
  end(start: number): void {
    this.buf.writeUInt32BE(this.len - start - 4, start);
  }
  /**
   * Takes the bytes written so far, copied out (a small copy comes from Node's buffer pool), and
   * starts again in the same buffer: a fresh 64 KiB buffer for every write cost a malloc and a
   * free (and the backing store's bookkeeping) per turn of the event loop, more than the frames.
   * A buffer grown for a large frame (a full scrape) is let go.
   */
  take(): Buffer {
    const out = Buffer.from(this.buf.subarray(0, this.len));
    if (this.buf.length > 1 << 20) this.buf = Buffer.allocUnsafe(64 * 1024);
    this.len = 0;
    return out;
  }
}

export function writeAnnounce(
  w: FrameWriter,
  id: number,
  req: AnnounceRequest,
  now: number,
  acct: AccountTo | null = null,
  revision = 0,
): void {
  const start = w.begin(MessageType.announce, id, ANNOUNCE_BYTES + ACCOUNT_BYTES);
  const b = w.buf;
  let o = w.len;
  // Byte loops, not `set(x.subarray())`: no view allocated per frame.
  copyInto(b, o, req.infoHash, 20);
  copyInto(b, o + 20, req.peerId, 20);
  o += 40;
  b[o++] = req.family;
  const ipLen = req.family === 6 ? 16 : 4;
  copyInto(b, o, req.ip, ipLen);
  for (let i = ipLen; i < 16; i++) b[o + i] = 0;
  o += 16;
  b.writeUInt16BE(req.port, o);
  o += 2;
  b.writeDoubleBE(req.uploaded, o);
  b.writeDoubleBE(req.downloaded, o + 8);
  b.writeDoubleBE(req.left, o + 16);
  o += 24;
  b[o++] = req.event;
  b.writeUInt16BE(Math.min(req.numWant, 0xffff), o);
  o += 2;
  b[o++] = req.wantPeerIds ? 1 : 0;
  b.writeUInt32BE(now >>> 0, o);
  b.writeUInt32BE(revision > 0 ? revision >>> 0 : 0, o + 4);
  o += 8;
  if (acct === null) b[o++] = 0;
  else {
    b[o++] = acct.accountOnly === true ? 2 : 1;
    writeRowId(b, o, acct.member.id);
    b[o + 8] = acct.member.status;
    writeRowId(b, o + 9, acct.torrent.id);
    b[o + 17] = acct.torrent.restricted ? 1 : 0;
    b.writeUInt32BE(acct.torrent.downloadFactor >>> 0, o + 18);
    b.writeUInt32BE(acct.torrent.uploadFactor >>> 0, o + 22);
    b.set(acct.torrent.route.subarray(0, 20), o + 26);
    b.writeUInt32BE((acct.keyPrint ?? 0) >>> 0, o + 46);
    o += ACCOUNT_BYTES - 1;
  }
  w.len = o;
  w.end(start);
}

/** The accounting section after an announce body (at `o` + ANNOUNCE_BYTES), or null. */
export function readAccountTo(b: Buffer, o: number, end: number): AccountTo | null {
  o += ANNOUNCE_BYTES;
  const flag = b[o];
  if (o >= end || (flag !== 1 && flag !== 2) || end - o < ACCOUNT_BYTES) return null;
  o++;
  return {
    accountOnly: flag === 2,
    member: { id: readRowId(b, o), status: (b[o + 8] & 3) as 0 | 1 | 2, groups: [] },
    torrent: {
      id: readRowId(b, o + 9),
      restricted: b[o + 17] === 1,
      downloadFactor: b.readUInt32BE(o + 18),
      uploadFactor: b.readUInt32BE(o + 22),
      route: new Uint8Array(b.subarray(o + 26, o + 46)),
    },
    keyPrint: b.readUInt32BE(o + 46),
  };
}

/** A request for `readAnnounce` to fill (the owner reuses one for every announce it is sent). */
export function blankAnnounceRequest(): AnnounceRequest {
  return {
    infoHash: new Uint8Array(20),
    peerId: new Uint8Array(20),
    family: 4,
    ip: new Uint8Array(4),
    port: 0,
    uploaded: 0,
    downloaded: 0,
    left: 0,
    event: 0,
    numWant: 0,
    wantPeerIds: false,
  };
}

/** Copies `n` bytes of `from` to `to[at...]` (a loop: short copies, no view allocated). */
function copyInto(to: Uint8Array, at: number, from: Uint8Array, n: number): void {
  for (let i = 0; i < n; i++) to[at + i] = from[i];
}

/**
 * Reads an announce body (at `o`, ANNOUNCE_BYTES long) into `req`, whose arrays it fills (its `ip`
 * is replaced only when the family's length differs: the owner reuses one request object).
 */
export function readAnnounce(b: Buffer, o: number, req: AnnounceRequest): number {
  const { infoHash, peerId } = req;
  for (let i = 0; i < 20; i++) infoHash[i] = b[o + i];
  for (let i = 0; i < 20; i++) peerId[i] = b[o + 20 + i];
  o += 40;
  const family = b[o++] === 6 ? 6 : 4;
  req.family = family as Family;
  const ipLen = family === 6 ? 16 : 4;
  if (req.ip.length !== ipLen) req.ip = new Uint8Array(ipLen);
  const ip = req.ip;
  for (let i = 0; i < ipLen; i++) ip[i] = b[o + i];
  o += 16;
  req.port = b.readUInt16BE(o);
  o += 2;
  req.uploaded = b.readDoubleBE(o);
  req.downloaded = b.readDoubleBE(o + 8);
  req.left = b.readDoubleBE(o + 16);
  o += 24;
  req.event = (b[o++] & 3) as AnnounceEvent;
  req.numWant = b.readUInt16BE(o);
  o += 2;
  req.wantPeerIds = b[o++] === 1;
  return b.readUInt32BE(o);
}

/** The sender's policy revision in an announce body at `o` (see ANNOUNCE_BYTES). */
export function readAnnounceRevision(b: Buffer, o: number): number {
  return b.readUInt32BE(o + ANNOUNCE_BYTES - 4);
}

export function writeAnnounceOk(w: FrameWriter, id: number, r: AnnounceResult, family: Family): void {
  const stride = family === 6 ? 18 : 6;
  const peerBytes = r.peerCount * stride;
  const ids = r.peerIds !== null;
  const start = w.begin(MessageType.announceOk, id, 16 + peerBytes + (ids ? r.peerCount * 21 : 0));
  const b = w.buf;
  let o = w.len;
  b.writeUInt32BE(r.complete >>> 0, o);
  b.writeUInt32BE(r.incomplete >>> 0, o + 4);
  b.writeUInt32BE(r.downloaded >>> 0, o + 8);
  b.writeUInt16BE(r.peerCount, o + 12);
  b[o + 14] = stride;
  // Bit 0: peer ids follow; bits 1-7: the owner's warning (WARNING_LIST index, issue #16).
  b[o + 15] = (ids ? 1 : 0) | ((r.warning?.index ?? 0) << 1);
  o += 16;
  b.set(r.peers.length === peerBytes ? r.peers : r.peers.subarray(0, peerBytes), o);
  o += peerBytes;
  if (ids) {
    b.set(r.peerIds!.subarray(0, r.peerCount * 20), o);
    o += r.peerCount * 20;
    b.set(r.peerIdKnown!.subarray(0, r.peerCount), o);
    o += r.peerCount;
  }
  w.len = o;
  w.end(start);
}

/**
 * A reply's body as a result. Its peers are a view of the frame: the bus reads every chunk into a
 * buffer of its own that nothing reuses (Node's), so the view stays valid for as long as it is
 * held; the peer ids (`compact=0`, rare) are copied.
 */
export function readAnnounceOk(b: Buffer, o: number): AnnounceResult {
  const peerCount = b.readUInt16BE(o + 12);
  const stride = b[o + 14];
  const ids = (b[o + 15] & 1) === 1;
  const warning = WARNING_LIST[b[o + 15] >> 1] ?? null;
  const p = o + 16;
  const peers = b.subarray(p, p + peerCount * stride);
  let peerIds: Uint8Array | null = null;
  let peerIdKnown: Uint8Array | null = null;
  if (ids) {
    const q = p + peerCount * stride;
    peerIds = new Uint8Array(b.subarray(q, q + peerCount * 20));
    peerIdKnown = new Uint8Array(b.subarray(q + peerCount * 20, q + peerCount * 21));
  }
  return {
    complete: b.readUInt32BE(o),
    incomplete: b.readUInt32BE(o + 4),
    downloaded: b.readUInt32BE(o + 8),
    peers,
    peerCount,
    peerIds,
    peerIdKnown,
    warning,
  };
}

export function writeScrape(
  w: FrameWriter,
  id: number,
  hashes: readonly Uint8Array[],
  now: number,
  type: MessageType = MessageType.scrape,
): void {
  const start = w.begin(type, id, 6 + hashes.length * 20);
  const b = w.buf;
  let o = w.len;
  b.writeUInt32BE(now >>> 0, o);
  b.writeUInt16BE(hashes.length, o + 4);
  o += 6;
  for (const h of hashes) {
    b.set(h.subarray(0, 20), o);
    o += 20;
  }
  w.len = o;
  w.end(start);
}

/** Where the body of the frame whose body starts at `at` ends. */
export function bodyEnd(b: Buffer, at: number): number {
  return at - HEADER + 4 + b.readUInt32BE(at - HEADER);
}

/** A frame's body as UTF-8 text (what `writeText` wrote). */
export function textOf(b: Buffer, at: number): string {
  return b.toString('utf8', at, bodyEnd(b, at));
}

/** A scrape's body; throws when its frame is shorter than the hashes it counts. */
export function readScrape(b: Buffer, o: number): { now: number; hashes: Uint8Array[] } {
  const end = bodyEnd(b, o);
  if (o + 6 > end || end > b.length) throw new Error('cluster: short scrape frame');
  const now = b.readUInt32BE(o);
  const n = b.readUInt16BE(o + 4);
  if (o + 6 + n * 20 > end) throw new Error('cluster: short scrape frame');
  const hashes: Uint8Array[] = [];
  for (let i = 0, p = o + 6; i < n; i++, p += 20) hashes.push(b.subarray(p, p + 20));
  return { now, hashes };
}

export function writeScrapeOk(
  w: FrameWriter,
  id: number,
  entries: readonly ScrapeEntry[],
  type: MessageType = MessageType.scrapeOk,
): void {
  const start = w.begin(type, id, 2 + entries.length * 12);
  const b = w.buf;
  let o = w.len;
  b.writeUInt16BE(entries.length, o);
  o += 2;
  for (const e of entries) {
    b.writeUInt32BE(e.complete >>> 0, o);
    b.writeUInt32BE(e.incomplete >>> 0, o + 4);
    b.writeUInt32BE(e.downloaded >>> 0, o + 8);
    o += 12;
  }
  w.len = o;
  w.end(start);
}

export function readScrapeOk(b: Buffer, o: number): ScrapeEntry[] {
  const n = b.readUInt16BE(o);
  const out: ScrapeEntry[] = [];
  for (let i = 0, p = o + 2; i < n; i++, p += 12)
    out.push({
      complete: b.readUInt32BE(p),
      incomplete: b.readUInt32BE(p + 4),
      downloaded: b.readUInt32BE(p + 8),
    });
  return out;
}

/** A frame whose body is UTF-8 text (JSON bodies, failure messages). */
export function writeText(w: FrameWriter, type: MessageType, id: number, text: string): void {
  const max = Buffer.byteLength(text);
  const start = w.begin(type, id, max);
  w.len += w.buf.write(text, w.len);
  w.end(start);
}

/** A full-scrape shard: `n` records of info hash (20) and three u32 counts. */
export function writeScrapeAllOk(
  w: FrameWriter,
  id: number,
  rows: Iterable<[Uint8Array, ScrapeEntry]>,
  type: MessageType = MessageType.scrapeAllOk,
): void {
  const list = [...rows];
  const start = w.begin(type, id, 4 + list.length * 32);
  const b = w.buf;
  let o = w.len;
  b.writeUInt32BE(list.length, o);
  o += 4;
  for (const [h, e] of list) {
    b.set(h.subarray(0, 20), o);
    b.writeUInt32BE(e.complete >>> 0, o + 20);
    b.writeUInt32BE(e.incomplete >>> 0, o + 24);
    b.writeUInt32BE(e.downloaded >>> 0, o + 28);
    o += 32;
  }
  w.len = o;
  w.end(start);
}

export function readScrapeAllOk(b: Buffer, o: number): [Uint8Array, ScrapeEntry][] {
  const n = b.readUInt32BE(o);
  const out: [Uint8Array, ScrapeEntry][] = [];
  for (let i = 0, p = o + 4; i < n; i++, p += 32)
    out.push([
      new Uint8Array(b.subarray(p, p + 20)),
      {
        complete: b.readUInt32BE(p + 20),
        incomplete: b.readUInt32BE(p + 24),
        downloaded: b.readUInt32BE(p + 28),
      },
    ]);
  return out;
}
