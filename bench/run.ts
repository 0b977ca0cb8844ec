/**
 * `npm run bench`: Herald against opentracker and webtorrent's bittorrent-tracker, side by side in
 * one run on loopback, reported as ratios (issue #4). Each tracker in turn is pinned to CPU 0 and
 * the load generator to CPU 1 (taskset); every process is started and stopped by PID here.
 *
 *   npm run bench            full run (10,000 torrents / 100,000 peers prefilled; 1M-peer memory)
 *   npm run bench -- --quick small and short, for a smoke test
 *   npm run bench -- --no-write   do not rewrite docs/benchmarks.md
 *   npm run bench -- --only=throughput,memory,expiry,ws,workers,rules,redis   a subset of the tests (implies --no-write)
 *   npm run bench -- --trackers=herald,opentracker        a subset of the trackers (implies --no-write)
 *   npm run bench -- --ws-only    same as --only=ws
 *
 * The `rules` test (issue #16) runs Herald in private mode with every rule on, over a site of
 * 10,000 members and 100,000 torrents, paired against Herald in open mode under the same peers.
 * With BENCH_PG_URL (a PostgreSQL server's URL, e.g. postgres://herald:herald@127.0.0.1:5432/herald
 * after bash scripts/start-services.sh) a third tracker runs the same site on a fresh database there,
 * and the report gives PostgreSQL's own CPU (every postgres process) per announce beside Herald's.
 *
 * The `workers` test (issue #13) runs `herald serve --workers 2` against `--workers 1` (and
 * opentracker): there Herald's two workers need both cores, so every process of that test may run
 * on CPUs 0 and 1, load generators included, and server CPU is summed over all of a tracker's
 * processes (Herald's primary and its workers: `pgrep -P`).
 *
 * Needs: gcc, taskset (util-linux), wrk and opentracker (Debian packages); bittorrent-tracker is
 * installed into .bench/bt with --ignore-scripts (its client pulls a WebRTC addon that cannot
 * build offline).
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { cpus, release } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { WebSocket } from 'ws';
import { waitTcp } from './harness/clients.ts';

const ROOT = new URL('../', import.meta.url).pathname;
const WORK = join(ROOT, '.bench');
const QUICK = process.argv.includes('--quick');
function listArg(name: string): string[] | null {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  return a === undefined
    ? null
    : a
        .slice(name.length + 3)
        .split(',')
        .filter(Boolean);
}
const ONLY = process.argv.includes('--ws-only') ? ['ws'] : listArg('only');
const ONLY_TRACKERS = listArg('trackers');
for (const t of ONLY ?? [])
  if (!['throughput', 'memory', 'expiry', 'ws', 'workers', 'rules', 'redis'].includes(t))
    throw new Error(`--only: unknown test ${t}`);
/** Whether a test (and, when given, a tracker) is selected on the command line. */
function selected(test: string, tracker = 'herald'): boolean {
  return (
    (ONLY === null || ONLY.includes(test)) && (ONLY_TRACKERS === null || ONLY_TRACKERS.includes(tracker))
  );
}
const WRITE = !process.argv.includes('--no-write') && !QUICK && ONLY === null && ONLY_TRACKERS === null;
const NODE = process.execPath;
const TICK = 100; // clock ticks per second in /proc/PID/stat (USER_HZ)

const P = QUICK
  ? { torrents: 2000, peers: 10, seconds: 2, warm: 1, memTorrents: 20_000, memPeers: 10, window: 256 }
  : { torrents: 10_000, peers: 10, seconds: 5, warm: 1, memTorrents: 100_000, memPeers: 10, window: 256 };

function log(msg: string): void {
  process.stderr.write(`bench: ${msg}\n`);
}

function need(cmd: string, pkg: string): void {
  if (spawnSync('sh', ['-c', `command -v ${cmd}`]).status !== 0)
    throw new Error(`${cmd} not found: apt-get install -y ${pkg}`);
}

// ---------- set-up ----------
need('gcc', 'gcc');
need('taskset', 'util-linux');
need('wrk', 'wrk');
need('opentracker', 'opentracker');
mkdirSync(WORK, { recursive: true });
const LOAD = join(WORK, 'udp-load');
execFileSync('gcc', ['-O2', '-Wall', '-o', LOAD, join(ROOT, 'bench/udp-load.c')]);
const BT_DIR = join(WORK, 'bt');
const BT_MODULE = join(BT_DIR, 'node_modules/bittorrent-tracker/server.js');
// Only when a test runs bittorrent-tracker (the rules test, alone, does not).
const NEED_BT = ['throughput', 'memory', 'ws'].some((t) => selected(t, 'bittorrent-tracker'));
if (NEED_BT && !existsSync(BT_MODULE)) {
  log('installing bittorrent-tracker into .bench/bt (--ignore-scripts)');
  mkdirSync(BT_DIR, { recursive: true });
  writeFileSync(join(BT_DIR, 'package.json'), '{"name":"herald-bench-deps","private":true}\n');
  execFileSync('npm', ['install', '--ignore-scripts', '--no-audit', '--no-fund', 'bittorrent-tracker'], {
    cwd: BT_DIR,
    stdio: 'inherit',
  });
}
// opentracker (Debian build) tracks whitelisted hashes only: give it the benchmark's hashes.
const OT_DIR = join(WORK, 'ot');
mkdirSync(OT_DIR, { recursive: true });
chmodSync(OT_DIR, 0o755);
const HASHES = join(OT_DIR, 'whitelist');
writeFileSync(
  HASHES,
  execFileSync(
    LOAD,
    ['127.0.0.1', '1', 'hashes', '0', '1', String(Math.max(P.torrents, P.memTorrents)), '1', '1'],
    { maxBuffer: 1 << 28 },
  ),
);
chmodSync(HASHES, 0o644);
const HTTP_HASHES = join(WORK, 'http-hashes');
writeFileSync(
  HTTP_HASHES,
  execFileSync(LOAD, ['127.0.0.1', '1', 'hashes', '0', '1', String(P.torrents), '1', '1'], {
    maxBuffer: 1 << 28,
  }),
);

// ---------- processes ----------
const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => process.exit(130));

interface Tracker {
  name: string;
  /** Starts the tracker on `port`, pinned to `cpus` (taskset's list; CPU 0 unless given). */
  start(port: number, extra?: string[], cpus?: string): ChildProcess;
}

/**
 * Herald on loopback `port` (HTTP and UDP unless `udp` is given): the command after taskset or
 * prlimit. Each instance has a data directory of its own (two may run at once).
 */
function heraldCommand(
  port: number,
  logLevel: string,
  extra: string[],
  udp = `127.0.0.1:${port}`,
  nodeFlags: string[] = [],
): string[] {
  return [
    NODE,
    '--max-semi-space-size=1', // as bin/herald.js runs it
    ...nodeFlags,
    join(ROOT, 'bin/herald.js'),
    'serve',
    '--http',
    `127.0.0.1:${port}`,
    '--udp',
    udp,
    '--data-dir',
    join(WORK, 'herald-data', String(port)),
    '--log-level',
    logLevel,
    // Every load generator connection comes from 127.0.0.1.
    '--max-connections-per-ip',
    '0',
    ...extra,
  ];
}

let nextPort = 27000 + Math.floor(Math.random() * 1000);
const TRACKERS: Tracker[] = [
  {
    name: 'herald',
    start: (port, extra = [], cpus = '0') =>
      spawn('taskset', ['-c', cpus, ...heraldCommand(port, 'warn', extra)], {
        stdio: ['ignore', 'ignore', 'inherit'],
      }),
  },
  {
    name: 'opentracker',
    start: (port, _extra, cpus = '0') =>
      spawn(
        'taskset',
        [
          '-c',
          cpus,
          'opentracker',
          '-i',
          '127.0.0.1',
          '-p',
          String(port),
          '-P',
          String(port),
          '-d',
          OT_DIR,
          '-w',
          'whitelist',
          '-u',
          'nobody',
        ],
        { stdio: ['ignore', 'ignore', 'ignore'] },
      ),
  },
  {
    name: 'bittorrent-tracker',
    start: (port, _extra, cpus = '0') =>
      spawn('taskset', ['-c', cpus, NODE, join(ROOT, 'bench/bt-server.mjs'), BT_MODULE, String(port)], {
        stdio: ['ignore', 'ignore', 'inherit'],
      }),
  },
];

/**
 * The tracker's processes: its own PID (the child is `taskset` or `prlimit`, which exec the
 * tracker: same PID) and its child processes (Herald's workers).
 */
