/**
 * The life of `herald serve --workers N` as an operator meets it: signals to the primary (at start,
 * while serving, twice), workers that die, and a primary that dies. Every test runs the real
 * command and watches its processes through /proc and its log.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, test } from 'node:test';
import { shardOf } from '../../src/core/shard.ts';
import { encode } from '../../src/protocol/bencode/index.ts';
import { runHerald } from '../e2e/tracker-process.ts';
import {
  type AnnounceFields,
  announcePath,
  announcer,
  bdecode,
  hashOf,
  httpGet,
} from '../helpers/clients.ts';
import { workerPids } from '../helpers/workers.ts';

const ROOT = new URL('../../', import.meta.url).pathname;
const NODE = join(ROOT, 'node_modules/.bin/node');
const HERALD = join(ROOT, 'bin/herald.js');

const dirs: string[] = [];
const procs = new Set<ChildProcess>();
after(() => {
  for (const c of procs) c.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

interface Primary {
  child: ChildProcess;
  dataDir: string;
  log: () => string;
  /** The exit code (null: killed by a signal), once the primary has exited. */
  exited: Promise<number | null>;
  /** Resolves once the log has a line containing `text`. */
  logged(text: string): Promise<void>;
}

function startPrimary(args: string[]): Primary {
  const dir = mkdtempSync(join(tmpdir(), 'herald-lifecycle-'));
  dirs.push(dir);
  const child = spawn(
    NODE,
    [HERALD, 'serve', '--data-dir', dir, '--log-level', 'info', '--http', '127.0.0.1:0', ...args],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  procs.add(child);
  let log = '';
  const waiters: { text: string; resolve: () => void }[] = [];
  child.stderr!.on('data', (d) => {
    log += d;
    for (const w of waiters.splice(0)) {
      if (log.includes(w.text)) w.resolve();
      else waiters.push(w);
    }
  });
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      procs.delete(child);
      resolve(code);
    }),
  );
  return {
    child,
    dataDir: dir,
    log: () => log,
    exited,
    logged: (text) =>
      new Promise<void>((resolve, reject) => {
        if (log.includes(text)) return resolve();
        waiters.push({ text, resolve });
        void exited.then(() =>
          setTimeout(() => reject(new Error(`exited before logging "${text}":\n${log}`)), 200),
        );
      }),
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const httpPort = (p: Primary) => {
  const line = p
    .log()
    .split('\n')
    .find((l) => l.includes('herald workers running'));
  const http: string = JSON.parse(line!).listen.http[0];
  return Number(http.slice(http.lastIndexOf(':') + 1));
};

/**
 * Waits until the primary runs `count` workers again, none of them one of `dead`, and /health says
 * ready; fails if the primary exits meanwhile.
 */
async function restarted(p: Primary, port: number, count: number, dead: number[]): Promise<void> {
  let exitCode: number | null | undefined;
  void p.exited.then((c) => {
    exitCode = c;
  });
  let healthy = false;
  for (let i = 0; i < 300 && !healthy && exitCode === undefined; i++) {
    await sleep(100);
    const pids = workerPids(p.child.pid!);
    if (pids.length !== count || pids.some((pid) => dead.includes(pid))) continue;
    healthy = (await httpGet(port, '127.0.0.1', '/health').catch(() => null))?.status === 200;
  }
  assert.equal(exitCode, undefined, `the primary stayed up:\n${p.log()}`);
  assert.ok(healthy, 'the workers were restarted');
}

test('every worker killed at once: the primary restarts them all and serves again', async () => {
  const p = startPrimary(['--workers', '2', '--udp', '127.0.0.1:0']);
  await p.logged('herald workers running');
  const port = httpPort(p);
  const first = workerPids(p.child.pid!);
  assert.equal(first.length, 2);
  for (const pid of first) process.kill(pid, 'SIGKILL');
  await restarted(p, port, 2, first);
  const d = bdecode(
    (await httpGet(port, '127.0.0.1', announcePath({ infoHash: hashOf(1, 91), port: 6881 }))).body,
  );
  assert.equal(d.get('failure reason'), undefined);
  p.child.kill('SIGTERM');
  await p.exited;
});

test('SIGTERM: every worker stops gracefully and exits 0, and so does the primary', async () => {
  const p = startPrimary(['--workers', '2', '--udp', '127.0.0.1:0']);
  await p.logged('herald workers running');
  const port = httpPort(p);
  const d = bdecode(
    (await httpGet(port, '127.0.0.1', announcePath({ infoHash: hashOf(2, 91), port: 6881 }))).body,
  );
  assert.equal(d.get('failure reason'), undefined);
  p.child.kill('SIGTERM');
  assert.equal(await p.exited, 0, p.log());
  const exits = p
    .log()
    .split('\n')
    .filter((l) => l.includes('"msg":"worker stopped"'))
    .map((l) => JSON.parse(l));
  assert.deepEqual(
    exits.map((e) => [e.worker, e.code]).sort(),
    [
      [0, 0],
      [1, 0],
    ],
    'each worker exited 0 (not the forced exit of a stop that hung)',
  );
  assert.doesNotMatch(p.log(), /did not finish in time/);
});

/**
 * Running (a zombie, dead but not yet reaped by its parent, is not). Every thread counts: a killed
 * process's main thread can be a zombie while its other threads still exit, and its descriptors
 * (its listening sockets) close only with the last one; a connection the kernel gives that
 * listener meanwhile is reset.
 */
const alive = (pid: number) => {
  try {
    return readdirSync(`/proc/${pid}/task`).some((tid) => {
      try {
        return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8'));
      } catch {
        return false;
      }
    });
  } catch {
    return false;
  }
};

/** The first worker's PID, as soon as the primary has forked it (long before it is ready). */
async function firstWorker(p: Primary): Promise<number> {
  for (let i = 0; i < 4000; i++) {
    const [pid] = workerPids(p.child.pid!);
    if (pid !== undefined) return pid;
    await sleep(5);
  }
  throw new Error(`no worker:\n${p.log()}`);
}

async function gone(pid: number): Promise<boolean> {
  for (let i = 0; i < 300 && alive(pid); i++) await sleep(50);
  return !alive(pid);
}

test('SIGTERM during start-up, before worker 0 is ready: a stop, not a failed start (exit 0)', async () => {
  const p = startPrimary(['--workers', '2', '--udp', '127.0.0.1:0']);
  const worker = await firstWorker(p);
  assert.doesNotMatch(p.log(), /worker ready/, 'worker 0 is still starting');
  p.child.kill('SIGTERM');
  assert.equal(await p.exited, 0, p.log());
  assert.ok(await gone(worker), 'worker 0 is gone');
  assert.doesNotMatch(p.log(), /could not start/);
});

test('the primary killed while worker 0 starts: the worker stops cleanly instead of crashing', async () => {
  const p = startPrimary(['--workers', '2', '--udp', '127.0.0.1:0']);
  const worker = await firstWorker(p);
  p.child.kill('SIGKILL');
  await p.exited;
  assert.ok(await gone(worker), 'the orphaned worker exits');
  // Its stderr is still the test's pipe: what it said on the way out.
  await sleep(100);
  assert.doesNotMatch(p.log(), /ERR_IPC_CHANNEL_CLOSED|Unhandled 'error'/, p.log());
  assert.match(p.log(), /"signal":"disconnect","msg":"stopping"/);
});

test('the primary killed while serving: every worker stops and the port is free again', async () => {
  const p = startPrimary(['--workers', '2', '--udp', '127.0.0.1:0']);
  await p.logged('herald workers running');
  const port = httpPort(p);
  const workers = workerPids(p.child.pid!);
  p.child.kill('SIGKILL');
  await p.exited;
  for (const w of workers) assert.ok(await gone(w), `worker ${w} exits with its primary`);
  await assert.rejects(httpGet(port, '127.0.0.1', '/health'), 'nothing listens on the port');
});

test('/stats and /metrics while a worker is down: 503 "degraded", not an internal error', async () => {
  const p = startPrimary(['--workers', '2', '--udp', '127.0.0.1:0', '--full-scrape']);
  await p.logged('herald workers running');
  const port = httpPort(p);
  const [, victim] = workerPids(p.child.pid!);
  // The primary paused, the dead worker stays dead while the test asks (no restart race).
  p.child.kill('SIGSTOP');
  try {
    process.kill(victim, 'SIGKILL');
    assert.ok(await gone(victim));
    for (const path of ['/stats', '/metrics']) {
      const r = await httpGet(port, '127.0.0.1', path);
      assert.equal(r.status, 503, `${path}: ${r.body}`);
      assert.match(r.body.toString(), /degraded/);
    }
    // The figures of the live worker still come: a full scrape of what it holds.
    assert.equal((await httpGet(port, '127.0.0.1', '/scrape')).status, 200);
  } finally {
    p.child.kill('SIGCONT');
  }
  let back = false;
  for (let i = 0; i < 300 && !back; i++) {
    await sleep(100);
    back = (await httpGet(port, '127.0.0.1', '/stats').catch(() => null))?.status === 200;
  }
  assert.ok(back, '/stats answers again once the worker is back');
  assert.doesNotMatch(p.log(), /"level":50[^\n]*tracker busy/, 'no internal error logged');
  p.child.kill('SIGTERM');
  await p.exited;
});

test('private mode: a worker that died just before an accounting collection does not take the primary down', async () => {
  const p = startPrimary(['--workers', '2', '--mode', 'private', '--flush-interval', '1', '--udp', 'off']);
  await p.logged('herald workers running');
  const port = httpPort(p);
  const [, victim] = workerPids(p.child.pid!);
  // The primary paused past a flush_interval: when it resumes, its collection timer runs before
  // it has read that the worker is gone, and its request meets a closed channel (EPIPE).
  p.child.kill('SIGSTOP');
  process.kill(victim, 'SIGKILL');
  await sleep(1500);
  p.child.kill('SIGCONT');
  await restarted(p, port, 2, [victim]);
  p.child.kill('SIGTERM');
  assert.equal(await p.exited, 0, p.log());
});

test("private mode: the portal's periodic snapshot runs once for the tracker, not once per worker, and not as an internal error while a worker starts", async () => {
  const p = startPrimary(['--workers', '3', '--mode', 'private', '--udp', 'off']);
  await p.logged('herald workers running');
  // The first snapshot is taken a second after the start; give every worker's a chance.
  await sleep(2500);
  const db = new DatabaseSync(join(p.dataDir, 'herald.db'), { readOnly: true });
  try {
    const rows = db.prepare('SELECT at FROM site_history').all();
    assert.ok(rows.length <= 1, `one snapshot per period, not one per worker: ${JSON.stringify(rows)}`);
  } finally {
    db.close();
  }
  assert.doesNotMatch(p.log(), /"level":50/, p.log());
  p.child.kill('SIGTERM');
  assert.equal(await p.exited, 0, p.log());
});

test("private mode: a worker's last batch acknowledged late by a busy primary is credited once, not twice", async () => {
  // A long flush_interval: this member's credit reaches the database only through the final hand-off.
  const p = startPrimary(['--workers', '2', '--mode', 'private', '--flush-interval', '300', '--udp', 'off']);
  await p.logged('herald workers running');
  const port = httpPort(p);
  const admin = (...a: string[]) => runHerald([...a, '--data-dir', p.dataDir, '--json']);
  const file = join(p.dataDir, 'a.torrent');
  const info = new Map<string, unknown>([
    ['length', 32768],
    ['name', Buffer.from('a.bin')],
    ['piece length', 16384],
    ['pieces', Buffer.alloc(40, 2)],
    ['private', 1],
  ]);
  writeFileSync(file, encode(new Map([['info', info]]) as never));
  const alice = JSON.parse(admin('member', 'add', 'alice').stdout) as { passkey: string };
  const ih = Buffer.from(
    (JSON.parse(admin('torrent', 'add', file).stdout) as { info_hash: string }).info_hash,
    'hex',
  );
  // One client (peer id tagged 'hndof', port 9300), seeding.
  const hand = announcer(port, alice.passkey, 9300, 'hndof', { left: 0 });
  const announce = (f: Partial<AnnounceFields>) => hand(ih, 0, f);
  // Every worker polls the policy revision (policy_refresh): until both know the torrent.
  let known = 0;
  for (let i = 0; i < 150 && known < 6; i++) {
    known = (await announce({ event: 'started', uploaded: 0 })).has('failure reason') ? 0 : known + 1;
    await sleep(100);
  }
  assert.equal((await announce({ uploaded: 5000 })).get('failure reason'), undefined);
  const owner = shardOf(ih, 2);
  const ownerPid = Number(
    new RegExp(`"worker":${owner},"pid":(\\d+),"msg":"worker ready"`).exec(p.log())![1],
  );
  // The primary busy (paused) while the owner is told to stop, as systemd's control-group kill
  // tells every process at once; the owner's hand-off waits in the primary's pipe.
  p.child.kill('SIGSTOP');
  process.kill(ownerPid, 'SIGTERM');
  await sleep(6000);
  p.child.kill('SIGCONT');
  assert.ok(await gone(ownerPid), 'the owner stopped once the primary took its batch');
  p.child.kill('SIGTERM');
  assert.equal(await p.exited, 0, p.log());
  const after = JSON.parse(admin('member', 'show', 'alice').stdout) as { uploaded: number };
  assert.equal(after.uploaded, 5000, 'credited once');
});
