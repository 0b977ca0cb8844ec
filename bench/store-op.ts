/**
 * MemorySwarmStore's announce alone, CPU per call, on bench/shared-swarms.c's load (10,000 torrents
 * of 10 peers, random known peers announcing, numwant 50): the one-process figure the shared-memory
 * prototype is compared with (docs/design-notes.md "Swarms in shared memory").
 *   node bench/store-op.ts [ANNOUNCES]
 */
import type { AnnounceRequest, AnnounceResult } from '../src/core/types.ts';
import { MemorySwarmStore } from '../src/store/memory/memory-store.ts';

const torrents = 10_000;
const per = 10;
const ops = Number(process.argv[2] ?? 3_000_000);
const store = new MemorySwarmStore({ peerTimeout: 1e9 });
const hashes = Array.from({ length: torrents }, () => crypto.getRandomValues(new Uint8Array(20)));
const req: AnnounceRequest = {
  infoHash: hashes[0],
  peerId: new Uint8Array(20),
  family: 4,
  ip: new Uint8Array([127, 0, 0, 1]),
  port: 0,
  uploaded: 0,
  downloaded: 0,
  left: 0,
  event: 0,
  numWant: 50,
  wantPeerIds: false,
};
/** Peer `p` (of 10) of torrent `t` announces; one in four is a seeder. */
function announce(t: number, p: number, now: number): number {
  req.infoHash = hashes[t];
  req.ip[3] = 1 + p;
  req.port = 1024 + p;
  req.left = p % 4 === 0 ? 0 : 1;
  return (store.announce(req, now) as AnnounceResult).peerCount;
}
for (let t = 0; t < torrents; t++) for (let p = 0; p < per; p++) announce(t, p, 1);
let peersOut = 0;
for (let round = 0; round < 3; round++) {
  const c0 = process.cpuUsage();
  for (let o = 0; o < ops; o++)
    peersOut += announce((Math.random() * torrents) | 0, (Math.random() * per) | 0, 2);
  const c = process.cpuUsage(c0);
  console.log(
    `MemorySwarmStore: ${(((c.user + c.system) * 1000) / ops).toFixed(1)} ns per announce (CPU); ${peersOut} peers out so far`,
  );
}
