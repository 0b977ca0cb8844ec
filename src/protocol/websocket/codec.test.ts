import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { AnnounceEvent } from '../../core/types.ts';
import {
  encodeAnnounceResponse,
  encodeAnswer,
  encodeFailure,
  encodeOffer,
  encodeScrapeResponse,
  jsonBinary,
  parseClientMessage,
  toBinaryString,
  WS_LIMITS,
  type WsAnnounce,
  type WsOffer,
  type WsParseResult,
  WsReasons,
  type WsScrape,
} from './codec.ts';

// Ids as bittorrent-tracker makes them: `hex2bin(hex)`, i.e. Buffer#toString('binary').
const INFO_HASH = Buffer.from('d2474e86c95b19b8bcfdb92bc12c9d44667cfa36', 'hex');
const PEER_ID = Buffer.from('2d5757303230382d9f1c4a7e0b81ffe2004d7f80', 'hex');
const OTHER_PEER = Buffer.from('2d575730323038ff00112233445566778899aabb', 'hex');
const OFFER_ID_1 = Buffer.from('8a0c3c1f92e0aa7d00ff7f80102030405060e7a1', 'hex');
const OFFER_ID_2 = Buffer.from('0000000000000000000000000000000000000001', 'hex');
const bin = (b: Uint8Array) => Buffer.from(b).toString('binary');

const SDP_OFFER =
  'v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n' +
  'a=extmap-allow-mixed\r\na=msid-semantic: WMS\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n' +
  'c=IN IP4 0.0.0.0\r\na=candidate:1 1 udp 2113937151 192.168.1.20 54321 typ host generation 0\r\n' +
  'a=ice-ufrag:Vx3b\r\na=ice-pwd:Qo0kqk4zX1QFl7cS0E1e1Qx1\r\na=ice-options:trickle\r\n' +
  'a=fingerprint:sha-256 0F:6E:12:AB:CD:EF\r\na=setup:actpass\r\na=mid:0\r\na=sctp-port:5000\r\n' +
  'a=max-message-size:262144\r\n';
const SDP_ANSWER = SDP_OFFER.replace('a=setup:actpass', 'a=setup:active');

/** What websocket-tracker.js sends: `Object.assign({}, opts, {action, info_hash, peer_id})`. */
function clientAnnounce(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    numwant: 5,
    uploaded: 0,
    downloaded: 0,
    left: 1048576,
    event: 'started',
    action: 'announce',
    info_hash: bin(INFO_HASH),
    peer_id: bin(PEER_ID),
    offers: [
      { offer: { type: 'offer', sdp: SDP_OFFER }, offer_id: bin(OFFER_ID_1) },
      { offer: { type: 'offer', sdp: SDP_OFFER }, offer_id: bin(OFFER_ID_2) },
    ],
    ...extra,
  };
}

function clientAnswer(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    action: 'announce',
    info_hash: bin(INFO_HASH),
    peer_id: bin(PEER_ID),
    to_peer_id: bin(OTHER_PEER),
    answer: { type: 'answer', sdp: SDP_ANSWER },
    offer_id: bin(OFFER_ID_1),
    ...extra,
  };
}

function parse(o: unknown, limits?: Parameters<typeof parseClientMessage>[1]): WsParseResult {
  return parseClientMessage(JSON.stringify(o), limits);
}

function announceOf(r: WsParseResult): WsAnnounce {
  assert.ok(r.ok, r.ok ? '' : r.reason);
  assert.equal(r.msg.action, 'announce');
  return r.msg as WsAnnounce;
}

function scrapeOf(r: WsParseResult): WsScrape {
  assert.ok(r.ok, r.ok ? '' : r.reason);
  assert.equal(r.msg.action, 'scrape');
  return r.msg as WsScrape;
}

function rejects(o: unknown, reason: string, limits?: Parameters<typeof parseClientMessage>[1]): void {
  const r = typeof o === 'string' ? parseClientMessage(o, limits) : parse(o, limits);
  assert.deepEqual(r, { ok: false, reason }, `for ${typeof o === 'string' ? o : JSON.stringify(o)}`);
}

const REASONS = new Set<string>(Object.values(WsReasons));
const isCount = (n: unknown) => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
const isId = (b: unknown) => Buffer.isBuffer(b) && b.length === 20;
const isSdpObject = (v: unknown) =>
  typeof v === 'object' && v !== null && typeof (v as { sdp: unknown }).sdp === 'string';
/** The offer object a relay carries (its JSON text is ASCII). */
const offerOf = (o: WsOffer): unknown => {
  const text = Buffer.from(o.offerJson).toString('latin1');
  assert.equal(Buffer.byteLength(text), text.length, 'offer JSON is ASCII');
  return JSON.parse(text);
};

