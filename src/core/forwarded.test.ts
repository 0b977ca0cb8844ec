import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatIp, type PeerAddress, parseIp } from './address.ts';
import { TrustedProxies } from './forwarded.ts';

const ip = (s: string): PeerAddress => parseIp(s)!;
const client = (p: TrustedProxies, peer: string, xff: string | null) =>
  formatIp(p.client(ip(peer), xff).bytes);

test('a peer that is not a trusted proxy is the client, whatever X-Forwarded-For says', () => {
  const p = new TrustedProxies(['10.0.0.1']);
  assert.equal(p.trusts(ip('10.0.0.2')), false);
  assert.equal(client(p, '10.0.0.2', '9.9.9.9'), '10.0.0.2');
  assert.equal(client(new TrustedProxies([]), '10.0.0.2', '9.9.9.9'), '10.0.0.2');
});

test('behind one proxy the client is the entry the proxy appended (the rightmost), not the first', () => {
  const p = new TrustedProxies(['10.0.0.1']);
  assert.equal(p.trusts(ip('10.0.0.1')), true);
  assert.equal(client(p, '10.0.0.1', '9.9.9.9, 203.0.113.5'), '203.0.113.5');
  assert.equal(client(p, '10.0.0.1', '203.0.113.5'), '203.0.113.5');
  // Several headers arrive joined in order ("a, b"); spaces and tabs around entries do not matter.
  assert.equal(client(p, '10.0.0.1', '9.9.9.9,\t2001:db8::7 '), '2001:db8::7');
  // No header: the proxy itself is all that is known.
  assert.equal(client(p, '10.0.0.1', null), '10.0.0.1');
  assert.equal(client(p, '10.0.0.1', ''), '10.0.0.1');
});

test('a chain of trusted proxies is walked from the right to the first address that is not one', () => {
  const p = new TrustedProxies(['10.0.0.1', '10.0.0.2', '::1']);
  assert.equal(client(p, '10.0.0.1', '9.9.9.9, 203.0.113.5, 10.0.0.2'), '203.0.113.5');
  assert.equal(client(p, '::1', '9.9.9.9, 203.0.113.5, 10.0.0.2, 10.0.0.1'), '203.0.113.5');
  // Only trusted proxies: the farthest one is the client as far as anyone can tell.
  assert.equal(client(p, '10.0.0.1', '10.0.0.2'), '10.0.0.2');
});

test('an entry that is not an address stops the walk at the nearest trusted hop', () => {
  const p = new TrustedProxies(['10.0.0.1', '10.0.0.2']);
  assert.equal(client(p, '10.0.0.1', '9.9.9.9, unknown'), '10.0.0.1');
  assert.equal(client(p, '10.0.0.1', '9.9.9.9, garbage, 10.0.0.2'), '10.0.0.2');
  assert.equal(client(p, '10.0.0.1', '9.9.9.9, , '), '10.0.0.1');
  // Ports and brackets some proxies add are accepted.
  assert.equal(client(p, '10.0.0.1', '9.9.9.9, 203.0.113.5:4711'), '203.0.113.5');
  assert.equal(client(p, '10.0.0.1', '9.9.9.9, [2001:db8::7]:4711'), '2001:db8::7');
  assert.equal(client(p, '10.0.0.1', '9.9.9.9, [2001:db8::7]'), '2001:db8::7');
});

test('"*" trusts every direct peer but no address inside the header: the rightmost entry is the client', () => {
  const p = new TrustedProxies(['*']);
  assert.equal(p.trusts(ip('198.51.100.1')), true);
  assert.equal(client(p, '198.51.100.1', '9.9.9.9, 203.0.113.5'), '203.0.113.5');
  const q = new TrustedProxies(['*', '10.0.0.2']);
  assert.equal(client(q, '198.51.100.1', '9.9.9.9, 203.0.113.5, 10.0.0.2'), '203.0.113.5');
});

test('IPv4-mapped peers match their IPv4 entry; invalid list entries are rejected', () => {
  const p = new TrustedProxies(['127.0.0.1']);
  assert.equal(p.trusts(ip('::ffff:127.0.0.1')), true);
  assert.equal(p.trusts(null), false);
  assert.throws(() => new TrustedProxies(['proxy.example.org']), /trusted_proxies.*proxy\.example\.org/);
});
