/**
 * `npm run bench`: Herald against opentracker and webtorrent's bittorrent-tracker, side by side in
 * one run on loopback, reported as ratios (issue #4). Each tracker in turn is pinned to CPU 0 and
 * the load generator to CPU 1 (taskset); every process is started and stopped by PID here.
 *
 *   npm run bench            full run (10,000 torrents / 100,000 peers prefilled; 1M-peer memory)
 *   npm run bench -- --quick small and short, for a smoke test
 *   npm run bench -- --no-write   do not rewrite docs/benchmarks.md
 *   npm run bench -- --only=throughput,memory,expiry,ws   a subset of the tests (implies --no-write)
 *   npm run bench -- --trackers=herald,opentracker        a subset of the trackers (implies --no-write)
 *   npm run bench -- --ws-only    same as --only=ws
 *
 * Needs: gcc, taskset (util-linux), wrk and opentracker (Debian packages); bittorrent-tracker is
 * installed into .bench/bt with --ignore-scripts (its client pulls a WebRTC addon that cannot
 * build offline).
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { cpus, release } from 'node:os';
import { join } from 'node:path';

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
  if (!['throughput', 'memory', 'expiry', 'ws'].includes(t)) throw new Error(`--only: unknown test ${t}`);
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
if (!existsSync(BT_MODULE)) {
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
  start(port: number, extra?: string[]): ChildProcess;
}

let nextPort = 27000 + Math.floor(Math.random() * 1000);
const TRACKERS: Tracker[] = [
  {
    name: 'herald',
    start: (port, extra = []) =>
      spawn(
        'taskset',
        [
          '-c',
          '0',
          NODE,
          '--max-semi-space-size=1', // as bin/herald.js runs it
          join(ROOT, 'bin/herald.js'),
          'serve',
          '--http',
          `127.0.0.1:${port}`,
          '--udp',
          `127.0.0.1:${port}`,
          '--data-dir',
          join(WORK, 'herald-data'),
          '--log-level',
          'warn',
          // Every load generator connection comes from 127.0.0.1.
          '--max-connections-per-ip',
          '0',
          ...extra,
        ],
        { stdio: ['ignore', 'ignore', 'inherit'] },
      ),
  },
  {
    name: 'opentracker',
    start: (port) =>
      spawn(
        'taskset',
        [
          '-c',
          '0',
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
    start: (port) =>
      spawn('taskset', ['-c', '0', NODE, join(ROOT, 'bench/bt-server.mjs'), BT_MODULE, String(port)], {
        stdio: ['ignore', 'ignore', 'inherit'],
      }),
  },
];

async function waitTcp(port: number): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nothing listening on ${port}`);
}

/** The tracker's own PID (the child is `taskset`, which execs the tracker: same PID). */
function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICK;
}
function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(t);
  live.delete(child);
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

