import assert from 'node:assert/strict';
import { test } from 'node:test';
import { engines } from '../../test/helpers/db.ts';
import { withScheduler } from '../../test/helpers/scheduler.ts';
import {
  activeHnrAction,
  HitAndRunWatch,
  type HnrRules,
  hnrFulfilled,
  hnrRightsAction,
  judgeSnatch,
} from './hit-and-run.ts';

const HOUR = 3600;
const DAY = 86400;
const T0 = 1_900_000_000;
const RULES: HnrRules = {
  seedSeconds: 72 * HOUR,
  windowSeconds: 14 * DAY,
  ratioPercent: 100,
  max: 2,
  expireSeconds: 30 * DAY,
  immuneRoles: ['admin'],
};
const fig = (seedTime: number, rawUploaded = 0, rawDownloaded = 1000) => ({
  seedTime,
  rawUploaded,
  rawDownloaded,
});

test('fulfilled: seeding time from exactly the hours; ratio on the torrent from exactly r, exact past 2^53 / 100', () => {
  assert.equal(hnrFulfilled(fig(72 * HOUR - 1), RULES), false);
  assert.equal(hnrFulfilled(fig(72 * HOUR), RULES), true);
  assert.equal(hnrFulfilled(fig(0, 999, 1000), RULES), false);
  assert.equal(hnrFulfilled(fig(0, 1000, 1000), RULES), true, 'ratio 1.0 exactly');
  assert.equal(hnrFulfilled(fig(0, 10, 0), RULES), false, 'nothing downloaded: no ratio to speak of');
  assert.equal(hnrFulfilled(fig(0, 1000, 1000), { ...RULES, ratioPercent: 0 }), false, 'ratio off');
  const big = 2 ** 52 + 1;
  assert.equal(hnrFulfilled(fig(0, big, big), RULES), true);
  assert.equal(hnrFulfilled(fig(0, big - 1, big), RULES), false);
});

test('a snatch is judged from its deadline on, to the second; immune and nothing-downloaded snatches are exempt', () => {
  const s = { ...fig(HOUR), completedAt: T0, immune: false };
  assert.equal(judgeSnatch(s, RULES, T0 + 14 * DAY - 1), 'pending');
  assert.equal(judgeSnatch(s, RULES, T0 + 14 * DAY), 'hit-and-run');
  assert.equal(judgeSnatch({ ...s, seedTime: 72 * HOUR }, RULES, T0 + 14 * DAY), 'fulfilled');
  assert.equal(judgeSnatch({ ...s, immune: true }, RULES, T0 + 14 * DAY), 'exempt');
  assert.equal(judgeSnatch({ ...s, rawDownloaded: 0 }, RULES, T0 + 14 * DAY), 'exempt');
});

test('an active hit-and-run ends when seeded to the hours, or at its expiry to the second', () => {
  const h = { ...fig(HOUR), markedAt: T0 };
  assert.equal(activeHnrAction(h, RULES, T0 + 30 * DAY - 1), null);
  assert.equal(activeHnrAction(h, RULES, T0 + 30 * DAY), 'expired');
  assert.equal(activeHnrAction({ ...h, seedTime: 72 * HOUR }, RULES, T0 + DAY), 'seeded');
  assert.equal(activeHnrAction(h, { ...RULES, expireSeconds: 0 }, T0 + 3650 * DAY), null, 'never expires');
});

test('download rights: taken at max active, given back below it; others\u2019 suspensions left alone; off gives back', () => {
  const may = { canLeech: true, reason: null };
  const hnr = { canLeech: false, reason: 'hnr' };
  assert.equal(hnrRightsAction(1, may, RULES), null);
  assert.equal(hnrRightsAction(2, may, RULES), 'revoke');
  assert.equal(hnrRightsAction(2, hnr, RULES), null);
  assert.equal(hnrRightsAction(1, hnr, RULES), 'restore');
  assert.equal(hnrRightsAction(5, { canLeech: false, reason: 'ratio' }, RULES), null);
  assert.equal(hnrRightsAction(5, { canLeech: false, reason: 'staff' }, RULES), null);
  assert.equal(hnrRightsAction(0, { canLeech: false, reason: 'staff' }, RULES), null);
  assert.equal(hnrRightsAction(5, may, { ...RULES, max: 0 }), null, 'max 0: never suspended');
  assert.equal(hnrRightsAction(5, hnr, { ...RULES, seedSeconds: 0 }), 'restore', 'off: gives back');
});

