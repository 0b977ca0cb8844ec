/**
 * The schedulers on a site with more changes than one slice, on both engines: each slice's writes
 * go to the database as one statement per kind of change (a few a slice), not one per change. On
 * PostgreSQL each statement is a round trip: 9,000 class promotions, two statements each, took
 * 50 s of wall time (docs/benchmarks.md). Statements are counted (a Kysely plugin on the
 * registry's connection), not timed; the passes' results are those of slices.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  CompiledQuery,
  createQueryId,
  type Kysely,
  type KyselyPlugin,
  type PluginTransformQueryArgs,
  type PluginTransformResultArgs,
  RawNode,
  type RootOperationNode,
  UpdateQueryNode,
} from 'kysely';
import { engines } from '../../test/helpers/db.ts';
import { addMembers, STRICT_HNR_RULES, snatchAll } from '../../test/helpers/scheduler.ts';
import { parseClasses } from '../config/classes.ts';
import { ManualClock } from '../core/clock.ts';
import { createLogger } from '../core/log.ts';
import { openDatabase } from '../db/connect.ts';
import { Registry } from '../db/registry.ts';
import type { Database } from '../db/schema.ts';
import { BonusWatch } from './bonus.ts';
import { ClassWatch } from './classes.ts';
import { HitAndRunWatch } from './hit-and-run.ts';
import { RatioWatch } from './ratio-watch.ts';
import { SLICE } from './scheduled.ts';

const GiB = 1024 ** 3;
const HOUR = 3600;
const DAY = 86400;
const T0 = 1_900_000_000;
/** Members (and changes of each kind): four slices. */
const N = 4 * SLICE;
/** Statements a pass may send for N changes: a few per slice or page, none per change. */
const BOUND = 40;

/** Counts the statements sent through the Kysely it is plugged into, and keeps the UPDATEs. */
class StatementCounter implements KyselyPlugin {
  n = 0;
  updates: RootOperationNode[] = [];
  /** The connection without the plugin, to explain the UPDATEs with (SQLite; null on PostgreSQL). */
  plain: Kysely<Database> | null = null;
  transformQuery(args: PluginTransformQueryArgs) {
    this.n++;
    const node = args.node;
    if (UpdateQueryNode.is(node) || (RawNode.is(node) && /^\s*update /i.test(node.sqlFragments[0])))
      this.updates.push(node);
    return node;
  }
  async transformResult(args: PluginTransformResultArgs) {
    return args.result;
  }
}

/**
 * A fresh database of `engine` with N members (`over`: their figures), each with a snatch of one
 * torrent (`snatch`: its figures, or none), and a registry whose statements are counted.
 */
async function withSite(
  engine: (typeof engines)[number],
  over: Record<string, unknown>,
  snatch: Record<string, unknown> | null,
  fn: (reg: Registry, counter: StatementCounter) => Promise<void>,
) {
  const made = await engine.create();
  const db = await openDatabase(made.url, '');
  try {
    const reg = new Registry(db);
    const ids = await addMembers(reg, N, over);
    if (snatch !== null) await snatchAll(reg, ids, T0, snatch);
    const counter = new StatementCounter();
    if (db.dialect === 'sqlite') counter.plain = db.kysely;
    await fn(new Registry({ ...db, kysely: db.kysely.withPlugin(counter) }), counter);
  } finally {
    await db.close();
    await made.drop();
  }
}

const base = (reg: Registry, clock = new ManualClock(T0)) => ({
  registry: () => reg,
  clock,
  logger: createLogger('silent'),
  refreshPolicy: async () => {},
});

/**
 * Runs `pass`, and asserts it sent at most BOUND statements; on SQLite also that each UPDATE
 * reaches its rows by key, not through the index on a state column (SQLite, without statistics,
 * took `hit_and_runs_status` over the slice's ids, and read every active hit-and-run per slice).
 */
async function counted<T>(counter: StatementCounter, what: string, pass: () => Promise<T>): Promise<T> {
  counter.n = 0;
  counter.updates = [];
  const out = await pass();
  assert.ok(counter.n <= BOUND, `${what}: ${counter.n} statements for ${N} changes`);
  const k = counter.plain;
  if (k !== null)
    for (const node of counter.updates) {
      const q = k.getExecutor().compileQuery(node, createQueryId());
      const plan = (
        await k.executeQuery(CompiledQuery.raw(`EXPLAIN QUERY PLAN ${q.sql}`, [...q.parameters]))
      ).rows
        .map((r) => (r as { detail: string }).detail)
        .join(' | ');
      assert.doesNotMatch(
        plan,
        /INDEX (hit_and_runs_status|member_torrents_hnr)|^SCAN (members|hit_and_runs|member_torrents)\b/,
        `${what}: ${q.sql.slice(0, 80)}: ${plan}`,
      );
    }
  return out;
}

