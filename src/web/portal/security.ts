import { createHash, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';

/**
 * Passwords, session tokens and login throttling for the portal.
 *
 * Threat model. Passwords: a stolen database must not give passwords back cheaply, so they are
 * hashed with scrypt (memory-hard: N=2^15, r=8, p=1 costs 32 MiB and tens of milliseconds per
 * guess) with a random salt; the parameters are stored with the hash so they can be raised
 * later without breaking old hashes. Sessions: the cookie carries 32 random bytes; the database
 * keeps only their SHA-256, so a database leak does not yield usable sessions. CSRF: every form
 * carries a per-session token (per-browser before login) compared in constant time; the cookie
 * is SameSite=Lax as a second line. Login guessing: see `authRoutes` (attempts counted per client
 * address and per username in the database, `AttemptLimit`, before the password is checked).
 */

const N = 2 ** 15;
const R = 8;
const P = 1;
const KEYLEN = 32;
const MAXMEM = 64 * 1024 * 1024;

/**
 * Password hashes computed at once, and waiting at most. Each scrypt holds its 32 MiB working set
 * on libuv's thread pool, so without a gate a burst of logins (from many addresses: the per-address
 * limit does not bound it) holds 32 MiB × the burst (the portal fuzz campaign saw ~130 MiB) and
 * fills the thread pool that file and DNS work share. Beyond the queue, `PasswordBusyError`:
 * the portal answers 503 and the attempt is not counted as a failure.
 */
export const PASSWORD_CONCURRENCY = 2;
export const PASSWORD_QUEUE = 64;

export class PasswordBusyError extends Error {
  constructor() {
    super('too many password checks at once');
  }
}

let running = 0;
const waiting: (() => void)[] = [];

/** Runs `work` when fewer than `PASSWORD_CONCURRENCY` run; refuses when the queue is full. */
async function gated<T>(work: () => Promise<T>): Promise<T> {
  if (running >= PASSWORD_CONCURRENCY) {
    if (waiting.length >= PASSWORD_QUEUE) throw new PasswordBusyError();
    await new Promise<void>((resolve) => waiting.push(resolve));
  } else running++;
  try {
    return await work();
  } finally {
    const next = waiting.shift();
    if (next) next();
    else running--;
  }
}

/** Password checks running and waiting now (tests, metrics). */
export const passwordChecks = () => ({ running, waiting: waiting.length });

function scryptAsync(password: string, salt: Buffer, n: number, r: number, p: number, keylen: number) {
  return gated(
    () =>
      new Promise<Buffer>((resolve, reject) =>
        scrypt(password.normalize('NFKC'), salt, keylen, { N: n, r, p, maxmem: MAXMEM }, (err, key) =>
          err ? reject(err) : resolve(key),
        ),
      ),
  );
}

/** `scrypt$N$r$p$salt$hash` (salt and hash in base64url). */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scryptAsync(password, salt, N, R, P, KEYLEN);
  return `scrypt$${N}$${R}$${P}$${salt.toString('base64url')}$${key.toString('base64url')}`;
}

export async function verifyPassword(password: string, stored: string | null): Promise<boolean> {
  if (stored === null) return false;
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [n, r, p] = parts.slice(1, 4).map(Number);
  if (!(n >= 2 ** 10 && n <= 2 ** 20 && r >= 1 && r <= 32 && p >= 1 && p <= 16)) return false;
  const salt = Buffer.from(parts[4], 'base64url');
  const expected = Buffer.from(parts[5], 'base64url');
  if (expected.length < 16 || expected.length > 128) return false;
  const key = await scryptAsync(password, salt, n, r, p, expected.length);
  return timingSafeEqual(key, expected);
}

/** A hash of nothing, compared against when the username is unknown, so timing tells nothing. */
let dummy: string | null = null;
export async function dummyVerify(password: string): Promise<void> {
  dummy ??= await hashPassword(randomBytes(8).toString('hex'));
  await verifyPassword(password, dummy);
}

export const newToken = () => randomBytes(32).toString('base64url');
export const tokenId = (token: string) => createHash('sha256').update(token).digest('hex');

export function sameToken(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
}

export function parseCookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (!header) return out;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    const name = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (/^[A-Za-z0-9_-]{1,64}$/.test(name) && /^[A-Za-z0-9_.-]{0,256}$/.test(value)) out.set(name, value);
  }
  return out;
}

export function cookie(
  name: string,
  value: string,
  opts: { maxAge: number; secure: boolean; httpOnly?: boolean },
): string {
  let c = `${name}=${value}; Path=/; Max-Age=${opts.maxAge}; SameSite=Lax`;
  if (opts.httpOnly !== false) c += '; HttpOnly';
  if (opts.secure) c += '; Secure';
  return c;
}
