import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import {
  type RtcRelayMessage,
  RtcRelayType,
  readRtcBatch,
  readRtcMessage,
  writeRtcBatch,
  writeRtcMessage,
} from './rtc-messages.ts';

const plain = (m: RtcRelayMessage | null) =>
  m === null
    ? null
    : Object.fromEntries(
        Object.entries(m).map(([k, v]) => [k, v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v]),
      );

function randomMessage(): RtcRelayMessage {
  const to = randomBytes(4).readUInt32BE(0);
  if (Math.random() < 0.5)
    return { type: RtcRelayType.deliver, to, text: Buffer.from(`{"answer":${Math.random()}}`) };
  return {
    type: RtcRelayType.offer,
    to,
    fromInstance: randomBytes(8),
    fromSocket: randomBytes(4).readUInt32BE(0),
    infoHash: randomBytes(20),
    peerId: randomBytes(20),
    offerId: randomBytes(20),
    offerJson: Buffer.from(JSON.stringify({ type: 'offer', sdp: randomBytes(40).toString('base64') })),
  };
}

test('every message reads back as written, alone and in batches', () => {
  for (let round = 0; round < 200; round++) {
    const ms = Array.from({ length: 1 + (round % 5) }, randomMessage);
    for (const m of ms) assert.deepEqual(plain(readRtcMessage(writeRtcMessage(m))), plain(m));
    const back = readRtcBatch(writeRtcBatch(ms.map(writeRtcMessage)));
    assert.deepEqual(back.map(plain), ms.map(plain));
  }
});

test('malformed bytes read as nothing rather than throwing', () => {
  assert.equal(readRtcMessage(Buffer.from([9, 0, 0, 0, 1])), null, 'unknown type');
  assert.equal(readRtcMessage(Buffer.from([RtcRelayType.offer, 0, 0, 0, 1, 2, 3])), null, 'short offer');
  assert.equal(readRtcMessage(Buffer.from([1])), null, 'short head');
  const good = writeRtcMessage(randomMessage());
  const batch = writeRtcBatch([good, good]);
  // A truncated payload yields the whole messages before the cut.
  assert.equal(readRtcBatch(batch.subarray(0, batch.length - 1)).length, 1);
  assert.equal(readRtcBatch(Buffer.from([0xff, 0xff, 0xff, 0xff, 1])).length, 0);
});

test('a field of the wrong size is refused at writing', () => {
  const m = randomMessage();
  if (m.type !== RtcRelayType.offer) return;
  assert.throws(() => writeRtcMessage({ ...m, peerId: Buffer.alloc(19) }));
});
