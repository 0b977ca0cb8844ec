import assert from 'node:assert/strict';
import { test } from 'node:test';
import { withScheduler } from '../../test/helpers/scheduler.ts';
import { belowRatio, type RatioRules, type RatioState, RatioWatch, ratioAction } from './ratio-watch.ts';

const GiB = 1024 ** 3;
const DAY = 86400;
const RULES: RatioRules = { minPercent: 60, graceBytes: 5 * GiB, periodSeconds: 14 * DAY };
const T0 = 1_900_000_000;

const state = (s: Partial<RatioState>): RatioState => ({
  uploaded: 0,
  downloaded: 0,
  warnedAt: null,
  revoked: null,
  ...s,
});

test('below the ratio: exact at the threshold, and with byte counts past 2^53 / 100', () => {
  assert.equal(belowRatio(59, 100, 60), true);
  assert.equal(belowRatio(60, 100, 60), false, 'exactly 0.6 is not below 0.6');
  assert.equal(belowRatio(0, 0, 60), false);
  const big = 2 ** 52 + 1; // big × 100 is not exact in a double
  assert.equal(belowRatio(big, big, 100), false);
  assert.equal(belowRatio(big - 1, big, 100), true);
});

test('ratio action at each threshold: grace, ratio, period', () => {
  // The grace: judged from exactly graceBytes on.
  assert.equal(ratioAction(state({ downloaded: 5 * GiB - 1 }), RULES, T0), null);
  assert.equal(ratioAction(state({ downloaded: 5 * GiB }), RULES, T0), 'warn');
  // At the minimum: not below.
  assert.equal(ratioAction(state({ downloaded: 10 * GiB, uploaded: 6 * GiB }), RULES, T0), null);
  assert.equal(ratioAction(state({ downloaded: 10 * GiB, uploaded: 6 * GiB - 1 }), RULES, T0), 'warn');
  // The period: a second short of it nothing happens; at it, rights go.
  const warned = state({ downloaded: 10 * GiB, warnedAt: T0 });
  assert.equal(ratioAction(warned, RULES, T0 + 14 * DAY - 1), null);
  assert.equal(ratioAction(warned, RULES, T0 + 14 * DAY), 'revoke');
  // Suspended by ratio watch: stays so while below; comes back at the minimum.
  const suspended = state({ downloaded: 10 * GiB, warnedAt: T0, revoked: 'ratio' });
  assert.equal(ratioAction(suspended, RULES, T0 + 100 * DAY), null);
  assert.equal(ratioAction({ ...suspended, uploaded: 6 * GiB }, RULES, T0 + 100 * DAY), 'restore');
  // Warned, then back at the minimum before the period: the warning is cleared.
  assert.equal(ratioAction({ ...warned, uploaded: 6 * GiB }, RULES, T0 + DAY), 'clear');
  // Staff's suspension is not ratio watch's to change.
  assert.equal(
    ratioAction(state({ downloaded: 10 * GiB, uploaded: 9 * GiB, revoked: 'staff' }), RULES, T0),
    null,
  );
  assert.equal(ratioAction(state({ downloaded: 10 * GiB, revoked: 'staff' }), RULES, T0), null);
  // Ratio watch off: it gives back what it took and clears its warnings, and does nothing else.
  const off = { ...RULES, minPercent: 0 };
  assert.equal(ratioAction(state({ downloaded: 10 * GiB }), off, T0), null);
  assert.equal(ratioAction(suspended, off, T0), 'restore');
  assert.equal(ratioAction(warned, off, T0), 'clear');
});

test('the scheduler over 30 simulated days: warned, suspended at day 14, restored when the ratio is back', async () => {
  await withScheduler(
    (o) => new RatioWatch(o),
    RULES,
    T0,
    async ({ reg, clock, policy, watch }) => {
      const low = await reg.addMember({ username: 'low' });
      const fine = await reg.addMember({ username: 'fine' });
      const fresh = await reg.addMember({ username: 'fresh' });
      const set = (id: number, uploaded: number, downloaded: number) =>
        reg.db.kysely.updateTable('members').set({ uploaded, downloaded }).where('id', '=', id).execute();
      await set(low.id, 1 * GiB, 10 * GiB);
      await set(fine.id, 10 * GiB, 10 * GiB);
      await set(fresh.id, 0, 4 * GiB); // within the grace
      const snap = (id: number) => [...policy.snapshot.members.values()].find((m) => m.id === id)!;

      const runs: Record<number, unknown> = {};
      for (let day = 0; day <= 30; day++) {
        clock.set(T0 + day * DAY);
        if (day === 20) await set(low.id, 6 * GiB, 10 * GiB); // seeded back to 0.6
        runs[day] = await watch.run();
        if (day === 0) {
          assert.equal(snap(low.id).warned, true, 'warned at the first run');
          assert.equal(snap(low.id).leech, 0);
        }
        if (day === 13) assert.equal(snap(low.id).leech, 0, 'day 13: still may leech');
        if (day === 14) assert.equal(snap(low.id).leech, 1, 'day 14: suspended by ratio watch');
        if (day === 19) assert.equal(snap(low.id).leech, 1);
        if (day === 20) {
          assert.equal(snap(low.id).leech, 0, 'ratio back: rights back');
          assert.equal(snap(low.id).warned, false);
        }
      }
      assert.deepEqual(runs[0], { warned: 1, revoked: 0, restored: 0, cleared: 0 });
      assert.deepEqual(runs[14], { warned: 0, revoked: 1, restored: 0, cleared: 0 });
      assert.deepEqual(runs[20], { warned: 0, revoked: 0, restored: 1, cleared: 0 });
      assert.deepEqual(runs[21], { warned: 0, revoked: 0, restored: 0, cleared: 0 });
      const row = await reg.member(low.id);
      assert.equal(row.ratio_warnings, 1);
      assert.equal(row.can_leech, 1);
      for (const id of [fine.id, fresh.id]) {
        const m = await reg.member(id);
        assert.equal(m.ratio_warned_at, null);
        assert.equal(m.can_leech, 1);
      }
      // Staff's suspension stands through ratio watch's runs; staff's restore starts a new period.
      await set(low.id, 1 * GiB, 10 * GiB);
      await reg.setCanLeech(low.id, false);
      clock.set(T0 + 40 * DAY);
      await watch.run();
      assert.equal((await reg.member(low.id)).can_leech, 0);
      assert.equal((await reg.member(low.id)).leech_reason, 'staff');
      await reg.setCanLeech(low.id, true);
      assert.deepEqual(await watch.run(), { warned: 1, revoked: 0, restored: 0, cleared: 0 });
      clock.set(T0 + 40 * DAY + 14 * DAY - 1);
      assert.deepEqual(await watch.run(), { warned: 0, revoked: 0, restored: 0, cleared: 0 });
    },
  );
});
