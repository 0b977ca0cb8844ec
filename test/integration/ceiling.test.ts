/**
 * The memory ceiling (max_peers, max_torrents) over real sockets: HTTP and UDP (both transports)
 * refuse a new peer or a new torrent with "tracker is full, try later" (HTTP adds BEP 31
 * `retry in`), never an internal error, while the peers already held keep announcing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ManualClock } from '../../src/core/clock.ts';
import { Errors } from '../../src/core/errors.ts';
import { shardOf } from '../../src/core/shard.ts';
import { createTracker, type Tracker } from '../../src/index.ts';
import {
  type ConnectionId,
  parseResponse,
  writeAnnounceRequest,
  writeConnectRequest,
} from '../../src/protocol/udp/codec.ts';
import { type RunningTracker, startTracker } from '../e2e/tracker-process.ts';
import {
  type AnnounceFields,
  announcePath,
  bdecode,
  hashOf,
  httpGet,
  text,
  udpClient,
} from '../helpers/clients.ts';
import { udpTracker } from '../helpers/udp-tracker.ts';

for (const io of ['batched', 'dgram'] as const)
  describe(`memory ceiling over HTTP and UDP (${io})`, () => {
    let tracker: Tracker;
    let httpPort: number;
    let udpPort: number;
    const clock = new ManualClock(1_800_000_000);
    const x = hashOf(1, 50);
    const y = hashOf(2, 50);
    const z = hashOf(3, 50);

    before(async () => {
      let port4: number;
      ({ tracker, port4 } = await udpTracker(io, clock, {
        http: ['127.0.0.1:0'],
        maxPeers: 3,
        maxTorrents: 2,
      }));
      httpPort = tracker.addresses().http[0].port;
      udpPort = port4;
    });
    after(() => tracker.stop());

    const http = async (f: AnnounceFields) => {
      const r = await httpGet(httpPort, '127.0.0.1', announcePath(f));
      assert.equal(r.status, 200);
      return bdecode(r.body);
    };

    const buf = Buffer.alloc(256);
    let tid = 1;
    const udp = async (
      id: ConnectionId,
      c: Awaited<ReturnType<typeof udpClient>>,
      infoHash: Uint8Array,
      port: number,
      event: 0 | 1 | 2 | 3 = 0,
    ) => {
      const n = writeAnnounceRequest(buf, {
        connectionId: id,
        transactionId: tid++,
        infoHash,
        peerId: Buffer.alloc(20, port),
        downloaded: 0,
        left: 10,
        uploaded: 0,
        event,
        numWant: 10,
        port,
      });
      const reply = await c.request(buf.subarray(0, n), udpPort);
      assert.ok(reply);
      return parseResponse(reply, reply.length);
    };

    test('a new peer or torrent is refused when full; held peers announce; a stop makes room', async () => {
      const c = await udpClient(4);
      try {
        const cr = parseResponse(
          (await c.request(buf.subarray(0, writeConnectRequest(buf, 0)), udpPort))!,
          16,
        );
        assert.ok(cr.action === 0);
        const id = cr.connectionId;
        // Three peers in two torrents: full on both counts.
        assert.equal((await http({ infoHash: x, port: 6001 })).get('failure reason'), undefined);
        assert.equal((await http({ infoHash: x, port: 6002 })).get('failure reason'), undefined);
        assert.equal((await udp(id, c, y, 6003)).action, 1);
        const internal = tracker.service.counters.internalErrors;

        // HTTP: a new peer in a held torrent, and a new torrent.
        for (const f of [
          { infoHash: x, port: 6004 },
          { infoHash: z, port: 6004 },
        ]) {
          const d = await http(f);
          assert.equal(text(d.get('failure reason')), Errors.trackerFull.message);
          assert.equal(d.get('retry in'), 20, 'BEP 31 retry in: the interval, in minutes');
        }
        // UDP: the same refusals as BEP 15 errors.
        for (const h of [y, z]) {
          const r = await udp(id, c, h, 6005);
          assert.ok(r.action === 3 && r.message === Errors.trackerFull.message);
        }
        // The peers already held keep announcing, over both protocols.
        assert.equal(
          (await http({ infoHash: x, port: 6001, event: 'completed', left: 0 })).get('failure reason'),
          undefined,
        );
        assert.equal((await udp(id, c, y, 6003, 2)).action, 1);
        assert.equal((await tracker.stats.snapshot()).refusedFull, 4);
        assert.equal(tracker.service.counters.internalErrors, internal, 'no internal error');

        // A stop frees a place: the refused UDP peer gets in.
        assert.equal(
          (await http({ infoHash: x, port: 6002, event: 'stopped' })).get('failure reason'),
          undefined,
        );
        assert.equal((await udp(id, c, y, 6005)).action, 1);
        const st = await tracker.service.store.stats();
        assert.deepEqual([st.peers, st.torrents], [3, 2]);
      } finally {
        c.close();
      }
    });
  });

describe('memory ceiling with --workers 2', () => {
  let t: RunningTracker;
  before(async () => {
    t = await startTracker(
      ['--workers', '2', '--http', '127.0.0.1:0', '--udp', 'off', '--max-peers', '4', '--max-torrents', '2'],
      { ready: 'herald workers running' },
    );
  });
  after(() => t?.stop());

  test('the whole tracker holds max_peers peers in max_torrents torrents, as one process does', async () => {
    // Torrents of each worker's shard (swarms are sharded by info hash).
    const byShard: Buffer[][] = [[], []];
    for (let i = 0; byShard.some((l) => l.length < 2); i++) {
      const h = hashOf(i, 51);
      if (byShard[shardOf(h, 2)].length < 2) byShard[shardOf(h, 2)].push(h);
    }
    const [a, c] = byShard[0];
    const [b, d] = byShard[1];
    const announce = async (infoHash: Uint8Array, port: number) => {
      const r = await httpGet(t.http[0].port, '127.0.0.1', announcePath({ infoHash, port }));
      assert.equal(r.status, 200);
      const f = bdecode(r.body).get('failure reason');
      return f === undefined ? 'ok' : text(f);
    };
    // Two torrents (one per worker), two peers each: four peers, full on both counts.
    for (const [h, port] of [
      [a, 6101],
      [a, 6102],
      [b, 6103],
      [b, 6104],
    ] as const)
      assert.equal(await announce(h, port), 'ok');
    // A fifth peer and a third torrent are refused, whichever worker owns them.
    assert.equal(await announce(a, 6105), Errors.trackerFull.message);
    assert.equal(await announce(b, 6105), Errors.trackerFull.message);
    assert.equal(await announce(c, 6106), Errors.trackerFull.message);
    assert.equal(await announce(d, 6106), Errors.trackerFull.message);
    const stats = JSON.parse((await httpGet(t.http[0].port, '127.0.0.1', '/stats')).body.toString());
    assert.deepEqual([stats.total.peers, stats.total.torrents], [4, 2]);
    assert.equal(stats.refusedFull, 4, '/stats counts the refusals, whichever worker owns the swarm');
  });
});

test('a max_peers whose worst case does not fit the JavaScript heap is warned about at start', async () => {
  const warnings: string[] = [];
  const logger = {
    trace() {},
    debug() {},
    info() {},
    warn: (msg: string) => void warnings.push(msg),
    error() {},
    child: () => logger,
  };
  for (const maxPeers of [1000, 1_000_000_000]) {
    const t = createTracker(
      { http: [], udp: ['127.0.0.1:0'], maxPeers, databaseUrl: 'sqlite::memory:', portal: 'off' },
      { logger },
    );
    await t.start();
    await t.stop();
  }
  assert.deepEqual(
    warnings.filter((w) => w.startsWith('max_peers')),
    ['max_peers may not fit in the JavaScript heap: lower it, or raise node --max-old-space-size'],
  );
});
