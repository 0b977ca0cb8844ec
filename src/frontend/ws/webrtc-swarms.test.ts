/**
 * WebRtcSwarms without sockets: the bounded ring of offers awaiting an answer (relay only to the
 * peer that was sent the offer; the oldest forgotten when the ring is full; one answer per offer).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Errors, TrackerError } from '../../core/errors.ts';
import { parseClientMessage, type WsAnnounce } from '../../protocol/websocket/codec.ts';
import { WebRtcSwarms } from './webrtc-swarms.ts';

const id = (tag: string) => tag.padEnd(20, '.');
const IH = id('torrent');

function msg(o: Record<string, unknown>): WsAnnounce {
  const r = parseClientMessage(JSON.stringify({ action: 'announce', info_hash: IH, left: 10, ...o }));
  assert.ok(r.ok, JSON.stringify(r));
  return r.msg as WsAnnounce;
}

test('answers reach only the offerer, once, and only while the offer is remembered', () => {
  const swarms = new WebRtcSwarms({ peerTimeout: 600, maxPendingOffers: 3 });
  const inboxA: string[] = [];
  const inboxB: string[] = [];
  const a = swarms.connect((t) => inboxA.push(t));
  const b = swarms.connect((t) => inboxB.push(t));
  swarms.announce(b, msg({ peer_id: id('peer-b') }), 5, 100);
  // Peer a makes five offers, one announce each: all go to b (the only other peer).
  for (let i = 0; i < 5; i++)
    swarms.announce(
      a,
      msg({
        peer_id: id('peer-a'),
        offers: [{ offer: { type: 'offer', sdp: `s${i}` }, offer_id: id(`offer-${i}`) }],
      }),
      5,
      100 + i,
    );
  assert.equal(inboxB.length, 5);
  const answer = (offer: number, from = b, to = 'peer-a') =>
    swarms.answer(
      from,
      msg({
        peer_id: id('peer-b'),
        to_peer_id: id(to),
        offer_id: id(`offer-${offer}`),
        answer: { type: 'answer', sdp: 'x' },
      }),
      110,
    );
  // The ring holds the three newest: offers 0 and 1 were forgotten.
  assert.equal(answer(0), false);
  assert.equal(answer(1), false);
  assert.equal(answer(4), true);
  assert.equal(answer(4), false, 'one answer per offer');
  assert.equal(answer(2), true);
  assert.equal(answer(3, a), false, 'only the peer that was sent the offer may answer it');
  assert.equal(answer(3), true);
  assert.equal(inboxA.length, 3);
  assert.equal(JSON.parse(inboxA[0]).offer_id, id('offer-4'));
});

test('the ring grows to its bound, then forgets the oldest offers', () => {
  const swarms = new WebRtcSwarms({ peerTimeout: 600, maxPendingOffers: 10 });
  const a = swarms.connect(() => {});
  const b = swarms.connect(() => {});
  swarms.announce(b, msg({ peer_id: id('peer-b') }), 5, 100);
  for (let i = 0; i < 13; i++)
    swarms.announce(
      a,
      msg({
        peer_id: id('peer-a'),
        offers: [{ offer: { type: 'offer', sdp: 's' }, offer_id: id(`o-${i}`) }],
      }),
      5,
      100,
    );
  const answer = (i: number) =>
    swarms.answer(
      b,
      msg({
        peer_id: id('peer-b'),
        to_peer_id: id('peer-a'),
        offer_id: id(`o-${i}`),
        answer: { type: 'answer', sdp: 'x' },
      }),
      101,
    );
  const relayed = Array.from({ length: 13 }, (_, i) => answer(i));
  assert.deepEqual(relayed, [
    false,
    false,
    false,
    true,
    true,
    true,
    true,
    true,
    true,
    true,
    true,
    true,
    true,
  ]);
  // Unanswered offers expire with the sweep (offer timeout 120 s by default).
  swarms.announce(
    a,
    msg({ peer_id: id('peer-a'), offers: [{ offer: { type: 'offer', sdp: 's' }, offer_id: id('late') }] }),
    5,
    200,
  );
  swarms.sweep(400);
  assert.equal(
    swarms.answer(
      b,
      msg({
        peer_id: id('peer-b'),
        to_peer_id: id('peer-a'),
        offer_id: id('late'),
        answer: { type: 'answer', sdp: 'x' },
      }),
      400,
    ),
    false,
  );
});

test('property: a relayed offer is, byte for byte, the sender ids and JSON.stringify of its offer', async () => {
  const { default: fc } = await import('fast-check');
  const { asciiJson, jsonBinary } = await import('../../protocol/websocket/codec.ts');
  const { parseClientFrame } = await import('../../protocol/websocket/scan.ts');
  const rawId = fc.uint8Array({ minLength: 20, maxLength: 20 }).map((b) => Buffer.from(b));
  const offer = fc.oneof(
    fc.record({ type: fc.constant('offer'), sdp: fc.string({ maxLength: 100 }) }),
    fc.record({ sdp: fc.string({ unit: 'binary', maxLength: 30 }), extra: fc.jsonValue({ maxDepth: 2 }) }),
  );
  fc.assert(
    fc.property(
      rawId,
      rawId,
      fc.array(fc.tuple(offer, rawId), { minLength: 1, maxLength: 4 }),
      fc.boolean(),
      (ih, from, offers, spaced) => {
        const swarms = new WebRtcSwarms({ peerTimeout: 600 });
        // The frontend's path: the frame's bytes, parsed by parseClientFrame (fast path or not).
        const text = JSON.stringify(
          {
            action: 'announce',
            info_hash: ih.toString('latin1'),
            peer_id: from.toString('latin1'),
            offers: offers.map(([o, oid]) => ({ offer: o, offer_id: oid.toString('latin1') })),
          },
          null,
          spaced ? 1 : undefined,
        );
        const r = parseClientFrame(Buffer.from(text));
        assert.ok(r.ok && r.msg.action === 'announce');
        const inbox: string[] = [];
        for (let i = 0; i < offers.length; i++) {
          const to = swarms.connect((t) => inbox.push(t));
          const peer = Buffer.from(from);
          peer[0] ^= i + 1;
          const join = parseClientFrame(
            Buffer.from(
              JSON.stringify({
                action: 'announce',
                info_hash: ih.toString('latin1'),
                peer_id: peer.toString('latin1'),
              }),
            ),
          );
          assert.ok(join.ok && join.msg.action === 'announce');
          swarms.announce(to, join.msg, 5, 100);
        }
        swarms.announce(
          swarms.connect(() => {}),
          r.msg,
          10,
          100,
        );
        const want = offers.map(
          ([o, oid]) =>
            `{"action":"announce","info_hash":${jsonBinary(ih)},"peer_id":${jsonBinary(from)},"offer_id":${jsonBinary(oid)},"offer":${asciiJson(JSON.stringify(o))}}`,
        );
        assert.deepEqual(inbox.slice().sort(), want.slice().sort());
      },
    ),
    { numRuns: 300 },
  );
});

test('ceiling: a new peer or swarm is refused when full; held peers announce; a stop makes room', () => {
  const swarms = new WebRtcSwarms({ peerTimeout: 600, maxPeers: 2, maxSwarms: 1 });
  const c = [0, 1, 2].map(() => swarms.connect(() => {}));
  const other = id('other torrent');
  assert.ok(!(swarms.announce(c[0], msg({ peer_id: id('a') }), 5, 100) instanceof TrackerError));
  assert.equal(
    swarms.announce(c[1], msg({ peer_id: id('b'), info_hash: other }), 5, 100),
    Errors.trackerFull,
  );
  assert.ok(!(swarms.announce(c[1], msg({ peer_id: id('b') }), 5, 100) instanceof TrackerError));
  assert.equal(swarms.announce(c[2], msg({ peer_id: id('c') }), 5, 100), Errors.trackerFull);
  assert.deepEqual([swarms.stats().peers, swarms.stats().swarms], [2, 1]);
  // Held peers keep announcing (becoming a seeder, completing); a stop frees a place.
  assert.ok(
    !(
      swarms.announce(c[0], msg({ peer_id: id('a'), left: 0, event: 'completed' }), 5, 101) instanceof
      TrackerError
    ),
  );
  assert.ok(
    !(swarms.announce(c[1], msg({ peer_id: id('b'), event: 'stopped' }), 5, 101) instanceof TrackerError),
  );
  assert.ok(!(swarms.announce(c[2], msg({ peer_id: id('c') }), 5, 102) instanceof TrackerError));
  assert.deepEqual([swarms.stats().peers, swarms.stats().seeders], [2, 1]);
});
