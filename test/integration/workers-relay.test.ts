/**
 * The relay of `herald serve --workers 2` (issue #13): a kept-alive announce for a swarm another
 * worker owns goes from the batched HTTP addon of the worker that holds the connection to the
 * owner's addon in C, and its answer comes back the same way. Clients must see exactly what one
 * worker answers: the same swarms, their own address (IPv4, IPv6, X-Forwarded-For through a
 * trusted proxy), keep-alive and Connection: close kept; an owner that dies answers "tracker busy"
 * and comes back; a connection parked on a silent owner is closed by the idle sweep; a process
 * without the bus secret cannot feed the relay. `/stats` `http.relayed` shows the relay at work
 * (before it, announces crossed through JavaScript on both sides and it did not exist).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { shardOf } from '../../src/core/shard.ts';
import { LT, PY } from '../e2e/processes.ts';
import { PRIVATE_SERVE, type RunningTracker, startTracker } from '../e2e/tracker-process.ts';
import { announcePath, bdecode, hashOf, httpGet, text } from '../helpers/clients.ts';
import { connectionHolders, workerPids } from '../helpers/workers.ts';

/** Two workers holding the swarms sharded by info hash: the relay carries announces between them. */
const SHARDED_2 = ['--workers', '2', '--worker-swarms', 'sharded'];

interface Answer {
  status: number;
  head: string;
  body: Buffer;
}

/** One kept-alive HTTP/1.1 connection: requests in turn, answers framed by Content-Length. */
class KeepAlive {
  readonly sock: Socket;
  #buf = Buffer.alloc(0);
  #waiting: ((a: Answer | null) => void) | null = null;
  closed = false;

  constructor(port: number, host = '127.0.0.1') {
    this.sock = connect({ port, host });
    this.sock.on('data', (d) => {
      this.#buf = Buffer.concat([this.#buf, d]);
      this.#deliver();
    });
    this.sock.on('error', () => {});
    this.sock.on('close', () => {
      this.closed = true;
      this.#waiting?.(null);
      this.#waiting = null;
    });
  }

  /** Connected (or refused: then `closed`). */
  ready(): Promise<void> {
    return new Promise((resolve) => {
      this.sock.once('connect', () => resolve());
      this.sock.once('close', () => resolve());
    });
  }

  get localPort(): number {
    return this.sock.localPort ?? 0;
  }

  #deliver(): void {
    const end = this.#buf.indexOf('\r\n\r\n');
    if (end < 0 || this.#waiting === null) return;
    const head = this.#buf.subarray(0, end).toString('latin1');
    const len = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
    if (this.#buf.length < end + 4 + len) return;
    const body = this.#buf.subarray(end + 4, end + 4 + len);
    this.#buf = this.#buf.subarray(end + 4 + len);
    const w = this.#waiting;
    this.#waiting = null;
    w({ status: Number(head.split(' ')[1]), head, body });
  }

  /** The answer to one GET, or null when the server closed first. */
  get(path: string, headers = ''): Promise<Answer | null> {
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve) => {
      this.#waiting = resolve;
      this.sock.write(`GET ${path} HTTP/1.1\r\nHost: tracker\r\n${headers}\r\n`);
    });
  }

  close(): void {
    this.sock.destroy();
  }
}

/** Info hashes of shard 0 and shard 1 of 2 workers, alternately: `n` of them. */
function hashes(n: number, salt: number): Buffer[] {
  const out: Buffer[] = [];
  const by: Buffer[][] = [[], []];
  for (let i = 0; by[0].length < n / 2 || by[1].length < n / 2; i++) {
    const h = hashOf(i, salt);
    by[shardOf(h, 2)].push(h);
  }
  for (let i = 0; i < n; i++) out.push(by[i % 2][i >> 1]);
  return out;
}

async function stats(t: RunningTracker): Promise<{ out: number; in: number; busy: number }> {
  const r = await httpGet(t.http[0].port, '127.0.0.1', '/stats');
  const s = JSON.parse(r.body.toString()) as {
    http: { relayed?: { out: number; in: number; busy: number } };
  };
  return s.http.relayed ?? { out: 0, in: 0, busy: 0 };
}

