/**
 * WebTorrent peer limits over every worker of `herald serve --workers 2`: `peers_per_member` and
 * `peers_per_torrent` count a member's WebSocket peers wherever their sockets are held, and its
 * HTTP peers with them. Before, a WebSocket announce was accounted by the worker holding the
 * socket, over that worker's baselines only, so a member whose sockets landed on two workers
 * could hold twice the limits (and a WebTorrent peer did not count against an HTTP one).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { shardOf } from '../../src/core/shard.ts';
import { encode } from '../../src/protocol/bencode/index.ts';
import { PRIVATE_SERVE, startTracker } from '../e2e/tracker-process.ts';
import { announcer, text } from '../helpers/clients.ts';
import { privateTorrentFile } from '../helpers/libtorrent.ts';
import { adminJson } from '../helpers/private-instances.ts';
import { holderOf, workerPids } from '../helpers/workers.ts';
import { id20, Peer } from '../helpers/ws-peer.ts';

const TOO_MANY_MEMBER = /too many peers for your account/;
const TOO_MANY_TORRENT = /too many clients on this torrent/;

const refusal = (m: Record<string, unknown>) => String(m['failure reason'] ?? '');
const ok = (m: Record<string, unknown>, what: string) => assert.equal(m['failure reason'], undefined, what);

/**
 * `herald serve --workers 2` in private mode with `args`, three private torrents and two members
 * (`ann`, `bo`), each with one socket held by each worker, known to both workers; `run` gets them
 * and the tracker is stopped after it.
 */
async function withTracker(
  args: string[],
  run: (w: {
    port: number;
    hashes: Buffer[];
    ann: { passkey: string; sockets: [Peer, Peer] };
    bo: { passkey: string; sockets: [Peer, Peer] };
  }) => Promise<void>,
): Promise<void> {
  const t = await startTracker([...PRIVATE_SERVE, '--workers', '2', '--early-announce', 'off', ...args], {
    ready: 'herald workers running',
  });
  const open: Peer[] = [];
  try {
    const port = t.http[0].port;
    const pids = workerPids(t.pid);
    assert.equal(pids.length, 2);
    const hashes: Buffer[] = [];
    for (let i = 1; i <= 3; i++) {
      const file = join(t.dataDir, `wsl${i}.torrent`);
      const info = { length: 1000 * i, name: `wsl${i}`, 'piece length': 16384, pieces: Buffer.alloc(20, i) };
      writeFileSync(file, encode({ announce: 'http://127.0.0.1/announce', info: { ...info, private: 1 } }));
      const added = adminJson<{ info_hash: string }>(t.admin(['torrent', 'add', file, '--json']));
      hashes.push(Buffer.from(added.info_hash, 'hex'));
    }
    let serial = 0;
    /** One socket of the member held by each worker (sockets are opened until both hold one). */
    const socketsOnEveryWorker = async (passkey: string): Promise<[Peer, Peer]> => {
      const byWorker = new Map<number, Peer>();
      for (let tries = 0; byWorker.size < 2; tries++) {
        assert.ok(tries < 40, 'sockets never reached both workers');
        const p = new Peer(`ws://127.0.0.1:${port}/announce/${passkey}`, id20(0x77736c6d, serial++));
        open.push(p);
        await p.opened();
        p.worker = await holderOf(pids, port, p.localPort);
        if (byWorker.has(p.worker)) p.ws.terminate();
        else byWorker.set(p.worker, p);
      }
      return [...byWorker.values()] as [Peer, Peer];
    };
    const member = async (name: string) => {
      const passkey = adminJson<{ passkey: string }>(t.admin(['member', 'add', name, '--json'])).passkey;
      return { passkey, sockets: await socketsOnEveryWorker(passkey) };
    };
    const ann = await member('ann');
    const bo = await member('bo');
    // Both workers know the members and the torrents (policy_refresh 1 s): a stop is answered.
    for (const h of hashes)
      for (const p of [...ann.sockets, ...bo.sockets])
        for (let i = 0; ; i++) {
          const r = await p.announce(h.toString('latin1'), {
            event: 'stopped',
            left: 0,
            peer_id: id20(1, 1, 99),
          });
          if (r['failure reason'] === undefined) break;
          assert.ok(i < 75, `torrent known: ${refusal(r)}`);
          await new Promise((r) => setTimeout(r, 200));
        }
    await run({ port, hashes, ann, bo });
  } finally {
    for (const p of open) p.ws.terminate();
    await t.stop();
  }
}

