import type { Clock } from '../core/clock.ts';
import type { TrackerCounters } from '../core/metrics.ts';
import type { SwarmStore } from '../swarm/types.ts';

/**
 * Runs the store's incremental expiry in small slices so that a sweep never stalls requests:
 * each tick visits at most `budget` peers, then yields to the event loop. Ticks run every
 * `everyMs`; when a slice was full (more work may be waiting) the next one follows on
 * `setImmediate`, still one slice per turn of the loop.
 */
export class ExpirySweeper {
  #store: SwarmStore;
  #clock: Clock;
  #counters: TrackerCounters;
  #budget: number;
  #everyMs: number;
  #timer: NodeJS.Timeout | null = null;
  #running = false;
  #onError: (err: unknown) => void;

  constructor(opts: {
    store: SwarmStore;
    clock: Clock;
    counters: TrackerCounters;
    budget?: number;
    everyMs?: number;
    onError: (err: unknown) => void;
  }) {
    this.#store = opts.store;
    this.#clock = opts.clock;
    this.#counters = opts.counters;
    this.#budget = opts.budget ?? 10_000;
    this.#everyMs = opts.everyMs ?? 1000;
    this.#onError = opts.onError;
  }

  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => this.#slice(0), this.#everyMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  /** One slice; chains further slices (bounded per tick) while peers keep expiring. */
  #slice(depth: number): void {
    if (this.#running || this.#timer === null) return;
    this.#running = true;
    const done = (removed: number) => {
      this.#running = false;
      this.#counters.expiredPeers += removed;
      // A slice that removed peers may have more to do: continue on the next loop turn, but
      // never more than 100 slices per tick, so an idle tracker stays idle.
      if (removed > 0 && depth < 100) setImmediate(() => this.#slice(depth + 1));
    };
    try {
      const removed = this.#store.sweep(this.#clock.now(), this.#budget);
      if (typeof removed === 'number') done(removed);
      else
        removed.then(done, (err) => {
          this.#running = false;
          this.#onError(err);
        });
    } catch (err) {
      this.#running = false;
      this.#onError(err);
    }
  }
}
