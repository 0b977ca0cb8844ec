/**
 * WebTorrent across workers, several workers in one process (STYLE.md example 11): each "worker"
 * is a real cluster bus, a WebRtcShard and a WebSocket frontend on its own port, wired as
 * `createTracker` wires a worker, so a test chooses which worker each socket reaches and drives the
 * clock. What the multi-process test (ws-workers.test.ts) cannot force is checked here: a worker
 * that restarts, an owner that is down, expiry, the per-socket torrent limit across workers.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, test } from 'node:test';
import { ClusterBus } from '../../src/cluster/bus.ts';
import { MessageType, writeText } from '../../src/cluster/messages.ts';
import { MAX_IN_FLIGHT, WebRtcShard } from '../../src/cluster/webrtc-shard.ts';
import { ManualClock } from '../../src/core/clock.ts';
import { Errors } from '../../src/core/errors.ts';
import { createLogger } from '../../src/core/log.ts';
import { TrackerCounters } from '../../src/core/metrics.ts';
import { shardOf } from '../../src/core/shard.ts';
import { WsFrontend } from '../../src/frontend/ws/server.ts';
import { WsSwarmErrors } from '../../src/frontend/ws/webrtc-swarms.ts';
import { MemorySwarmStore } from '../../src/store/memory/memory-store.ts';
import { TrackerService } from '../../src/tracker/service.ts';
import { hashOf } from '../helpers/clients.ts';
import { frame, rawWsClient } from '../helpers/ws-frames.ts';
import { id20, isAnswerFor, isOfferFor, Peer, sdp } from '../helpers/ws-peer.ts';

const logger = createLogger('silent');
const clock = new ManualClock(1000);
const PEER_TIMEOUT = 100;

interface Worker {
  clusterId: string;
  index: number;
  bus: ClusterBus;
  shard: WebRtcShard;
  f: WsFrontend;
  url: string;
  stop(): Promise<void>;
}

async function startWorker(clusterId: string, index: number, count: number): Promise<Worker> {
  // The bus's own requests (TCP/UDP swarms) are not used here.
  const bus = new ClusterBus({
    clusterId,
    index,
    count,
    logger,
    handler: (_type, id, _body, _at, reply, done) => {
      writeText(reply, MessageType.failure, id, 'no swarm store here');
      done();
    },
  });
  const shard = new WebRtcShard({ bus, logger });
  const service = new TrackerService({
    store: new MemorySwarmStore({ peerTimeout: PEER_TIMEOUT }),
    clock,
    counters: new TrackerCounters(),
    settings: { interval: 60, minInterval: 30, defaultNumWant: 5, maxNumWant: 10 },
  });
  const f = new WsFrontend({
    service,
    listen: [{ host: '127.0.0.1', port: 0 }],
    logger,
    interval: 60,
    minInterval: 30,
    peerTimeout: PEER_TIMEOUT,
    fullScrape: true,
    maxSwarmsPerSocket: 3,
    shards: shard,
  });
  await bus.start();
  shard.start();
  await f.start();
  let stopped = false;
  return {
    clusterId,
    index,
    bus,
    shard,
    f,
    url: `ws://127.0.0.1:${f.addresses()[0].port}/announce`,
    async stop() {
      if (stopped) return;
      stopped = true;
      await f.stop();
      await bus.stop();
    },
  };
}

async function cluster(count: number): Promise<Worker[]> {
  const id = randomBytes(4).toString('hex');
  const workers: Worker[] = [];
  for (let i = 0; i < count; i++) workers.push(await startWorker(id, i, count));
  after(async () => {
    for (const w of workers) await w.stop();
  });
  return workers;
}

let nextPeer = 1;
async function peerOn(w: Worker): Promise<Peer> {
  const p = new Peer(w.url, id20(0x636c7573, nextPeer++));
  p.worker = w.index;
  await p.opened();
  after(() => p.ws.terminate());
  return p;
}

/** An info hash (binary string) owned by worker `owner` of `count`. */
function ownedBy(owner: number, count: number, salt: number): string {
  for (let i = 0; ; i++) {
    const h = hashOf(i, salt);
    if (shardOf(h, count) === owner) return h.toString('latin1');
  }
}