/** What a client reads in an announce answer, peers as a sorted list (their order is random). */
function reading(a: Answer | null): unknown {
  assert.ok(a !== null, 'the connection closed before its answer');
  assert.equal(a.status, 200);
  const d = bdecode(a.body);
  const peers = d.get('peers');
  const list = Buffer.isBuffer(peers)
    ? Array.from({ length: peers.length / 6 }, (_, i) => peers.subarray(i * 6, i * 6 + 6).toString('hex'))
    : ((peers as Map<string, unknown>[]) ?? []).map((p) => `${text(p.get('ip'))}:${p.get('port')}`);
  return {
    failure: d.has('failure reason') ? text(d.get('failure reason')) : null,
    complete: d.get('complete'),
    incomplete: d.get('incomplete'),
    peers: list.sort(),
  };
}

/** Each worker's index (from its HERALD_WORKER environment) by pid, and the bus secret. */
function workersOf(t: RunningTracker): { pidOf: Map<number, number>; clusterId: string; secret: string } {
  const pidOf = new Map<number, number>();
  let clusterId = '';
  let secret = '';
  for (const pid of workerPids(t.pid)) {
    const env = readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0');
    const w = env.find((e) => e.startsWith('HERALD_WORKER='));
    if (w === undefined) continue;
    const o = JSON.parse(w.slice('HERALD_WORKER='.length)) as {
      index: number;
      clusterId: string;
      busToken: string;
    };
    pidOf.set(o.index, pid);
    clusterId = o.clusterId;
    secret = o.busToken;
  }
  return { pidOf, clusterId, secret };
}

/** Opens kept-alive connections until one is held by worker `index`'s process. */
async function connectionOn(t: RunningTracker, index: number, host = '127.0.0.1'): Promise<KeepAlive> {
  const pid = workersOf(t).pidOf.get(index)!;
  for (let i = 0; i < 64; i++) {
    const c = new KeepAlive(t.http[0].port, host);
    await c.ready();
    // The first request of a connection is served by JavaScript (it counts the connection).
    const first = await c.get('/scrape');
    const holders = connectionHolders([pid], t.http[0].port);
    if (first !== null && holders.get(c.localPort) === pid) return c;
    c.close();
  }
  throw new Error(`no connection landed on worker ${index}`);
}