/** The invariant of every result: a static reason, or a message whose every field has its type. */
function assertWellTyped(r: WsParseResult): void {
  assert.equal(typeof r, 'object');
  if (!r.ok) {
    assert.ok(REASONS.has(r.reason), r.reason);
    return;
  }
  const m = r.msg;
  if (m.action === 'scrape') {
    assert.ok(Array.isArray(m.infoHashes));
    assert.ok(m.infoHashes.length <= WS_LIMITS.maxInfoHashes);
    for (const h of m.infoHashes) assert.ok(isId(h));
    return;
  }
  assert.equal(m.action, 'announce');
  assert.ok(isId(m.infoHash) && isId(m.peerId));
  assert.ok(([0, 1, 2, 3] as number[]).includes(m.event));
  assert.ok(isCount(m.uploaded) && isCount(m.downloaded) && isCount(m.left));
  assert.ok(m.numwant === undefined || isCount(m.numwant));
  if (m.offers !== undefined) {
    assert.ok(Array.isArray(m.offers) && m.offers.length <= WS_LIMITS.maxOffers);
    for (const o of m.offers) assert.ok(isId(o.offerId) && isSdpObject(offerOf(o)));
  }
  if (m.answer !== undefined)
    assert.ok(isId(m.answer.toPeerId) && isId(m.answer.offerId) && isSdpObject(m.answer.answer));
}

// ---- Real-shaped client messages ----

test('announce with offers, as bittorrent-tracker sends it', () => {
  const sent = clientAnnounce();
  const m = announceOf(parse(sent));
  assert.ok(m.infoHash.equals(INFO_HASH));
  assert.ok(m.peerId.equals(PEER_ID));
  assert.equal(m.event, AnnounceEvent.started);
  assert.deepEqual([m.uploaded, m.downloaded, m.left, m.numwant], [0, 0, 1048576, 5]);
  assert.equal(m.answer, undefined);
  assert.equal(m.offers?.length, 2);
  assert.ok(m.offers[0].offerId.equals(OFFER_ID_1));
  assert.ok(m.offers[1].offerId.equals(OFFER_ID_2));
  // Relayed verbatim: the client's object, unchanged.
  assert.deepEqual(offerOf(m.offers[0]), { type: 'offer', sdp: SDP_OFFER });
  // Unknown fields (trackerid) are ignored.
  assert.ok(parse(clientAnnounce({ trackerid: 'abc' })).ok);
});

test('announce events, counters and the unknown-left rule', () => {
  const ev = (event: unknown) => announceOf(parse(clientAnnounce({ event }))).event;
  assert.equal(ev('started'), AnnounceEvent.started);
  assert.equal(ev('completed'), AnnounceEvent.completed);
  assert.equal(ev('stopped'), AnnounceEvent.stopped);
  assert.equal(ev('update'), AnnounceEvent.none);
  assert.equal(ev('paused'), AnnounceEvent.none);
  assert.equal(ev('empty'), AnnounceEvent.none);
  assert.equal(ev(null), AnnounceEvent.none);
  assert.equal(ev(undefined), AnnounceEvent.none);

  // `stopped` is sent without offers (and without a generated numwant, but with opts.numwant).
  const stop = announceOf(parse({ ...clientAnnounce({ event: 'stopped' }), offers: undefined }));
  assert.equal(stop.offers, undefined);
  assert.ok(!('offers' in stop));

  // A magnet without metadata: webtorrent's left is NaN, which JSON writes as null → leecher.
  assert.equal(announceOf(parse(clientAnnounce({ left: null }))).left, 1);
  assert.equal(announceOf(parse(clientAnnounce({ left: undefined }))).left, 1);
  assert.equal(announceOf(parse(clientAnnounce({ left: 0 }))).left, 0);
  // Large counters up to 2^53 - 1.
  const big = announceOf(
    parse(clientAnnounce({ uploaded: Number.MAX_SAFE_INTEGER, downloaded: 2 ** 40, left: 2 ** 50 })),
  );
  assert.deepEqual([big.uploaded, big.downloaded, big.left], [Number.MAX_SAFE_INTEGER, 2 ** 40, 2 ** 50]);
  // Absent counters and numwant.
  const bare = announceOf(parse({ action: 'announce', info_hash: bin(INFO_HASH), peer_id: bin(PEER_ID) }));
  assert.deepEqual(
    { ...bare, infoHash: null, peerId: null },
    { action: 'announce', infoHash: null, peerId: null, event: 0, uploaded: 0, downloaded: 0, left: 1 },
  );
  // numwant is not clamped here; -0 is 0; an empty offers array stays an empty array.
  assert.equal(announceOf(parse(clientAnnounce({ numwant: 100000 }))).numwant, 100000);
  const negZero = JSON.stringify(clientAnnounce()).replace('"uploaded":0', '"uploaded":-0');
  assert.ok(Object.is(announceOf(parseClientMessage(negZero)).uploaded, 0));
  assert.deepEqual(announceOf(parse(clientAnnounce({ numwant: 0, offers: [] }))).offers, []);
});

