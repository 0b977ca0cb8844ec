import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { parseClasses } from '../config/classes.ts';
import type { HeraldConfig } from '../config/schema.ts';
import { inPages, inSlices, PAGE, ScheduledPass, SLICE } from './scheduled.ts';

/**
 * Hit-and-run (issue #16): after a snatch, a member must seed the torrent at least `seedSeconds`
 * within `windowSeconds` of the snatch, or reach `ratioPercent` on it (uploaded / downloaded as
 * the client reported them: freeleech does not excuse a hit-and-run). A snatch that has done
 * neither by its deadline is a hit-and-run; `max` active ones take download rights away, until
 * fewer are active. A hit-and-run ends when the member seeds the torrent to `seedSeconds` after
 * all, when it is `expireSeconds` old, or when staff forgive it. Seeding is never refused, so the
 * way back is always open.
 */
export interface HnrRules {
  /** Seeding time a snatch needs (seconds); 0 = hit-and-run off. */
  seedSeconds: number;
  /** Seconds from the snatch to the deadline. */
  windowSeconds: number;
  /** A ratio on the torrent, in percent, that fulfils the rule as well (0 = only seeding time). */
  ratioPercent: number;
  /** Active hit-and-runs at which download rights go (0 = never). */
  max: number;
  /** Seconds after marking when a hit-and-run stops counting (0 = never). */
  expireSeconds: number;
  /** Roles never marked. */
  immuneRoles: readonly string[];
  /** Member classes never marked (`hnr_immune=1` in `member_classes`); null is the first class. */
  immuneClasses?: readonly (string | null)[];
}

/** The configuration keys of hit-and-run. */
export type HnrConfigKey =
  | 'hnrSeedHours'
  | 'hnrDays'
  | 'hnrRatioPercent'
  | 'hnrMax'
  | 'hnrExpireDays'
  | 'hnrImmuneRoles'
  | 'memberClasses';

/** The hit-and-run rules of a configuration (issue #16). */
export function hnrRules(c: Pick<HeraldConfig, HnrConfigKey>): HnrRules {
  return {
    seedSeconds: c.hnrSeedHours * 3600,
    windowSeconds: c.hnrDays * 86400,
    ratioPercent: c.hnrRatioPercent,
    max: c.hnrMax,
    expireSeconds: c.hnrExpireDays * 86400,
    immuneRoles: c.hnrImmuneRoles,
    immuneClasses: parseClasses(c.memberClasses).flatMap((k, i) =>
      !k.hnrImmune ? [] : i === 0 ? [k.name, null] : [k.name],
    ),
  };
}

/** A member's figures on one torrent (member_torrents), as hit-and-run judges them. */
export interface SnatchFigures {
  seedTime: number;
  rawUploaded: number;
  rawDownloaded: number;
}

/** Whether the member did what a snatch asks: seeded long enough, or reached the ratio on it. */
export function hnrFulfilled(s: SnatchFigures, rules: HnrRules): boolean {
  if (s.seedTime >= rules.seedSeconds) return true;
  // Exact (BigInt): byte counts up to 2^53 times a percentage do not fit a double.
  return (
    rules.ratioPercent > 0 &&
    s.rawDownloaded > 0 &&
    BigInt(s.rawUploaded) * 100n >= BigInt(s.rawDownloaded) * BigInt(rules.ratioPercent)
  );
}

export type SnatchVerdict = 'pending' | 'fulfilled' | 'exempt' | 'hit-and-run';

/**
 * A snatch, judged once at its deadline (`completedAt + windowSeconds`, to the second): before it,
 * pending; from it on, fulfilled, exempt (an immune member, or a snatch of nothing downloaded:
 * the member had the data already) or a hit-and-run.
 */
export function judgeSnatch(
  s: SnatchFigures & { completedAt: number; immune: boolean },
  rules: HnrRules,
  now: number,
): SnatchVerdict {
  if (now < s.completedAt + rules.windowSeconds) return 'pending';
  if (s.immune || s.rawDownloaded === 0) return 'exempt';
  return hnrFulfilled(s, rules) ? 'fulfilled' : 'hit-and-run';
}

/** An active hit-and-run now: seeded to the hours after all, expired, or still active (null). */
export function activeHnrAction(
  h: SnatchFigures & { markedAt: number },
  rules: HnrRules,
  now: number,
): 'seeded' | 'expired' | null {
  if (hnrFulfilled(h, rules)) return 'seeded';
  if (rules.expireSeconds > 0 && now - h.markedAt >= rules.expireSeconds) return 'expired';
  return null;
}

