/**
 * UDP steering by info hash (native/src/udp_batch.c openGroup): in a SO_REUSEPORT group of n
 * sockets, every BEP 15 announce and scrape arrives at socket shardOf(infoHash, n), the socket of
 * the worker that owns the swarm, and everything else (connect, short or odd datagrams) still
 * arrives, spread by the kernel's own hash. Over real loopback sockets, IPv4 and IPv6, with one
 * worker a separate process serving the socket it inherited.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { shardOf } from '../../src/core/shard.ts';
import { loadUdpBatchAddon } from '../../src/frontend/udp/batch.ts';
import {
  type ConnectionId,
  writeAnnounceRequest,
  writeConnectRequest,
  writeScrapeRequest,
} from '../../src/protocol/udp/codec.ts';
import { udpClient } from '../helpers/clients.ts';
import { serveTagged } from '../helpers/udp-tagged-echo.ts';

const addon = loadUdpBatchAddon();
const skip =
  addon === null
    ? 'SKIPPED: the udp_batch addon is not built (run `bash scripts/build-native.sh`); steering is untested'
    : false;
if (skip) console.warn(`udp-steer.test.ts: ${skip}`);

const HOST = { 4: '127.0.0.1', 6: '::1' } as const;
const ID: ConnectionId = { hi: 0x01020304, lo: 0x05060708 };

/** Info hashes whose first words cover every residue mod 2 and 3, with and without the top bit. */
function craftedHashes(): Buffer[] {
  const hashes: Buffer[] = [];
  for (const base of [0, 0x7ffffff0, 0x80000000, 0xfffffff0]) {
    for (let k = 0; k < 12; k++) {
      const h = randomBytes(20);
      h.writeUInt32BE((base + k) >>> 0, 0);
      hashes.push(h);
    }
  }
  for (let k = 0; k < 24; k++) hashes.push(randomBytes(20));
  return hashes;
}

function announcePacket(infoHash: Uint8Array, tid: number): Buffer {
  const buf = Buffer.alloc(200);
  const len = writeAnnounceRequest(buf, {
    connectionId: ID,
    transactionId: tid,
    infoHash,
    peerId: Buffer.alloc(20, 7),
    downloaded: 0,
    left: 100,
    uploaded: 0,
    event: 0,
    numWant: -1,
    port: 6881,
    urlData: tid % 2 === 0 ? '/announce/abcdef' : null, // with and without BEP 41 URL data
  });
  return buf.subarray(0, len);
}

function scrapePacket(infoHashes: Uint8Array[], tid: number): Buffer {
  const buf = Buffer.alloc(16 + 20 * infoHashes.length);
  return buf.subarray(0, writeScrapeRequest(buf, ID, tid, infoHashes));
}

interface Group {
  fds: number[];
  handles: object[];
  port: number;
}

/** Opens a group of n and serves every socket in this process, each tagging replies with its index. */
function serveGroup(family: 4 | 6, n: number): Group {
  const a = addon!;
  const fds = a.openGroup(family, HOST[family], 0, n);
  assert.equal(fds.length, n);
  const handles = fds.map((fd) => a.adopt(fd));
  const port = a.port(handles[0]);
  assert.ok(port > 0);
  for (const h of handles) assert.equal(a.port(h), port, 'every socket of the group is on one port');
  handles.forEach((h, i) => {
    serveTagged(a, h, i);
  });
  return { fds, handles, port };
}

type Client = Awaited<ReturnType<typeof udpClient>>;

/** Sends `packet` and returns the tag of the socket that answered it (the reply echoes the packet). */
async function socketFor(c: Client, packet: Buffer, port: number): Promise<number> {
  const reply = await c.request(packet, port, 2000);
  assert.ok(reply, `a ${packet.length}-byte datagram was answered`);
  assert.deepEqual(reply.subarray(1), packet, 'the reply echoes this datagram');
  return reply[0];
}