test('answer message, as bittorrent-tracker sends it', () => {
  const m = announceOf(parse(clientAnswer()));
  assert.ok(m.infoHash.equals(INFO_HASH) && m.peerId.equals(PEER_ID));
  assert.equal(m.event, AnnounceEvent.none);
  assert.equal(m.numwant, undefined);
  assert.equal(m.offers, undefined);
  assert.ok(m.answer);
  assert.ok(m.answer.toPeerId.equals(OTHER_PEER));
  assert.ok(m.answer.offerId.equals(OFFER_ID_1));
  assert.deepEqual(m.answer.answer, { type: 'answer', sdp: SDP_ANSWER });
  // with a trackerid, as a client that got a `tracker id` sends it
  assert.ok(parse(clientAnswer({ trackerid: 'x' })).ok);
});

test('scrape: one info hash, many, none', () => {
  const one = scrapeOf(parse({ action: 'scrape', info_hash: bin(INFO_HASH) }));
  assert.equal(one.infoHashes.length, 1);
  assert.ok(one.infoHashes[0].equals(INFO_HASH));
  const many = scrapeOf(parse({ action: 'scrape', info_hash: [bin(INFO_HASH), bin(OFFER_ID_1)] }));
  assert.deepEqual(many.infoHashes, [INFO_HASH, OFFER_ID_1]);
  assert.deepEqual(scrapeOf(parse({ action: 'scrape' })).infoHashes, []);
  assert.deepEqual(scrapeOf(parse({ action: 'scrape', info_hash: null })).infoHashes, []);
  assert.deepEqual(scrapeOf(parse({ action: 'scrape', info_hash: [] })).infoHashes, []);
  const max = Array.from({ length: WS_LIMITS.maxInfoHashes }, () => bin(INFO_HASH));
  assert.equal(scrapeOf(parse({ action: 'scrape', info_hash: max })).infoHashes.length, max.length);
  assert.equal(
    scrapeOf(parse({ action: 'scrape', info_hash: max.slice(0, 3) }, { maxInfoHashes: 3 })).infoHashes.length,
    3,
  );
});

// ---- Rejections ----

