/**
 * End-to-end, private mode with real clients, Herald as `herald serve --workers 2` (issue #16):
 * - the connectable check: a libtorrent seeder on loopback is found connectable (Herald's BEP 3
 *   handshake to its listen port is answered), as `herald member show --json` reports, the check
 *   run by the worker that owns the swarm;
 * - the peer limit: with `peers_per_torrent` 1, a member's second client on a torrent is refused
 *   with the tracker's reason (libtorrent's tracker_error_alert) and gets no data, while the
 *   member's first client and other members' libtorrent and aria2 clients download the file
 *   completely from the seeder.
 *
 * libtorrent (python3-libtorrent, through lt_client.py) and aria2c are required, as in
 * private.test.ts.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseMetainfo, personalise } from '../../src/protocol/metainfo/index.ts';
import { aria2, killChildren, LT, PY, requireTool, run, waitExit } from './processes.ts';
import { type RunningTracker, startTracker } from './tracker-process.ts';

const SIZE = 2 * 1024 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface TorrentNow {
  torrent_id: number;
  name: string;
  state: string;
  connectable: string;
}
interface Member {
  id: number;
  username: string;
  passkey: string;
  torrents_now: TorrentNow[];
}
interface Torrent {
  id: number;
  info_hash: string | null;
}

/** lt_client.py prints one JSON object a line. */
function events(out: string): Record<string, unknown>[] {
  const list: Record<string, unknown>[] = [];
  for (const line of out.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      list.push(JSON.parse(line));
    } catch {}
  }
  return list;
}

function json<T>(r: { status: number; stdout: string; stderr: string }): T {
  assert.equal(r.status, 0, `herald failed: ${r.stderr}${r.stdout}`);
  return JSON.parse(r.stdout) as T;
}

let work: string;
let payload: Buffer;
let tracker: RunningTracker;
let httpPort: number;
let torrentFile: string;
let registered: Torrent;
const members: Record<string, Member> = {};

/** The torrent with the member's personal announce URL (the info dictionary is unchanged). */
function personalTorrent(name: string, passkey: string): string {
  const parsed = parseMetainfo(readFileSync(torrentFile));
  assert.ok(parsed.ok, parsed.ok ? '' : parsed.error);
  const p = personalise(parsed.torrent, { announce: `http://127.0.0.1:${httpPort}/announce/${passkey}` });
  const out = join(work, `${name}.torrent`);
  writeFileSync(out, p.bytes);
  return out;
}

/** Starts a libtorrent client and waits until Herald has answered one of its announces. */
async function started(args: string[]): Promise<ReturnType<typeof run>> {
  const c = run(PY, [LT, ...args]);
  const deadline = Date.now() + 20_000;
  while (!c.out().includes('tracker_reply_alert')) {
    if (Date.now() > deadline || c.child.exitCode !== null)
      throw new Error(`the client never reached Herald:\n${c.out().slice(-3000)}`);
    await sleep(100);
  }
  return c;
}

before(
  async () => {
    requireTool(PY, 'python3');
    requireTool('/usr/bin/aria2c', 'aria2');
    work = mkdtempSync(join(tmpdir(), 'herald-connect-e2e-'));
    payload = randomBytes(SIZE);
    mkdirSync(join(work, 'seed'));
    writeFileSync(join(work, 'seed', 'payload.bin'), payload);
    tracker = await startTracker(
      [
        '--mode',
        'private',
        '--workers',
        '2',
        '--http',
        '127.0.0.1:0',
        '--udp',
        'off',
        '--policy-refresh',
        '1',
        '--flush-interval',
        '1',
        '--interval',
        '60',
        '--min-interval',
        '5',
        '--peer-timeout',
        '120',
        '--peers-per-torrent',
        '1',
        '--connectable-check',
        'private',
        // Every client here listens on 127.0.0.1.
        '--connectable-private-addresses',
        '--connectable-timeout',
        '5',
      ],
      { ready: 'herald workers running' },
    );
    httpPort = tracker.http[0].port;
    for (const name of ['seeder', 'multi', 'other', 'aria'])
      members[name] = json<Member>(tracker.admin(['member', 'add', name, '--json']));
    // v1: aria2 reads v1 torrents only.
    torrentFile = join(work, 'v1.torrent');
    execFileSync(PY, [
      LT,
      'make',
      join(work, 'seed', 'payload.bin'),
      torrentFile,
      `http://127.0.0.1:${httpPort}/announce`,
      'v1',
      'private',
    ]);
    registered = json<Torrent>(tracker.admin(['torrent', 'add', torrentFile, '--json']));
    // policy_refresh is 1 s: the workers know the members and the torrent by then.
    await sleep(2500);
  },
  { timeout: 60_000 },
);