function processes(pid: number): number[] {
  const r = spawnSync('pgrep', ['-P', String(pid)]);
  return [
    pid,
    ...r.stdout
      .toString()
      .split('\n')
      .filter(Boolean)
      .map(Number)
      .sort((a, b) => a - b),
  ];
}
/** CPU seconds (user + system, all threads) of these processes. */
function cpuSeconds(pids: number[]): number {
  let sum = 0;
  for (const pid of pids) {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
    sum += (Number(fields[11]) + Number(fields[12])) / TICK;
  }
  return sum;
}
/** Resident memory of these processes, summed. */
function rssBytes(pids: number[]): number {
  let sum = 0;
  for (const pid of pids) {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    sum += m ? Number(m[1]) * 1024 : 0;
  }
  return sum;
}
/** Throws when a tracker's set of processes changed (a worker died and was restarted) mid-test. */
function sameProcesses(name: string, before: number[], after: number[]): void {
  if (before.join() !== after.join())
    throw new Error(`${name}: processes changed during the test (${before} -> ${after})`);
}

/**
 * Stops a tracker (SIGTERM, SIGKILL after `graceMs`) and, when it had child processes (Herald's
 * workers stop with their primary), waits for those too and kills any left, by PID.
 */
async function stop(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const kids = processes(child.pid!).slice(1);
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(t);
  live.delete(child);
  const alive = (pid: number) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('herald.js');
    } catch {
      return false;
    }
  };
  const deadline = Date.now() + graceMs;
  while (kids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  for (const pid of kids.filter(alive)) process.kill(pid, 'SIGKILL');
}

interface LoadResult {
  ok: number;
  rps: number;
  p50_us: number;
  p99_us: number;
  max_us: number;
  invalid: number;
  missing: number;
  clientCpu: number;
  seconds: number;
}

/** `port`: one, or several comma-separated (torrent t goes to port t % ports: the floor row). */
function udpLoad(
  port: number | string,
  mode: string,
  seconds: number,
  torrents: number,
  peers: number,
  window = P.window,
  cpus = '1',
): LoadResult {
  const out = execFileSync(
    'taskset',
    [
      '-c',
      cpus,
      LOAD,
      '127.0.0.1',
      String(port),
      mode,
      String(seconds),
      String(window),
      String(torrents),
      String(peers),
      String(Math.floor(Math.random() * 1e9)),
    ],
    { timeout: (seconds + 120) * 1000 },
  ).toString();
  const r = JSON.parse(out);
  return {
    ok: r.ok,
    rps: r.rps,
    p50_us: r.p50_us,
    p99_us: r.p99_us,
    max_us: r.max_us,
    invalid: r.invalid,
    missing: r.missing,
    clientCpu: r.cpu_s,
    seconds: r.seconds,
  };
}

function httpLoad(
  port: number | string,
  mode: 'announce' | 'scrape',
  close: boolean,
  seconds: number,
  cpus = '1',
  threads = 1,
): LoadResult {
  const header = close ? `-H 'Connection: close'` : '';
  return wrk(port, header, 'http.lua', [HTTP_HASHES, mode, String(P.peers)], seconds, cpus, threads);
}

/**
 * wrk (`threads` threads, 64 connections in all) with `script` (in bench/) and its arguments for
 * `seconds`. `port`: one, or two comma-separated (the floor row): then wrk runs two threads of 32
 * connections, one on each port (http.lua's `setup` reads WRK_PORTS).
 */
function wrk(
  port: number | string,
  header: string,
  script: string,
  args: string[],
  seconds: number,
  cpus = '1',
  threads = 1,
): LoadResult {
  const ports = String(port).split(',');
  const t = ports.length > 1 ? `WRK_PORTS=${ports.join(',')} wrk -t${ports.length}` : `wrk -t${threads}`;
  // `times` (a bash builtin) reports wrk's CPU time: the load generator's own cost.
  const cmd = `taskset -c ${cpus} env ${t} -c64 -d${seconds}s --timeout 2s ${header} -s ${join(ROOT, 'bench', script)} http://127.0.0.1:${ports[0]} -- ${args.join(' ')} | tail -1; times`;
  const out = execFileSync('bash', ['-c', cmd], { timeout: (seconds + 60) * 1000 })
    .toString()
    .trim()
    .split('\n');
  const r = JSON.parse(out[0]);
  const child = out[2].split(/\s+/).map((t) => {
    const m = /(\d+)m([\d.]+)s/.exec(t);
    return m ? Number(m[1]) * 60 + Number(m[2]) : 0;
  });
  return {
    ok: r.requests - r.invalid,
    rps: r.rps,
    p50_us: r.p50_us,
    p99_us: r.p99_us,
    max_us: r.max_us,
    invalid: r.invalid,
    missing: r.errors,
    clientCpu: child[0] + child[1],
    seconds: r.seconds,
  };
}

interface Row {
  test: string;
  tracker: string;
  rps: number;
  cpuUs: number;
  p50: number;
  p99: number;
  clientBusy: number;
  invalid: number;
  missing: number;
}
const rows: Row[] = [];
const memory: { tracker: string; peers: number; bytesPerPeer: number }[] = [];
let expiry: { removed: number; maxUs: number; p99Us: number; rps: number } | null = null;

// ---------- WebSocket (WebTorrent): Herald vs bittorrent-tracker ----------
const WS = QUICK
  ? { conns: 2000, relayConns: 500, torrents: 50, offers: 5, seconds: 3, depth: 4 }
  : // 19,500: this machine's hard limit on open files per process is 20,000 (ulimit -Hn), and the
    // tracker needs a few descriptors besides its sockets.
    { conns: 19_500, relayConns: 500, torrents: 50, offers: 5, seconds: 8, depth: 4 };
// The most open files a process may have here, raised to the hard limit for both sides.
const NOFILE = execFileSync('sh', ['-c', 'ulimit -Hn']).toString().trim();
const wsRows: {
  tracker: string;
  announcesPerSecond: number;
  offersPerSecond: number;
  cpuUs: number;
  clientBusy: number;
  failures: number;
}[] = [];
const wsMemory: { tracker: string; conns: number; bytesPerConn: number }[] = [];

/** Starts a WebSocket tracker on CPU 0 with room for many sockets; returns the child and URL. */
function startWs(name: string, port: number): { child: ChildProcess; url: string } {
  const base = [`--nofile=${NOFILE}:${NOFILE}`, 'taskset', '-c', '0'];
  const child =
    name === 'herald'
      ? spawn('prlimit', [...base, ...heraldCommand(port, 'warn', [], 'off')], {
          stdio: ['ignore', 'ignore', 'inherit'],
        })
      : spawn('prlimit', [...base, NODE, join(ROOT, 'bench/bt-server.mjs'), BT_MODULE, String(port), 'ws'], {
          stdio: ['ignore', 'ignore', 'inherit'],
        });
  live.add(child);
  return { child, url: name === 'herald' ? `ws://127.0.0.1:${port}/announce` : `ws://127.0.0.1:${port}` };
}

/** The WebSocket load generator's command line after `prlimit`, on `cpus`. */
function wsLoad(cpus = '1'): string[] {
  return [`--nofile=${NOFILE}:${NOFILE}`, 'taskset', '-c', cpus, NODE, join(ROOT, 'bench/ws-load.ts')];
}
const WS_LOAD = wsLoad();

/**
 * Connections held: one load generator per source address in `from` (each opens `conns`
 * announcing sockets; each is one process, limited to NOFILE files), then the tracker's RSS growth
 * over all its processes (the most files any one of them had open is returned too).
 */
