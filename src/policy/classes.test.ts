import assert from 'node:assert/strict';
import { test } from 'node:test';
import { engines } from '../../test/helpers/db.ts';
import { withScheduler } from '../../test/helpers/scheduler.ts';
import { parseClasses } from '../config/classes.ts';
import { ClassWatch, classChange, classFor, meetsClass } from './classes.ts';

const GiB = 1024 ** 3;
const NAMES = ['User', 'Power User', 'Elite'];
const DAY = 86400;
const T0 = 1_900_000_000;
const CLASSES = parseClasses([
  'User: slots=2',
  'Power User: days=28 uploaded=25GiB ratio=105 slots=5 invites=1',
  'Elite: days=90; uploaded=500GiB; ratio=200; seed_hours=1000; upload_factor=110; hnr_immune=1',
]);

test('member_classes: names, keys, units and ranges; mistakes say which entry and why', () => {
  assert.deepEqual(
    CLASSES.map((c) => [c.name, c.days, c.uploaded, c.ratioPercent, c.seedHours, c.slots, c.invites]),
    [
      ['User', 0, 0, 0, 0, 2, null],
      ['Power User', 28, 25 * GiB, 105, 0, 5, 1],
      ['Elite', 90, 500 * GiB, 200, 1000, 0, null],
    ],
  );
  assert.deepEqual(
    [CLASSES[2].uploadFactor, CLASSES[2].downloadFactor, CLASSES[2].hnrImmune],
    [110, 100, true],
  );
  assert.throws(() => parseClasses(['User', 'user']), /listed twice/);
  assert.throws(() => parseClasses(['Power User: days=x']), /"days=x" is not key=number/);
  assert.throws(() => parseClasses(['A: colour=1']), /keys: days, uploaded/);
  assert.throws(() => parseClasses(['A: days=2GiB']), /only uploaded takes a unit/);
  assert.throws(() => parseClasses(['A: slots=100001']), /slots must be <= 100000/);
  assert.throws(() => parseClasses(['<b>']), /a class name is/);
});

test('thresholds from exactly their value: age, upload, ratio (exact; nothing downloaded meets it), seeding time', () => {
  const pu = CLASSES[1];
  const m = { createdAt: T0, uploaded: 25 * GiB, downloaded: 20 * GiB, seedTime: 0 };
  assert.equal(meetsClass(pu, m, T0 + 28 * DAY - 1), false, 'a second short of 28 days');
  assert.equal(meetsClass(pu, m, T0 + 28 * DAY), true);
  assert.equal(meetsClass(pu, { ...m, uploaded: 25 * GiB - 1 }, T0 + 28 * DAY), false);
  assert.equal(meetsClass(pu, { ...m, downloaded: 25 * GiB }, T0 + 28 * DAY), false, 'ratio 1.00 < 1.05');
  assert.equal(
    meetsClass(pu, { ...m, uploaded: 105, downloaded: 100 }, T0 + 28 * DAY),
    false,
    'upload too low',
  );
  const exact = { ...m, uploaded: 105 * GiB, downloaded: 100 * GiB };
  assert.equal(meetsClass(pu, exact, T0 + 28 * DAY), true, 'ratio exactly 1.05');
  assert.equal(meetsClass(pu, { ...exact, downloaded: 100 * GiB + 1 }, T0 + 28 * DAY), false);
  assert.equal(meetsClass(pu, { ...m, downloaded: 0 }, T0 + 28 * DAY), true, 'nothing downloaded');
  const el = { createdAt: T0, uploaded: 600 * GiB, downloaded: 100 * GiB, seedTime: 1000 * 3600 - 1 };
  assert.equal(classFor(el, CLASSES, T0 + 90 * DAY), 1, 'a second of seeding short of Elite');
  assert.equal(classFor({ ...el, seedTime: 1000 * 3600 }, CLASSES, T0 + 90 * DAY), 2);
  assert.equal(classFor(el, [], T0), -1);
});

