import { DatabaseSync, type StatementSync } from 'node:sqlite';
import type { SqliteDatabase, SqliteStatement } from 'kysely';

/**
 * Kysely's SQLite dialect speaks the better-sqlite3 interface; this bridges Node's built-in
 * `node:sqlite` (no native addon to build) to it. Statements are cached by SQL text: the tracker
 * and portal run a small, fixed set of queries, and preparing is most of SQLite's per-query cost.
 */
export function nodeSqlite(path: string): { database: SqliteDatabase; raw: DatabaseSync } {
  const raw = new DatabaseSync(path, { timeout: 5000 });
  // WAL lets the CLI and the portal read and write while the tracker flushes (DESIGN.md).
  if (path !== ':memory:') raw.exec('PRAGMA journal_mode = WAL');
  raw.exec('PRAGMA synchronous = NORMAL');
  raw.exec('PRAGMA foreign_keys = ON');
  const cache = new Map<string, SqliteStatement>();
  const database: SqliteDatabase = {
    close: () => raw.close(),
    prepare(sql: string): SqliteStatement {
      let stmt = cache.get(sql);
      if (stmt !== undefined) return stmt;
      stmt = wrap(raw.prepare(sql));
      if (cache.size > 500) cache.clear();
      cache.set(sql, stmt);
      return stmt;
    },
  };
  return { database, raw };
}

type Param = null | number | bigint | string | Uint8Array;

function wrap(s: StatementSync): SqliteStatement {
  return {
    reader: s.columns().length > 0,
    all: (params: readonly unknown[]) => s.all(...(params as Param[])),
    run: (params: readonly unknown[]) => {
      const r = s.run(...(params as Param[]));
      return { changes: r.changes, lastInsertRowid: r.lastInsertRowid };
    },
    iterate: (params: readonly unknown[]) => s.iterate(...(params as Param[])) as IterableIterator<unknown>,
  };
}
