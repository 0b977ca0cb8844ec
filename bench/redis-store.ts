/**
 * Herald on Redis vs Herald on memory, in one run (issue #14): UDP and HTTP (keep-alive) announce
 * responses/s, Herald CPU per response, redis-server CPU per response, and Redis memory per peer.
 *
 *   node bench/redis-store.ts [--seconds 5] [--torrents 5000]
 *
 * A redis-server of its own (a free port, no persistence) on CPU 1 with the load generators
 * (udp-load.c, wrk); Herald on CPU 0. CPU is read from /proc for Herald's and Redis's PIDs.
 * Prints a Markdown table (docs/benchmarks.md "Redis store").
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
let redisPort = 26400 + Math.floor(Math.random() * 500);
let trackerPort = 27400 + Math.floor(Math.random() * 500);

for (const store of ['memory', 'redis'] as const) {
  const rport = redisPort++;
  const redis = run('1', 'redis-server', [
    '--bind',
    '127.0.0.1',
    '--port',
    String(rport),
    '--save',
    '',
    '--appendonly',
    'no',
  ]);
  await waitTcp(rport);
  const port = trackerPort++;
  const extra =
    store === 'redis'
      ? ['--store', `redis://127.0.0.1:${rport}`, '--udp-secret', randomBytes(32).toString('hex')]
      : [];
  const herald = run('0', process.execPath, [
    '--max-semi-space-size=1',
    join(ROOT, 'bin/herald.js'),
    'serve',
    '--http',
    `127.0.0.1:${port}`,
    '--udp',
    `127.0.0.1:${port}`,
    '--data-dir',
    join(WORK, `data-${store}`),
    '--log-level',
    'warn',
    '--max-connections-per-ip',
    '0',
    ...extra,
  ]);
  await waitTcp(port);
  const mem0 = redisInfo(rport, 'used_memory');
  const filled = udp(port, 'fill', 120);
  const perPeer = (redisInfo(rport, 'used_memory') - mem0) / filled.ok;
  for (const [name, load] of [
    ['UDP announce', () => udp(port, 'announce', SECONDS)],
    ['HTTP announce, keep-alive', () => http(port, SECONDS)],
  ] as const) {
    // Warm-up with the same load, then the measured run.
    if (name.startsWith('UDP')) udp(port, 'announce', 1);
    else http(port, 1);
    const h0 = cpu(herald.pid!);
    const r0 = cpu(redis.pid!);
    const r = load();
    const hUs = ((cpu(herald.pid!) - h0) / r.ok) * 1e6;
    const rUs = ((cpu(redis.pid!) - r0) / r.ok) * 1e6;
    rows.push(
      `| ${name} | ${store} | ${Math.round(r.rps).toLocaleString('en')} | ${hUs.toFixed(1)} | ${store === 'redis' ? rUs.toFixed(1) : '-'} | ${store === 'redis' ? perPeer.toFixed(0) : '-'} |`,
    );
    process.stderr.write(`${rows.at(-1)}\n`);
  }
  await stop(herald);
  await stop(redis);
}
process.stdout.write(
  [
    `${TORRENTS.toLocaleString('en')} torrents × ${PEERS} peers prefilled over UDP; ${SECONDS} s per test after 1 s warm-up; Herald on CPU 0; redis-server, udp-load and wrk on CPU 1.`,
    '',
    '| test | store | responses/s | Herald CPU µs/response | redis-server CPU µs/response | Redis bytes/peer |',
    '| --- | --- | ---: | ---: | ---: | ---: |',
    ...rows,
    '',
  ].join('\n'),
);
