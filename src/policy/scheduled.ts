import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { Clock } from '../core/clock.ts';
import type { Logger } from '../core/log.ts';
import type { Registry } from '../db/registry.ts';

/** Rows per query when a snapshot is loaded or a scheduler reads (see `inPages`). */
export const PAGE = 1000;

/**
 * Reads rows in pages of `PAGE` by ascending id and yields to the event loop between pages. A
 * snapshot of a large site (10,000 members and 50,000 torrents take a few hundred milliseconds to
 * load) then never holds the event loop for more than one page: announces and pages are served
 * while it loads. Rows changed during the load are caught by the next one: the revision was read
 * first, so it has moved.
 */
export async function inPages<R extends { id: number }>(
  page: (afterId: number) => Promise<R[]>,
  each: (row: R) => void,
): Promise<void> {
  for (let after = -1; ; ) {
    const rows = await page(after);
    for (let i = 0; i < rows.length; i++) each(rows[i]);
    if (rows.length < PAGE) return;
    after = rows[rows.length - 1].id;
    await yieldToLoop();
  }
}

/** What a scheduler works with: the database, its rules, the clock, and the policy to reload. */
export interface SchedulerOptions<Rules> {
  registry: () => Registry;
  rules: Rules;
  clock: Clock;
  logger: Logger;
  /** Asks this process's policy to reload (the other workers' poll the revision). */
  refreshPolicy: () => Promise<unknown>;
}

/**
 * A scheduler's timer and its one-at-a-time pass (ratio watch, hit-and-run): `start` runs a pass
 * every so many seconds, `run` runs one now (a call during a pass shares it), `stop` ends the timer
 * and waits for a pass under way (before the database closes). Subclasses write `pass`; time
 * comes from their injected clock, so tests run days in a few calls.
 */
export abstract class ScheduledPass<Rules, R extends Record<keyof R, number>> {
  protected readonly o: SchedulerOptions<Rules>;
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<R> | null = null;

  constructor(opts: SchedulerOptions<Rules>) {
    this.o = opts;
  }

  start(everySeconds: number): void {
    this.#timer = setInterval(() => void this.run().catch(() => {}), everySeconds * 1000);
    this.#timer.unref();
  }

  /** Stops the timer; resolves when a pass under way has ended (before the database closes). */
  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.#running?.catch(() => {});
  }

  /** One pass (one at a time: a call during a pass shares it). */
  run(): Promise<R> {
    if (this.#running !== null) return this.#running;
    const p = this.#passAndReload().finally(() => {
      this.#running = null;
    });
    this.#running = p;
    return p;
  }

  /**
   * A pass; when it changed anything (a count above 0) it is logged and this process's policy
   * reloads. A failed pass is logged and the next one tries again.
   */
  async #passAndReload(): Promise<R> {
    const { logger } = this.o;
    try {
      const out = await this.pass();
      if (Object.values<number>(out).some((n) => n > 0)) {
        logger.info(this.name, { ...out });
        await this.o.refreshPolicy();
      }
      return out;
    } catch (err) {
      logger.error(`${this.name} failed; the next run tries again`, { err: String(err) });
      throw err;
    }
  }

  /** For logs. */
  protected abstract readonly name: string;

  /** Reads, decides and writes; returns what it changed, by kind. */
  protected abstract pass(): Promise<R>;
}
