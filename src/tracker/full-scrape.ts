import { addressKey, WindowLimiter } from '../core/limiter.ts';

/**
 * Whether an address may full-scrape now (and the attempt recorded): this process's
 * `FullScrapeLimiter`, or the whole tracker's with workers (`src/cluster/full-scrape-gate.ts`,
 * asked over the bus: a promise, which rejects when it cannot be asked).
 */
export interface FullScrapeGate {
  allow(address: string, now: number): boolean | Promise<boolean>;
}

/**
 * Per-address rate limit for full scrapes (`/scrape` without `info_hash`), which cost O(torrents):
 * one per `intervalSeconds` per IPv4 address or IPv6 /64. The table is bounded (`WindowLimiter`):
 * a flood of distinct addresses evicts the least recently seen, it does not grow memory.
 */
export class FullScrapeLimiter implements FullScrapeGate {
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