function udpLoad(
  port: number,
  mode: string,
  seconds: number,
  torrents: number,
  peers: number,
  window = P.window,
): LoadResult {
  const out = execFileSync(
    'taskset',
    [
      '-c',
      '1',
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

function httpLoad(port: number, mode: 'announce' | 'scrape', close: boolean, seconds: number): LoadResult {
  // `times` (a bash builtin) reports wrk's CPU time: the load generator's own cost.
  const header = close ? `-H 'Connection: close'` : '';
  const cmd = `taskset -c 1 wrk -t1 -c64 -d${seconds}s --timeout 2s ${header} -s ${join(ROOT, 'bench/http.lua')} http://127.0.0.1:${port} -- ${HTTP_HASHES} ${mode} ${P.peers} | tail -1; times`;
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
  const base = [`--nofile=${NOFILE}:${NOFILE}`, 'taskset', '-c', '0', NODE];
  const child =
    name === 'herald'
      ? spawn(
          'prlimit',
          [
            ...base,
            '--max-semi-space-size=1',
            join(ROOT, 'bin/herald.js'),
            'serve',
            '--http',
            `127.0.0.1:${port}`,
            '--udp',
            'off',
            '--data-dir',
            join(WORK, 'herald-data'),
            '--log-level',
            'warn',
            // Every load generator connection comes from 127.0.0.1.
            '--max-connections-per-ip',
            '0',
          ],
          { stdio: ['ignore', 'ignore', 'inherit'] },
        )
      : spawn('prlimit', [...base, join(ROOT, 'bench/bt-server.mjs'), BT_MODULE, String(port), 'ws'], {
          stdio: ['ignore', 'ignore', 'inherit'],
        });
  live.add(child);
  return { child, url: name === 'herald' ? `ws://127.0.0.1:${port}/announce` : `ws://127.0.0.1:${port}` };
}

const WS_LOAD = [`--nofile=${NOFILE}:${NOFILE}`, 'taskset', '-c', '1', NODE, join(ROOT, 'bench/ws-load.ts')];

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
      const c0 = cpuSeconds(pid);
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
      const c1 = cpuSeconds(pid);
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
      await new Promise((r) => setTimeout(r, 500));
      const before = rssBytes(child.pid!);
      const load = spawn('prlimit', [...WS_LOAD, 'conns', url, String(WS.conns), String(WS.torrents * 20)], {
        stdio: ['pipe', 'pipe', 'inherit'],
      });
      live.add(load);
      const ready = await new Promise<{ ready: number; failures: number }>((resolve, reject) => {
        let buf = '';
        load.stdout!.on('data', (d) => {
          buf += d;
          if (buf.includes('\n')) resolve(JSON.parse(buf));
        });
        load.on('exit', (code) => reject(new Error(`ws-load conns exited with ${code}`)));
      });
      await new Promise((r) => setTimeout(r, 1000));
      const after = rssBytes(child.pid!);
      load.stdin!.end();
      await new Promise((r) => load.once('exit', r));
      wsMemory.push({ tracker: name, conns: ready.ready, bytesPerConn: (after - before) / ready.ready });
      log(
        `${name}: ws ${ready.ready} connections, ${((after - before) / ready.ready).toFixed(0)} bytes each`,
      );
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
  const c0 = cpuSeconds(pid);
  const r = run();
  addRow(test, tracker, [r], cpuSeconds(pid) - c0);
  log(
    `${tracker}: ${test}: ${Math.round(r.rps)}/s p50 ${r.p50_us}us p99 ${r.p99_us}us invalid ${r.invalid} missing ${r.missing}`,
  );
}

/**
 * Adds a row from one or more timed loads and the tracker's CPU seconds over them: responses/s,
 * p50 and p99 are the median load's (the only one's when there is one), CPU per response and the
 * counts are over all of them.
 */
function addRow(test: string, tracker: string, loads: LoadResult[], cpu: number): Row {
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
  rows.push(row);
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

/**
 * Herald's fallback UDP transport (where the addon is not built) against opentracker's UDP
 * announce, paired: both trackers run at once (each pinned to CPU 0, only one under load at a
 * time) and the load alternates between them in one-second slices, DGRAM_ROUNDS each. This VM's
 * speed drifts by ±15 % over seconds to minutes (opentracker alone has measured 79k-134k/s in
 * different runs), more than the margin this row is about, so each tracker's responses/s, p50 and
 * p99 are its median slice, taken within the same minute as the other's; CPU per response is the
 * total over all its slices.
 */
async function dgramTest(): Promise<void> {
  const pair: { name: string; port: number; child: ChildProcess; slices: LoadResult[]; cpu: number }[] = [];
  const others = selected('throughput', 'opentracker') ? [TRACKERS[1]] : [];
  try {
    for (const [t, extra] of [[TRACKERS[0], ['--udp-io', 'dgram']], ...others.map((o) => [o, []])] as [
      Tracker,
      string[],
    ][]) {
      const port = nextPort++;
      const child = t.start(port, extra);
      live.add(child);
      pair.push({ name: t.name, port, child, slices: [], cpu: 0 });
      await waitTcp(port);
      udpLoad(port, 'fill', 120, P.torrents, P.peers);
      udpLoad(port, 'announce', P.warm, P.torrents, P.peers);
    }
    for (let round = 0; round < DGRAM_ROUNDS; round++)
      for (const x of pair) {
        const c0 = cpuSeconds(x.child.pid!);
        x.slices.push(udpLoad(x.port, 'announce', 1, P.torrents, P.peers));
        x.cpu += cpuSeconds(x.child.pid!) - c0;
      }
    for (const x of pair) {
      const row = addRow(DGRAM_TEST, x.name, x.slices, x.cpu);
      log(
        `${x.name}: ${DGRAM_TEST}: slices ${x.slices.map((r) => Math.round(r.rps)).join(' ')}/s, ${fmt(row.cpuUs, 1)} us each`,
      );
    }
  } finally {
    for (const x of pair) await stop(x.child);
  }
}

async function memoryTest(t: Tracker): Promise<void> {
  const port = nextPort++;
  const child = t.start(port);
  live.add(child);
  try {
    await waitTcp(port);
    await new Promise((r) => setTimeout(r, 500));
    const before = rssBytes(child.pid!);
    const r = udpLoad(port, 'fill', 300, P.memTorrents, P.memPeers);
    await new Promise((res) => setTimeout(res, 1000));
    const after = rssBytes(child.pid!);
    memory.push({ tracker: t.name, peers: r.ok, bytesPerPeer: (after - before) / r.ok });
    log(`${t.name}: memory ${r.ok} peers, ${((after - before) / r.ok).toFixed(1)} bytes/peer`);
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

async function main(): Promise<void> {
  const started = Date.now();
  for (const t of TRACKERS) if (selected('throughput', t.name)) await throughput(t);
  if (selected('throughput')) await dgramTest();
  for (const t of TRACKERS) if (selected('memory', t.name)) await memoryTest(t);
  if (!QUICK && selected('expiry')) await expiryTest();
  for (const name of ['herald', 'bittorrent-tracker']) if (selected('ws', name)) await wsTests(name);

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
  const cpu = cpus()[0]?.model ?? 'unknown';
  const machine = `${cpus().length} × ${cpu}, Linux ${release()}`;
  const versions = [
    `Herald ${JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version} on Node ${process.version}`,
    `opentracker ${version(['dpkg-query', '-W', `-f=\${Version}`, 'opentracker'])} (Debian)`,
    `bittorrent-tracker ${JSON.parse(readFileSync(join(BT_DIR, 'node_modules/bittorrent-tracker/package.json'), 'utf8')).version} on Node ${process.version}`,
    `wrk ${version(['wrk', '-v'])}`,
  ];
  const report = [
    `Run ${new Date().toISOString()} (${QUICK ? 'quick' : 'full'}, ${((Date.now() - started) / 1000).toFixed(0)} s). Machine: ${machine}.`,
    '',
    `Versions: ${versions.join('; ')}.`,
    '',
    `Load: ${fmt(P.torrents)} torrents × ${P.peers} peers prefilled over UDP; each test ${P.seconds} s after a ${P.warm} s warm-up; UDP closed loop with ${P.window} requests in flight (sendmmsg/recvmmsg, C); HTTP by wrk, 1 thread, 64 connections. Tracker on CPU 0, load generator on CPU 1. The dgram fallback row is paired: Herald (\`--udp-io dgram\`) and opentracker run side by side and the load alternates between them in 1 s slices, ${DGRAM_ROUNDS} each; responses/s, p50 and p99 are each one's median slice.`,
    '',
    ...lines,
    '',
    `Memory: RSS growth over peers held after announcing ${fmt(P.memTorrents * P.memPeers)} distinct peers over ${fmt(P.memTorrents)} torrents.`,
    '',
    ...mem,
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
    '',
    expiry
      ? `Expiry (Herald): ${fmt(expiry.removed)} peers expired while a steady UDP load ran (${fmt(expiry.rps)}/s): p99 ${fmt(expiry.p99Us)} µs, slowest response ${fmt(expiry.maxUs / 1000, 1)} ms.`
      : 'Expiry: not run (quick mode).',
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