test('every rejection, with its reason', () => {
  const R = WsReasons;
  // Not JSON, not an object, no or unknown action.
  rejects('', R.invalidJson);
  rejects('{"action":"announce"', R.invalidJson);
  rejects("{'action':'scrape'}", R.invalidJson);
  rejects('null', R.notObject);
  rejects('[1,2]', R.notObject);
  rejects('"announce"', R.notObject);
  rejects('42', R.notObject);
  rejects({}, R.missingAction);
  rejects({ action: null }, R.missingAction);
  rejects({ action: 'connect' }, R.invalidAction);
  rejects({ action: 'Announce' }, R.invalidAction);
  rejects({ action: 1 }, R.invalidAction);
  rejects({ action: ['announce'] }, R.invalidAction);
  assert.deepEqual(parseClientMessage(42 as unknown as string), { ok: false, reason: R.notText });

  // Ids.
  rejects(clientAnnounce({ info_hash: undefined }), R.missingInfoHash);
  rejects(clientAnnounce({ info_hash: null }), R.missingInfoHash);
  rejects(clientAnnounce({ info_hash: 'short' }), R.invalidInfoHash);
  rejects(clientAnnounce({ info_hash: [...INFO_HASH] }), R.invalidInfoHash);
  rejects(clientAnnounce({ peer_id: undefined }), R.missingPeerId);
  rejects(clientAnnounce({ peer_id: 12 }), R.invalidPeerId);
  rejects(clientAnnounce({ peer_id: 'Ā'.repeat(20) }), R.invalidPeerId);

  // Event, counters, numwant.
  rejects(clientAnnounce({ event: 'start' }), R.invalidEvent);
  rejects(clientAnnounce({ event: 2 }), R.invalidEvent);
  rejects(clientAnnounce({ event: '' }), R.invalidEvent);
  for (const bad of [-1, 1.5, '10', true, {}, [], 2 ** 53, 1e300])
    for (const key of ['uploaded', 'downloaded', 'left'])
      rejects(clientAnnounce({ [key]: bad }), R.invalidNumber);
  for (const bad of [0.5, -0.5, '5', false, 2 ** 53, -(2 ** 53)])
    rejects(clientAnnounce({ numwant: bad }), R.invalidNumWant);
  // A negative numwant means the default, as over HTTP and UDP (numwant=-1 is common there).
  for (const negative of [-1, -50])
    assert.equal(announceOf(parse(clientAnnounce({ numwant: negative }))).numwant, undefined);
  // Huge exponents become Infinity in JSON.parse: refused too.
  rejects(JSON.stringify(clientAnnounce()).replace('"uploaded":0', '"uploaded":1e999'), R.invalidNumber);

  // Offers.
  rejects(clientAnnounce({ offers: {} }), R.invalidOffers);
  rejects(clientAnnounce({ offers: 'x' }), R.invalidOffers);
  const offer = { offer: { type: 'offer', sdp: 'v=0' }, offer_id: bin(OFFER_ID_1) };
  rejects(clientAnnounce({ offers: Array(WS_LIMITS.maxOffers + 1).fill(offer) }), R.tooManyOffers);
  assert.ok(parse(clientAnnounce({ offers: Array(WS_LIMITS.maxOffers).fill(offer) })).ok);
  rejects(clientAnnounce({ offers: Array(3).fill(offer) }), R.tooManyOffers, { maxOffers: 2 });
  rejects(clientAnnounce({ offers: [null] }), R.invalidOffer);
  rejects(clientAnnounce({ offers: [[offer]] }), R.invalidOffer);
  rejects(clientAnnounce({ offers: [{ offer_id: bin(OFFER_ID_1) }] }), R.invalidOffer);
  rejects(clientAnnounce({ offers: [{ ...offer, offer: 'v=0' }] }), R.invalidOffer);
  rejects(clientAnnounce({ offers: [{ ...offer, offer: { type: 'offer' } }] }), R.invalidOffer);
  rejects(clientAnnounce({ offers: [{ ...offer, offer: { type: 'offer', sdp: 7 } }] }), R.invalidOffer);
  rejects(clientAnnounce({ offers: [offer, { ...offer, offer_id: undefined }] }), R.invalidOfferId);
  rejects(clientAnnounce({ offers: [{ ...offer, offer_id: OFFER_ID_1.toString('hex') }] }), R.invalidOfferId);
  const bigSdp = { ...offer, offer: { type: 'offer', sdp: 'a'.repeat(WS_LIMITS.maxSdpBytes + 1) } };
  rejects(clientAnnounce({ offers: [bigSdp] }), R.sdpTooLarge);
  const maxSdp = { ...offer, offer: { type: 'offer', sdp: 'a'.repeat(WS_LIMITS.maxSdpBytes) } };
  assert.ok(parse(clientAnnounce({ offers: [maxSdp] })).ok);
  // The sdp limit counts UTF-8 bytes.
  rejects(clientAnnounce({ offers: [{ ...offer, offer: { sdp: 'é'.repeat(6) } }] }), R.sdpTooLarge, {
    maxSdpBytes: 11,
  });

  // Answers.
  rejects(clientAnswer({ answer: 'v=0' }), R.invalidAnswer);
  rejects(clientAnswer({ answer: [] }), R.invalidAnswer);
  rejects(clientAnswer({ answer: { type: 'answer' } }), R.invalidAnswer);
  rejects(clientAnswer({ answer: { sdp: 'a'.repeat(WS_LIMITS.maxSdpBytes + 1) } }), R.sdpTooLarge);
  rejects(clientAnswer({ to_peer_id: undefined }), R.missingToPeerId);
  rejects(clientAnswer({ to_peer_id: 'x' }), R.invalidToPeerId);
  rejects(clientAnswer({ offer_id: undefined }), R.missingOfferId);
  rejects(clientAnswer({ offer_id: 'Ā'.repeat(20) }), R.invalidOfferId);
  // Checked when present even without an answer.
  rejects(clientAnnounce({ to_peer_id: 'x' }), R.invalidToPeerId);
  rejects(clientAnnounce({ offer_id: 5 }), R.invalidOfferId);

  // Scrape.
  rejects({ action: 'scrape', info_hash: 'short' }, R.invalidInfoHash);
  rejects({ action: 'scrape', info_hash: 5 }, R.invalidInfoHash);
  rejects({ action: 'scrape', info_hash: { a: bin(INFO_HASH) } }, R.invalidInfoHash);
  rejects({ action: 'scrape', info_hash: [bin(INFO_HASH), null] }, R.invalidInfoHash);
  rejects({ action: 'scrape', info_hash: [bin(INFO_HASH), INFO_HASH.toString('hex')] }, R.invalidInfoHash);
  const tooMany = Array.from({ length: WS_LIMITS.maxInfoHashes + 1 }, () => bin(INFO_HASH));
  rejects({ action: 'scrape', info_hash: tooMany }, R.tooManyInfoHashes);
  rejects({ action: 'scrape', info_hash: tooMany.slice(0, 4) }, R.tooManyInfoHashes, { maxInfoHashes: 3 });
});

