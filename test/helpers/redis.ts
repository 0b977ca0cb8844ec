import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster, Redis } from 'ioredis';
import type { AnnounceEvent, AnnounceRequest } from '../../src/core/types.ts';
import { endpointOf } from '../../src/swarm/contract.ts';

/**
 * The Redis servers the Redis tests run on (scripts/test-all.sh starts them and sets the
 * variables, with HERALD_TEST_REQUIRE_REDIS=1 so that a missing server fails the run instead of
 * skipping): HERALD_TEST_REDIS_URL, one server (redis://127.0.0.1:6379), and
 * HERALD_TEST_REDIS_CLUSTER, a Cluster (redis-cluster://127.0.0.1:7001,…). Tests share these
 * servers with other suites: each uses keys under a prefix of its own and deletes them after.
 */
export const REDIS_URL = process.env.HERALD_TEST_REDIS_URL ?? '';
export const REDIS_CLUSTER_URL = process.env.HERALD_TEST_REDIS_CLUSTER ?? '';
const REQUIRE = process.env.HERALD_TEST_REQUIRE_REDIS === '1';

for (const [url, name, how] of [
  [REDIS_URL, 'HERALD_TEST_REDIS_URL', 'Redis'],
  [REDIS_CLUSTER_URL, 'HERALD_TEST_REDIS_CLUSTER', 'Redis Cluster'],
] as const)
  if (!url) {
    const msg = `${how} tests SKIPPED: ${name} is not set (bash scripts/test-all.sh starts ${how} and sets it)`;
    if (REQUIRE) throw new Error(`${msg}, but HERALD_TEST_REQUIRE_REDIS=1`);
    process.stderr.write(`\n*** ${msg} ***\n\n`);
  }

/** The servers to run on: [name, url]. */
export const redisTargets: [string, string][] = [
  ...(REDIS_URL ? [['redis', REDIS_URL] as [string, string]] : []),
  ...(REDIS_CLUSTER_URL ? [['redis cluster', REDIS_CLUSTER_URL] as [string, string]] : []),
];

/** A key prefix no other test uses. */
export function testPrefix(): string {
  return `herald-test-${randomBytes(5).toString('hex')}`;
}

/** Deletes every key under `prefix` (on every master of a Cluster); never FLUSHALL. */
export async function deleteKeys(url: string, prefix: string): Promise<void> {
  const nodes: Redis[] = [];
  let cluster: Cluster | null = null;
  if (url.startsWith('redis-cluster://')) {
    const seeds = url
      .slice('redis-cluster://'.length)
      .split(',')
      .map((hp) => ({
        host: hp.slice(0, hp.lastIndexOf(':')),
        port: Number(hp.slice(hp.lastIndexOf(':') + 1)),
      }));
    cluster = new Cluster(seeds);
    await new Promise<void>((resolve) => cluster!.once('ready', () => resolve()));
    nodes.push(...cluster.nodes('master'));
  } else nodes.push(new Redis(url));
  for (const node of nodes) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scanBuffer(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = String(next);
      for (const k of keys) await node.del(k);
    } while (cursor !== '0');
  }
  if (cluster !== null) cluster.disconnect();
  else for (const n of nodes) n.disconnect();
}

/** `herald serve` arguments for one instance of a pair sharing `url` under `prefix`. */
export function sharedServe(url: string, prefix: string, secret: string): string[] {
  return [
    '--store',
    url,
    '--redis-prefix',
    prefix,
    '--udp-secret',
    secret,
    '--http',
    '127.0.0.1:0',
    '--udp',
    '127.0.0.1:0',
    '--full-scrape',
  ];
}

/** Compact IPv4 peers as "a.b.c.d:port". */
export function compactPeers(v: unknown): string[] {
  const b = v as Buffer;
  const out: string[] = [];
  for (let i = 0; i + 6 <= b.length; i += 6)
    out.push(`${b[i]}.${b[i + 1]}.${b[i + 2]}.${b[i + 3]}:${b.readUInt16BE(i + 4)}`);
  return out.sort();
}

/** A redis-server of a test's own (not the shared one): it may be stopped and started again. */
export interface OwnRedis {
  port: number;
  url: string;
  start(): Promise<void>;
  /** SIGKILL: the server is gone at once, as in a crash. */
  kill(): Promise<void>;
}

export function ownRedis(port: number, extra: string[] = []): OwnRedis {
  let child: ChildProcess | null = null;
  const r: OwnRedis = {
    port,
    url: `redis://127.0.0.1:${port}`,
    async start() {
      child = spawn(
        'redis-server',
        ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no', ...extra],
        { stdio: 'ignore' },
      );
      await untilPong(port);
    },
    async kill() {
      const c = child;
      child = null;
      if (c === null || c.exitCode !== null) return;
      const exited = new Promise((resolve) => c.once('exit', resolve));
      c.kill('SIGKILL');
      await exited;
    },
  };
  return r;
}

async function untilPong(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const c = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null });
    c.on('error', () => {});
    try {
      await c.connect();
      if ((await c.ping()) === 'PONG') return;
    } catch {
    } finally {
      c.disconnect();
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`redis-server on ${port} did not start`);
}

