import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { encode } from '../../src/protocol/bencode/index.ts';
import { PRIVATE_SERVE, type RunningTracker, startTracker } from '../e2e/tracker-process.ts';
import { type AnnounceFields, announceAt, text } from './clients.ts';
import type { Engine } from './db.ts';
import { deleteKeys, testPrefix } from './redis.ts';

/** The JSON a herald admin command printed (it must have succeeded). */
export function adminJson<T>(r: { status: number; stdout: string; stderr: string }): T {
  assert.equal(r.status, 0, `herald failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

/**
 * `herald serve` options of the limits tests: early announces allowed, an announce every 2 s (at
 * least 1 s apart), and a silent peer's place freed after `peerTimeout` seconds.
 */
export const quickPeers = (peerTimeout: number): string[] => [
  '--early-announce',
  'off',
  '--interval',
  '2',
  '--min-interval',
  '1',
  '--peer-timeout',
  String(peerTimeout),
];

/** Two private-mode instances on one Redis and one PostgreSQL database (`privateInstances`). */
export interface PrivatePair {
  one: RunningTracker;
  two: RunningTracker;
  db: { url: string; drop(): Promise<void> };
  /** A directory of the suite's own (removed after). */
  scratch: string;
}

/**
 * Two `herald serve` processes in private mode on one Redis (`url`, under a key prefix of their
 * own) and one fresh database of `postgres`, started before the tests of the enclosing `describe`
 * (one after the other: the first creates the schema) and stopped after them, their keys and
 * database removed. `args` go to both; `first` to the first only; `second` and `secondReady` to
 * the second only.
 */
export function privateInstances(
  postgres: Engine,
  url: string,
  opts: { args?: string[]; first?: string[]; second?: string[]; secondReady?: string } = {},
): PrivatePair {
  const prefix = testPrefix();
  const pair = { scratch: mkdtempSync(join(tmpdir(), 'herald-pair-')) } as PrivatePair;
  before(async () => {
    pair.db = await postgres.create();
    const serve = [
      ...PRIVATE_SERVE,
      '--store',
      url,
      '--redis-prefix',
      prefix,
      '--database-url',
      pair.db.url,
      ...(opts.args ?? []),
    ];
    pair.one = await startTracker([...serve, ...(opts.first ?? [])]);
    pair.two = await startTracker([...serve, ...(opts.second ?? [])], { ready: opts.secondReady });
  });
  after(async () => {
    await Promise.all([pair.one?.stop(), pair.two?.stop()]);
    await deleteKeys(url, prefix);
    await pair.db?.drop();
    rmSync(pair.scratch, { recursive: true, force: true });
  });
  return pair;
}

/**
 * A member `who` and `n` private torrents of the pair, known to both instances (each polls the
 * database revision every second: a seeding announce of client 99, stopped at once, is answered
 * by both before this returns), and its passkey. `announce(t, ih, c, f)`: client `c` of the member (peer id
 * `-qB4500-<tag><c>`, `tag` 5 characters) announces torrent `ih` to instance `t`, leeching 1000
 * bytes unless `f` says otherwise.
 */
export async function memberWithTorrents(
  pair: PrivatePair,
  who: string,
  n: number,
  tag: string,
  portBase: number,
) {
  const { one, two, scratch } = pair;
  const member = adminJson<{ passkey: string }>(one.admin(['member', 'add', who, '--json']));
  const hashes: Buffer[] = [];
  for (let i = 1; i <= n; i++) {
    const file = join(scratch, `${who}${i}.torrent`);
    const info = { length: 1000 * i, name: `${who}${i}`, 'piece length': 16384, pieces: Buffer.alloc(20, i) };
    writeFileSync(file, encode({ announce: 'http://127.0.0.1/announce', info: { ...info, private: 1 } }));
    const t = adminJson<{ info_hash: string }>(one.admin(['torrent', 'add', file, '--json']));
    hashes.push(Buffer.from(t.info_hash, 'hex'));
  }
  const announce = (t: RunningTracker, ih: Buffer, c: number, f: Partial<AnnounceFields> = {}) =>
    announceAt(t.http[0].port, {
      infoHash: ih,
      port: portBase + c,
      peerId: Buffer.from(`-qB4500-${tag}${String(c).padStart(7, '0')}`),
      base: `/announce/${member.passkey}`,
      left: 1000,
      ...f,
    });
  for (const t of [one, two])
    for (const ih of hashes) {
      let d = await announce(t, ih, 99, { event: 'started', left: 0 });
      for (let i = 0; d.has('failure reason') && i < 75; i++) {
        await new Promise((r) => setTimeout(r, 200));
        d = await announce(t, ih, 99, { event: 'started', left: 0 });
      }
      assert.equal(d.get('failure reason'), undefined, text(d.get('failure reason')));
      await announce(t, ih, 99, { event: 'stopped', left: 0 });
    }
  return { hashes, announce, passkey: member.passkey };
}

/**
 * Five rounds of two new clients started at once, `a` (torrent, client) through the first
 * instance and `b` through the second, when only one may be taken: exactly one is, each round
 * (then both stop).
 */
export async function exactlyOneOfTwo(
  pair: PrivatePair,
  announce: Awaited<ReturnType<typeof memberWithTorrents>>['announce'],
  a: [Buffer, number],
  b: [Buffer, number],
): Promise<void> {
  const { one, two } = pair;
  for (let round = 0; round < 5; round++) {
    const answers = await Promise.all([
      announce(one, a[0], a[1], { event: 'started' }),
      announce(two, b[0], b[1], { event: 'started' }),
    ]);
    const taken = answers.filter((d) => !d.has('failure reason')).length;
    assert.equal(
      taken,
      1,
      `round ${round}: ${answers.map((d) => text(d.get('failure reason'))).join(' / ')}`,
    );
    await Promise.all([
      announce(one, a[0], a[1], { event: 'stopped' }),
      announce(two, b[0], b[1], { event: 'stopped' }),
    ]);
  }
}
