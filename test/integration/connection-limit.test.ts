/**
 * max_connections_per_ip: one address (an IPv6 /64) holds at most that many HTTP, HTTPS and
 * WebSocket connections at once, counted together across every listener; a connection over the
 * cap is closed at once (with a 503 where the request is already read). Closing, idle timeouts
 * and hand-overs give the slot back. Over node:net, the batched addon, HTTPS and the WebSocket
 * listeners, on real loopback sockets (127.0.0.2 stands for a second client address).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { WebSocket } from 'ws';
import type { HeraldConfig } from '../../src/config/schema.ts';
import { loadHttpBatchAddon } from '../../src/frontend/http/batch.ts';
import { createTracker, type Tracker } from '../../src/index.ts';
import { announcePath, hashOf } from '../helpers/clients.ts';
import { makeCert } from '../helpers/tls.ts';

const MAX = 4;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A client connection: what it received, and whether it is closed. */
interface Conn {
  socket: Socket;
  received: () => string;
  closed: Promise<void>;
  isClosed: () => boolean;
  /** TLS: whether the handshake completed. */
  secure: () => boolean;
}

function open(port: number, opts: { localAddress?: string; tls?: boolean } = {}): Conn {
  const chunks: Buffer[] = [];
  let done = false;
  const host = '127.0.0.1';
  const local = opts.localAddress === undefined ? {} : { localAddress: opts.localAddress };
  const socket: Socket = opts.tls
    ? tlsConnect({ port, host, ...local, rejectUnauthorized: false })
    : netConnect({ port, host, ...local });
  let secure = false;
  socket.on('secureConnect', () => {
    secure = true;
  });
  socket.on('data', (d) => chunks.push(d));
  socket.on('error', () => {});
  const closed = new Promise<void>((r) =>
    socket.on('close', () => {
      done = true;
      r();
    }),
  );
  return {
    socket,
    received: () => Buffer.concat(chunks).toString('latin1'),
    closed,
    isClosed: () => done,
    secure: () => secure,
  };
}

let n = 0;
const announce = () =>
  `GET ${announcePath({ infoHash: hashOf(50), port: 9000 + (n++ % 500), left: 0 })} HTTP/1.1\r\nHost: x\r\n\r\n`;

/** Sends an announce; resolves true once its answer arrives, false if the connection closes first. */
async function served(c: Conn): Promise<boolean> {
  const before = (c.received().match(/HTTP\/1\.1 200/g) ?? []).length;
  c.socket.write(announce());
  for (;;) {
    if ((c.received().match(/HTTP\/1\.1 200/g) ?? []).length > before) return true;
    if (c.isClosed()) return false;
    await sleep(5);
  }
}

/** A connection over the cap: closed without a tracker answer (a 503 at most). */
async function refused(c: Conn): Promise<void> {
  c.socket.write(announce());
  await c.closed;
  assert.doesNotMatch(c.received(), /HTTP\/1\.1 200/);
  if (c.received().length > 0) assert.match(c.received(), /^HTTP\/1\.1 503 /);
}

/** Opens connections until one is served (the count is given back asynchronously after a close). */
async function eventuallyServed(port: number, opts: { tls?: boolean } = {}): Promise<Conn> {
  for (let i = 0; i < 200; i++) {
    const c = open(port, opts);
    if (await served(c)) return c;
    await sleep(20);
  }
  assert.fail('no connection was accepted again');
}

async function withTracker(cfg: Partial<HeraldConfig>, fn: (t: Tracker) => Promise<void>): Promise<void> {
  const t = createTracker({
    udp: [],
    logLevel: 'silent',
    databaseUrl: 'sqlite::memory:',
    maxConnectionsPerIp: MAX,
    ...cfg,
  });
  await t.start();
  try {
    await fn(t);
  } finally {
    await t.stop();
  }
}

const batchedSkip = loadHttpBatchAddon() === null ? 'the http_batch addon is not built' : false;

