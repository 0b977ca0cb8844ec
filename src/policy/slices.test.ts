/**
 * The schedulers on a site with more changes than one slice (SQLite, where a statement holds the
 * event loop): each pass writes its changes a bounded slice at a time, in a transaction of its
 * own, with a turn of the event loop between slices, so announces are answered while a pass on a
 * large site runs. Turns of the loop are counted, not time (as policy.test.ts's dropUntracked).
 * docs/benchmarks.md "Scheduler passes on a large site" has the stalls measured on the bench's site.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { addMembers, STRICT_HNR_RULES, snatchAll, withScheduler } from '../../test/helpers/scheduler.ts';
import { turnsDuring } from '../../test/helpers/turns.ts';
import { parseClasses } from '../config/classes.ts';
import { BonusWatch } from './bonus.ts';
import { ClassWatch } from './classes.ts';
import { HitAndRunWatch } from './hit-and-run.ts';
import { RatioWatch } from './ratio-watch.ts';
import { SLICE } from './scheduled.ts';

const GiB = 1024 ** 3;
const HOUR = 3600;
const DAY = 86400;
const T0 = 1_900_000_000;
/** Members (and changes) per test: four slices. */
const N = 4 * SLICE;

/** A scheduler's options with no policy reload after a pass (its own turns are not the pass's). */
const quiet = <O>(o: O): O => ({ ...o, refreshPolicy: async () => {} });

test('ratio watch warns more members than a slice with the event loop turning between slices', async () => {
  await withScheduler(
    (o) => new RatioWatch(quiet(o)),
    { minPercent: 60, graceBytes: GiB, periodSeconds: 3 * DAY },
    T0,
    async ({ reg, watch }) => {
      await addMembers(reg, N, { downloaded: 10 * GiB, uploaded: GiB });
      const { out, turns } = await turnsDuring(() => watch.run());
      assert.equal(out.warned, N);
      // Without slices: one transaction of N updates, and 1 turn (the page read's).
      assert.ok(turns >= 4, `the event loop turned ${turns} times during the pass`);
    },
  );
});

test('member classes promote more members than a slice with the event loop turning between slices', async () => {
  const classes = parseClasses(['User', 'Power: days=1 uploaded=10GiB']);
  await withScheduler(
    (o) => new ClassWatch(quiet(o)),
    classes,
    T0,
    async ({ reg, watch }) => {
      await addMembers(reg, N, { uploaded: 20 * GiB });
      const { out, turns } = await turnsDuring(() => watch.run());
      assert.equal(out.promoted, N);
      assert.ok(turns >= 4, `the event loop turned ${turns} times during the pass`);
    },
    { classes },
  );
});

test('hit-and-run judges, ends and suspends more than a slice with the event loop turning between slices', async () => {
  await withScheduler(
    (o) => new HitAndRunWatch(quiet(o)),
    STRICT_HNR_RULES,
    T0,
    async ({ reg, clock, watch }) => {
      await reg.db.kysely.insertInto('settings').values({ key: 'hnr_since', value: '0' }).execute();
      const ids = await addMembers(reg, N);
      const snatched = T0 - 20 * DAY;
      await snatchAll(reg, ids, snatched, { raw_downloaded: GiB, completed_at: snatched, seed_time: HOUR });
      // Every snatch judged a hit-and-run, and every member suspended (max 1).
      const marked = await turnsDuring(() => watch.run());
      assert.deepEqual(marked.out, { marked: N, seeded: 0, expired: 0, revoked: N, restored: 0 });
      // Without slices: 0 turns (the judging pages are read and written back to back).
      assert.ok(marked.turns >= 4, `the event loop turned ${marked.turns} times while judging`);
      clock.set(T0 + 30 * DAY);
      const ended = await turnsDuring(() => watch.run());
      assert.deepEqual(ended.out, { marked: 0, seeded: 0, expired: N, revoked: 0, restored: N });
      // Without slices: 1 turn (the page read's of the active ones).
      assert.ok(ended.turns >= 4, `the event loop turned ${ended.turns} times while ending`);
    },
  );
});

test('bonus points pay more rows than a page with the event loop turning between pages, each row once', async () => {
  const rules = { base: 100, perGib: 0, gibCap: 0, fewSeeders: 0, fewPoints: 0, oldDays: 0, oldPoints: 0 };
  await withScheduler(
    (o) => new BonusWatch(quiet(o)),
    rules,
    T0,
    async ({ reg, watch }) => {
      const ids = await addMembers(reg, N);
      await snatchAll(reg, ids, T0, { seed_time: HOUR });
      const { out, turns } = await turnsDuring(() => watch.run());
      assert.deepEqual(out, { members: N, points: N * 100 });
      // Without pages turning the loop: 0 turns.
      assert.ok(turns >= 4, `the event loop turned ${turns} times during the pass`);
      assert.deepEqual(await watch.run(), { members: 0, points: 0 }, 'nothing is paid twice');
    },
  );
});
