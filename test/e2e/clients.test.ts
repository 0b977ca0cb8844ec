/**
 * End-to-end: real BitTorrent clients from Debian download a file from one another with Herald as
 * the only way to meet. DHT, local service discovery, UPnP/NAT-PMP and peer exchange are off in
 * every client and no peer is added by hand, so a completed download proves the tracker
 * introduced the peers.
 *
 * Clients: libtorrent 2.0 (python3-libtorrent, through lt_client.py), aria2c, transmission-cli.
 * These are required: if one is missing the test fails with the command that installs it
 * (scripts/test-all.sh installs them).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { aria2, killChildren, LT, PY, requireTool, run, waitExit } from './processes.ts';
import { type RunningTracker, startTracker } from './tracker-process.ts';

// Also against `--workers 2` (issue #13): the seeder's and the downloader's announces reach
// different workers (HTTP connections and UDP sources are spread by the kernel), yet they meet.
for (const workers of [1, 2]) describe(`workers: ${workers}`, () => suite(workers));

function suite(workers: number) {
  let work: string;
  let payload: Buffer;
  let tracker: RunningTracker;

  before(async () => {
    requireTool(PY, 'python3');
    execFileSync(PY, ['-c', 'import libtorrent'], { stdio: 'pipe' });
    requireTool('/usr/bin/aria2c', 'aria2');
    requireTool('/usr/bin/transmission-cli', 'transmission-cli');
    work = mkdtempSync(join(tmpdir(), 'herald-clients-'));
    payload = randomBytes(3 * 1024 * 1024);
    mkdirSync(join(work, 'seed'));
    writeFileSync(join(work, 'seed', 'payload.bin'), payload);
    tracker = await startTracker(
      [
        ...(workers > 1 ? ['--workers', String(workers)] : []),
        '--http',
        '127.0.0.1:0',
        '--http',
        '[::1]:0',
        '--udp',
        '127.0.0.1:0',
        '--interval',
        '5',
        '--min-interval',
        '1',
        '--peer-timeout',
        '30',
      ],
      workers > 1 ? { ready: 'herald workers running' } : {},
    );
  });

  after(async () => {
    killChildren();
    await tracker?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  function makeTorrent(name: string, url: string, kind: 'v1' | 'hybrid'): string {
    const out = join(work, name);
    execFileSync(PY, [LT, 'make', join(work, 'seed', 'payload.bin'), out, url, kind], { stdio: 'pipe' });
    return out;
  }

  /**
   * Starts a libtorrent seeder and waits until Herald has answered its first announce, so the
   * downloader's first announce already finds it (clients wait a long time before re-announcing).
   */
  async function seed(torrent: string, ip: string) {
    const s = run(PY, [LT, 'seed', torrent, join(work, 'seed'), ip, '120']);
    const deadline = Date.now() + 20_000;
    while (!s.out().includes('tracker_reply_alert')) {
      if (Date.now() > deadline || s.child.exitCode !== null)
        throw new Error(`seeder never reached Herald:\n${s.out()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    return s;
  }

  describe(`real clients meet only through Herald${workers > 1 ? ` (herald serve --workers ${workers})` : ''}`, {
    timeout: 240_000,
    concurrency: true,
  }, () => {
    test('HTTP: aria2 downloads from a libtorrent seeder', async () => {
      const http = tracker.http.find((a) => a.host === '127.0.0.1')!;
      const torrent = makeTorrent('http.torrent', `http://127.0.0.1:${http.port}/announce`, 'v1');
      const seeder = await seed(torrent, '127.0.0.1');
      const dir = join(work, 'aria2');
      const aria = aria2(torrent, dir);
      const code = await waitExit(aria.child, 60_000);
      seeder.child.kill('SIGTERM');
      assert.equal(code, 0, `aria2c failed:\n${aria.out()}\nseeder:\n${seeder.out()}`);
      assert.ok(readFileSync(join(dir, 'payload.bin')).equals(payload), 'downloaded bytes match');
    });

    test('UDP: libtorrent downloads from a libtorrent seeder', async () => {
      const udp = tracker.udp[0];
      const torrent = makeTorrent('udp-lt.torrent', `udp://127.0.0.1:${udp.port}/announce`, 'hybrid');
      const seeder = await seed(torrent, '127.0.0.1');
      const into = join(work, 'lt-udp');
      mkdirSync(into);
      const fetch = run(PY, [LT, 'fetch', torrent, into, '127.0.0.1', '60']);
      const code = await waitExit(fetch.child, 70_000);
      seeder.child.kill('SIGTERM');
      assert.equal(
        code,
        0,
        `libtorrent fetch failed:\n${fetch.out().slice(-3000)}\nseeder:\n${seeder.out().slice(-1500)}`,
      );
      assert.ok(readFileSync(join(into, 'payload.bin')).equals(payload), 'downloaded bytes match');
      assert.match(
        fetch.out(),
        /udp:\/\/127\.0\.0\.1:\d+\/announce\)\[[^\]]+\] v1 received peers: 1/,
        'the peer came over UDP',
      );
    });

    test('UDP: transmission-cli downloads from a libtorrent seeder', async () => {
      // Transmission 3 gets the seeder from Herald at its first announce ("Got 1 seeds from
      // tracker") but only connects to it about a minute later, hence the long timeout.
      const udp = tracker.udp[0];
      const payload2 = randomBytes(1024 * 1024);
      mkdirSync(join(work, 'seed2'));
      writeFileSync(join(work, 'seed2', 'payload2.bin'), payload2);
      const out = join(work, 'udp-tr.torrent');
      execFileSync(PY, [
        LT,
        'make',
        join(work, 'seed2', 'payload2.bin'),
        out,
        `udp://127.0.0.1:${udp.port}/announce`,
        'v1',
      ]);
      const s = run(PY, [LT, 'seed', out, join(work, 'seed2'), '127.0.0.1', '170']);
      const deadline = Date.now() + 20_000;
      while (!s.out().includes('tracker_reply_alert') && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 100));
      const dir = join(work, 'transmission');
      mkdirSync(join(dir, 'cfg'), { recursive: true });
      writeFileSync(
        join(dir, 'cfg', 'settings.json'),
        JSON.stringify({
          'dht-enabled': false,
          'lpd-enabled': false,
          'pex-enabled': false,
          'port-forwarding-enabled': false,
          'peer-port-random-on-start': true,
          'message-level': 3,
        }),
      );
      const tr = run('/usr/bin/transmission-cli', ['-g', join(dir, 'cfg'), '-w', dir, out]);
      const target = join(dir, 'payload2.bin');
      let ok = false;
      const until = Date.now() + 150_000;
      while (!ok && Date.now() < until) {
        await new Promise((r) => setTimeout(r, 500));
        ok = existsSync(target) && readFileSync(target).equals(payload2);
      }
      tr.child.kill('SIGTERM');
      s.child.kill('SIGTERM');
      assert.ok(
        ok,
        `transmission-cli did not complete:\n${tr.out().slice(-1500)}\nseeder:\n${s.out().slice(-1500)}`,
      );
      assert.match(tr.out(), /Got 1 seeds from tracker/);
    });

    test('IPv6: libtorrent downloads from libtorrent over [::1] (hybrid v1+v2 torrent)', async () => {
      const http6 = tracker.http.find((a) => a.host === '::1')!;
      const torrent = makeTorrent('v6.torrent', `http://[::1]:${http6.port}/announce`, 'hybrid');
      const seeder = await seed(torrent, '::1');
      const dir = join(work, 'lt6');
      mkdirSync(dir);
      const fetch = run(PY, [LT, 'fetch', torrent, dir, '::1', '60']);
      const code = await waitExit(fetch.child, 70_000);
      seeder.child.kill('SIGTERM');
      assert.equal(
        code,
        0,
        `libtorrent fetch failed:\n${fetch.out().slice(-3000)}\nseeder:\n${seeder.out().slice(-2000)}`,
      );
      assert.ok(readFileSync(join(dir, 'payload.bin')).equals(payload));
      assert.match(fetch.out(), /received peers: 1/, 'the peer came from the tracker');
    });
  });
}