describe('herald serve --workers 2: the relay', () => {
  let one: RunningTracker;
  let two: RunningTracker;
  before(async () => {
    const args = ['--http', '127.0.0.1:0', '--udp', 'off', '--trusted-proxies', '127.0.0.1'];
    [one, two] = await Promise.all([
      startTracker(args),
      startTracker([...SHARDED_2, ...args], {
        ready: 'herald workers running',
      }),
    ]);
  });
  after(async () => {
    await one?.stop();
    await two?.stop();
  });

  test('kept-alive announces of many torrents get the answers one worker gives, compact and not', async () => {
    const hs = hashes(120, 71);
    const answers = async (t: RunningTracker) => {
      const conns = await Promise.all(
        Array.from({ length: 6 }, async () => {
          const c = new KeepAlive(t.http[0].port);
          await c.ready();
          return c;
        }),
      );
      const out: unknown[] = [];
      for (let round = 0; round < 3; round++)
        for (let i = 0; i < hs.length; i++) {
          const path = announcePath({
            infoHash: hs[i],
            port: 7000 + round,
            left: round === 0 ? 0 : 1000,
            compact: i % 3 === 0 ? 0 : 1,
            numwant: 50,
          });
          out.push(reading(await conns[(i + round) % conns.length].get(path)));
        }
      for (const c of conns) c.close();
      return out;
    };
    const before = await stats(two);
    const expected = await answers(one);
    assert.deepEqual(await answers(two), expected);
    const after = await stats(two);
    // Half the announces of 6 connections spread over 2 workers are another worker's.
    assert.ok(after.out - before.out > 60, `relayed ${after.out - before.out}`);
    assert.equal(after.in - before.in, after.out - before.out);
  });

  test('the owner sees the client address: IPv4, and X-Forwarded-For from a trusted proxy', async () => {
    for (const index of [0, 1]) {
      const c = await connectionOn(two, index);
      const before = await stats(two);
      for (const h of hashes(10, 300 + index)) {
        reading(
          await c.get(
            announcePath({ infoHash: h, port: 6001, compact: 0 }),
            'X-Forwarded-For: 203.0.113.7\r\n',
          ),
        );
        const r = reading(await c.get(announcePath({ infoHash: h, port: 6002, compact: 0 }))) as {
          peers: string[];
        };
        assert.deepEqual(r.peers, ['203.0.113.7:6001']);
      }
      // Half of those hashes are the other worker's, and every one of their announces was relayed.
      assert.equal((await stats(two)).out - before.out, 10);
      c.close();
    }
  });

  test('a relayed Connection: close answer says so and ends the connection', async () => {
    for (const index of [0, 1]) {
      const c = await connectionOn(two, index);
      const other = hashes(2, 400 + index)[1 - index];
      const before = await stats(two);
      const a = await c.get(announcePath({ infoHash: other, port: 6003 }), 'Connection: close\r\n');
      assert.ok(a !== null);
      assert.match(a.head, /\r\nConnection: close(\r\n|$)/i);
      assert.equal(reading(a) !== null, true);
      await new Promise<void>((resolve) => (c.closed ? resolve() : c.sock.once('close', () => resolve())));
      assert.equal((await stats(two)).out - before.out, 1);
    }
  });

  test('a process without the secret cannot use the relay; garbage from one with it closes its link', () => {
    const { clusterId, secret } = workersOf(two);
    // A short Python client (Node has no SOCK_SEQPACKET): each case connects, sends its messages,
    // and prints what it reads back (b'' when the worker closed the link).
    const py = `
import socket, sys
name = b'\\0herald-relay-${clusterId}-0'
secret = bytes.fromhex('${secret}')
req = b'GET /announce?info_hash=' + b'%ff' * 20 + b'&peer_id=' + b'a' * 20 + b'&port=1 HTTP/1.1\\r\\n\\r\\n'
rec = b'Q\\x04\\x00\\x01' + (7).to_bytes(4, 'little') + (9).to_bytes(4, 'little') + bytes([127, 0, 0, 1]) + bytes(12) + len(req).to_bytes(4, 'little') + req
cases = {
  'no-secret': [b'x' * 32, rec],
  'short': [secret, b'Q\\x04'],
  'garbage': [secret, b'Z' * 64],
  'oversized': [secret, rec + b'Q' * 150000],
  'length-lies': [secret, rec[:28] + (10 ** 6).to_bytes(4, 'little') + req],
  'good': [secret, rec],
}
for k, msgs in cases.items():
  s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
  s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
  s.settimeout(5)
  s.connect(name)
  try:
    for m in msgs: s.send(m)
  except (BrokenPipeError, ConnectionResetError):
    pass  # closed already
  try:
    got = s.recv(1 << 17)
  except (BrokenPipeError, ConnectionResetError):
    got = b''
  print(k, got[:1], len(got))
  s.close()
`;
    const r = spawnSync('python3', ['-c', py], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    const lines = Object.fromEntries(
      r.stdout
        .trim()
        .split('\n')
        .map((l) => [l.split(' ')[0], l]),
    );
    for (const k of ['no-secret', 'short', 'garbage', 'oversized', 'length-lies'])
      assert.equal(lines[k], `${k} b'' 0`, `${k}: ${lines[k]}`);
    // The one well-formed request from a process with the secret is answered (an 'A' record).
    assert.match(lines.good, /^good b'A' \d+$/);
  });

  test('a process of another user is refused even with the secret (SO_PEERCRED)', (t) => {
    if (process.getuid?.() !== 0) {
      t.skip('SKIPPED: needs root to run a client as another user (CI runs as root)');
      return;
    }
    const { clusterId, secret } = workersOf(two);
    // The well-formed request the previous test has answered, sent by user nobody.
    const py = `
import socket
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.settimeout(5)
s.connect(b'\\0herald-relay-${clusterId}-0')
req = b'GET /announce?info_hash=' + b'%ff' * 20 + b'&peer_id=' + b'a' * 20 + b'&port=1 HTTP/1.1\\r\\n\\r\\n'
rec = b'Q\\x04\\x00\\x01' + (7).to_bytes(4, 'little') + (9).to_bytes(4, 'little') + bytes([127, 0, 0, 1]) + bytes(12) + len(req).to_bytes(4, 'little') + req
try:
  s.send(bytes.fromhex('${secret}'))
  s.send(rec)
  got = s.recv(1 << 17)
except (BrokenPipeError, ConnectionResetError):
  got = b''
print(len(got))
`;
    const r = spawnSync('python3', ['-c', py], { encoding: 'utf8', timeout: 60_000, uid: 65534, gid: 65534 });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), '0', 'the link of another user is closed unanswered');
  });

  test('an owner that stops: parked requests are swept when idle; killed, they fail busy at once; then it is back', async () => {
    const t = await startTracker(
      [...SHARDED_2, '--http', '127.0.0.1:0', '--udp', 'off', '--http-idle-timeout', '2'],
      { ready: 'herald workers running' },
    );
    try {
      const c = await connectionOn(t, 0);
      const owned1 = hashes(2, 500)[1];
      reading(await c.get(announcePath({ infoHash: owned1, port: 6004 })));
      const pid1 = workersOf(t).pidOf.get(1)!;
      // Stopped: the relayed announce waits, parked in C, until the idle sweep closes it.
      process.kill(pid1, 'SIGSTOP');
      try {
        assert.equal(await c.get(announcePath({ infoHash: owned1, port: 6005 })), null);
      } finally {
        process.kill(pid1, 'SIGCONT');
      }
      // Stopped, then killed: a parked relayed announce is answered "tracker busy" when its link goes.
      const d = await connectionOn(t, 0);
      process.kill(pid1, 'SIGSTOP');
      const pending = d.get(announcePath({ infoHash: owned1, port: 6006 }));
      await new Promise((r) => setTimeout(r, 300));
      process.kill(pid1, 'SIGKILL');
      const a = await pending;
      assert.ok(a !== null);
      assert.equal((reading(a) as { failure: string }).failure, 'tracker busy: try again in a minute');
      // The worker is restarted and its swarms are answered again, relayed.
      const t0 = Date.now();
      for (;;) {
        const e = await connectionOn(t, 0);
        const r = reading(await e.get(announcePath({ infoHash: owned1, port: 6007 }))) as {
          failure: string | null;
        };
        e.close();
        if (r.failure === null) break;
        assert.ok(Date.now() - t0 < 20_000, 'the owner did not come back');
        await new Promise((res) => setTimeout(res, 300));
      }
      assert.ok((await stats(t)).busy >= 1);
    } finally {
      await t.stop();
    }
  });
});

