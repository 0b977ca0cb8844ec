import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HANDSHAKE_BYTES, readHandshake, writeHandshake } from './handshake.ts';

const hash = new Uint8Array(20).fill(0xab);
const id = new Uint8Array(20).fill(0x2d);

test('a handshake is 68 bytes: 19, the protocol string, 8 zero bytes, the info hash, the peer id', () => {
  const b = writeHandshake(hash, id);
  assert.equal(b.length, HANDSHAKE_BYTES);
  assert.equal(b[0], 19);
  assert.equal(b.subarray(1, 20).toString('latin1'), 'BitTorrent protocol');
  assert.deepEqual([...b.subarray(20, 28)], [0, 0, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual(b.subarray(28, 48), Buffer.from(hash));
  assert.deepEqual(b.subarray(48, 68), Buffer.from(id));
  assert.throws(() => writeHandshake(hash.subarray(0, 19), id), RangeError);
});

test('an answer is decided at 48 bytes: same info hash yes (any reserved bits), another hash or protocol no', () => {
  const answer = writeHandshake(hash, new Uint8Array(20).fill(7));
  answer[25] = 0x10; // extension protocol bit
  assert.equal(readHandshake(answer, hash), 'yes');
  assert.equal(readHandshake(answer.subarray(0, 48), hash), 'yes');
  assert.equal(readHandshake(answer.subarray(0, 47), hash), 'more');
  assert.equal(readHandshake(new Uint8Array(0), hash), 'more');
  assert.equal(readHandshake(writeHandshake(new Uint8Array(20).fill(1), id), hash), 'no');
  // Garbage is refused at its first wrong byte, without waiting for 48.
  assert.equal(readHandshake(Buffer.from('HTTP/1.1 400'), hash), 'no');
  const other = Buffer.from(answer);
  other[5] = 0x21;
  assert.equal(readHandshake(other.subarray(0, 10), hash), 'no');
});
