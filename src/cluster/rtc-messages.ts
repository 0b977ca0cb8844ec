import { AnnounceEvent } from '../core/types.ts';
import type { RtcCounts } from '../frontend/ws/webrtc-swarms.ts';
import { asciiJson, type WsAnnounce, type WsOffer } from '../protocol/websocket/codec.ts';
import { bodyEnd, type FrameWriter, MessageType } from './messages.ts';

/**
 * The WebTorrent messages between workers (src/cluster/webrtc-shard.ts): their byte codec, pure,
 * next to the cluster's other messages (messages.ts: frame header, FrameWriter, types). Numbers
 * are big-endian. Info hashes, peer ids and offer ids are 20 raw bytes; offers and answers travel
 * as the JSON text the browser wrote (ASCII: `asciiJson`), and what a worker must send to one of
 * its sockets travels as the finished text message.
 */

/** One WebSocket anywhere in the cluster. */
export interface RtcSocketRef {
  /** The worker that holds it. */
  worker: number;
  /**
   * That worker process's epoch: random at each start, so that the sockets of a restarted worker
   * are never taken for those of the process before it (their ids start again at 1).
   */
  epoch: number;
  /** Its id on that worker (> 0; 0 names no socket: `rtcHello`). */
  socket: number;
}

const REF = 10;
const ID = 20;
/** Announce body before its offers: ref, now, numWant, elsewhere, event, seeding, hash, peer id, count. */
const ANNOUNCE_HEAD = REF + 4 + 2 + 2 + 1 + 1 + ID + ID + 1;
/** Answer body before the answer's JSON: ref, now, info hash, peer id, to peer id, offer id. */
const ANSWER_HEAD = REF + 4 + 4 * ID;

function writeRef(b: Buffer, o: number, r: RtcSocketRef): number {
  b.writeUInt16BE(r.worker, o);
  b.writeUInt32BE(r.epoch >>> 0, o + 2);
  b.writeUInt32BE(r.socket >>> 0, o + 6);
  return o + REF;
}

function readRef(b: Buffer, o: number): RtcSocketRef {
  return { worker: b.readUInt16BE(o), epoch: b.readUInt32BE(o + 2), socket: b.readUInt32BE(o + 6) };
}

function need(b: Buffer, o: number, n: number, end: number): void {
  if (o + n > end || end > b.length) throw new Error('cluster: short rtc frame');
}

/** A frame whose body is only a socket reference (`rtcClosed`, `rtcHello`). */
export function writeRtcRef(w: FrameWriter, type: MessageType, ref: RtcSocketRef): void {
  const start = w.begin(type, 0, REF);
  w.len = writeRef(w.buf, w.len, ref);
  w.end(start);
}

export function readRtcRef(b: Buffer, at: number): RtcSocketRef {
  need(b, at, REF, bodyEnd(b, at));
  return readRef(b, at);
}

/** An announce forwarded to its swarm's owner. */
export interface RtcAnnounceIn {
  from: RtcSocketRef;
  /** The sender's clock (seconds). */
  now: number;
  numWant: number;
  /** Swarms the socket holds on other workers (counted against the per-socket limit). */
  elsewhere: number;
  /** As the owner's swarms read it: `left` is 0 (seeding) or 1; `offerJson`s are views of the frame. */
  msg: WsAnnounce;
}

export function writeRtcAnnounce(
  w: FrameWriter,
  id: number,
  from: RtcSocketRef,
  msg: WsAnnounce,
  numWant: number,
  elsewhere: number,
  now: number,
): void {
  const offers = msg.offers ?? [];
  const count = Math.min(offers.length, 255);
  let size = ANNOUNCE_HEAD;
  for (let i = 0; i < count; i++) size += ID + 4 + offers[i].offerJson.length;
  const start = w.begin(MessageType.rtcAnnounce, id, size);
  const b = w.buf;
  let o = writeRef(b, w.len, from);
  b.writeUInt32BE(now >>> 0, o);
  b.writeUInt16BE(Math.min(numWant, 0xffff), o + 4);
  b.writeUInt16BE(Math.min(elsewhere, 0xffff), o + 6);
  b[o + 8] = msg.event;
  b[o + 9] = msg.left === 0 ? 1 : 0;
  o += 10;
  b.set(msg.infoHash.subarray(0, ID), o);
  b.set(msg.peerId.subarray(0, ID), o + ID);
  o += 2 * ID;
  b[o++] = count;
  for (let i = 0; i < count; i++) {
    const off = offers[i];
    b.set(off.offerId.subarray(0, ID), o);
    b.writeUInt32BE(off.offerJson.length, o + ID);
    b.set(off.offerJson, o + ID + 4);
    o += ID + 4 + off.offerJson.length;
  }
  w.len = o;
  w.end(start);
}

/** The start every forwarded request shares: the socket, the sender's clock; `head` bytes at least. */
function readFrom(b: Buffer, at: number, head: number): { end: number; from: RtcSocketRef; now: number } {
  const end = bodyEnd(b, at);
  need(b, at, head, end);
  return { end, from: readRef(b, at), now: b.readUInt32BE(at + REF) };
}

