import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  checkTotp,
  linkTokenHash,
  linkTokenOk,
  newLinkToken,
  newRecoveryCodes,
  newTotpSecret,
  normalRecoveryCode,
  openSecret,
  RECOVERY_CODES,
  recoveryHash,
  sealSecret,
  TOTP_PERIOD,
  totpCode,
  totpStep,
  totpUri,
} from './two-factor.ts';

// RFC 6238 appendix B: the SHA-1 seed "12345678901234567890" (base32 below), 8 digits there; the
// 6-digit codes are their last six.
const RFC_SECRET = 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ';

test('TOTP codes are RFC 6238 codes (6 digits, SHA-1, 30 s)', () => {
  assert.equal(totpCode(RFC_SECRET, 59_000), '287082');
  assert.equal(totpCode(RFC_SECRET, 1_111_111_109_000), '081804');
  assert.equal(totpCode(RFC_SECRET, 1_234_567_890_000), '005924');
  assert.match(
    totpUri(RFC_SECRET, 'alice', 'Herald Demo'),
    /^otpauth:\/\/totp\/Herald%20Demo:alice\?.*secret=GEZD/,
  );
});

test('a code is accepted in its step and one step either side, not two; at each boundary', () => {
  const s = newTotpSecret();
  assert.match(s, /^[A-Z2-7]{32}$/);
  const t0 = 1_800_000_000_000 - (1_800_000_000_000 % (TOTP_PERIOD * 1000)); // a step's first ms
  const step = totpStep(t0);
  const code = totpCode(s, t0);
  // Its own step, first and last millisecond.
  assert.equal(checkTotp(s, code, t0, null), step);
  assert.equal(checkTotp(s, code, t0 + 29_999, null), step);
  // One step later (the phone was slow) and one earlier (the phone is ahead): still accepted.
  assert.equal(checkTotp(s, code, t0 + 30_000, null), step);
  assert.equal(checkTotp(s, code, t0 + 59_999, null), step);
  assert.equal(checkTotp(s, code, t0 - 1, null), step);
  assert.equal(checkTotp(s, code, t0 - 30_000, null), step);
  // Two steps away: refused.
  assert.equal(checkTotp(s, code, t0 + 60_000, null), null);
  assert.equal(checkTotp(s, code, t0 - 30_001, null), null);
});

test('a code is good once: not again in its step, nor an older one after a newer was used', () => {
  const s = newTotpSecret();
  const t0 = 1_800_000_000_000 - (1_800_000_000_000 % 30_000);
  const step = totpStep(t0);
  const code = totpCode(s, t0);
  assert.equal(checkTotp(s, code, t0, step - 1), step);
  assert.equal(checkTotp(s, code, t0, step), null, 'replay in the same step');
  assert.equal(checkTotp(s, code, t0 + 1000, step + 1), null, 'a newer code was used');
  assert.equal(checkTotp(s, totpCode(s, t0 + 30_000), t0, step), step + 1, 'the next step is fine');
});

test('malformed codes are refused without throwing', () => {
  const s = newTotpSecret();
  for (const bad of ['', '12345', '1234567', 'abcdef', '12 34 5', '１２３４５６', '123456\n', '-12345'])
    assert.equal(checkTotp(s, bad, Date.now(), null), null, JSON.stringify(bad));
  // Spaces inside are what people type from apps that group the digits.
  const t = 1_800_000_000_000;
  const c = totpCode(s, t);
  assert.equal(checkTotp(s, `${c.slice(0, 3)} ${c.slice(3)}`, t, null), totpStep(t));
});

test('recovery codes: 10 distinct 80-bit codes, typed in any case and with or without dashes', () => {
  const codes = newRecoveryCodes();
  assert.equal(codes.length, RECOVERY_CODES);
  assert.equal(new Set(codes).size, RECOVERY_CODES);
  for (const c of codes) assert.match(c, /^[a-z0-9]{4}(-[a-z0-9]{4}){3}$/);
  const n = normalRecoveryCode(codes[0])!;
  assert.equal(normalRecoveryCode(codes[0].toUpperCase().replace(/-/g, ' ')), n);
  assert.equal(recoveryHash(n), recoveryHash(normalRecoveryCode(codes[0])!));
  assert.notEqual(recoveryHash(n), recoveryHash(normalRecoveryCode(codes[1])!));
  for (const bad of ['', 'abc', `${n}x`, 'zzzz-zzzz-zzzz-zzz!']) assert.equal(normalRecoveryCode(bad), null);
});

test('secrets are sealed with AES-256-GCM under the key; without it, the wrong one or damaged: null', () => {
  const s = newTotpSecret();
  const key = 'a key of sixteen+ characters';
  const sealed = sealSecret(s, key);
  assert.match(sealed, /^gcm:/);
  assert.ok(!sealed.includes(s));
  assert.notEqual(sealSecret(s, key), sealed, 'a fresh IV each time');
  assert.equal(openSecret(sealed, key), s);
  assert.equal(openSecret(sealed, 'another key of 16+ chars'), null);
  assert.equal(openSecret(sealed, null), null);
  assert.equal(openSecret(`${sealed.slice(0, -2)}AA`, key), null);
  assert.equal(openSecret('gcm:junk', key), null);
  // Without a key the secret is stored as is (and still read once a key is configured).
  assert.equal(sealSecret(s, null), `plain:${s}`);
  assert.equal(openSecret(`plain:${s}`, key), s);
});

test('link tokens: 256 bits, a fixed shape, stored only as a hash', () => {
  const t = newLinkToken();
  assert.ok(linkTokenOk(t));
  assert.equal(linkTokenHash(t).length, 64);
  assert.ok(!linkTokenOk(`${t}x`));
  assert.ok(!linkTokenOk(t.slice(1)));
  assert.ok(!linkTokenOk(`${t.slice(1)}=`));
});
