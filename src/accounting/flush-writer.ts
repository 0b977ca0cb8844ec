import { CompiledQuery, type Transaction } from 'kysely';
import type { Dialect } from '../db/connect.ts';
import type { Registry } from '../db/registry.ts';
import type { Database } from '../db/schema.ts';

/**
 * The accounting flush's writer (src/accounting/accountant.ts keeps the sums, this module writes
 * them): one batch in one transaction, members' totals, member × torrent rows, snatches and flags,
 * many rows per statement, in key order.
 */

/** Rows per statement when a flush writes (SQLite and PostgreSQL bind limits are far above). */
const WRITE_CHUNK = 500;

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
    const memberRows: [number, MemberPending][] = [];
    for (const id of sortedIds(members.keys())) memberRows.push([id, members.get(id)!]);
    for (let i = 0; i < memberRows.length; i += WRITE_CHUNK)
      await creditMembers(trx, dialect, memberRows.slice(i, i + WRITE_CHUNK));
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
    for (const memberId of sortedIds(memberTorrents.keys())) {
      const byTorrent = memberTorrents.get(memberId)!;
      for (const torrentId of sortedIds(byTorrent.keys())) {
        const mt = byTorrent.get(torrentId)!;
        if (kept(mt)) rows.push(mt);
        else dropped++;
      }
    }
    for (let i = 0; i < rows.length; i += WRITE_CHUNK)
      await upsertMemberTorrents(trx, dialect, rows.slice(i, i + WRITE_CHUNK));
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

/** Ids in ascending order (a typed array sorts numbers without a comparator call per pair). */
function sortedIds(ids: Iterable<number>): Float64Array {
  return Float64Array.from(ids).sort();
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
 * Adds pending credit to members, many in one statement: UPDATE … FROM (VALUES …), which SQLite
 * (3.33+) and PostgreSQL both run; the casts give PostgreSQL the VALUES columns' types.
 */
async function creditMembers(
  trx: Transaction<Database>,
  dialect: Dialect,
  rows: [number, MemberPending][],
): Promise<void> {
  const text = statementText(
    'credit',
    dialect,
    rows.length,
    7,
    'UPDATE members SET uploaded = members.uploaded + v.column2, ' +
      'downloaded = members.downloaded + v.column3, raw_uploaded = members.raw_uploaded + v.column4, ' +
      'raw_downloaded = members.raw_downloaded + v.column5, seed_time = members.seed_time + v.column6, ' +
      'last_announce_at = v.column7 FROM (VALUES ',
    (p) => `(${p.map((x) => `CAST(${x} AS bigint)`).join(', ')})`,
    ') AS v WHERE members.id = v.column1',
  );
  const params: number[] = [];
  for (const [id, m] of rows)
    params.push(id, m.uploaded, m.downloaded, m.rawUploaded, m.rawDownloaded, m.seedTime, m.lastAt);
  await trx.executeQuery(CompiledQuery.raw(text, params));
}

/** Adds pending rows to member_torrents (inserted, or summed into the existing row), many in one statement. */
async function upsertMemberTorrents(
  trx: Transaction<Database>,
  dialect: Dialect,
  rows: MemberTorrentPending[],
): Promise<void> {
  const text = statementText(
    'upsert',
    dialect,
    rows.length,
    11,
    'INSERT INTO member_torrents (member_id, torrent_id, uploaded, downloaded, raw_uploaded, ' +
      'raw_downloaded, seed_time, announces, completed_at, first_announce_at, last_announce_at, state) VALUES ',
    (p) => `(${p.slice(0, 8).join(', ')}, NULL, ${p.slice(8).join(', ')})`,
    ' ON CONFLICT (member_id, torrent_id) DO UPDATE SET ' +
      'uploaded = member_torrents.uploaded + excluded.uploaded, ' +
      'downloaded = member_torrents.downloaded + excluded.downloaded, ' +
      'raw_uploaded = member_torrents.raw_uploaded + excluded.raw_uploaded, ' +
      'raw_downloaded = member_torrents.raw_downloaded + excluded.raw_downloaded, ' +
      'seed_time = member_torrents.seed_time + excluded.seed_time, ' +
      'announces = member_torrents.announces + excluded.announces, ' +
      'last_announce_at = excluded.last_announce_at, state = excluded.state',
  );
  const params: number[] = [];
  for (const mt of rows)
    params.push(
      mt.memberId,
      mt.torrentId,
      mt.uploaded,
      mt.downloaded,
      mt.rawUploaded,
      mt.rawDownloaded,
      mt.seedTime,
      mt.announces,
      mt.firstAt,
      mt.lastAt,
      mt.state,
    );
  await trx.executeQuery(CompiledQuery.raw(text, params));
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
