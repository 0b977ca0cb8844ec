/**
 * `herald serve --workers N` (issue #13): N worker processes on the same ports (SO_REUSEPORT)
 * serve one set of swarms. Every test talks to a real Herald process over loopback, through many
 * connections and source ports, so that requests land on every worker; if the workers kept
 * swarms of their own, a peer would miss the peers of the other workers and these tests fail.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { shardOf } from '../../src/core/shard.ts';
import {
  type ConnectionId,
  parseResponse,
  writeAnnounceRequest,
  writeConnectRequest,
  writeScrapeRequest,
} from '../../src/protocol/udp/codec.ts';
import { type RunningTracker, startTracker } from '../e2e/tracker-process.ts';
import {
  announcePath,
  bdecode,
  hashOf,
  httpGet,
  rawExchange,
  splitResponses,
  udpClient,
} from '../helpers/clients.ts';
import { workerPids } from '../helpers/workers.ts';

/** Info hashes owned by each of `n` workers: `perShard` of each. */
function hashesByShard(n: number, perShard: number, salt: number): Buffer[][] {
  const out: Buffer[][] = Array.from({ length: n }, () => []);
  for (let i = 0; out.some((l) => l.length < perShard); i++) {
    const h = hashOf(i, salt);
    const s = shardOf(h, n);
    if (out[s].length < perShard) out[s].push(h);
  }
  return out;
}

async function announce(t: RunningTracker, path: string): Promise<Map<string, unknown>> {
  const r = await httpGet(t.http[0].port, '127.0.0.1', path);
  assert.equal(r.status, 200);
  const d = bdecode(r.body);
  assert.equal(d.get('failure reason'), undefined, String(d.get('failure reason')));
  return d;
}