async function until(what: string, cond: () => boolean, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`${what}: not reached after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('offers, answers and counts cross workers: a socket on each worker, a swarm owned by a third', async () => {
  const w = await cluster(3);
  const h = ownedBy(0, 3, 1);
  const a = await peerOn(w[1]);
  const b = await peerOn(w[2]);
  assert.equal((await a.announce(h, { event: 'started' })).incomplete, 0);
  const offerId = id20(1, 1);
  const r = await b.announce(h, { numwant: 5, offers: [{ offer: sdp('offer', 1), offer_id: offerId }] });
  assert.equal(r.incomplete, 1, 'the peer on another worker is counted');
  const [offer] = await a.waitFor(isOfferFor(h));
  assert.deepEqual(offer, {
    action: 'announce',
    info_hash: h,
    peer_id: b.peerId,
    offer_id: offerId,
    offer: sdp('offer', 1),
  });
  a.send({
    action: 'announce',
    info_hash: h,
    peer_id: a.peerId,
    to_peer_id: b.peerId,
    offer_id: offerId,
    answer: sdp('answer', 2),
  });
  const [answer] = await b.waitFor(isAnswerFor(h));
  assert.equal(answer.peer_id, a.peerId);
  // The owner holds both peers (and knows the two sockets); the sockets' workers hold none.
  assert.deepEqual(
    w.map((x) => x.f.stats().peers),
    [2, 0, 0],
  );
  assert.equal(w[0].shard.remoteSockets(), 2);
  assert.equal(w[0].f.stats().offersRelayed, 1);
  assert.equal(w[0].f.stats().answersRelayed, 1);

  // A socket that never announced this torrent answers anyway: dropped where it is.
  const x = await peerOn(w[1]);
  x.send({
    action: 'announce',
    info_hash: h,
    peer_id: x.peerId,
    to_peer_id: b.peerId,
    offer_id: offerId,
    answer: sdp('answer', 3),
  });
  await until('the answer was dropped', () => w[1].f.stats().answersDropped === 1);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(b.got.filter(isAnswerFor(h)).length, 1);

  // Closing a socket removes its peer on the owner.
  a.ws.close();
  await until('the closed socket left', () => w[0].f.stats().peers === 1 && w[0].shard.remoteSockets() === 1);
});

test('a restarted worker: the peers of its previous process leave every swarm, at once', async () => {
  const w = await cluster(3);
  const h = ownedBy(0, 3, 2);
  const a = await peerOn(w[1]);
  const b = await peerOn(w[2]);
  await a.announce(h);
  await b.announce(h);
  assert.equal(w[0].f.stats().peers, 2);
  // Worker 1 dies without a word (its sockets are not closed: nothing is sent for them), and a
  // new process takes its place: its greeting carries a new epoch.
  const dead = w[1];
  await dead.bus.stop();
  w[1] = await startWorker(dead.clusterId, 1, 3);
  after(() => dead.stop());
  await until(
    'the dead process peers are gone',
    () => w[0].f.stats().peers === 1 && w[0].shard.remoteSockets() === 1,
  );
  // b's offers now find no one to go to.
  const r = await b.announce(h, { numwant: 5, offers: [{ offer: sdp('offer', 1), offer_id: id20(2, 1) }] });
  assert.equal(r.incomplete, 0);
  assert.equal(w[0].f.stats().offersRelayed, 0);
});

test('expiry: a peer that stops announcing leaves its owner, which then forgets its socket', async () => {
  const w = await cluster(2);
  const h = ownedBy(0, 2, 3);
  const a = await peerOn(w[1]);
  const b = await peerOn(w[1]);
  await a.announce(h);
  await b.announce(h);
  assert.equal(w[0].shard.remoteSockets(), 2);
  clock.advance(PEER_TIMEOUT / 2);
  await b.announce(h);
  clock.advance(PEER_TIMEOUT / 2 + 1);
  assert.equal(w[0].f.sweep(), 1, 'the silent peer expired on its owner');
  assert.equal(w[0].shard.remoteSockets(), 1, 'and its socket was forgotten there');
  const files = await b.scrape([h]);
  assert.deepEqual(files[h], { complete: 0, incomplete: 1, downloaded: 0 });
});

test('the torrents-per-socket limit counts the swarms a socket holds on every worker', async () => {
  const w = await cluster(3);
  const p = await peerOn(w[0]);
  const hashes = [ownedBy(0, 3, 4), ownedBy(1, 3, 4), ownedBy(2, 3, 4)];
  for (const h of hashes) assert.equal((await p.announce(h))['failure reason'], undefined);
  // The limit is 3: a fourth torrent is refused, whichever worker owns it.
  for (let owner = 0; owner < 3; owner++) {
    const r = await p.announce(ownedBy(owner, 3, 5 + owner));
    assert.equal(r['failure reason'], WsSwarmErrors.tooManyTorrents.message, `owner ${owner}`);
  }
  // Announcing a torrent it holds is never refused; once it leaves one, it may join another.
  for (const h of hashes) assert.equal((await p.announce(h))['failure reason'], undefined);
  await p.announce(hashes[1], { event: 'stopped' });
  assert.equal((await p.announce(ownedBy(2, 3, 9)))['failure reason'], undefined);
});

test('an owner that is down: its swarms get the retryable failure, the other swarms are served', async () => {
  const w = await cluster(3);
  const p = await peerOn(w[0]);
  const up = [ownedBy(0, 3, 10), ownedBy(1, 3, 10)];
  const down = ownedBy(2, 3, 10);
  await w[2].stop();
  for (const h of up) assert.equal((await p.announce(h))['failure reason'], undefined);
  assert.equal((await p.announce(down))['failure reason'], Errors.shardUnavailable.message);
  const files = await p.scrape(up);
  assert.deepEqual(Object.keys(files).sort(), [...up].sort());
  for (const info_hash of [[...up, down], undefined]) {
    p.send(info_hash === undefined ? { action: 'scrape' } : { action: 'scrape', info_hash });
    const [m] = await p.waitFor((x) => x.action === 'scrape' && x['failure reason'] !== undefined);
    assert.equal(m['failure reason'], Errors.shardUnavailable.message);
    p.got.length = 0;
  }
});

test("a socket that floods announces for another worker's swarm: past MAX_IN_FLIGHT they are refused at once, every one answered", async () => {
  const w = await cluster(2);
  const h = ownedBy(1, 2, 11);
  const port = Number(new URL(w[0].url).port);
  const c = await rawWsClient(port);
  after(() => c.sock.destroy());
  const n = 3 * MAX_IN_FLIGHT;
  const text = JSON.stringify({ action: 'announce', info_hash: h, peer_id: id20(5, 5), left: 1 });
  // In one write: the worker reads them in a few chunks, far more than MAX_IN_FLIGHT each.
  c.sock.write(Buffer.concat(Array.from({ length: n }, () => frame(1, Buffer.from(text)))));
  await until('every announce answered', () => c.frames().length >= n, 10_000);
  const answers = c.frames().map((f) => JSON.parse(f.payload.toString()) as Record<string, unknown>);
  const busy = answers.filter((m) => m['failure reason'] === Errors.shardUnavailable.message).length;
  assert.ok(busy > 0, 'some were refused');
  assert.equal(
    answers.filter((m) => m['failure reason'] === undefined).length + busy,
    n,
    'the rest were served',
  );
  assert.equal(w[1].f.stats().peers, 1, 'one peer, on the owner');
});
