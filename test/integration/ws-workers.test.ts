/**
 * WebTorrent across the workers of `herald serve --workers N` (issue #13): a browser's WebSocket
 * lands on whichever worker the kernel gives it, and it must still meet every peer of its torrent.
 * Each test opens sockets until every worker holds some (read from /proc: which worker process holds
 * each connection), so offers, answers, stops and closes always cross workers; with swarms kept per
 * worker, offers would never reach the peers on the other workers and every test below fails.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { shardOf } from '../../src/core/shard.ts';
import { type RunningTracker, startTracker } from '../e2e/tracker-process.ts';
import { hashOf, httpGet } from '../helpers/clients.ts';
import { connectionHolders, workerPids } from '../helpers/workers.ts';
import { id20, isAnswerFor, isOfferFor, Peer, sdp } from '../helpers/ws-peer.ts';

const bin = (b: Uint8Array) => Buffer.from(b).toString('latin1');

/** One info hash owned by each of `n` workers. */
function hashPerShard(n: number, salt: number): string[] {
  const out: (string | undefined)[] = new Array(n).fill(undefined);
  for (let i = 0; out.includes(undefined); i++) {
    const h = hashOf(i, salt);
    const s = shardOf(h, n);
    if (out[s] === undefined) out[s] = bin(h);
  }
  return out as string[];
}