test('class changes: promoted up the list, demoted down it; none when there, or set by staff', () => {
  const m = { createdAt: T0, uploaded: 30 * GiB, downloaded: 10 * GiB, seedTime: 0, locked: false };
  assert.deepEqual(classChange({ ...m, cls: null }, CLASSES, T0 + 28 * DAY), {
    to: 'Power User',
    reason: 'promoted',
  });
  assert.equal(classChange({ ...m, cls: 'Power User' }, CLASSES, T0 + 28 * DAY), null);
  assert.equal(classChange({ ...m, cls: null }, CLASSES, T0 + 27 * DAY), null, 'null is the first class');
  assert.deepEqual(classChange({ ...m, cls: 'Elite' }, CLASSES, T0 + 28 * DAY), {
    to: 'Power User',
    reason: 'demoted',
  });
  assert.equal(classChange({ ...m, cls: 'Elite', locked: true }, CLASSES, T0 + 28 * DAY), null);
  assert.deepEqual(classChange({ ...m, cls: 'Gone' }, CLASSES, T0 + DAY), { to: 'User', reason: 'promoted' });
});

test('the scheduler over 120 simulated days (SQLite and PostgreSQL): promotions at the thresholds, a demotion, staff lock, history', async () => {
  for (const engine of engines)
    await withScheduler(
      (o) => new ClassWatch(o),
      CLASSES,
      T0,
      async ({ reg, clock, policy, watch }) => {
        const k = reg.db.kysely;
        const ann = await reg.addMember({ username: 'ann' });
        const bob = await reg.addMember({ username: 'bob' });
        const set = (id: number, v: { uploaded?: number; downloaded?: number; seed_time?: number }) =>
          k.updateTable('members').set(v).where('id', '=', id).execute();
        await k.updateTable('members').set({ created_at: T0 }).execute();
        await set(ann.id, { uploaded: 600 * GiB, downloaded: 100 * GiB, seed_time: 1000 * 3600 });
        await set(bob.id, { uploaded: 30 * GiB, downloaded: 10 * GiB });
        const cls = () => policy.snapshot.classById;
        const runs: Record<number, unknown> = {};
        for (let day = 0; day <= 120; day++) {
          clock.set(T0 + day * DAY);
          if (day === 50) await set(bob.id, { downloaded: 100 * GiB }); // ratio 0.3: below Power User
          if (day === 100)
            await reg.classes.set(await reg.member(bob.id), 'Elite', {
              by: null,
              at: clock.now(),
              classes: NAMES,
            });
          runs[day] = await watch.run();
          await policy.refresh();
          if (day === 27) assert.equal(cls().get(bob.id)?.name, 'User');
          if (day === 28) {
            assert.equal(cls().get(bob.id)?.name, 'Power User', 'day 28: promoted');
            assert.equal(cls().get(bob.id)?.slots, 5);
            assert.equal(cls().get(ann.id)?.name, 'Power User');
          }
          if (day === 90) assert.equal(cls().get(ann.id)?.uploadFactor, 110, 'day 90: Elite');
        }
        assert.deepEqual(runs[28], { promoted: 2, demoted: 0 });
        assert.deepEqual(runs[50], { promoted: 0, demoted: 1 });
        assert.deepEqual(runs[90], { promoted: 1, demoted: 0 });
        assert.deepEqual(runs[101], { promoted: 0, demoted: 0 }, 'staff set Elite by hand: left alone');
        assert.equal(cls().get(bob.id)?.name, 'Elite');
        const h = await reg.classes.history(bob.id);
        assert.deepEqual(
          h.map((r) => [r.from_class, r.to_class, r.reason]),
          [
            ['User', 'Elite', 'staff'],
            ['Power User', 'User', 'demoted'],
            [null, 'Power User', 'promoted'],
          ],
        );
        assert.equal(h[1].at, T0 + 50 * DAY);
        // Back to automatic: the next run judges the figures again.
        await reg.classes.set(await reg.member(bob.id), null, { by: null, at: clock.now(), classes: NAMES });
        await assert.rejects(
          reg.classes.set(await reg.member(bob.id), 'Gold', { by: null, at: clock.now(), classes: NAMES }),
          /class: one of User, Power User, Elite, or automatic/,
        );
        assert.deepEqual(await watch.run(), { promoted: 0, demoted: 1 });
      },
      { engine, classes: CLASSES },
    );
});
