import type { Db } from './connect.ts';

/**
 * The portal's guessing limits (login, 2FA codes, password re-checks, reset mails, applications),
 * counted in the database's `auth_attempts` so that every process serving it (`--workers N`,
 * several instances on one database) counts one total: a row per throttle (`scope`) and key with
 * the times of the attempts in its sliding window. `Accounts.attempts` is this object.
 */
export class AuthAttempts {
  readonly #db: Db;
  constructor(db: Db) {
    this.#db = db;
  }

  /** When this process last deleted spent `auth_attempts` rows (ms). */
  #pruned = 0;
  /** Attempts this process has taken since it last pruned. */
  #sincePrune = 0;
  /**
   * At most this many `auth_attempts` rows per throttle (checked every tenth of it in attempts
   * taken, in each process): beyond it the rows that expire soonest go, as the per-process limiter
   * it replaced forgot its least recently used keys. Every new address (an IPv6 /64 each) or checked username
   * makes a row for its window: without a bound, a sender with many addresses grows the table.
   */
  maxRows = 100_000;

  /**
   * Takes one attempt of throttle `scope` for `key` at `nowMs` when fewer than `limit` lie in the
   * sliding window of `windowMs`, and returns 0; otherwise records nothing and returns the
   * milliseconds until the oldest attempt leaves the window. Check and record are one transaction
   * that holds the key's row locked (the upsert locks it on PostgreSQL; SQLite has one writer), so
   * requests at once, in this process or any other on the database, cannot all pass the check
   * before any is recorded.
   */
  async take(scope: string, key: string, limit: number, windowMs: number, nowMs: number): Promise<number> {
    await this.#prune(nowMs);
    return this.#row(scope, key, nowMs + windowMs, (times) => {
      const live = times.filter((t) => t > nowMs - windowMs);
      if (live.length >= limit) return { times: null, out: live[0] + windowMs - nowMs };
      live.push(nowMs);
      return { times: live, out: 0 };
    });
  }

  /** Gives back the most recent attempt taken for `key` (it did not count after all). */
  async release(scope: string, key: string): Promise<void> {
    await this.#row(scope, key, null, (times) => ({ times: times.slice(0, -1), out: undefined }));
  }

  /**
   * Runs `change` on the attempt times of `scope`/`key` with the row locked (made empty when there
   * is none) and writes what it returns (`times: null`: nothing; empty: the row is deleted).
   * `expiresAt` null keeps the row's.
   */
  async #row<T>(
    scope: string,
    key: string,
    expiresAt: number | null,
    change: (times: number[]) => { times: number[] | null; out: T },
  ): Promise<T> {
    return this.#db.kysely.transaction().execute(async (trx) => {
      await trx
        .insertInto('auth_attempts')
        .values({ scope, key, times: '', expires_at: expiresAt ?? 0 })
        .onConflict((oc) =>
          oc.columns(['scope', 'key']).doUpdateSet((eb) => ({ times: eb.ref('auth_attempts.times') })),
        )
        .execute();
      const row = await trx
        .selectFrom('auth_attempts')
        .select('times')
        .where('scope', '=', scope)
        .where('key', '=', key)
        .executeTakeFirstOrThrow();
      const r = change(row.times === '' ? [] : row.times.split(',').map(Number));
      if (r.times !== null && r.times.length === 0) {
        // Nothing left in it (an attempt given back): no row, or every request that is given
        // back (503 busy, a right password) would leave one for a key a stranger typed.
        await trx.deleteFrom('auth_attempts').where('scope', '=', scope).where('key', '=', key).execute();
      } else if (r.times !== null) {
        let q = trx
          .updateTable('auth_attempts')
          .set({ times: r.times.join(',') })
          .where('scope', '=', scope)
          .where('key', '=', key);
        if (expiresAt !== null) q = q.set({ expires_at: expiresAt });
        await q.execute();
      }
      return r.out;
    });
  }

  /**
   * Deletes the rows whose every attempt has left its window, and each throttle's soonest expiring
   * beyond `maxRows`, once a minute per process or sooner under many attempts (the keys are typed
   * by strangers: the table must not keep them). On its own, outside any attempt's transaction,
   * so it never holds one key's row while waiting for another's; a failure (another process
   * pruning at once) is left for the next time.
   */
  async #prune(nowMs: number): Promise<void> {
    const every = Math.max(1, Math.floor(this.maxRows / 10));
    if (nowMs - this.#pruned < 60_000 && ++this.#sincePrune < every) return;
    this.#pruned = nowMs;
    this.#sincePrune = 0;
    try {
      await this.#db.kysely.deleteFrom('auth_attempts').where('expires_at', '<=', nowMs).execute();
      // A throttle over the cap: the expiry of its row at the cap, and every row of it expiring no
      // later goes. Per throttle, so that a flood of cheap keys (reset mails from ever new
      // addresses) cannot push out the rows of another (a username being guessed).
      const over = await this.#db.kysely
        .selectFrom('auth_attempts')
        .select('scope')
        .groupBy('scope')
        .having((eb) => eb.fn.countAll(), '>', this.maxRows)
        .execute();
      for (const { scope } of over) {
        const edge = await this.#db.kysely
          .selectFrom('auth_attempts')
          .select('expires_at')
          .where('scope', '=', scope)
          .orderBy('expires_at', 'desc')
          .offset(this.maxRows)
          .limit(1)
          .executeTakeFirst();
        if (edge !== undefined)
          await this.#db.kysely
            .deleteFrom('auth_attempts')
            .where('scope', '=', scope)
            .where('expires_at', '<=', edge.expires_at)
            .execute();
      }
    } catch {}
  }
}
