/**
 * `/metrics` with `herald serve --workers N` as Prometheus reads it. Counters must survive a
 * worker's restart the way Prometheus handles resets (per series: a series that goes down counts
 * as restarted from zero), and on a shared store (Redis) every worker's requests must be counted,
 * whichever worker answers the scrape.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { type RunningTracker, startTracker } from '../e2e/tracker-process.ts';
import { announcePath, hashOf, httpGet } from '../helpers/clients.ts';
import { deleteKeys, REDIS_URL, sharedServe, testPrefix } from '../helpers/redis.ts';
import { workerPids } from '../helpers/workers.ts';

/** The samples of one metric: labels (as written) → value. */
async function samples(port: number, name: string): Promise<Map<string, number>> {
  const r = await httpGet(port, '127.0.0.1', '/metrics');
  assert.equal(r.status, 200, r.body.toString());
  const out = new Map<string, number>();
  for (const line of r.body.toString().split('\n')) {
    const m = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (m !== null && m[1] === name) out.set(m[2] ?? '', Number(m[3]));
  }
  return out;
}

/** What Prometheus's `increase()` makes of two scrapes: per series, a drop is a restart from 0. */
function increase(before: Map<string, number>, after: Map<string, number>, match: RegExp): number {
  let sum = 0;
  for (const [labels, v] of after) {
    if (!match.test(labels)) continue;
    const was = before.get(labels);
    sum += was === undefined || v < was ? v : v - was;
  }
  return sum;
}

/** `n` announces over HTTP, each on a new connection (the kernel spreads them over the workers). */
async function announces(port: number, n: number, salt: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const r = await httpGet(
      port,
      '127.0.0.1',
      announcePath({ infoHash: hashOf(i % 7, salt), port: 10_000 + i }),
    );
    assert.equal(r.status, 200);
    assert.doesNotMatch(r.body.toString('latin1'), /failure reason/);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const HTTP = /protocol="http"/;

describe('/metrics across a worker restart: herald serve --workers 2', () => {
  let t: RunningTracker;
  before(async () => {
    t = await startTracker(['--workers', '2', '--http', '127.0.0.1:0', '--udp', 'off'], {
      ready: 'herald workers running',
    });
  });
  after(() => t?.stop());

  test("Prometheus's increase() over a killed and restarted worker counts the announces made, no more", async () => {
    const port = t.http[0].port;
    await announces(port, 60, 1);
    const first = await samples(port, 'herald_announces_total');
    assert.equal(increase(new Map(), first, HTTP), 60);
    const [, victim] = workerPids(t.pid);
    process.kill(victim, 'SIGKILL');
    let back = false;
    for (let i = 0; i < 300 && !back; i++) {
      await sleep(100);
      const pids = workerPids(t.pid);
      back =
        pids.length === 2 &&
        !pids.includes(victim) &&
        (await httpGet(port, '127.0.0.1', '/stats').catch(() => null))?.status === 200;
    }
    assert.ok(back, 'the worker is back');
    await announces(port, 10, 2);
    const second = await samples(port, 'herald_announces_total');
    // Summed into one series, the restarted worker's zero made the whole sum look like a reset:
    // Prometheus then counted every announce of the other worker again.
    assert.equal(
      increase(first, second, HTTP),
      10,
      `${JSON.stringify([...first])} → ${JSON.stringify([...second])}`,
    );
  });
});

describe('/metrics on Redis: herald serve --workers 2', {
  skip: REDIS_URL ? false : 'no redis-server (HERALD_TEST_REDIS_URL unset)',
}, () => {
  const prefix = testPrefix();
  let t: RunningTracker;
  before(async () => {
    t = await startTracker(
      [...sharedServe(REDIS_URL, prefix, randomBytes(32).toString('hex')), '--workers', '2'],
      { ready: 'herald workers running' },
    );
  });
  after(async () => {
    await t?.stop();
    await deleteKeys(REDIS_URL, prefix);
  });

  test("every worker's announces are counted, whichever worker answers; swarm figures not doubled", async () => {
    const port = t.http[0].port;
    await announces(port, 40, 3);
    // Each scrape is a new connection: the kernel gives some to each worker.
    for (let i = 0; i < 6; i++) {
      assert.equal(increase(new Map(), await samples(port, 'herald_announces_total'), HTTP), 40);
      const peers = await samples(port, 'herald_peers');
      assert.equal((peers.get('{kind="leecher"}') ?? 0) + (peers.get('{kind="seeder"}') ?? 0), 40);
    }
    const stats = JSON.parse((await httpGet(port, '127.0.0.1', '/stats')).body.toString());
    assert.equal(stats.announces.http, 40);
    assert.equal(stats.swarm.peers, 40);
    assert.equal(stats.workers, 2);
  });
});
