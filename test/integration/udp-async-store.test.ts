/**
 * UDP with a store that answers asynchronously (as a shared store such as Redis would): the
 * frontend then uses `node:dgram` and answers each request when its promise settles. The UDP
 * path reads every datagram into one reused packet, so this checks that pipelined requests whose
 * answers come back out of order each get their own answer: their own transaction id, their own
 * swarm's counts and peers.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { AnnounceResult } from '../../src/core/types.ts';
import { createTracker, type Tracker } from '../../src/index.ts';
import {
  type ConnectionId,
  parseResponse,
  writeAnnounceRequest,
  writeConnectRequest,
  writeScrapeRequest,
} from '../../src/protocol/udp/codec.ts';
import { MemorySwarmStore } from '../../src/store/memory/memory-store.ts';
import type { SwarmStore } from '../../src/swarm/types.ts';
import { hashOf, udpClient } from '../helpers/clients.ts';

/**
 * The memory store behind promises: each call is made 0-9 ms later, in no particular order, as a
 * network store would read its request only after the frontend has moved on to other packets.
 */
function asyncStore(): SwarmStore {
  const memory = new MemorySwarmStore({ peerTimeout: 1800 });
  let n = 0;
  const later = <T>(call: () => T) =>
    new Promise<T>((resolve) => setTimeout(() => resolve(call()), (n++ * 7) % 10));
  return new Proxy(memory, {
    get(target, key) {
      if (key === 'synchronous') return false;
      const v = Reflect.get(target, key, target);
      if (key === 'announce')
        return (...args: unknown[]) =>
          later(() => {
            const r = (v as (...a: unknown[]) => AnnounceResult).apply(target, args);
            // An asynchronous store owns the peers it returns (AnnounceResult.peers).
            return { ...r, peers: r.peers.slice(0, r.peerCount * 6) };
          });
      if (key === 'scrape')
        return (...args: unknown[]) => later(() => (v as (...a: unknown[]) => unknown).apply(target, args));
      return typeof v === 'function' ? v.bind(target) : v;
    },
  }) as unknown as SwarmStore;
}

/**
 * A store that reads each request before `announce` returns (`readsRequestAtOnce`, as the sharded
 * store of workers does: it copies a request for another worker into its frame) and answers some
 * announces (and scrapes) at once and others later (odd fourth hash byte: 0-9 ms later, as another worker
 * would). `seen` collects every request object it is handed.
 */
function atOnceStore(seen: Set<object>): SwarmStore {
  const memory = new MemorySwarmStore({ peerTimeout: 1800 });
  let n = 0;
  return {
    synchronous: false,
    readsRequestAtOnce: true,
    announce(req, now) {
      seen.add(req);
      if ((req.infoHash[3] & 1) === 0) return memory.announce(req, now) as AnnounceResult;
      // Everything needed is copied now: the caller may reuse the request and its arrays.
      const copy = { ...req, infoHash: req.infoHash.slice(), peerId: req.peerId.slice(), ip: req.ip.slice() };
      return new Promise<AnnounceResult>((resolve) =>
        setTimeout(
          () => {
            const r = memory.announce(copy, now) as AnnounceResult;
            resolve({ ...r, peers: r.peers.slice(0, r.peerCount * 6) });
          },
          (n++ * 7) % 10,
        ),
      );
    },
    scrape: (hashes) =>
      (hashes[0][3] & 1) === 0
        ? memory.scrape(hashes)
        : new Promise((resolve) => setTimeout(() => resolve(memory.scrape(hashes)), (n++ * 7) % 10)),
    scrapeAll: () => memory.scrapeAll(),
    stats: () => memory.stats(),
    sweep: (now, budget) => memory.sweep(now, budget),
    close: () => memory.close(),
  };
}

// Both transports: dgram answers when the promise settles; the batched addon sends a reply that
// came after its batch on its own (sendTo), to the address it came from.
for (const io of ['batched', 'dgram'] as const) describe(`asynchronous store over ${io}`, () => suite(io));

// A store that reads requests at once (workers): one request object serves every datagram, as
// with a synchronous store (nothing allocated per announce), and the answers that come later are
// still each their own request's.
for (const io of ['batched', 'dgram'] as const)
  describe(`store reading requests at once over ${io}`, () => {
    const seen = new Set<object>();
    suite(io, () => atOnceStore(seen));
    test('one request object served every announce', () => {
      assert.equal(seen.size, 1);
    });
  });

