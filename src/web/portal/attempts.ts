import type { Accounts } from '../../db/accounts.ts';

/**
 * One of the portal's guessing limits: at most `limit` attempts per key (a client address, a
 * username, a member id) in a sliding window of `windowMs`, counted in the database
 * (`AuthAttempts.take`), so that every process serving it (`--workers N`, several instances
 * on one database) counts one total: counters in each process's memory gave a guesser who
 * spreads attempts over N processes N times the limit. Each throttle has its own `scope`.
 *
 * `take` checks and records in one transaction before the (slow) check it guards, so requests at
 * once cannot all pass first; an attempt that turns out not to count is given back with `release`.
 */
export class AttemptLimit {
  readonly scope: string;
  readonly limit: number;
  readonly windowMs: number;

  constructor(scope: string, opts: { limit: number; windowMs: number }) {
    this.scope = scope;
    this.limit = opts.limit;
    this.windowMs = opts.windowMs;
  }

  /** 0 when the attempt is taken; otherwise the milliseconds until there is room again. */
  take(accounts: Accounts, key: string): Promise<number> {
    return accounts.attempts.take(this.scope, key, this.limit, this.windowMs, Date.now());
  }

  release(accounts: Accounts, key: string): Promise<void> {
    return accounts.attempts.release(this.scope, key);
  }
}
