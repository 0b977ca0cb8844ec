import { spawn } from 'node:child_process';

/** Another process holding the SQLite file's write lock (`BEGIN IMMEDIATE`) until `release()`. */
export async function lockSqlite(file: string): Promise<{ release(): Promise<void> }> {
  const child = spawn(
    process.execPath,
    [
      '-e',
      `const { DatabaseSync } = require('node:sqlite');
       const db = new DatabaseSync(${JSON.stringify(file)});
       db.exec('BEGIN IMMEDIATE');
       db.exec("UPDATE settings SET value = value WHERE key = 'revision'");
       process.stdout.write('locked\\n');
       process.stdin.once('data', () => { db.exec('COMMIT'); process.exit(0); });`,
    ],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`lock holder exited with ${code}`)));
  });
  return {
    async release() {
      child.stdin!.end('release\n');
      await exited;
    },
  };
}
