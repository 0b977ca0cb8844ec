/**
 * A listener that cannot bind says which address and which configuration key it came from, for
 * every kind of listener (HTTP on node:net and on the batched addon, HTTPS, UDP on dgram and on
 * the batched addon, WebSocket, the portal's own), from createTracker and from `herald serve`.
 */
import assert from 'node:assert/strict';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { HeraldConfig } from '../../src/config/schema.ts';
import { loadHttpBatchAddon } from '../../src/frontend/http/batch.ts';
import { loadUdpBatchAddon } from '../../src/frontend/udp/batch.ts';
import { createTracker } from '../../src/index.ts';
import { runHerald } from '../e2e/tracker-process.ts';
import { makeCert } from '../helpers/tls.ts';

let dir: string;
let tcp: Server;
let tcp6: Server;
let udp: UdpSocket;
/** Ports held by this test: Herald is asked to listen on them too. */
let tcpPort: number;
let tcp6Port: number;
let udpPort: number;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'herald-listen-'));
  tcp = createServer();
  await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
  tcpPort = (tcp.address() as { port: number }).port;
  tcp6 = createServer();
  await new Promise<void>((r) => tcp6.listen({ port: 0, host: '::1', ipv6Only: true }, r));
  tcp6Port = (tcp6.address() as { port: number }).port;
  udp = createSocket('udp4');
  await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
  udpPort = udp.address().port;
});
after(async () => {
  await new Promise((r) => tcp.close(r));
  await new Promise((r) => tcp6.close(r));
  await new Promise((r) => udp.close(() => r(null)));
  rmSync(dir, { recursive: true, force: true });
});

async function startFails(cfg: Partial<HeraldConfig>, message: string): Promise<void> {
  const t = createTracker({
    http: [],
    udp: [],
    logLevel: 'silent',
    databaseUrl: 'sqlite::memory:',
    ...cfg,
  });
  await assert.rejects(t.start(), (err: Error) => {
    assert.equal(err.message, message);
    return true;
  });
}

describe('a listener that cannot bind names its address and its key', () => {
  test('http on node:net and on the batched addon (IPv4 and IPv6)', async (t) => {
    await startFails(
      { http: [`127.0.0.1:${tcpPort}`], httpIo: 'node' },
      `cannot listen on http 127.0.0.1:${tcpPort} (key "http"): address already in use`,
    );
    await startFails(
      { http: [`[::1]:${tcp6Port}`], httpIo: 'node' },
      `cannot listen on http [::1]:${tcp6Port} (key "http"): address already in use`,
    );
    if (loadHttpBatchAddon() === null) {
      t.diagnostic('the http_batch addon is not built: its case is skipped');
      return;
    }
    await startFails(
      { http: ['127.0.0.1:0', `127.0.0.1:${tcpPort}`], httpIo: 'batched' },
      `cannot listen on http 127.0.0.1:${tcpPort} (key "http"): address already in use`,
    );
    await startFails(
      { http: [`[::1]:${tcp6Port}`], httpIo: 'batched' },
      `cannot listen on http [::1]:${tcp6Port} (key "http"): address already in use`,
    );
  });

  test('https, ws and portal_listen', async () => {
    const { cert, key } = makeCert(dir, 'c', 'herald-test');
    await startFails(
      { https: [`127.0.0.1:${tcpPort}`], tlsCert: cert, tlsKey: key },
      `cannot listen on https 127.0.0.1:${tcpPort} (key "https"): address already in use`,
    );
    await startFails(
      { ws: [`127.0.0.1:${tcpPort}`] },
      `cannot listen on ws 127.0.0.1:${tcpPort} (key "ws"): address already in use`,
    );
    await startFails(
      { http: ['127.0.0.1:0'], portal: 'on', portalListen: [`127.0.0.1:${tcpPort}`] },
      `cannot listen on http 127.0.0.1:${tcpPort} (key "portal_listen"): address already in use`,
    );
  });

  test('udp on dgram and on the batched addon', async (t) => {
    await startFails(
      { udp: [`127.0.0.1:${udpPort}`], udpIo: 'dgram' },
      `cannot listen on udp 127.0.0.1:${udpPort} (key "udp"): address already in use`,
    );
    if (loadUdpBatchAddon() === null) {
      t.diagnostic('the udp_batch addon is not built: its case is skipped');
      return;
    }
    await startFails(
      { udp: [`127.0.0.1:${udpPort}`], udpIo: 'batched' },
      `cannot listen on udp 127.0.0.1:${udpPort} (key "udp"): address already in use`,
    );
  });

  test('herald serve prints it and exits with status 1', () => {
    const r = runHerald([
      'serve',
      '--data-dir',
      join(dir, 'data'),
      '--http',
      'off',
      '--udp',
      `127.0.0.1:${udpPort}`,
    ]);
    assert.equal(r.status, 1, r.stderr);
    assert.ok(
      r.stderr.includes(
        `herald: cannot listen on udp 127.0.0.1:${udpPort} (key "udp"): address already in use\n`,
      ),
      r.stderr,
    );
  });
});
