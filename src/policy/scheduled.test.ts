/**
 * The schedulers of several instances on one database (issue #16): each pass runs in the one
 * instance that holds its lease, bonus points are paid once even by two passes at once, and when
 * the holder dies another instance takes over. Each "instance" is its own database connection and
 * its own scheduler objects, over one simulated clock.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { engines } from '../../test/helpers/db.ts';
import { memberTorrentRow } from '../../test/helpers/scheduler.ts';
import { parseClasses } from '../config/classes.ts';
import { ManualClock } from '../core/clock.ts';
import { createLogger } from '../core/log.ts';
import { type Db, openDatabase } from '../db/connect.ts';
import { Registry } from '../db/registry.ts';
import { type BonusRules, BonusWatch } from './bonus.ts';
import { ClassWatch } from './classes.ts';
import { HitAndRunWatch, type HnrRules } from './hit-and-run.ts';
import { RatioWatch } from './ratio-watch.ts';
import { leaseSeconds, type SchedulerOptions } from './scheduled.ts';

const GiB = 1024 ** 3;
const HOUR = 3600;
const DAY = 86400;
const T0 = 1_900_000_000;
const BONUS: BonusRules = {
  base: 100,
  perGib: 0,
  gibCap: 0,
  fewSeeders: 0,
  fewPoints: 0,
  oldDays: 0,
  oldPoints: 0,
};
const HNR: HnrRules = {
  seedSeconds: 10 * HOUR,
  windowSeconds: DAY,
  ratioPercent: 0,
  max: 1,
  expireSeconds: 0,
  immuneRoles: [],
};
const CLASSES = parseClasses(['User', 'Power User: days=1']);

/** A fresh database both instances open (SQLite: a file, as two processes share one). */
async function sharedDatabase(engine: (typeof engines)[number]) {
  if (engine.name === 'postgres') return engine.create();
  const dir = mkdtempSync(join(tmpdir(), 'herald-lease-'));
  return {
    url: `sqlite:${join(dir, 'herald.db')}`,
    drop: async () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** What the test does with any of the four. */
interface Scheduler {
  start(everySeconds: number): void;
  tick(): Promise<object | null>;
  stop(): Promise<void>;
}

/** One instance: its connection and its four schedulers, each started (lease for one hour). */
async function instance(url: string, clock: ManualClock, holder: string | undefined) {
  const db: Db = await openDatabase(url, '');
  const reg = new Registry(db);
  const base = <R>(rules: R): SchedulerOptions<R> => ({
    registry: () => reg,
    rules,
    clock,
    logger: createLogger('silent'),
    refreshPolicy: async () => {},
    holder,
  });
  const bonus = new BonusWatch(base(BONUS));
  const ratio = new RatioWatch(base({ minPercent: 50, graceBytes: GiB, periodSeconds: DAY }));
  const hnr = new HitAndRunWatch(base(HNR));
  const classes = new ClassWatch(base(CLASSES));
  const all: Scheduler[] = [bonus, ratio, hnr, classes];
  for (const w of all) w.start(HOUR);
  return { url, db, reg, bonus, ratio, hnr, classes, all };
}

type Instance = Awaited<ReturnType<typeof instance>>;

/**
 * Runs `fn` with one instance per holder (undefined: no lease) on a fresh shared database of
 * `engine` (opened one after the other: the first migrates the schema), then stops and closes them.
 */
async function withInstances(
  engine: (typeof engines)[number],
  holders: (string | undefined)[],
  fn: (all: Instance[], clock: ManualClock) => Promise<void>,
): Promise<void> {
  const made = await sharedDatabase(engine);
  const clock = new ManualClock(T0);
  const all: Instance[] = [];
  try {
    for (const h of holders) all.push(await instance(made.url, clock, h));
    await fn(all, clock);
  } finally {
    for (const x of all) {
      for (const w of x.all) await w.stop();
      await x.db.close();
    }
    await made.drop();
  }
}

test('two instances on one database over 48 simulated hours (SQLite and PostgreSQL): each pass runs once, each hour of seeding is paid once; the holder dies, the other takes over', async () => {
  for (const engine of engines)
    await withInstances(engine, ['one', 'two'], async ([one, two], clock) => {
      const k = one.reg.db.kysely;
      const seeder = await one.reg.addMember({ username: 'seeder' });
      const low = await one.reg.addMember({ username: 'low' });
      const t = await one.reg.addTorrent({
        infoHash: 'cd'.repeat(20),
        infoHashV2: null,
        name: 't',
        size: GiB,
        fileCount: 1,
      });
      await k.updateTable('members').set({ created_at: T0 }).execute();
      await k
        .updateTable('members')
        .set({ downloaded: 4 * GiB })
        .where('id', '=', low.id)
        .execute();
      await k
        .insertInto('member_torrents')
        .values(memberTorrentRow(seeder.id, t.id, T0, { state: 2 }))
        .execute();
      const totals = { ran: [0, 0], warned: 0, revoked: 0, marked: 0, promoted: 0 };
      let dead = false;
      for (let h = 1; h <= 48; h++) {
        clock.set(T0 + h * HOUR);
        // Accounting credits an hour of seeding an hour; `low` snatches the torrent at hour 2.
        await k
          .updateTable('member_torrents')
          .set((eb) => ({ seed_time: eb('seed_time', '+', HOUR) }))
          .where('member_id', '=', seeder.id)
          .execute();
        if (h === 2)
          await k
            .insertInto('member_torrents')
            .values(
              memberTorrentRow(low.id, t.id, clock.now(), {
                downloaded: GiB,
                raw_downloaded: GiB,
                completed_at: clock.now(),
              }),
            )
            .execute();
        // Instance one dies at hour 24 (no graceful stop: its leases stay until they expire).
        if (h === 24) dead = true;
        // The schedulers by kind: 0 bonus, 1 ratio watch, 2 hit-and-run, 3 classes.
        const list: { at: number; kind: number; w: Scheduler }[] = [
          ...(dead ? [] : one.all.map((w, kind) => ({ at: 0, kind, w }))),
          ...two.all.map((w, kind) => ({ at: 1, kind, w })),
        ];
        // Hour 1: instance one starts first (then holds every lease); after that, all at once.
        const runs: (object | null)[] =
          h === 1
            ? [
                ...(await Promise.all(one.all.map((w) => w.tick()))),
                ...(await Promise.all(two.all.map((w) => w.tick()))),
              ]
            : await Promise.all(list.map((x) => x.w.tick()));
        for (const [i, r] of runs.entries()) {
          if (r === null) continue;
          const { at, kind } = list[i];
          totals.ran[at]++;
          const n = r as unknown as Record<string, number>;
          if (kind === 1) {
            totals.warned += n.warned;
            totals.revoked += n.revoked;
          } else if (kind === 2) totals.marked += n.marked;
          else if (kind === 3) totals.promoted += n.promoted;
        }
        // Each scheduler ran in exactly one instance this hour, except right after the holder
        // died: its leases last one interval and a little more, so that hour none runs.
        const ranNow = runs.filter((r) => r !== null).length;
        assert.equal(ranNow, h === 24 ? 0 : 4, `hour ${h}: passes run`);
      }
      // Hours 1-23 in one instance, 25-48 in the other (hour 24: the dead holder's leases).
      assert.deepEqual(totals.ran, [23 * 4, 24 * 4]);
      const ledger = await one.reg.bonus.ledger(seeder.id, 100);
      assert.equal(ledger.length, 47, 'one payment per pass');
      assert.equal(await one.reg.bonus.balance(seeder.id), 48 * 100, 'every hour of seeding paid once');
      assert.equal(totals.warned, 1, 'ratio warning once');
      assert.equal(totals.revoked, 1, 'download rights taken once, a day later');
      assert.equal(totals.marked, 1, 'one hit-and-run');
      assert.equal(totals.promoted, 2, 'each member promoted once, at one day');
      const history = await k.selectFrom('class_history').select('member_id').execute();
      assert.equal(history.length, 2);
      assert.equal((await one.reg.member(low.id)).ratio_warnings, 1);
      // A graceful stop gives the leases up: the other instance's next tick runs at once.
      for (const w of two.all) await w.stop();
      const three = await instance(one.url, clock, 'three');
      const next = await Promise.all(three.all.map((w) => w.tick()));
      assert.equal(next.filter((r) => r !== null).length, 4, 'the leases were given up');
      for (const w of three.all) await w.stop();
      await three.db.close();
    });
});

test('two bonus passes at once, without leases (SQLite and PostgreSQL): the seeding time is paid once', async () => {
  for (const engine of engines)
    await withInstances(engine, [undefined, undefined], async ([one, two], clock) => {
      const k = one.reg.db.kysely;
      const members = [];
      for (let i = 0; i < 20; i++) members.push(await one.reg.addMember({ username: `m${i}` }));
      const t = await one.reg.addTorrent({
        infoHash: 'ef'.repeat(20),
        infoHashV2: null,
        name: 't',
        size: GiB,
        fileCount: 1,
      });
      await k
        .insertInto('member_torrents')
        .values(members.map((m) => memberTorrentRow(m.id, t.id, T0, { state: 2 })))
        .execute();
      for (let h = 1; h <= 10; h++) {
        clock.set(T0 + h * HOUR);
        await k
          .updateTable('member_torrents')
          .set((eb) => ({ seed_time: eb('seed_time', '+', HOUR) }))
          .execute();
        // SQLite serialises the two transactions; PostgreSQL runs them side by side.
        await Promise.allSettled([one.bonus.run(), two.bonus.run(), one.bonus.run(), two.bonus.run()]);
      }
      for (const m of members)
        assert.equal(await one.reg.bonus.balance(m.id), 10 * 100, `${engine.name}: ${m.id}`);
    });
});

test('many instances take one lease at once (SQLite and PostgreSQL): exactly one gets it', async () => {
  for (const engine of engines)
    await withInstances(engine, ['h0', 'h1', 'h2', 'h3', 'h4', 'h5'], async (all, clock) => {
      for (let round = 0; round < 3; round++) {
        // Each round past the last one's expiry: taken again, by one of them.
        clock.set(T0 + round * 2 * DAY);
        const got: (object | null)[] = await Promise.all(all.map((x) => x.bonus.tick()));
        assert.equal(got.filter((r) => r !== null).length, 1, `${engine.name}, round ${round}`);
      }
    });
});

test('a lease lasts one interval and a little more', () => {
  assert.equal(leaseSeconds(3600), 3660);
  assert.equal(leaseSeconds(60), 90);
  assert.equal(leaseSeconds(1), 2);
});
