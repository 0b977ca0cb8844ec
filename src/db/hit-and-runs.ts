import { type Kysely, sql } from 'kysely';
import type { AccountsHost } from './accounts.ts';
import { byKind, inIds, inPairs, unindexed } from './batch.ts';
import { type PublicMember, RegistryError, rowId } from './rows.ts';
import type { Database, HnrStatus, Role } from './schema.ts';

/** A hit-and-run as the pages, the CLI and the API show it: the row, the torrent's name, the member's. */
export interface HitAndRunView {
  id: number;
  member_id: number;
  username: string;
  /** The member's role (staff forgive only members' hit-and-runs, administrators staff's too). */
  role: Role;
  torrent_id: number;
  torrent_name: string;
  snatched_at: number;
  marked_at: number;
  /** Seeding time on the torrent when marked, and now (as of the last accounting write). */
  seed_time: number;
  seed_time_now: number;
  status: HnrStatus;
  ended_at: number | null;
  ended_by: number | null;
  note: string | null;
}

/** Which hit-and-runs `list` gives: of one member, of one status, after an id (pages), how many. */
export interface HnrListOptions {
  member?: number;
  status?: HnrStatus;
  after?: number;
  limit?: number;
  offset?: number;
}

/** A snatch whose deadline has not come yet (the member's page: "seed N more hours by ..."). */
export interface PendingSnatch {
  torrent_id: number;
  torrent_name: string;
  completed_at: number;
  seed_time: number;
}

/**
 * Hit-and-run in the database (issue #16; the rule itself is src/policy/hit-and-run.ts): the
 * scheduler's reads and writes, staff's forgiveness and immunity, and the lists the pages show.
 * Every change goes through the registry's `change()`, so it bumps the policy revision.
 * `registry.hnr` is this object.
 */
export class HitAndRuns {
  #reg: AccountsHost;
  constructor(registry: AccountsHost) {
    this.#reg = registry;
  }