test('binary strings: every byte value, and nothing else', () => {
  const withId = (id: unknown) => parse(clientAnnounce({ info_hash: id }));
  for (const c of [0x00, 0x7f, 0x80, 0xff]) {
    const s = String.fromCharCode(c).repeat(20);
    const m = announceOf(withId(s));
    assert.ok(m.infoHash.equals(Buffer.alloc(20, c)), `0x${c.toString(16)}`);
  }
  // Mixed, with JSON's escaped characters (", \, controls).
  const mixed = '\x00"\\\n\x7f\x80\xff\x01\x1f abcdefghij';
  assert.equal(mixed.length, 20);
  assert.ok(announceOf(withId(mixed)).infoHash.equals(Buffer.from(mixed, 'latin1')));
  // One code unit above 0xff anywhere: refused (Buffer.from would silently truncate it).
  rejects(clientAnnounce({ info_hash: `Ā${'a'.repeat(19)}` }), WsReasons.invalidInfoHash);
  rejects(clientAnnounce({ info_hash: `${'a'.repeat(19)}\u0100` }), WsReasons.invalidInfoHash);
  rejects(clientAnnounce({ info_hash: `${'a'.repeat(19)}\uffff` }), WsReasons.invalidInfoHash);
  // A surrogate pair is two code units, both above 0xff.
  rejects(clientAnnounce({ info_hash: `${'a'.repeat(18)}😀` }), WsReasons.invalidInfoHash);
  // Length: 19 and 21 refused; 40 hex characters (hex, not binary) refused.
  rejects(clientAnnounce({ info_hash: 'a'.repeat(19) }), WsReasons.invalidInfoHash);
  rejects(clientAnnounce({ info_hash: 'a'.repeat(21) }), WsReasons.invalidInfoHash);
  rejects(clientAnnounce({ info_hash: INFO_HASH.toString('hex') }), WsReasons.invalidInfoHash);
  rejects(clientAnnounce({ peer_id: PEER_ID.toString('hex') }), WsReasons.invalidPeerId);
  rejects({ action: 'scrape', info_hash: 'a'.repeat(21) }, WsReasons.invalidInfoHash);
  rejects({ action: 'scrape', info_hash: ['a'.repeat(19)] }, WsReasons.invalidInfoHash);
});

// ---- Size ----

test('an oversized message is refused before JSON.parse', (t) => {
  const spy = t.mock.method(JSON, 'parse');
  const huge = JSON.stringify(clientAnnounce({ pad: 'x'.repeat(WS_LIMITS.maxBytes) }));
  const r = parseClientMessage(huge);
  const calls = spy.mock.callCount();
  // Not JSON at all, only too big: still the size reason, never a parse.
  const garbage = parseClientMessage('{'.repeat(WS_LIMITS.maxBytes + 1));
  const small = parseClientMessage('{', { maxBytes: 0 });
  const callsAfter = spy.mock.callCount();
  spy.mock.restore();
  assert.deepEqual(r, { ok: false, reason: WsReasons.tooLarge });
  assert.deepEqual(garbage, { ok: false, reason: WsReasons.tooLarge });
  assert.deepEqual(small, { ok: false, reason: WsReasons.tooLarge });
  assert.equal(calls, 0);
  assert.equal(callsAfter, 0);
});

test('the size limit counts UTF-8 bytes, inclusive', () => {
  const base = JSON.stringify({ action: 'scrape', pad: '' });
  const at = (n: number, ch = 'x') => base.replace('"pad":""', `"pad":"${ch.repeat(n)}"`);
  const max = 1000;
  const fits = at(max - base.length);
  assert.equal(Buffer.byteLength(fits), max);
  assert.ok(parseClientMessage(fits, { maxBytes: max }).ok);
  assert.deepEqual(parseClientMessage(at(max - base.length + 1), { maxBytes: max }), {
    ok: false,
    reason: WsReasons.tooLarge,
  });
  // 500 'é' are 500 code units but 1000 bytes.
  const accented = at(500, 'é');
  assert.ok(accented.length < max && Buffer.byteLength(accented) > max);
  assert.deepEqual(parseClientMessage(accented, { maxBytes: max }).ok, false);
  assert.ok(parseClientMessage(accented, { maxBytes: Buffer.byteLength(accented) }).ok);
  // A real-shaped announce with 20 offers of ~600-byte sdp fits the default limit comfortably.
  const offers = Array.from({ length: 20 }, () => ({
    offer: { type: 'offer', sdp: SDP_OFFER },
    offer_id: bin(OFFER_ID_1),
  }));
  assert.ok(parse(clientAnnounce({ offers })).ok);
});

// ---- Encoders ----