for (const family of [4, 6] as const) {
  describe(`UDP steering over IPv${family}`, { skip }, () => {
    for (const n of [2, 3]) {
      test(`a group of ${n}: announces and scrapes reach socket shardOf(hash, ${n}); the rest still arrive`, async () => {
        const g = serveGroup(family, n);
        const c = await udpClient(family);
        const clients: Client[] = [];
        try {
          const hashes = craftedHashes();
          const seen = new Set<number>();
          let tid = 1;
          for (const h of hashes) {
            const want = shardOf(h, n);
            seen.add(want);
            assert.equal(await socketFor(c, announcePacket(h, tid++), g.port), want, 'announce');
            // A scrape goes where its first info hash lives (one hash: exactly 36 bytes).
            assert.equal(await socketFor(c, scrapePacket([h], tid++), g.port), want, 'scrape of one');
            const others = [randomBytes(20), randomBytes(20)];
            assert.equal(await socketFor(c, scrapePacket([h, ...others], tid++), g.port), want, 'scrape');
          }
          assert.equal(seen.size, n, 'the crafted hashes cover every socket');

          // Not steerable: connect, an announce or scrape too short to hold its info hash, an
          // unknown action, fragments. They arrive (on some socket: the kernel's hash).
          const odd = [
            Buffer.from(randomBytes(16).fill(0, 8, 12)), // action 0 at bytes 8..11: connect
            announcePacket(hashes[0], tid++).subarray(0, 97),
            scrapePacket([hashes[0]], tid++).subarray(0, 35),
            Buffer.concat([Buffer.alloc(8), Buffer.from([0, 0, 0, 3]), randomBytes(100)]), // action 3
            Buffer.from([1, 2, 3]),
            Buffer.alloc(0),
          ];
          const connect = Buffer.alloc(16);
          writeConnectRequest(connect, 42);
          odd.push(connect);
          for (const p of odd) {
            const s = await socketFor(c, p, g.port);
            assert.ok(s >= 0 && s < n);
          }
          // Connects from many source ports are spread by the kernel's hash: the program's
          // out-of-range answer falls back to it (it neither drops them nor sends all to socket 0).
          const landed = new Set<number>();
          for (let k = 0; k < 24; k++) {
            const cl = await udpClient(family);
            clients.push(cl);
            writeConnectRequest(connect, k);
            landed.add(await socketFor(cl, connect, g.port));
          }
          assert.ok(landed.size > 1, `24 connects from 24 ports all landed on socket ${[...landed]}`);
        } finally {
          c.close();
          for (const cl of clients) cl.close();
          for (const h of g.handles) addon!.close(h);
        }
      });
    }
  });
}

describe('UDP steering to a worker process', { skip }, () => {
  const children: ReturnType<typeof spawn>[] = [];
  after(() => {
    for (const ch of children) if (ch.exitCode === null) ch.kill();
  });

  test('a child that adopted socket 1 of the group receives (and answers) the datagrams for index 1', async () => {
    const a = addon!;
    const fds = a.openGroup(4, HOST[4], 0, 2);
    // Socket 0 is served here; socket 1 goes to the child as its fd 3 and is closed here only
    // after the test: the parent keeps its copy for as long as the group serves.
    const h0 = a.adopt(fds[0]);
    serveTagged(a, h0, 0);
    const child = spawn(
      process.execPath,
      [join(import.meta.dirname, '../helpers/udp-steer-worker.ts'), '101'],
      { stdio: ['pipe', 'pipe', 'inherit', fds[1]] },
    );
    children.push(child);
    const ready = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('\n')) resolve(out.trim());
      });
      child.once('exit', (code) => reject(new Error(`the worker exited (${code}) before serving`)));
    });
    const port = a.port(h0);
    assert.equal(ready, `ready ${port}`, 'the worker serves the group port');
    const c = await udpClient(4);
    try {
      let tid = 1;
      const tags = new Set<number>();
      for (const h of craftedHashes()) {
        const want = shardOf(h, 2) === 1 ? 101 : 0;
        tags.add(want);
        assert.equal(await socketFor(c, announcePacket(h, tid++), port), want, 'announce');
        assert.equal(await socketFor(c, scrapePacket([h], tid++), port), want, 'scrape');
      }
      assert.deepEqual([...tags].sort(), [0, 101]);
    } finally {
      c.close();
      child.stdin!.end();
      await new Promise((r) => (child.exitCode === null ? child.once('exit', r) : r(null)));
      a.close(h0);
      closeSync(fds[1]);
    }
    assert.equal(child.exitCode, 0);
  });
});

describe('openGroup and adopt refuse what they cannot serve', { skip }, () => {
  test('a group of 0 or of more than 1024, a bad address', () => {
    assert.throws(() => addon!.openGroup(4, HOST[4], 0, 0), RangeError);
    assert.throws(() => addon!.openGroup(4, HOST[4], 0, 1025), RangeError);
    assert.throws(() => addon!.openGroup(4, 'not-an-address', 0, 2), /invalid IPv4 address/);
  });

  test('a port taken by a socket outside the group', () => {
    const g = addon!.openGroup(4, HOST[4], 0, 1);
    const port = addon!.port(addon!.adopt(g[0]));
    try {
      const other = addon!.open(4, HOST[4], port, false); // not SO_REUSEPORT
      addon!.close(other);
      assert.fail('bound a port the group holds');
    } catch (err) {
      assert.match(String(err), /EADDRINUSE|in use/);
    } finally {
      closeSync(g[0]);
    }
  });

  test('a second group on a port a group already holds (it would join the first and get no steered datagrams)', () => {
    const g = addon!.openGroup(4, HOST[4], 0, 2);
    const port = addon!.port(addon!.adopt(g[0]));
    try {
      assert.throws(
        () => addon!.openGroup(4, HOST[4], port, 2),
        (err: Error & { code?: string }) => err.code === 'EADDRINUSE',
      );
    } finally {
      for (const fd of g) closeSync(fd);
    }
  });

  test('adopt: a descriptor that is not a UDP socket', () => {
    const file = join(tmpdir(), `herald-steer-${process.pid}`);
    const fd = openSync(file, 'w');
    try {
      assert.throws(() => addon!.adopt(fd), /adopt: descriptor \d+ is not a UDP socket/);
      assert.throws(() => addon!.adopt(-1), /not a UDP socket/);
    } finally {
      closeSync(fd);
    }
  });
});