async function wsHold(
  pid: number,
  url: string,
  conns: number,
  from: (string | null)[],
  cpus = '1',
): Promise<{ held: number; failures: number; bytesPerConn: number; files: number[] }> {
  await new Promise((r) => setTimeout(r, 500));
  const pids = processes(pid);
  const before = rssBytes(pids);
  const loads = from.map((addr) => {
    const load = spawn(
      'prlimit',
      [
        ...wsLoad(cpus),
        'conns',
        url,
        String(conns),
        String(WS.torrents * 20),
        ...(addr === null ? [] : [`--from=${addr}`]),
      ],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    live.add(load);
    return load;
  });
  try {
    const ready = await Promise.all(
      loads.map(
        (load) =>
          new Promise<{ ready: number; failures: number }>((resolve, reject) => {
            let buf = '';
            load.stdout!.on('data', (d) => {
              buf += d;
              if (buf.includes('\n')) resolve(JSON.parse(buf));
            });
            load.on('exit', (code) => reject(new Error(`ws-load conns exited with ${code}`)));
          }),
      ),
    );
    await new Promise((r) => setTimeout(r, 1000));
    const after = processes(pid);
    sameProcesses(url, pids, after);
    const bytes = rssBytes(after) - before;
    const files = after.map(
      (p) =>
        spawnSync('ls', [`/proc/${p}/fd`])
          .stdout.toString()
          .split('\n').length - 1,
    );
    const held = ready.reduce((a, r) => a + r.ready, 0);
    return { held, failures: ready.reduce((a, r) => a + r.failures, 0), bytesPerConn: bytes / held, files };
  } finally {
    for (const load of loads) {
      const exited = new Promise((r) => load.once('exit', r));
      load.stdin!.end();
      await exited;
      live.delete(load);
    }
  }
}

async function wsTests(name: string): Promise<void> {
  // Relay throughput: closed loop, every announce carries offers relayed to other sockets.
  {
    const port = nextPort++;
    const { child, url } = startWs(name, port);
    try {
      await waitTcp(port);
      const pid = child.pid!;
      // prlimit and taskset exec the tracker: the PID is the tracker's.
      execFileSync('prlimit', [
        ...WS_LOAD.slice(1),
        'relay',
        url,
        '200',
        String(WS.torrents),
        String(WS.offers),
        '1',
      ]);
      const c0 = cpuSeconds([pid]);
      const out = execFileSync('prlimit', [
        ...WS_LOAD,
        'relay',
        url,
        String(WS.relayConns),
        String(WS.torrents),
        String(WS.offers),
        String(WS.seconds),
        String(WS.depth),
      ]).toString();
      const c1 = cpuSeconds([pid]);
      const r = JSON.parse(out);
      wsRows.push({
        tracker: name,
        announcesPerSecond: r.announcesPerSecond,
        offersPerSecond: r.offersPerSecond,
        cpuUs: ((c1 - c0) / r.announces) * 1e6,
        clientBusy: r.clientCpu,
        failures: r.failures,
      });
      log(
        `${name}: ws relay ${Math.round(r.announcesPerSecond)} announces/s, ${Math.round(r.offersPerSecond)} offers/s`,
      );
    } finally {
      await stop(child);
    }
  }
  // Connections held: RSS growth over WS.conns announcing sockets.
  {
    const port = nextPort++;
    const { child, url } = startWs(name, port);
    try {
      await waitTcp(port);
      const r = await wsHold(child.pid!, url, WS.conns, [null]);
      wsMemory.push({ tracker: name, conns: r.held, bytesPerConn: r.bytesPerConn });
      log(`${name}: ws ${r.held} connections, ${r.bytesPerConn.toFixed(0)} bytes each`);
    } finally {
      await stop(child);
    }
  }
}

async function throughput(t: Tracker): Promise<void> {
  const port = nextPort++;
  const child = t.start(port);
  live.add(child);
  try {
    await waitTcp(port);
    const pid = child.pid!;
    log(`${t.name}: prefill ${P.torrents} torrents x ${P.peers} peers`);
    udpLoad(port, 'fill', 120, P.torrents, P.peers);
    const tests: [string, () => LoadResult][] = [
      ['UDP announce', () => udpLoad(port, 'announce', P.seconds, P.torrents, P.peers)],
      ['UDP scrape (4 hashes)', () => udpLoad(port, 'scrape', P.seconds, P.torrents, P.peers)],
      ['HTTP announce, keep-alive', () => httpLoad(port, 'announce', false, P.seconds)],
      ['HTTP scrape, keep-alive', () => httpLoad(port, 'scrape', false, P.seconds)],
      ['HTTP announce, new connection each', () => httpLoad(port, 'announce', true, P.seconds)],
    ];
    for (const [name, run] of tests) {
      // Warm-up with the same load, then the measured run.
      if (name.startsWith('UDP'))
        udpLoad(port, name.includes('scrape') ? 'scrape' : 'announce', P.warm, P.torrents, P.peers);
      else httpLoad(port, name.includes('scrape') ? 'scrape' : 'announce', name.includes('new'), P.warm);
      measure(name, t.name, pid, run);
    }
  } finally {
    await stop(child);
  }
}

/** Runs one measured load against the tracker process `pid` and adds its row (CPU from /proc). */
function measure(test: string, tracker: string, pid: number, run: () => LoadResult): void {
  const c0 = cpuSeconds([pid]);
  const r = run();
  addRow(test, tracker, [r], cpuSeconds([pid]) - c0);
  log(
    `${tracker}: ${test}: ${Math.round(r.rps)}/s p50 ${r.p50_us}us p99 ${r.p99_us}us invalid ${r.invalid} missing ${r.missing}`,
  );
}

/**
 * Adds a row from one or more timed loads and the tracker's CPU seconds over them: responses/s,
 * p50 and p99 are the median load's (the only one's when there is one), CPU per response and the
 * counts are over all of them.
 */
function addRow(test: string, tracker: string, loads: LoadResult[], cpu: number, into = rows): Row {
  const sum = (f: (r: LoadResult) => number) => loads.reduce((a, r) => a + f(r), 0);
  const ok = sum((r) => r.ok);
  const row: Row = {
    test,
    tracker,
    rps: median(loads.map((r) => r.rps)),
    cpuUs: ok > 0 ? (cpu / ok) * 1e6 : Number.NaN,
    p50: median(loads.map((r) => r.p50_us)),
    p99: median(loads.map((r) => r.p99_us)),
    clientBusy: sum((r) => r.clientCpu) / sum((r) => r.seconds),
    invalid: sum((r) => r.invalid),
    missing: sum((r) => r.missing),
  };
  into.push(row);
  return row;
}

function median(xs: number[]): number {
  const a = [...xs].sort((x, y) => x - y);
  return a.length === 0
    ? Number.NaN
    : a.length % 2 === 1
      ? a[(a.length - 1) / 2]
      : (a[a.length / 2 - 1] + a[a.length / 2]) / 2;
}

const DGRAM_TEST = 'UDP announce, node:dgram fallback (no addon)';
/** One-second load slices per tracker in the dgram test. */
const DGRAM_ROUNDS = QUICK ? 3 : 7;

/** A tracker running in a paired test. */
interface Entrant {
  name: string;
  port: number;
  child: ChildProcess;
  /** Other processes measured with it (the floor row: the second independent tracker). */
  more?: ChildProcess[];
}

/** Every process of an entrant (its children included). */
function entrantPids(x: Entrant): number[] {
  return [x.child, ...(x.more ?? [])].flatMap((c) => processes(c.pid!));
}

/**
 * Paired measurement: every entrant runs at once (only one under load at a time) and the load
 * (`run(port, seconds)`) alternates between them in one-second slices, `rounds` each. This VM's
 * speed drifts by ±15 % over seconds to minutes (opentracker alone has measured 79k-134k/s in
 * different runs), more than the margins these rows are about, so each entrant's responses/s,
 * p50 and p99 are its median slice, taken within the same minute as the others'; CPU per response
 * is the total over all its slices and all its processes (with `wholeWindow`, over the whole
 * paired window, the other entrants' slices included). Adds one row per entrant to `into`.
 */
function paired(
  test: string,
  entrants: Entrant[],
  rounds: number,
  run: (port: number, seconds: number) => LoadResult,
  into = rows,
  wholeWindow = false,
): void {
  const acc = entrants.map((x) => ({ x, slices: [] as LoadResult[], cpu: 0 }));
  const atStart = entrants.map((x) => cpuSeconds(entrantPids(x)));
  for (let round = 0; round < rounds; round++)
    for (const a of acc) {
      const pids = entrantPids(a.x);
      const c0 = cpuSeconds(pids);
      a.slices.push(run(a.x.port, 1));
      const after = entrantPids(a.x);
      sameProcesses(a.x.name, pids, after);
      a.cpu += cpuSeconds(after) - c0;
    }
  // `wholeWindow`: all of each tracker's CPU from the first slice to the last, what it did in
  // the other's slices too (work on a timer of its own, such as the accounting flush).
  if (wholeWindow)
    for (let i = 0; i < acc.length; i++) acc[i].cpu = cpuSeconds(entrantPids(acc[i].x)) - atStart[i];
  for (const a of acc) {
    const row = addRow(test, a.x.name, a.slices, a.cpu, into);
    log(
      `${a.x.name}: ${test}: slices ${a.slices.map((r) => Math.round(r.rps)).join(' ')}/s, ${fmt(row.cpuUs, 1)} us each`,
    );
  }
}

/**
 * Herald's fallback UDP transport (where the addon is not built) against opentracker's UDP
 * announce, paired (each pinned to CPU 0), DGRAM_ROUNDS slices each.
 */
async function dgramTest(): Promise<void> {
  const pair: Entrant[] = [];
  const others = selected('throughput', 'opentracker') ? [TRACKERS[1]] : [];
  try {
    for (const [t, extra] of [[TRACKERS[0], ['--udp-io', 'dgram']], ...others.map((o) => [o, []])] as [
      Tracker,
      string[],
    ][]) {
      const port = nextPort++;
      const child = t.start(port, extra);
      live.add(child);
      pair.push({ name: t.name, port, child });
      await waitTcp(port);
      udpLoad(port, 'fill', 120, P.torrents, P.peers);
      udpLoad(port, 'announce', P.warm, P.torrents, P.peers);
    }
    paired(DGRAM_TEST, pair, DGRAM_ROUNDS, (port, s) => udpLoad(port, 'announce', s, P.torrents, P.peers));
  } finally {
    for (const x of pair) await stop(x.child);
  }
}

/**
 * Memory per peer: RSS growth of the tracker (all its processes, each one's idle RSS subtracted)
 * after announcing P.memTorrents × P.memPeers distinct peers over UDP from `cpus`. With `gc`
 * (a full collection in these processes), the idle RSS is taken after one, and `liveBytesPerPeer`
 * is the growth after another once the peers are in. With `gc` and `warm`, also the slope: RSS
 * after a full GC at half the fill and at the whole, the growth divided by the peers added in
 * between, which leaves out whatever a process holds once however many peers it has.
 */
async function peerMemory(
  name: string,
  pid: number,
  port: number,
  cpus = '1',
  gc?: (pids: number[]) => Promise<number>,
  warm = false,
): Promise<{
  peers: number;
  bytesPerPeer: number;
  liveBytesPerPeer: number;
  storeBytesPerPeer: number;
  slopeBytesPerPeer: number;
}> {
  await new Promise((r) => setTimeout(r, 500));
  // `warm`: first 1% of the fill (its first torrents), so that what every process builds once
  // whatever the peer count (the code the fill makes V8 compile, its buffers) is in the baseline;
  // the peers are then counted by /stats (the fill announces those first peers again).
  const peersNow = () =>
    Number(JSON.parse(execFileSync('curl', ['-s', `http://127.0.0.1:${port}/stats`]).toString()).swarm.peers);
  if (warm) udpLoad(port, 'fill', 300, P.memTorrents / 100, P.memPeers, P.window, cpus);
  const pids = processes(pid);
  const buffers = gc ? await gc(pids) : 0;
  const before = rssBytes(pids);
  const peers0 = warm ? peersNow() : 0;
  // The slope's first point: half the torrents filled (the whole fill announces them again).
  let half: { rss: number; peers: number } | undefined;
  if (gc && warm) {
    udpLoad(port, 'fill', 300, P.memTorrents / 2, P.memPeers, P.window, cpus);
    await gc(pids);
    half = { rss: rssBytes(pids), peers: peersNow() };
  }
  const r = udpLoad(port, 'fill', 300, P.memTorrents, P.memPeers, P.window, cpus);
  const added = warm ? peersNow() - peers0 : r.ok;
  await new Promise((res) => setTimeout(res, 1000));
  const after = processes(pid);
  sameProcesses(name, pids, after);
  const bytesPerPeer = (rssBytes(after) - before) / added;
  const storeBytesPerPeer = gc ? ((await gc(after)) - buffers) / added : Number.NaN;
  const live = rssBytes(after);
  const liveBytesPerPeer = gc ? (live - before) / added : Number.NaN;
  const slopeBytesPerPeer = half ? (live - half.rss) / (peersNow() - half.peers) : Number.NaN;
  log(
    `${name}: memory ${r.ok} peers, ${bytesPerPeer.toFixed(1)} bytes/peer${gc ? `, ${liveBytesPerPeer.toFixed(1)} after a full GC (array buffers ${storeBytesPerPeer.toFixed(1)}; slope ${slopeBytesPerPeer.toFixed(1)})` : ''}`,
  );
  return { peers: added, bytesPerPeer, liveBytesPerPeer, storeBytesPerPeer, slopeBytesPerPeer };
}

async function memoryTest(t: Tracker): Promise<void> {
  const port = nextPort++;
  const child = t.start(port);
  live.add(child);
  try {
    await waitTcp(port);
    const m = await peerMemory(t.name, child.pid!, port);
    memory.push({ tracker: t.name, peers: m.peers, bytesPerPeer: m.bytesPerPeer });
  } finally {
    await stop(child);
  }
}

/** Herald only (opentracker's timeout is compiled in): latency while 1M peers expire. */
async function expiryTest(): Promise<void> {
  const port = nextPort++;
  const timeout = 40;
  const child = TRACKERS[0].start(port, [
    '--interval',
    '30',
    '--min-interval',
    '10',
    '--peer-timeout',
    String(timeout),
  ]);
  live.add(child);
  try {
    await waitTcp(port);
    const t0 = Date.now();
    const filled = udpLoad(port, 'fill', 300, P.memTorrents, P.memPeers);
    const fillSeconds = (Date.now() - t0) / 1000;
    // Keep a small set of swarms alive with steady load while the filled peers expire.
    const wait = Math.max(5, Math.ceil(timeout - fillSeconds + 15));
    log(
      `herald: expiry: ${filled.ok} peers filled in ${fillSeconds.toFixed(1)}s; load for ${wait}s while they expire`,
    );
    const r = udpLoad(port, 'announce', wait, 1000, 10, 32);
    const stats = JSON.parse(execFileSync('curl', ['-s', `http://127.0.0.1:${port}/stats`]).toString());
    expiry = { removed: stats.expiredPeers, maxUs: r.max_us, p99Us: r.p99_us, rps: r.rps };
    log(`herald: expiry: removed ${stats.expiredPeers}, max latency ${r.max_us}us`);
  } finally {
    await stop(child);
  }
}

// ---------- Workers (issue #13): `herald serve --workers 2` against `--workers 1` ----------
/**
 * The CPUs of every process in the workers test, load generators included: two workers need both
 * cores of this 2-vCPU machine, so nothing there is pinned to one core, and server CPU per
 * response (over all of a tracker's processes) is the figure that counts.
 */
const PAIR_CPUS = '0,1';
/** One-second load slices per tracker in the workers test. */
const WORKER_ROUNDS = QUICK ? 3 : 7;
/**
 * Seconds of load before them: every worker process compiles the hot path for itself, with half
 * the load each, so V8's tiers take longer to settle than in one process (after the fill and 1 s
 * of HTTP, two workers had spent 2.2 s compiling over the next 6 s against 0.65 s for one
 * process): CPU per response is a steady-state figure.
 */
const WORKER_WARM = QUICK ? 2 : 5;
/**
 * WebSocket connections held with 2 workers: one load generator per source address (each is one
 * process, limited to NOFILE files like every process here), each opening `conns` sockets; the
 * kernel spreads them over the workers (SO_REUSEPORT), each worker with its own NOFILE.
 */
const WORKER_WS = {
  conns: QUICK ? 2000 : 11_000,
  from: ['127.0.0.2', '127.0.0.3'],
};
/** One worker through node:net (as workers answered HTTP before the batched addon parked answers). */
const NODE_NET_ONE = 'herald --workers 1 --http-io node';
/**
 * The floor: two independent `herald --workers 1` processes, each on its own port, the load
 * split evenly between them by the same load generator (UDP: torrent t to port t % 2; HTTP: one
 * wrk thread of 32 connections on each), CPU summed over both. No hand-over and no shared swarms:
 * the best any design of two processes can do on these two cores shared with the load generator.
 */
const FLOOR = '2 × herald --workers 1, independent (the floor)';
const workerRows: Row[] = [];
const workerMemory: {
  workers: number;
  peers: number;
  bytesPerPeer: number;
  liveBytesPerPeer: number;
  storeBytesPerPeer: number;
  slopeBytesPerPeer: number;
}[] = [];
const workerWs: {
  workers: number;
  held: number;
  failures: number;
  bytesPerConn: number;
  files: number[];
  here: boolean;
}[] = [];

/**
 * Starts `herald serve --workers N` on PAIR_CPUS (with NOFILE open files per process when
 * `nofile`) and resolves once every worker serves (its log says so).
 */
async function startWorkers(
  port: number,
  workers: number,
  o: { nofile?: boolean; udp?: string; inspectors?: string[]; extra?: string[] } = {},
): Promise<ChildProcess> {
  // --inspect-port=0: SIGUSR1 opens a process's inspector on a random loopback port (collectGarbage).
  const flags = o.inspectors ? ['--inspect-port=0'] : [];
  const cmd = [
    'taskset',
    '-c',
    PAIR_CPUS,
    ...heraldCommand(port, 'info', ['--workers', String(workers), ...(o.extra ?? [])], o.udp, flags),
  ];
  const argv = o.nofile ? ['prlimit', `--nofile=${NOFILE}:${NOFILE}`, ...cmd] : cmd;
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
  live.add(child);
  const want = workers > 1 ? 'herald workers running' : 'herald listening';
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`herald --workers ${workers}: not ready in 60 s`)), 60_000);
    child.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`herald --workers ${workers} exited with ${code}`));
    });
    // Info lines are read for readiness, inspector URLs collected; warnings and errors pass through.
    createInterface({ input: child.stderr! }).on('line', (line) => {
      const inspector = /^Debugger listening on (ws:\/\/\S+)/.exec(line);
      if (inspector) o.inspectors?.push(inspector[1]);
      if (inspector || line.startsWith('For help, see') || line === 'Debugger attached.') return;
      let entry: { level?: number; msg?: string } = {};
      try {
        entry = JSON.parse(line);
      } catch {}
      if (entry.msg === want) {
        clearTimeout(t);
        resolve();
      } else if ((entry.level ?? 50) >= 40) process.stderr.write(`${line}\n`);
    });
  });
  return child;
}

