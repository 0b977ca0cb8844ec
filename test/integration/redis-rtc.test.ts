/**
 * WebTorrent across instances (issue #14): two `herald serve` processes on one Redis (and on one
 * Redis Cluster) share their WebRTC swarms. A browser on instance A is offered to, and gets the
 * answer from, a browser on instance B; counts and scrapes include both; a socket that closes
 * leaves the swarm for both instances. With WebRTC swarms kept per instance, every test below
 * fails (no offer crosses, counts are per instance).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { type RunningTracker, startTracker } from '../e2e/tracker-process.ts';
import { httpGet } from '../helpers/clients.ts';
import {
  deleteKeys,
  freePort,
  type OwnRedis,
  ownRedis,
  redisTargets,
  sharedServe,
  testPrefix,
} from '../helpers/redis.ts';
import { id20, isAnswerFor, isOfferFor, Peer, sdp } from '../helpers/ws-peer.ts';

async function until(what: string, cond: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`${what}: not reached after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const wsUrl = (t: RunningTracker) => `ws://127.0.0.1:${t.http[0].port}/announce`;

for (const [name, url] of redisTargets)
  describe(`WebTorrent across two instances on one ${name}`, () => {
    const prefix = testPrefix();
    const secret = randomBytes(32).toString('hex');
    let a: RunningTracker;
    let b: RunningTracker;
    const open: Peer[] = [];
    let next = 1;
    before(async () => {
      [a, b] = await Promise.all([
        startTracker(sharedServe(url, prefix, secret)),
        startTracker(sharedServe(url, prefix, secret)),
      ]);
    });
    after(async () => {
      for (const p of open) p.ws.terminate();
      await Promise.all([a?.stop(), b?.stop()]);
      await deleteKeys(url, prefix);
    });

    async function peerOn(t: RunningTracker): Promise<Peer> {
      const p = new Peer(wsUrl(t), id20(0x72746370, next++, randomBytes(4).readUInt32BE(0)));
      open.push(p);
      await p.opened();
      return p;
    }

    test('an offer from a peer on B reaches a peer on A, and the answer comes back', async () => {
      const h = id20(1, randomBytes(4).readUInt32BE(0));
      const onA = await peerOn(a);
      const onB = await peerOn(b);
      const first = await onA.announce(h, { event: 'started', offers: [] });
      assert.equal(first['failure reason'], undefined, String(first['failure reason']));
      const r = await onB.announce(h, {
        event: 'started',
        numwant: 5,
        offers: [{ offer: sdp('offer', 1), offer_id: id20(7, 7) }],
      });
      assert.equal(r['failure reason'], undefined, String(r['failure reason']));
      assert.deepEqual([r.complete, r.incomplete], [0, 1], "B's response counts the peer on A");
      const [offer] = await onA.waitFor(isOfferFor(h));
      assert.equal(offer.peer_id, onB.peerId);
      assert.equal(offer.offer_id, id20(7, 7));
      assert.deepEqual(offer.offer, sdp('offer', 1));
      onA.send({
        action: 'announce',
        info_hash: h,
        peer_id: onA.peerId,
        to_peer_id: onB.peerId,
        offer_id: offer.offer_id,
        answer: sdp('answer', 2),
      });
      const [answer] = await onB.waitFor(isAnswerFor(h));
      assert.equal(answer.peer_id, onA.peerId);
      assert.equal(answer.offer_id, id20(7, 7));
      assert.deepEqual(answer.answer, sdp('answer', 2));
      // And the other way round: A's offers reach B.
      await onA.announce(h, { numwant: 5, offers: [{ offer: sdp('offer', 3), offer_id: id20(8, 8) }] });
      const [back] = await onB.waitFor(isOfferFor(h));
      assert.equal(back.peer_id, onA.peerId);
    });

    test('an answer to an offer never sent is not relayed; one answer per offer', async () => {
      const h = id20(2, randomBytes(4).readUInt32BE(0));
      const onA = await peerOn(a);
      const onB = await peerOn(b);
      await onA.announce(h, { offers: [] });
      await onB.announce(h, { numwant: 1, offers: [{ offer: sdp('offer', 1), offer_id: id20(9, 1) }] });
      const [offer] = await onA.waitFor(isOfferFor(h));
      const answer = (offerId: string) =>
        onA.send({
          action: 'announce',
          info_hash: h,
          peer_id: onA.peerId,
          to_peer_id: onB.peerId,
          offer_id: offerId,
          answer: sdp('answer', 9),
        });
      answer(id20(9, 99)); // never offered
      answer(offer.offer_id as string);
      answer(offer.offer_id as string); // a replay
      await onB.waitFor(isAnswerFor(h));
      // A later round trip through B and back shows nothing else arrived meanwhile.
      await onB.announce(h, { offers: [] });
      await onA.announce(h, { offers: [] });
      assert.equal(onB.got.filter(isAnswerFor(h)).length, 1);
    });

    test('counts and scrape include both instances; a socket that closes leaves', async () => {
      const h = id20(3, randomBytes(4).readUInt32BE(0));
      const seeder = await peerOn(a);
      const leecher = await peerOn(b);
      const third = await peerOn(a);
      await seeder.announce(h, { left: 0, event: 'completed', offers: [] });
      await leecher.announce(h, { offers: [] });
      const r = await third.announce(h, { offers: [] });
      assert.deepEqual([r.complete, r.incomplete], [1, 1]);
      for (const p of [seeder, leecher])
        assert.deepEqual((await p.scrape([h]))[h], { complete: 1, incomplete: 2, downloaded: 1 });
      // A full scrape on either instance lists it whole.
      assert.deepEqual((await leecher.scrape())[h], { complete: 1, incomplete: 2, downloaded: 1 });
      // /stats counts every instance's WebRTC peers (the sockets are each instance's own).
      const webrtc = async (t: RunningTracker) => {
        const r = await httpGet(t.http[0].port, '127.0.0.1', '/stats');
        const { sockets, ...rest } = JSON.parse(r.body.toString()).webrtc;
        assert.ok(sockets >= 1);
        return rest as Record<string, number>;
      };
      const [fromA, fromB] = [await webrtc(a), await webrtc(b)];
      assert.deepEqual(fromA, fromB);
      assert.ok(fromA.peers >= 3 && fromA.seeders >= 1, JSON.stringify(fromA));
      // The same peer id from another socket is refused while the first holds it.
      const thief = await peerOn(b);
      thief.send({ action: 'announce', info_hash: h, peer_id: seeder.peerId, left: 0 });
      const [failure] = await thief.waitFor((m) => m['failure reason'] !== undefined);
      assert.match(String(failure['failure reason']), /peer_id is in use/);
      thief.ws.close();
      await thief.closed;
      leecher.ws.close();
      await leecher.closed;
      await until('the closed sockets leave', async () => {
        const e = (await seeder.scrape([h]))[h];
        return e.incomplete === 1;
      });
      assert.deepEqual((await third.scrape([h]))[h], { complete: 1, incomplete: 1, downloaded: 1 });
    });
  });

describe('WebTorrent on a Redis store that goes away', () => {
  let t: RunningTracker;
  let t2: RunningTracker;
  let redis: OwnRedis;
  before(async () => {
    redis = ownRedis(await freePort(16_391));
    await redis.start();
    const prefix = testPrefix();
    const secret = randomBytes(32).toString('hex');
    [t, t2] = await Promise.all([
      startTracker(sharedServe(redis.url, prefix, secret)),
      startTracker(sharedServe(redis.url, prefix, secret)),
    ]);
  });
  after(async () => {
    await Promise.all([t?.stop(), t2?.stop()]);
    await redis?.kill();
  });

  test('an announce gets a clear failure reason; once Redis is back, announces and offers across instances work again', async () => {
    const h = id20(4, randomBytes(4).readUInt32BE(0));
    const p = new Peer(wsUrl(t), id20(0x64, 1));
    const q = new Peer(wsUrl(t2), id20(0x64, 2));
    await Promise.all([p.opened(), q.opened()]);
    try {
      const ok = await p.announce(h, { offers: [] });
      assert.equal(ok['failure reason'], undefined, String(ok['failure reason']));
      await redis.kill();
      const down = await p.announce(h, { offers: [] });
      assert.match(String(down['failure reason']), /storage unavailable/);
      assert.equal(p.ws.readyState, p.ws.OPEN, 'the socket stays open');
      await redis.start();
      await until('announces work again', async () => {
        const r = await p.announce(h, { offers: [] });
        return r['failure reason'] === undefined;
      });
      // The restarted Redis is empty: p is back in the swarm by its announce above. Its subscriber
      // subscribed again, so an offer from the other instance reaches it (retried: the
      // subscription may take a moment longer than the first announce).
      let n = 0;
      await until('an offer from the other instance arrives', async () => {
        const r = await q.announce(h, {
          numwant: 1,
          offers: [{ offer: sdp('offer', n), offer_id: id20(4, n++) }],
        });
        assert.equal(r['failure reason'], undefined, String(r['failure reason']));
        await new Promise((resolve) => setTimeout(resolve, 200));
        return p.got.some(isOfferFor(h));
      });
    } finally {
      p.ws.terminate();
      q.ws.terminate();
    }
  });
});
