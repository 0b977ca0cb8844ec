import { AsyncLocalStorage } from 'node:async_hooks';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import {
  CompiledQuery,
  type DatabaseConnection,
  type Dialect,
  type Driver,
  type QueryResult,
  SqliteAdapter,
  SqliteIntrospector,
  SqliteQueryCompiler,
} from 'kysely';

/** A lock wait chosen for the statements of one call (`withBusyTimeout`), over the default. */
const busyTimeout = new AsyncLocalStorage<number>();

/**
 * Runs `fn` with SQLite lock waits bounded to `ms` instead of the connection's default: the
 * tracker's own writes (the accounting flush) and reloads give up quickly and try again at their
 * next turn, keeping what they had, rather than queueing behind a lock for seconds.
 */
export function withBusyTimeout<T>(ms: number, fn: () => Promise<T>): Promise<T> {
  return busyTimeout.run(ms, fn);
}

/** SQLite's page cache per connection, in KiB (see `nodeSqliteDialect`). */
const SQLITE_CACHE_KIB = 65536;

/** WAL pages after which a commit checkpoints (SQLite's default is 1,000; see `nodeSqliteDialect`). */
export const SQLITE_WAL_AUTOCHECKPOINT = 10000;

/** Marks a query run once per row of its parameters (`perRowQuery`). */
const ROW_WIDTH = Symbol('herald.rowWidth');

/**
 * A statement run once per row of `width` parameters from `parameters` (`width` each, in order),
 * all in one call to the connection: on SQLite, one prepared statement per row is cheaper than one
 * statement over a `VALUES` list of many rows where SQLite must first build the list's join (the
 * accounting flush's credit of members: 2.3 against 5.5-8 µs a member, docs/benchmarks.md). Only
 * inside a transaction (refused outside one: a lock met halfway would be retried from the first
 * row); `numAffectedRows` is the sum of the rows'. Only the node:sqlite dialect knows it.
 */
export function perRowQuery(sql: string, width: number, parameters: readonly unknown[]): CompiledQuery {
  const q = CompiledQuery.raw(sql, []);
  return Object.assign({ ...q, parameters }, { [ROW_WIDTH]: width });
}

/**
 * Kysely's SQLite dialect over Node's built-in `node:sqlite` (no native addon to build).
 *
 * Locks. `node:sqlite` runs on the event loop, so SQLite's own busy handler (sleeping inside a
 * statement until another connection releases its lock) stalls every socket of the process for as
 * long as it waits: with the old 5 s busy timeout, a write lock held by another process (a CLI
 * command, a migration, a restore) stalled announces for 5 s at every flush, and 10 s when a
 * portal write waited too (bench/sqlite-lock.ts). So the connection is opened with no busy
 * timeout: a statement that finds the database locked is tried again after a pause on a timer,
 * the event loop serving everything else meanwhile, until `busyTimeoutMs` (or the call's
 * `withBusyTimeout`) has passed, and then fails with SQLITE_BUSY. Transactions begin with
 * `BEGIN IMMEDIATE`, which takes the write lock up front (waited for the same way), so no
 * statement inside one meets a lock halfway, and none is retried (that would not be safe).
 *
 * Statements are cached by SQL text: the tracker and portal run a small, fixed set of queries,
 * and preparing is most of SQLite's per-query cost.
 */
export function nodeSqliteDialect(path: string, opts: { busyTimeoutMs: number }): Dialect {
  const db = new DatabaseSync(path, { timeout: 0 });
  // WAL lets the CLI and the portal read and write while the tracker flushes (DESIGN.md).
  if (path !== ':memory:') db.exec('PRAGMA journal_mode = WAL');
  db.exec('PRAGMA synchronous = NORMAL');
  // A page cache of up to 64 MiB (SQLite's default is 2 MiB): the accounting flush updates a row
  // of member_torrents per member × torrent announced, and on a site whose table outgrows the
  // default cache each statement read its pages again from the OS (private announce 78 -> 66 µs
  // of CPU, paired, docs/benchmarks.md). The cache grows only as pages are used: a small
  // database (open mode) keeps a small one.
  if (path !== ':memory:') db.exec(`PRAGMA cache_size = -${SQLITE_CACHE_KIB}`);
  // A commit checkpoints once the WAL holds this many pages (40 MiB at 4 KiB) instead of SQLite's
  // 1,000: an accounting flush on a large site dirties a few thousand pages (a row of
  // member_torrents and of members per member × torrent announced), so at 1,000 every flush's
  // commit also copied every page it wrote into the database file again (and waited for two
  // fsyncs) on the event loop; now a page written by several flushes is copied once. In the /tmp
  // harness of docs/benchmarks.md (2026-12-07 17:00): commit 47 -> 17 ms a flush of 33,000 rows,
  // CPU 4.6 -> 4.2 µs a row. Each connection checkpoints its own commits; closing the last one
  // checkpoints the rest.
  db.exec(`PRAGMA wal_autocheckpoint = ${SQLITE_WAL_AUTOCHECKPOINT}`);
  db.exec('PRAGMA foreign_keys = ON');
  const driver = new NodeSqliteDriver(new NodeSqliteConnection(db, opts.busyTimeoutMs, new Mutex()));
  return {
    createDriver: () => driver,
    createAdapter: () => new SqliteAdapter(),
    createQueryCompiler: () => new SqliteQueryCompiler(),
    createIntrospector: (k) => new SqliteIntrospector(k),
  };
}

