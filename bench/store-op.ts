/**
 * A store's announce alone, CPU per call, on bench/shared-swarms.c's load (10,000 torrents of 10
 * peers, random known peers announcing, numwant 50): MemorySwarmStore, the one-process figure the
 * shared-memory prototype is compared with (docs/design-notes.md "Swarms in shared memory"), or
 * SharedMemorySwarmStore through N-API (docs/shmstore-progress.md); `shared2`: two processes
 * announcing into one shared store at once (each prints its own figures). `big`: one torrent of
 * 100,000 peers instead (the cost of a big swarm: no scan, a selection of two runs).
 *   node bench/store-op.ts [ANNOUNCES] [memory|shared|shared2] [big]
 */
import { fork } from 'node:child_process';
import type { AnnounceRequest, AnnounceResult } from '../src/core/types.ts';
import { MemorySwarmStore } from '../src/store/memory/memory-store.ts';
import { createSharedSwarms, SharedMemorySwarmStore } from '../src/store/shared/shared-memory-store.ts';
import type { SwarmStore } from '../src/swarm/types.ts';

const ops = Number(process.argv[2] ?? 3_000_000);
const kind = process.argv[3] ?? 'memory';
const big = process.argv[4] === 'big';
const torrents = big ? 1 : 10_000;
const per = big ? 100_000 : 10;
const limits = { maxPeers: torrents * per * 2, maxTorrents: torrents * 2 };
// Fixed hashes: the two processes of shared2 announce into the same swarms.
const hashes = Array.from({ length: torrents }, (_, t) => {
  const h = new Uint8Array(20);
  new DataView(h.buffer).setUint32(0, t * 2654435761);
  return h;
});
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

function run(name: string, store: SwarmStore): void {
  /** Peer `p` (of `per`) of torrent `t` announces; one in four is a seeder. */
  const announce = (t: number, p: number, now: number): number => {
    req.infoHash = hashes[t];
    req.ip[2] = p >> 8;
    req.ip[3] = p & 0xff;
    req.port = 1024 + (p >> 16);
    req.left = p % 4 === 0 ? 0 : 1;
    return (store.announce(req, now) as AnnounceResult).peerCount;
  };
  for (let t = 0; t < torrents; t++) for (let p = 0; p < per; p++) announce(t, p, 1);
  let peersOut = 0;
  for (let round = 0; round < 3; round++) {
    const c0 = process.cpuUsage();
    for (let o = 0; o < ops; o++)
      peersOut += announce((Math.random() * torrents) | 0, (Math.random() * per) | 0, 2);
    const c = process.cpuUsage(c0);
    console.log(
      `${name}: ${(((c.user + c.system) * 1000) / ops).toFixed(1)} ns per announce (CPU); ${peersOut} peers out so far`,
    );
  }
}

if (kind === 'shared2') {
  // This process makes the store; two children announce into it at once (fd 4 in each).
  const fd = createSharedSwarms(limits);
  for (let i = 0; i < 2; i++)
    fork(process.argv[1], [String(ops), 'child', ...process.argv.slice(4)], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc', fd],
    });
} else if (kind === 'child') {
  run(`SharedMemorySwarmStore (pid ${process.pid})`, new SharedMemorySwarmStore({ peerTimeout: 1e9, fd: 4 }));
  process.disconnect();
} else if (kind === 'shared') {
  run('SharedMemorySwarmStore', new SharedMemorySwarmStore({ peerTimeout: 1e9, ...limits }));
} else {
  run('MemorySwarmStore', new MemorySwarmStore({ peerTimeout: 1e9 }));
}
