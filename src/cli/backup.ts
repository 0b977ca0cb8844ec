import { resolve } from 'node:path';
import { ConfigError, loadConfig } from '../config/load.ts';
import { BackupError, backupSqlite, restoreSqlite } from '../db/backup.ts';
import { sqlitePath } from '../db/connect.ts';

export const BACKUP_COMMANDS = ['backup', 'restore'];

export const BACKUP_HELP = `Backups (SQLite; README "Back up and restore"):
  herald backup FILE    a consistent copy of the database while the tracker runs (checked before it replaces FILE)
  herald restore FILE   put a backup in place (checked first; refused while a tracker has the database open;
                        the replaced database is kept as <database>.before-restore-<time>)
  Both take the same --data-dir/--config/--database-url flags as serve. PostgreSQL: pg_dump and pg_restore.
`;

/** `herald backup FILE [flags]` and `herald restore FILE [flags]`. Returns the exit code. */
export async function runBackupCommand(
  command: string,
  argv: string[],
  out: (s: string) => void,
  env: Record<string, string | undefined>,
): Promise<number> {
  const [file, ...flags] = argv;
  if (file === undefined || file.startsWith('-'))
    throw new ConfigError(
      `usage: herald ${command} FILE [--data-dir DIR | --database-url URL | --config FILE]`,
    );
  const config = loadConfig({ argv: flags, env, cwd: process.cwd() });
  if (/^postgres(ql)?:\/\//i.test(config.databaseUrl))
    throw new ConfigError(
      `herald ${command} copies the SQLite database; for PostgreSQL use ${
        command === 'backup' ? 'pg_dump -Fc' : 'pg_restore --clean'
      } (README "Back up and restore")`,
    );
  const db = sqlitePath(config.databaseUrl, config.dataDir);
  if (db === ':memory:')
    throw new ConfigError(`herald ${command}: the database is in memory, nothing to copy`);
  try {
    if (command === 'backup') {
      const r = await backupSqlite(db, resolve(file));
      out(`herald backup: ${db} -> ${resolve(file)} (${r.bytes} bytes, schema ${r.schema}, integrity ok)\n`);
    } else {
      const r = restoreSqlite(db, resolve(file));
      out(
        `herald restore: ${resolve(file)} -> ${db} (schema ${r.schema}, integrity ok)` +
          `${r.previous ? `; the database it replaced is kept as ${r.previous}` : ''}\n`,
      );
    }
    return 0;
  } catch (err) {
    if (err instanceof BackupError) process.stderr.write(`${err.message}\n`);
    // A file that cannot be read or written (ENOENT, EISDIR, EACCES; SQLite's "unable to open
    // database file"): the operator's to fix, said in one line. Anything else is a fault.
    else if (err instanceof Error && typeof (err as { code?: unknown }).code === 'string')
      process.stderr.write(`herald ${command}: ${err.message.split('\n')[0]}\n`);
    else throw err;
    return 1;
  }
}