test(
  '--workers 2: WebSocket peers on sockets held by different workers count toward peers_per_member and peers_per_torrent, with HTTP peers',
  {
    timeout: 120_000,
  },
  () =>
    withTracker(
      ['--peers-per-member', '2', '--peers-per-torrent', '1'],
      async ({ port, hashes, ann, bo }) => {
        const [a, b, c] = hashes.map((h) => h.toString('latin1'));
        const [x, y] = ann.sockets;
        // peers_per_torrent (1): a second peer of the member on torrent A, through the other worker.
        ok(await x.announce(a, { event: 'started' }), 'peer of x on A');
        assert.match(refusal(await y.announce(a, { event: 'started' })), TOO_MANY_TORRENT);
        // peers_per_member (2): x on A, y on B; a third peer is refused through either worker.
        ok(await y.announce(b, { event: 'started' }), 'peer of y on B');
        assert.match(
          refusal(await y.announce(c, { event: 'started', peer_id: id20(2, 2, 2) })),
          TOO_MANY_MEMBER,
        );
        assert.match(
          refusal(await x.announce(c, { event: 'started', peer_id: id20(3, 3, 3) })),
          TOO_MANY_MEMBER,
        );
        ok(await x.announce(a, {}), 'a known peer announces on');
        // A stop frees the place, whichever worker the next peer is on.
        ok(await x.announce(a, { event: 'stopped' }), 'x stops on A');
        ok(
          await y.announce(c, { event: 'started', peer_id: id20(2, 2, 2) }),
          'a stopped peer freed its place',
        );
        assert.match(refusal(await x.announce(a, { event: 'started' })), TOO_MANY_MEMBER);

        // A socket that closes frees its peers' places at once (y holds two: B, and C under another id).
        y.ws.terminate();
        await y.closed;
        for (let i = 0; ; i++) {
          const r = await x.announce(a, { event: 'started' });
          if (r['failure reason'] === undefined) break;
          assert.ok(i < 50, `places of a closed socket freed: ${refusal(r)}`);
          await new Promise((r) => setTimeout(r, 100));
        }
        ok(await x.announce(b, { event: 'started', peer_id: id20(5, 5, 5) }), 'the second place is free too');
        assert.match(
          refusal(await x.announce(c, { event: 'started', peer_id: id20(6, 6, 6) })),
          TOO_MANY_MEMBER,
        );

        // Mixed: an HTTP peer and a WebTorrent peer of one member.
        const [bx, by] = bo.sockets;
        const http = announcer(port, bo.passkey, 9800, 'wsmix', { left: 1000 });
        ok(Object.fromEntries(await http(hashes[0], 1, { event: 'started' })), 'HTTP peer on A');
        assert.match(refusal(await bx.announce(a, { event: 'started' })), TOO_MANY_TORRENT);
        assert.match(refusal(await by.announce(a, { event: 'started' })), TOO_MANY_TORRENT);
        ok(await bx.announce(b, { event: 'started' }), 'WebTorrent peer on B');
        assert.match(refusal(await by.announce(c, { event: 'started' })), TOO_MANY_MEMBER);
        assert.match(
          refusal(await bx.announce(c, { event: 'started', peer_id: id20(4, 4, 4) })),
          TOO_MANY_MEMBER,
        );
        for (let i = 0; i < 4; i++)
          assert.match(
            text((await http(hashes[2], 2, { event: 'started' })).get('failure reason')),
            TOO_MANY_MEMBER,
          );
      },
    ),
);

test(
  '--workers 2: a class with one download slot leeches one torrent over every worker, WebSocket and HTTP peers together',
  {
    timeout: 120_000,
  },
  () =>
    withTracker(['--member-classes', 'User: slots=1'], async ({ port, hashes, ann, bo }) => {
      const [a, b] = hashes.map((h) => h.toString('latin1'));
      const SLOTS = /download slots full/;
      const [x, y] = ann.sockets;
      ok(await x.announce(a, { event: 'started' }), 'leeching A');
      assert.match(refusal(await y.announce(b, { event: 'started' })), SLOTS);
      assert.match(refusal(await x.announce(b, { event: 'started', peer_id: id20(7, 7, 7) })), SLOTS);
      ok(await y.announce(a, { event: 'started' }), 'another client on A: no new leeching torrent');
      ok(await y.announce(b, { event: 'started', left: 0, peer_id: id20(8, 8, 8) }), 'seeding B');
      // Mixed: a WebTorrent leecher holds the slot against an HTTP one, and the other way round.
      const [bx, by] = bo.sockets;
      const http = announcer(port, bo.passkey, 9900, 'wsslt', { left: 1000 });
      ok(await bx.announce(a, { event: 'started' }), 'WebTorrent leecher on A');
      assert.match(text((await http(hashes[1], 1, { event: 'started' })).get('failure reason')), SLOTS);
      ok(await bx.announce(a, { event: 'stopped' }), 'the WebTorrent leecher stops');
      ok(Object.fromEntries(await http(hashes[1], 1, { event: 'started' })), 'HTTP leecher on B');
      assert.match(refusal(await by.announce(a, { event: 'started' })), SLOTS);
    }),
);

