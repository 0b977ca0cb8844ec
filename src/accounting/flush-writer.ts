import { CompiledQuery, createQueryId, RawNode, type Transaction } from 'kysely';
import type { Dialect } from '../db/connect.ts';
import { perRowQuery } from '../db/node-sqlite.ts';
import type { Registry } from '../db/registry.ts';
import type { Database } from '../db/schema.ts';

/**
 * The accounting flush's writer (src/accounting/accountant.ts keeps the sums, this module writes
 * them): one batch in one transaction, members' totals, member × torrent rows, snatches and flags,
 * many rows per statement, in key order.
 */

/** Rows per statement when a flush writes on SQLite (its bind limit is far above). */
const WRITE_CHUNK = 500;

/**
 * Rows per statement on PostgreSQL, where a statement takes one array parameter per column
 * (`unnest`), not one placeholder per value: its text is short and the same for any number of rows.
 */
const PG_CHUNK = 10_000;

export interface MemberPending {
  uploaded: number;
  downloaded: number;
  rawUploaded: number;
  rawDownloaded: number;
  seedTime: number;
  lastAt: number;
}

export interface MemberTorrentPending extends MemberPending {
  memberId: number;
  torrentId: number;
  announces: number;
  completedAt: number; // 0 = not completed in this batch
  firstAt: number;
  /** After the last announce: 0 stopped, 1 leeching, 2 seeding (member_torrents.state). */
  state: number;
}

/** Pending member × torrent rows: member id → torrent id → row. */
export type MemberTorrentRows = Map<number, Map<number, MemberTorrentPending>>;

/** What one flush writes in one transaction. */
export interface Batch {
  members: Map<number, MemberPending>;
  memberTorrents: MemberTorrentRows;
  flags: Flag[];
}

export interface Flag {
  memberId: number;
  torrentId: number;
  peerId: string;
  kind: string;
  uploaded: number;
  downloaded: number;
  seconds: number;
  at: number;
}

/**
 * Writes one batch in one transaction; resolves the number of rows dropped because their torrent or
 * member no longer exists and whether the batch had to be written again checked (`rewritten`),
 * rejects when the transaction failed (nothing of it is written).
 *
 * Optimistic: the rows are written without first reading which torrents and members still exist
 * (two `SELECT … IN` per 500 ids, with their result rows, were a tenth of a private announce's
 * CPU, issue #16). Should one of them have been removed meanwhile, its row breaks a foreign key,
 * the whole transaction rolls back (nothing of it written), and the batch is written again,
 * checked, in a new one: each row is still written once or dropped.
 */
export async function writeBatch(
  reg: Registry,
  batch: Batch,
): Promise<{ written: number; dropped: number; rewritten: boolean }> {
  try {
    return { ...(await writeOnce(reg, batch, false)), rewritten: false };
  } catch (err) {
    if (!foreignKeyBroken(err)) throw err;
    return { ...(await writeOnce(reg, batch, true)), rewritten: true };
  }
}

/** SQLite's SQLITE_CONSTRAINT_FOREIGNKEY, PostgreSQL's foreign_key_violation. */
function foreignKeyBroken(err: unknown): boolean {
  const e = err as { errcode?: unknown; code?: unknown };
  return e.errcode === 787 || e.code === '23503';
}

