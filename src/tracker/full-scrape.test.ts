import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FullScrapeLimiter } from './full-scrape.ts';

test('full scrape limiter: one per interval per address; an IPv6 /64 is one address', () => {
  const l = new FullScrapeLimiter(600);
  assert.equal(l.allow('192.0.2.1', 1000), true);
  assert.equal(l.allow('192.0.2.1', 1001), false);
  assert.equal(l.allow('::ffff:192.0.2.1', 1002), false, 'the same IPv4 address, written mapped');
  assert.equal(l.allow('192.0.2.2', 1002), true);
  assert.equal(l.allow('2001:db8:1:2::1', 1003), true);
  assert.equal(l.allow('2001:db8:1:2:ffff::99', 1004), false, 'another address of the same /64');
  assert.equal(l.allow('2001:db8:1:3::1', 1005), true, 'the next /64 is another subscriber');
  assert.equal(l.allow('192.0.2.1', 1600), true, 'again after the interval');
});

test('full scrape limiter: a flood of distinct addresses within one interval holds a bounded table', () => {
  const l = new FullScrapeLimiter(600);
  for (let i = 0; i < 250_000; i++) l.allow(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, 1000);
  assert.equal(l.size, 100_000, 'the default bound');
  assert.equal(l.allow('10.3.208.143', 1001), false, 'the most recent address is still limited');
});