test('--workers 2: a WebSocket peer whose swarm is on a worker that answers late or not at all does not keep its place', {
  timeout: 120_000,
}, async () => {
  const scratch = mkdtempSync(join(tmpdir(), 'herald-wsl-'));
  const t = await startTracker(
    [...PRIVATE_SERVE, '--workers', '2', '--early-announce', 'off', '--peers-per-torrent', '1'],
    { ready: 'herald workers running' },
  );
  const open: Peer[] = [];
  let stopped = 0;
  try {
    const port = t.http[0].port;
    const pids = workerPids(t.pid);
    assert.equal(pids.length, 2);
    const setup = (pid: number) =>
      JSON.parse(/HERALD_WORKER=([^\0]*)/.exec(readFileSync(`/proc/${pid}/environ`, 'latin1'))![1]) as {
        index: number;
      };
    const pidOf = [0, 1].map((i) => pids.find((p) => setup(p).index === i)!);
    // A hybrid torrent whose v1 hash (its route: its accounting) and v2 hash (a WebRTC swarm of
    // its own) belong to different workers: the verdict is the socket's worker's, the swarm the other's.
    let v1 = Buffer.alloc(0);
    let v2 = Buffer.alloc(0);
    for (let i = 1; v1.length === 0 || shardOf(v1, 2) === shardOf(v2, 2); i++) {
      assert.ok(i < 20, 'no hybrid torrent with hashes on different workers');
      const file = privateTorrentFile(scratch, `h${i}`, Buffer.alloc(50_000, i));
      const added = adminJson<{ info_hash: string; info_hash_v2: string }>(
        t.admin(['torrent', 'add', file, '--json']),
      );
      v1 = Buffer.from(added.info_hash, 'hex');
      v2 = Buffer.from(added.info_hash_v2.slice(0, 40), 'hex');
    }
    const [h1, h2] = [v1.toString('latin1'), v2.toString('latin1')];
    const passkey = adminJson<{ passkey: string }>(t.admin(['member', 'add', 'cy', '--json'])).passkey;
    let serial = 0;
    /** A socket of the member held by the worker that owns the route. */
    const onRouteOwner = async (): Promise<Peer> => {
      for (let tries = 0; ; tries++) {
        assert.ok(tries < 40, 'no socket on the route owner');
        const q = new Peer(`ws://127.0.0.1:${port}/announce/${passkey}`, id20(0x68796272, serial++));
        open.push(q);
        await q.opened();
        const pid = await holderOf(pids, port, q.localPort);
        if (pid === pidOf[shardOf(v1, 2)]) return q;
        q.ws.terminate();
      }
    };
    const later = new Peer(`ws://127.0.0.1:${port}/announce/${passkey}`, id20(0x6c617465, 1));
    open.push(later);
    await later.opened();
    // Both workers know the member and the torrent.
    for (const h of [h1, h2])
      for (let i = 0; ; i++) {
        const r = await later.announce(h, { event: 'stopped', peer_id: id20(1, 1, 99) });
        if (r['failure reason'] === undefined) break;
        assert.ok(i < 75, `torrent known: ${refusal(r)}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    /** Another client of the member gets the torrent's one place (peers_per_torrent 1), then stops. */
    const placeFree = async (what: string) => {
      for (let i = 0; ; i++) {
        const r = await later.announce(h1, { event: 'started' });
        if (r['failure reason'] === undefined) break;
        assert.ok(i < 50, `${what}: ${refusal(r)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      ok(await later.announce(h1, { event: 'stopped' }), 'stopped');
    };
    const swarmOwner = pidOf[shardOf(v2, 2)];

    // The swarm's worker answers late: the socket announces (its verdict takes the place) and is
    // gone before the swarm answers.
    const p = await onRouteOwner();
    stopped = swarmOwner;
    process.kill(stopped, 'SIGSTOP');
    p.send({ action: 'announce', info_hash: h2, peer_id: p.peerId, left: 100 });
    await new Promise((r) => setTimeout(r, 300));
    p.ws.terminate();
    await p.closed;
    await new Promise((r) => setTimeout(r, 300));
    process.kill(stopped, 'SIGCONT');
    stopped = 0;
    await placeFree('the place of a socket closed before its swarm answered');

    // The swarm's worker does not answer in time: the socket is told so (not left waiting), and
    // its close frees the place its verdict took.
    const q = await onRouteOwner();
    stopped = swarmOwner;
    process.kill(stopped, 'SIGSTOP');
    const r = await q.announce(h2, { event: 'started' });
    process.kill(stopped, 'SIGCONT');
    stopped = 0;
    assert.notEqual(refusal(r), '', 'a failure when the swarm cannot be reached');
    q.ws.terminate();
    await q.closed;
    await placeFree('the place of a socket whose swarm did not answer');
  } finally {
    if (stopped !== 0) process.kill(stopped, 'SIGCONT');
    for (const q of open) q.ws.terminate();
    await t.stop();
    rmSync(scratch, { recursive: true, force: true });
  }
});
