import { ManualClock } from '../../src/core/clock.ts';
import { createLogger } from '../../src/core/log.ts';
import { openDatabase } from '../../src/db/connect.ts';
import { Registry } from '../../src/db/registry.ts';
import { Policy } from '../../src/policy/policy.ts';
import type { SchedulerOptions } from '../../src/policy/scheduled.ts';
import type { Engine } from './db.ts';

/** What a scheduler test works with: a fresh database, a manual clock, the policy it reloads. */
export interface SchedulerRig<W> {
  reg: Registry;
  clock: ManualClock;
  policy: Policy;
  watch: W;
}

/**
 * Runs `fn` with a scheduler (ratio watch, hit-and-run) over a fresh database of `engine`
 * (SQLite in memory by default), its clock at `t0`, then closes and drops the database.
 */
export async function withScheduler<Rules, W>(
  make: (o: SchedulerOptions<Rules>) => W,
  rules: Rules,
  t0: number,
  fn: (rig: SchedulerRig<W>) => Promise<void>,
  engine?: Engine,
): Promise<void> {
  const made =
    engine === undefined ? { url: 'sqlite::memory:', drop: async () => {} } : await engine.create();
  const db = await openDatabase(made.url, '');
  try {
    const reg = new Registry(db);
    const clock = new ManualClock(t0);
    const policy = new Policy({ mode: 'private', logger: createLogger('silent') });
    await policy.connect(reg);
    const watch = make({
      registry: () => reg,
      rules,
      clock,
      logger: createLogger('silent'),
      refreshPolicy: () => policy.refresh(),
    });
    await fn({ reg, clock, policy, watch });
  } finally {
    await db.close();
    await made.drop();
  }
}
