/**
 * Which of `n` workers owns a swarm: the first four bytes of its info hash, big-endian, modulo
 * `n`. Info hashes are SHA-1/SHA-256 digests, so this spreads swarms evenly; a client that
 * crafts hashes can only load one worker more than another, never split a swarm (issue #13).
 * The UDP steering program (native/src/udp_batch.c) computes the same function in the kernel.
 */
export function shardOf(infoHash: Uint8Array, n: number): number {
  return (((infoHash[0] << 24) | (infoHash[1] << 16) | (infoHash[2] << 8) | infoHash[3]) >>> 0) % n;
}