test('max_connections_per_ip: a connection closed after a relayed answer frees its slot, once', async () => {
  const t = await cappedWorkers(2);
  try {
    const other = hashes(2, 700)[1];
    // Each connection: held by worker 0, one relayed announce with Connection: close. Were its
    // slot not released (or released twice), the third would be refused (or a third allowed).
    for (let i = 0; i < 6; i++) {
      const c = await connectionOn(t, 0);
      const a = await c.get(announcePath({ infoHash: other, port: 6200 + i }), 'Connection: close\r\n');
      assert.equal((reading(a) as { failure: string | null }).failure, null);
      await closedBy(c);
    }
    // And the limit still holds: two kept-alive connections on worker 0, a third is refused.
    const held = [await connectionOn(t, 0), await connectionOn(t, 0)];
    const pid = workersOf(t).pidOf.get(0)!;
    let refused = false;
    for (let i = 0; i < 64 && !refused; i++) {
      const c = new KeepAlive(t.http[0].port);
      await c.ready();
      const a = await c.get('/scrape');
      if (connectionHolders([pid], t.http[0].port).has(c.localPort) || a?.status === 503)
        refused = a?.status === 503;
      c.close();
    }
    assert.ok(refused, 'a third connection on worker 0 was admitted');
    for (const c of held) c.close();
  } finally {
    await t.stop();
  }
});

