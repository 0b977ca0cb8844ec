/**
 * Bytes as a binary string (one UTF-16 code unit per byte, latin1), read in place without
 * copying: the form info hashes and peer ids take as Map and Set keys and in WebTorrent messages.
 */
export function binaryString(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');
}