test('encoders: exact JSON', () => {
  const ih = bin(INFO_HASH);
  assert.deepEqual(
    JSON.parse(encodeAnnounceResponse({ infoHash: INFO_HASH, complete: 3, incomplete: 7, interval: 120 })),
    { action: 'announce', interval: 120, info_hash: ih, complete: 3, incomplete: 7 },
  );
  const full = encodeAnnounceResponse({
    infoHash: INFO_HASH,
    complete: 0,
    incomplete: 1,
    interval: 120,
    minInterval: 60,
    warning: 'slow down',
  });
  // Key order as bittorrent-tracker's server writes it.
  assert.deepEqual(Object.keys(JSON.parse(full)), [
    'action',
    'interval',
    'min interval',
    'info_hash',
    'complete',
    'incomplete',
    'warning message',
  ]);
  assert.equal(JSON.parse(full)['warning message'], 'slow down');
  assert.equal(JSON.parse(full)['min interval'], 60);

  const offer = { type: 'offer', sdp: SDP_OFFER };
  assert.deepEqual(
    JSON.parse(encodeOffer({ infoHash: INFO_HASH, fromPeerId: PEER_ID, offerId: OFFER_ID_1, offer })),
    {
      action: 'announce',
      info_hash: ih,
      peer_id: bin(PEER_ID),
      offer_id: bin(OFFER_ID_1),
      offer,
    },
  );
  const answer = { type: 'answer', sdp: SDP_ANSWER };
  assert.deepEqual(
    JSON.parse(encodeAnswer({ infoHash: INFO_HASH, fromPeerId: OTHER_PEER, offerId: OFFER_ID_2, answer })),
    { action: 'announce', info_hash: ih, peer_id: bin(OTHER_PEER), offer_id: bin(OFFER_ID_2), answer },
  );

  const scrape = JSON.parse(
    encodeScrapeResponse([
      { infoHash: INFO_HASH, complete: 1, incomplete: 2, downloaded: 3 },
      { infoHash: OFFER_ID_1, complete: 4, incomplete: 5, downloaded: 6 },
    ]),
  );
  assert.deepEqual(Object.keys(scrape), ['action', 'files']);
  assert.equal(scrape.action, 'scrape');
  assert.deepEqual(scrape.files[ih], { complete: 1, incomplete: 2, downloaded: 3 });
  assert.deepEqual(scrape.files[bin(OFFER_ID_1)], { complete: 4, incomplete: 5, downloaded: 6 });
  assert.deepEqual(JSON.parse(encodeScrapeResponse([])), { action: 'scrape', files: {} });

  assert.deepEqual(JSON.parse(encodeFailure('invalid info_hash')), { 'failure reason': 'invalid info_hash' });
  assert.deepEqual(JSON.parse(encodeFailure('nope', { action: 'announce', infoHash: INFO_HASH })), {
    'failure reason': 'nope',
    action: 'announce',
    info_hash: ih,
  });
  assert.deepEqual(JSON.parse(encodeFailure('nope', { action: 'scrape' })), {
    'failure reason': 'nope',
    action: 'scrape',
  });
  // A subarray of a larger buffer encodes only its own bytes.
  const big = Buffer.concat([Buffer.alloc(5, 0xee), INFO_HASH, Buffer.alloc(5, 0xdd)]);
  assert.equal(toBinaryString(new Uint8Array(big.buffer, big.byteOffset + 5, 20)), ih);
});

test('all 256 byte values survive encode → JSON (→ UTF-8 frame) → parse', () => {
  const all = Buffer.from(Array.from({ length: 260 }, (_, i) => i % 256));
  for (let k = 0; k < 13; k++) {
    const id = all.subarray(k * 20, k * 20 + 20);
    const next = all.subarray(((k + 1) % 13) * 20, ((k + 1) % 13) * 20 + 20);
    // The tracker relays an offer; the receiving client answers with the ids it got.
    const relayed = encodeOffer({
      infoHash: id,
      fromPeerId: next,
      offerId: id,
      offer: { type: 'offer', sdp: 'v=0' },
    });
    // A WebSocket text frame is UTF-8 on the wire.
    const wire = Buffer.from(relayed, 'utf8').toString('utf8');
    assert.equal(wire, relayed);
    const got = JSON.parse(wire);
    const reply = JSON.stringify({
      action: 'announce',
      info_hash: got.info_hash,
      peer_id: got.info_hash,
      to_peer_id: got.peer_id,
      answer: { type: 'answer', sdp: 'v=0' },
      offer_id: got.offer_id,
    });
    const m = announceOf(parseClientMessage(Buffer.from(reply, 'utf8').toString('utf8')));
    assert.ok(m.infoHash.equals(id) && m.peerId.equals(id));
    assert.ok(m.answer?.toPeerId.equals(next) && m.answer.offerId.equals(id));
    // Scrape reply keys and failure info_hash too.
    const files = JSON.parse(
      encodeScrapeResponse([{ infoHash: id, complete: 1, incomplete: 0, downloaded: 0 }]),
    ).files;
    assert.ok(scrapeOf(parse({ action: 'scrape', info_hash: Object.keys(files) })).infoHashes[0].equals(id));
    const failure = JSON.parse(encodeFailure('x', { action: 'announce', infoHash: id }));
    assert.ok(Buffer.from(failure.info_hash, 'latin1').equals(id));
    const resp = JSON.parse(
      encodeAnnounceResponse({ infoHash: id, complete: 0, incomplete: 0, interval: 1 }),
    );
    assert.equal(resp.info_hash, id.toString('binary'));
  }
});

// ---- Properties and fuzz ----

const binaryId = fc
  .uint8Array({ minLength: 20, maxLength: 20 })
  .map((b) => Buffer.from(b).toString('latin1'));
const counter = fc.oneof(fc.nat(), fc.maxSafeNat());
const sdpObject = (type: string) =>
  fc.record({ type: fc.constant(type), sdp: fc.string({ maxLength: 200 }) });

