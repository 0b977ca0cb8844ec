/**
 * The connectable check with `herald serve --workers 2` (issue #16): it runs in the worker that
 * owns the swarm, so an endpoint whose announces reach both workers (connections placed on each on
 * purpose, test/helpers/workers.ts) is checked once, and /stats adds up both workers' figures.
 */
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { type RunningTracker, startTracker } from '../e2e/tracker-process.ts';
import { type FakePeer, fakePeer, until } from '../helpers/bt-peer.ts';
import { announcePath, hashOf } from '../helpers/clients.ts';
import { connectionOnEachWorker, workerPids } from '../helpers/workers.ts';

let t: RunningTracker;
let peer: FakePeer;
const hash = hashOf(1, 91);

before(async () => {
  peer = await fakePeer('handshake', { infoHashes: [hash] });
  t = await startTracker(
    [
      '--workers',
      '2',
      '--http',
      '127.0.0.1:0',
      '--udp',
      'off',
      '--connectable-check',
      'any',
      '--connectable-private-addresses',
    ],
    { ready: 'herald workers running' },
  );
});
after(async () => {
  await t?.stop();
  await peer?.close();
});

const connectable = async () => {
  const r = await fetch(`http://127.0.0.1:${t.http[0].port}/stats`);
  return ((await r.json()) as { connectable: { checks: number; connectable: number } }).connectable;
};

/** Sends one announce on an open connection and waits for the answer's first bytes. */
function announceOn(s: Socket, n: number): Promise<void> {
  return new Promise((resolve) => {
    s.once('data', () => resolve());
    const path = announcePath({
      infoHash: hash,
      port: peer.port,
      peerId: Buffer.from(`-TS0001-worker${n}`.padEnd(20, '0')),
    });
    s.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
  });
}

test('an endpoint announcing through both workers is checked once, by the owner of its swarm', async () => {
  const pids = workerPids(t.pid);
  assert.equal(pids.length, 2);
  const port = t.http[0].port;
  // Connections until both workers hold one (the kernel spreads them by source port).
  const { onEach, sockets } = await connectionOnEachWorker(pids, port);
  try {
    // The same endpoint (peer.port) announces through each worker, twice.
    for (let round = 0; round < 2; round++) for (const [i, s] of onEach.entries()) await announceOn(s, i);
    await until('the check', async () => (await connectable()).checks >= 1);
    // A second check (by the worker that only passed the announce on) would show by now.
    await new Promise((r) => setTimeout(r, 1000));
    const s = await connectable();
    assert.equal(s.checks, 1);
    assert.equal(s.connectable, 1);
    assert.equal(peer.gauge.total, 1);
  } finally {
    for (const s of sockets) s.destroy();
  }
});