for (const engine of engines) {
  test(`ratio watch: a few statements a slice, not one a member (${engine.name})`, async () => {
    await withSite(engine, { downloaded: 10 * GiB, uploaded: GiB }, null, async (reg, counter) => {
      const clock = new ManualClock(T0);
      const watch = new RatioWatch({
        ...base(reg, clock),
        rules: { minPercent: 60, graceBytes: GiB, periodSeconds: 3 * DAY },
      });
      const warned = await counted(counter, 'warn', () => watch.run());
      assert.equal(warned.warned, N);
      clock.set(T0 + 4 * DAY);
      assert.equal((await counted(counter, 'revoke', () => watch.run())).revoked, N);
      await reg.db.kysely
        .updateTable('members')
        .set({ uploaded: 10 * GiB })
        .execute();
      const restored = await counted(counter, 'restore', () => watch.run());
      assert.equal(restored.restored, N);
      assert.equal((await reg.member(`m${N - 1}`)).can_leech, 1);
    });
  });

  test(`member classes: a few statements a slice, not two a member (${engine.name})`, async () => {
    const classes = parseClasses(['User', 'Power: days=1 uploaded=10GiB', 'Elite: days=1 uploaded=30GiB']);
    await withSite(engine, { uploaded: 20 * GiB }, null, async (reg, counter) => {
      const k = reg.db.kysely;
      // A quarter already Elite by uploads: they stay; the rest go from User to Power.
      await k
        .updateTable('members')
        .set({ uploaded: 40 * GiB })
        .where('username', 'like', 'm1%')
        .execute();
      const elite = Number(
        (
          await k
            .selectFrom('members')
            .select((e) => e.fn.countAll().as('n'))
            .where('uploaded', '=', 40 * GiB)
            .executeTakeFirstOrThrow()
        ).n,
      );
      const watch = new ClassWatch({ ...base(reg), rules: classes });
      const out = await counted(counter, 'promote', () => watch.run());
      assert.equal(out.promoted, N);
      const by = await k
        .selectFrom('members')
        .select(['class', (e) => e.fn.countAll().as('n')])
        .groupBy('class')
        .orderBy('class')
        .execute();
      assert.deepEqual(
        by.map((r) => [r.class, Number(r.n)]),
        [
          ['Elite', elite],
          ['Power', N - elite],
        ],
      );
      const history = await k
        .selectFrom('class_history')
        .select(['member_id', 'from_class', 'to_class', 'reason', 'at'])
        .execute();
      assert.equal(history.length, N);
      assert.ok(
        history.every((h) => h.from_class === null && h.reason === 'promoted' && Number(h.at) === T0),
      );
      // Decided from a class the member has left meanwhile: nothing changes, no history row.
      await k.updateTable('members').set({ class_locked: 1 }).where('username', '=', 'm0').execute();
      await k.updateTable('members').set({ uploaded: 0 }).execute();
      const down = await counted(counter, 'demote', () => watch.run());
      assert.equal(down.demoted, N - 1);
      assert.equal((await reg.member('m0')).class, 'Power');
    });
  });

  test(`hit-and-run: judging, ending and suspending in a few statements a slice (${engine.name})`, async () => {
    const snatched = T0 - 20 * DAY;
    await withSite(
      engine,
      {},
      { raw_downloaded: GiB, completed_at: snatched, seed_time: HOUR },
      async (reg, counter) => {
        await reg.db.kysely.insertInto('settings').values({ key: 'hnr_since', value: '0' }).execute();
        const clock = new ManualClock(T0);
        const watch = new HitAndRunWatch({
          ...base(reg, clock),
          rules: STRICT_HNR_RULES,
        });
        const marked = await counted(counter, 'judge', () => watch.run());
        assert.deepEqual(marked, { marked: N, seeded: 0, expired: 0, revoked: N, restored: 0 });
        const rows = await reg.hnr.list({ limit: 1000 });
        assert.equal(rows.length, N);
        assert.ok(rows.every((h) => h.status === 'active' && Number(h.marked_at) === T0));
        assert.equal(await counted(counter, 'again', () => watch.run()).then((r) => r.marked), 0);
        clock.set(T0 + 30 * DAY);
        const ended = await counted(counter, 'expire', () => watch.run());
        assert.deepEqual(ended, { marked: 0, seeded: 0, expired: N, revoked: 0, restored: N });
      },
    );
  });

  test(`bonus points: a page of snatches paid in a few statements, not one a snatch (${engine.name})`, async () => {
    const rules = { base: 100, perGib: 0, gibCap: 0, fewSeeders: 0, fewPoints: 0, oldDays: 0, oldPoints: 0 };
    await withSite(engine, {}, { seed_time: HOUR }, async (reg, counter) => {
      const watch = new BonusWatch({ ...base(reg), rules });
      const out = await counted(counter, 'pay', () => watch.run());
      assert.deepEqual(out, { members: N, points: N * 100 });
      assert.equal(await reg.bonus.balance((await reg.member(`m${N - 1}`)).id), 100);
      const paid = await reg.db.kysely
        .selectFrom('member_torrents')
        .select('bonus_seed_time')
        .distinct()
        .execute();
      assert.deepEqual(
        paid.map((r) => Number(r.bonus_seed_time)),
        [HOUR],
      );
      assert.deepEqual(await watch.run(), { members: 0, points: 0 }, 'nothing is paid twice');
    });
  });
}