function suite(io: 'batched' | 'dgram', store: () => SwarmStore = asyncStore) {
  let tracker: Tracker;
  let port: number;

  before(async () => {
    tracker = createTracker(
      { http: [], udp: ['127.0.0.1:0'], logLevel: 'silent', databaseUrl: 'sqlite::memory:', udpIo: io },
      { store: store() },
    );
    await tracker.start();
    port = tracker.addresses().udp[0].port;
  });
  after(() => tracker.stop());

  /** Sends every datagram at once and collects replies by transaction id until all came. */
  async function burst(
    c: Awaited<ReturnType<typeof udpClient>>,
    datagrams: Buffer[],
    tidOf: (reply: Buffer) => number,
  ): Promise<Map<number, Buffer>> {
    const replies = new Map<number, Buffer>();
    const order: number[] = [];
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${replies.size} of ${datagrams.length} replies`)), 5000);
      c.socket.on('message', (m) => {
        const tid = tidOf(m);
        assert.ok(!replies.has(tid), `one reply per request (tid ${tid})`);
        replies.set(tid, m);
        order.push(tid);
        if (replies.size === datagrams.length) {
          clearTimeout(t);
          resolve();
        }
      });
      for (const d of datagrams) c.socket.send(d, port, '127.0.0.1');
    });
    c.socket.removeAllListeners('message');
    // The store's delays reorder the answers: the test is only meaningful if they did.
    assert.notDeepEqual(
      order,
      [...order].sort((a, b) => a - b),
      'answers came back out of order',
    );
    return replies;
  }

  test('UDP with an asynchronous store: out-of-order answers each carry their own request', async () => {
    assert.equal(tracker.addresses().udp.length, 1);
    const c = await udpClient(4);
    try {
      const buf = Buffer.alloc(2048);
      const n = writeConnectRequest(buf, 1);
      const cr = parseResponse((await c.request(buf.subarray(0, n), port))!, 16) as {
        connectionId: ConnectionId;
      };
      const id = cr.connectionId;
      const announce = (tid: number, hash: number, peerPort: number, left: number) => {
        const b = Buffer.alloc(98);
        writeAnnounceRequest(b, {
          connectionId: id,
          transactionId: tid,
          infoHash: hashOf(hash),
          peerId: Buffer.alloc(20, peerPort & 0xff),
          downloaded: 0,
          left,
          uploaded: 0,
          event: 2,
          numWant: 50,
          port: peerPort,
        });
        return b;
      };
      const tidOf = (m: Buffer) => m.readUInt32BE(4);
      // Swarm k (k = 1..12) gets k seeders on ports 10000 + 100k + j, all in one pipelined burst.
      const seeds: Buffer[] = [];
      let tid = 100;
      for (let k = 1; k <= 12; k++)
        for (let j = 0; j < k; j++) seeds.push(announce(tid++, 500 + k, 10_000 + 100 * k + j, 0));
      const seeded = await burst(c, seeds, tidOf);
      assert.equal(seeded.size, seeds.length);
      // Then one leecher announces to every swarm at once; each answer must be its swarm's.
      const asks = Array.from({ length: 12 }, (_, i) =>
        announce(1000 + i + 1, 500 + i + 1, 20_000 + i, 1000),
      );
      const answers = await burst(c, asks, tidOf);
      for (let k = 1; k <= 12; k++) {
        const r = parseResponse(answers.get(1000 + k)!, answers.get(1000 + k)!.length, 4) as {
          action: number;
          seeders: number;
          leechers: number;
          peers: Uint8Array;
        };
        assert.equal(r.action, 1, `swarm ${k}`);
        assert.equal(r.seeders, k, `swarm ${k}: its own seeder count`);
        assert.equal(r.leechers, 0);
        const ports = new Set<number>();
        for (let o = 0; o < r.peers.length; o += 6) ports.add(Buffer.from(r.peers).readUInt16BE(o + 4));
        assert.deepEqual(
          [...ports].sort((a, b) => a - b),
          Array.from({ length: k }, (_, j) => 10_000 + 100 * k + j),
          `swarm ${k}: exactly its own seeders`,
        );
      }
      // Scrapes of different swarms, pipelined: each answer has its own swarm's counts.
      const scrapes = Array.from({ length: 12 }, (_, i) => {
        const b = Buffer.alloc(36);
        writeScrapeRequest(b, id, 2000 + i + 1, [hashOf(500 + i + 1)]);
        return b;
      });
      const scraped = await burst(c, scrapes, tidOf);
      for (let k = 1; k <= 12; k++) {
        const r = parseResponse(scraped.get(2000 + k)!, 20) as {
          entries: { complete: number; incomplete: number }[];
        };
        assert.deepEqual([r.entries[0].complete, r.entries[0].incomplete], [k, 1], `scrape of swarm ${k}`);
      }
    } finally {
      c.close();
    }
  });
}