/**
 * A full garbage collection in each of these Node processes (started with --inspect-port=0 by
 * startWorkers, which collects the inspectors' URLs into `urls`): SIGUSR1 opens each one's
 * inspector on a random loopback port, HeapProfiler.collectGarbage runs, each process reports
 * its `process.memoryUsage().arrayBuffers` (the swarm store's typed arrays; summed and returned),
 * and the inspector is closed again. RSS right after a fill swings by ±25 bytes per peer at 1M
 * peers with where V8's last full collection fell (two runs: 52.8 and 26.4 bytes/peer for the
 * same process); after one it is what the process holds.
 */
async function collectGarbage(pids: number[], urls: string[]): Promise<number> {
  let arrayBuffers = 0;
  urls.length = 0;
  for (const pid of pids) process.kill(pid, 'SIGUSR1');
  const deadline = Date.now() + 15_000;
  while (urls.length < pids.length) {
    if (Date.now() > deadline)
      throw new Error(`inspector: ${urls.length} of ${pids.length} processes opened one`);
    await new Promise((r) => setTimeout(r, 50));
  }
  for (const url of urls)
    await new Promise<void>((resolve, reject) => {
      const ws = new WebSocket(url);
      const t = setTimeout(() => {
        ws.terminate();
        reject(new Error(`inspector ${url}: no answer in 60 s`));
      }, 60_000);
      ws.on('open', () => ws.send(JSON.stringify({ id: 1, method: 'HeapProfiler.collectGarbage' })));
      const evaluate = (id: number, expression: string) =>
        ws.send(
          JSON.stringify({ id, method: 'Runtime.evaluate', params: { expression, returnByValue: true } }),
        );
      ws.on('message', (d) => {
        const m = JSON.parse(String(d));
        if (m.id === 1) evaluate(2, 'process.memoryUsage().arrayBuffers');
        else if (m.id === 2) {
          arrayBuffers += Number(m.result?.result?.value);
          evaluate(3, "process.getBuiltinModule('inspector').close()");
        } else if (m.id === 3) ws.close();
      });
      ws.on('close', () => {
        clearTimeout(t);
        resolve();
      });
      ws.on('error', (err) => {
        clearTimeout(t);
        reject(err);
      });
    });
  await new Promise((r) => setTimeout(r, 500));
  return arrayBuffers;
}

