/**
 * A process for test/integration/shared-swarms.test.ts: opens the shared swarm store it inherited
 * as fd 4 (after stdio and the IPC channel) and runs what the parent sends, answering each message:
 *   { op: 'announce', t, n, seeder, stop? }  → { complete, incomplete, peers: ["hex:port", ...] }
 *   { op: 'churn', base, torrents, count, seed } → { held: ["t/n", ...] } (random joins and stops
 *     of peers base..base+999 over `torrents` swarms, numbered from 100; the peers it left held)
 *   { op: 'abandon', t, corrupt } → no answer: takes the lock of swarm t's stripe (first leaving
 *     its IPv4 table half-updated, with `corrupt`) and exits holding it
 */
import { xorshift } from '../../src/core/random.ts';
import { AnnounceEvent, type AnnounceResult } from '../../src/core/types.ts';
import { loadSharedSwarms, SharedMemorySwarmStore } from '../../src/store/shared/shared-memory-store.ts';
import { requestOf } from '../../src/swarm/contract.ts';

export type ChildRequest =
  | { op: 'announce'; t: number; n: number; seeder: boolean; stop?: boolean }
  | { op: 'churn'; base: number; torrents: number; count: number; seed: number }
  | { op: 'abandon'; t: number; corrupt: boolean };

const hashOf = (t: number) => Buffer.alloc(20, 0x5a).fill(t, 0, 1);

const store = new SharedMemorySwarmStore({ peerTimeout: 1800, fd: 4 });

function announce(t: number, n: number, seeder: boolean, stop: boolean, numWant: number): AnnounceResult {
  const event = stop ? AnnounceEvent.stopped : AnnounceEvent.none;
  const r = store.announce(requestOf(hashOf(t), n, { seeder, event, numWant }), 1000);
  if (!('peerCount' in r)) throw new Error(`refused: ${r.message}`);
  return r;
}

process.on('message', (m: ChildRequest) => {
  if (m.op === 'abandon') {
    // A handle of its own, to put the hash in its io buffer (IO_HASH = 0).
    const addon = loadSharedSwarms()!;
    const io = new ArrayBuffer(1 << 16);
    const handle = addon.sharedSwarmsOpen(4, io);
    new Uint8Array(io).set(hashOf(m.t), 0);
    (
      addon as unknown as { sharedSwarmsTestAbandon(h: object, corrupt: number): void }
    ).sharedSwarmsTestAbandon(handle, m.corrupt ? 1 : 0);
    process.exit(0);
  }
  if (m.op === 'announce') {
    const r = announce(m.t, m.n, m.seeder, m.stop ?? false, 200);
    const peers: string[] = [];
    for (let i = 0; i < r.peerCount; i++) {
      const rec = r.peers.subarray(i * 6, i * 6 + 6);
      peers.push(`${Buffer.from(rec.subarray(0, 4)).toString('hex')}:${(rec[4] << 8) | rec[5]}`);
    }
    process.send!({ complete: r.complete, incomplete: r.incomplete, peers });
    return;
  }
  const random = xorshift(m.seed);
  const held = new Set<string>();
  for (let i = 0; i < m.count; i++) {
    const t = Math.floor(random() * m.torrents);
    const n = m.base + Math.floor(random() * 1000);
    const stop = random() < 0.3;
    announce(100 + t, n, random() < 0.5, stop, 5);
    if (stop) held.delete(`${t}/${n}`);
    else held.add(`${t}/${n}`);
  }
  process.send!({ held: [...held] });
});
process.on('disconnect', () => {
  store.close();
  process.exit(0);
});
