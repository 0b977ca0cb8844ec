import { formatIp, parseIp } from './address.ts';

/**
 * At most `limit` attempts per key in a sliding window of `windowMs`, in memory, with a bounded
 * table: the portal's login and application throttles and the HTTP full-scrape limit.
 *
 * Threat model. The keys are chosen by strangers (client addresses, typed usernames), so the
 * table must not grow with them: it holds at most `maxKeys` keys, in least-recently-used order
 * (a `Map` re-inserted on every touch), and a new key beyond the bound evicts the least recently
 * used one. That one is nearly always expired (no attempt for a whole window); only a flood of
 * more distinct keys than `maxKeys` within one window evicts live entries, and then the flooder's
 * own oldest keys go first. Each key holds at most `limit` timestamps, so memory is bounded by
 * `maxKeys × limit` numbers, and every operation is O(limit): no sweep over the table.
 *
 * `take` checks and records in one synchronous step, so attempts that then await something
 * (scrypt, the database) are counted before they start: parallel requests cannot all pass the
 * check before any of them is recorded. An attempt that turns out not to count (a successful
 * login) is given back with `release`.
 */
export class WindowLimiter {
  readonly limit: number;
  readonly windowMs: number;
  readonly maxKeys: number;
  /** key → attempt times (ms), oldest first; the Map's order is least recently used first. */
  #hits = new Map<string, number[]>();
  /**
   * A standing iterator over `#hits`, least recently used first. Every key it has passed was
   * evicted, and touched or new keys are re-inserted behind it, so its next key is always the
   * least recently used one. (Asking the Map for a fresh iterator each time would walk over the
   * slots of every key deleted since the table was last rebuilt: quadratic under a flood.)
   */
  #oldest: MapIterator<string> = this.#hits.keys();

  constructor(opts: { limit: number; windowMs: number; maxKeys?: number }) {
    this.limit = opts.limit;
    this.windowMs = opts.windowMs;
    this.maxKeys = opts.maxKeys ?? 100_000;
  }

  get size(): number {
    return this.#hits.size;
  }

  /**
   * Takes one attempt for `key` at `now` (ms) when the window has room, and returns 0; otherwise
   * records nothing and returns the milliseconds until the oldest attempt leaves the window.
   */
  take(key: string, now: number): number {
    const list = this.#hits.get(key);
    if (list === undefined) {
      this.#hits.set(key, [now]);
      if (this.#hits.size > this.maxKeys) this.#evictOldest();
      return 0;
    }
    let expired = 0;
    while (expired < list.length && list[expired] <= now - this.windowMs) expired++;
    if (expired > 0) list.splice(0, expired);
    // Re-insert: the key is now the most recently used.
    this.#hits.delete(key);
    this.#hits.set(key, list);
    if (list.length >= this.limit) return list[0] + this.windowMs - now;
    list.push(now);
    return 0;
  }

  /** Gives back the most recent attempt taken for `key` (it did not count after all). */
  release(key: string): void {
    const list = this.#hits.get(key);
    if (list === undefined) return;
    list.pop();
    if (list.length === 0) this.#hits.delete(key);
  }

  /** Forgets every attempt of `key`. */
  reset(key: string): void {
    this.#hits.delete(key);
  }

  #evictOldest(): void {
    let next = this.#oldest.next();
    if (next.done === true) {
      this.#oldest = this.#hits.keys();
      next = this.#oldest.next();
    }
    if (next.done !== true) this.#hits.delete(next.value);
  }
}

/**
 * The key a client address is throttled under: the IPv4 address (however it was written, mapped
 * or not), or the /64 of an IPv6 address: one subscriber usually holds a whole /64, so single
 * addresses would be free to rotate through. Text that is not an address is its own key.
 */
export function addressKey(ip: string): string {
  const a = parseIp(ip);
  if (a === null) return ip;
  if (a.family === 4) return formatIp(a.bytes);
  return `${formatIp(Uint8Array.from([...a.bytes.subarray(0, 8), 0, 0, 0, 0, 0, 0, 0, 0]))}/64`;
}
