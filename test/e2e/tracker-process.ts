/**
 * Runs `herald serve` as a real child process (the command users run), on ephemeral loopback
 * ports, and stops it by PID.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ROOT = new URL('../../', import.meta.url).pathname;
const NODE = join(ROOT, 'node_modules/.bin/node');

export interface RunningTracker {
  http: { host: string; port: number }[];
  udp: { host: string; port: number }[];
  stderr: () => string;
  dataDir: string;
  /** The process's PID (with `--workers N`, the primary's: its children are the workers). */
  pid: number;
  /** Runs a herald admin command (e.g. `member add`) on the same data directory. */
  admin(args: string[]): { status: number; stdout: string; stderr: string };
  /** Kills the process with SIGKILL (a crash); the data directory stays until `stop()`. */
  crash(): Promise<void>;
  /** SIGTERM and wait; the data directory stays until `stop()`. */
  stopGracefully(): Promise<void>;
  stop(): Promise<void>;
}

/** `herald serve` arguments for a private tracker on an ephemeral HTTP port that flushes and polls every second. */
export const PRIVATE_SERVE = [
  '--mode',
  'private',
  '--http',
  '127.0.0.1:0',
  '--udp',
  'off',
  '--flush-interval',
  '1',
  '--policy-refresh',
  '1',
];

export function runHerald(args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(NODE, [join(ROOT, 'bin/herald.js'), ...args], { encoding: 'utf8', timeout: 30_000 });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

export async function startTracker(
  args: string[],
  opts: {
    dataDir?: string /** Also wait for this log line (e.g. 'herald workers running'). */;
    ready?: string;
  } = {},
): Promise<RunningTracker> {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'herald-e2e-'));
  const child: ChildProcess = spawn(
    NODE,
    [join(ROOT, 'bin/herald.js'), 'serve', '--data-dir', dataDir, '--log-level', 'info', ...args],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let err = '';
  const listening = new Promise<{ http: string[]; udp: string[] }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`herald did not start:\n${err}`)), 40_000);
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      if (opts.ready !== undefined && !err.includes(opts.ready)) return;
      for (const line of err.split('\n')) {
        if (!line.includes('herald listening')) continue;
        clearTimeout(timer);
        resolve(JSON.parse(line));
        return;
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`herald exited with ${code}:\n${err}`));
    });
  });
  let info: { http: string[]; udp: string[] };
  try {
    info = await listening;
  } catch (e) {
    child.kill('SIGKILL');
    if (opts.dataDir === undefined) rmSync(dataDir, { recursive: true, force: true });
    throw e;
  }
  const split = (a: string) => {
    const i = a.lastIndexOf(':');
    return { host: a.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(a.slice(i + 1)) };
  };
  return {
    http: info.http.map(split),
    udp: info.udp.map(split),
    stderr: () => err,
    dataDir,
    pid: child.pid!,
    admin: (a: string[]) => runHerald([...a, '--data-dir', dataDir, ...args]),
    async crash() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    },
    async stopGracefully() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(t);
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