test('the scheduler over 60 simulated days (SQLite and PostgreSQL): marks at the deadline, suspends at max, seeding after all and forgiveness end them, expiry too', async () => {
  for (const engine of engines)
    await withScheduler(
      (o) => new HitAndRunWatch(o),
      RULES,
      T0,
      async ({ reg, clock, policy, watch }) => {
        const k = reg.db.kysely;
        // A snatch from before hit-and-run was turned on is never judged.
        const old = await reg.addMember({ username: 'old' });
        const t = [];
        for (let i = 0; i < 5; i++)
          t.push(
            await reg.addTorrent({
              infoHash: String(i + 1).padStart(40, '0'),
              infoHashV2: null,
              name: `t${i}`,
              size: 1000,
              fileCount: 1,
            }),
          );
        const snatch = (memberId: number, torrentId: number, at: number, seedTime = 0, rawUp = 0) =>
          k
            .insertInto('member_torrents')
            .values({
              member_id: memberId,
              torrent_id: torrentId,
              uploaded: rawUp,
              downloaded: 1000,
              raw_uploaded: rawUp,
              raw_downloaded: 1000,
              seed_time: seedTime,
              announces: 2,
              completed_at: at,
              first_announce_at: at,
              last_announce_at: at,
            })
            .execute();
        const seed = (memberId: number, torrentId: number, seedTime: number) =>
          k
            .updateTable('member_torrents')
            .set({ seed_time: seedTime })
            .where('member_id', '=', memberId)
            .where('torrent_id', '=', torrentId)
            .execute();
        await snatch(old.id, t[0].id, T0 - DAY);
        assert.deepEqual(await watch.run(), { marked: 0, seeded: 0, expired: 0, revoked: 0, restored: 0 });
        assert.equal(await reg.setting('hnr_since'), String(T0));

        const lee = await reg.addMember({ username: 'lee' });
        const good = await reg.addMember({ username: 'good' });
        const boss = await reg.addMember({ username: 'boss', role: 'admin' });
        const shield = await reg.addMember({ username: 'shield' });
        await reg.hnr.setImmune(shield, true);
        // Day 1: lee snatches three torrents; good snatches one and seeds it; boss and shield snatch and leave.
        for (let i = 1; i <= 3; i++) await snatch(lee.id, t[i].id, T0 + DAY);
        await snatch(good.id, t[1].id, T0 + DAY, 10 * HOUR);
        await snatch(boss.id, t[1].id, T0 + DAY);
        await snatch(shield.id, t[1].id, T0 + DAY);
        const snap = (id: number) => [...policy.snapshot.members.values()].find((m) => m.id === id)!;
        const runs: Record<number, unknown> = {};
        for (let day = 2; day <= 60; day++) {
          clock.set(T0 + day * DAY);
          if (day === 10) await seed(good.id, t[1].id, 72 * HOUR); // before the deadline
          if (day === 20) await seed(lee.id, t[3].id, 72 * HOUR); // after it: made good
          runs[day] = await watch.run();
          await policy.refresh();
          if (day === 14) assert.equal(snap(lee.id).hnr ?? 0, 0, 'day 14: the deadline is day 15');
          if (day === 15) {
            assert.equal(snap(lee.id).hnr, 3, 'day 15: three hit-and-runs');
            assert.equal(snap(lee.id).leech, 3, 'at max (2): download rights go');
            assert.equal(snap(good.id).hnr, 0);
          }
          if (day === 20) assert.equal(snap(lee.id).leech, 3, 'two still active: still suspended');
          if (day === 21) {
            const [active] = await reg.hnr.list({ member: lee.id, status: 'active' });
            const f = await reg.hnr.forgive(active.id, {
              by: boss.id,
              note: 'seedbox died',
              max: RULES.max,
              at: clock.now(),
            });
            assert.equal(f.status, 'forgiven');
            await policy.refresh();
            assert.equal(snap(lee.id).leech, 0, 'forgiven below max: rights back at once');
            assert.equal(snap(lee.id).hnr, 1);
          }
        }
        assert.deepEqual(runs[15], { marked: 3, seeded: 0, expired: 0, revoked: 1, restored: 0 });
        assert.deepEqual(runs[20], { marked: 0, seeded: 1, expired: 0, revoked: 0, restored: 0 });
        assert.deepEqual(
          runs[45],
          { marked: 0, seeded: 0, expired: 1, revoked: 0, restored: 0 },
          'marked day 15 + 30',
        );
        assert.deepEqual(runs[46], { marked: 0, seeded: 0, expired: 0, revoked: 0, restored: 0 });
        const all = await reg.hnr.list({ member: lee.id });
        assert.deepEqual(all.map((h) => h.status).sort(), ['expired', 'forgiven', 'seeded']);
        const forgiven = all.find((h) => h.status === 'forgiven')!;
        assert.deepEqual([forgiven.ended_by, forgiven.note], [boss.id, 'seedbox died']);
        for (const m of [old, good, boss, shield])
          assert.equal((await reg.hnr.list({ member: m.id })).length, 0);
        await assert.rejects(
          reg.hnr.forgive(forgiven.id, { by: null, note: null, max: 2, at: clock.now() }),
          /not active \(forgiven\)/,
        );
        await assert.rejects(
          reg.hnr.forgive(9999, { by: null, note: null, max: 2, at: clock.now() }),
          /no hit-and-run/,
        );
      },
      { engine },
    );
});
