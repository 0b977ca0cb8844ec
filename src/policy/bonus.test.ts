import assert from 'node:assert/strict';
import { test } from 'node:test';
import { engines } from '../../test/helpers/db.ts';
import { memberTorrentRow, withScheduler } from '../../test/helpers/scheduler.ts';
import { type BonusRules, BonusWatch, hourlyRate } from './bonus.ts';

const GiB = 1024 ** 3;
const DAY = 86400;
const T0 = 1_900_000_000;
const RULES: BonusRules = {
  base: 100,
  perGib: 10,
  gibCap: 100,
  fewSeeders: 3,
  fewPoints: 100,
  oldDays: 30,
  oldPoints: 50,
};
const PRICES = { upload: 1000, invite: 5000, token: 0 };

test('the hourly rate at each threshold: whole GiB up to the cap, few seeders, old torrents; off at base 0', () => {
  const t = { size: 0, seeders: 10, createdAt: T0 };
  assert.equal(hourlyRate(t, RULES, T0), 100);
  assert.equal(hourlyRate({ ...t, size: GiB - 1 }, RULES, T0), 100, 'a GiB less a byte');
  assert.equal(hourlyRate({ ...t, size: 5 * GiB }, RULES, T0), 150);
  assert.equal(hourlyRate({ ...t, size: 500 * GiB }, RULES, T0), 100 + 10 * 100, 'capped at 100 GiB');
  assert.equal(hourlyRate({ ...t, seeders: 4 }, RULES, T0), 100);
  assert.equal(hourlyRate({ ...t, seeders: 3 }, RULES, T0), 200, 'three seeders: few');
  assert.equal(hourlyRate(t, RULES, T0 + 30 * DAY - 1), 100);
  assert.equal(hourlyRate(t, RULES, T0 + 30 * DAY), 150, 'thirty days old');
  assert.equal(hourlyRate({ ...t, seeders: 1 }, { ...RULES, fewSeeders: 0 }, T0), 100, 'term off');
  assert.equal(hourlyRate({ ...t, size: 50 * GiB, seeders: 1 }, { ...RULES, base: 0 }, T0 + 99 * DAY), 0);
});

test('the scheduler over 10 simulated days (SQLite and PostgreSQL): seeding paid once, in a ledger; the shop spends it in one transaction', async () => {
  for (const engine of engines)
    await withScheduler(
      (o) => new BonusWatch(o),
      RULES,
      T0,
      async ({ reg, clock, watch }) => {
        const k = reg.db.kysely;
        const m = await reg.addMember({ username: 'sam' });
        const t = await reg.addTorrent({
          infoHash: 'ab'.repeat(20),
          infoHashV2: null,
          name: 'big',
          size: 10 * GiB,
          fileCount: 1,
        });
        await k.updateTable('torrents').set({ created_at: T0 }).execute();
        await k
          .insertInto('member_torrents')
          .values(memberTorrentRow(m.id, t.id, T0, { state: 2 }))
          .execute();
        // Accounting credits a day of seeding a day; the scheduler runs once a day.
        for (let day = 1; day <= 10; day++) {
          clock.set(T0 + day * DAY);
          await k
            .updateTable('member_torrents')
            .set((eb) => ({ seed_time: eb('seed_time', '+', DAY) }))
            .where('member_id', '=', m.id)
            .execute();
          const r = await watch.run();
          // 100 base + 10 × 10 GiB + 100 (one seeder) = 300 an hour; + 50 from day 30 (not reached).
          assert.deepEqual(r, { members: 1, points: 300 * 24 }, `day ${day}`);
          assert.deepEqual(await watch.run(), { members: 0, points: 0 }, 'paid once');
        }
        assert.equal(await reg.bonus.balance(m.id), 10 * 300 * 24);
        const ledger = await reg.bonus.ledger(m.id);
        assert.equal(ledger.length, 10);
        assert.deepEqual([ledger[0].delta, ledger[0].reason, ledger[0].note], [7200, 'seeding', '1 torrent']);
        // The shop: what is not sold, and more than the balance, are refused and change nothing.
        const member = await reg.member(m.id);
        await assert.rejects(reg.bonus.buy(member, 'token', 1, PRICES, clock.now()), /does not sell token/);
        await assert.rejects(
          reg.bonus.buy(member, 'upload', 73, PRICES, clock.now()),
          /not enough bonus points/,
        );
        assert.equal(await reg.bonus.balance(m.id), 72000);
        // Many purchases at once never spend the same points twice.
        const tries = await Promise.allSettled(
          Array.from({ length: 20 }, () => reg.bonus.buy(member, 'invite', 1, PRICES, clock.now())),
        );
        assert.equal(tries.filter((x) => x.status === 'fulfilled').length, 14, '72000 / 5000');
        assert.equal(await reg.bonus.balance(m.id), 72000 - 14 * 5000);
        assert.equal(await reg.bonus.buy(member, 'upload', 2, PRICES, clock.now()), 0, 'the last 2000');
        const after = await reg.member(m.id);
        assert.deepEqual([after.invites, after.uploaded], [14, 2 * GiB]);
        assert.equal(await reg.bonus.give(after, 250, { note: 'welcome', by: null, at: clock.now() }), 250);
        await assert.rejects(reg.bonus.give(after, 0, { note: null, by: null, at: 0 }), /non-zero/);
      },
      { engine },
    );
});