// The batched UDP addon with the steering group (2 and 3 workers), and the node:dgram fallback,
// where each worker binds its own socket and UDP announces are handed over like HTTP ones; each
// with the swarms in memory every worker maps (worker_swarms = shared, open mode's default) and
// sharded by info hash (private mode's, and without the addon).
for (const [workers, udpIo, swarms] of [
  [2, 'batched', 'shared'],
  [3, 'batched', 'shared'],
  [2, 'dgram', 'shared'],
  [2, 'batched', 'sharded'],
  [3, 'batched', 'sharded'],
  [2, 'dgram', 'sharded'],
] as const) {
  describe(`herald serve --workers ${workers} --udp-io ${udpIo} --worker-swarms ${swarms}`, () => {
    let t: RunningTracker;
    before(async () => {
      t = await startTracker(
        [
          '--workers',
          String(workers),
          '--udp-io',
          udpIo,
          '--worker-swarms',
          swarms,
          '--http',
          '127.0.0.1:0',
          '--udp',
          '127.0.0.1:0',
          '--full-scrape',
          '--interval',
          '2',
          '--min-interval',
          '1',
          '--peer-timeout',
          '3',
        ],
        { ready: 'herald workers running' },
      );
    });
    after(() => t?.stop());

    test('every worker process runs and serves the same ports; UDP is steered by info hash', () => {
      assert.equal(workerPids(t.pid).length, workers);
      // CI builds the batched addon: the primary opened the UDP steering group.
      assert.match(t.stderr(), udpIo === 'batched' ? /"udpSteering":true/ : /"udpSteering":false/);
    });

    test('HTTP: peers announcing over many connections meet in one swarm per torrent, every shard', async () => {
      const shards = hashesByShard(workers, 1, 1);
      for (const [h] of shards) {
        const n = 12;
        // Each announce is its own connection: the kernel spreads them over the workers.
        for (let p = 0; p < n; p++)
          await announce(t, announcePath({ infoHash: h, port: 20_000 + p, left: 100 }));
        const last = await announce(t, announcePath({ infoHash: h, port: 20_000, left: 100, numwant: 50 }));
        assert.equal(last.get('incomplete'), n - 1, 'counts exclude the requester');
        assert.equal(
          (last.get('peers') as Buffer).length,
          (n - 1) * 6,
          'every other peer, from every worker',
        );
      }
    });

    test('HTTP through the batched addon: pipelined announces for every shard come back in request order', async () => {
      // Plain HTTP in every worker goes through the batched addon (an announce for another
      // worker's swarm parks its connection there), not node:net.
      assert.match(t.stderr(), /"httpIo":"batched"/);
      assert.doesNotMatch(t.stderr(), /"httpIo":"node"/);
      const shards = hashesByShard(workers, 1, 5).map(([h]) => h);
      const base = (s: number, conn: number) => 30_000 + s * 1000 + conn * 100;
      const rounds = 6;
      // Several connections at once, so that every worker receives some; on each, announces for
      // the swarms of every worker, pipelined in one write. Each answer names the peers announced
      // before it on that connection (a peer seeded first, then one per round), so an answer out
      // of order, or for another swarm, shows.
      await Promise.all(
        Array.from({ length: 6 }, async (_, conn) => {
          let req = '';
          for (let s = 0; s < shards.length; s++)
            req += `GET ${announcePath({ infoHash: shards[s], port: base(s, conn) + 99, left: 0 })} HTTP/1.1\r\nHost: x\r\n\r\n`;
          for (let i = 0; i < rounds; i++)
            for (let s = 0; s < shards.length; s++) {
              const last = i === rounds - 1 && s === shards.length - 1;
              const path = announcePath({
                infoHash: shards[s],
                port: base(s, conn) + i,
                left: 100,
                numwant: 200,
              });
              req += `GET ${path} HTTP/1.1\r\nHost: x\r\n${last ? 'Connection: close\r\n' : ''}\r\n`;
            }
          const rs = splitResponses(
            await rawExchange(t.http[0].port, '127.0.0.1', req, { timeoutMs: 10_000 }),
          );
          assert.equal(rs.length, shards.length * (rounds + 1));
          for (let i = 0; i < rounds; i++)
            for (let s = 0; s < shards.length; s++) {
              const d = bdecode(rs[shards.length * (i + 1) + s].body);
              assert.equal(d.get('failure reason'), undefined);
              const raw = d.get('peers') as Buffer;
              const mine = new Set<number>();
              for (let k = 0; k + 6 <= raw.length; k += 6) {
                const port = raw.readUInt16BE(k + 4);
                if (port >= base(s, conn) && port < base(s, conn) + 100) mine.add(port - base(s, conn));
              }
              const want = new Set([99, ...Array.from({ length: i }, (_, j) => j)]);
              assert.deepEqual(mine, want, `connection ${conn}, round ${i}, shard ${s}`);
            }
        }),
      );
    });

    test('HTTP: announces for every shard on connections moved off the addon (node:http, a Node socket)', async () => {
      // Another worker's answer comes back without a promise to the addon; a connection that
      // node:http holds (it asked for /health first) or that moved to a Node socket (its first
      // head arrived in two pieces) waits for the same answer through a promise.
      // Fresh swarms for each request list: each answer counts no other peer.
      const announces = (base: number) =>
        hashesByShard(workers, 1, base)
          .map(([h], s) => {
            const last = s === workers - 1;
            const path = announcePath({ infoHash: h, port: base + s, left: 100 });
            return `GET ${path} HTTP/1.1\r\nHost: x\r\n${last ? 'Connection: close\r\n' : ''}\r\n`;
          })
          .join('');
      const check = (rs: ReturnType<typeof splitResponses>, what: string) => {
        assert.equal(rs.length, workers, what);
        for (const r of rs) {
          const d = bdecode(r.body);
          assert.equal(d.get('failure reason'), undefined, `${what}: ${String(d.get('failure reason'))}`);
          assert.equal(d.get('incomplete'), 0, what);
        }
      };
      for (let conn = 0; conn < 6; conn++) {
        const web = splitResponses(
          await rawExchange(
            t.http[0].port,
            '127.0.0.1',
            `GET /health HTTP/1.1\r\nHost: x\r\n\r\n${announces(40_000 + conn * 10)}`,
            { timeoutMs: 10_000 },
          ),
        );
        assert.equal(web[0].status, 200);
        check(web.slice(1), `after /health, connection ${conn}`);
        const split = await new Promise<Buffer>((resolve, reject) => {
          const chunks: Buffer[] = [];
          const sock = connect({ port: t.http[0].port, host: '127.0.0.1' });
          sock.on('data', (d) => chunks.push(d));
          sock.on('error', reject);
          sock.on('close', () => resolve(Buffer.concat(chunks)));
          const all = announces(41_000 + conn * 10);
          sock.write(all.slice(0, 20));
          setTimeout(() => sock.write(all.slice(20)), 50);
        });
        check(splitResponses(split), `a head in two pieces, connection ${conn}`);
      }
    });

    test('HTTP: completed counts once, stopped removes the peer, whichever worker receives them', async () => {
      const shards = hashesByShard(workers, 1, 2);
      for (const [h] of shards) {
        await announce(t, announcePath({ infoHash: h, port: 21_000, left: 100 }));
        await announce(t, announcePath({ infoHash: h, port: 21_001, left: 100 }));
        for (let i = 0; i < 4; i++)
          await announce(t, announcePath({ infoHash: h, port: 21_001, left: 0, event: 'completed' }));
        let d = await announce(t, announcePath({ infoHash: h, port: 21_002, left: 100 }));
        assert.equal(d.get('complete'), 1);
        assert.equal(d.get('incomplete'), 1);
        assert.equal(d.get('downloaded'), 1, 'a completion is counted once per peer');
        await announce(t, announcePath({ infoHash: h, port: 21_000, left: 100, event: 'stopped' }));
        d = await announce(t, announcePath({ infoHash: h, port: 21_002, left: 100 }));
        assert.equal(d.get('incomplete'), 0, 'the stopped peer is gone from the one swarm');
      }
    });

    test('HTTP scrape of hashes owned by different workers, and the full scrape, list every shard', async () => {
      const shards = hashesByShard(workers, 1, 3);
      for (const [h] of shards) await announce(t, announcePath({ infoHash: h, port: 22_000, left: 0 }));
      // Percent-encode the raw bytes (not UTF-8).
      const raw = shards.map(
        ([h]) => `info_hash=${[...h].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('')}`,
      );
      const r = await httpGet(t.http[0].port, '127.0.0.1', `/scrape?${raw.join('&')}`);
      const files = bdecode(r.body).get('files') as Map<string, Map<string, unknown>>;
      for (const [h] of shards) assert.equal(files.get(h.toString('latin1'))?.get('complete'), 1);
      const full = await httpGet(t.http[0].port, '127.0.0.1', '/scrape');
      const all = bdecode(full.body).get('files') as Map<string, Map<string, unknown>>;
      for (const [h] of shards) assert.ok(all.has(h.toString('latin1')), 'full scrape holds every shard');
    });

    test('UDP: connection ids are valid on every worker; announces from many sockets meet in one swarm', async () => {
      const buf = Buffer.alloc(2048);
      const shards = hashesByShard(workers, 1, 4);
      const port = t.udp[0].port;
      let tid = 1;
      for (const [h] of shards) {
        const clients = await Promise.all(Array.from({ length: 8 }, () => udpClient(4)));
        let last: ReturnType<typeof parseResponse> | null = null;
        for (const [i, c] of clients.entries()) {
          const cr = await c.request(buf.subarray(0, writeConnectRequest(buf, tid++)), port);
          assert.ok(cr);
          const id = (parseResponse(cr, cr.length) as { connectionId: ConnectionId }).connectionId;
          const n = writeAnnounceRequest(buf, {
            connectionId: id,
            transactionId: tid++,
            infoHash: h,
            peerId: Buffer.alloc(20, i + 1),
            downloaded: 0,
            left: 10,
            uploaded: 0,
            event: 2,
            numWant: 50,
            port: 23_000 + i,
            urlData: null,
          });
          const ar = await c.request(buf.subarray(0, n), port);
          assert.ok(ar, 'announce answered');
          last = parseResponse(ar, ar.length);
          assert.equal(last.action, 1, JSON.stringify(last));
          if (i === clients.length - 1) {
            const sn = writeScrapeRequest(
              buf,
              id,
              tid++,
              shards.map(([x]) => x),
            );
            const sr = await c.request(buf.subarray(0, sn), port);
            assert.ok(sr);
            const s = parseResponse(sr, sr.length) as { action: number; entries: { incomplete: number }[] };
            assert.equal(s.action, 2);
            const at = shards.findIndex(([x]) => x === h);
            assert.equal(s.entries[at].incomplete, clients.length, 'scrape across workers');
          }
        }
        const a = last as { leechers: number; peers: Uint8Array };
        assert.equal(a.leechers, clients.length - 1);
        assert.equal(a.peers.length, (clients.length - 1) * 6);
        for (const c of clients) c.close();
      }
    });

    test('/stats adds up every worker', async () => {
      const r = await httpGet(t.http[0].port, '127.0.0.1', '/stats');
      const s = JSON.parse(r.body.toString());
      assert.equal(s.workers, workers);
      // Sum of the tests above, whichever worker answered the /stats request.
      assert.ok(s.swarm.torrents >= workers * 3, JSON.stringify(s.swarm));
      assert.ok(s.announces.http >= workers * 13);
      const m = (await httpGet(t.http[0].port, '127.0.0.1', '/metrics')).body.toString();
      const torrents = Number(/^herald_torrents (\d+)$/m.exec(m)?.[1]);
      assert.ok(torrents >= workers * 3, '/metrics adds up every worker too');
    });

    test('peers that stop announcing expire in every shard', async () => {
      const shards = hashesByShard(workers, 1, 5);
      for (const [h] of shards) await announce(t, announcePath({ infoHash: h, port: 24_000, left: 1 }));
      await new Promise((r) => setTimeout(r, 5500));
      for (const [h] of shards) {
        const d = await announce(t, announcePath({ infoHash: h, port: 24_001, left: 1 }));
        assert.equal(d.get('incomplete'), 0, 'the silent peer expired');
      }
    });

    test('a killed worker is restarted; meanwhile /health says degraded and the others keep answering', async () => {
      // What a death loses: sharded, the swarms of the dead worker's shard (memory), until their
      // peers announce again; shared, nothing (the swarms are in memory the primary keeps). A peer
      // in every shard, before the kill:
      const held = hashesByShard(workers, 1, 7);
      for (const [h] of held) await announce(t, announcePath({ infoHash: h, port: 26_000, left: 1 }));
      const before = workerPids(t.pid);
      const victim = before[before.length - 1];
      process.kill(victim, 'SIGKILL');
      // Which worker it was (the primary logs it), and the live workers' swarms meanwhile: intact.
      let victimIndex = -1;
      for (let i = 0; i < 100 && victimIndex < 0; i++) {
        const m = /"worker":(\d+),"code":null,"signal":"SIGKILL","msg":"worker died/.exec(t.stderr());
        if (m) victimIndex = Number(m[1]);
        else await new Promise((res) => setTimeout(res, 20));
      }
      assert.ok(victimIndex >= 0, 'the primary logged the death');
      // Shared, the dead worker's swarms too: every worker answers every swarm.
      for (const [i, [h]] of held.entries()) {
        if (i === victimIndex && swarms === 'sharded') continue;
        const d = await announce(t, announcePath({ infoHash: h, port: 26_002, left: 1 }));
        const what =
          i === victimIndex ? 'shared swarms outlive a dead worker' : 'a live worker keeps its swarms';
        assert.equal(d.get('incomplete'), 1, what);
      }
      let degraded = false;
      // Connections the kernel had queued on the dead worker's listener are reset (SO_REUSEPORT):
      // a client sees one failed request and retries.
      const health = () =>
        httpGet(t.http[0].port, '127.0.0.1', '/health').catch(() => ({ status: 0, body: Buffer.alloc(0) }));
      for (let i = 0; i < 100 && !degraded; i++) {
        const r = await health();
        if (r.status === 503) {
          degraded = true;
          assert.match(r.body.toString(), /degraded/);
        }
        await new Promise((res) => setTimeout(res, 20));
      }
      assert.ok(degraded, '/health reported the missing worker');
      // Back to all workers, healthy.
      let healthy = false;
      for (let i = 0; i < 300 && !healthy; i++) {
        await new Promise((res) => setTimeout(res, 100));
        const pids = workerPids(t.pid);
        const r = await health();
        healthy = pids.length === workers && !pids.includes(victim) && r.status === 200;
      }
      assert.ok(healthy, 'the worker was restarted');
      assert.match(t.stderr(), /worker died: restarting it/);
      const shards = hashesByShard(workers, 1, 6);
      for (const [h] of shards) {
        await announce(t, announcePath({ infoHash: h, port: 25_000, left: 1 }));
        const d = await announce(t, announcePath({ infoHash: h, port: 25_001, left: 1 }));
        assert.equal(d.get('incomplete'), 1);
      }
      // Sharded, the restarted worker's shard lost its peer (shared: checked while it was down).
      if (swarms === 'sharded') {
        const d = await announce(t, announcePath({ infoHash: held[victimIndex][0], port: 26_001, left: 1 }));
        assert.equal(d.get('incomplete'), 0, "the dead worker's swarms are rebuilt from the next announces");
      }
    });
  });
}