const validAnnounce = fc.record(
  {
    action: fc.constant('announce'),
    info_hash: binaryId,
    peer_id: binaryId,
    event: fc.constantFrom('started', 'completed', 'stopped', 'update', null),
    uploaded: counter,
    downloaded: counter,
    left: fc.option(counter),
    numwant: counter,
    offers: fc.array(fc.record({ offer: sdpObject('offer'), offer_id: binaryId }), { maxLength: 5 }),
    trackerid: fc.string(),
  },
  { requiredKeys: ['action', 'info_hash', 'peer_id'] },
);
const validAnswer = fc.record({
  action: fc.constant('announce'),
  info_hash: binaryId,
  peer_id: binaryId,
  to_peer_id: binaryId,
  answer: sdpObject('answer'),
  offer_id: binaryId,
});
const validScrape = fc.record(
  { action: fc.constant('scrape'), info_hash: fc.oneof(binaryId, fc.array(binaryId, { maxLength: 10 })) },
  { requiredKeys: ['action'] },
);
const validMessage = fc.oneof(validAnnounce, validAnswer, validScrape);

const EVENTS: Record<string, number> = { started: 2, completed: 1, stopped: 3, update: 0 };

test('property: every valid client message parses to exactly its fields', () => {
  fc.assert(
    fc.property(validMessage, (sent) => {
      const r = parse(sent);
      // What the tracker sees (fast-check may build null-prototype objects).
      sent = JSON.parse(JSON.stringify(sent));
      assertWellTyped(r);
      assert.ok(r.ok, r.ok ? '' : r.reason);
      const s = sent as Record<string, unknown>;
      if (r.msg.action === 'scrape') {
        const want = s.info_hash === undefined ? [] : ([] as string[]).concat(s.info_hash as string);
        assert.deepEqual(
          r.msg.infoHashes.map((b) => b.toString('latin1')),
          want,
        );
        return;
      }
      const m = r.msg;
      assert.equal(m.infoHash.toString('latin1'), s.info_hash);
      assert.equal(m.peerId.toString('latin1'), s.peer_id);
      assert.equal(m.event, typeof s.event === 'string' ? EVENTS[s.event] : 0);
      assert.equal(m.uploaded, s.uploaded ?? 0);
      assert.equal(m.downloaded, s.downloaded ?? 0);
      assert.equal(m.left, s.left ?? 1);
      assert.equal(m.numwant, s.numwant);
      const offers = s.offers as { offer: unknown; offer_id: string }[] | undefined;
      assert.deepEqual(
        m.offers?.map((o) => [o.offerId.toString('latin1'), offerOf(o)]),
        offers?.map((o) => [o.offer_id, o.offer]),
      );
      // Relayed as JSON.stringify writes the object, in ASCII.
      assert.deepEqual(
        m.offers?.map((o) => Buffer.from(o.offerJson).toString('latin1')),
        offers?.map((o) =>
          JSON.stringify(o.offer).replace(
            /[\u0080-\uffff]/g,
            (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
          ),
        ),
      );
      if (s.answer === undefined) assert.equal(m.answer, undefined);
      else {
        assert.equal(m.answer?.toPeerId.toString('latin1'), s.to_peer_id);
        assert.equal(m.answer?.offerId.toString('latin1'), s.offer_id);
        assert.deepEqual(m.answer?.answer, s.answer);
      }
    }),
    { numRuns: 500 },
  );
});

test('fuzz: random strings never throw', () => {
  fc.assert(
    fc.property(
      fc.oneof(
        fc.string({ maxLength: 300 }),
        fc.string({ unit: 'binary', maxLength: 300 }),
        fc.string({ unit: fc.constantFrom(...'{}[]":,0123456789-.eE \\tnulrfasconcepti_'), maxLength: 300 }),
      ),
      (s) => assertWellTyped(parseClientMessage(s)),
    ),
    { numRuns: 3000 },
  );
});

test('fuzz: random JSON values never throw', () => {
  const actionish = fc.oneof(fc.constantFrom('announce', 'scrape'), fc.jsonValue({ maxDepth: 2 }));
  fc.assert(
    fc.property(
      fc.oneof(
        fc.jsonValue({ maxDepth: 4 }),
        fc.dictionary(
          fc.constantFrom(
            'action',
            'info_hash',
            'peer_id',
            'offers',
            'answer',
            'to_peer_id',
            'offer_id',
            'left',
          ),
          fc.oneof(binaryId, fc.jsonValue({ maxDepth: 3 })),
        ),
        fc.record({ action: actionish, info_hash: fc.oneof(binaryId, fc.jsonValue({ maxDepth: 2 })) }),
      ),
      (v) => assertWellTyped(parse(v)),
    ),
    { numRuns: 3000 },
  );
});

const KEYS = [
  'action',
  'info_hash',
  'peer_id',
  'event',
  'uploaded',
  'downloaded',
  'left',
  'numwant',
  'offers',
  'answer',
  'to_peer_id',
  'offer_id',
];
const junk = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.string({ unit: 'binary', minLength: 19, maxLength: 21 }),
  fc.string({ minLength: 20, maxLength: 20 }),
  fc.double(),
  fc.integer({ min: -2, max: 2 }),
);
type Mutation = { kind: 'delete' | 'set' | 'offer'; key: string; value: unknown; index: number };
const mutation: fc.Arbitrary<Mutation> = fc.record({
  kind: fc.constantFrom('delete', 'set', 'offer'),
  key: fc.oneof(
    fc.constantFrom(...KEYS),
    fc.constantFrom('offer', 'sdp', 'type'),
    fc.string({ maxLength: 5 }),
  ),
  value: junk,
  index: fc.nat(6),
});