/**
 * Download rights by the number of active hit-and-runs: taken at `max` (from a member who has
 * them: a suspension by staff or ratio watch is theirs), given back below it. Hit-and-run off (or
 * `max` 0) gives back what it took.
 */
export function hnrRightsAction(
  active: number,
  m: { canLeech: boolean; reason: string | null },
  rules: HnrRules,
): 'revoke' | 'restore' | null {
  const over = rules.seedSeconds > 0 && rules.max > 0 && active >= rules.max;
  if (over && m.canLeech) return 'revoke';
  if (!over && !m.canLeech && m.reason === 'hnr') return 'restore';
  return null;
}

/** Active hit-and-runs at which download rights go, as the rules stand (0 = never: off, or `max` 0). */
export function hnrThreshold(rules: HnrRules): number {
  return rules.seedSeconds > 0 ? rules.max : 0;
}

/** What one run changed. */
export interface HnrRun {
  marked: number;
  seeded: number;
  expired: number;
  revoked: number;
  restored: number;
}

/**
 * The scheduler: every `hnr_interval` seconds (and on `run()`) it judges the snatches past their
 * deadline not judged yet, ends the active hit-and-runs that were seeded after all or expired,
 * then takes or gives back download rights by the number still active; each step's changes a
 * slice at a time (`inSlices`: a transaction each, with a turn of the event loop between) that
 * bump the revision, so running trackers (every worker) apply them with their
 * next policy reload, which it then asks for. Snatches made before hit-and-run was first turned
 * on are never judged (the setting `hnr_since`): turning it on does not mark a site's history.
 *
 * Runs in one process (worker 0 with workers); every update is conditional on the state it was
 * decided from, so a second instance on one database only repeats nothing.
 */
export class HitAndRunWatch extends ScheduledPass<HnrRules, HnrRun> {
  protected readonly name = 'hit-and-run';

  protected async pass(): Promise<HnrRun> {
    const { rules, clock } = this.o;
    const reg = this.o.registry();
    const now = clock.now();
    const out: HnrRun = { marked: 0, seeded: 0, expired: 0, revoked: 0, restored: 0 };
    if (rules.seedSeconds > 0) {
      const since = await reg.hnr.since(now);
      const immune = new Set(rules.immuneRoles);
      const immuneClasses = new Set(rules.immuneClasses ?? []);
      // Judged rows leave the candidates (hnr_state), so each page is the next one. A slice per
      // page (read, judged and written in its own transaction), with a turn of the event loop
      // between: back to back, judging 200,000 snatches held the loop 15 s (docs/benchmarks.md).
      for (let first = true; ; first = false) {
        if (!first) await yieldToLoop();
        const rows = await reg.hnr.dueSnatches(since, now - rules.windowSeconds, SLICE);
        const verdicts = rows.map((r) => ({
          memberId: r.member_id,
          torrentId: r.torrent_id,
          snatchedAt: r.completed_at,
          seedTime: r.seed_time,
          verdict: judgeSnatch(
            {
              seedTime: r.seed_time,
              rawUploaded: r.raw_uploaded,
              rawDownloaded: r.raw_downloaded,
              completedAt: r.completed_at,
              immune: r.hnr_immune === 1 || immune.has(r.role) || immuneClasses.has(r.class),
            },
            rules,
            now,
          ),
        }));
        out.marked += await reg.hnr.applyVerdicts(verdicts, now);
        if (rows.length < SLICE) break;
      }
      const ends: { id: number; status: 'seeded' | 'expired' }[] = [];
      await inPages(
        (after) => reg.hnr.active(after, PAGE),
        (h) => {
          const a = activeHnrAction(
            {
              seedTime: h.seed_time,
              rawUploaded: h.raw_uploaded,
              rawDownloaded: h.raw_downloaded,
              markedAt: h.marked_at,
            },
            rules,
            now,
          );
          if (a !== null) ends.push({ id: h.id, status: a });
        },
      );
      for (const s of await inSlices(ends, (slice) => reg.hnr.end(slice, now))) out[s]++;
    }
    const rights: { id: number; action: 'revoke' | 'restore' }[] = [];
    for (const m of await reg.hnr.rightsCandidates(hnrThreshold(rules))) {
      const action = hnrRightsAction(
        m.active,
        { canLeech: m.can_leech === 1, reason: m.leech_reason },
        rules,
      );
      if (action !== null) rights.push({ id: m.id, action });
    }
    for (const a of await inSlices(rights, (slice) => reg.hnr.applyRights(slice, now)))
      out[a === 'revoke' ? 'revoked' : 'restored']++;
    return out;
  }
}
