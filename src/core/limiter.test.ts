import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { addressKey, WindowLimiter } from './limiter.ts';

test('window limiter: the allowance, the wait, and forgetting after the window', () => {
  const l = new WindowLimiter({ limit: 3, windowMs: 60_000 });
  const t0 = 1_000_000;
  for (let i = 0; i < 3; i++) assert.equal(l.take('k', t0 + i), 0);
  assert.equal(l.take('k', t0 + 10), 60_000 - 10, 'until the oldest attempt leaves the window');
  assert.equal(l.take('other', t0 + 10), 0);
  assert.equal(l.take('k', t0 + 60_000), 0, 'the first attempt has left the window');
  assert.ok(l.take('k', t0 + 60_000) > 0);
  l.reset('k');
  assert.equal(l.take('k', t0 + 60_002), 0);
});

test('window limiter: take checks and records in one step; release gives an attempt back', () => {
  const l = new WindowLimiter({ limit: 2, windowMs: 1000 });
  assert.equal(l.take('k', 0), 0);
  assert.equal(l.take('k', 0), 0);
  assert.ok(l.take('k', 0) > 0, 'the third is refused before either of the first two finished');
  l.release('k');
  assert.equal(l.take('k', 1), 0, 'a released attempt frees its place');
  l.release('k');
  l.release('k');
  l.release('k');
  assert.equal(l.size, 0, 'a key with no attempts left is forgotten');
});

test('window limiter: a million distinct keys within one window leave at most maxKeys entries', () => {
  const l = new WindowLimiter({ limit: 5, windowMs: 3_600_000, maxKeys: 10_000 });
  for (let i = 0; i < 5; i++) l.take('victim', 0);
  for (let i = 0; i < 1_000_000; i++) {
    l.take(`k${i}`, 1);
    // A key tried again is the most recently used: the flood evicts the stale keys first.
    if (i % 1000 === 0) assert.ok(l.take('victim', 1) > 0);
  }
  assert.equal(l.size, 10_000);
  assert.ok(l.take('victim', 2) > 0, 'its attempts were kept across the flood');
  assert.equal(l.take('k0', 2), 0, 'the oldest keys were evicted');
});

test('window limiter: entries stay within the bound for any sequence of operations', () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 40 }), fc.nat(5000)), {
        maxLength: 300,
      }),
      (ops) => {
        const l = new WindowLimiter({ limit: 3, windowMs: 1000, maxKeys: 8 });
        let now = 0;
        for (const [op, key, dt] of ops) {
          now += dt;
          if (op === 0) l.take(`k${key}`, now);
          else if (op === 1) l.release(`k${key}`);
          else l.reset(`k${key}`);
          assert.ok(l.size <= 8);
        }
      },
    ),
  );
});

test('addresses are keyed per IPv4 address (however written) and per IPv6 /64', () => {
  assert.equal(addressKey('192.0.2.7'), '192.0.2.7');
  assert.equal(addressKey('::ffff:192.0.2.7'), '192.0.2.7');
  assert.equal(addressKey('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
  assert.equal(addressKey('2001:db8:1:2:aaaa::1'), addressKey('2001:0db8:0001:0002:bbbb::9'));
  assert.notEqual(addressKey('2001:db8:1:2::1'), addressKey('2001:db8:1:3::1'));
  assert.equal(addressKey('not an address'), 'not an address');
});