function mutate(msg: unknown, muts: Mutation[]): unknown {
  const o = structuredClone(msg) as Record<string, unknown>;
  for (const m of muts) {
    if (m.kind === 'delete') delete o[m.key];
    else if (m.kind === 'set') o[m.key] = m.value;
    else {
      // Reach into an offer or the answer.
      const offers = o.offers;
      const target = Array.isArray(offers) && offers.length > 0 ? offers[m.index % offers.length] : o.answer;
      if (typeof target === 'object' && target !== null) {
        const t = target as Record<string, unknown>;
        const inner = t.offer;
        if (m.index % 2 === 0 && typeof inner === 'object' && inner !== null)
          (inner as Record<string, unknown>)[m.key] = m.value;
        else t[m.key] = m.value;
      }
    }
  }
  return o;
}

test('fuzz: mutations of valid messages never throw and stay well typed', () => {
  fc.assert(
    fc.property(validMessage, fc.array(mutation, { minLength: 1, maxLength: 4 }), (msg, muts) =>
      assertWellTyped(parse(mutate(msg, muts))),
    ),
    { numRuns: 3000 },
  );
});

test('fuzz: byte-level edits of valid JSON text never throw', () => {
  const edit = fc.record({
    at: fc.nat(),
    del: fc.nat(4),
    ins: fc.string({ unit: 'binary', maxLength: 4 }),
  });
  fc.assert(
    fc.property(validMessage, fc.array(edit, { minLength: 1, maxLength: 3 }), (msg, edits) => {
      let s = JSON.stringify(msg);
      for (const e of edits) {
        const at = e.at % (s.length + 1);
        s = s.slice(0, at) + e.ins + s.slice(at + e.del);
      }
      assertWellTyped(parseClientMessage(s));
      assertWellTyped(
        parseClientMessage(s, { maxBytes: 200, maxOffers: 1, maxSdpBytes: 10, maxInfoHashes: 1 }),
      );
    }),
    { numRuns: 3000 },
  );
});

test('property: encoders write what JSON.stringify of the message object would, in ASCII', () => {
  const id = fc.uint8Array({ minLength: 20, maxLength: 20 });
  const ascii = (json: string) =>
    json.replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  const count = fc.oneof(fc.nat(), fc.maxSafeNat(), fc.double());
  fc.assert(
    fc.property(
      fc.record(
        {
          infoHash: id,
          complete: count,
          incomplete: count,
          interval: count,
          minInterval: count,
          warning: fc.string({ unit: 'binary', maxLength: 20 }),
        },
        { requiredKeys: ['infoHash', 'complete', 'incomplete', 'interval'] },
      ),
      id,
      id,
      fc.jsonValue({ maxDepth: 3 }),
      (r, from, offerId, offer) => {
        const o: Record<string, unknown> = { action: 'announce', interval: r.interval };
        if (r.minInterval !== undefined) o['min interval'] = r.minInterval;
        o.info_hash = bin(r.infoHash);
        o.complete = r.complete;
        o.incomplete = r.incomplete;
        if (r.warning !== undefined) o['warning message'] = r.warning;
        assert.equal(encodeAnnounceResponse(r), ascii(JSON.stringify(o)));
        // Ids as before (jsonBinary also escapes DEL), the offer as JSON.stringify writes it.
        const relayed = `{"action":"announce","info_hash":${jsonBinary(r.infoHash)},"peer_id":${jsonBinary(from)},"offer_id":${jsonBinary(offerId)},"offer":${ascii(JSON.stringify(offer))}}`;
        assert.deepEqual(JSON.parse(relayed), {
          action: 'announce',
          info_hash: bin(r.infoHash),
          peer_id: bin(from),
          offer_id: bin(offerId),
          offer: JSON.parse(JSON.stringify(offer)),
        });
        assert.equal(encodeOffer({ infoHash: r.infoHash, fromPeerId: from, offerId, offer }), relayed);
        const offerJson = Buffer.from(ascii(JSON.stringify(offer)), 'latin1');
        assert.equal(encodeOffer({ infoHash: r.infoHash, fromPeerId: from, offerId, offerJson }), relayed);
      },
    ),
    { numRuns: 1000 },
  );
});