async function workersTests(): Promise<void> {
  // Throughput: Herald with 1 and 2 workers and opentracker, paired; over HTTP also one worker
  // answering through node:net (as workers did before the batched addon parked answers).
  const entrants: Entrant[] = [];
  try {
    for (const n of [1, 2]) {
      const port = nextPort++;
      entrants.push({ name: `herald --workers ${n}`, port, child: await startWorkers(port, n) });
    }
    if (selected('workers', 'opentracker')) {
      const port = nextPort++;
      const child = TRACKERS[1].start(port, [], PAIR_CPUS);
      live.add(child);
      entrants.push({ name: 'opentracker', port, child });
      await waitTcp(port);
    }
    {
      const port = nextPort++;
      const child = await startWorkers(port, 1, { extra: ['--http-io', 'node'] });
      entrants.push({ name: NODE_NET_ONE, port, child });
    }
    // The floor's load goes to both of its ports.
    const target = new Map<number, string>();
    {
      const port = nextPort++;
      const other = nextPort++;
      const child = await startWorkers(port, 1);
      entrants.push({ name: FLOOR, port, child, more: [await startWorkers(other, 1)] });
      target.set(port, `${port},${other}`);
    }
    for (const x of entrants) {
      log(`${x.name}: prefill ${P.torrents} torrents x ${P.peers} peers`);
      // Each of the floor's trackers gets every torrent (HTTP announces any of them to either).
      for (const port of (target.get(x.port) ?? String(x.port)).split(','))
        udpLoad(port, 'fill', 120, P.torrents, P.peers, P.window, PAIR_CPUS);
    }
    const to = (port: number) => target.get(port) ?? port;
    const tests: [string, (port: number, seconds: number) => LoadResult][] = [
      [
        'UDP announce',
        (port, s) => udpLoad(to(port), 'announce', s, P.torrents, P.peers, P.window, PAIR_CPUS),
      ],
      // Two wrk threads of 32 connections for every row, the floor's shape (one on each of its
      // ports): with one thread of 64 on the others, the rows were not the same load (2 workers
      // measured 1.52x one process with one thread, 1.24x with two, paired by hand, 2026-12-08).
      ['HTTP announce, keep-alive', (port, s) => httpLoad(to(port), 'announce', false, s, PAIR_CPUS, 2)],
    ];
    for (const [test, run] of tests) {
      const these = entrants.filter((x) => test.startsWith('HTTP') || x.name !== NODE_NET_ONE);
      for (const x of these) run(x.port, WORKER_WARM);
      paired(test, these, WORKER_ROUNDS, run, workerRows);
    }
  } finally {
    for (const x of entrants) for (const c of [x.child, ...(x.more ?? [])]) await stop(c, 20_000);
  }
  // Memory per peer, all processes, without and with a full GC before reading.
  for (const n of [1, 2]) {
    const port = nextPort++;
    const inspectors: string[] = [];
    const child = await startWorkers(port, n, { inspectors });
    try {
      workerMemory.push({
        workers: n,
        ...(await peerMemory(
          `herald --workers ${n}`,
          child.pid!,
          port,
          PAIR_CPUS,
          (pids) => collectGarbage(pids, inspectors),
          true,
        )),
      });
    } finally {
      await stop(child, 20_000);
    }
  }
  // WebSocket connections held. One worker: the ws test's figure when this run has it.
  for (const n of [1, 2]) {
    const done = wsMemory.find((m) => m.tracker === 'herald');
    if (n === 1 && done !== undefined) {
      workerWs.push({
        workers: 1,
        held: done.conns,
        failures: 0,
        bytesPerConn: done.bytesPerConn,
        files: [],
        here: false,
      });
      continue;
    }
    const port = nextPort++;
    const child = await startWorkers(port, n, { nofile: true, udp: 'off' });
    try {
      const r =
        n === 1
          ? await wsHold(child.pid!, `ws://127.0.0.1:${port}/announce`, WS.conns, [null], PAIR_CPUS)
          : await wsHold(
              child.pid!,
              `ws://127.0.0.1:${port}/announce`,
              WORKER_WS.conns,
              WORKER_WS.from,
              PAIR_CPUS,
            );
      workerWs.push({ workers: n, ...r, here: true });
      log(
        `herald --workers ${n}: ws ${r.held} connections (open files per process ${r.files.join(' / ')}), ${r.bytesPerConn.toFixed(0)} bytes each`,
      );
    } finally {
      await stop(child, 20_000);
    }
  }
}

