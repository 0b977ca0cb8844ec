/**
 * A client that pipelines requests and does not read its answers: Herald stops reading that
 * connection while the answers it has written and the kernel has not taken exceed MAX_UNSENT, and
 * goes on once they drain, so one connection cannot make it buffer without bound. Over node:net,
 * the batched addon, HTTPS, and a connection already handed over to node:http.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { ManualClock } from '../../src/core/clock.ts';
import { TrackerError } from '../../src/core/errors.ts';
import type { AnnounceResult } from '../../src/core/types.ts';
import { loadHttpBatchAddon } from '../../src/frontend/http/batch.ts';
import { MAX_UNSENT } from '../../src/frontend/http/raw-path.ts';
import { createTracker, type Tracker } from '../../src/index.ts';
import { MemorySwarmStore } from '../../src/store/memory/memory-store.ts';
import type { SwarmStore } from '../../src/swarm/types.ts';
import { startTracker } from '../e2e/tracker-process.ts';
import { announcePath, bdecode, hashOf, seederRequest } from '../helpers/clients.ts';
import { deleteKeys, redisTargets, testPrefix } from '../helpers/redis.ts';
import { makeCert } from '../helpers/tls.ts';

const PEERS = 200;
/** Pipelined requests: their answers (about 14 KB each) total some 40 MB. */
const REQUESTS = 3000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Status and body length of each complete response at the start of `all`. */
function responses(all: Buffer): { status: number; body: Buffer }[] {
  const out: { status: number; body: Buffer }[] = [];
  let off = 0;
  for (;;) {
    const end = all.indexOf('\r\n\r\n', off);
    if (end < 0) break;
    const head = all.toString('latin1', off, end);
    const len = Number(/content-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
    if (end + 4 + len > all.length) break;
    out.push({ status: Number(head.split(' ')[1]), body: all.subarray(end + 4, end + 4 + len) });
    off = end + 4 + len;
  }
  return out;
}

/**
 * The memory store answering through promises (settled a microtask later), as an asynchronous
 * store (Redis, another worker's swarm) does: every answer parks its connection.
 */
function asynchronous(store: SwarmStore): SwarmStore {
  return new Proxy(store, {
    get(target, key) {
      if (key === 'synchronous') return false;
      const v = Reflect.get(target, key, target);
      if (key === 'announce')
        return (...args: unknown[]) => {
          const r = (v as (...a: unknown[]) => AnnounceResult).apply(target, args);
          // An asynchronous store owns the peers it returns (AnnounceResult.peers).
          return Promise.resolve(r instanceof TrackerError ? r : { ...r, peers: r.peers.slice() });
        };
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

async function withTracker(
  cfg: Parameters<typeof createTracker>[0],
  fn: (t: Tracker, h: Buffer) => Promise<void>,
  async = false,
): Promise<void> {
  const clock = new ManualClock(1000);
  const store = new MemorySwarmStore({ peerTimeout: 1800 });
  const t = createTracker(
    { udp: [], maxNumWant: PEERS, logLevel: 'silent', databaseUrl: 'sqlite::memory:', ...cfg },
    { clock, store: async ? asynchronous(store) : store },
  );
  await t.start();
  try {
    const h = hashOf(77);
    for (let i = 0; i < PEERS; i++) await t.service.store.announce(seederRequest(h, i, 1), clock.now());
    await fn(t, h);
  } finally {
    await t.stop();
  }
}

/**
 * Pipelines REQUESTS large-answer announces (after `first`, if given) without reading; waits until
 * Herald pauses the connection (or has answered everything: the defect), checks what it holds,
 * then reads every answer.
 */
async function pipelineWithoutReading(t: Tracker, socket: Socket, h: Buffer, first = ''): Promise<void> {
  socket.on('error', () => {});
  socket.pause();
  const one = `GET ${announcePath({ infoHash: h, port: 7000, left: 1, compact: 0, numwant: PEERS })} HTTP/1.1\r\nHost: x\r\n\r\n`;
  socket.write(first + one.repeat(REQUESTS));
  const before = t.service.counters.announces.http;
  let s = await t.stats.snapshot();
  const started = Date.now();
  // Herald either pauses the connection, or (the defect) reads and answers every request.
  while (s.http!.paused === 0 && t.service.counters.announces.http - before < REQUESTS) {
    assert.ok(Date.now() - started < 60_000, 'neither paused nor done within a minute');
    await sleep(20);
    s = await t.stats.snapshot();
  }
  const generated = t.service.counters.announces.http - before;
  const answerSize = 16 * 1024; // one compact=0 answer with 200 peers is about 14 KB
  assert.ok(
    s.http!.unsentBytes <= MAX_UNSENT + answerSize,
    `Herald holds ${s.http!.unsentBytes} unsent bytes for a client that does not read (${generated} of ${REQUESTS} requests answered)`,
  );
  assert.equal(s.http!.paused, 1);
  assert.ok(generated < REQUESTS, `${generated} answered`);
  // The client reads at last: every answer arrives, in order, and the connection is read again.
  const chunks: Buffer[] = [];
  const all = new Promise<{ status: number; body: Buffer }[]>((resolve, reject) => {
    socket.on('data', (d) => {
      chunks.push(d);
      const rs = responses(Buffer.concat(chunks));
      if (rs.length >= REQUESTS + (first ? 1 : 0)) resolve(rs);
    });
    socket.on('close', () => reject(new Error('closed before every answer arrived')));
  });
  socket.resume();
  const rs = await all;
  for (const r of rs.slice(first ? 1 : 0)) {
    assert.equal(r.status, 200);
    assert.equal((bdecode(r.body).get('peers') as unknown[]).length, PEERS);
  }
  assert.equal((await t.stats.snapshot()).http!.paused, 0);
  socket.destroy();
}

const tcp = (port: number) =>
  new Promise<Socket>((resolve, reject) => {
    const s = netConnect({ port, host: '127.0.0.1' }, () => resolve(s));
    s.once('error', reject);
  });

describe('a client that pipelines and does not read', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'herald-bp-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('node:net: the connection is paused, not buffered', async () => {
    await withTracker({ http: ['127.0.0.1:0'], httpIo: 'node' }, async (t, h) => {
      await pipelineWithoutReading(t, await tcp(t.addresses().http[0].port), h);
    });
  });

  test('batched addon: the connection is paused, not buffered', {
    skip: loadHttpBatchAddon() === null ? 'the http_batch addon is not built' : false,
  }, async () => {
    await withTracker({ http: ['127.0.0.1:0'], httpIo: 'batched' }, async (t, h) => {
      await pipelineWithoutReading(t, await tcp(t.addresses().http[0].port), h);
    });
  });

  // Every answer a promise: the batched addon parks the connection for each, and neither it nor
  // the Node socket it moves to once the kernel's buffer is full holds more than MAX_UNSENT.
  for (const httpIo of ['batched', 'node'] as const)
    test(`${httpIo}, asynchronous store: the connection is paused, not buffered`, {
      skip:
        httpIo === 'batched' && loadHttpBatchAddon() === null ? 'the http_batch addon is not built' : false,
    }, async () => {
      await withTracker(
        { http: ['127.0.0.1:0'], httpIo },
        async (t, h) => {
          await pipelineWithoutReading(t, await tcp(t.addresses().http[0].port), h);
        },
        true,
      );
    });

  test('HTTPS: the connection is paused, not buffered', async () => {
    const { cert, key } = makeCert(dir, 'bp', 'herald-test');
    await withTracker({ http: [], https: ['127.0.0.1:0'], tlsCert: cert, tlsKey: key }, async (t, h) => {
      const port = t.addresses().https[0].port;
      const socket = await new Promise<Socket>((resolve, reject) => {
        const s = tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false }, () => resolve(s));
        s.once('error', reject);
      });
      await pipelineWithoutReading(t, socket, h);
    });
  });
});

