/**
 * `herald serve --workers 2` on Redis (issue #14): with a shared store every worker talks to Redis
 * directly (no sharding, no hand-over between workers). Clients held by different worker
 * processes (found in /proc) meet in one swarm, over HTTP and UDP, and scrape agrees on both.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { type RunningTracker, startTracker } from '../e2e/tracker-process.ts';
import { type AnnounceFields, announcePath, bdecode, hashOf, pct, udpAnnounce } from '../helpers/clients.ts';
import { compactPeers, deleteKeys, REDIS_URL, sharedServe, testPrefix } from '../helpers/redis.ts';
import { connectionHolders, workerPids } from '../helpers/workers.ts';

/** One keep-alive HTTP/1.1 connection: requests one at a time, answers read by Content-Length. */
class KeepAlive {
  readonly socket: Socket;
  #buf = Buffer.alloc(0);
  #wake: (() => void) | null = null;
  constructor(port: number) {
    this.socket = connect({ port, host: '127.0.0.1' });
    this.socket.on('data', (d) => {
      this.#buf = Buffer.concat([this.#buf, d]);
      this.#wake?.();
    });
  }
  async ready(): Promise<void> {
    if (this.socket.localPort === undefined) await new Promise((r) => this.socket.once('connect', r));
  }
  async get(path: string): Promise<Map<string, unknown>> {
    this.socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    for (;;) {
      const end = this.#buf.indexOf('\r\n\r\n');
      if (end >= 0) {
        const len = Number(/content-length: *(\d+)/i.exec(this.#buf.subarray(0, end).toString())?.[1]);
        if (this.#buf.length >= end + 4 + len) {
          const body = this.#buf.subarray(end + 4, end + 4 + len);
          this.#buf = this.#buf.subarray(end + 4 + len);
          return bdecode(body);
        }
      }
      await new Promise<void>((r) => {
        this.#wake = r;
      });
    }
  }
}

describe('herald serve --workers 2 on Redis', {
  skip: REDIS_URL ? false : 'no redis-server (HERALD_TEST_REDIS_URL unset)',
}, () => {
  const prefix = testPrefix();
  let t: RunningTracker;
  const open: KeepAlive[] = [];
  /** A connection held by each worker process. */
  const byWorker = new Map<number, KeepAlive>();

  before(async () => {
    t = await startTracker(
      [...sharedServe(REDIS_URL, prefix, randomBytes(32).toString('hex')), '--workers', '2'],
      { ready: 'herald workers running' },
    );
    const pids = workerPids(t.pid);
    assert.equal(pids.length, 2);
    for (let i = 0; i < 64 && byWorker.size < 2; i++) {
      const c = new KeepAlive(t.http[0].port);
      open.push(c);
      await c.ready();
      let holder: number | undefined;
      for (let k = 0; k < 100 && holder === undefined; k++) {
        holder = connectionHolders(pids, t.http[0].port).get(c.socket.localPort!);
        if (holder === undefined) await new Promise((r) => setTimeout(r, 20));
      }
      if (holder !== undefined && !byWorker.has(holder)) byWorker.set(holder, c);
    }
    assert.equal(byWorker.size, 2, 'a connection on each worker');
  });

  after(async () => {
    for (const c of open) c.socket.destroy();
    await t?.stop();
    await deleteKeys(REDIS_URL, prefix);
  });

  const ask = async (c: KeepAlive, f: AnnounceFields) => {
    const d = await c.get(announcePath(f));
    assert.equal(d.get('failure reason'), undefined, String(d.get('failure reason')));
    return d;
  };

  test('HTTP: peers announced through different workers meet in one swarm; scrape agrees', async () => {
    const [one, two] = [...byWorker.values()];
    const ih = hashOf(1, randomBytes(4).readUInt32BE(0));
    await ask(one, { infoHash: ih, port: 6001, left: 0, event: 'started' });
    const d = await ask(two, { infoHash: ih, port: 6002, left: 10, event: 'started' });
    assert.deepEqual(compactPeers(d.get('peers')), ['127.0.0.1:6001']);
    const back = await ask(one, { infoHash: ih, port: 6003, left: 10 });
    assert.deepEqual(compactPeers(back.get('peers')), ['127.0.0.1:6001', '127.0.0.1:6002']);
    for (const c of [one, two]) {
      const files = (await c.get(`/scrape?info_hash=${pct(ih)}`)).get('files') as Map<
        string,
        Map<string, number>
      >;
      const e = files.get(ih.toString('latin1'))!;
      assert.deepEqual([e.get('complete'), e.get('incomplete')], [1, 2]);
    }
  });

  test('UDP: an announce over UDP sees the peers of both workers', async () => {
    const [one, two] = [...byWorker.values()];
    const ih = hashOf(2, randomBytes(4).readUInt32BE(0));
    await ask(one, { infoHash: ih, port: 6101, left: 0 });
    await ask(two, { infoHash: ih, port: 6102, left: 0 });
    const r = await udpAnnounce(t.udp[0].port, { infoHash: ih, port: 6103, left: 100 });
    assert.ok(r !== null, 'connect and announce answered');
    assert.equal(r.action, 1, JSON.stringify(r));
    if (r.action === 1) {
      assert.deepEqual([r.seeders, r.leechers], [2, 0]);
      assert.deepEqual(compactPeers(Buffer.from(r.peers)), ['127.0.0.1:6101', '127.0.0.1:6102']);
    }
  });
});