/** The workers test's part of the report (empty when it did not run). */
function workersReport(): string[] {
  if (workerRows.length === 0 && workerMemory.length === 0 && workerWs.length === 0) return [];
  const out = [
    '',
    `Workers (issue #13): \`herald serve --workers 2\` (a primary process and 2 workers) against \`--workers 1\` (one process, the default) and opentracker, same load as above, paired: all run at once and, after ${WORKER_WARM} s of load each (every worker compiles the hot path for itself), the load alternates between them in 1 s slices, ${WORKER_ROUNDS} each (responses/s, p50 and p99 are each one's median slice). **Every process here runs on both CPUs (0-1), the load generator included**: two workers need both cores of this 2-vCPU machine, so they share them with the load generator, and responses/s is what two shared cores give. Server CPU is summed over all of a tracker's processes (Herald's primary and every worker); CPU per response is the figure to compare. With workers, HTTP is answered through the batched addon, which parks a connection while its announce is handed to the worker that owns the swarm (through a Unix socket); the row \`${NODE_NET_ONE}\` (one process through \`node:net\`, as workers answered before, paired with the others) is kept for comparison. The row \`${FLOOR}\` is the floor: two independent one-process trackers side by side, each on its own port, the load split evenly between them by the same load generator (UDP: torrent t to port t % 2; HTTP: wrk's two threads of 32 connections, one on each port, where every other row gets the same two threads on its one port), CPU summed over both; no hand-over and no shared swarms, so no design of two processes can do better on these two cores shared with the load generator: judge \`--workers 2\` against it as well as against \`--workers 1\`.`,
    '',
    '| test | tracker | processes | CPUs | responses/s | server CPU µs/response (all processes) | p50 µs | p99 µs | load generator CPU | invalid / missing | ÷ herald --workers 1 (rps, CPU) | ÷ opentracker (rps, CPU) |',
    '| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  const by = (test: string, tracker: string) =>
    workerRows.find((r) => r.test === test && r.tracker === tracker);
  const ratio = (r: Row, o: Row | undefined) =>
    o && o !== r && (r.tracker.startsWith('herald') || r.tracker === FLOOR)
      ? `${fmt(r.rps / o.rps, 2)}×, ${fmt(r.cpuUs / o.cpuUs, 2)}×`
      : '';
  for (const r of workerRows) {
    const procs =
      r.tracker === 'herald --workers 2'
        ? 'primary + 2 workers'
        : r.tracker === FLOOR
          ? '2 (independent)'
          : '1';
    out.push(
      `| ${r.test} | ${r.tracker} | ${procs} | 0-1, shared with the load generator | ${fmt(r.rps)} | ${fmt(r.cpuUs, 1)} | ${fmt(r.p50)} | ${fmt(r.p99)} | ${fmt(r.clientBusy * 100)}% | ${r.invalid} / ${r.missing} | ${ratio(r, by(r.test, 'herald --workers 1'))} | ${ratio(r, by(r.test, 'opentracker'))} |`,
    );
  }
  // CPU per response of 2 workers against the floor, per test.
  const floor = [...new Set(workerRows.map((r) => r.test))].flatMap((test) => {
    const w2 = by(test, 'herald --workers 2');
    const f = by(test, FLOOR);
    const w1 = by(test, 'herald --workers 1');
    return w2 && f && w1
      ? [
          `${test}: 2 workers ${fmt(w2.cpuUs / w1.cpuUs, 2)}× one process, the floor ${fmt(f.cpuUs / w1.cpuUs, 2)}× (2 workers ÷ the floor ${fmt(w2.cpuUs / f.cpuUs, 2)}×)`,
        ]
      : [];
  });
  if (floor.length) out.push('', `CPU per response against the floor: ${floor.join('; ')}.`);
  const m1 = workerMemory.find((m) => m.workers === 1);
  const m2 = workerMemory.find((m) => m.workers === 2);
  if (m1 && m2)
    out.push(
      '',
      `Memory with workers: RSS growth of all Herald's processes (primary and workers; the baseline, after a full GC, is read once 1% of the fill has run, so that what each process builds once, such as the code V8 compiles for the fill, is not counted per peer) after announcing ${fmt(m2.peers)} more distinct peers over ${fmt(P.memTorrents)} torrents (processes and the UDP load on CPUs 0-1). After a full GC in every process (through the inspector): 2 workers ${fmt(m2.liveBytesPerPeer, 1)} bytes per peer, 1 worker ${fmt(m1.liveBytesPerPeer, 1)} (${fmt(m1.peers)} peers): ${fmt(m2.liveBytesPerPeer / m1.liveBytesPerPeer, 2)}×; of which array buffers (the swarm store's typed arrays, \`process.memoryUsage()\` in each process): ${fmt(m2.storeBytesPerPeer, 1)} and ${fmt(m1.storeBytesPerPeer, 1)} (${fmt(m2.storeBytesPerPeer / m1.storeBytesPerPeer, 2)}×). The slope (RSS after a full GC at half the fill and at the whole, the growth divided by the ${fmt(m2.peers / 2)} or so peers added in between: what a peer costs, without whatever a process holds once whatever its peer count): 2 workers ${fmt(m2.slopeBytesPerPeer, 1)}, 1 worker ${fmt(m1.slopeBytesPerPeer, 1)} (${fmt(m2.slopeBytesPerPeer / m1.slopeBytesPerPeer, 2)}×). As read right after the fill (as in the memory table; this swings by about ±25 bytes per peer with where V8's last full collection fell): 2 workers ${fmt(m2.bytesPerPeer, 1)}, 1 worker ${fmt(m1.bytesPerPeer, 1)} (${fmt(m2.bytesPerPeer / m1.bytesPerPeer, 2)}×).`,
    );
  const w1 = workerWs.find((w) => w.workers === 1);
  const w2 = workerWs.find((w) => w.workers === 2);
  if (w2)
    out.push(
      '',
      `WebSocket connections held with 2 workers: ${fmt(w2.held)} sockets, each announcing one torrent, from ${WORKER_WS.from.length} load generator processes (${fmt(WORKER_WS.conns)} each, from ${WORKER_WS.from.join(' and ')}; every process here, Herald's included, may open ${NOFILE} files); open files per Herald process (primary, workers): ${w2.files.join(' / ')}; ${w2.failures} failures: ${fmt(w2.bytesPerConn)} bytes per connection over all processes${w1 ? `, against ${fmt(w1.bytesPerConn)} with 1 worker (${fmt(w1.held)} held${w1.here ? '' : ', the WebSocket test above'}): ${fmt(w2.bytesPerConn / w1.bytesPerConn, 2)}×` : ''}.`,
    );
  return out;
}

function version(cmd: string[]): string {
  try {
    return execFileSync(cmd[0], cmd.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] })
      .toString()
      .trim()
      .split('\n')[0];
  } catch (err) {
    return (
      String((err as { stdout?: Buffer }).stdout ?? '')
        .trim()
        .split('\n')[0] || 'unknown'
    );
  }
}

