/**
 * The longest event-loop stall of each scheduler pass and portal tick on a private site of
 * realistic size (the rules site of `npm run bench`, with snatches, seeding time and sessions):
 * announces wait for as long as one of these holds the loop (node:sqlite is synchronous). Counts
 * the turns of a setImmediate chain and the longest gap between two of them while each step runs.
 *
 *   node bench/sched-stalls.ts [MEMBERS] [TORRENTS] [SNATCHES_PER_MEMBER] [HISTORY_HOURS] [DENY_LIST] [DATABASE_URL]
 *
 * DATABASE_URL: a PostgreSQL database to build the site in (`postgres://...`; an empty one: the
 * bench fills it and leaves it), instead of a SQLite file in a temporary directory.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { parseClasses } from '../src/config/classes.ts';
import { ManualClock } from '../src/core/clock.ts';
import { createLogger } from '../src/core/log.ts';
import { openDatabase } from '../src/db/connect.ts';
import { Registry } from '../src/db/registry.ts';
import { memberRow } from '../src/db/rows.ts';
import { BonusWatch } from '../src/policy/bonus.ts';
import { ClassWatch } from '../src/policy/classes.ts';
import { HitAndRunWatch } from '../src/policy/hit-and-run.ts';
import { Policy } from '../src/policy/policy.ts';
import { RatioWatch } from '../src/policy/ratio-watch.ts';
import { torrentRow } from './harness/rows.ts';

const [members = '10000', torrents = '100000', perMember = '20', history = '200', deny = '100000', url = ''] =
  process.argv.slice(2);
const MEMBERS = Number(members);
const TORRENTS = Number(torrents);
const PER = Number(perMember);
const HISTORY = Number(history);
const DENY = Number(deny);
const GiB = 1024 ** 3;
const DAY = 86400;
const T0 = 1_900_000_000;
const BATCH = 500;

/** The main thread's CPU time, in ms (what a stall costs the loop, without another process's share). */
function cpuMs(): number {
  const u = process.threadCpuUsage();
  return (u.user + u.system) / 1000;
}

/**
 * Runs `fn`, counting event-loop turns and the longest gap between two: in wall time, and in the
 * main thread's CPU time (on a machine shared with other work the wall gap includes time the
 * process waited for a core; the CPU gap is what the step itself held the loop for).
 */
async function stall<T>(label: string, fn: () => Promise<T>): Promise<T> {
  let turns = 0;
  let worst = 0;
  let worstCpu = 0;
  let last = performance.now();
  let lastCpu = cpuMs();
  let done = false;
  const gap = () => {
    const t = performance.now();
    const c = cpuMs();
    if (t - last > worst) worst = t - last;
    if (c - lastCpu > worstCpu) worstCpu = c - lastCpu;
    last = t;
    lastCpu = c;
  };
  const turn = () => {
    if (done) return;
    gap();
    turns++;
    setImmediate(turn);
  };
  setImmediate(turn);
  const t0 = performance.now();
  const out = await fn();
  done = true;
  gap();
  process.stdout.write(
    `${label.padEnd(36)} ${(performance.now() - t0).toFixed(0).padStart(6)} ms, longest stall ${worst.toFixed(0).padStart(5)} ms (CPU ${worstCpu.toFixed(0).padStart(5)} ms), ${String(turns).padStart(4)} turns ${JSON.stringify(out) ?? ''}\n`,
  );
  return out;
}

