import type { Insertable } from 'kysely';
import { ManualClock } from '../../src/core/clock.ts';
import { createLogger } from '../../src/core/log.ts';
import { openDatabase } from '../../src/db/connect.ts';
import { Registry } from '../../src/db/registry.ts';
import { memberRow } from '../../src/db/rows.ts';
import type { MemberTorrentsTable } from '../../src/db/schema.ts';
import type { ClassDef } from '../../src/policy/classes.ts';
import { Policy } from '../../src/policy/policy.ts';
import type { SchedulerOptions } from '../../src/policy/scheduled.ts';
import type { Engine } from './db.ts';

/** What a scheduler test works with: a fresh database, a manual clock, the policy it reloads. */
export interface SchedulerRig<W> {
  reg: Registry;
  clock: ManualClock;
  policy: Policy;
  watch: W;
}

/**
 * Runs `fn` with a scheduler (ratio watch, hit-and-run) over a fresh database of `engine`
 * (SQLite in memory by default), its clock at `t0`, and the policy it reloads (with member
 * `classes`, if given); then closes and drops the database.
 */
export async function withScheduler<Rules, W>(
  make: (o: SchedulerOptions<Rules>) => W,
  rules: Rules,
  t0: number,
  fn: (rig: SchedulerRig<W>) => Promise<void>,
  opts: { engine?: Engine; classes?: readonly ClassDef[] } = {},
): Promise<void> {
  const { engine, classes } = opts;
  const made =
    engine === undefined ? { url: 'sqlite::memory:', drop: async () => {} } : await engine.create();
  const db = await openDatabase(made.url, '');
  try {
    const reg = new Registry(db);
    const clock = new ManualClock(t0);
    const policy = new Policy({ mode: 'private', logger: createLogger('silent'), classes });
    await policy.connect(reg);
    const watch = make({
      registry: () => reg,
      rules,
      clock,
      logger: createLogger('silent'),
      refreshPolicy: () => policy.refresh(),
    });
    await fn({ reg, clock, policy, watch });
  } finally {
    await db.close();
    await made.drop();
  }
}

/** Torrent `n` as a bare row (hash n + 1 in hex, size 1, no metainfo), named `name`. */
export function torrentRow(n: number, name: string) {
  return {
    info_hash: (n + 1).toString(16).padStart(40, '0'),
    name,
    size: 1,
    file_count: 1,
    created_at: 1000,
    download_factor: 100,
    upload_factor: 100,
    restricted: 0,
    snatches: 0,
  };
}

/** A member_torrents row as accounting writes it: zero figures unless `over` says otherwise. */
export function memberTorrentRow(
  memberId: number,
  torrentId: number,
  at: number,
  over: Partial<Insertable<MemberTorrentsTable>> = {},
): Insertable<MemberTorrentsTable> {
  return {
    member_id: memberId,
    torrent_id: torrentId,
    uploaded: 0,
    downloaded: 0,
    raw_uploaded: 0,
    raw_downloaded: 0,
    seed_time: 0,
    announces: 1,
    completed_at: null,
    first_announce_at: at,
    last_announce_at: at,
    ...over,
  };
}

/**
 * A hit-and-run as the scheduler leaves it: the member's snatch of the torrent `daysAgo` days
 * before `at` with nothing seeded, judged a hit-and-run, and download rights taken for it.
 */
export async function markHitAndRun(
  reg: Registry,
  memberId: number,
  torrentId: number,
  at: number,
  daysAgo = 30,
): Promise<void> {
  const snatchedAt = at - daysAgo * 86400;
  await reg.db.kysely
    .insertInto('member_torrents')
    .values(
      memberTorrentRow(memberId, torrentId, snatchedAt, {
        downloaded: 1000,
        raw_downloaded: 1000,
        announces: 2,
        completed_at: snatchedAt,
      }),
    )
    .execute();
  const v = { memberId, torrentId, snatchedAt, seedTime: 0, verdict: 'hit-and-run' as const };
  await reg.hnr.applyVerdicts([v], at);
  await reg.hnr.applyRights([{ id: memberId, action: 'revoke' }], at);
}

/** `n` members created at 0, each with `over`'s figures; their ids. */
export async function addMembers(
  reg: Registry,
  n: number,
  over: Record<string, unknown> = {},
): Promise<number[]> {
  const k = reg.db.kysely;
  for (let i = 0; i < n; i += 500) {
    const rows = [];
    for (let j = i; j < Math.min(n, i + 500); j++)
      rows.push({ ...memberRow({ username: `m${j}`, createdAt: 0 }), ...over });
    await k.insertInto('members').values(rows).execute();
  }
  return (await k.selectFrom('members').select('id').orderBy('id').execute()).map((r) => r.id);
}

/** One torrent, and a snatch of it by each member (`over`: the snatch's figures). */
export async function snatchAll(reg: Registry, ids: number[], at: number, over: Record<string, unknown>) {
  const k = reg.db.kysely;
  await reg.addTorrent({
    infoHash: 'ab'.repeat(20),
    infoHashV2: null,
    name: 't',
    size: 1024 ** 3,
    fileCount: 1,
  });
  const t = (await k.selectFrom('torrents').select('id').executeTakeFirstOrThrow()).id;
  for (let i = 0; i < ids.length; i += 500)
    await k
      .insertInto('member_torrents')
      .values(ids.slice(i, i + 500).map((m) => memberTorrentRow(m, t, at, over)))
      .execute();
}

/**
 * Hit-and-run rules under which a snatch seeded an hour (of the 72 asked) 20 days ago is a
 * hit-and-run, one suspends, and it expires 30 days after it was marked.
 */
export const STRICT_HNR_RULES = {
  seedSeconds: 72 * 3600,
  windowSeconds: 14 * 86400,
  ratioPercent: 0,
  max: 1,
  expireSeconds: 30 * 86400,
  immuneRoles: [],
};
