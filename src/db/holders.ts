import { chmodSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Which processes have a SQLite database file open, so that `herald restore` can refuse to swap
 * the file under a running tracker (whose open connection would go on writing to the replaced
 * file, and lose everything it wrote) and a tracker refuses to open a file being restored.
 *
 * Each process that opens the file writes `<file>.holders/<pid>` holding its role and its start
 * time (Linux: /proc/<pid>/stat field 22), and removes it when it closes the database or exits.
 * An entry is stale when its process is gone, or when its pid now belongs to a process that
 * started at another time (a pid reused after a `kill -9`); stale entries are removed when seen.
 * SQLite itself cannot tell: in WAL mode an idle connection holds no lock another process can test.
 */
export type HolderRole = 'herald' | 'backup' | 'restore';

export interface Holder {
  pid: number;
  role: HolderRole;
}

function dirOf(dbPath: string): string {
  return `${dbPath}.holders`;
}

/** Start time of a process in clock ticks since boot (null where /proc does not say). */
function startTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may hold spaces: count from the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Records this process as a holder of `dbPath`; the function returned removes the record. The
 * folder is writable by every user, sticky like /tmp (each removes only its own records), so that
 * root running a CLI command first does not lock out the service's user. A record that cannot be
 * written (a read-only data directory) is skipped, never a reason to refuse to start.
 */
export function holdDatabase(dbPath: string, role: HolderRole): () => void {
  const dir = dirOf(dbPath);
  const file = join(dir, String(process.pid));
  try {
    if (mkdirSync(dir, { recursive: true }) !== undefined) chmodSync(dir, 0o1777);
    writeFileSync(file, `${JSON.stringify({ role, start: startTime(process.pid) })}\n`);
  } catch {
    return () => {};
  }
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    process.off('exit', release);
    rmSync(file, { force: true });
  };
  process.on('exit', release);
  return release;
}

/** Other live processes holding `dbPath` (stale records are removed). */
export function otherHolders(dbPath: string): Holder[] {
  const dir = dirOf(dbPath);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const out: Holder[] = [];
  for (const name of names) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) continue;
    let rec: { role?: HolderRole; start?: string | null } = {};
    try {
      rec = JSON.parse(readFileSync(join(dir, name), 'utf8'));
    } catch {
      // Being written or half-written: counted as held by an unknown Herald process.
    }
    const start = startTime(pid);
    const live = alive(pid) && (rec.start == null || start === null || rec.start === start);
    if (live) out.push({ pid, role: rec.role ?? 'herald' });
    else
      try {
        rmSync(join(dir, name), { force: true });
      } catch {
        // Another user's stale record in the sticky folder: left for its owner (or root).
      }
  }
  return out;
}