function fmt(n: number, digits = 0): string {
  if (!Number.isFinite(n)) return '—';
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

// ---------- Rules (issue #16): private mode with every rule on, against open mode ----------
const RULES = QUICK
  ? { members: 1000, torrents: 10_000, peers: 10_000, fill: 2, rounds: 3 }
  : { members: 10_000, torrents: 100_000, peers: 100_000, fill: 5, rounds: 9 };
const RULES_TEST = 'HTTP announce, keep-alive: private mode, every rule on';
const rulesRows: Row[] = [];
/** What the private tracker of the rules test was given, for the report. */
const RULES_FLAGS = [
  '--peers-per-torrent',
  '3',
  '--peers-per-member',
  '50',
  '--early-announce',
  'warn',
  '--announce-grace',
  '4',
  '--peer-list-limit',
  '1000000',
  '--ratio-watch-min-percent',
  '60',
  '--hnr-seed-hours',
  '72',
  '--member-classes',
  'User: slots=4',
  '--member-classes',
  'Power User: days=28 uploaded=25GiB ratio=105 slots=8',
  '--bonus-base',
  '100',
  '--freeleech-token-days',
  '3',
];

/**
 * Herald in private mode (a site of RULES.members members and RULES.torrents torrents, every rule
 * of issue #16 on) and Herald in open mode, side by side on CPU 0, under the same population of
 * RULES.peers peers (bench/http.lua `fill` and `peers`: with passkeys, and without); after each has announced
 * every peer once, the load alternates between them in 1 s slices (`paired`). The row to read is
 * the ratio of server CPU per announce: the issue asks for at most 1.3×.
 */
async function rulesTest(): Promise<void> {
  const openPort = nextPort++;
  const privatePort = nextPort++;
  const site = join(WORK, 'herald-data', String(privatePort));
  const hashes = join(WORK, 'rules-hashes');
  const passkeys = join(WORK, 'rules-passkeys');
  rmSync(site, { recursive: true, force: true });
  mkdirSync(site, { recursive: true });
  log(`rules: a site of ${fmt(RULES.members)} members and ${fmt(RULES.torrents)} torrents`);
  makeRulesSite(site, hashes, passkeys);
  // The same site on PostgreSQL (BENCH_PG_URL): a third tracker, whose row write is the
  // database server's CPU, reported beside Herald's.
  const pg = BENCH_PG ? await benchDatabase(BENCH_PG) : null;
  const pgPort = nextPort++;
  const pgPasskeys = join(WORK, 'rules-passkeys-pg');
  if (pg !== null) makeRulesSite(join(WORK, 'herald-data', String(pgPort)), hashes, pgPasskeys, pg.url);
  else
    log(
      'rules: the PostgreSQL row is SKIPPED: BENCH_PG_URL is not set (e.g. postgres://herald:herald@127.0.0.1:5432/herald after bash scripts/start-services.sh)',
    );
  // The same announce settings for all; min_interval - announce_grace = 1 s: the early-announce
  // rule is on, and a peer of this population announces about every 5 s, so it only warns a few.
  const common = ['--min-interval', '5', '--interval', '1800'];
  const entrants: Entrant[] = [
    { name: 'open', port: openPort, child: TRACKERS[0].start(openPort, common) },
    {
      name: 'private',
      port: privatePort,
      child: TRACKERS[0].start(privatePort, [...common, '--mode', 'private', ...RULES_FLAGS]),
    },
  ];
  if (pg !== null)
    entrants.push({
      name: RULES_PG,
      port: pgPort,
      child: TRACKERS[0].start(pgPort, [
        ...common,
        '--mode',
        'private',
        '--database-url',
        pg.url,
        ...RULES_FLAGS,
      ]),
    });
  const passkeysOf = (port: number) => (port === privatePort ? passkeys : port === pgPort ? pgPasskeys : '-');
  for (const x of entrants) live.add(x.child);
  try {
    for (const x of entrants) await waitTcp(x.port);
    const load = (port: number, mode: string, seconds: number, start = 0) =>
      wrk(
        port,
        '',
        'http.lua',
        [hashes, mode, String(RULES.peers), passkeysOf(port), String(start)],
        seconds,
      );
    for (const x of entrants) {
      // Every peer announces (`started`), in slices of RULES.fill seconds, each from where the
      // last one's answers end, until all have (the last slice goes round again).
      let filled = 0;
      let invalid = 0;
      while (filled < RULES.peers) {
        const f = load(x.port, 'fill', RULES.fill, filled % RULES.peers);
        if (f.ok + f.invalid === 0) throw new Error(`rules: ${x.name}: the fill made no progress`);
        filled += f.ok + f.invalid;
        invalid += f.invalid;
      }
      log(`rules: ${x.name}: fill ${fmt(filled)} announces, ${invalid} not a peer list`);
      load(x.port, 'peers', 1);
    }
    // Server CPU over the whole window (the flush runs on its own timer, and may fall in the
    // other tracker's slice): each process's CPU from the first slice to the last.
    const before = await Promise.all(entrants.slice(1).map((x) => accountingFigures(x.port)));
    const pgBefore = postgresCpu();
    paired(
      RULES_TEST,
      entrants,
      RULES.rounds,
      (port, seconds) => load(port, 'peers', seconds),
      rulesRows,
      true,
    );
    const pgAfter = postgresCpu();
    const after = await Promise.all(entrants.slice(1).map((x) => accountingFigures(x.port)));
    for (let i = 0; i < before.length; i++)
      rulesFlush.set(entrants[i + 1].name, {
        seconds: after[i].seconds - before[i].seconds,
        rows: after[i].rows - before[i].rows,
        announces: after[i].announces - before[i].announces,
      });
    if (pg !== null) {
      let cpu = 0;
      for (const [pid, c] of pgAfter) cpu += c - (pgBefore.get(pid) ?? 0);
      rulesPgCpu = cpu;
    }
  } finally {
    for (const x of entrants) await stop(x.child);
    await pg?.drop();
  }
}

/** Runs bench/rules-site.ts: the private site in `dir` (or on the database `url`), its hashes and passkeys. */
function makeRulesSite(dir: string, hashes: string, passkeys: string, url = ''): void {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  execFileSync(
    NODE,
    [
      join(ROOT, 'bench/rules-site.ts'),
      dir,
      hashes,
      passkeys,
      String(RULES.members),
      String(RULES.torrents),
      String(RULES.peers),
      url,
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
}

/** A fresh database on the PostgreSQL server of `url` for one run; `drop()` removes it. */
async function benchDatabase(url: string): Promise<{ url: string; drop(): Promise<void> }> {
  const { default: pgLib } = await import('pg');
  const name = `herald_bench_${Date.now().toString(36)}`;
  const admin = async (sql: string) => {
    const c = new pgLib.Client({ connectionString: url });
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
  };
  await admin(`CREATE DATABASE ${name}`);
  const u = new URL(url);
  u.pathname = `/${name}`;
  return { url: u.toString(), drop: () => admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) };
}

/** CPU seconds of every PostgreSQL process on this machine (server, backends, background workers), by PID. */
function postgresCpu(): Map<number, number> {
  const r = spawnSync('pgrep', ['-x', 'postgres']);
  const out = new Map<number, number>();
  for (const pid of r.stdout.toString().split('\n').filter(Boolean).map(Number)) {
    try {
      out.set(pid, cpuSeconds([pid]));
    } catch {
      // Gone meanwhile.
    }
  }
  return out;
}

const BENCH_PG = process.env.BENCH_PG_URL ?? '';
const RULES_PG = 'private, PostgreSQL';
/** PostgreSQL's own CPU seconds over the paired window (every postgres process). */
let rulesPgCpu: number | null = null;

/** The private tracker's accounting flush over the paired window (its /stats before and after). */
const rulesFlush = new Map<string, { seconds: number; rows: number; announces: number }>();

async function accountingFigures(
  port: number,
): Promise<{ seconds: number; rows: number; announces: number }> {
  // A new connection each time: the paired window blocks this process's event loop (execFileSync),
  // so a kept-alive connection the tracker closed meanwhile would be written to before its end is read.
  const body = await new Promise<string>((resolve, reject) =>
    get(`http://127.0.0.1:${port}/stats`, { agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        text += d;
      });
      res.on('end', () => resolve(text));
    }).on('error', reject),
  );
  const s = JSON.parse(body) as {
    announces: { http: number };
    accounting?: { flushSeconds: number; rowsWritten: number };
  };
  return {
    seconds: s.accounting?.flushSeconds ?? 0,
    rows: s.accounting?.rowsWritten ?? 0,
    announces: s.announces.http,
  };
}

/** The rules test's lines for the report. */
function rulesReport(): string[] {
  const open = rulesRows.find((r) => r.tracker === 'open');
  const priv = rulesRows.find((r) => r.tracker === 'private');
  if (open === undefined || priv === undefined) return [];
  const pg = rulesRows.find((r) => r.tracker === RULES_PG);
  const flushLine = (name: string, where: string) => {
    const f = rulesFlush.get(name);
    if (f === undefined || f.announces === 0 || f.rows === 0) return [];
    return [
      '',
      `${where}'s accounting flush over the paired window (its \`/stats\`, \`herald_accounting_flush_seconds_total\` and \`_rows_written_total\`): ${fmt(f.rows)} member × torrent rows written for ${fmt(f.announces)} announces (${fmt(f.rows / f.announces, 2)} per announce), ${fmt((f.seconds * 1e6) / f.rows, 1)} µs per row, ${fmt((f.seconds * 1e6) / f.announces, 1)} µs per announce (wall clock inside the flush's transactions${name === 'private' ? "; node:sqlite runs them on the event loop, so this is the tracker's CPU" : ': Herald waits for the server meanwhile'}).`,
    ];
  };
  const pgAnnounces = rulesFlush.get(RULES_PG)?.announces ?? 0;
  const pgCpuUs = rulesPgCpu !== null && pgAnnounces > 0 ? (rulesPgCpu * 1e6) / pgAnnounces : null;
  return [
    '',
    `Rules (issue #16): Herald in private mode over a site of ${fmt(RULES.members)} members and ${fmt(RULES.torrents)} torrents, every rule on (\`${RULES_FLAGS.join(' ')}\`, one member in ten warned by ratio watch, freeleech tokens spent on one peer in fifty), against Herald in open mode, under the same ${fmt(RULES.peers)} peers (each a member on one torrent, popular torrents with more peers, one in four leeching), every peer announced once first; paired, ${RULES.rounds} 1 s slices each, all on CPU 0, server CPU counted over the whole paired window (the accounting flush runs on its own timer, in any tracker's slices). Not a peer list: refusals (download slots full, peer limits).${pg === undefined ? ' The same site on PostgreSQL was not measured (BENCH_PG_URL unset).' : ' "private, PostgreSQL": the same site and rules on PostgreSQL (BENCH_PG_URL, on this machine, not pinned); its server CPU is Herald\'s alone, PostgreSQL\'s own is the last column.'}`,
    '',
    '| mode | announces/s | server CPU µs/announce | p50 µs | p99 µs | not a peer list / errors | ÷ open (CPU) | PostgreSQL CPU µs/announce |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...[open, priv, ...(pg === undefined ? [] : [pg])].map(
      (r) =>
        `| ${r.tracker} | ${fmt(r.rps)} | ${fmt(r.cpuUs, 1)} | ${fmt(r.p50)} | ${fmt(r.p99)} | ${r.invalid} / ${r.missing} | ${r === open ? '' : `${fmt(r.cpuUs / open.cpuUs, 2)}×`} | ${r === pg && pgCpuUs !== null ? `${fmt(pgCpuUs, 1)} (Herald + PostgreSQL ÷ open ${fmt((r.cpuUs + pgCpuUs) / open.cpuUs, 2)}×)` : ''} |`,
    ),
    ...flushLine('private', 'Private mode (SQLite)'),
    ...flushLine(RULES_PG, 'Private mode on PostgreSQL'),
  ];
}

