/**
 * The full scrape's rate limit (`full_scrape_interval`) holds for the whole tracker with
 * `herald serve --workers N`: one address gets one full scrape per interval whichever worker its
 * connection lands on. Counted per worker, a client with a connection on each of N workers got N
 * full scrapes an interval, each costing every worker a walk over all its swarms.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { type RunningTracker, startTracker } from '../e2e/tracker-process.ts';
import { announcePath, bdecode, hashOf, httpGet } from '../helpers/clients.ts';
import { deleteKeys, REDIS_URL, sharedServe, testPrefix } from '../helpers/redis.ts';
import { connectionOnEachWorker, holderOf, responseOn, workerPids } from '../helpers/workers.ts';
import { id20, Peer } from '../helpers/ws-peer.ts';

/**
 * One full scrape on an open connection: ok when it listed the swarms, not when refused. With
 * `gzip`, asked with Accept-Encoding: gzip; a body labelled gzip is gunzipped first.
 */
async function fullScrapeOn(
  s: Socket,
  gzip = false,
): Promise<{ ok: boolean; reason?: string; gzip?: boolean }> {
  const { head, body } = await responseOn(
    s,
    `GET /scrape HTTP/1.1\r\nHost: x\r\n${gzip ? 'Accept-Encoding: gzip\r\n' : ''}\r\n`,
  );
  const zipped = /content-encoding: *gzip/i.test(head);
  // A body that is not bencode (gzip bytes sent unlabelled) throws here.
  const d = bdecode(zipped ? gunzipSync(body) : body);
  const reason = d.get('failure reason');
  return reason === undefined ? { ok: d.has('files'), gzip: zipped } : { ok: false, reason: String(reason) };
}

/** `herald serve --workers N` with full scrape on, one swarm announced (on Redis with `redis`). */
async function fullScrapeTracker(
  workers: number,
  interval: number,
  redis: string[] = ['--http', '127.0.0.1:0', '--udp', 'off'],
): Promise<RunningTracker> {
  const args = [...redis, '--full-scrape'];
  const t = await startTracker(
    ['--workers', String(workers), ...args, '--full-scrape-interval', String(interval)],
    { ready: 'herald workers running' },
  );
  const r = await httpGet(
    t.http[0].port,
    '127.0.0.1',
    announcePath({ infoHash: hashOf(workers, 77), port: 6881 }),
  );
  assert.equal(r.status, 200);
  return t;
}

for (const workers of [2, 3]) {
  describe(`full scrape rate limit: herald serve --workers ${workers}`, () => {
    let t: RunningTracker;
    before(async () => {
      t = await fullScrapeTracker(workers, 600);
    });
    after(() => t?.stop());

    test('HTTP: one full scrape per interval for one address, over connections on every worker', async () => {
      const pids = workerPids(t.pid);
      assert.equal(pids.length, workers);
      const { onEach, sockets } = await connectionOnEachWorker(pids, t.http[0].port);
      try {
        const answers = [];
        for (const s of onEach) answers.push(await fullScrapeOn(s));
        assert.equal(answers.filter((a) => a.ok).length, 1, JSON.stringify(answers));
        for (const a of answers.filter((x) => !x.ok)) assert.match(a.reason ?? '', /full scrape/i);
        // And again on the first connection (its worker may have answered it, or not).
        assert.equal((await fullScrapeOn(onEach[0])).ok, false);
      } finally {
        for (const s of sockets) s.destroy();
      }
    });

    test('WebSocket: one full scrape per interval for one address, over sockets on every worker', async () => {
      const pids = workerPids(t.pid);
      const url = `ws://127.0.0.1:${t.http[0].port}/announce`;
      const open: Peer[] = [];
      try {
        const onWorker = new Map<number, Peer>();
        for (let i = 0; i < 40 && onWorker.size < workers; i++) {
          const p = new Peer(url, id20(0x66756c6c, i));
          open.push(p);
          await p.opened();
          const w = await holderOf(pids, t.http[0].port, p.localPort);
          if (!onWorker.has(w)) onWorker.set(w, p);
        }
        assert.equal(onWorker.size, workers, 'a socket on each worker');
        const answers = [];
        for (const p of onWorker.values()) {
          const before = p.got.filter((m) => m.action === 'scrape').length;
          p.send({ action: 'scrape' });
          const all = await p.waitFor((m) => m.action === 'scrape', before + 1);
          answers.push(all[all.length - 1]);
        }
        assert.equal(
          answers.filter((a) => a['failure reason'] === undefined).length,
          1,
          JSON.stringify(answers),
        );
      } finally {
        for (const p of open) p.ws.terminate();
      }
    });
  });
}

describe('full scrape with gzip: herald serve --workers 2', () => {
  let t: RunningTracker;
  before(async () => {
    t = await fullScrapeTracker(2, 1);
  });
  after(() => t?.stop());

  test('a full scrape built after an await (every worker gathers the others) is never gzip sent unlabelled', async () => {
    const { onEach, sockets } = await connectionOnEachWorker(workerPids(t.pid), t.http[0].port);
    try {
      // Each worker's first full scrape is built from the other shards' answers (no cache yet);
      // then each worker's cached one (within 5 s). One address: 1 s between full scrapes (the
      // clock counts whole seconds).
      for (let round = 0; round < 2; round++)
        for (const s of onEach) {
          const a = await fullScrapeOn(s, true);
          assert.equal(a.ok, true, JSON.stringify(a));
          await new Promise((r) => setTimeout(r, 2100));
        }
    } finally {
      for (const s of sockets) s.destroy();
    }
  });
});

describe('full scrape on Redis: herald serve --workers 2', {
  skip: REDIS_URL ? false : 'no redis-server (HERALD_TEST_REDIS_URL unset)',
}, () => {
  const prefix = testPrefix();
  let t: RunningTracker;
  before(async () => {
    t = await fullScrapeTracker(2, 600, sharedServe(REDIS_URL, prefix, randomBytes(32).toString('hex')));
  });
  after(async () => {
    await t?.stop();
    await deleteKeys(REDIS_URL, prefix);
  });

  test('one full scrape per interval for one address over both workers, never gzip sent unlabelled', async () => {
    const { onEach, sockets } = await connectionOnEachWorker(workerPids(t.pid), t.http[0].port);
    try {
      const answers = [];
      for (const s of onEach) answers.push(await fullScrapeOn(s, true));
      assert.equal(answers.filter((a) => a.ok).length, 1, JSON.stringify(answers));
    } finally {
      for (const s of sockets) s.destroy();
    }
  });
});
