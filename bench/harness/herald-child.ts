/**
 * `herald serve` as a child process for the fuzzer and the soak test: started on ephemeral
 * loopback ports, its log read line by line (errors and internal errors counted, never kept in
 * full), its RSS read from /proc, stopped by PID. Nothing here is Herald's own code: the child is
 * the program users run.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ROOT = new URL('../../', import.meta.url).pathname;
const HERALD = join(ROOT, 'bin/herald.js');

export interface Address {
  host: string;
  port: number;
}

/** What the child's log said that a healthy run never says. */
export interface LogFindings {
  lines: number;
  /** Lines at level error or above (pino level >= 50). */
  errors: number;
  /** Lines whose message says "internal error". */
  internal: number;
  /** Lines that are not JSON (Node warnings, stack traces, "fatal"). */
  foreign: number;
  /** The first few of each kind, for the report. */
  samples: string[];
}

export interface HeraldChild {
  readonly pid: number;
  readonly dataDir: string;
  readonly http: Address;
  readonly udp: Address | null;
  /** How plain HTTP is served, as Herald logged it at start: batched (the addon) or node. */
  readonly httpIo: string;
  readonly log: LogFindings;
  /** null while it runs; how it ended otherwise. */
  exit(): { code: number | null; signal: string | null } | null;
  /** Resident set size in bytes (VmRSS), 0 once gone. */
  rss(): number;
  /** Open sockets (listeners and connections) of the process, from /proc; 0 once gone. */
  sockets(): number;
  /** SIGTERM and wait (a graceful stop flushes accounting); SIGKILL after `timeoutMs`. */
  stop(timeoutMs?: number): Promise<{ code: number | null; signal: string | null }>;
  /** Removes the data directory (after stop). */
  cleanup(): void;
}

const NOTE_LIMIT = 50;

export function socketsOf(pid: number): number {
  try {
    let n = 0;
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:')) n++;
      } catch {}
    }
    return n;
  } catch {
    return 0;
  }
}

export function rssOf(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/**
 * Starts `herald serve --data-dir <tmp> --log-level info ...args` with `node` from node_modules
 * (Node 24, as `npm start` uses); resolves once it logs "herald listening".
 */
export async function startHerald(args: string[], opts: { dataDir?: string } = {}): Promise<HeraldChild> {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'herald-fuzz-'));
  const node = join(ROOT, 'node_modules/.bin/node');
  const child: ChildProcess = spawn(
    node,
    // As bin/herald.js's first line starts it (and `npm start`): a 1 MiB young generation.
    ['--max-semi-space-size=1', HERALD, 'serve', '--data-dir', dataDir, '--log-level', 'info', ...args],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const log: LogFindings = { lines: 0, errors: 0, internal: 0, foreign: 0, samples: [] };
  let exit: { code: number | null; signal: string | null } | null = null;
  let partial = '';
  let listening: ((info: { http: string[]; udp: string[]; httpIo?: string }) => void) | null = null;
  // With --workers N (N > 1), started once the primary says every worker runs (worker 0's
  // `herald listening` gives the addresses).
  const workers = Number(args[args.indexOf('--workers') + 1] ?? 1);
  let running: (() => void) | null = null;
  const allRunning =
    args.includes('--workers') && workers > 1
      ? new Promise<void>((r) => {
          running = r;
        })
      : Promise.resolve();
  const note = (line: string) => {
    if (log.samples.length < NOTE_LIMIT) log.samples.push(line.slice(0, 2000));
  };
  const onLine = (line: string) => {
    if (line === '') return;
    log.lines++;
    let rec: { level?: number; msg?: string } | null = null;
    try {
      rec = JSON.parse(line);
    } catch {}
    if (rec === null || typeof rec !== 'object') {
      log.foreign++;
      note(line);
      return;
    }
    if (rec.msg === 'herald listening' && listening !== null) listening(rec as never);
    if (rec.msg === 'herald workers running') running?.();
    const internal = typeof rec.msg === 'string' && rec.msg.includes('internal error');
    if (internal) log.internal++;
    if ((rec.level ?? 0) >= 50) log.errors++;
    if (internal || (rec.level ?? 0) >= 50) note(line);
  };
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (d: string) => {
    partial += d;
    let nl = partial.indexOf('\n');
    while (nl >= 0) {
      onLine(partial.slice(0, nl));
      partial = partial.slice(nl + 1);
      nl = partial.indexOf('\n');
    }
    // A line longer than this is not one of Herald's log records.
    if (partial.length > 1 << 20) {
      onLine(partial);
      partial = '';
    }
  });
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => {
    child.on('exit', (code, signal) => {
      if (partial !== '') onLine(partial);
      partial = '';
      exit = { code, signal };
      resolve(exit);
    });
  });
  let info: { http: string[]; udp: string[]; httpIo?: string };
  try {
    info = await new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('herald did not start within 30 s')), 30_000);
      listening = (i) => {
        allRunning.then(() => {
          clearTimeout(t);
          resolve(i);
        });
      };
      exited.then((e) => {
        clearTimeout(t);
        reject(new Error(`herald exited at start (${e.code ?? e.signal}): ${log.samples.join('\n')}`));
      });
    });
  } catch (err) {
    child.kill('SIGKILL');
    if (opts.dataDir === undefined) rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  const split = (a: string): Address => {
    const i = a.lastIndexOf(':');
    return { host: a.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(a.slice(i + 1)) };
  };
  const pid = child.pid!;
  return {
    pid,
    dataDir,
    http: split(info.http[0]),
    udp: info.udp.length > 0 ? split(info.udp[0]) : null,
    httpIo: info.httpIo ?? 'unknown',
    log,
    exit: () => exit,
    rss: () => (exit === null ? rssOf(pid) : 0),
    sockets: () => (exit === null ? socketsOf(pid) : 0),
    async stop(timeoutMs = 15_000) {
      if (exit !== null) return exit;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const e = await exited;
      clearTimeout(t);
      return e;
    },
    cleanup() {
      if (opts.dataDir === undefined) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Samples a child's RSS every `everyMs` (max, and every sample with its time). */
export class RssSampler {
  readonly samples: { at: number; rss: number }[] = [];
  max = 0;
  #timer: NodeJS.Timeout;
  #child: HeraldChild;
  readonly #t0 = performance.now();

  constructor(child: HeraldChild, everyMs: number) {
    this.#child = child;
    this.#timer = setInterval(() => this.sample(), everyMs);
    this.#timer.unref();
    this.sample();
  }

  sample(): number {
    const rss = this.#child.rss();
    if (rss > 0) {
      this.samples.push({ at: (performance.now() - this.#t0) / 1000, rss });
      if (rss > this.max) this.max = rss;
    }
    return rss;
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}