async function main(): Promise<void> {
  const started = Date.now();
  for (const t of TRACKERS) if (selected('throughput', t.name)) await throughput(t);
  if (selected('throughput')) await dgramTest();
  for (const t of TRACKERS) if (selected('memory', t.name)) await memoryTest(t);
  if (!QUICK && selected('expiry')) await expiryTest();
  for (const name of ['herald', 'bittorrent-tracker']) if (selected('ws', name)) await wsTests(name);
  if (selected('workers')) await workersTests();
  if (selected('rules')) await rulesTest();
  // Issue #14: Herald on one Redis, on a 3-master Cluster and on memory, and opentracker
  // (bench/redis-store.ts starts its own Redis servers and prints its table).
  const redisTable = selected('redis')
    ? execFileSync(
        NODE,
        [
          join(ROOT, 'bench/redis-store.ts'),
          '--seconds',
          String(P.seconds),
          '--torrents',
          String(P.torrents),
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      )
        .toString()
        .trim()
    : '';

  const by = (test: string, tracker: string) => rows.find((r) => r.test === test && r.tracker === tracker);
  const lines: string[] = [];
  lines.push(
    '| test | tracker | responses/s | server CPU µs/response | p50 µs | p99 µs | load generator CPU | invalid / missing | Herald ÷ opentracker (rps, CPU) | Herald ÷ bittorrent-tracker (rps, CPU) |',
  );
  lines.push('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const test of [...new Set(rows.map((r) => r.test))]) {
    const h = by(test, 'herald');
    if (h === undefined) continue;
    // The dgram fallback row has its own, paired opentracker figure (dgramTest); against
    // bittorrent-tracker it is compared with that tracker's UDP announce.
    const btTest = test === DGRAM_TEST ? 'UDP announce' : test;
    for (const r of rows.filter((x) => x.test === test)) {
      const ratio = (o: Row | undefined) =>
        r.tracker === 'herald' && o ? `${fmt(h.rps / o.rps, 2)}×, ${fmt(h.cpuUs / o.cpuUs, 2)}×` : '';
      const busy = `${fmt(r.clientBusy * 100)}%${r.clientBusy > 0.9 ? ' (client-bound)' : ''}`;
      lines.push(
        `| ${test} | ${r.tracker} | ${fmt(r.rps)} | ${fmt(r.cpuUs, 1)} | ${fmt(r.p50)} | ${fmt(r.p99)} | ${busy} | ${r.invalid} / ${r.missing} | ${ratio(by(test, 'opentracker'))} | ${ratio(by(btTest, 'bittorrent-tracker'))} |`,
      );
    }
  }
  const mh = memory.find((m) => m.tracker === 'herald');
  const mem: string[] = [
    '| tracker | peers held | bytes per peer | Herald ÷ this |',
    '| --- | ---: | ---: | ---: |',
  ];
  for (const m of memory)
    mem.push(
      `| ${m.tracker} | ${fmt(m.peers)} | ${fmt(m.bytesPerPeer, 1)} | ${mh && m.tracker !== 'herald' ? `${fmt(mh.bytesPerPeer / m.bytesPerPeer, 2)}×` : ''} |`,
    );
  const workers = workersReport();
  const cpu = cpus()[0]?.model ?? 'unknown';
  const machine = `${cpus().length} × ${cpu}, Linux ${release()}`;
  const versions = [
    `Herald ${JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version} on Node ${process.version}`,
    `opentracker ${version(['dpkg-query', '-W', `-f=\${Version}`, 'opentracker'])} (Debian)`,
    ...(NEED_BT
      ? [
          `bittorrent-tracker ${JSON.parse(readFileSync(join(BT_DIR, 'node_modules/bittorrent-tracker/package.json'), 'utf8')).version} on Node ${process.version}`,
        ]
      : []),
    `wrk ${version(['wrk', '-v'])}`,
  ];
  const report = [
    `Run ${new Date().toISOString()} (${QUICK ? 'quick' : 'full'}, ${((Date.now() - started) / 1000).toFixed(0)} s). Machine: ${machine}.`,
    '',
    `Versions: ${versions.join('; ')}.`,
    '',
    `Load: ${fmt(P.torrents)} torrents × ${P.peers} peers prefilled over UDP; each test ${P.seconds} s after a ${P.warm} s warm-up; UDP closed loop with ${P.window} requests in flight (sendmmsg/recvmmsg, C); HTTP by wrk, 1 thread, 64 connections. Tracker on CPU 0, load generator on CPU 1. The dgram fallback row is paired: Herald (\`--udp-io dgram\`) and opentracker run side by side and the load alternates between them in 1 s slices, ${DGRAM_ROUNDS} each; responses/s, p50 and p99 are each one's median slice.`,
    ...(rows.length > 0 ? ['', ...lines] : []),
    ...(memory.length === 0
      ? []
      : [
          '',
          `Memory: RSS growth over peers held after announcing ${fmt(P.memTorrents * P.memPeers)} distinct peers over ${fmt(P.memTorrents)} torrents.`,
          '',
          ...mem,
        ]),
    ...(wsRows.length === 0
      ? []
      : [
          '',
          `WebSocket (WebTorrent), Herald vs bittorrent-tracker: relay = ${WS.relayConns} sockets over ${WS.torrents} torrents announcing in a closed loop (${WS.depth} in flight per socket), each announce with ${WS.offers} offers (~600-byte SDP) relayed to other sockets (${WS.seconds} s); connections = ${fmt(WS.conns)} sockets, each announcing one torrent, held open.`,
          '',
          '| tracker | announces/s | offers relayed/s | server CPU µs/announce | load generator CPU | failures | bytes per connection | Herald ÷ bittorrent-tracker |',
          '| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
          ...wsRows.map((r) => {
            const bt = wsRows.find((x) => x.tracker === 'bittorrent-tracker');
            const m = wsMemory.find((x) => x.tracker === r.tracker);
            const mbt = wsMemory.find((x) => x.tracker === 'bittorrent-tracker');
            const ratio =
              r.tracker === 'herald' && bt
                ? `${fmt(r.announcesPerSecond / bt.announcesPerSecond, 2)}× announces/s, ${fmt(r.cpuUs / bt.cpuUs, 2)}× CPU${m && mbt ? `, ${fmt(m.bytesPerConn / mbt.bytesPerConn, 2)}× memory` : ''}`
                : '';
            return `| ${r.tracker} | ${fmt(r.announcesPerSecond)} | ${fmt(r.offersPerSecond)} | ${fmt(r.cpuUs, 1)} | ${fmt(r.clientBusy * 100)}% | ${r.failures} | ${m ? `${fmt(m.bytesPerConn)} (${fmt(m.conns)} held)` : '—'} | ${ratio} |`;
          }),
        ]),
    '',
    expiry
      ? `Expiry (Herald): ${fmt(expiry.removed)} peers expired while a steady UDP load ran (${fmt(expiry.rps)}/s): p99 ${fmt(expiry.p99Us)} µs, slowest response ${fmt(expiry.maxUs / 1000, 1)} ms.`
      : `Expiry: not run (${QUICK ? 'quick mode' : 'not selected'}).`,
    ...workers,
    ...rulesReport(),
    ...(redisTable === '' ? [] : ['', `Redis store (issue #14): ${redisTable}`]),
  ].join('\n');
  process.stdout.write(`\n${report}\n`);
  if (WRITE) {
    const doc = join(ROOT, 'docs/benchmarks.md');
    const prev = existsSync(doc) ? readFileSync(doc, 'utf8') : '';
    const marker = '<!-- latest-run -->';
    const head = prev.includes(marker)
      ? prev.slice(0, prev.indexOf(marker))
      : '# Benchmarks\n\n`npm run bench` output. Notes and history below the table.\n\n';
    const tail = prev.includes('<!-- notes -->')
      ? prev.slice(prev.indexOf('<!-- notes -->'))
      : '<!-- notes -->\n';
    writeFileSync(doc, `${head}${marker}\n${report}\n\n${tail}`);
    log('wrote docs/benchmarks.md');
  }
  rmSync(join(WORK, 'herald-data'), { recursive: true, force: true });
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
