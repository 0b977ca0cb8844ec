import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as lm from './limit-messages.ts';
import { FrameWriter, HEADER, MessageType } from './messages.ts';

/** The body of the one frame `write` puts in a fresh writer, after some bytes already there. */
function frame(write: (w: FrameWriter) => void): { buf: Buffer; at: number; type: number } {
  const w = new FrameWriter(16);
  w.len = 5; // a frame does not start at 0 in a link's buffer
  write(w);
  const buf = Buffer.from(w.buf.subarray(0, w.len));
  return { buf, at: 5 + HEADER, type: buf[5 + 4] };
}

const held: lm.Held = {
  owner: 2,
  epoch: 0xdeadbeef,
  seq: 2 ** 40 + 3,
  member: 2 ** 32 + 5, // ids are u64 on the wire (exact up to 2^53), not cut to 32 bits
  peers: 7,
  leeching: 1,
};

test('limit messages: claim, verdict, report, refresh and sync round-trip', () => {
  const claim: lm.Claim = { ...held, need: 3, peerLimit: 5, slotLimit: 2 };
  let f = frame((w) => lm.writeClaim(w, 9, claim));
  assert.equal(f.type, MessageType.limitsClaim);
  assert.deepEqual(lm.readClaim(f.buf, f.at), claim);
  for (const v of [lm.Verdict.granted, lm.Verdict.peers, lm.Verdict.slots]) {
    f = frame((w) => lm.writeVerdict(w, 9, v));
    assert.equal(lm.readVerdict(f.buf, f.at), v);
  }
  f = frame((w) => lm.writeHeld(w, MessageType.limitsReport, 0, held));
  assert.deepEqual(lm.readHeld(f.buf, f.at), held);
  for (const member of [123456, 2 ** 32 + 123456, Number.MAX_SAFE_INTEGER]) {
    f = frame((w) => lm.writeMember(w, MessageType.limitsRefresh, 1, member));
    assert.equal(lm.readMember(f.buf, f.at), member);
  }
  const all = [
    held,
    { ...held, member: 3, peers: 0, leeching: 2 },
    { ...held, member: Number.MAX_SAFE_INTEGER },
  ];
  f = frame((w) => lm.writeSyncOk(w, 1, all));
  assert.deepEqual(lm.readSyncOk(f.buf, f.at), all);
  f = frame((w) => lm.writeSyncOk(w, 1, []));
  assert.deepEqual(lm.readSyncOk(f.buf, f.at), []);
});

test('limit messages: a short or lying frame is refused, not read past its end', () => {
  const f = frame((w) => lm.writeClaim(w, 9, { ...held, need: 1, peerLimit: 1, slotLimit: 0 }));
  // The frame says it is shorter than a claim.
  const short = Buffer.from(f.buf);
  short.writeUInt32BE(HEADER - 4 + 10, 5);
  assert.throws(() => lm.readClaim(short, f.at), /short limits frame/);
  assert.throws(() => lm.readHeld(short, f.at), /short limits frame/);
  // A sync answer that counts more records than it carries.
  const s = frame((w) => lm.writeSyncOk(w, 1, [held]));
  s.buf.writeUInt32BE(1000, s.at);
  assert.throws(() => lm.readSyncOk(s.buf, s.at), /short limits frame/);
  // A verdict that is none of the three.
  const v = frame((w) => lm.writeVerdict(w, 1, lm.Verdict.granted));
  v.buf[v.at] = 7;
  assert.throws(() => lm.readVerdict(v.buf, v.at), /bad limits verdict/);
});

test('limit messages: member figures (peer lists) round-trip, and a frame counting more pairs than it holds is refused', () => {
  const pairs = [1, 3, 4_000_000_000, 1_900_003_600, 2 ** 32 + 1, 2, Number.MAX_SAFE_INTEGER, 4_294_967_295];
  let f = frame((w) => lm.writeMemberFigures(w, MessageType.peerListsReport, 2, pairs));
  assert.equal(f.type, MessageType.peerListsReport);
  assert.deepEqual(lm.readMemberFigures(f.buf, f.at), { from: 2, pairs });
  f = frame((w) => lm.writeMemberFigures(w, MessageType.peerListsFull, 0, []));
  assert.deepEqual(lm.readMemberFigures(f.buf, f.at), { from: 0, pairs: [] });
  f = frame((w) => lm.writeMemberFigures(w, MessageType.peerListsFull, 1, pairs));
  f.buf.writeUInt16BE(pairs.length / 2 + 1, f.at + 2);
  assert.throws(() => lm.readMemberFigures(f.buf, f.at), /short limits frame/);
});