  get #k(): Kysely<Database> {
    return this.#reg.db.kysely;
  }

  /**
   * When hit-and-run was first turned on (the setting `hnr_since`; written by the first run):
   * snatches before it are never judged.
   */
  async since(now: number): Promise<number> {
    const r = await this.#k
      .selectFrom('settings')
      .select('value')
      .where('key', '=', 'hnr_since')
      .executeTakeFirst();
    if (r !== undefined) return Number(r.value);
    await this.#k
      .insertInto('settings')
      .values({ key: 'hnr_since', value: String(now) })
      .onConflict((oc) => oc.column('key').doNothing())
      .execute();
    return this.since(now);
  }

  /** Snatches from `since` on whose deadline has passed (completed at or before `due`), not judged yet. */
  async dueSnatches(since: number, due: number, limit: number) {
    const rows = await this.#k
      .selectFrom('member_torrents as mt')
      .innerJoin('members as m', 'm.id', 'mt.member_id')
      .select([
        'mt.member_id',
        'mt.torrent_id',
        'mt.completed_at',
        'mt.seed_time',
        'mt.raw_uploaded',
        'mt.raw_downloaded',
        'm.role',
        'm.hnr_immune',
        'm.class',
      ])
      .where('mt.hnr_state', '=', 0)
      .where('mt.completed_at', '>=', since)
      .where('mt.completed_at', '<=', due)
      .orderBy('mt.completed_at')
      .limit(limit)
      .execute();
    return rows.map((r) => ({ ...r, completed_at: r.completed_at ?? 0 }));
  }

  /**
   * The verdicts on due snatches, in one transaction: each snatch judged once (`hnr_state` 1, or
   * 2 with a hit-and-run row). Returns how many hit-and-runs were marked.
   */
  async applyVerdicts(
    verdicts: {
      memberId: number;
      torrentId: number;
      snatchedAt: number;
      seedTime: number;
      verdict: 'pending' | 'fulfilled' | 'exempt' | 'hit-and-run';
    }[],
    at: number,
  ): Promise<number> {
    const judged = verdicts.filter((v) => v.verdict !== 'pending');
    if (judged.length === 0) return 0;
    const dialect = this.#reg.db.dialect;
    return this.#reg.change(async (trx) => {
      // One UPDATE per state (1: fulfilled or exempt, 2: a hit-and-run) and one INSERT of the
      // hit-and-runs, whatever the number of snatches: each statement is a round trip on PostgreSQL.
      const marked = new Set<string>();
      for (const [hnr, group] of byKind(judged, (v) => v.verdict === 'hit-and-run')) {
        const rows = await trx
          .updateTable('member_torrents')
          .set({ hnr_state: hnr ? 2 : 1 })
          .where(
            inPairs(
              dialect,
              'member_id',
              'torrent_id',
              group.map((v) => [v.memberId, v.torrentId] as const),
            ),
          )
          .where(unindexed<number>(dialect, 'hnr_state'), '=', 0)
          .returning(['member_id', 'torrent_id'])
          .execute();
        if (hnr) for (const r of rows) marked.add(`${r.member_id}:${r.torrent_id}`);
      }
      const marks = judged.filter(
        (v) => v.verdict === 'hit-and-run' && marked.has(`${v.memberId}:${v.torrentId}`),
      );
      if (marks.length === 0) return 0;
      await trx
        .insertInto('hit_and_runs')
        .values(
          marks.map((v) => ({
            member_id: v.memberId,
            torrent_id: v.torrentId,
            snatched_at: v.snatchedAt,
            marked_at: at,
            seed_time: v.seedTime,
            status: 'active' as const,
          })),
        )
        .onConflict((oc) => oc.columns(['member_id', 'torrent_id']).doNothing())
        .execute();
      return marks.length;
    });
  }

  /** Active hit-and-runs by id after `afterId`, with the member's figures on the torrent now. */
  async active(afterId: number, limit: number) {
    return this.#k
      .selectFrom('hit_and_runs as h')
      .innerJoin('member_torrents as mt', (j) =>
        j.onRef('mt.member_id', '=', 'h.member_id').onRef('mt.torrent_id', '=', 'h.torrent_id'),
      )
      .select(['h.id', 'h.marked_at', 'mt.seed_time', 'mt.raw_uploaded', 'mt.raw_downloaded'])
      .where('h.status', '=', 'active')
      .where('h.id', '>', afterId)
      .orderBy('h.id')
      .limit(limit)
      .execute();
  }

  /** Ends active hit-and-runs (seeded after all, or expired); returns how each that took effect ended. */
  async end(ends: { id: number; status: 'seeded' | 'expired' }[], at: number) {
    if (ends.length === 0) return [];
    const dialect = this.#reg.db.dialect;
    return this.#reg.change(async (trx) => {
      const done: ('seeded' | 'expired')[] = [];
      for (const [status, group] of byKind(ends, (e) => e.status)) {
        const rows = await trx
          .updateTable('hit_and_runs')
          .set({ status, ended_at: at })
          .where(
            inIds(
              dialect,
              'id',
              group.map((e) => e.id),
            ),
          )
          .where(unindexed<string>(dialect, 'status'), '=', 'active')
          .returning('id')
          .execute();
        for (let i = 0; i < rows.length; i++) done.push(status);
      }
      return done;
    });
  }

  /**
   * Members whose download rights hit-and-run may change, with their active hit-and-runs: those
   * it suspended, and (`max` > 0) those with at least `max` active.
   */
  async rightsCandidates(max: number) {
    const rows = await this.#k
      .selectFrom('members')
      .select((eb) => [
        'id',
        'can_leech',
        'leech_reason',
        eb
          .selectFrom('hit_and_runs as h')
          .select((e) => e.fn.countAll().as('n'))
          .whereRef('h.member_id', '=', 'members.id')
          .where('h.status', '=', 'active')
          .as('active'),
      ])
      .where((eb) =>
        eb.or([
          eb('leech_reason', '=', 'hnr'),
          ...(max > 0
            ? [
                eb(
                  'id',
                  'in',
                  eb
                    .selectFrom('hit_and_runs')
                    .select('member_id')
                    .where('status', '=', 'active')
                    .groupBy('member_id')
                    .having((e) => e.fn.countAll(), '>=', max),
                ),
              ]
            : []),
        ]),
      )
      .execute();
    return rows.map((r) => ({ ...r, active: Number(r.active) }));
  }

  /** Takes or gives back download rights (reason 'hnr'); returns the actions that took effect. */
  async applyRights(changes: { id: number; action: 'revoke' | 'restore' }[], at: number) {
    if (changes.length === 0) return [];
    const dialect = this.#reg.db.dialect;
    return this.#reg.change(async (trx) => {
      const done: ('revoke' | 'restore')[] = [];
      for (const [action, group] of byKind(changes, (c) => c.action)) {
        const q = trx.updateTable('members').where(
          inIds(
            dialect,
            'id',
            group.map((c) => c.id),
          ),
        );
        const rows =
          action === 'revoke'
            ? await q
                .set({ can_leech: 0, leech_reason: 'hnr', leech_changed_at: at })
                .where('can_leech', '=', 1)
                .returning('id')
                .execute()
            : await q
                .set({ can_leech: 1, leech_reason: null, leech_changed_at: at })
                .where('can_leech', '=', 0)
                .where('leech_reason', '=', 'hnr')
                .returning('id')
                .execute();
        for (let i = 0; i < rows.length; i++) done.push(action);
      }
      return done;
    });
  }

  /**
   * Staff forgive an active hit-and-run: it ends ('forgiven', by whom, with a note); if it was
   * what kept the member's download rights away (fewer than `max` active now, or `max` 0), they
   * come back in the same transaction.
   */
  async forgive(id: number, opts: { by: number | null; note: string | null; max: number; at: number }) {
    const done = await this.#reg.change(async (trx) => {
      const h = await trx
        .selectFrom('hit_and_runs')
        .select(['member_id', 'status'])
        .where('id', '=', rowId(id))
        .executeTakeFirst();
      if (h === undefined) return { found: false, was: null };
      if (h.status !== 'active') return { found: true, was: h.status };
      await trx
        .updateTable('hit_and_runs')
        .set({ status: 'forgiven', ended_at: opts.at, ended_by: opts.by, note: opts.note })
        .where('id', '=', id)
        .where('status', '=', 'active')
        .execute();
      const left = await trx
        .selectFrom('hit_and_runs')
        .select((e) => e.fn.countAll().as('n'))
        .where('member_id', '=', h.member_id)
        .where('status', '=', 'active')
        .executeTakeFirstOrThrow();
      if (opts.max === 0 || Number(left.n) < opts.max)
        await trx
          .updateTable('members')
          .set({ can_leech: 1, leech_reason: null, leech_changed_at: opts.at })
          .where('id', '=', h.member_id)
          .where('can_leech', '=', 0)
          .where('leech_reason', '=', 'hnr')
          .execute();
      return { found: true, was: 'active' };
    });
    if (!done.found) throw new RegistryError(`no hit-and-run ${id}`, 404);
    if (done.was !== 'active') throw new RegistryError(`hit-and-run ${id} is not active (${done.was})`, 409);
    return this.one(id);
  }

  /** Per-member immunity (staff). */
  async setImmune(m: PublicMember, immune: boolean): Promise<void> {
    await this.#reg.change((trx) =>
      trx
        .updateTable('members')
        .set({ hnr_immune: immune ? 1 : 0 })
        .where('id', '=', m.id)
        .execute(),
    );
  }

  #view() {
    return this.#k
      .selectFrom('hit_and_runs as h')
      .innerJoin('members as m', 'm.id', 'h.member_id')
      .innerJoin('torrents as t', 't.id', 'h.torrent_id')
      .leftJoin('member_torrents as mt', (j) =>
        j.onRef('mt.member_id', '=', 'h.member_id').onRef('mt.torrent_id', '=', 'h.torrent_id'),
      )
      .select([
        'h.id',
        'h.member_id',
        'm.username',
        'm.role',
        'h.torrent_id',
        't.name as torrent_name',
        'h.snatched_at',
        'h.marked_at',
        'h.seed_time',
        sql<number>`coalesce(mt.seed_time, h.seed_time)`.as('seed_time_now'),
        'h.status',
        'h.ended_at',
        'h.ended_by',
        'h.note',
      ]);
  }

  async one(id: number): Promise<HitAndRunView> {
    const r = await this.#view().where('h.id', '=', rowId(id)).executeTakeFirst();
    if (r === undefined) throw new RegistryError(`no hit-and-run ${id}`, 404);
    return { ...r, seed_time_now: Number(r.seed_time_now) };
  }

  /**
   * Newest first; of one member, of one status, or all; after the id `after` in that order (older
   * ones: the API's pages) or from `offset`.
   */
  async list(opts: HnrListOptions = {}) {
    const rows = await this.listQuery(opts).execute();
    return rows.map((r): HitAndRunView => ({ ...r, seed_time_now: Number(r.seed_time_now) }));
  }

  /** `list`'s statement (also for its plan, in tests). */
  listQuery(opts: HnrListOptions = {}) {
    let q = this.#view().orderBy('h.id', 'desc');
    if (opts.member !== undefined) q = q.where('h.member_id', '=', opts.member);
    if (opts.status !== undefined) q = q.where('h.status', '=', opts.status);
    if (opts.after !== undefined) q = q.where('h.id', '<', rowId(opts.after));
    return q.limit(opts.limit ?? 100).offset(opts.offset ?? 0);
  }

  /** A member's active hit-and-runs. */
  async activeCount(memberId: number): Promise<number> {
    const r = await this.#k
      .selectFrom('hit_and_runs')
      .select((e) => e.fn.countAll().as('n'))
      .where('member_id', '=', memberId)
      .where('status', '=', 'active')
      .executeTakeFirstOrThrow();
    return Number(r.n);
  }

  /** A member's snatches not judged yet (none before hit-and-run was first turned on), oldest first. */
  async pending(memberId: number): Promise<PendingSnatch[]> {
    const since = await this.#k
      .selectFrom('settings')
      .select('value')
      .where('key', '=', 'hnr_since')
      .executeTakeFirst();
    if (since === undefined) return [];
    const rows = await this.#k
      .selectFrom('member_torrents as mt')
      .innerJoin('torrents as t', 't.id', 'mt.torrent_id')
      .select(['mt.torrent_id', 't.name as torrent_name', 'mt.completed_at', 'mt.seed_time'])
      .where('mt.member_id', '=', memberId)
      .where('mt.hnr_state', '=', 0)
      .where('mt.completed_at', '>=', Number(since.value))
      .where('mt.raw_downloaded', '>', 0)
      .orderBy('mt.completed_at')
      .limit(200)
      .execute();
    return rows.map((r) => ({ ...r, completed_at: r.completed_at ?? 0 }));
  }

  /** Active hit-and-runs per member (the policy snapshot: a warning on their announces). */
  async activeByMember(): Promise<Map<number, number>> {
    const rows = await this.#k
      .selectFrom('hit_and_runs')
      .select(['member_id', (e) => e.fn.countAll().as('n')])
      .where('status', '=', 'active')
      .groupBy('member_id')
      .execute();
    return new Map(rows.map((r) => [r.member_id, Number(r.n)]));
  }
}
