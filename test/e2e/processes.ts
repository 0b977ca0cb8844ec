/**
 * Child processes of the end-to-end tests (real BitTorrent clients): started with their output
 * collected, awaited with a deadline, and all killed by PID when a test file ends.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';

/** The libtorrent peer script, and Debian's Python (the only one that loads its libtorrent). */
export const LT = new URL('./lt_client.py', import.meta.url).pathname;
export const PY = '/usr/bin/python3';

/** Fails (never skips) when a tool the test needs is missing, naming the package. */
export function requireTool(path: string, pkg: string): void {
  if (!existsSync(path))
    throw new Error(
      `${path} is missing: install it with "apt-get install -y ${pkg}" (scripts/test-all.sh does)`,
    );
}

const children = new Set<ChildProcess>();

export function run(
  cmd: string,
  args: string[],
  opts: { cwd?: string } = {},
): { child: ChildProcess; out: () => string } {
  const child = spawn(cmd, args, { cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.on('exit', () => children.delete(child));
  let out = '';
  child.stdout!.on('data', (d) => {
    out += d;
  });
  child.stderr!.on('data', (d) => {
    out += d;
  });
  return { child, out: () => out };
}

/**
 * aria2c downloading `torrent` into `dir`, with DHT, local peer discovery and peer exchange off
 * (the tracker is the only way to meet), on a random port. `seedTime`: minutes it seeds after.
 */
export function aria2(torrent: string, dir: string, seedTime = '0') {
  return run('/usr/bin/aria2c', [
    '--enable-dht=false',
    '--enable-dht6=false',
    '--bt-enable-lpd=false',
    '--enable-peer-exchange=false',
    `--seed-time=${seedTime}`,
    `--dir=${dir}`,
    `--listen-port=${40000 + Math.floor(Math.random() * 20000)}`,
    '--console-log-level=warn',
    '--summary-interval=0',
    '--bt-stop-timeout=60',
    torrent,
  ]);
}

/** The exit code, or null after SIGKILL when `timeoutMs` passed first (or it died by a signal). */
export function waitExit(child: ChildProcess, timeoutMs: number): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve(child.exitCode);
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      resolve(null);
    }, timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(t);
      resolve(code);
    });
  });
}

/** Kills every child still running (call from `after`). */
export function killChildren(): void {
  for (const c of children) c.kill('SIGKILL');
}
