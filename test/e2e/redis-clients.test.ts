/**
 * Several instances, one set of swarms, with real BitTorrent clients (issue #14): two
 * `herald serve` processes on one Redis; a client seeding through instance A and another
 * downloading through instance B (each .torrent names only its own instance) download from each
 * other, over HTTP and over UDP. DHT, local discovery and peer exchange are off, so the shared
 * swarm is the only way the two meet.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { deleteKeys, REDIS_URL, sharedServe, testPrefix } from '../helpers/redis.ts';
import { killChildren, LT, PY, requireTool, run, waitExit } from './processes.ts';
import { type RunningTracker, startTracker } from './tracker-process.ts';

describe('real clients on two instances sharing one Redis', { skip: REDIS_URL === '' }, () => {
  const prefix = testPrefix();
  const secret = randomBytes(32).toString('hex');
  let work: string;
  let payload: Buffer;
  let a: RunningTracker;
  let b: RunningTracker;

  before(async () => {
    requireTool(PY, 'python3');
    execFileSync(PY, ['-c', 'import libtorrent'], { stdio: 'pipe' });
    requireTool('/usr/bin/aria2c', 'aria2');
    work = mkdtempSync(join(tmpdir(), 'herald-redis-clients-'));
    payload = randomBytes(2 * 1024 * 1024);
    mkdirSync(join(work, 'seed'));
    writeFileSync(join(work, 'seed', 'payload.bin'), payload);
    const args = [...sharedServe(REDIS_URL, prefix, secret), '--interval', '5', '--min-interval', '1'];
    [a, b] = await Promise.all([startTracker(args), startTracker(args)]);
  });

  after(async () => {
    killChildren();
    await Promise.all([a?.stop(), b?.stop()]);
    await deleteKeys(REDIS_URL, prefix);
    if (work) rmSync(work, { recursive: true, force: true });
  });

  /** One payload, two .torrent files naming one instance each: the same info hash. */
  function torrents(name: string, urlA: string, urlB: string, kind: 'v1' | 'hybrid'): [string, string] {
    const made = [urlA, urlB].map((url, i) => {
      const out = join(work, `${name}-${i}.torrent`);
      const said = execFileSync(PY, [LT, 'make', join(work, 'seed', 'payload.bin'), out, url, kind], {
        encoding: 'utf8',
      });
      return { out, infoHash: (JSON.parse(said.trim().split('\n').pop()!) as { infoHash: string }).infoHash };
    });
    assert.equal(made[0].infoHash, made[1].infoHash, 'one torrent, whichever tracker it names');
    return [made[0].out, made[1].out];
  }

  /** A libtorrent seeder that has had its first answer from the tracker. */
  async function seed(torrent: string) {
    const s = run(PY, [LT, 'seed', torrent, join(work, 'seed'), '127.0.0.1', '120']);
    const deadline = Date.now() + 20_000;
    while (!s.out().includes('tracker_reply_alert')) {
      if (Date.now() > deadline || s.child.exitCode !== null)
        throw new Error(`seeder never reached Herald:\n${s.out()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    return s;
  }

  describe('seeding through A, downloading through B', { timeout: 180_000, concurrency: true }, () => {
    test('HTTP: aria2 through B downloads from a libtorrent seeder announced to A', async () => {
      const [forA, forB] = torrents(
        'http',
        `http://127.0.0.1:${a.http[0].port}/announce`,
        `http://127.0.0.1:${b.http[0].port}/announce`,
        'v1',
      );
      const seeder = await seed(forA);
      const dir = join(work, 'aria2');
      const aria = run('/usr/bin/aria2c', [
        '--enable-dht=false',
        '--enable-dht6=false',
        '--bt-enable-lpd=false',
        '--enable-peer-exchange=false',
        '--seed-time=0',
        `--dir=${dir}`,
        `--listen-port=${40000 + Math.floor(Math.random() * 20000)}`,
        '--console-log-level=warn',
        '--summary-interval=0',
        '--bt-stop-timeout=60',
        forB,
      ]);
      const code = await waitExit(aria.child, 60_000);
      seeder.child.kill('SIGTERM');
      assert.equal(code, 0, `aria2c failed:\n${aria.out()}\nseeder:\n${seeder.out()}`);
      assert.ok(readFileSync(join(dir, 'payload.bin')).equals(payload), 'downloaded bytes match');
    });

    test('UDP: libtorrent through B downloads from a libtorrent seeder announced to A', async () => {
      const [forA, forB] = torrents(
        'udp',
        `udp://127.0.0.1:${a.udp[0].port}/announce`,
        `udp://127.0.0.1:${b.udp[0].port}/announce`,
        'hybrid',
      );
      const seeder = await seed(forA);
      const into = join(work, 'lt-udp');
      mkdirSync(into);
      const fetch = run(PY, [LT, 'fetch', forB, into, '127.0.0.1', '60']);
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
        new RegExp(`udp://127\\.0\\.0\\.1:${b.udp[0].port}/announce\\)\\[[^\\]]+\\] v1 received peers: 1`),
        'the peer came from B over UDP',
      );
    });
  });
});
