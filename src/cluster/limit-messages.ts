import { bodyEnd, type FrameWriter, MessageType, readRowId, writeRowId } from './messages.ts';

/**
 * The per-member limit messages between workers (src/cluster/member-limits.ts): their byte codec,
 * pure, next to the cluster's other messages. Numbers are big-endian; a sequence number is a
 * float64 (an owner's counter, exact up to 2^53); a member id is a u64 (`writeRowId`).
 */

/** What one owner worker holds of one member: its peers and the torrents it leeches there. */
export interface Held {
  /** The owner worker. */
  owner: number;
  /** The owner process's epoch (random at each start, never 0). */
  epoch: number;
  /** The owner's counter at the time: a home keeps the figures of the highest. */
  seq: number;
  member: number;
  peers: number;
  leeching: number;
}

/** A claim: the owner's figures with the claimed place counted in, what is claimed, and the limits. */
export interface Claim extends Held {
  /** CLAIM_PEER, CLAIM_SLOT or both (src/accounting/rules.ts). */
  need: number;
  peerLimit: number;
  slotLimit: number;
}

/** A claim's answer: granted, or the limit that refuses it. */
export const Verdict = { granted: 0, peers: 1, slots: 2 } as const;
export type Verdict = (typeof Verdict)[keyof typeof Verdict];

const HELD = 2 + 4 + 8 + 8 + 4 + 4;
const CLAIM = HELD + 1 + 4 + 4;

function need(b: Buffer, o: number, n: number, end: number): void {
  if (o + n > end || end > b.length) throw new Error('cluster: short limits frame');
}

function putHeld(b: Buffer, o: number, h: Held): number {
  b.writeUInt16BE(h.owner, o);
  b.writeUInt32BE(h.epoch >>> 0, o + 2);
  b.writeDoubleBE(h.seq, o + 6);
  writeRowId(b, o + 14, h.member);
  b.writeUInt32BE(h.peers >>> 0, o + 22);
  b.writeUInt32BE(h.leeching >>> 0, o + 26);
  return o + HELD;
}

function getHeld(b: Buffer, o: number): Held {
  return {
    owner: b.readUInt16BE(o),
    epoch: b.readUInt32BE(o + 2),
    seq: b.readDoubleBE(o + 6),
    member: readRowId(b, o + 14),
    peers: b.readUInt32BE(o + 22),
    leeching: b.readUInt32BE(o + 26),
  };
}

export function writeClaim(w: FrameWriter, id: number, c: Claim): void {
  const start = w.begin(MessageType.limitsClaim, id, CLAIM);
  const b = w.buf;
  const o = putHeld(b, w.len, c);
  b[o] = c.need;
  b.writeUInt32BE(c.peerLimit >>> 0, o + 1);
  b.writeUInt32BE(c.slotLimit >>> 0, o + 5);
  w.len = o + 9;
  w.end(start);
}

export function readClaim(b: Buffer, at: number): Claim {
  need(b, at, CLAIM, bodyEnd(b, at));
  const o = at + HELD;
  return {
    ...getHeld(b, at),
    need: b[o] & 3,
    peerLimit: b.readUInt32BE(o + 1),
    slotLimit: b.readUInt32BE(o + 5),
  };
}

export function writeVerdict(w: FrameWriter, id: number, v: Verdict): void {
  const start = w.begin(MessageType.limitsClaimOk, id, 1);
  w.buf[w.len++] = v;
  w.end(start);
}

export function readVerdict(b: Buffer, at: number): Verdict {
  need(b, at, 1, bodyEnd(b, at));
  const v = b[at];
  if (v !== Verdict.granted && v !== Verdict.peers && v !== Verdict.slots)
    throw new Error('cluster: bad limits verdict');
  return v;
}

/** A report (one-way, id 0) or a refresh's answer: one member's figures on one owner. */
export function writeHeld(w: FrameWriter, type: MessageType, id: number, h: Held): void {
  const start = w.begin(type, id, HELD);
  w.len = putHeld(w.buf, w.len, h);
  w.end(start);
}

export function readHeld(b: Buffer, at: number): Held {
  need(b, at, HELD, bodyEnd(b, at));
  return getHeld(b, at);
}

/** A refresh: the member whose figures the home wants, fresh (silent peers forgotten first). */
export function writeMember(w: FrameWriter, type: MessageType, id: number, member: number): void {
  const start = w.begin(type, id, 8);
  writeRowId(w.buf, w.len, member);
  w.len += 8;
  w.end(start);
}

export function readMember(b: Buffer, at: number): number {
  need(b, at, 8, bodyEnd(b, at));
  return readRowId(b, at);
}

/** A sync's answer: everything one owner holds of the asking home's members. */
export function writeSyncOk(w: FrameWriter, id: number, all: readonly Held[]): void {
  const start = w.begin(MessageType.limitsSyncOk, id, 4 + all.length * HELD);
  const b = w.buf;
  b.writeUInt32BE(all.length, w.len);
  let o = w.len + 4;
  for (const h of all) o = putHeld(b, o, h);
  w.len = o;
  w.end(start);
}

export function readSyncOk(b: Buffer, at: number): Held[] {
  const end = bodyEnd(b, at);
  need(b, at, 4, end);
  const n = b.readUInt32BE(at);
  need(b, at + 4, n * HELD, end);
  const out: Held[] = [];
  for (let i = 0, o = at + 4; i < n; i++, o += HELD) out.push(getHeld(b, o));
  return out;
}

/**
 * From worker `from`, pairs of member and figure (a `peerListsReport`: lists given; a
 * `peerListsFull`: the end of the member's window, unix seconds), one-way. At most 65,535 pairs
 * a frame, each a u64 member id and a u32 figure.
 */
const PAIR = 8 + 4;

export function writeMemberFigures(
  w: FrameWriter,
  type: MessageType,
  from: number,
  pairs: readonly number[],
): void {
  const n = pairs.length >> 1;
  if (n > 0xffff) throw new Error('cluster: too many member figures for one frame');
  const start = w.begin(type, 0, 4 + n * PAIR);
  const b = w.buf;
  b.writeUInt16BE(from, w.len);
  b.writeUInt16BE(n, w.len + 2);
  let o = w.len + 4;
  for (let i = 0; i < pairs.length; i += 2, o += PAIR) {
    writeRowId(b, o, pairs[i]);
    b.writeUInt32BE(pairs[i + 1] >>> 0, o + 8);
  }
  w.len = o;
  w.end(start);
}

/** A `writeMemberFigures` frame: its sender, and its pairs flat (member, figure, member, ...). */
export function readMemberFigures(b: Buffer, at: number): { from: number; pairs: number[] } {
  const end = bodyEnd(b, at);
  need(b, at, 4, end);
  const n = b.readUInt16BE(at + 2);
  need(b, at + 4, n * PAIR, end);
  const pairs: number[] = [];
  for (let i = 0, o = at + 4; i < n; i++, o += PAIR) pairs.push(readRowId(b, o), b.readUInt32BE(o + 8));
  return { from: b.readUInt16BE(at), pairs };
}
