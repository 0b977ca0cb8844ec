/**
 * Per-address rate limit for full scrapes (`/scrape` without `info_hash`), which cost O(torrents).
 * Remembers the last full scrape time per address string; entries older than the interval are
 * pruned when the table grows, so its size is bounded by the number of distinct addresses seen
 * within one interval.
 */
export class FullScrapeLimiter {
  #last = new Map<string, number>();
  #interval: number;
  constructor(intervalSeconds: number) {
    this.#interval = intervalSeconds;
  }
  /** True when `address` may full-scrape at `now` (seconds); records the attempt. */
  allow(address: string, now: number): boolean {
    const last = this.#last.get(address);
    if (last !== undefined && now - last < this.#interval) return false;
    if (this.#last.size >= 10_000) this.#prune(now);
    this.#last.set(address, now);
    return true;
  }
  #prune(now: number): void {
    for (const [k, t] of this.#last) if (now - t >= this.#interval) this.#last.delete(k);
  }
}
