import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { Secret, TOTP } from 'otpauth';

/**
 * Two-factor authentication (TOTP, RFC 6238) and one-time account tokens, as pure functions of
 * their inputs and the time (tests pass the clock).
 *
 * Threat model. TOTP: a stolen password alone no longer logs in. A code is 6 digits for a 30 s
 * step; one step either side is accepted (clock drift), and a code is good once: the step it
 * matched must be later than the last accepted one (`totp_last_step`), so a code read over a
 * shoulder or from a log cannot be replayed. Guessing is bounded by the login limits (a code
 * attempt counts like a password attempt). The secret sits in the database: encrypted with
 * AES-256-GCM under `totp_encryption_key` when the operator sets one (a stolen database then
 * yields no second factor), else stored as is (said in the README). Recovery codes (80 random
 * bits each) and password-reset tokens (256 bits) are stored only as SHA-256: unguessable
 * values need no slow hash, and a database leak yields none of them.
 */

export const TOTP_PERIOD = 30;
export const TOTP_DIGITS = 6;
/** Steps either side of now that are accepted (clock drift between phone and server). */
export const TOTP_WINDOW = 1;
export const RECOVERY_CODES = 10;

/** A new TOTP secret: 20 random bytes (160 bits, RFC 4226's recommendation), in base32. */
export function newTotpSecret(): string {
  return new Secret({ size: 20 }).base32;
}

function totp(secret: string, label = '', issuer = ''): TOTP {
  return new TOTP({
    issuer,
    label,
    secret: Secret.fromBase32(secret),
    algorithm: 'SHA1',
    digits: TOTP_DIGITS,
    period: TOTP_PERIOD,
  });
}

/** The `otpauth://` URI an authenticator app reads from the enrolment QR code. */
export function totpUri(secret: string, label: string, issuer: string): string {
  return totp(secret, label, issuer).toString();
}

/** The code for `atMs` (tests; an authenticator app computes the same). */
export function totpCode(secret: string, atMs: number): string {
  return totp(secret).generate({ timestamp: atMs });
}

/** The time step of `atMs`. */
export const totpStep = (atMs: number) => Math.floor(atMs / 1000 / TOTP_PERIOD);

/**
 * The time step a code matches at `atMs` (within the window), or null: wrong, malformed, or not
 * later than `lastStep` (used already: replay).
 */
export function checkTotp(
  secret: string,
  code: string,
  atMs: number,
  lastStep: number | null,
): number | null {
  const digits = code.replace(/\s/g, '');
  if (!/^[0-9]{6}$/.test(digits)) return null;
  const delta = totp(secret).validate({ token: digits, timestamp: atMs, window: TOTP_WINDOW });
  if (delta === null) return null;
  const step = totpStep(atMs) + delta;
  if (lastStep !== null && step <= lastStep) return null;
  return step;
}

const CROCKFORD = 'abcdefghjkmnpqrstvwxyz0123456789';

/** Recovery codes: `RECOVERY_CODES` codes of 16 characters (80 bits) as `xxxx-xxxx-xxxx-xxxx`. */
export function newRecoveryCodes(n = RECOVERY_CODES): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const bytes = randomBytes(16);
    let s = '';
    for (let j = 0; j < 16; j++) s += CROCKFORD[bytes[j] & 31];
    out.push(s.match(/.{4}/g)!.join('-'));
  }
  return out;
}

/** A typed recovery code as stored: lower case, no dashes or spaces; null if it cannot be one. */
export function normalRecoveryCode(input: string): string | null {
  const s = input.toLowerCase().replace(/[\s-]/g, '');
  return /^[a-z0-9]{16}$/.test(s) ? s : null;
}

export const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/** What is stored for a recovery code. */
export const recoveryHash = (normal: string) => sha256(`recovery:${normal}`);

/** A one-time token for a link (password reset): 32 random bytes, base64url. */
export const newLinkToken = () => randomBytes(32).toString('base64url');
export const linkTokenOk = (t: string) => /^[A-Za-z0-9_-]{43}$/.test(t);
export const linkTokenHash = (t: string) => sha256(`link:${t}`);

/**
 * How a TOTP secret is stored: `gcm:iv.ciphertext.tag` (base64url) under the key, or `plain:SECRET`
 * without one. The key is any string of 16+ characters; SHA-256 makes it 32 bytes.
 */
export function sealSecret(secret: string, key: string | null): string {
  if (key === null) return `plain:${secret}`;
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', createHash('sha256').update(key).digest(), iv);
  const ct = Buffer.concat([c.update(secret, 'utf8'), c.final()]);
  return `gcm:${iv.toString('base64url')}.${ct.toString('base64url')}.${c.getAuthTag().toString('base64url')}`;
}

/** The secret back, or null (no key for an encrypted secret, the wrong key, or a damaged value). */
export function openSecret(stored: string, key: string | null): string | null {
  if (stored.startsWith('plain:')) return stored.slice(6);
  if (!stored.startsWith('gcm:') || key === null) return null;
  const parts = stored.slice(4).split('.');
  if (parts.length !== 3) return null;
  try {
    const d = createDecipheriv(
      'aes-256-gcm',
      createHash('sha256').update(key).digest(),
      Buffer.from(parts[0], 'base64url'),
    );
    d.setAuthTag(Buffer.from(parts[2], 'base64url'));
    return Buffer.concat([d.update(Buffer.from(parts[1], 'base64url')), d.final()]).toString('utf8');
  } catch {
    return null;
  }
}
