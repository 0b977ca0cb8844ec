import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AnnounceRequest } from '../core/types.ts';
import {
  blankAnnounceRequest,
  FrameWriter,
  HEADER,
  MessageType,
  readAccountTo,
  readAnnounce,
  writeAnnounce,
} from './messages.ts';

function request(family: 4 | 6, seed: number): AnnounceRequest {
  const bytes = (n: number, k: number) => Uint8Array.from({ length: n }, (_, i) => (seed * 31 + i * k) & 255);
  return {
    // Views into larger arrays, as the frontends hand them over: only their first bytes are the value.
    infoHash: bytes(32, 7).subarray(3, 23),
    peerId: bytes(20, 11),
    family,
    ip: family === 6 ? bytes(16, 13) : bytes(4, 17),
    port: 6881 + seed,
    uploaded: 2 ** 40 + seed,
    downloaded: 123456789,
    left: seed % 2 === 0 ? 0 : 1000,
    event: (seed % 4) as 0 | 1 | 2 | 3,
    numWant: 50,
    wantPeerIds: seed % 3 === 0,
  };
}

test('announce frames read back as written into one reused request, whatever family came before', () => {
  const w = new FrameWriter(64);
  const sent = [request(4, 1), request(6, 2), request(6, 3), request(4, 4)];
  for (let i = 0; i < sent.length; i++) writeAnnounce(w, i + 1, sent[i], 1000 + i);
  const frames = w.take();
  const into = blankAnnounceRequest();
  let o = 0;
  const ips: Uint8Array[] = [];
  for (let i = 0; i < sent.length; i++) {
    assert.equal(frames[o + 4], MessageType.announce);
    assert.equal(frames.readUInt32BE(o + 5), i + 1);
    const now = readAnnounce(frames, o + HEADER, into);
    assert.equal(now, 1000 + i);
    const s = sent[i];
    assert.deepEqual(into.infoHash, Uint8Array.from(s.infoHash));
    assert.deepEqual(into.peerId, s.peerId);
    assert.equal(into.family, s.family);
    assert.deepEqual(Uint8Array.from(into.ip), s.ip);
    ips.push(into.ip);
    for (const k of ['port', 'uploaded', 'downloaded', 'left', 'event', 'numWant', 'wantPeerIds'] as const)
      assert.equal(into[k], s[k], k);
    o += 4 + frames.readUInt32BE(o);
  }
  assert.equal(o, frames.length);
  // The address array is reused while the family stays (the owner allocates nothing per frame).
  assert.equal(ips[1], ips[2]);
});

test('the accounting section reads back as written: absent, with the swarm update, or the accounting alone', () => {
  const member = { id: 77, status: 1 as const, groups: [] };
  const torrent = {
    id: 9,
    restricted: true,
    downloadFactor: 50,
    uploadFactor: 200,
    route: Uint8Array.from({ length: 20 }, (_, i) => i + 1),
  };
  const w = new FrameWriter(64);
  writeAnnounce(w, 1, request(4, 1), 1000);
  writeAnnounce(w, 2, request(6, 2), 1000, { member, torrent, keyPrint: 0xfeedbeef });
  writeAnnounce(w, 3, request(4, 3), 1000, { member, torrent, accountOnly: true, keyPrint: 7 });
  const frames = w.take();
  const read = [];
  for (let o = 0; o < frames.length; o += 4 + frames.readUInt32BE(o))
    read.push(readAccountTo(frames, o + HEADER, o + 4 + frames.readUInt32BE(o)));
  assert.equal(read[0], null);
  assert.deepEqual(read[1], {
    accountOnly: false,
    member: { ...member, groups: [] },
    torrent,
    keyPrint: 0xfeedbeef,
  });
  assert.deepEqual(read[2], { accountOnly: true, member: { ...member, groups: [] }, torrent, keyPrint: 7 });
});

test('member and torrent ids above 2^32 cross whole (u64, exact up to 2^53), not as id mod 2^32', () => {
  const torrent = {
    id: 0,
    restricted: false,
    downloadFactor: 100,
    uploadFactor: 100,
    route: new Uint8Array(20),
  };
  for (const id of [2 ** 32 + 1, 2 ** 40 + 7, Number.MAX_SAFE_INTEGER]) {
    const w = new FrameWriter(64);
    writeAnnounce(w, 1, request(4, 1), 1000, {
      member: { id, status: 0, groups: [] },
      torrent: { ...torrent, id: id - 1 },
    });
    const frames = w.take();
    const read = readAccountTo(frames, HEADER, frames.length);
    assert.equal(read?.member.id, id);
    assert.equal(read?.torrent.id, id - 1);
  }
});
