/**
 * End-to-end, private mode: real BitTorrent clients download a private torrent (BEP 27 flag set)
 * through personal announce URLs that carry each member's passkey, over HTTP and over UDP (BEP 41
 * URL data), with Herald as the only way to meet (no DHT, PEX, LSD). Members and torrents are
 * created with the admin CLI on the running tracker's database; the downloads end up in the
 * members' accounting and the torrent's snatch count. Clients with an unknown passkey, no passkey
 * or a banned account are refused with the tracker's message and get no data, although a seeder
 * is online the whole time.
 *
 * libtorrent (python3-libtorrent, through lt_client.py) and aria2c are required: if one is
 * missing the test fails with the command that installs it (scripts/test-all.sh installs them).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseMetainfo, personalise } from '../../src/protocol/metainfo/index.ts';
import { writeAnnounceRequest, writeConnectRequest } from '../../src/protocol/udp/codec.ts';
import { announcePath, bdecode, httpGet, text, udpClient } from '../helpers/clients.ts';
import { aria2, killChildren, LT, PY, requireTool, run, waitExit } from './processes.ts';
import { type RunningTracker, startTracker } from './tracker-process.ts';

const SIZE = 2 * 1024 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** lt_client.py prints one JSON object a line (Python tracebacks are not JSON). */
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

interface Member {
  username: string;
  passkey: string;
  announce_urls: string[];
  status: string;
  uploaded: number;
  downloaded: number;
}
interface Torrent {
  info_hash: string | null;
  info_hash_v2: string | null;
  private: boolean;
  snatches: number;
}

let work: string;
let payload: Buffer;
let tracker: RunningTracker;
let httpPort: number;
let udpPort: number;
const members: Record<string, Member> = {};
/** Registered torrents: hybrid (libtorrent) and v1 (aria2 reads v1 only). */
const torrents: Record<'hybrid' | 'v1', { file: string; registered: Torrent }> = {} as never;
const seeders: ReturnType<typeof run>[] = [];

/** The torrent as a member downloads it from the site: announce URL with the member's passkey. */
function personalTorrent(kind: 'hybrid' | 'v1', name: string, announce: string): string {
  const parsed = parseMetainfo(readFileSync(torrents[kind].file));
  assert.ok(parsed.ok, parsed.ok ? '' : parsed.error);
  const p = personalise(parsed.torrent, { announce });
  // Only the announce URL outside the info dictionary changed: same hashes as registered.
  assert.equal(p.torrent.infoHashV1?.toString('hex'), torrents[kind].registered.info_hash);
  assert.equal(p.torrent.infoHashV2?.toString('hex') ?? null, torrents[kind].registered.info_hash_v2);
  assert.equal(p.torrent.private, true);
  const out = join(work, `${name}.torrent`);
  writeFileSync(out, p.bytes);
  return out;
}

const httpUrl = (passkey: string) => `http://127.0.0.1:${httpPort}/announce/${passkey}`;
const udpUrl = (passkey: string) => `udp://127.0.0.1:${udpPort}/announce/${passkey}`;

/** One HTTP announce as `passkey` on the v1 torrent (event=stopped: leaves no peer behind). */
async function probe(passkey: string): Promise<string | undefined> {
  const r = await httpGet(
    httpPort,
    '127.0.0.1',
    announcePath({
      infoHash: Buffer.from(torrents.v1.registered.info_hash!, 'hex'),
      port: 9,
      peerId: Buffer.from('-HT0001-privateprobe'),
      base: `/announce/${passkey}`,
      event: 'stopped',
    }),
  );
  const failure = bdecode(r.body).get('failure reason');
  return failure === undefined ? undefined : text(failure);
}

/** Polls until the running tracker has applied the CLI's changes (policy_refresh is 1 s). */
async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`the tracker never applied: ${what}`);
    await sleep(200);
  }
}

/** Seeds as `seeder` and waits until Herald has answered its first announce. */
async function seed(torrent: string): Promise<ReturnType<typeof run>> {
  // graceful: SIGTERM sends event=stopped with the uploaded counter, which the accounting needs.
  const s = run(PY, [LT, 'seed', torrent, join(work, 'seed'), '127.0.0.1', '110', 'graceful']);
  seeders.push(s);
  const deadline = Date.now() + 20_000;
  while (!s.out().includes('tracker_reply_alert')) {
    if (Date.now() > deadline || s.child.exitCode !== null)
      throw new Error(`seeder never reached Herald:\n${s.out()}`);
    await sleep(100);
  }
  return s;
}

