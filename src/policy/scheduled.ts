import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { Clock } from '../core/clock.ts';
import type { Logger } from '../core/log.ts';
import { releaseLease, takeLease } from '../db/leases.ts';
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

/**
 * Changes a scheduler writes per transaction (see `inSlices`). On SQLite a transaction runs on the
 * event loop from BEGIN to COMMIT (every statement is synchronous, and awaiting one gives no turn
 * of the loop); at about 50 µs a statement through Kysely (an update and a history row each), 250
 * changes hold it some 10-25 ms.
 */
export const SLICE = 250;

/**
 * Writes `changes` a slice of `SLICE` at a time (`apply`: one transaction each) with a turn of the
 * event loop between slices, and returns what each slice's `apply` returned, in order. One
 * transaction for all of them held the loop for as long as the whole write: on the bench's site
 * (10,000 members, 200,000 snatches) 5.8 s when every hit-and-run expired, 0.95 s when 9,000
 * members moved class (docs/benchmarks.md). Every scheduler's update is conditional on the state
 * it was decided from, so a change that another writer overtook between slices does nothing.
 */
export async function inSlices<C, R>(
  changes: readonly C[],
  apply: (slice: C[]) => Promise<R[]>,
): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < changes.length; i += SLICE) {
    if (i > 0) await yieldToLoop();
    for (const r of await apply(changes.slice(i, i + SLICE))) out.push(r);
  }
  return out;
}

/** What a scheduler works with: the database, its rules, the clock, and the policy to reload. */
export interface SchedulerOptions<Rules> {
  registry: () => Registry;
  rules: Rules;
  clock: Clock;
  logger: Logger;
  /** Asks this process's policy to reload (the other workers' poll the revision). */
  refreshPolicy: () => Promise<unknown>;
  /**
   * This instance's id (drawn at its start) for the schedulers' leases: the timer's passes then
   * run only in the instance that holds the scheduler's lease in the database, so several
   * instances on one database run each pass once (absent: every pass runs here).
   */
  holder?: string;
}

/**
 * A scheduler's timer and its one-at-a-time pass (ratio watch, hit-and-run): `start` runs a pass
 * every so many seconds (`tick`), `run` runs one now (a call during a pass shares it), `stop` ends
 * the timer and waits for a pass under way (before the database closes). Subclasses write `pass`;
 * time comes from their injected clock, so tests run days in a few calls.
 *
 * Several instances on one database: with a `holder`, each tick first takes the scheduler's lease
 * (src/db/leases.ts) for one interval and a little more (`leaseSeconds`), and renews it at each
 * tick; an instance whose tick finds it held by another skips its pass. So each pass runs in one
 * instance, and if that instance dies, another takes over after the lease expires. A graceful stop
 * gives the lease up at once.
 */
export abstract class ScheduledPass<Rules, R extends Record<keyof R, number>> {
  protected readonly o: SchedulerOptions<Rules>;
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<R> | null = null;
  #every = 0;

  constructor(opts: SchedulerOptions<Rules>) {
    this.o = opts;
  }

  start(everySeconds: number): void {
    this.#every = everySeconds;
    this.#timer = setInterval(() => void this.tick().catch(() => {}), everySeconds * 1000);
    this.#timer.unref();
  }

  /**
   * A pass from the timer (or at start): run here unless another instance holds the lease; null
   * when it does.
   */
  async tick(): Promise<R | null> {
    const holder = this.o.holder;
    if (holder !== undefined) {
      const now = this.o.clock.now();
      let held: boolean;
      try {
        held = await takeLease(
          this.o.registry().db.kysely,
          this.name,
          holder,
          now,
          now + leaseSeconds(this.#every),
        );
      } catch (err) {
        this.o.logger.error(`${this.name}: the lease could not be taken; the next run tries again`, {
          err: String(err),
        });
        throw err;
      }
      if (!held) return null;
    }
    return this.run();
  }

  /**
   * Stops the timer; resolves when a pass under way has ended (before the database closes), and
   * gives up the lease (another instance's next tick takes it).
   */
  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.#running?.catch(() => {});
    if (this.o.holder === undefined) return;
    try {
      await releaseLease(this.o.registry().db.kysely, this.name, this.o.holder);
    } catch {
      // No database (never started, or gone): the lease expires by itself.
    }
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

/**
 * How long a lease taken at a tick lasts: the interval (the holder renews it at its next tick)
 * and a little more (a late timer does not lose it), at most a minute more.
 */
export function leaseSeconds(everySeconds: number): number {
  return everySeconds + Math.min(60, Math.ceil(everySeconds / 2));
}
