import { chownSync, copyFileSync, existsSync, renameSync, rmSync, statSync } from 'node:fs';
import { backup, DatabaseSync } from 'node:sqlite';
import { holdDatabase, otherHolders } from './holders.ts';
import { SCHEMA_VERSION } from './migrations.ts';

/** A backup or restore that cannot be done; the message is for the operator, as is. */
export class BackupError extends Error {}

/** What a checked copy holds. */
export interface CheckedCopy {
  /** Its last migration ('' for a file Herald never migrated). */
  schema: string;
  bytes: number;
}

/**
 * `herald backup`: a consistent copy of the live SQLite database at `dbPath` into `target`, while
 * the tracker runs. SQLite's online backup (`node:sqlite` `backup()`) copies every page in one
 * step from one read transaction: in WAL mode that snapshot does not block the tracker's writes,
 * and no write can make the copy restart. The copy is written beside `target`, switched to a
 * rollback journal (one self-contained file), checked (`PRAGMA integrity_check`,
 * `foreign_key_check`), and only then renamed over `target`.
 */
export async function backupSqlite(dbPath: string, target: string): Promise<CheckedCopy & { pages: number }> {
  if (!existsSync(dbPath)) throw new BackupError(`herald backup: no database at ${dbPath}`);
  const release = holdDatabase(dbPath, 'backup');
  const tmp = `${target}.tmp-${process.pid}`;
  const source = new DatabaseSync(dbPath, { timeout: 5000 });
  try {
    const pages = await backup(source, tmp, { rate: 2 ** 31 - 1 });
    const checked = checkCopy(tmp, 'herald backup');
    renameSync(tmp, target);
    return { ...checked, pages };
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  } finally {
    source.close();
    release();
  }
}

/**
 * `herald restore`: puts the backup `file` in place of the database at `dbPath`, refusing while
 * any process holds that database (src/db/holders.ts). The backup is copied next to the database
 * and checked there first (the file named is never changed); the database it replaces is kept as
 * `<db>.before-restore-<time>` (with its `-wal`, which SQLite reads under the new name), never
 * deleted. A backup made by a newer Herald is refused; an older one is migrated on next start.
 */
export function restoreSqlite(
  dbPath: string,
  file: string,
  now = new Date(),
): CheckedCopy & { previous: string | null } {
  if (!existsSync(file)) throw new BackupError(`herald restore: no file ${file}`);
  const release = holdDatabase(dbPath, 'restore');
  const tmp = `${dbPath}.restoring-${process.pid}`;
  try {
    const others = otherHolders(dbPath);
    if (others.length > 0)
      throw new BackupError(
        `herald restore: ${dbPath} is in use by process ${others.map((h) => `${h.pid} (${h.role})`).join(', ')}: ` +
          'stop the tracker first (systemctl stop herald)',
      );
    copyFileSync(file, tmp);
    const checked = checkCopy(tmp, 'herald restore');
    if (checked.schema === '') throw new BackupError(`herald restore: ${file} is not a Herald database`);
    if (checked.schema > SCHEMA_VERSION)
      throw new BackupError(
        `herald restore: ${file} has schema ${checked.schema}, newer than this Herald's (${SCHEMA_VERSION})`,
      );
    let previous: string | null = null;
    if (existsSync(dbPath)) {
      previous = `${dbPath}.before-restore-${now.toISOString().replace(/[:.]/g, '-')}`;
      renameSync(dbPath, previous);
      if (existsSync(`${dbPath}-wal`)) renameSync(`${dbPath}-wal`, `${previous}-wal`);
    }
    rmSync(`${dbPath}-wal`, { force: true });
    rmSync(`${dbPath}-shm`, { force: true });
    renameSync(tmp, dbPath);
    // Run as root for a service's database: the restored file gets the owner of the one it replaces.
    if (previous !== null && process.getuid?.() === 0) {
      const { uid, gid } = statSync(previous);
      chownSync(dbPath, uid, gid);
    }
    return { ...checked, previous };
  } finally {
    rmSync(tmp, { force: true });
    release();
  }
}

/** Opens a copy: one file (rollback journal), intact, and the last migration it has. */
function checkCopy(path: string, command: string): CheckedCopy {
  let db: DatabaseSync;
  try {
    db = new DatabaseSync(path, { timeout: 5000 });
  } catch (err) {
    throw new BackupError(`${command}: cannot open the copy: ${(err as Error).message}`);
  }
  try {
    let problems: string[];
    try {
      db.exec('PRAGMA journal_mode = DELETE');
      problems = db
        .prepare('PRAGMA integrity_check')
        .all()
        .map((r) => String(r.integrity_check))
        .filter((r) => r !== 'ok');
      if (db.prepare('PRAGMA foreign_key_check').all().length > 0) problems.push('foreign keys broken');
    } catch (err) {
      // Not a database at all ("file is not a database"), or unreadable.
      problems = [(err as Error).message];
    }
    if (problems.length > 0)
      throw new BackupError(
        `${command}: the copy fails its integrity check: ${problems.slice(0, 3).join('; ')}`,
      );
    const hasMigrations = db
      .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'kysely_migration'")
      .get();
    const last = hasMigrations
      ? db.prepare('SELECT max(name) AS name FROM kysely_migration').get()
      : undefined;
    return { schema: String(last?.name ?? ''), bytes: statSync(path).size };
  } finally {
    db.close();
  }
}
