/**
 * The BitTorrent handshake (BEP 3): `19`, "BitTorrent protocol", 8 reserved bytes, the 20-byte info
 * hash, the 20-byte peer id; 68 bytes in all. Pure: bytes in, bytes out (the connectable check,
 * src/connectable/checker.ts, owns the socket).
 */

const PROTOCOL = 'BitTorrent protocol';

/** Bytes of a whole handshake. */
export const HANDSHAKE_BYTES = 68;

/** Bytes of an answer that decide it: the protocol string, the reserved bytes and the info hash. */
export const HANDSHAKE_DECIDING_BYTES = 48;

/** A handshake for `infoHash` (20 bytes) from `peerId` (20 bytes), reserved bytes all zero. */
export function writeHandshake(infoHash: Uint8Array, peerId: Uint8Array): Buffer {
  if (infoHash.length !== 20 || peerId.length !== 20)
    throw new RangeError('info hash and peer id are 20 bytes');
  const b = Buffer.alloc(HANDSHAKE_BYTES);
  b[0] = PROTOCOL.length;
  b.write(PROTOCOL, 1, 'latin1');
  b.set(infoHash, 28);
  b.set(peerId, 48);
  return b;
}

/**
 * What the first bytes a peer sent say: 'more' until 48 bytes have come (unless they already
 * differ from a handshake), then 'yes' when they are a BitTorrent handshake for `infoHash`
 * (whatever the reserved bytes and the peer id that follows), 'no' otherwise.
 */
export function readHandshake(got: Uint8Array, infoHash: Uint8Array): 'yes' | 'no' | 'more' {
  const n = Math.min(got.length, HANDSHAKE_DECIDING_BYTES);
  for (let i = 0; i < n; i++) {
    let want: number;
    if (i === 0) want = PROTOCOL.length;
    else if (i < 20) want = PROTOCOL.charCodeAt(i - 1);
    else if (i < 28)
      continue; // reserved: extension bits, anything goes
    else want = infoHash[i - 28];
    if (got[i] !== want) return 'no';
  }
  return n < HANDSHAKE_DECIDING_BYTES ? 'more' : 'yes';
}
