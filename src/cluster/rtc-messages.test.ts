import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { AnnounceEvent } from '../core/types.ts';
import { encodeAnswer } from '../protocol/websocket/codec.ts';
import { FrameWriter, HEADER, MessageType } from './messages.ts';
import {
  readRtcAnnounce,
  readRtcAnnounceOk,
  readRtcAnswer,
  readRtcDeliver,
  readRtcRef,
  writeRtcAnnounce,
  writeRtcAnnounceOk,
  writeRtcAnswer,
  writeRtcDeliver,
  writeRtcDeliverText,
  writeRtcRef,
} from './rtc-messages.ts';

const id20 = fc.uint8Array({ minLength: 20, maxLength: 20 }).map((u) => Buffer.from(u));
const ref = fc
  .record({
    worker: fc.integer({ min: 0, max: 0xffff }),
    epoch: fc.integer({ min: 0, max: 0xffffffff }),
    socket: fc.integer({ min: 0, max: 0xffffffff }),
  })
  .map((r) => ({ ...r }));
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const u16 = fc.integer({ min: 0, max: 0xffff });
/** ASCII JSON text, as offers are relayed. */
const json = fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v).replace(/[^\x20-\x7e]/g, '?')));

/** The one frame `write` puts in a fresh writer: its type, and its body's start in the bytes. */
function frame(write: (w: FrameWriter) => void): { type: number; bytes: Buffer; at: number } {
  const w = new FrameWriter(16);
  write(w);
  const bytes = Buffer.from(w.take());
  assert.equal(bytes.readUInt32BE(0), bytes.length - 4, 'the length covers the whole frame');
  return { type: bytes[4], bytes, at: HEADER };
}

test('a forwarded announce reads back as written (offers as the JSON bytes they were)', () => {
  fc.assert(
    fc.property(
      ref,
      u32,
      u16,
      u16,
      fc.constantFrom(
        AnnounceEvent.none,
        AnnounceEvent.started,
        AnnounceEvent.completed,
        AnnounceEvent.stopped,
      ),
      fc.boolean(),
      id20,
      id20,
      fc.array(fc.record({ offerId: id20, offerJson: json }), { maxLength: 20 }),
      (from, now, numWant, elsewhere, event, seeding, infoHash, peerId, offers) => {
        const msg = {
          action: 'announce' as const,
          infoHash,
          peerId,
          event,
          uploaded: 5,
          downloaded: 6,
          left: seeding ? 0 : 1234,
          offers,
        };
        const f = frame((w) => writeRtcAnnounce(w, 7, from, msg, numWant, elsewhere, now));
        assert.equal(f.type, MessageType.rtcAnnounce);
        assert.equal(f.bytes.readUInt32BE(5), 7);
        const r = readRtcAnnounce(f.bytes, f.at);
        assert.deepEqual(r.from, from);
        assert.equal(r.now, now);
        assert.equal(r.numWant, numWant);
        assert.equal(r.elsewhere, elsewhere);
        assert.equal(r.msg.event, event);
        assert.equal(r.msg.left, seeding ? 0 : 1);
        assert.deepEqual(Buffer.from(r.msg.infoHash), infoHash);
        assert.deepEqual(Buffer.from(r.msg.peerId), peerId);
        assert.equal(r.msg.offers?.length, offers.length);
        offers.forEach((o, i) => {
          assert.deepEqual(Buffer.from(r.msg.offers![i].offerId), o.offerId);
          assert.deepEqual(Buffer.from(r.msg.offers![i].offerJson), o.offerJson);
        });
      },
    ),
  );
});

test('an answer reads back with its object; a delivery and a socket reference as written', () => {
  fc.assert(
    fc.property(
      ref,
      u32,
      id20,
      id20,
      id20,
      id20,
      fc.jsonValue(),
      (from, now, infoHash, peerId, to, offerId, answer) => {
        const msg = {
          action: 'announce' as const,
          infoHash,
          peerId,
          event: AnnounceEvent.none,
          uploaded: 0,
          downloaded: 0,
          left: 1,
          answer: { toPeerId: to, offerId, answer },
        };
        const f = frame((w) => writeRtcAnswer(w, from, msg, now));
        assert.equal(f.type, MessageType.rtcAnswer);
        const r = readRtcAnswer(f.bytes, f.at);
        assert.deepEqual(r.from, from);
        assert.equal(r.now, now);
        // What the offering browser finally receives is the same either way.
        assert.equal(
          encodeAnswer({
            infoHash: r.msg.infoHash,
            fromPeerId: r.msg.peerId,
            offerId: r.msg.answer!.offerId,
            answer: r.msg.answer!.answer,
          }),
          encodeAnswer({ infoHash, fromPeerId: peerId, offerId, answer }),
        );
        assert.deepEqual(Buffer.from(r.msg.answer!.toPeerId), to);

        const text = encodeAnswer({ infoHash, fromPeerId: peerId, offerId, answer });
        const d = readRtcDeliver(...at(frame((w) => writeRtcDeliverText(w, from, text))));
        assert.deepEqual(d.to, from);
        assert.equal(d.bytes.toString('latin1'), text);
        const parts = [Buffer.from('{"a":'), Buffer.from(text), Buffer.from('}')];
        const d2 = readRtcDeliver(...at(frame((w) => writeRtcDeliver(w, from, parts, 2))));
        assert.equal(d2.bytes.toString('latin1'), `{"a":${text}`);
        assert.deepEqual(readRtcRef(...at(frame((w) => writeRtcRef(w, MessageType.rtcClosed, from)))), from);
      },
    ),
  );
});

test('the owner reply reads back; a truncated frame is refused, not read past its end', () => {
  fc.assert(
    fc.property(u32, u32, u16, (complete, incomplete, joined) => {
      const f = frame((w) => writeRtcAnnounceOk(w, 3, { complete, incomplete, joined }));
      assert.deepEqual(readRtcAnnounceOk(f.bytes, f.at), { complete, incomplete, joined });
    }),
  );
  const offers = [{ offerId: Buffer.alloc(20, 1), offerJson: Buffer.from('{"type":"offer","sdp":"x"}') }];
  const msg = {
    action: 'announce' as const,
    infoHash: Buffer.alloc(20),
    peerId: Buffer.alloc(20),
    event: AnnounceEvent.none,
    uploaded: 0,
    downloaded: 0,
    left: 1,
    offers,
  };
  const f = frame((w) => writeRtcAnnounce(w, 1, { worker: 1, epoch: 2, socket: 3 }, msg, 5, 0, 9));
  // The frame says it is 10 bytes shorter than it was written: the last offer no longer fits.
  f.bytes.writeUInt32BE(f.bytes.readUInt32BE(0) - 10, 0);
  assert.throws(() => readRtcAnnounce(f.bytes, f.at), /short rtc frame/);
});

function at(f: { bytes: Buffer; at: number }): [Buffer, number] {
  return [f.bytes, f.at];
}
