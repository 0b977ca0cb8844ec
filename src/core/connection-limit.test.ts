import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type PeerAddress, parseIp } from './address.ts';
import { ConnectionLimit } from './connection-limit.ts';
import { TrustedProxies } from './forwarded.ts';
import { TrackerCounters } from './metrics.ts';

const ip = (s: string): PeerAddress => parseIp(s)!;

test('an address holds at most `max` connections; a release frees a slot; refusals are counted', () => {
  const counters = new TrackerCounters();
  const limit = new ConnectionLimit(2, counters);
  assert.ok(limit.acquire(ip('192.0.2.1')));
  assert.ok(limit.acquire(ip('192.0.2.1')));
  assert.equal(limit.acquire(ip('192.0.2.1')), false);
  assert.equal(counters.connectionsRefused, 1);
  assert.ok(limit.acquire(ip('192.0.2.2')), 'another address has its own count');
  assert.ok(limit.acquire(ip('::ffff:192.0.2.3')), 'an IPv4-mapped address counts as IPv4');
  assert.equal(limit.count(ip('192.0.2.3')), 1);
  limit.release(ip('192.0.2.1'));
  assert.equal(limit.count(ip('192.0.2.1')), 1);
  assert.ok(limit.acquire(ip('192.0.2.1')));
  // Releasing what was never counted changes nothing.
  limit.release(ip('198.51.100.1'));
  assert.equal(limit.count(ip('198.51.100.1')), 0);
});

test('an IPv6 /64 counts as one address', () => {
  const limit = new ConnectionLimit(2, new TrackerCounters());
  assert.ok(limit.acquire(ip('2001:db8:1:2::1')));
  assert.ok(limit.acquire(ip('2001:db8:1:2:ffff:ffff:ffff:ffff')));
  assert.equal(limit.acquire(ip('2001:db8:1:2:abcd::9')), false, 'same /64');
  assert.ok(limit.acquire(ip('2001:db8:1:3::1')), 'the next /64 is another address');
  limit.release(ip('2001:db8:1:2::77'));
  assert.equal(limit.count(ip('2001:db8:1:2::1')), 1);
});

test('trusted proxies are not counted: every client behind them shares their address', () => {
  const limit = new ConnectionLimit(1, new TrackerCounters(), new TrustedProxies(['10.0.0.1']));
  for (let i = 0; i < 5; i++) assert.ok(limit.acquire(ip('10.0.0.1')));
  limit.release(ip('10.0.0.1'));
  assert.equal(limit.count(ip('10.0.0.1')), 0);
  assert.ok(limit.acquire(ip('10.0.0.2')));
  assert.equal(limit.acquire(ip('10.0.0.2')), false);
});