type Param = null | number | bigint | string | Uint8Array;

class NodeSqliteConnection implements DatabaseConnection {
  readonly db: DatabaseSync;
  /** Who uses the connection now: one query or one transaction at a time. */
  readonly mutex: Mutex;
  #busyTimeoutMs: number;
  #cache = new Map<string, { stmt: StatementSync; reader: boolean }>();

  constructor(db: DatabaseSync, busyTimeoutMs: number, mutex: Mutex) {
    this.db = db;
    this.#busyTimeoutMs = busyTimeoutMs;
    this.mutex = mutex;
  }

  executeQuery<R>(q: CompiledQuery): Promise<QueryResult<R>> {
    const width = (q as { [ROW_WIDTH]?: number })[ROW_WIDTH];
    if (width !== undefined) return this.#whenUnlocked(() => this.#runPerRow(q, width));
    return this.#whenUnlocked(() => {
      const { stmt, reader } = this.#prepare(q.sql);
      const params = q.parameters as Param[];
      if (reader) return { rows: stmt.all(...params) as R[] };
      const r = stmt.run(...params);
      return { rows: [], numAffectedRows: BigInt(r.changes), insertId: BigInt(r.lastInsertRowid) };
    });
  }

  /** `perRowQuery`: the statement once per row of `width` parameters, inside the open transaction. */
  #runPerRow<R>(q: CompiledQuery, width: number): QueryResult<R> {
    if (!this.db.isTransaction) throw new Error('a per-row query runs only inside a transaction');
    const params = q.parameters as Param[];
    if (params.length % width !== 0)
      throw new Error(`per-row query: ${params.length} parameters, rows of ${width}`);
    const { stmt } = this.#prepare(q.sql);
    const args: Param[] = new Array(width);
    let changes = 0;
    for (let o = 0; o + width <= params.length; o += width) {
      for (let k = 0; k < width; k++) args[k] = params[o + k];
      changes += Number(stmt.run(...args).changes);
    }
    return { rows: [], numAffectedRows: BigInt(changes) };
  }

  async *streamQuery<R>(q: CompiledQuery): AsyncIterableIterator<QueryResult<R>> {
    const { stmt } = this.#prepare(q.sql);
    for (const row of stmt.iterate(...(q.parameters as Param[]))) yield { rows: [row as R] };
  }

  begin(): Promise<void> {
    return this.#whenUnlocked(() => {
      this.db.exec('BEGIN IMMEDIATE');
    });
  }

  #prepare(sql: string): { stmt: StatementSync; reader: boolean } {
    let e = this.#cache.get(sql);
    if (e !== undefined) return e;
    const stmt = this.db.prepare(sql);
    e = { stmt, reader: stmt.columns().length > 0 };
    if (this.#cache.size > 500) this.#cache.clear();
    this.#cache.set(sql, e);
    return e;
  }

  /**
   * Runs `op`; while the database is locked by another connection, again after a pause. During
   * the pause the connection is free for others (no transaction of ours is open: a failed
   * BEGIN opened none), so reads, which a writer's lock does not block in WAL mode, go on.
   */
  async #whenUnlocked<T>(op: () => T): Promise<T> {
    const deadline = performance.now() + (busyTimeout.getStore() ?? this.#busyTimeoutMs);
    let pause = 2;
    for (;;) {
      try {
        return op();
      } catch (err) {
        // Inside a transaction a statement is never retried: BEGIN IMMEDIATE holds the lock.
        if (!isBusy(err) || this.db.isTransaction) throw err;
        const left = deadline - performance.now();
        if (left <= 0) throw err;
        this.mutex.unlock();
        await new Promise((resolve) => setTimeout(resolve, Math.min(pause, left)));
        await this.mutex.lock();
        pause = Math.min(pause * 2, 50);
      }
    }
  }
}

/** SQLITE_BUSY and its extended codes (the primary code is the low byte). */
function isBusy(err: unknown): boolean {
  return (
    (err as { errcode?: unknown }).errcode !== undefined &&
    ((err as { errcode: number }).errcode & 0xff) === 5
  );
}

/** First come, first served. */
class Mutex {
  #queue: (() => void)[] = [];
  #held = false;

  lock(): Promise<void> {
    if (!this.#held) {
      this.#held = true;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#queue.push(resolve));
  }

  unlock(): void {
    const next = this.#queue.shift();
    if (next === undefined) this.#held = false;
    else next();
  }
}

/** One connection, used by one query or transaction at a time (as Kysely's own SQLite driver). */
class NodeSqliteDriver implements Driver {
  #conn: NodeSqliteConnection;

  constructor(conn: NodeSqliteConnection) {
    this.#conn = conn;
  }

  async init(): Promise<void> {}

  async acquireConnection(): Promise<DatabaseConnection> {
    await this.#conn.mutex.lock();
    return this.#conn;
  }

  async releaseConnection(): Promise<void> {
    this.#conn.mutex.unlock();
  }

  async beginTransaction(): Promise<void> {
    await this.#conn.begin();
  }

  async commitTransaction(conn: DatabaseConnection): Promise<void> {
    await conn.executeQuery(CompiledQuery.raw('commit'));
  }

  async rollbackTransaction(conn: DatabaseConnection): Promise<void> {
    await conn.executeQuery(CompiledQuery.raw('rollback'));
  }

  async destroy(): Promise<void> {
    this.#conn.db.close();
  }
}
