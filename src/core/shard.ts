/**
 * The worker that owns a swarm: the info hash's first four bytes as a big-endian unsigned number,
 * modulo the number of workers. This is exactly the choice the UDP addon's reuseport program makes
 * for an announce or scrape (native/src/udp_batch.c, "Steering by info hash"), so a frontend that
 * receives a request elsewhere (HTTP, WebSocket) can tell which worker's store holds the swarm.
 * A v1 SHA-1 or a truncated v2 SHA-256 hash is uniform in those bytes, so shards are even.
 */
export function shardOf(infoHash: Uint8Array, n: number): number {
  return (((infoHash[0] << 24) | (infoHash[1] << 16) | (infoHash[2] << 8) | infoHash[3]) >>> 0) % n;
}
