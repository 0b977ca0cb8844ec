/**
 * The one-file install (issue #17): `npm run build:sea` makes `herald`, which is copied alone into
 * an empty folder and run with a PATH that has no node (and no node_modules anywhere above it): it
 * prints its version, runs admin commands, and serves a private tracker whose HTTP and UDP
 * listeners use the batched addons carried inside it, to real HTTP and UDP announces, with the
 * portal's static files; `--workers 2` forks the executable itself; real BitTorrent clients (aria2 over HTTP, libtorrent over UDP) download
 * from each other through it. `npm run test:install` (scripts/test-all.sh runs it after `npm test`; the
 * build takes a while, so it is not in `npm test`). HERALD_SEA=path tests an executable built
 * already instead of building one.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { SCHEMA_VERSION } from '../../src/db/migrations.ts';
import { encode } from '../../src/protocol/bencode/index.ts';
import {
  type ConnectionId,
  parseResponse,
  writeAnnounceRequest,
  writeConnectRequest,
} from '../../src/protocol/udp/codec.ts';
import { aria2, killChildren, LT, PY, requireTool, run, waitExit } from '../e2e/processes.ts';
import { announcePath, bdecode, hashOf, httpGet, text, udpClient } from '../helpers/clients.ts';
import { serveInstalled } from './serve.ts';

const ROOT = new URL('../../', import.meta.url).pathname;
const VERSION: string = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version;

let scratch: string;
let dir: string;
let herald: string;
let env: Record<string, string>;

before(() => {
  scratch = mkdtempSync(join(tmpdir(), 'herald-sea-'));
  let built = process.env.HERALD_SEA ?? '';
  if (built === '') {
    built = join(scratch, 'build', 'herald');
    execFileSync(process.execPath, [join(ROOT, 'scripts/build-sea.ts'), '--out', built], { stdio: 'pipe' });
  }
  // Alone in an empty folder; PATH holds only an empty folder: no node, no npm, nothing.
  dir = join(scratch, 'install');
  const emptyPath = join(scratch, 'empty-path');
  mkdirSync(dir);
  mkdirSync(emptyPath);
  herald = join(dir, 'herald');
  copyFileSync(built, herald);
  execFileSync('chmod', ['755', herald]);
  env = { PATH: emptyPath, HOME: dir, TMPDIR: scratch };
  assert.equal(spawnSync('node', ['--version'], { env }).error?.message.includes('ENOENT'), true, 'no node');
});

after(() => {
  killChildren();
  rmSync(scratch, { recursive: true, force: true });
});

test('the single-file herald runs alone: version, admin commands, a private tracker over HTTP and UDP', async (t) => {
  const cli = (args: string[], input?: string) => {
    const r = spawnSync(herald, args, { cwd: dir, env, encoding: 'utf8', input, timeout: 30_000 });
    assert.equal(r.status, 0, `herald ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };

  assert.equal(
    cli(['--version']),
    `herald ${VERSION} (database schema ${SCHEMA_VERSION}; node ${process.version})\n`,
  );

  // Admin commands on the data directory, before the tracker runs.
  const flags = ['--mode', 'private', '--data-dir', './data'];
  const alice = JSON.parse(cli(['member', 'add', 'alice', '--json', ...flags])) as { passkey: string };
  const info = new Map<string, unknown>([
    ['length', 65536],
    ['name', Buffer.from('sea.bin')],
    ['piece length', 16384],
    ['pieces', Buffer.alloc(80, 3)],
  ]);
  const torrentFile = join(scratch, 'sea.torrent');
  writeFileSync(torrentFile, encode(new Map([['info', info]]) as never));
  const torrent = JSON.parse(cli(['torrent', 'add', torrentFile, '--json', ...flags])) as {
    info_hash: string;
  };
  const infoHash = Buffer.from(torrent.info_hash, 'hex');

  // The tracker.
  const tracker = await serveInstalled(herald, [...flags, '--http', '127.0.0.1:0', '--udp', '127.0.0.1:0'], {
    cwd: dir,
    env,
  });
  t.after(() => tracker.kill());
  assert.equal(tracker.fields.httpIo, 'batched', 'the HTTP addon inside the executable is loaded');
  assert.equal(tracker.fields.udpIo, 'batched', 'the UDP addon inside the executable is loaded');
  const { httpPort, udpPort } = tracker;

  // HTTP: a seeder, then a leecher that is sent the seeder.
  const announce = async (peerPort: number, left: number, uploaded = 0) => {
    const r = await httpGet(
      httpPort,
      '127.0.0.1',
      announcePath({ infoHash, port: peerPort, left, uploaded, base: `/announce/${alice.passkey}` }),
    );
    const d = bdecode(r.body);
    assert.equal(d.get('failure reason'), undefined, text(d.get('failure reason')));
    return d;
  };
  await announce(7001, 0);
  const leecher = await announce(7002, 100);
  assert.equal((leecher.get('peers') as Buffer).readUInt16BE(4), 7001);
  await announce(7001, 0, 4096);

  // UDP (BEP 15, passkey in BEP 41 URL data): the seeder is there too.
  const udp = await udpClient(4);
  t.after(() => udp.close());
  const buf = Buffer.alloc(1024);
  const c = parseResponse(
    (await udp.request(buf.subarray(0, writeConnectRequest(buf, 1)), udpPort))!,
    16,
  ) as { connectionId: ConnectionId };
  const n = writeAnnounceRequest(buf, {
    connectionId: c.connectionId,
    transactionId: 2,
    infoHash,
    peerId: Buffer.alloc(20, 9),
    downloaded: 0,
    left: 100,
    uploaded: 0,
    event: 2,
    numWant: 10,
    port: 7003,
    urlData: `/announce/${alice.passkey}`,
  });
  const reply = (await udp.request(buf.subarray(0, n), udpPort))!;
  const a = parseResponse(reply, reply.length, 4) as { action: number; seeders: number };
  assert.equal(a.action, 1, 'a UDP announce answer');
  assert.equal(a.seeders, 1);

  // The portal's static files come from inside the executable.
  const chart = await httpGet(httpPort, '127.0.0.1', '/static/chart.umd.min.js');
  assert.equal(chart.status, 200);
  assert.ok(chart.body.length > 10_000);

  // Stop; the accounting is flushed; an admin command reads it.
  await tracker.stop();
  assert.equal(JSON.parse(cli(['member', 'show', 'alice', '--json', ...flags])).uploaded, 4096);
  // The addons were loaded from private temporary folders, removed at once.
  assert.deepEqual(
    readdirSync(scratch).filter((f) => f.startsWith('herald-addon-')),
    [],
  );
});

test('herald serve --workers 2 from the single file: the workers are the executable itself', async (t) => {
  const tracker = await serveInstalled(
    herald,
    ['--workers', '2', '--data-dir', './workers', '--http', '127.0.0.1:0', '--udp', 'off'],
    { cwd: dir, env },
  );
  t.after(() => tracker.kill());
  let workers = 0;
  for (let i = 0; i < 100 && workers !== 2; i++) {
    await new Promise((r) => setTimeout(r, 100));
    const r = await httpGet(tracker.httpPort, '127.0.0.1', '/stats').catch(() => null);
    if (r?.status === 200) workers = JSON.parse(r.body.toString()).workers ?? 0;
  }
  assert.equal(workers, 2, '/stats adds up two workers');
  const a = bdecode(
    (
      await httpGet(
        tracker.httpPort,
        '127.0.0.1',
        announcePath({ infoHash: hashOf(9, 41), port: 7009, left: 0 }),
      )
    ).body,
  );
  assert.equal(a.get('failure reason'), undefined);
  await tracker.stop();
});

test('real clients meet through the single-file herald: aria2 over HTTP, libtorrent over UDP', async (t) => {
  requireTool(PY, 'python3-libtorrent');
  requireTool('/usr/bin/aria2c', 'aria2');
  const tracker = await serveInstalled(
    herald,
    [
      '--data-dir',
      './open',
      '--http',
      '127.0.0.1:0',
      '--udp',
      '127.0.0.1:0',
      '--interval',
      '5',
      '--min-interval',
      '1',
    ],
    { cwd: dir, env },
  );
  t.after(() => tracker.kill());
  const work = join(scratch, 'clients');
  const payload = randomBytes(1024 * 1024);
  mkdirSync(join(work, 'seed'), { recursive: true });
  writeFileSync(join(work, 'seed', 'payload.bin'), payload);
  const download = async (kind: 'http' | 'udp') => {
    const url =
      kind === 'http'
        ? `http://127.0.0.1:${tracker.httpPort}/announce`
        : `udp://127.0.0.1:${tracker.udpPort}/announce`;
    const torrent = join(work, `${kind}.torrent`);
    execFileSync(PY, [LT, 'make', join(work, 'seed', 'payload.bin'), torrent, url, 'v1'], { stdio: 'pipe' });
    const seeder = run(PY, [LT, 'seed', torrent, join(work, 'seed'), '127.0.0.1', '90']);
    for (const until = Date.now() + 20_000; !seeder.out().includes('tracker_reply_alert'); ) {
      assert.ok(
        Date.now() < until && seeder.child.exitCode === null,
        `seeder never reached Herald:\n${seeder.out()}`,
      );
      await new Promise((r) => setTimeout(r, 100));
    }
    const into = join(work, kind);
    mkdirSync(into);
    const client =
      kind === 'http' ? aria2(torrent, into) : run(PY, [LT, 'fetch', torrent, into, '127.0.0.1', '60']);
    const code = await waitExit(client.child, 70_000);
    seeder.child.kill('SIGTERM');
    assert.equal(
      code,
      0,
      `${kind} download failed:\n${client.out().slice(-2000)}\nseeder:\n${seeder.out().slice(-1000)}`,
    );
    assert.ok(readFileSync(join(into, 'payload.bin')).equals(payload), `${kind}: the downloaded bytes match`);
  };
  await Promise.all([download('http'), download('udp')]);
  await tracker.stop();
});