async function until(what: string, cond: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`${what}: not reached after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// Sharded swarms (the default), and with 2 workers the shared ones too (worker_swarms = shared: the
// TCP/UDP swarms in shared memory, WebTorrent's still sharded, its figures added up in /stats).
for (const [workers, swarms] of [
  [2, 'sharded'],
  [3, 'sharded'],
  [2, 'shared'],
] as const) {
  describe(`WebTorrent across workers: herald serve --workers ${workers} --worker-swarms ${swarms}`, () => {
    let t: RunningTracker;
    let url: string;
    let pids: number[];
    let nextPeer = 1;
    const open: Peer[] = [];

    before(async () => {
      t = await startTracker(
        [
          '--workers',
          String(workers),
          '--worker-swarms',
          swarms,
          '--http',
          '127.0.0.1:0',
          '--udp',
          'off',
          '--full-scrape',
        ],
        { ready: 'herald workers running' },
      );
      url = `ws://127.0.0.1:${t.http[0].port}/announce`;
      pids = workerPids(t.pid);
      assert.equal(pids.length, workers);
    });
    after(async () => {
      for (const p of open) p.ws.terminate();
      await t?.stop();
    });

    /**
     * Opens sockets until every worker holds at least `each` of them (the kernel places each
     * connection; /proc tells where it went). Sockets beyond `each` on a worker are kept too: all
     * of them take part, so the test does not depend on how the kernel spread them.
     */
    async function placed(each: number): Promise<Peer[]> {
      const peers: Peer[] = [];
      const per = new Map<number, number>(pids.map((p) => [p, 0]));
      for (let tries = 0; [...per.values()].some((n) => n < each); tries++) {
        assert.ok(tries < 80, `sockets never reached every worker: ${JSON.stringify([...per])}`);
        const p = new Peer(url, id20(0x70656572, nextPeer++));
        open.push(p);
        await p.opened();
        let holder: number | undefined;
        await until('connection seen in /proc', async () => {
          holder = connectionHolders(pids, t.http[0].port).get(p.localPort);
          return holder !== undefined;
        });
        p.worker = holder!;
        per.set(p.worker, (per.get(p.worker) ?? 0) + 1);
        peers.push(p);
      }
      return peers;
    }

    async function closeAll(peers: Peer[]): Promise<void> {
      for (const p of peers) p.ws.close();
      await Promise.all(peers.map((p) => p.closed));
    }

    const webrtcStats = async () =>
      JSON.parse((await httpGet(t.http[0].port, '127.0.0.1', '/stats')).body.toString()).webrtc as Record<
        string,
        number
      >;

    test('every socket gets one offer from every other socket, on every worker, and every answer comes back', async () => {
      const peers = await placed(2);
      const k = peers.length;
      for (const [s, h] of hashPerShard(workers, 11).entries()) {
        for (const [i, p] of peers.entries()) {
          const r = await p.announce(h, { event: 'started', offers: [] });
          assert.equal(r.incomplete, i, `peers before it, whichever worker holds them (shard ${s})`);
        }
        // Each peer offers to all the others: with k peers, k - 1 offers reach k - 1 distinct peers.
        for (const [i, p] of peers.entries()) {
          const offers = peers.slice(1).map((_, j) => ({ offer: sdp('offer', j), offer_id: id20(s, i, j) }));
          const r = await p.announce(h, { numwant: k - 1, offers });
          assert.equal(r.incomplete, k - 1);
        }
        for (const p of peers) {
          const offers = await p.waitFor(isOfferFor(h), k - 1);
          assert.equal(offers.length, k - 1, 'no more offers than peers');
          const from = offers.map((m) => m.peer_id as string).sort();
          const expected = peers
            .filter((q) => q !== p)
            .map((q) => q.peerId)
            .sort();
          assert.deepEqual(from, expected, `the socket on worker ${p.worker} got an offer from every other`);
          // It answers each one.
          for (const m of offers)
            p.send({
              action: 'announce',
              info_hash: h,
              peer_id: p.peerId,
              to_peer_id: m.peer_id,
              offer_id: m.offer_id,
              answer: sdp('answer', 1),
            });
        }
        for (const [i, p] of peers.entries()) {
          const answers = await p.waitFor(isAnswerFor(h), k - 1);
          assert.deepEqual(
            answers.map((m) => m.peer_id as string).sort(),
            peers
              .filter((q) => q !== p)
              .map((q) => q.peerId)
              .sort(),
            'every answer came back to the offering socket',
          );
          const ids = new Set(peers.slice(1).map((_, j) => id20(s, i, j)));
          for (const m of answers) assert.ok(ids.has(m.offer_id as string), 'an answer to one of its offers');
        }
      }
      await closeAll(peers);
    });

    test('forged answers are dropped across workers; the genuine answer goes through once', async () => {
      const peers = await placed(2);
      for (const [s, h] of hashPerShard(workers, 12).entries()) {
        // b offers, a (on another worker) receives it, c (on another worker than a) forges.
        const b = peers[s % peers.length];
        const a = peers.find((p) => p.worker !== b.worker)!;
        const c = peers.find((p) => p !== a && p !== b && p.worker !== a.worker) ?? b;
        const offerId = id20(99, s, 1);
        await a.announce(h, { event: 'started' });
        await b.announce(h, {
          event: 'started',
          numwant: 1,
          offers: [{ offer: sdp('offer', 1), offer_id: offerId }],
        });
        const [offer] = await a.waitFor(isOfferFor(h));
        assert.equal(offer.peer_id, b.peerId);
        assert.equal(offer.offer_id, offerId);
        if (c !== b) await c.announce(h, { event: 'started' });
        const answer = (from: Peer, peerId: string, offer_id: string, n: number) =>
          from.send({
            action: 'announce',
            info_hash: h,
            peer_id: peerId,
            to_peer_id: b.peerId,
            offer_id,
            answer: sdp('answer', n),
          });
        if (c !== b) {
          answer(c, c.peerId, offerId, 901); // c was never sent this offer
          answer(c, a.peerId, offerId, 902); // c answers as a (a peer id bound to another socket)
        }
        answer(a, a.peerId, id20(98, s, 1), 903); // the right peer, an offer id never sent to it
        answer(a, a.peerId, offerId, 1); // the genuine answer
        answer(a, a.peerId, offerId, 904); // a replay
        const [got] = await b.waitFor(isAnswerFor(h));
        assert.deepEqual(got, {
          action: 'announce',
          info_hash: h,
          peer_id: a.peerId,
          offer_id: offerId,
          answer: sdp('answer', 1),
        });
        // The forged answers and the replay travel other paths: give them time to arrive.
        await new Promise((r) => setTimeout(r, 300));
        assert.equal(b.got.filter(isAnswerFor(h)).length, 1, 'only the genuine answer, once');
        assert.equal(a.got.filter((m) => m['failure reason'] !== undefined).length, 0);
      }
      await closeAll(peers);
    });

    test('seeders offer to leechers only; counts, scrape, full scrape, stop and close are those of one swarm', async () => {
      const peers = await placed(2);
      const k = peers.length;
      const hashes = hashPerShard(workers, 13);
      // Half of the sockets (one on each worker at least) seed.
      const seeding = (i: number) => i % 2 === 0;
      const seeders = peers.filter((_, i) => seeding(i)).length;
      for (const h of hashes) {
        for (const [i, p] of peers.entries()) await p.announce(h, { left: seeding(i) ? 0 : 100 });
        const seeder = peers[0];
        const offers = peers.map((_, j) => ({ offer: sdp('offer', j), offer_id: id20(7, j, 7) }));
        await seeder.announce(h, { left: 0, numwant: k, offers });
        for (const [i, p] of peers.entries()) {
          if (seeding(i)) continue;
          const [o] = await p.waitFor(isOfferFor(h));
          assert.equal(o.peer_id, seeder.peerId, 'each leecher got one offer from the seeder');
        }
        await new Promise((r) => setTimeout(r, 200));
        for (const [i, p] of peers.entries())
          if (seeding(i)) assert.equal(p.got.filter(isOfferFor(h)).length, 0, 'no offer to a seeder');
      }
      // One scrape of every shard's hash, from a socket on each worker.
      for (const p of peers) {
        const files = await p.scrape(hashes);
        for (const h of hashes)
          assert.deepEqual(files[h], { complete: seeders, incomplete: k - seeders, downloaded: 0 });
      }
      const all = await peers[1].scrape();
      for (const h of hashes) assert.equal(all[h]?.complete, seeders, 'the full scrape lists every shard');
      const stats = await webrtcStats();
      assert.ok(stats.peers >= k * hashes.length, JSON.stringify(stats));
      assert.ok(stats.sockets >= k);

      // A leecher stops: gone at once, seen from every worker.
      const stopper = peers[1];
      for (const h of hashes) {
        const r = await stopper.announce(h, { event: 'stopped' });
        assert.equal(r['failure reason'], undefined);
      }
      for (const p of peers) {
        const files = await p.scrape(hashes);
        for (const h of hashes) assert.equal(files[h].incomplete, k - seeders - 1, 'the stopped peer left');
      }
      // A leecher closes its socket: it leaves every swarm, on every owner.
      const leaving = peers[3];
      leaving.ws.close();
      await leaving.closed;
      const watcher = peers.find((p) => p.worker !== leaving.worker)!;
      await until('the closed socket left every swarm', async () => {
        const files = await watcher.scrape(hashes);
        return hashes.every((h) => files[h].incomplete === k - seeders - 2);
      });
      await closeAll(peers.filter((p) => p !== leaving));
      await until('no WebRTC peer is left once every socket closed', async () => {
        const s = await webrtcStats();
        return s.peers === 0 && s.swarms === 0;
      });
    });
  });
}