async function writeOnce(
  reg: Registry,
  { members, memberTorrents, flags }: Batch,
  checked: boolean,
): Promise<{ written: number; dropped: number }> {
  const dialect = reg.db.dialect;
  return reg.db.kysely.transaction().execute(async (trx) => {
    // Many rows per statement (chunks of WRITE_CHUNK): one statement per row, built by the
    // query builder, cost more than every announce they account for.
    // Rows in key order: each statement then walks the table's B-tree from one end to the other
    // instead of jumping to a random page per row, which on a table larger than SQLite's page
    // cache cost about four times the CPU (12 vs 3 µs a row of member_torrents at 100,000 rows).
    const memberIds = sortedIds(members);
    const chunk = dialect === 'postgres' ? PG_CHUNK : WRITE_CHUNK;
    for (let i = 0; i < memberIds.length; i += chunk)
      await creditMembers(trx, dialect, members, memberIds, i, Math.min(memberIds.length, i + chunk));
    // Staff may have removed a torrent since these deltas were counted (CLI, API, portal):
    // its rows would fail their foreign keys and roll back every member's credit, at every
    // flush, forever (issue #15). The checked write drops them instead; the member's own total above
    // keeps what was earned while the torrent was registered. Members are never deleted today,
    // but a row for one that was is dropped the same way.
    const torrents = checked
      ? await existingIds(trx, dialect, 'torrents', rowsOf(memberTorrents, flags, 'torrentId'))
      : null;
    const live = checked
      ? await existingIds(trx, dialect, 'members', rowsOf(memberTorrents, flags, 'memberId'))
      : null;
    const kept = (r: { memberId: number; torrentId: number }) =>
      torrents === null || live === null || (torrents.has(r.torrentId) && live.has(r.memberId));
    let dropped = 0;
    const rows: MemberTorrentPending[] = [];
    const rowMembers = sortedIds(memberTorrents);
    for (let i = 0; i < rowMembers.length; i++) {
      const byTorrent = memberTorrents.get(rowMembers[i])!;
      const torrentIds = sortedIds(byTorrent);
      for (let j = 0; j < torrentIds.length; j++) {
        const mt = byTorrent.get(torrentIds[j])!;
        if (kept(mt)) rows.push(mt);
        else dropped++;
      }
    }
    for (let i = 0; i < rows.length; i += chunk)
      await upsertMemberTorrents(trx, dialect, rows, i, Math.min(rows.length, i + chunk));
    for (const mt of rows) {
      if (mt.completedAt !== 0) {
        // A snatch counts once per member and torrent, whatever the client repeats.
        const r = await trx
          .updateTable('member_torrents')
          .set({ completed_at: mt.completedAt })
          .where('member_id', '=', mt.memberId)
          .where('torrent_id', '=', mt.torrentId)
          .where('completed_at', 'is', null)
          .executeTakeFirst();
        if (Number(r.numUpdatedRows) > 0)
          await trx
            .updateTable('torrents')
            .set((eb) => ({ snatches: eb('snatches', '+', 1) }))
            .where('id', '=', mt.torrentId)
            .execute();
      }
    }
    const keptFlags = flags.filter(kept);
    dropped += flags.length - keptFlags.length;
    if (keptFlags.length > 0)
      await trx
        .insertInto('accounting_flags')
        .values(
          keptFlags.map((f) => ({
            member_id: f.memberId,
            torrent_id: f.torrentId,
            peer_id: f.peerId,
            kind: f.kind,
            uploaded: f.uploaded,
            downloaded: f.downloaded,
            seconds: f.seconds,
            created_at: f.at,
          })),
        )
        .execute();
    return { written: rows.length, dropped };
  });
}

/** Member or torrent ids of pending rows and flags, each once. */
function rowsOf(rows: MemberTorrentRows, flags: Flag[], field: 'memberId' | 'torrentId'): number[] {
  const ids = new Set<number>();
  for (const byTorrent of rows.values()) for (const r of byTorrent.values()) ids.add(r[field]);
  for (const f of flags) ids.add(f[field]);
  return [...ids];
}

/**
 * A map's keys in ascending order (a typed array sorts numbers without a comparator call per pair;
 * filled by `forEach`, which makes no iterator result object per key as `Float64Array.from` does).
 */
function sortedIds(m: Map<number, unknown>): Float64Array {
  const ids = new Float64Array(m.size);
  let i = 0;
  m.forEach((_, id) => {
    ids[i++] = id;
  });
  return ids.sort();
}

/**
 * Parameter arrays of full chunks (7 or 11 values a row), kept and refilled: a full chunk's 5,500
 * numbers otherwise grow a new array at every statement of every flush. Taken for one statement
 * and given back after it (two flushes at once, of two trackers in one process, never share one).
 */
const paramArrays = new Map<number, number[][]>();

function takeParams(n: number): number[] {
  return paramArrays.get(n)?.pop() ?? new Array<number>(n).fill(0);
}

/** Gives back `params` (a full chunk's; any other length is left to the collector). */
function giveParams(params: number[]): void {
  const n = params.length;
  if (n !== WRITE_CHUNK * 7 && n !== WRITE_CHUNK * 11) return;
  let free = paramArrays.get(n);
  if (free === undefined) {
    free = [];
    paramArrays.set(n, free);
  }
  if (free.length < 2) free.push(params);
}

/**
 * The flush's statements are written by hand with placeholders and one flat parameter array: built
 * through the query builder, a chunk of 500 rows was some 6,000 objects and a compile pass, a tenth
 * of a private announce's CPU with the garbage they leave (docs/benchmarks.md, issue #16). The text
 * of a full chunk is built once per dialect and kind (and SQLite's statement cache, keyed by text,
 * prepares it once).
 */
const statementTexts = new Map<string, string>();

