/**
 * Herald on one Redis, on a 3-master Redis Cluster and on memory, and opentracker, in one run
 * (issue #14); on Redis both through the Lua script and through Herald's Redis module
 * (native/build/herald-redis.so, loaded by the bench's redis-servers: "+ module"): UDP and HTTP (keep-alive) announce responses/s, the tracker's CPU per response,
 * redis-server CPU per response (summed over the Cluster's masters), and Redis memory per peer.
 *
 *   node bench/redis-store.ts [--seconds 5] [--torrents 5000] [--kinds redis,redis+module,…]
 *   (npm run bench -- --only=redis)
 *
 * Redis servers of its own (free ports, no persistence; the Cluster made by
 * `redis-cli --cluster create`, no replicas) on CPU 1 with the load generators (udp-load.c, wrk);
 * the tracker on CPU 0. CPU is read from /proc for the tracker's and Redis's PIDs. Prints a
 * Markdown table (docs/benchmarks.md "Redis store").
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitTcp } from './harness/clients.ts';

const ROOT = new URL('../', import.meta.url).pathname;
const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const SECONDS = arg('seconds', 5);
const TORRENTS = arg('torrents', 5000);
const PEERS = 10;
const WORK = mkdtempSync(join(tmpdir(), 'herald-redis-bench-'));
const LOAD = join(WORK, 'udp-load');
execFileSync('gcc', ['-O2', '-o', LOAD, join(ROOT, 'bench/udp-load.c')]);
const HASHES = join(WORK, 'hashes');
writeFileSync(HASHES, execFileSync(LOAD, ['127.0.0.1', '1', 'hashes', '0', '1', String(TORRENTS), '1', '1']));
const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(WORK, { recursive: true, force: true });
});

function cpu(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function run(cpus: string, cmd: string, args: string[]): ChildProcess {
  const c = spawn('taskset', ['-c', cpus, cmd, ...args], { stdio: ['ignore', 'ignore', 'inherit'] });
  children.add(c);
  return c;
}

async function stop(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null) return;
  const gone = new Promise((r) => c.once('exit', r));
  c.kill('SIGTERM');
  await gone;
  children.delete(c);
}

function redisInfo(port: number, field: string): number {
  const out = execFileSync('redis-cli', ['-p', String(port), 'info', 'memory']).toString();
  return Number(new RegExp(`${field}:(\\d+)`).exec(out)?.[1] ?? Number.NaN);
}

interface Load {
  ok: number;
  rps: number;
}
function udp(port: number, mode: string, seconds: number): Load {
  const out = execFileSync('taskset', [
    '-c',
    '1',
    LOAD,
    '127.0.0.1',
    String(port),
    mode,
    String(seconds),
    '256',
    String(TORRENTS),
    String(PEERS),
    String(Math.floor(Math.random() * 1e9)),
  ]).toString();
  const r = JSON.parse(out);
  return { ok: r.ok, rps: r.rps };
}
function http(port: number, seconds: number): Load {
  const out = execFileSync('bash', [
    '-c',
    `taskset -c 1 wrk -t1 -c64 -d${seconds}s --timeout 2s -s ${join(ROOT, 'bench/http.lua')} http://127.0.0.1:${port} -- ${HASHES} announce ${PEERS} | tail -1`,
  ]).toString();
  const r = JSON.parse(out);
  return { ok: r.requests - r.invalid, rps: r.rps };
}

const rows: string[] = [];
// Below the kernel's ephemeral range (32768-60999 here) for the ports and for a Cluster node's bus
// port (port + 10000): a bus port in that range can be taken by any outgoing connection (wrk's, the
// trackers' to Redis), and that node then fails to start ("nothing listening", seen once).
let nextPort = 20000 + Math.floor(Math.random() * 2000);

/** A redis-server on CPU 1 (cluster mode when `dir` is given); resolves with its PID once it answers. */
async function redisServer(port: number, dir: string | null, module: boolean): Promise<ChildProcess> {
  const cluster =
    dir === null
      ? []
      : ['--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`), '--dir', dir];
  const r = run('1', 'redis-server', [
    '--bind',
    '127.0.0.1',
    '--port',
    String(port),
    '--save',
    '',
    '--appendonly',
    'no',
    ...cluster,
    ...(module ? ['--loadmodule', MODULE] : []),
  ]);
  await waitTcp(port);
  return r;
}

/** Redis servers for one entrant: none (memory, opentracker), one, or a 3-master Cluster. */
async function redisFor(kind: string): Promise<{ ports: number[]; servers: ChildProcess[]; url: string }> {
  if (kind === 'memory' || kind === 'opentracker') return { ports: [], servers: [], url: '' };
  const module = kind.endsWith('+ module');
  if (!kind.startsWith('redis cluster')) {
    const port = nextPort++;
    return {
      ports: [port],
      servers: [await redisServer(port, null, module)],
      url: `redis://127.0.0.1:${port}`,
    };
  }
  const ports: number[] = [];
  while (ports.length < 3) {
    const p = nextPort++;
    if (p + 10000 < 65536) ports.push(p);
  }
  const servers = [];
  for (const p of ports) servers.push(await redisServer(p, WORK, module));
  execFileSync(
    'redis-cli',
    [
      '--cluster',
      'create',
      ...ports.map((p) => `127.0.0.1:${p}`),
      '--cluster-replicas',
      '0',
      '--cluster-yes',
    ],
    { stdio: 'ignore' },
  );
  for (
    let i = 0;
    !execFileSync('redis-cli', ['-p', String(ports[0]), 'cluster', 'info'])
      .toString()
      .includes('cluster_state:ok');
    i++
  ) {
    if (i > 100) throw new Error('bench cluster not ready');
    await new Promise((r) => setTimeout(r, 100));
  }
  return { ports, servers, url: `redis-cluster://${ports.map((p) => `127.0.0.1:${p}`).join(',')}` };
}

/** opentracker (Debian's tracks whitelisted hashes only: the benchmark's), chrooted in WORK/ot. */
function opentracker(port: number): ChildProcess {
  const dir = join(WORK, 'ot');
  mkdirSync(dir, { recursive: true });
  chmodSync(WORK, 0o755);
  chmodSync(dir, 0o755);
  writeFileSync(join(dir, 'whitelist'), readFileSync(HASHES));
  chmodSync(join(dir, 'whitelist'), 0o644);
  return run('0', 'opentracker', [
    '-i',
    '127.0.0.1',
    '-p',
    String(port),
    '-P',
    String(port),
    '-d',
    dir,
    '-w',
    'whitelist',
    '-u',
    'nobody',
  ]);
}

const MODULE = join(ROOT, 'native/build/herald-redis.so');
const kinds = ['memory', 'redis', 'redis + module', 'redis cluster', 'redis cluster + module', 'opentracker'];
if (!existsSync(MODULE)) {
  process.stderr.write(`bench: ${MODULE} is not built (npm run build:native): no "+ module" rows\n`);
  kinds.splice(kinds.indexOf('redis + module'), 1);
  kinds.splice(kinds.indexOf('redis cluster + module'), 1);
}
const only = process.argv.indexOf('--kinds');
for (const kind of only >= 0 ? process.argv[only + 1].split(',') : kinds) {
  const redis = await redisFor(kind);
  const port = nextPort++;
  const tracker =
    kind === 'opentracker'
      ? opentracker(port)
      : run('0', process.execPath, [
          '--max-semi-space-size=1',
          join(ROOT, 'bin/herald.js'),
          'serve',
          '--http',
          `127.0.0.1:${port}`,
          '--udp',
          `127.0.0.1:${port}`,
          '--data-dir',
          join(WORK, `data-${port}`),
          '--log-level',
          'warn',
          '--max-connections-per-ip',
          '0',
          ...(redis.url === ''
            ? []
            : [
                '--store',
                redis.url,
                '--udp-secret',
                randomBytes(32).toString('hex'),
                '--redis-module',
                kind.endsWith('+ module') ? 'require' : 'off',
              ]),
        ]);
  await waitTcp(port);
  const used = () => redis.ports.reduce((sum, p) => sum + redisInfo(p, 'used_memory'), 0);
  const redisCpu = () => redis.servers.reduce((sum, r) => sum + cpu(r.pid!), 0);
  const mem0 = used();
  const filled = udp(port, 'fill', 120);
  const perPeer = (used() - mem0) / filled.ok;
  const onRedis = redis.url !== '';
  for (const [name, load] of [
    ['UDP announce', () => udp(port, 'announce', SECONDS)],
    ['HTTP announce, keep-alive', () => http(port, SECONDS)],
  ] as const) {
    // Warm-up with the same load, then the measured run.
    if (name.startsWith('UDP')) udp(port, 'announce', 1);
    else http(port, 1);
    const h0 = cpu(tracker.pid!);
    const r0 = redisCpu();
    const r = load();
    const hUs = ((cpu(tracker.pid!) - h0) / r.ok) * 1e6;
    const rUs = ((redisCpu() - r0) / r.ok) * 1e6;
    rows.push(
      `| ${name} | ${kind === 'opentracker' ? 'opentracker' : `Herald, ${kind}`} | ${Math.round(r.rps).toLocaleString('en')} | ${hUs.toFixed(1)} | ${onRedis ? rUs.toFixed(1) : '-'} | ${onRedis ? perPeer.toFixed(0) : '-'} |`,
    );
    process.stderr.write(`${rows.at(-1)}\n`);
  }
  await stop(tracker);
  for (const r of redis.servers) await stop(r);
}
process.stdout.write(
  [
    `${TORRENTS.toLocaleString('en')} torrents × ${PEERS} peers prefilled over UDP; ${SECONDS} s per test after 1 s warm-up; the tracker on CPU 0; redis-server(s), udp-load and wrk on CPU 1. Redis CPU is summed over the Cluster's three masters.`,
    '',
    '| test | tracker, store | responses/s | tracker CPU µs/response | redis-server CPU µs/response | Redis bytes/peer |',
    '| --- | --- | ---: | ---: | ---: | ---: |',
    ...rows,
    '',
  ].join('\n'),
);
