import { randomBytes } from 'node:crypto';
import { Cluster, Redis } from 'ioredis';

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