/** `herald serve --workers 2` on plain HTTP with max_connections_per_ip `cap`. */
function cappedWorkers(cap: number): Promise<RunningTracker> {
  return startTracker(
    [...SHARDED_2, '--http', '127.0.0.1:0', '--udp', 'off', '--max-connections-per-ip', String(cap)],
    { ready: 'herald workers running' },
  );
}

/** A new kept-alive connection and the answer to its first request (null: closed unanswered). */
async function firstAnswer(t: RunningTracker): Promise<{ c: KeepAlive; a: Answer | null }> {
  const c = new KeepAlive(t.http[0].port);
  await c.ready();
  return { c, a: await c.get('/scrape') };
}

/** Resolves once the server has closed `c`. */
function closedBy(c: KeepAlive): Promise<void> {
  return new Promise<void>((resolve) => (c.closed ? resolve() : c.sock.once('close', () => resolve())));
}

/** New connections until one is served (at most `tries`, `pauseMs` apart); null if none was. */
async function servedConnection(
  t: RunningTracker,
  tries: number,
  pauseMs: number,
): Promise<KeepAlive | null> {
  for (let i = 0; i < tries; i++) {
    const { c, a } = await firstAnswer(t);
    if (a?.status === 200) return c;
    await new Promise((r) => setTimeout(r, pauseMs));
  }
  return null;
}

test('max_connections_per_ip holds for the host: an address with connections on both workers holds the cap; the extra ones are closed', async () => {
  const t = await cappedWorkers(3);
  const open: KeepAlive[] = [];
  try {
    open.push(await connectionOn(t, 0), await connectionOn(t, 1));
    // More connections from the same address, kept open when served: the kernel spreads them over
    // both workers. Counted per worker, each worker admitted three (up to six in all).
    const refused: KeepAlive[] = [];
    for (let i = 0; i < 12; i++) {
      const { c, a } = await firstAnswer(t);
      if (a?.status === 200) open.push(c);
      else {
        assert.ok(a === null || a.status === 503, `refused: ${a?.status}`);
        refused.push(c);
      }
    }
    assert.equal(open.length, 3, `${open.length} connections of one address open over 2 workers, cap 3`);
    for (const c of refused) await closedBy(c);
    for (const c of open) assert.equal((await c.get('/scrape'))?.status, 200, 'the admitted ones are served');
    // A connection closed on worker 0 frees a place for one on either worker.
    open.shift()!.close();
    const again = await servedConnection(t, 100, 20);
    assert.ok(again !== null, 'a place was freed');
    open.push(again);
  } finally {
    for (const c of open) c.close();
    await t.stop();
  }
});

test('max_connections_per_ip over the host: the connections of a killed worker are freed when it is restarted', async () => {
  const t = await cappedWorkers(2);
  const open: KeepAlive[] = [];
  try {
    open.push(await connectionOn(t, 1), await connectionOn(t, 1));
    const pid1 = workersOf(t).pidOf.get(1)!;
    process.kill(pid1, 'SIGKILL');
    for (const c of open.splice(0)) await closedBy(c);
    // Once worker 1 is back, the address holds two connections again (were the dead process's
    // counts kept, every connection would be refused for good).
    for (let i = 0; i < 2; i++) {
      const c = await servedConnection(t, 100, 200);
      assert.ok(c !== null, `${open.length} connections admitted after the restart`);
      open.push(c);
    }
    assert.notEqual(workersOf(t).pidOf.get(1), pid1, 'worker 1 was restarted');
  } finally {
    for (const c of open) c.close();
    await t.stop();
  }
});

