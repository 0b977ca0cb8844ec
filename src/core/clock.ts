/**
 * The tracker's clock, read once per request from a cached value (chihaya `pkg/timecache`,
 * opentracker `g_now_seconds`). Time is whole seconds since the clock's epoch (the Unix epoch for
 * `CachedClock`, so that instances sharing a UDP secret agree on connection-id times), which fits a
 * `Uint32Array` slot until 2106.
 */
export interface Clock {
  /** Whole seconds since this clock's epoch. Cheap: no syscall. */
  now(): number;
}

/** Updates itself from the wall clock every `resolutionMs` on an unref'd timer. */
export class CachedClock implements Clock {
  #now = 0;
  #timer: NodeJS.Timeout | null = null;
  constructor(resolutionMs = 250) {
    this.#tick();
    this.#timer = setInterval(() => this.#tick(), resolutionMs);
    this.#timer.unref();
  }
  #tick(): void {
    this.#now = Math.floor(Date.now() / 1000);
  }
  now(): number {
    return this.#now;
  }
  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }
}

/** A clock that moves only when told to: for tests. */
export class ManualClock implements Clock {
  #now: number;
  constructor(start = 1) {
    this.#now = start;
  }
  now(): number {
    return this.#now;
  }
  set(seconds: number): void {
    this.#now = seconds;
  }
  advance(seconds: number): void {
    this.#now += seconds;
  }
}
