import assert from 'node:assert/strict';
import { test } from 'node:test';
import { closedPort, fakePeer, until } from '../../test/helpers/bt-peer.ts';
import { parseIp } from '../core/address.ts';
import { ManualClock } from '../core/clock.ts';
import { AnnounceEvent, type AnnounceRequest } from '../core/types.ts';
import { ConnectableChecker, type ConnectableResult, endpointKey, isPrivateAddress } from './checker.ts';

const ip = (text: string) => parseIp(text)!.bytes;

test('private, loopback, link-local, multicast and reserved addresses are never checked by default', () => {
  for (const a of [
    '0.0.0.0',
    '10.1.2.3',
    '127.0.0.1',
    '100.64.0.1',
    '169.254.1.1',
    '172.16.0.1',
    '172.31.255.255',
    '192.168.1.1',
    '192.0.0.8',
    '198.18.0.1',
    '224.0.0.1',
    '255.255.255.255',
    '::',
    '::1',
    'fc00::1',
    'fd12:3456::1',
    'fe80::1',
    'ff02::1',
    '::ffff:0:1',
  ])
    assert.equal(isPrivateAddress(ip(a)), true, a);
  for (const a of [
    '1.1.1.1',
    '8.8.8.8',
    '100.128.0.1',
    '172.32.0.1',
    '192.169.0.1',
    '2001:db8::1',
    '2a00:1450::1',
  ])
    assert.equal(isPrivateAddress(ip(a)), false, a);
});

test("an endpoint's key is its compact record: address bytes, then the port big-endian", () => {
  const key = endpointKey(ip('1.2.3.4'), 0x1ae1);
  assert.deepEqual(Buffer.from(key, 'latin1'), Buffer.from([1, 2, 3, 4, 0x1a, 0xe1]));
  assert.equal(endpointKey(ip('::1'), 80).length, 18);
});

const quiet = { trace() {}, debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };

function announceOf(infoHash: Uint8Array, port: number): AnnounceRequest {
  return {
    infoHash,
    peerId: new Uint8Array(20),
    family: 4,
    ip: ip('127.0.0.1'),
    port,
    uploaded: 0,
    downloaded: 0,
    left: 0,
    event: AnnounceEvent.none,
    numWant: 50,
    wantPeerIds: false,
  };
}

test('a result stands for `interval` seconds, then the endpoint is checked again; results go to each member × torrent once', async () => {
  const clock = new ManualClock(1000);
  const hash = new Uint8Array(20).fill(9);
  const peer = await fakePeer('handshake', { infoHashes: [hash] });
  const recorded: ConnectableResult[] = [];
  const c = new ConnectableChecker({
    concurrency: 2,
    queue: 10,
    timeoutMs: 2000,
    interval: 60,
    allowPrivate: true,
    maxEndpoints: 100,
    clock,
    logger: quiet,
    record: (r) => recorded.push(r),
  });
  try {
    const req = announceOf(hash, peer.port);
    c.note(req, clock.now(), 7, 70);
    await until('the first check', () => c.stats().checks === 1);
    assert.equal(c.verdict(req.ip, req.port), true);
    assert.deepEqual(
      recorded.map((r) => [r.memberId, r.torrentId, r.connectable, r.ip, r.port, r.at]),
      [[7, 70, true, '127.0.0.1', peer.port, 1000]],
    );
    // Another torrent of the same member on the same endpoint: recorded from the result at once.
    const other = announceOf(new Uint8Array(20).fill(8), peer.port);
    c.note(other, clock.now(), 7, 71);
    assert.deepEqual(recorded.at(-1)?.torrentId, 71);
    // An announce not attributed (no member and torrent) records nothing.
    c.note(req, clock.now());
    assert.equal(recorded.length, 2);
    clock.advance(59);
    c.note(req, clock.now());
    assert.equal(c.stats().queued + c.stats().active, 0, 'not checked again within the interval');
    clock.advance(1);
    c.note(req, clock.now());
    // The old result stands while the endpoint is checked again.
    assert.equal(c.verdict(req.ip, req.port), true);
    await until('the second check', () => c.stats().checks === 2);
    assert.equal(peer.gauge.total, 2);
    // Both pairs are recorded again, with the new time.
    assert.deepEqual(
      recorded.slice(2).map((r) => [r.memberId, r.torrentId, r.at]),
      [
        [7, 70, 1060],
        [7, 71, 1060],
      ],
    );
    // `stopped` is never checked.
    c.note({ ...announceOf(hash, peer.port + 1), event: AnnounceEvent.stopped }, clock.now());
    assert.equal(c.stats().endpoints, 1);
  } finally {
    c.close();
    await peer.close();
  }
});

test('at most `maxEndpoints` endpoints are remembered: the oldest result is forgotten first', async () => {
  const clock = new ManualClock(1000);
  const hash = new Uint8Array(20).fill(5);
  const c = new ConnectableChecker({
    concurrency: 4,
    queue: 10,
    timeoutMs: 2000,
    interval: 3600,
    allowPrivate: true,
    maxEndpoints: 3,
    clock,
    logger: quiet,
  });
  const ports = [await closedPort(), await closedPort(), await closedPort(), await closedPort()];
  try {
    for (const p of ports.slice(0, 3)) c.note(announceOf(hash, p), clock.now());
    await until('three checks', () => c.stats().checks === 3);
    c.note(announceOf(hash, ports[3]), clock.now());
    assert.equal(c.stats().endpoints, 3);
    await until('four checks', () => c.stats().checks === 4);
    // The first endpoint's result was forgotten, the others stand.
    assert.equal(c.verdict(ip('127.0.0.1'), ports[0]), null);
    for (const p of ports.slice(1)) assert.equal(c.verdict(ip('127.0.0.1'), p), false);
  } finally {
    c.close();
  }
});