const dir = mkdtempSync(join(tmpdir(), 'herald-sched-'));
const db = await openDatabase(url, dir);
try {
  const k = db.kysely;
  const reg = new Registry(db);
  process.stderr.write('building the site...\n');
  for (let i = 0; i < MEMBERS; i += BATCH) {
    const rows = [];
    for (let j = i; j < Math.min(MEMBERS, i + BATCH); j++) {
      const row = memberRow({ username: `m${j}`, createdAt: 0 });
      // One in ten below the ratio minimum past the grace; the others upload enough for a class.
      if (j % 10 === 0) Object.assign(row, { downloaded: 10 * GiB, uploaded: GiB });
      else Object.assign(row, { downloaded: GiB, uploaded: 200 * GiB, seed_time: 500 * 3600 });
      rows.push(row);
    }
    await k.insertInto('members').values(rows).execute();
  }
  for (let i = 0; i < TORRENTS; i += BATCH) {
    const rows = [];
    for (let j = i; j < Math.min(TORRENTS, i + BATCH); j++)
      rows.push(torrentRow(j.toString(16).padStart(40, '0'), `t${j}`, (1 + (j % 50)) * GiB));
    await k.insertInto('torrents').values(rows).execute();
  }
  const mids = (await k.selectFrom('members').select('id').orderBy('id').execute()).map((r) => r.id);
  const tids = (await k.selectFrom('torrents').select('id').orderBy('id').execute()).map((r) => r.id);
  // Snatches 20 days before T0 (past a 14-day window); half seeded enough, half not; all seeding
  // time unpaid (bonus); a quarter seeding now.
  let rows = [];
  for (let m = 0; m < mids.length; m++)
    for (let s = 0; s < PER; s++) {
      const t = tids[(m * 7919 + s * 104729) % tids.length];
      const at = T0 - 20 * DAY;
      const seeded = (m + s) % 2 === 0;
      rows.push({
        member_id: mids[m],
        torrent_id: t,
        uploaded: GiB,
        downloaded: GiB,
        raw_uploaded: seeded ? 2 * GiB : 0,
        raw_downloaded: GiB,
        seed_time: seeded ? 100 * 3600 : 3600,
        announces: 10,
        completed_at: at,
        first_announce_at: at,
        last_announce_at: T0,
        state: s % 4 === 0 ? 2 : 0,
      });
      if (rows.length >= BATCH) {
        await k
          .insertInto('member_torrents')
          .values(rows)
          .onConflict((oc) => oc.doNothing())
          .execute();
        rows = [];
      }
    }
  if (rows.length > 0)
    await k
      .insertInto('member_torrents')
      .values(rows)
      .onConflict((oc) => oc.doNothing())
      .execute();
  await k
    .insertInto('settings')
    .values({ key: 'hnr_since', value: '0' })
    .onConflict((oc) => oc.doNothing())
    .execute();
  // A session per member, half expired.
  for (let i = 0; i < mids.length; i += BATCH)
    await k
      .insertInto('sessions')
      .values(
        mids.slice(i, i + BATCH).map((id, j) => ({
          id: `s${i + j}`,
          member_id: id,
          created_at: 0,
          expires_at: (i + j) % 2 === 0 ? 1 : 4_000_000_000,
          csrf: 'x',
          ip: null,
        })) as never,
      )
      .execute();
  // Traffic history: a record an hour for the last HISTORY hours, per member (the portal's
  // snapshot adds one an hour per member whose figures moved, and keeps 400 days).
  await sql`INSERT INTO traffic_history (member_id, at, uploaded, downloaded)
    SELECT m.id, ${T0} - c.k * 3600, c.k, c.k FROM members m,
    (WITH RECURSIVE c(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM c WHERE k < ${HISTORY}) SELECT k FROM c) c`.execute(
    k,
  );
  // A deny list (hashes of torrents taken down), and a freeleech token spent by every member on
  // two of the torrents they snatched.
  for (let i = 0; i < DENY; i += BATCH) {
    const rows = [];
    for (let j = i; j < Math.min(DENY, i + BATCH); j++)
      rows.push({
        list: 'deny' as const,
        info_hash: `f${j.toString(16).padStart(39, '0')}`,
        note: null,
        created_at: 0,
      });
    await k.insertInto('hash_lists').values(rows).execute();
  }
  for (let i = 0; i < mids.length; i += BATCH)
    await k
      .insertInto('personal_freeleech')
      .values(
        mids.slice(i, i + BATCH).flatMap((m, j) =>
          [0, 1].map((s) => ({
            member_id: m,
            torrent_id: tids[((i + j) * 7919 + s * 104729) % tids.length],
            starts_at: 0,
            ends_at: 4_000_000_000,
            source: 'token',
            created_at: 0,
            by_member: null,
          })),
        ),
      )
      .execute();
  process.stderr.write('site built\n');

  const clock = new ManualClock(T0);
  const logger = createLogger('silent');
  const classes = parseClasses([
    'User',
    'Power User: days=1 uploaded=100GiB ratio=100',
    'Elite: days=1 uploaded=150GiB seed_hours=400',
  ]);
  const policy = new Policy({ mode: 'private', logger, classes });
  const n = (p: Promise<unknown[]>) => p.then((r) => r.length);
  await stall('policy load (snapshot)', () => policy.connect(reg));
  await k.updateTable('settings').set({ value: '1000000' }).where('key', '=', 'revision').execute();
  await stall('policy reload (revision moved)', () => policy.refresh());
  const base = { registry: () => reg, clock, logger, refreshPolicy: async () => {} };
  const ratio = new RatioWatch({
    ...base,
    rules: { minPercent: 60, graceBytes: 5 * GiB, periodSeconds: 3 * DAY },
  });
  await stall('ratio watch (warns 1 in 10)', () => ratio.run());
  const cls = new ClassWatch({ ...base, rules: classes });
  await stall('member classes (promotes 9 in 10)', () => cls.run());
  const hnr = new HitAndRunWatch({
    ...base,
    rules: {
      seedSeconds: 72 * 3600,
      windowSeconds: 14 * DAY,
      ratioPercent: 100,
      max: 3,
      expireSeconds: 30 * DAY,
      immuneRoles: [],
    },
  });
  await stall('hit-and-run (judges every snatch)', () => hnr.run());
  clock.set(T0 + 31 * DAY);
  await stall('hit-and-run (all expire)', () => hnr.run());
  const bonus = new BonusWatch({
    ...base,
    rules: { base: 100, perGib: 10, gibCap: 50, fewSeeders: 5, fewPoints: 50, oldDays: 30, oldPoints: 25 },
  });
  await stall('bonus points (pays every snatch)', () => bonus.run());
  const at = T0 + 31 * DAY;
  await stall('portal: snapshotTraffic', () => reg.accounts.snapshotTraffic(at));
  await stall('portal: counts', () => reg.counts());
  await stall('portal: grantEarnedInvites', () =>
    reg.accounts.grantEarnedInvites({
      minRatio: 1,
      minAgeSeconds: DAY,
      minUploaded: 0,
      perPeriod: 1,
      periodSeconds: 30 * DAY,
      at,
    }),
  );
  await stall('portal: deleteExpiredSessions', () => reg.accounts.deleteExpiredSessions(at));
  // Lists (portal pages and API): the first page and a far one.
  await stall('browseTorrents (the /torrents page)', () => n(reg.accounts.browseTorrents({})));
  await stall('browseTorrents search "t9"', () => n(reg.accounts.browseTorrents({ search: 't9' })));
  await stall('listTorrents offset 0', () => n(reg.listTorrents({ limit: 1000 })));
  await stall('listTorrents offset 99,000', () =>
    n(reg.listTorrents({ limit: 1000, offset: TORRENTS - 1000 })),
  );
  await stall('listTorrents after, the last page', () =>
    n(reg.listTorrents({ limit: 1000, after: tids[Math.min(1000, tids.length - 1)] })),
  );
  await stall('listMembers offset 9,000', () => n(reg.listMembers({ limit: 1000, offset: MEMBERS - 1000 })));
  await stall('listMembers after, the last page', () =>
    n(reg.listMembers({ limit: 1000, after: mids[Math.max(0, MEMBERS - 1001)] })),
  );
  await stall('hnr.list offset 0', () => n(reg.hnr.list({ limit: 1000 })));
  await stall('hnr.list offset 99,000', () => n(reg.hnr.list({ limit: 1000, offset: 99_000 })));
  await stall('hnr.list expired, limit 500 (portal)', () =>
    n(reg.hnr.list({ status: 'expired', limit: 500 })),
  );
  await stall('memberTorrents (a member)', () => n(reg.memberTorrents(mids[5])));
  await stall('memberTorrentsPage (a member, 1,000)', () =>
    n(reg.memberTorrentsPage(mids[5], { limit: 1000 })),
  );
} finally {
  await db.close();
  rmSync(dir, { recursive: true, force: true });
}
