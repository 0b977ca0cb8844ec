import assert from 'node:assert/strict';
import { scryptSync } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  cookie,
  hashPassword,
  PASSWORD_CONCURRENCY,
  PASSWORD_QUEUE,
  PasswordBusyError,
  parseCookies,
  passwordChecks,
  sameToken,
  tokenId,
  verifyPassword,
} from './security.ts';

test('scrypt hashes verify, carry their parameters and a fresh salt; wrong or damaged hashes fail', async () => {
  const h = await hashPassword('correct horse battery');
  assert.match(h, /^scrypt\$32768\$8\$1\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/);
  assert.notEqual(h, await hashPassword('correct horse battery'), 'salted');
  assert.equal(await verifyPassword('correct horse battery', h), true);
  assert.equal(await verifyPassword('correct horse batterY', h), false);
  assert.equal(await verifyPassword('x', null), false);
  for (const bad of ['', 'plain', 'scrypt$1$8$1$abc$def', h.replace('$32768$', '$99999999$'), `${h}$`])
    assert.equal(await verifyPassword('correct horse battery', bad), false, bad);
  // Unicode is normalised: the same password typed two ways verifies.
  const u = await hashPassword('café password');
  assert.equal(await verifyPassword('cafe\u0301 password', u), true);
});

test('cookies: flags, and parsing keeps only well-formed pairs', () => {
  assert.equal(
    cookie('s', 'v', { maxAge: 10, secure: true }),
    's=v; Path=/; Max-Age=10; SameSite=Lax; HttpOnly; Secure',
  );
  const c = parseCookies('a=1; herald_session=abc_DEF-1; bad name=x; q="quoted"; =x');
  assert.deepEqual(
    [...c],
    [
      ['a', '1'],
      ['herald_session', 'abc_DEF-1'],
    ],
  );
  fc.assert(fc.property(fc.string({ maxLength: 300 }), (s) => void parseCookies(s)));
});

test('tokens compare in constant time; the stored id is a hash', () => {
  assert.equal(sameToken('abc', 'abc'), true);
  assert.equal(sameToken('abc', 'abd'), false);
  assert.equal(sameToken('', ''), false, 'an empty token never matches');
  assert.equal(sameToken('abc', 'abcd'), false);
  assert.match(tokenId('t'), /^[0-9a-f]{64}$/);
});

test('password checks: at most PASSWORD_CONCURRENCY at once, a bounded queue, then PasswordBusyError', async () => {
  // A cheap hash (N=2^10) in the stored format, so the burst is quick.
  const salt = Buffer.alloc(16, 7);
  const key = scryptSync('pw', salt, 32, { N: 1024, r: 8, p: 1 });
  const stored = `scrypt$1024$8$1$${salt.toString('base64url')}$${key.toString('base64url')}`;
  const burst = PASSWORD_CONCURRENCY + PASSWORD_QUEUE + 5;
  let most = 0;
  const checks = Array.from({ length: burst }, () => verifyPassword('pw', stored));
  const watch = setInterval(() => {
    most = Math.max(most, passwordChecks().running);
  }, 1);
  const outcomes = await Promise.allSettled(checks);
  clearInterval(watch);
  const refused = outcomes.filter((o) => o.status === 'rejected');
  assert.equal(refused.length, 5, 'only the checks beyond the queue are refused');
  for (const o of refused) assert.ok((o as PromiseRejectedResult).reason instanceof PasswordBusyError);
  assert.ok(outcomes.every((o) => o.status === 'rejected' || o.value === true));
  assert.ok(
    most >= 1 && most <= PASSWORD_CONCURRENCY,
    `at most ${PASSWORD_CONCURRENCY} ran at once (saw ${most})`,
  );
  assert.deepEqual(passwordChecks(), { running: 0, waiting: 0 }, 'the gate is empty afterwards');
});