/**
 * A Redis Cluster of a test's own: three masters and a replica each on `ports` (six), with a
 * short node timeout so that a failover takes seconds. `stop()` kills every node. `extra`: more
 * redis-server arguments for every node (e.g. --loadmodule).
 */
export async function ownCluster(
  ports: number[],
  extra: string[] = [],
): Promise<{ url: string; nodes: OwnRedis[]; stop(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'herald-cluster-'));
  const nodes = ports.map((p) => {
    mkdirSync(join(dir, String(p)));
    return ownRedis(p, [
      '--cluster-enabled',
      'yes',
      '--cluster-config-file',
      join(dir, String(p), 'nodes.conf'),
      '--cluster-node-timeout',
      '1000',
      '--dir',
      join(dir, String(p)),
      ...extra,
    ]);
  });
  await Promise.all(nodes.map((n) => n.start()));
  const created = spawnSync(
    'redis-cli',
    [
      '--cluster',
      'create',
      ...ports.map((p) => `127.0.0.1:${p}`),
      '--cluster-replicas',
      '1',
      '--cluster-yes',
    ],
    { encoding: 'utf8', timeout: 30_000 },
  );
  if (created.status !== 0) throw new Error(`redis-cli --cluster create: ${created.stdout}${created.stderr}`);
  // Ready when the cluster is ok and every replica has synchronised with its master (a replica
  // that never did has no data to fail over with).
  const clients = ports.map((port) => new Redis({ port, host: '127.0.0.1' }));
  try {
    for (let i = 0; ; i++) {
      const info = await clients[0].cluster('INFO');
      const links = await Promise.all(clients.map((c) => c.info('replication')));
      const replicas = links.filter((l) => l.includes('role:slave'));
      if (
        info.includes('cluster_state:ok') &&
        replicas.length === 3 &&
        replicas.every((l) => l.includes('master_link_status:up'))
      )
        break;
      if (i > 300) throw new Error('the test cluster did not become ready');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } finally {
    for (const c of clients) c.disconnect();
  }
  return {
    url: `redis-cluster://${ports
      .slice(0, 3)
      .map((p) => `127.0.0.1:${p}`)
      .join(',')}`,
    nodes,
    async stop() {
      await Promise.all(nodes.map((n) => n.kill()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A TCP port on 127.0.0.1 from `from` on that is free, with `also` (e.g. 10000: a cluster bus port) free too. */
export async function freePort(from: number, also = 0): Promise<number> {
  const free = (p: number) =>
    new Promise<boolean>((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(false));
      s.listen(p, '127.0.0.1', () => s.close(() => resolve(true)));
    });
  for (let p = from; p < from + 200; p++)
    if ((await free(p)) && (also === 0 || (await free(p + also)))) return p;
  throw new Error(`no free port from ${from}`);
}

/** Herald's Redis module as `npm run build:native` builds it (native/redis/herald.c). */
export const MODULE_PATH = join(import.meta.dirname, '..', '..', 'native', 'build', 'herald-redis.so');

/**
 * Whether Herald's module is built and there is a redis-server to load it; if not, said loudly (an
 * error with HERALD_TEST_REQUIRE_REDIS=1).
 */
export function moduleAvailable(): boolean {
  const missing = !existsSync(MODULE_PATH)
    ? `${MODULE_PATH} is not built (npm run build:native)`
    : spawnSync('redis-server', ['--version']).status !== 0
      ? 'redis-server is not installed'
      : null;
  if (missing === null) return true;
  const msg = `Redis module tests SKIPPED: ${missing}`;
  if (REQUIRE) throw new Error(`${msg}, but HERALD_TEST_REQUIRE_REDIS=1`);
  process.stderr.write(`\n*** ${msg} ***\n\n`);
  return false;
}

/**
 * A redis-server of the test's own with Herald's module loaded, on a free port from 7300, started
 * at the first `url()` and killed by `stop()` (call it from an `after` hook). Null, said loudly,
 * when the module is not built (an error with HERALD_TEST_REQUIRE_REDIS=1) or there is no
 * redis-server (the tests that need it skip).
 */
export function moduleRedis(extra: string[] = []): { url(): Promise<string>; stop(): Promise<void> } | null {
  if (!moduleAvailable()) return null;
  let server: Promise<OwnRedis> | null = null;
  return {
    async url() {
      server ??= freePort(7300).then(async (port) => {
        const r = ownRedis(port, ['--loadmodule', MODULE_PATH, ...extra]);
        await r.start();
        return r;
      });
      return (await server).url;
    },
    async stop() {
      if (server !== null) await (await server).kill();
    },
  };
}

/** IPv4 peer `peer`'s announce to swarm `h` (a leecher, event none, numwant 10, compact), with `over`. */
export function peerAnnounce(h: Uint8Array, peer: number, over: Partial<AnnounceRequest>): AnnounceRequest {
  return {
    infoHash: h,
    peerId: new Uint8Array(20).fill(peer),
    family: 4,
    ...endpointOf(peer, 4),
    uploaded: 0,
    downloaded: 0,
    left: 5,
    event: 0 as AnnounceEvent,
    numWant: 10,
    wantPeerIds: false,
    ...over,
  };
}
