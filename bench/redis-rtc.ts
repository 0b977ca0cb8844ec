/**
 * The cost of WebTorrent across instances on Redis (issue #14): two instances' WebRTC swarms in
 * this one process (src/store/redis/rtc-swarms.ts), the offerers' sockets on instance B and the
 * targets' on A, so every offer crosses instances (one announce script, then PUBLISH to A's
 * channel, A's subscriber, the offer written to the target socket's output).
 *
 *   node bench/redis-rtc.ts [--announces 20000]
 *
 * On a redis-server of its own and on a 3-master Cluster of its own (free ports, no persistence,
 * no replicas), plain PUBLISH on both. Three phases per target, each `--announces` announces
 * (200 in flight): no offers (the announce script alone), 1 offer each, 5 offers each. Reports
 * Herald CPU (this process: both instances, without WebSocket framing) and redis-server CPU (every
 * node, from /proc) per announce and per relayed offer (the difference to the no-offer phase).
 * Prints a Markdown table (docs/redis.md "WebTorrent").
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../src/core/log.ts';
import { AnnounceEvent } from '../src/core/types.ts';
import type { RtcConnection } from '../src/frontend/ws/webrtc-swarms.ts';
import { RedisSwarmStore } from '../src/store/redis/redis-store.ts';
import { RedisRtcSwarms } from '../src/store/redis/rtc-swarms.ts';
import { freePort } from '../test/helpers/redis.ts';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const ANNOUNCES = arg('announces', 20_000);
const SWARMS = 2000;
const TARGETS = 5;
const OFFERERS = 20;
const WINDOW = 200;
const WORK = mkdtempSync(join(tmpdir(), 'herald-rtc-bench-'));
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

async function redisServer(port: number, extra: string[] = []): Promise<ChildProcess> {
  const c = spawn(
    'redis-server',
    ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no', ...extra],
    { stdio: 'ignore' },
  );
  children.add(c);
  for (let i = 0; i < 100; i++) {
    if (
      spawnSync('redis-cli', ['-p', String(port), 'ping'])
        .stdout?.toString()
        .includes('PONG')
    )
      return c;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`redis-server on ${port} did not start`);
}

async function single(): Promise<{ url: string; pids: number[] }> {
  const port = await freePort(17_100);
  const c = await redisServer(port);
  return { url: `redis://127.0.0.1:${port}`, pids: [c.pid!] };
}

async function cluster(): Promise<{ url: string; pids: number[] }> {
  const ports: number[] = [];
  for (let i = 0; i < 3; i++) ports.push(await freePort((ports.at(-1) ?? 17_200) + 1, 10_000));
  const pids: number[] = [];
  for (const p of ports) {
    const dir = join(WORK, String(p));
    mkdirSync(dir);
    const c = await redisServer(p, [
      '--cluster-enabled',
      'yes',
      '--cluster-config-file',
      join(dir, 'nodes.conf'),
      '--dir',
      dir,
    ]);
    pids.push(c.pid!);
  }
  const made = spawnSync(
    'redis-cli',
    [
      '--cluster',
      'create',
      ...ports.map((p) => `127.0.0.1:${p}`),
      '--cluster-replicas',
      '0',
      '--cluster-yes',
    ],
    { encoding: 'utf8' },
  );
  if (made.status !== 0) throw new Error(made.stdout + made.stderr);
  for (let i = 0; ; i++) {
    const info = spawnSync('redis-cli', ['-p', String(ports[0]), 'cluster', 'info'], { encoding: 'utf8' });
    if (info.stdout.includes('cluster_state:ok')) break;
    if (i > 100) throw new Error('cluster not ok');
    await new Promise((r) => setTimeout(r, 100));
  }
  return { url: `redis-cluster://${ports.map((p) => `127.0.0.1:${p}`).join(',')}`, pids };
}

const id = (a: number, b: number) => {
  const x = Buffer.alloc(20, 0x62);
  x.writeUInt32BE(a, 0);
  x.writeUInt32BE(b, 4);
  return x;
};

async function measure(name: string, target: { url: string; pids: number[] }): Promise<string[]> {
  const logger = createLogger('silent');
  const make = async () => {
    const store = new RedisSwarmStore({
      url: target.url,
      prefix: 'bench',
      timeoutMs: 5000,
      peerTimeout: 3600,
    });
    await store.ready(10_000);
    const rtc = new RedisRtcSwarms({
      store,
      logger,
      peerTimeout: 3600,
      now: () => Math.floor(Date.now() / 1000),
      maxSwarmsPerConnection: SWARMS,
    });
    await rtc.start();
    return { store, rtc };
  };
  const a = await make();
  const b = await make();
  let delivered = 0;
  const sink = (): RtcConnection => ({
    joined: [],
    ws: {
      send: () => delivered++,
      sendParts: () => delivered++,
    },
  });
  const now = () => Math.floor(Date.now() / 1000);
  const msg = (h: Buffer, peerId: Buffer, offers: number) => ({
    action: 'announce' as const,
    infoHash: h,
    peerId,
    event: AnnounceEvent.none,
    uploaded: 0,
    downloaded: 0,
    left: 1,
    offers: Array.from({ length: offers }, (_, k) => ({
      offerId: id(0x0ff, k),
      offerJson: Buffer.from(
        `{"type":"offer","sdp":"v=0\\r\\no=- ${k} 2 IN IP4 127.0.0.1\\r\\n${'a'.repeat(400)}"}`,
      ),
    })),
  });
  const hashes = Array.from({ length: SWARMS }, (_, i) => id(0xabc, i));
  // Targets: TARGETS sockets on A, each a peer of every swarm.
  for (let t = 0; t < TARGETS; t++) {
    const conn = sink();
    for (const h of hashes) await a.rtc.announce(conn, msg(h, id(t + 1, 0), 0), 0, now());
  }
  const offerers = Array.from({ length: OFFERERS }, sink);
  const run = async (offers: number) => {
    delivered = 0;
    const cpu0 = process.cpuUsage();
    const r0 = target.pids.reduce((s, p) => s + cpu(p), 0);
    const t0 = Date.now();
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < ANNOUNCES; i = next++) {
        const k = i % SWARMS;
        const conn = offerers[k % OFFERERS];
        const res = await b.rtc.announce(
          conn,
          msg(hashes[k], id(0x7000 + (k % OFFERERS), 1), offers),
          offers,
          now(),
        );
        if (!('complete' in res)) throw new Error(`refused: ${res.message}`);
      }
    };
    await Promise.all(Array.from({ length: WINDOW }, worker));
    const want = ANNOUNCES * offers;
    for (let i = 0; delivered < want && i < 200; i++) await new Promise((r) => setTimeout(r, 25));
    const c = process.cpuUsage(cpu0);
    const redisCpu = target.pids.reduce((s, p) => s + cpu(p), 0) - r0;
    return {
      perSecond: ANNOUNCES / ((Date.now() - t0) / 1000),
      herald: (c.user + c.system) / ANNOUNCES,
      redis: (redisCpu * 1e6) / ANNOUNCES,
      delivered,
      want,
    };
  };
  await run(0); // every offerer joins
  const rows: string[] = [];
  const base = await run(0);
  for (const offers of [0, 1, 5]) {
    const r = offers === 0 ? base : await run(offers);
    const per = (x: number, x0: number) => (offers === 0 ? '-' : ((x - x0) / offers).toFixed(1));
    rows.push(
      `| ${name} | ${offers} | ${Math.round(r.perSecond).toLocaleString('en')} | ${r.herald.toFixed(1)} | ${r.redis.toFixed(1)} | ${per(r.herald, base.herald)} | ${per(r.redis, base.redis)} | ${r.delivered}/${r.want} |`,
    );
  }
  await a.rtc.close();
  await b.rtc.close();
  await a.store.close();
  await b.store.close();
  return rows;
}

const rows: string[] = [];
const one = await single();
rows.push(...(await measure('one Redis', one)));
const three = await cluster();
rows.push(...(await measure('3-master Cluster', three)));
console.log(
  `${ANNOUNCES} announces per row, ${SWARMS} swarms, offers from instance B to sockets on instance A\n`,
);
console.log(
  '| Redis | offers per announce | announces/s | Herald CPU µs/announce | redis-server CPU µs/announce | Herald CPU µs per relayed offer | redis-server CPU µs per relayed offer | offers delivered |',
);
console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
for (const r of rows) console.log(r);
process.exit(0);
