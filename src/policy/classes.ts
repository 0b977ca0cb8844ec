import type { ClassDef } from '../config/classes.ts';
import { inPages, inSlices, PAGE, ScheduledPass } from './scheduled.ts';

export type { ClassDef } from '../config/classes.ts';

/** What a member's class is judged on. */
export interface ClassFigures {
  createdAt: number;
  uploaded: number;
  downloaded: number;
  /** Seconds seeded over all torrents. */
  seedTime: number;
}

/**
 * Whether a member meets a class's thresholds at `now`: account age, credited upload, credited
 * ratio (exact: BigInt; nothing downloaded meets any ratio) and seeding time, each from exactly
 * the threshold on.
 */
export function meetsClass(c: ClassDef, m: ClassFigures, now: number): boolean {
  if (now - m.createdAt < c.days * 86400) return false;
  if (m.uploaded < c.uploaded) return false;
  if (m.seedTime < c.seedHours * 3600) return false;
  return m.downloaded === 0 || BigInt(m.uploaded) * 100n >= BigInt(m.downloaded) * BigInt(c.ratioPercent);
}

/** The highest class whose thresholds all hold (the first always does); -1 with no classes. */
export function classFor(m: ClassFigures, classes: readonly ClassDef[], now: number): number {
  for (let i = classes.length - 1; i > 0; i--) if (meetsClass(classes[i], m, now)) return i;
  return classes.length > 0 ? 0 : -1;
}

/** The index of a member's class (null = the first; a name no longer configured = -1). */
export function classIndex(name: string | null, classes: readonly ClassDef[]): number {
  if (name === null) return classes.length > 0 ? 0 : -1;
  return classes.findIndex((c) => c.name === name);
}

/** A member's class definition as the tracker applies it (null = no classes, or an unknown name). */
export function classOf(name: string | null, classes: readonly ClassDef[]): ClassDef | null {
  return classes[classIndex(name, classes)] ?? null;
}

/**
 * The scheduler's decision for one member: move to the class the figures give, promoted (up the
 * list) or demoted; nothing when it is already there, or when staff set the class by hand.
 */
export function classChange(
  m: ClassFigures & { cls: string | null; locked: boolean },
  classes: readonly ClassDef[],
  now: number,
): { to: string; reason: 'promoted' | 'demoted' } | null {
  if (m.locked || classes.length === 0) return null;
  const from = classIndex(m.cls, classes);
  const to = classFor(m, classes, now);
  if (to === from) return null;
  return { to: classes[to].name, reason: to > from ? 'promoted' : 'demoted' };
}

/** What one run changed. */
export interface ClassRun {
  promoted: number;
  demoted: number;
}

/**
 * The scheduler (every `class_interval`, and on `run()`): reads every member's figures, decides
 * with `classChange`, and writes the changes with a history row each, a slice at a time
 * (`inSlices`: a transaction each, with a turn of the event loop between), bumping the revision (running trackers apply the new class's slots and factors at their next
 * policy reload, which it asks for). Runs in one process (worker 0 with workers); each update
 * holds only if the member's class is still what it was decided from.
 */
export class ClassWatch extends ScheduledPass<readonly ClassDef[], ClassRun> {
  protected readonly name = 'member classes';

  protected async pass(): Promise<ClassRun> {
    const classes = this.o.rules;
    const out: ClassRun = { promoted: 0, demoted: 0 };
    if (classes.length === 0) return out;
    const reg = this.o.registry();
    const now = this.o.clock.now();
    const changes: { id: number; from: string | null; to: string; reason: 'promoted' | 'demoted' }[] = [];
    await inPages(
      (after) => reg.classes.candidates(after, PAGE),
      (r) => {
        const c = classChange(
          {
            createdAt: r.created_at,
            uploaded: r.uploaded,
            downloaded: r.downloaded,
            seedTime: r.seed_time,
            cls: r.class,
            locked: r.class_locked === 1,
          },
          classes,
          now,
        );
        if (c !== null) changes.push({ id: r.id, from: r.class, ...c });
      },
    );
    for (const reason of await inSlices(changes, (slice) => reg.classes.apply(slice, now))) out[reason]++;
    return out;
  }
}
