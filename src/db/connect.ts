import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { holdDatabase, otherHolders } from './holders.ts';
import { appliedMigrations, migrate } from './migrations.ts';
import { nodeSqliteDialect, withBusyTimeout } from './node-sqlite.ts';
import type { Database, Dialect } from './schema.ts';

export type { Dialect };

export interface Db {
  kysely: Kysely<Database>;
  dialect: Dialect;
  /** Where it is, for logs (no password). */
  describe: string;
  /** The last migration applied (after `openDatabase`, this Herald's `SCHEMA_VERSION`). */
  schemaVersion: string;
  /**
   * Runs `fn` waiting at most `ms` for another connection's lock (SQLite: see `nodeSqliteDialect`;
   * the default wait is `SQLITE_BUSY_TIMEOUT_MS`). PostgreSQL's driver never blocks the event
   * loop, and `fn` just runs.
   */
  withBusyTimeout<T>(ms: number, fn: () => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/**
 * How long a SQLite statement or transaction waits for another connection's lock, without
 * blocking the event loop, before it fails with SQLITE_BUSY.
 */
export const SQLITE_BUSY_TIMEOUT_MS = 5000;

/**
 * Opens the database named by `database_url` (DESIGN.md "Real components"): empty or `sqlite:`
 * paths give the embedded SQLite file under the data directory; `postgres://` (or
 * `postgresql://`) a PostgreSQL pool. The schema is migrated to the latest version before use.
 */
export async function openDatabase(url: string, dataDir: string): Promise<Db> {
  const dialect: Dialect = /^postgres(ql)?:\/\//i.test(url) ? 'postgres' : 'sqlite';
  let kysely: Kysely<Database>;
  let describe: string;
  let onClose = () => {};
  if (dialect === 'postgres') {
    const pool = new pg.Pool({
      connectionString: url,
      max: 10,
      // 64-bit counts and sums come back as strings by default; every figure Herald stores fits
      // a double exactly (2^53 bytes is 9 PB), so read them as numbers.
      types: {
        getTypeParser: ((oid: number, format?: string) =>
          oid === 20 || oid === 1700
            ? (v: string) => Number(v)
            : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
      },
    });
    pool.on('error', () => {}); // an idle client's error is reported by the next query
    kysely = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    describe = url.replace(/\/\/[^@/]*@/, '//***@');
  } else {
    const path = sqlitePath(url, dataDir);
    if (path !== ':memory:') {
      mkdirSync(resolve(path, '..'), { recursive: true });
      // `herald restore` refuses while this record exists; a restore under way is refused here.
      const release = holdDatabase(path, 'herald');
      const restore = otherHolders(path).find((h) => h.role === 'restore');
      if (restore !== undefined) {
        release();
        throw new Error(
          `${path} is being restored by process ${restore.pid} (herald restore): start Herald when it has finished`,
        );
      }
      onClose = release;
    }
    kysely = new Kysely<Database>({
      dialect: nodeSqliteDialect(path, { busyTimeoutMs: SQLITE_BUSY_TIMEOUT_MS }),
    });
    describe = `sqlite:${path}`;
  }
  let schemaVersion: string;
  try {
    await migrate(kysely, dialect);
    schemaVersion = (await appliedMigrations(kysely)).at(-1) ?? '';
  } catch (err) {
    await kysely.destroy();
    onClose();
    throw err;
  }
  return {
    kysely,
    dialect,
    describe,
    schemaVersion,
    withBusyTimeout: dialect === 'sqlite' ? withBusyTimeout : (_ms, fn) => fn(),
    close: () => kysely.destroy().finally(onClose),
  };
}

/** `""` → <dataDir>/herald.db; `sqlite:PATH` or a plain path → that file; `sqlite::memory:`. */
export function sqlitePath(url: string, dataDir: string): string {
  let p = url.startsWith('sqlite:') ? url.slice('sqlite:'.length) : url;
  if (p.startsWith('//')) p = p.slice(2);
  if (p === '') return join(dataDir, 'herald.db');
  return p;
}
