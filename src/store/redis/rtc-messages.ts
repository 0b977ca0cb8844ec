/**
 * The messages between Herald instances that share their WebRTC swarms through Redis
 * (rtc-swarms.ts; docs/redis.md "WebTorrent"): one discriminated union and its byte codec, pure.
 * They travel over Redis pub/sub on the channel of the instance that holds the addressed socket,
 * several to one PUBLISH (`writeRtcBatch`): each is a 4-byte length and the message.
 *
 * - `offer`: an offer for socket `to`, from peer `peerId` of swarm `infoHash` whose socket is
 *   `fromSocket` on instance `fromInstance`. The receiving instance remembers it for that socket
 *   (so that the answer is relayed only by a peer that was sent this offer) and writes the offer
 *   message out.
 * - `deliver`: a finished text message (an answer) for socket `to`, written out as is.
 *
 * Numbers are big-endian; hashes and ids are 20 raw bytes, an instance id 8; offers and answers
 * are the JSON text the browser wrote (ASCII).
 */

export const RtcRelayType = { offer: 1, deliver: 2 } as const;

/** The length of an instance id. */
export const INSTANCE_BYTES = 8;
const ID = 20;
/** type, to; then for an offer: from instance, from socket, info hash, peer id, offer id. */
const HEAD = 1 + 4;
const OFFER_HEAD = HEAD + INSTANCE_BYTES + 4 + 3 * ID;

export type RtcRelayMessage =
  | {
      type: typeof RtcRelayType.offer;
      /** The receiving socket, on the instance the message is sent to. */
      to: number;
      fromInstance: Uint8Array;
      fromSocket: number;
      infoHash: Uint8Array;
      peerId: Uint8Array;
      offerId: Uint8Array;
      /** The offer object's JSON text. */
      offerJson: Uint8Array;
    }
  | {
      type: typeof RtcRelayType.deliver;
      to: number;
      /** A whole text message for the socket. */
      text: Uint8Array;
    };

/** The bytes of one message. */
export function writeRtcMessage(m: RtcRelayMessage): Buffer {
  if (m.type === RtcRelayType.deliver) {
    const b = Buffer.allocUnsafe(HEAD + m.text.length);
    b[0] = m.type;
    b.writeUInt32BE(m.to >>> 0, 1);
    b.set(m.text, HEAD);
    return b;
  }
  const b = Buffer.allocUnsafe(OFFER_HEAD + m.offerJson.length);
  b[0] = m.type;
  b.writeUInt32BE(m.to >>> 0, 1);
  let o = HEAD;
  b.set(fixed(m.fromInstance, INSTANCE_BYTES), o);
  o += INSTANCE_BYTES;
  b.writeUInt32BE(m.fromSocket >>> 0, o);
  o += 4;
  for (const x of [m.infoHash, m.peerId, m.offerId]) {
    b.set(fixed(x, ID), o);
    o += ID;
  }
  b.set(m.offerJson, o);
  return b;
}

/** One message from its bytes (views of `b`), or null when they are not one. */
export function readRtcMessage(b: Uint8Array): RtcRelayMessage | null {
  if (b.length < HEAD) return null;
  const v = Buffer.from(b.buffer, b.byteOffset, b.length);
  const to = v.readUInt32BE(1);
  if (b[0] === RtcRelayType.deliver) return { type: RtcRelayType.deliver, to, text: v.subarray(HEAD) };
  if (b[0] !== RtcRelayType.offer || b.length < OFFER_HEAD) return null;
  let o = HEAD;
  const fromInstance = v.subarray(o, o + INSTANCE_BYTES);
  o += INSTANCE_BYTES;
  const fromSocket = v.readUInt32BE(o);
  o += 4;
  const id = (k: number) => v.subarray(o + k * ID, o + (k + 1) * ID);
  return {
    type: RtcRelayType.offer,
    to,
    fromInstance,
    fromSocket,
    infoHash: id(0),
    peerId: id(1),
    offerId: id(2),
    offerJson: v.subarray(OFFER_HEAD),
  };
}

/** Several messages as one payload: each a 4-byte length, then its bytes. */
export function writeRtcBatch(messages: readonly Uint8Array[]): Buffer {
  let size = 0;
  for (const m of messages) size += 4 + m.length;
  const out = Buffer.allocUnsafe(size);
  let o = 0;
  for (const m of messages) {
    out.writeUInt32BE(m.length, o);
    out.set(m, o + 4);
    o += 4 + m.length;
  }
  return out;
}

/** The messages of a payload, in order; a malformed payload yields what precedes the fault. */
export function readRtcBatch(b: Buffer): RtcRelayMessage[] {
  const out: RtcRelayMessage[] = [];
  for (let o = 0; o + 4 <= b.length; ) {
    const len = b.readUInt32BE(o);
    if (o + 4 + len > b.length) break;
    const m = readRtcMessage(b.subarray(o + 4, o + 4 + len));
    if (m === null) break;
    out.push(m);
    o += 4 + len;
  }
  return out;
}

function fixed(x: Uint8Array, n: number): Uint8Array {
  if (x.length !== n) throw new Error(`rtc message: a field of ${x.length} bytes where ${n} are due`);
  return x;
}