test('private mode: kept-alive announces with a passkey, relayed (a hybrid torrent through a third hop), credited exactly once', async () => {
  const scratch = mkdtempSync(join(tmpdir(), 'herald-relay-'));
  const t = await startTracker([...PRIVATE_SERVE, '--workers', '2'], { ready: 'herald workers running' });
  try {
    // A hybrid torrent whose two hashes belong to different workers: an announce of its v2 hash
    // is relayed to the v2 hash's owner, whose policy routes it to the v1 hash's owner.
    let v1 = Buffer.alloc(0);
    let v2 = Buffer.alloc(0);
    for (let i = 0; i < 16 && (v1.length === 0 || shardOf(v1, 2) === shardOf(v2, 2)); i++) {
      const data = join(scratch, `payload${i}`);
      writeFileSync(data, Buffer.alloc(100_000, i + 1));
      const file = join(scratch, `t${i}.torrent`);
      execFileSync(PY, [LT, 'make', data, file, 'http://127.0.0.1/announce', 'hybrid', 'private']);
      const r = t.admin(['torrent', 'add', file, '--json']);
      assert.equal(r.status, 0, r.stderr);
      const torrent = JSON.parse(r.stdout) as { info_hash: string; info_hash_v2: string };
      v1 = Buffer.from(torrent.info_hash, 'hex');
      v2 = Buffer.from(torrent.info_hash_v2.slice(0, 40), 'hex');
    }
    assert.notEqual(shardOf(v1, 2), shardOf(v2, 2));
    const m = t.admin(['member', 'add', 'alice', '--json']);
    assert.equal(m.status, 0, m.stderr);
    const passkey = (JSON.parse(m.stdout) as { passkey: string }).passkey;
    const path = (ih: Buffer, uploaded: number, event?: 'started') =>
      announcePath({
        infoHash: ih,
        port: 9300,
        peerId: Buffer.from('-qB4500-relay0000001'),
        base: `/announce/${passkey}`,
        left: 0,
        uploaded,
        event,
      });
    // Every worker knows the torrent once its policy has polled the revision (every second).
    const t0 = Date.now();
    for (;;) {
      const d = bdecode((await httpGet(t.http[0].port, '127.0.0.1', path(v1, 0, 'started'))).body);
      if (!d.has('failure reason')) break;
      assert.ok(Date.now() - t0 < 15_000, text(d.get('failure reason')));
      await new Promise((r) => setTimeout(r, 200));
    }
    await new Promise((r) => setTimeout(r, 2500));
    const before = await stats(t);
    let total = 0;
    for (const index of [0, 1]) {
      const c = await connectionOn(t, index);
      for (let i = 0; i < 20; i++) {
        total += 1000;
        const r = reading(await c.get(path(i % 2 === 0 ? v1 : v2, total))) as { failure: string | null };
        assert.equal(r.failure, null);
      }
      // A passkey nobody has: the same failure, relayed.
      const bad = reading(await c.get(path(v2, 0).replace(passkey, 'x'.repeat(passkey.length)))) as {
        failure: string | null;
      };
      assert.notEqual(bad.failure, null);
      c.close();
    }
    // On each connection, the announces of the hash the other worker owns were relayed.
    assert.ok((await stats(t)).out - before.out >= 20);
    await t.stopGracefully();
    const after = JSON.parse(t.admin(['member', 'show', 'alice', '--json']).stdout) as { uploaded: number };
    assert.equal(after.uploaded, total, 'every byte credited once, none twice');
  } finally {
    await t.stop();
    rmSync(scratch, { recursive: true, force: true });
  }
});

describe('herald serve --workers 2: the relay over IPv6', () => {
  let t: RunningTracker;
  before(async () => {
    t = await startTracker([...SHARDED_2, '--http', '[::1]:0', '--udp', 'off'], {
      ready: 'herald workers running',
    });
  });
  after(() => t?.stop());

  test('an IPv6 client is registered at its own address by the owner', async () => {
    const r0 = await httpGet(t.http[0].port, '::1', '/stats');
    const before = (JSON.parse(r0.body.toString()) as { http: { relayed: { out: number } } }).http.relayed
      .out;
    const c = new KeepAlive(t.http[0].port, '::1');
    await c.ready();
    await c.get('/scrape'); // served by JavaScript, as the first request of every connection
    for (const h of hashes(10, 600)) {
      reading(await c.get(announcePath({ infoHash: h, port: 6101, compact: 0 })));
      const r = reading(await c.get(announcePath({ infoHash: h, port: 6102, compact: 0 }))) as {
        peers: string[];
      };
      assert.deepEqual(r.peers, ['::1:6101']);
    }
    c.close();
    const r1 = await httpGet(t.http[0].port, '::1', '/stats');
    const now = (JSON.parse(r1.body.toString()) as { http: { relayed: { out: number } } }).http.relayed.out;
    assert.equal(now - before, 10);
  });
});