/**
 * Pipelines `n` small announces in one write and reads every answer: the count of 200 answers
 * before the connection closed (or the 20 s guard).
 */
async function pipelineAndRead(port: number, n: number): Promise<number> {
  const socket = await tcp(port);
  const all = Array.from(
    { length: n },
    (_, i) =>
      `GET ${announcePath({ infoHash: hashOf(i % 64, 78), port: 7001 + (i % 7), left: i % 2 })} HTTP/1.1\r\nHost: x\r\n\r\n`,
  ).join('');
  const chunks: Buffer[] = [];
  return new Promise((resolve) => {
    const guard = setTimeout(() => socket.destroy(), 20_000);
    const done = () => {
      clearTimeout(guard);
      socket.destroy();
      resolve(responses(Buffer.concat(chunks)).filter((r) => r.status === 200).length);
    };
    socket.on('error', () => {});
    socket.on('data', (d) => {
      chunks.push(d);
      if (responses(Buffer.concat(chunks)).length >= n) done();
    });
    socket.on('close', done);
    socket.write(all);
  });
}

// Answers that take a round trip (another worker's swarm, Redis): the bytes a client pipelines
// meanwhile wait, and past a bound Herald stops reading them (as for a client that does not read)
// rather than closing the connection with requests unanswered.
describe('a client that pipelines more than Herald queues while answers are asynchronous', () => {
  /** About 216 KB of requests: more than the 128 KiB a connection may queue while it waits. */
  const N = 1000;
  for (const httpIo of ['node', 'batched'] as const)
    test(`--workers 2, ${httpIo}: every request is answered`, {
      skip:
        httpIo === 'batched' && loadHttpBatchAddon() === null ? 'the http_batch addon is not built' : false,
    }, async () => {
      const t = await startTracker(
        ['--workers', '2', '--http', '127.0.0.1:0', '--udp', 'off', '--http-io', httpIo],
        { ready: 'herald workers running' },
      );
      try {
        assert.equal(await pipelineAndRead(t.http[0].port, N), N);
      } finally {
        await t.stop();
      }
    });

  for (const [name, url] of redisTargets)
    for (const httpIo of ['node', 'batched'] as const)
      test(`${name} store, ${httpIo}: every request is answered`, {
        skip:
          httpIo === 'batched' && loadHttpBatchAddon() === null ? 'the http_batch addon is not built' : false,
      }, async () => {
        const prefix = testPrefix();
        const t = createTracker({
          http: ['127.0.0.1:0'],
          httpIo,
          udp: [],
          store: url,
          redisPrefix: prefix,
          logLevel: 'silent',
          databaseUrl: 'sqlite::memory:',
        });
        await t.start();
        try {
          assert.equal(await pipelineAndRead(t.addresses().http[0].port, N), N);
        } finally {
          await t.stop();
          await deleteKeys(url, prefix);
        }
      });
});
