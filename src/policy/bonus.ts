import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { HeraldConfig } from '../config/schema.ts';
import type { BonusCursor } from '../db/bonus.ts';
import { ScheduledPass } from './scheduled.ts';

/**
 * Bonus points (issue #16), in hundredths of a point ("cents"). A member earns, for every hour
 * of seeding one torrent (pro rata, to the second of seeding time the accounting credits):
 *
 *   base + perGib × min(size in GiB, gibCap) + (seeders <= fewSeeders ? fewPoints : 0)
 *        + (age >= oldDays ? oldPoints : 0)
 *
 * like UNIT3D's categories (dying, large, old torrents): big, rare and old torrents earn more.
 * `seeders` counts the members seeding the torrent now (the member included), as of the last
 * accounting write. `base` 0 turns bonus points off (nothing is earned, and what is seeded while
 * off never earns later).
 */
export interface BonusRules {
  base: number;
  perGib: number;
  gibCap: number;
  fewSeeders: number;
  fewPoints: number;
  oldDays: number;
  oldPoints: number;
}

export type BonusConfigKey =
  | 'bonusBase'
  | 'bonusPerGib'
  | 'bonusGibCap'
  | 'bonusFewSeeders'
  | 'bonusFewPoints'
  | 'bonusOldDays'
  | 'bonusOldPoints';

export function bonusRules(c: Pick<HeraldConfig, BonusConfigKey>): BonusRules {
  return {
    base: c.bonusBase,
    perGib: c.bonusPerGib,
    gibCap: c.bonusGibCap,
    fewSeeders: c.bonusFewSeeders,
    fewPoints: c.bonusFewPoints,
    oldDays: c.bonusOldDays,
    oldPoints: c.bonusOldPoints,
  };
}

const GiB = 1024 ** 3;

/** Hundredths of a point per hour of seeding one torrent (whole GiB count; 0 when off). */
export function hourlyRate(
  t: { size: number; seeders: number; createdAt: number },
  rules: BonusRules,
  now: number,
): number {
  if (rules.base === 0) return 0;
  let r = rules.base + rules.perGib * Math.min(Math.floor(t.size / GiB), rules.gibCap);
  if (rules.fewSeeders > 0 && t.seeders <= rules.fewSeeders) r += rules.fewPoints;
  if (rules.oldDays > 0 && now - t.createdAt >= rules.oldDays * 86400) r += rules.oldPoints;
  return r;
}

/** What one run credited. */
export interface BonusRun {
  members: number;
  points: number;
}

/**
 * The scheduler (every `bonus_interval`, and on `run()`): pays the seeding time the accounting
 * credited since the last run, torrent by torrent at `hourlyRate`, as one ledger row per member
 * and page, in one transaction per page (the paid seeding time moves in the same transaction, so
 * nothing is paid twice), with a turn of the event loop between pages. Runs in one process (worker 0 with workers).
 */
export class BonusWatch extends ScheduledPass<BonusRules, BonusRun> {
  protected readonly name = 'bonus points';

  protected async pass(): Promise<BonusRun> {
    const reg = this.o.registry();
    const now = this.o.clock.now();
    const out: BonusRun = { members: 0, points: 0 };
    // A page at a time (by key), with a turn of the event loop between pages.
    for (let after: BonusCursor | null = null; ; ) {
      const rules = this.o.rules;
      const r = await reg.bonus.payPage(
        (t) => hourlyRate(t, rules, now),
        rules.base > 0 && rules.fewSeeders > 0,
        now,
        after,
      );
      out.members += r.members;
      out.points += r.points;
      if (r.next === null) return out;
      after = r.next;
      await yieldToLoop();
    }
  }
}