/**
 * `head` + `rows` rows of `cols` placeholders each, shaped by `row` + `tail`: `?` for SQLite,
 * `$1`, `$2`... for PostgreSQL.
 */
function statementText(
  kind: string,
  dialect: Dialect,
  rows: number,
  cols: number,
  head: string,
  row: (p: string[]) => string,
  tail: string,
): string {
  const key = `${kind}:${dialect}:${rows}`;
  const cached = statementTexts.get(key);
  if (cached !== undefined) return cached;
  const parts: string[] = [];
  let n = 0;
  for (let r = 0; r < rows; r++) {
    const p: string[] = [];
    for (let c = 0; c < cols; c++) p.push(dialect === 'postgres' ? `$${++n}` : '?');
    parts.push(row(p));
  }
  const text = `${head}${parts.join(', ')}${tail}`;
  // Only full chunks are kept: a last, shorter chunk has a length of its own at each flush.
  if (rows === WRITE_CHUNK) statementTexts.set(key, text);
  return text;
}

/**
 * Adds pending credit to members. PostgreSQL: many in one statement, UPDATE … FROM (VALUES …) (the
 * casts give PostgreSQL the VALUES columns' types), one round trip. SQLite: one prepared UPDATE per
 * member, all sent in one call (`perRowQuery`): SQLite runs UPDATE … FROM by building the join's
 * result first, 5.5-8 µs a member against 2.3 for the single-row statement (docs/benchmarks.md,
 * 2026-12-07 17:00). Both read the same seven parameters a member (`?1`…`?7` in SQLite's text).
 */
async function creditMembers(
  trx: Transaction<Database>,
  dialect: Dialect,
  members: Map<number, MemberPending>,
  ids: Float64Array,
  from: number,
  to: number,
): Promise<void> {
  const params = takeParams((to - from) * 7);
  for (let i = from, o = 0; i < to; i++, o += 7) {
    const id = ids[i];
    const m = members.get(id)!;
    params[o] = id;
    putTraffic(params, o + 1, m);
    params[o + 6] = m.lastAt;
  }
  if (dialect === 'sqlite') {
    await trx.executeQuery(perRowQuery(CREDIT_ONE, 7, params));
    giveParams(params);
    return;
  }
  await runWith(trx, CREDIT_PG, pgColumns(params, to - from, 7));
  giveParams(params);
}

/**
 * PostgreSQL: every member of a chunk in one UPDATE … FROM unnest(…), one array per column. Sent
 * as one placeholder per value (`VALUES ($1, …), …`), a chunk of 500 rows was a statement of 3,500
 * parameters that PostgreSQL parsed and planned anew at each flush, and that the driver converted
 * one by one: the rules bench measured more CPU in Herald and in PostgreSQL per announce than the
 * whole of SQLite's flush (docs/benchmarks.md, 2026-12-08).
 */
const CREDIT_PG =
  'UPDATE members SET uploaded = members.uploaded + v.up, downloaded = members.downloaded + v.down, ' +
  'raw_uploaded = members.raw_uploaded + v.raw_up, raw_downloaded = members.raw_downloaded + v.raw_down, ' +
  'seed_time = members.seed_time + v.seed, last_announce_at = v.last_at FROM unnest($1::bigint[], ' +
  '$2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[]) ' +
  'AS v(id, up, down, raw_up, raw_down, seed, last_at) WHERE members.id = v.id';

/** SQLite: one member's credit, parameters as a row of `creditMembers`'s (id first). */
const CREDIT_ONE =
  'UPDATE members SET uploaded = uploaded + ?2, downloaded = downloaded + ?3, ' +
  'raw_uploaded = raw_uploaded + ?4, raw_downloaded = raw_downloaded + ?5, seed_time = seed_time + ?6, ' +
  'last_announce_at = ?7 WHERE id = ?1';

/** Adds pending rows to member_torrents (inserted, or summed into the existing row), many in one statement. */
async function upsertMemberTorrents(
  trx: Transaction<Database>,
  dialect: Dialect,
  rows: MemberTorrentPending[],
  from: number,
  to: number,
): Promise<void> {
  const params = takeParams((to - from) * 11);
  for (let i = from, o = 0; i < to; i++, o += 11) {
    const mt = rows[i];
    params[o] = mt.memberId;
    params[o + 1] = mt.torrentId;
    putTraffic(params, o + 2, mt);
    params[o + 7] = mt.announces;
    params[o + 8] = mt.firstAt;
    params[o + 9] = mt.lastAt;
    params[o + 10] = mt.state;
  }
  if (dialect === 'postgres') {
    await runWith(trx, UPSERT_PG, pgColumns(params, to - from, 11));
    giveParams(params);
    return;
  }
  const text = statementText(
    'upsert',
    dialect,
    to - from,
    11,
    `INSERT INTO member_torrents (${UPSERT_COLUMNS}) VALUES `,
    (p) => `(${p.slice(0, 8).join(', ')}, NULL, ${p.slice(8).join(', ')})`,
    UPSERT_SUMS,
  );
  await runWith(trx, text, params);
  giveParams(params);
}