describe('max_connections_per_ip', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'herald-cap-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const io of ['node', 'batched'] as const)
    test(`HTTP (${io}): over the cap a connection is closed at once; another address, and a freed slot, are served`, {
      skip: io === 'batched' ? batchedSkip : false,
    }, async () => {
      await withTracker({ http: ['127.0.0.1:0'], httpIo: io }, async (t) => {
        const port = t.addresses().http[0].port;
        const held = Array.from({ length: MAX }, () => open(port));
        for (const c of held) assert.ok(await served(c), 'under the cap: served');
        await refused(open(port));
        assert.ok(
          await served(open(port, { localAddress: '127.0.0.2' })),
          'another address has its own count',
        );
        assert.ok(t.service.counters.connectionsRefused >= 1);
        // A client that closes gives its slot back (from the addon's set, or a Node socket).
        held[0].socket.end();
        await held[0].closed;
        const again = await eventuallyServed(port);
        await refused(open(port));
        for (const c of [...held, again]) c.socket.destroy();
      });
    });

  test('connections from a trusted proxy are not counted (every client behind it shares its address)', async () => {
    await withTracker({ http: ['127.0.0.1:0'], trustedProxies: ['127.0.0.1'] }, async (t) => {
      const port = t.addresses().http[0].port;
      const held = Array.from({ length: MAX + 2 }, () => open(port));
      for (const c of held) assert.ok(await served(c));
      for (const c of held) c.socket.destroy();
    });
  });

  test('HTTPS: the connection over the cap is closed before its handshake', async () => {
    const { cert, key } = makeCert(dir, 'cap', 'herald-test');
    await withTracker({ http: [], https: ['127.0.0.1:0'], tlsCert: cert, tlsKey: key }, async (t) => {
      const port = t.addresses().https[0].port;
      const held = Array.from({ length: MAX }, () => open(port, { tls: true }));
      for (const c of held) assert.ok(await served(c));
      const over = open(port, { tls: true });
      await over.closed;
      assert.equal(over.secure(), false, 'no handshake');
      assert.equal(over.received(), '');
      held[1].socket.destroy();
      const again = await eventuallyServed(port, { tls: true });
      for (const c of [...held, again]) c.socket.destroy();
    });
  });

  // Node's own default would keep such a connection (and its slot) for 120 s: the test's timeout.
  test('HTTPS: a connection that never completes its handshake is closed after http_idle_timeout', {
    timeout: 30_000,
  }, async () => {
    const { cert, key } = makeCert(dir, 'idle', 'herald-test');
    await withTracker(
      { http: [], https: ['127.0.0.1:0'], tlsCert: cert, tlsKey: key, httpIdleTimeout: 1 },
      async (t) => {
        const silent = open(t.addresses().https[0].port); // plain TCP: no ClientHello ever
        await silent.closed;
        assert.equal(silent.received(), '');
      },
    );
  });

  // Before, stop() waited for such a connection until the handshake timeout (the test's timeout).
  test('HTTPS: stop() does not wait for connections in their handshake', { timeout: 20_000 }, async () => {
    const { cert, key } = makeCert(dir, 'stop', 'herald-test');
    await withTracker({ http: [], https: ['127.0.0.1:0'], tlsCert: cert, tlsKey: key }, async (t) => {
      const silent = open(t.addresses().https[0].port);
      await new Promise((r) => silent.socket.once('connect', r));
      await sleep(100); // Herald's loop accepts it
      await t.stop();
      await silent.closed;
    });
  });

  test('WebSocket listeners and HTTP listeners share one count per address', async () => {
    await withTracker({ http: ['127.0.0.1:0'], ws: ['127.0.0.1:0'] }, async (t) => {
      const a = t.addresses();
      const httpPort = a.http[0].port;
      const wsPort = a.ws[0].port;
      const ws = (port: number) =>
        new Promise<WebSocket | null>((resolve) => {
          const w = new WebSocket(`ws://127.0.0.1:${port}/announce`);
          w.on('open', () => resolve(w));
          w.on('error', () => resolve(null));
        });
      const sockets = [await ws(wsPort), await ws(wsPort), await ws(httpPort)];
      assert.ok(
        sockets.every((w) => w !== null),
        'under the cap: upgraded',
      );
      const c = open(httpPort);
      assert.ok(await served(c));
      assert.equal(await ws(wsPort), null, 'the fifth connection (on the WebSocket listener) is refused');
      await refused(open(httpPort));
      sockets[0]!.terminate();
      for (let i = 0; ; i++) {
        const w = await ws(wsPort);
        if (w !== null) {
          w.terminate();
          break;
        }
        assert.ok(i < 200, 'the freed slot is given back');
        await sleep(20);
      }
      for (const w of sockets) w?.terminate();
      c.socket.destroy();
    });
  });

  test('batched: connections that send nothing count, and the idle sweep gives their slots back', {
    skip: batchedSkip,
  }, async () => {
    await withTracker({ http: ['127.0.0.1:0'], httpIo: 'batched', httpIdleTimeout: 2 }, async (t) => {
      const port = t.addresses().http[0].port;
      const silent = Array.from({ length: MAX }, () => open(port));
      // TCP_DEFER_ACCEPT: a silent connection is accepted after about a second.
      while ((await t.stats.snapshot()).http!.connections < MAX) await sleep(50);
      await refused(open(port));
      await Promise.all(silent.map((c) => c.closed));
      assert.ok(await served(open(port)), 'the idle sweep released their slots');
    });
  });
});