export function readRtcAnnounce(b: Buffer, at: number): RtcAnnounceIn {
  const { end, from, now } = readFrom(b, at, ANNOUNCE_HEAD);
  let o = at + REF;
  const numWant = b.readUInt16BE(o + 4);
  const elsewhere = b.readUInt16BE(o + 6);
  const event = (b[o + 8] & 3) as AnnounceEvent;
  const seeding = b[o + 9] === 1;
  o += 10;
  const infoHash = b.subarray(o, o + ID);
  const peerId = b.subarray(o + ID, o + 2 * ID);
  o += 2 * ID;
  const count = b[o++];
  const offers: WsOffer[] = new Array(count);
  for (let i = 0; i < count; i++) {
    need(b, o, ID + 4, end);
    const len = b.readUInt32BE(o + ID);
    need(b, o, ID + 4 + len, end);
    offers[i] = { offerId: b.subarray(o, o + ID), offerJson: b.subarray(o + ID + 4, o + ID + 4 + len) };
    o += ID + 4 + len;
  }
  return {
    from,
    now,
    numWant,
    elsewhere,
    msg: {
      action: 'announce',
      infoHash,
      peerId,
      event,
      uploaded: 0,
      downloaded: 0,
      left: seeding ? 0 : 1,
      offers,
    },
  };
}

/** The owner's answer to a forwarded announce: the counts, and how many swarms the socket holds there. */
export interface RtcAnnounceOk extends RtcCounts {
  joined: number;
}

export function writeRtcAnnounceOk(w: FrameWriter, id: number, r: RtcAnnounceOk): void {
  const start = w.begin(MessageType.rtcAnnounceOk, id, 10);
  const b = w.buf;
  b.writeUInt32BE(r.complete >>> 0, w.len);
  b.writeUInt32BE(r.incomplete >>> 0, w.len + 4);
  b.writeUInt16BE(Math.min(r.joined, 0xffff), w.len + 8);
  w.len += 10;
  w.end(start);
}

export function readRtcAnnounceOk(b: Buffer, at: number): RtcAnnounceOk {
  need(b, at, 10, bodyEnd(b, at));
  return { complete: b.readUInt32BE(at), incomplete: b.readUInt32BE(at + 4), joined: b.readUInt16BE(at + 8) };
}

/** An answer forwarded to its swarm's owner (one-way). */
export interface RtcAnswerIn {
  from: RtcSocketRef;
  now: number;
  /** With `answer` set, its object parsed from the JSON text the browser sent. */
  msg: WsAnnounce;
}

export function writeRtcAnswer(w: FrameWriter, from: RtcSocketRef, msg: WsAnnounce, now: number): void {
  const a = msg.answer;
  if (a === undefined) throw new Error('writeRtcAnswer: not an answer');
  // ASCII (JSON escapes the rest): one byte per code unit.
  const json = asciiJson(JSON.stringify(a.answer ?? null));
  const start = w.begin(MessageType.rtcAnswer, 0, ANSWER_HEAD + json.length);
  const b = w.buf;
  let o = writeRef(b, w.len, from);
  b.writeUInt32BE(now >>> 0, o);
  o += 4;
  for (const x of [msg.infoHash, msg.peerId, a.toPeerId, a.offerId]) {
    b.set(x.subarray(0, ID), o);
    o += ID;
  }
  o += b.write(json, o, 'latin1');
  w.len = o;
  w.end(start);
}

export function readRtcAnswer(b: Buffer, at: number): RtcAnswerIn {
  const { end, from, now } = readFrom(b, at, ANSWER_HEAD);
  const o = at + REF + 4;
  const id = (k: number) => b.subarray(o + k * ID, o + (k + 1) * ID);
  return {
    from,
    now,
    msg: {
      action: 'announce',
      infoHash: id(0),
      peerId: id(1),
      event: AnnounceEvent.none,
      uploaded: 0,
      downloaded: 0,
      left: 1,
      answer: {
        toPeerId: id(2),
        offerId: id(3),
        answer: JSON.parse(b.toString('latin1', o + 4 * ID, end)),
      },
    },
  };
}

/** A text message for socket `to` (one-way, to the worker holding it), made of `parts[0..n)`. */
export function writeRtcDeliver(
  w: FrameWriter,
  to: RtcSocketRef,
  parts: readonly Uint8Array[],
  n: number,
): void {
  let size = REF;
  for (let i = 0; i < n; i++) size += parts[i].length;
  const start = w.begin(MessageType.rtcDeliver, 0, size);
  let o = writeRef(w.buf, w.len, to);
  for (let i = 0; i < n; i++) {
    w.buf.set(parts[i], o);
    o += parts[i].length;
  }
  w.len = o;
  w.end(start);
}

/** The same for a message as text (ASCII: every message Herald relays is). */
export function writeRtcDeliverText(w: FrameWriter, to: RtcSocketRef, text: string): void {
  const start = w.begin(MessageType.rtcDeliver, 0, REF + text.length);
  const o = writeRef(w.buf, w.len, to);
  w.len = o + w.buf.write(text, o, 'latin1');
  w.end(start);
}

/** `bytes` is a view of the frame: send it before returning. */
export function readRtcDeliver(b: Buffer, at: number): { to: RtcSocketRef; bytes: Buffer } {
  const end = bodyEnd(b, at);
  need(b, at, REF, end);
  return { to: readRef(b, at), bytes: b.subarray(at + REF, end) };
}