const UPSERT_COLUMNS =
  'member_id, torrent_id, uploaded, downloaded, raw_uploaded, raw_downloaded, seed_time, announces, ' +
  'completed_at, first_announce_at, last_announce_at, state';

/** What a pending row adds to an existing one (`excluded`: the pending row). */
const UPSERT_SUMS =
  ' ON CONFLICT (member_id, torrent_id) DO UPDATE SET ' +
  'uploaded = member_torrents.uploaded + excluded.uploaded, ' +
  'downloaded = member_torrents.downloaded + excluded.downloaded, ' +
  'raw_uploaded = member_torrents.raw_uploaded + excluded.raw_uploaded, ' +
  'raw_downloaded = member_torrents.raw_downloaded + excluded.raw_downloaded, ' +
  'seed_time = member_torrents.seed_time + excluded.seed_time, ' +
  'announces = member_torrents.announces + excluded.announces, ' +
  'last_announce_at = excluded.last_announce_at, state = excluded.state';

/** PostgreSQL: a chunk's rows in one INSERT … SELECT FROM unnest(…), one array per column (see CREDIT_PG). */
const UPSERT_PG =
  `INSERT INTO member_torrents (${UPSERT_COLUMNS}) SELECT m, t, up, down, raw_up, raw_down, seed, n, NULL, ` +
  'first_at, last_at, st FROM unnest($1::integer[], $2::integer[], $3::bigint[], $4::bigint[], ' +
  '$5::bigint[], $6::bigint[], $7::bigint[], $8::integer[], $9::bigint[], $10::bigint[], $11::integer[]) ' +
  `AS v(m, t, up, down, raw_up, raw_down, seed, n, first_at, last_at, st)${UPSERT_SUMS}`;

/**
 * A flat row-major parameter array (`rows` rows of `cols` integers) as `cols` PostgreSQL array
 * literals (`{1,2,3}`), one per column: the driver sends each as one text parameter.
 */
function pgColumns(params: number[], rows: number, cols: number): string[] {
  const out: string[] = [];
  const column = new Array<number>(rows);
  for (let c = 0; c < cols; c++) {
    for (let r = 0, o = c; r < rows; r++, o += cols) column[r] = params[o];
    out.push(`{${column.join(',')}}`);
  }
  return out;
}

/** A pending sum's five traffic columns (uploaded ... seed_time), from `params[o]` on. */
function putTraffic(params: number[], o: number, m: MemberPending): void {
  params[o] = m.uploaded;
  params[o + 1] = m.downloaded;
  params[o + 2] = m.rawUploaded;
  params[o + 3] = m.rawDownloaded;
  params[o + 4] = m.seedTime;
}

/**
 * Runs one written statement. The query is made by hand: `CompiledQuery.raw` freezes its
 * parameters, and a frozen array cannot be filled again (both drivers read the parameters when
 * the statement is sent: node:sqlite spreads them into its call, pg copies them).
 */
async function runWith(trx: Transaction<Database>, text: string, params: readonly unknown[]): Promise<void> {
  const q: CompiledQuery = {
    sql: text,
    query: RawNode.createWithSql(text),
    parameters: params,
    queryId: createQueryId(),
  };
  await trx.executeQuery(q);
}

/** Which of `ids` still exist in `table`, read inside the flush's transaction (in chunks: bind limits). */
async function existingIds(
  trx: Transaction<Database>,
  dialect: Dialect,
  table: 'members' | 'torrents',
  ids: number[],
): Promise<Set<number>> {
  const found = new Set<number>();
  for (let i = 0; i < ids.length; i += WRITE_CHUNK) {
    const chunk = ids.slice(i, i + WRITE_CHUNK);
    const text = statementText(
      table,
      dialect,
      chunk.length,
      1,
      `SELECT id FROM ${table} WHERE id IN (`,
      (p) => p[0],
      ')',
    );
    const r = await trx.executeQuery<{ id: number }>(CompiledQuery.raw(text, chunk));
    for (const row of r.rows) found.add(Number(row.id));
  }
  return found;
}
