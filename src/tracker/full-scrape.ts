import { addressKey, WindowLimiter } from '../core/limiter.ts';

/**
 * Per-address rate limit for full scrapes (`/scrape` without `info_hash`), which cost O(torrents):
 * one per `intervalSeconds` per IPv4 address or IPv6 /64. The table is bounded (`WindowLimiter`):
 * a flood of distinct addresses evicts the least recently seen, it does not grow memory.
 */
export class FullScrapeLimiter {
  #limits: WindowLimiter;
  constructor(intervalSeconds: number, maxAddresses = 100_000) {
    this.#limits = new WindowLimiter({ limit: 1, windowMs: intervalSeconds * 1000, maxKeys: maxAddresses });
  }
  /** True when `address` may full-scrape at `now` (seconds); records the attempt. */
  allow(address: string, now: number): boolean {
    return this.#limits.take(addressKey(address), now * 1000) === 0;
  }
  /** Addresses remembered (bounded by `maxAddresses`). */
  get size(): number {
    return this.#limits.size;
  }
}