before(
  async () => {
    requireTool(PY, 'python3');
    try {
      execFileSync(PY, ['-c', 'import libtorrent'], { stdio: 'pipe' });
    } catch (err) {
      throw new Error(
        `${PY} cannot import libtorrent: install it with "apt-get install -y python3-libtorrent" ` +
          `(scripts/test-all.sh does)\n${(err as { stderr?: Buffer }).stderr ?? err}`,
      );
    }
    requireTool('/usr/bin/aria2c', 'aria2');
    work = mkdtempSync(join(tmpdir(), 'herald-private-e2e-'));
    payload = randomBytes(SIZE);
    mkdirSync(join(work, 'seed'));
    writeFileSync(join(work, 'seed', 'payload.bin'), payload);
    tracker = await startTracker([
      '--mode',
      'private',
      '--http',
      '127.0.0.1:0',
      '--udp',
      '127.0.0.1:0',
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
    ]);
    httpPort = tracker.http[0].port;
    udpPort = tracker.udp[0].port;

    for (const name of ['seeder', 'leecher', 'aria', 'mallory']) {
      const m = json<Member>(tracker.admin(['member', 'add', name, '--json']));
      assert.match(m.passkey, /^[0-9a-f]{32}$/);
      assert.ok(m.announce_urls.some((u) => u.endsWith(`/announce/${m.passkey}`)));
      members[name] = m;
    }
    for (const kind of ['hybrid', 'v1'] as const) {
      const file = join(work, `${kind}.torrent`);
      // The URL in the file is replaced per member below; the info dictionary has private=1.
      execFileSync(PY, [
        LT,
        'make',
        join(work, 'seed', 'payload.bin'),
        file,
        `http://127.0.0.1:${httpPort}/announce`,
        kind,
        'private',
      ]);
      const registered = json<Torrent>(tracker.admin(['torrent', 'add', file, '--json']));
      assert.equal(registered.private, true, 'the torrent carries the private flag');
      assert.match(registered.info_hash ?? '', /^[0-9a-f]{40}$/);
      if (kind === 'hybrid') assert.match(registered.info_hash_v2 ?? '', /^[0-9a-f]{64}$/);
      torrents[kind] = { file, registered };
    }

    await until('new members and torrents', async () => (await probe(members.mallory.passkey)) === undefined);
    json(tracker.admin(['member', 'ban', 'mallory', '--json']));
    await until('the ban', async () => /banned/.test((await probe(members.mallory.passkey)) ?? ''));

    // The seeder announces over HTTP with its passkey and stays online for every test below.
    await seed(personalTorrent('hybrid', 'seeder-hybrid', httpUrl(members.seeder.passkey)));
    await seed(personalTorrent('v1', 'seeder-v1', httpUrl(members.seeder.passkey)));
  },
  { timeout: 60_000 },
);

