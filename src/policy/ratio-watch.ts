import { inPages, inSlices, PAGE, ScheduledPass, type SchedulerOptions } from './scheduled.ts';

/**
 * Ratio watch (issue #16): a member whose credited ratio stays below a minimum, once past a grace
 * amount of download, is warned; still below `periodSeconds` after the warning, the member loses
 * download rights (`can_leech`), and gets them back when the ratio is back at the minimum.
 * Seeding is never refused, so the way back is always open.
 */
export interface RatioRules {
  /** Least ratio in percent (60 = 0.6); 0 = ratio watch off. */
  minPercent: number;
  /** Credited download below which the ratio is not judged (bytes). */
  graceBytes: number;
  /** Seconds from the warning to the loss of download rights. */
  periodSeconds: number;
}

/** What ratio watch knows of a member. */
export interface RatioState {
  uploaded: number;
  downloaded: number;
  /** When warned (null = not warned now). */
  warnedAt: number | null;
  /** Who took download rights: ratio watch, staff, or nobody (the member has them). */
  revoked: 'ratio' | 'staff' | null;
}

/**
 * What to do with a member now: warn, revoke download rights, restore them (and clear the
 * warning), clear the warning, or nothing. Staff's suspension is staff's: ratio watch leaves it
 * alone. Turning ratio watch off (minPercent 0) gives back what it took.
 */
export type RatioAction = 'warn' | 'revoke' | 'restore' | 'clear' | null;

/**
 * Below the minimum: uploaded / downloaded < minPercent / 100, compared exactly (BigInt: byte
 * counts up to 2^53 times a percentage do not fit a double exactly).
 */
export function belowRatio(uploaded: number, downloaded: number, minPercent: number): boolean {
  return BigInt(uploaded) * 100n < BigInt(downloaded) * BigInt(minPercent);
}

export function ratioAction(m: RatioState, rules: RatioRules, now: number): RatioAction {
  if (m.revoked === 'staff') return null;
  const judged =
    rules.minPercent > 0 &&
    m.downloaded >= rules.graceBytes &&
    belowRatio(m.uploaded, m.downloaded, rules.minPercent);
  if (!judged) {
    if (m.revoked === 'ratio') return 'restore';
    return m.warnedAt !== null ? 'clear' : null;
  }
  if (m.warnedAt === null) return 'warn';
  if (m.revoked === null && now - m.warnedAt >= rules.periodSeconds) return 'revoke';
  return null;
}

/** What one run changed. */
export interface RatioRun {
  warned: number;
  revoked: number;
  restored: number;
  cleared: number;
}

/**
 * The scheduler: every `everySeconds` (and on `run()`), reads the members ratio watch may act on,
 * decides with `ratioAction` and writes the changes (`inSlices`: a transaction per slice) that bump the revision,
 * so running trackers (every worker) pick them up with their next policy reload; then asks for
 * that reload. Reads only members past the grace, warned or suspended by it: others have nothing
 * to do. Time comes from the injected clock (tests run days in a few calls).
 *
 * Runs in one process (worker 0 with workers); two instances on one database would only repeat
 * the same changes: each update is conditional on the state it was decided from.
 */
export type RatioWatchOptions = SchedulerOptions<RatioRules>;

export class RatioWatch extends ScheduledPass<RatioRules, RatioRun> {
  protected readonly name = 'ratio watch';

  protected async pass(): Promise<RatioRun> {
    const { rules, clock } = this.o;
    const reg = this.o.registry();
    const now = clock.now();
    const out: RatioRun = { warned: 0, revoked: 0, restored: 0, cleared: 0 };
    const changes: { id: number; action: Exclude<RatioAction, null>; from: RatioState }[] = [];
    await inPages(
      (after) => reg.ratioWatchCandidates(rules.minPercent > 0 ? rules.graceBytes : null, after, PAGE),
      (r) => {
        const from: RatioState = {
          uploaded: r.uploaded,
          downloaded: r.downloaded,
          warnedAt: r.ratio_warned_at,
          revoked: r.can_leech === 1 ? null : r.leech_reason === 'ratio' ? 'ratio' : 'staff',
        };
        const action = ratioAction(from, rules, now);
        if (action !== null) changes.push({ id: r.id, action, from });
      },
    );
    if (changes.length === 0) return out;
    const applied = await inSlices(changes, (slice) => reg.applyRatioWatch(slice, now));
    for (const a of applied) {
      if (a === 'warn') out.warned++;
      else if (a === 'revoke') out.revoked++;
      else if (a === 'restore') out.restored++;
      else out.cleared++;
    }
    return out;
  }
}