after(async () => {
  killChildren();
  await tracker?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('real clients against herald serve --workers 2', { timeout: 120_000 }, () => {
  test('a libtorrent seeder on loopback is connectable', async () => {
    const seeder = await started([
      'seed',
      personalTorrent('seeder', members.seeder.passkey),
      join(work, 'seed'),
      '127.0.0.1',
      '110',
    ]);
    const deadline = Date.now() + 20_000;
    let now: TorrentNow[] = [];
    while (Date.now() < deadline) {
      now = json<Member>(tracker.admin(['member', 'show', 'seeder', '--json'])).torrents_now;
      if (now[0]?.connectable === 'yes') break;
      await sleep(500);
    }
    assert.deepEqual(
      now.map((t) => [t.torrent_id, t.state, t.connectable]),
      [[registered.id, 'seeding', 'yes']],
      `member show --json:\n${JSON.stringify(now)}\n${seeder.out().slice(-2000)}\n${tracker.stderr().slice(-3000)}`,
    );
    const text = tracker.admin(['member', 'show', 'seeder']);
    assert.match(text.stdout, /seeding +#\d+ .*connectable: yes/);
  });

  test('peers_per_torrent 1: the second client of a member is refused, the others download', async () => {
    // The member's first client is admitted and downloads (it lingers, holding its place).
    const firstDir = join(work, 'multi-1');
    mkdirSync(firstDir);
    const first = await started([
      'fetch',
      personalTorrent('multi-1', members.multi.passkey),
      firstDir,
      '127.0.0.1',
      '60',
      'linger=20',
    ]);
    // The second client of the same member on the same torrent: over the limit.
    const secondDir = join(work, 'multi-2');
    mkdirSync(secondDir);
    const second = run(PY, [
      LT,
      'fetch',
      personalTorrent('multi-2', members.multi.passkey),
      secondDir,
      '127.0.0.1',
      '12',
    ]);
    // Other members' clients: libtorrent and aria2 (one client each: within the limit).
    const otherDir = join(work, 'other');
    mkdirSync(otherDir);
    const other = run(PY, [
      LT,
      'fetch',
      personalTorrent('other', members.other.passkey),
      otherDir,
      '127.0.0.1',
      '60',
    ]);
    const ariaDir = join(work, 'aria');
    const aria = aria2(personalTorrent('aria', members.aria.passkey), ariaDir, '0.05');

    const refusedCode = await waitExit(second.child, 25_000);
    const evs = events(second.out());
    const detail = `\n${second.out().slice(-3000)}`;
    assert.equal(refusedCode, 1, `the refused client timed out without completing${detail}`);
    const errors = evs.filter((e) => e.kind === 'tracker_error_alert').map((e) => String(e.message));
    assert.ok(
      errors.some((m) => /too many clients on this torrent for your account/.test(m)),
      `tracker_error_alert with the peer-limit reason${detail}`,
    );
    assert.ok(!evs.some((e) => e.kind === 'tracker_reply_alert'), `no accepted announce${detail}`);
    const status = evs.filter((e) => e.event === 'status');
    assert.ok(
      status.length > 5 && status.every((e) => e.done === 0 && e.peers === 0),
      `no peer, no data${detail}`,
    );

    assert.equal(
      await waitExit(other.child, 75_000),
      0,
      `the other member's libtorrent:\n${other.out().slice(-3000)}`,
    );
    assert.ok(
      readFileSync(join(otherDir, 'payload.bin')).equals(payload),
      "the other member's libtorrent file",
    );
    assert.equal(
      await waitExit(aria.child, 75_000),
      0,
      `the aria2 member's client:\n${aria.out().slice(-3000)}`,
    );
    assert.ok(readFileSync(join(ariaDir, 'payload.bin')).equals(payload), "the aria2 member's file");
    assert.equal(
      await waitExit(first.child, 75_000),
      0,
      `the member's first client:\n${first.out().slice(-3000)}`,
    );
    assert.ok(
      readFileSync(join(firstDir, 'payload.bin')).equals(payload),
      "the member's first client's file",
    );
  });
});