after(async () => {
  killChildren();
  await tracker?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** The text of Herald's BEP 15 error to an announce of the hybrid torrent with this URL data. */
async function udpAnnounceError(urlData: string): Promise<string> {
  const c = await udpClient(4);
  try {
    const buf = new Uint8Array(1024);
    const connect = await c.request(buf.slice(0, writeConnectRequest(buf, 1)), udpPort);
    assert.ok(connect !== null && connect.readUInt32BE(0) === 0, 'connect answered');
    const n = writeAnnounceRequest(buf, {
      connectionId: { hi: connect.readUInt32BE(8), lo: connect.readUInt32BE(12) },
      transactionId: 2,
      infoHash: Buffer.from(torrents.hybrid.registered.info_hash!, 'hex'),
      peerId: Buffer.from('-HT0001-privateprobe'),
      downloaded: 0,
      left: SIZE,
      uploaded: 0,
      event: 2,
      numWant: 50,
      port: 9,
      urlData,
    });
    const r = await c.request(buf.slice(0, n), udpPort);
    assert.ok(r !== null && r.readUInt32BE(0) === 3, 'an error packet (action 3)');
    return r.subarray(8).toString('utf8');
  } finally {
    c.close();
  }
}

/** A libtorrent download that must be refused: the tracker's message, and no byte of payload. */
async function refused(name: string, announce: string, message: RegExp): Promise<void> {
  const torrent = personalTorrent('hybrid', name, announce);
  const into = join(work, name);
  mkdirSync(into);
  const c = run(PY, [LT, 'fetch', torrent, into, '127.0.0.1', '15']);
  const code = await waitExit(c.child, 25_000);
  const evs = events(c.out());
  const detail = `\n${c.out().slice(-3000)}`;
  assert.equal(code, 1, `the refused client timed out without completing${detail}`);
  const errors = evs.filter((e) => e.kind === 'tracker_error_alert').map((e) => String(e.message));
  assert.ok(
    errors.some((m) => message.test(m)),
    `tracker_error_alert with ${message}${detail}`,
  );
  assert.ok(!evs.some((e) => e.kind === 'tracker_reply_alert'), `no successful announce${detail}`);
  const status = evs.filter((e) => e.event === 'status');
  assert.ok(status.length > 5, `status lines${detail}`);
  assert.ok(
    status.every((e) => e.done === 0 && e.peers === 0),
    `no peer, no data${detail}`,
  );
}

describe('private torrents between real clients', { timeout: 60_000, concurrency: true }, () => {
  test('libtorrent downloads over UDP (passkey in BEP 41 URL data) from a libtorrent seeder (HTTP)', async () => {
    const torrent = personalTorrent('hybrid', 'leecher', udpUrl(members.leecher.passkey));
    const into = join(work, 'leecher');
    mkdirSync(into);
    // linger: the tracker hears event=completed, then event=stopped with the final counters.
    const fetch = run(PY, [LT, 'fetch', torrent, into, '127.0.0.1', '60', 'linger=2']);
    const code = await waitExit(fetch.child, 75_000);
    assert.equal(code, 0, `libtorrent fetch failed:\n${fetch.out().slice(-3000)}`);
    assert.ok(readFileSync(join(into, 'payload.bin')).equals(payload), 'downloaded bytes match');
    assert.match(
      fetch.out(),
      new RegExp(
        `udp://127\\.0\\.0\\.1:${udpPort}/announce/${members.leecher.passkey}\\)[^"]* received peers: 1`,
      ),
      `the peer came over UDP with the passkey:\n${fetch.out().slice(-3000)}`,
    );
  });

  test('aria2 downloads the v1 torrent over HTTP from the libtorrent seeder', async () => {
    const torrent = personalTorrent('v1', 'aria', httpUrl(members.aria.passkey));
    const dir = join(work, 'aria2');
    // Seeding a few seconds: with --seed-time=0 aria2 sends event=stopped (left=0) instead of
    // event=completed, and only event=completed counts as a snatch.
    const aria = aria2(torrent, dir, '0.05');
    const code = await waitExit(aria.child, 75_000);
    assert.equal(code, 0, `aria2c failed:\n${aria.out()}`);
    assert.ok(readFileSync(join(dir, 'payload.bin')).equals(payload), 'downloaded bytes match');
  });

  test('an unknown passkey is refused over HTTP', () =>
    refused('wrong-http', httpUrl(randomBytes(16).toString('hex')), /unknown passkey/));

  test('an unknown passkey is refused over UDP', async () => {
    const passkey = randomBytes(16).toString('hex');
    // libtorrent 2.0 drops the text of UDP errors (udp_tracker_connection.cpp builds the message
    // from the whole packet, whose first byte, of the action, is NUL), so it shows "" ...
    await refused('wrong-udp', udpUrl(passkey), /udp:.*tracker sent a failure message/);
    // ... the packet itself carries the reason.
    assert.match(await udpAnnounceError(`/announce/${passkey}`), /unknown passkey/);
  });

  test('no passkey is refused', () =>
    refused('no-passkey', `http://127.0.0.1:${httpPort}/announce`, /private tracker/));

  test('a banned member is refused', () => refused('banned', httpUrl(members.mallory.passkey), /banned/));
});

test('the transfers are in the accounting: downloaded, uploaded, snatches', { timeout: 30_000 }, async () => {
  // SIGTERM with 'graceful': the seeders announce event=stopped with their uploaded counters.
  for (const s of seeders) s.child.kill('SIGTERM');
  for (const s of seeders) assert.equal(await waitExit(s.child, 10_000), 0, s.out().slice(-2000));
  // Two CLI runs a poll (`member list` and `torrent list` carry the counters).
  const read = () => {
    const ms = json<Member[]>(tracker.admin(['member', 'list', '--json']));
    const ts = json<Torrent[]>(tracker.admin(['torrent', 'list', '--json']));
    const member = (name: string) => ms.find((m) => m.username === name)!;
    const torrent = (kind: 'hybrid' | 'v1') =>
      ts.find((t) => t.info_hash === torrents[kind].registered.info_hash)!;
    return {
      seeder: member('seeder'),
      leecher: member('leecher'),
      aria: member('aria'),
      mallory: member('mallory'),
      hybrid: torrent('hybrid'),
      v1: torrent('v1'),
    };
  };
  // Accounting is written every second (--flush-interval 1).
  const deadline = Date.now() + 10_000;
  let s = read();
  while (
    !(s.seeder.uploaded >= 2 * SIZE && s.leecher.downloaded >= SIZE && s.aria.downloaded >= SIZE) &&
    Date.now() < deadline
  ) {
    await sleep(500);
    s = read();
  }
  await sleep(1500); // one more flush: nothing more may arrive (no double counting)
  s = read();
  const detail = `\n${JSON.stringify(s, null, 1)}`;
  // Each download fetched the payload once: a hybrid's v1 and v2 announces are not counted twice.
  assert.ok(s.leecher.downloaded >= SIZE && s.leecher.downloaded < 1.5 * SIZE, `leecher${detail}`);
  assert.ok(s.aria.downloaded >= SIZE && s.aria.downloaded < 1.5 * SIZE, `aria${detail}`);
  // The seeder uploaded the payload to both leechers (one per torrent).
  assert.ok(s.seeder.uploaded >= 2 * SIZE && s.seeder.uploaded < 3 * SIZE, `seeder${detail}`);
  assert.equal(s.seeder.downloaded, 0, `seeder${detail}`);
  assert.equal(s.mallory.downloaded + s.mallory.uploaded, 0, `mallory${detail}`);
  assert.equal(s.hybrid.snatches, 1, `snatch of the hybrid torrent (libtorrent)${detail}`);
  assert.equal(s.v1.snatches, 1, `snatch of the v1 torrent (aria2)${detail}`);
});
