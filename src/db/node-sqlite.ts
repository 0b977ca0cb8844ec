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
    return this.#whenUnlocked(() => {
      const { stmt, reader } = this.#prepare(q.sql);
      const params = q.parameters as Param[];
      if (reader) return { rows: stmt.all(...params) as R[] };
      const r = stmt.run(...params);
      return { rows: [], numAffectedRows: BigInt(r.changes), insertId: BigInt(r.lastInsertRowid) };
    });
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
