/**
 * Peer limits and announce discipline (issue #16) as the accountant applies them: each threshold
 * at its edge, on a manual clock, credit read back from a real (in-memory SQLite) database.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ManualClock } from '../core/clock.ts';
import { Errors, Warnings } from '../core/errors.ts';
import { createLogger } from '../core/log.ts';
import { AnnounceEvent, type AnnounceRequest } from '../core/types.ts';
import { openDatabase } from '../db/connect.ts';
import { Registry } from '../db/registry.ts';
import { PolicySnapshot } from '../policy/policy.ts';
import type { PolicyMember, PolicyTorrent } from '../policy/types.ts';
import { Accountant, type PeerRules } from './accountant.ts';

const T0 = 1_900_000_000;
const TIMEOUT = 1500;

function accountant(clock: ManualClock, rules: Partial<PeerRules>): Accountant {
  return new Accountant({
    logger: createLogger('silent'),
    clock,
    snapshot: () => new PolicySnapshot(),
    flushInterval: 3600,
    maxRate: 0,
    peerTimeout: TIMEOUT,
    maxPeers: 1000,
    rules: { peersPerTorrent: 0, peersPerMember: 0, minGap: 0, early: 'warn', ...rules },
  });
}

const member = (id: number): PolicyMember => ({ id, status: 0, groups: [] });
const torrent = (id: number): PolicyTorrent => ({
  id,
  restricted: false,
  downloadFactor: 100,
  uploadFactor: 100,
  route: new Uint8Array(20),
});

function req(peer: number, f: Partial<AnnounceRequest> = {}): AnnounceRequest {
  const peerId = Buffer.alloc(20);
  peerId.write(`-qB4500-${String(peer).padStart(12, '0')}`);
  return {
    infoHash: new Uint8Array(20),
    peerId,
    family: 4,
    ip: new Uint8Array([10, 0, 0, peer & 255]),
    port: 6881,
    uploaded: 0,
    downloaded: 0,
    left: 1000,
    event: AnnounceEvent.none,
    numWant: 50,
    wantPeerIds: false,
    ...f,
  };
}

test('peers per torrent: the limit-th peer is taken, the next refused; stopped and silent peers free their place', () => {
  const clock = new ManualClock(T0);
  const a = accountant(clock, { peersPerTorrent: 3 });
  const m = member(1);
  const t = torrent(7);
  for (let p = 1; p <= 3; p++) assert.equal(a.account(req(p), m, t, T0), null, `peer ${p} of 3`);
  assert.equal(a.account(req(4), m, t, T0), Errors.peerLimitTorrent, 'the 4th is refused');
  assert.equal(a.counts.refusedPeerLimit, 1);
  // A peer already counted announces again: it is no new peer.
  clock.set(T0 + 900);
  assert.equal(a.account(req(2), m, t, T0 + 900), null);
  // Another member, another torrent: their own places.
  assert.equal(a.account(req(4), member(2), t, T0 + 900), null);
  assert.equal(a.account(req(4), m, torrent(8), T0 + 900), null);
  // `stopped` frees a place at once.
  assert.equal(a.account(req(1, { event: AnnounceEvent.stopped }), m, t, T0 + 900), null);
  assert.equal(a.account(req(4), m, t, T0 + 900), null, 'in the place peer 1 left');
  assert.equal(a.account(req(5), m, t, T0 + 900), Errors.peerLimitTorrent);
  // Peer 3 was last seen at T0: alive through T0 + peer_timeout, expired one second later.
  clock.set(T0 + TIMEOUT);
  assert.equal(a.account(req(5), m, t, T0 + TIMEOUT), Errors.peerLimitTorrent, 'at the timeout: still held');
  clock.set(T0 + TIMEOUT + 1);
  assert.equal(a.account(req(5), m, t, T0 + TIMEOUT + 1), null, 'a second later: its place is free');
});

test('peers per member: counted over all torrents, freed the same way', () => {
  const clock = new ManualClock(T0);
  const a = accountant(clock, { peersPerMember: 2 });
  const m = member(1);
  assert.equal(a.account(req(1), m, torrent(1), T0), null);
  assert.equal(a.account(req(1), m, torrent(2), T0), null);
  assert.equal(a.account(req(1), m, torrent(3), T0), Errors.peerLimitMember);
  assert.equal(a.account(req(1), member(2), torrent(3), T0), null, 'another member is not affected');
  assert.equal(a.account(req(1, { event: AnnounceEvent.stopped }), m, torrent(1), T0), null);
  assert.equal(a.account(req(1), m, torrent(3), T0), null);
  // A refused peer's `stopped` passes (it has nothing to free, and is not refused).
  assert.equal(a.account(req(9, { event: AnnounceEvent.stopped }), m, torrent(4), T0), null);
});

/** An accountant over an in-memory database, and the member's credited upload after a flush. */
async function withDatabase(
  rules: Partial<PeerRules>,
  fn: (
    a: Accountant,
    ids: { m: PolicyMember; t: PolicyTorrent },
    credited: () => Promise<number>,
  ) => Promise<void>,
) {
  const db = await openDatabase('sqlite::memory:', '');
  try {
    const reg = new Registry(db);
    const row = await reg.addMember({ username: 'early' });
    const tr = await reg.addTorrent({
      infoHash: '11'.repeat(20),
      infoHashV2: null,
      name: 't',
      size: 1000,
      fileCount: 1,
    });
    const clock = new ManualClock(T0);
    const a = accountant(clock, rules);
    a.connect(reg);
    const credited = async () => {
      await a.flush();
      return (await reg.member(row.id)).uploaded;
    };
    await fn(a, { m: member(row.id), t: torrent(tr.id) }, credited);
  } finally {
    await db.close();
  }
}

test('early announces, refused: a gap of min_gap - 1 is refused and credits nothing; the next one credits all once', async () => {
  await withDatabase({ minGap: 840, early: 'refuse' }, async (a, { m, t }, credited) => {
    assert.equal(a.account(req(1, { event: AnnounceEvent.started }), m, t, T0), null);
    assert.equal(a.account(req(1, { uploaded: 100 }), m, t, T0 + 839), Errors.announceTooSoon);
    assert.equal(await credited(), 0, 'the refused announce credited nothing');
    assert.equal(a.account(req(1, { uploaded: 300 }), m, t, T0 + 840), null, 'exactly min_gap: on time');
    assert.equal(await credited(), 300, 'the whole delta since the last accepted announce, once');
    // `completed` and `stopped` pass however soon; each credits its own delta once.
    assert.equal(
      a.account(req(1, { uploaded: 350, left: 0, event: AnnounceEvent.completed }), m, t, T0 + 841),
      null,
    );
    assert.equal(
      a.account(req(1, { uploaded: 400, left: 0, event: AnnounceEvent.stopped }), m, t, T0 + 842),
      null,
    );
    assert.equal(await credited(), 400);
    assert.equal(a.counts.early, 1);
  });
});

test('early announces, warned: the warning comes with the usual answer, and each byte is credited once', async () => {
  await withDatabase({ minGap: 840, early: 'warn' }, async (a, { m, t }, credited) => {
    assert.equal(a.account(req(1, { event: AnnounceEvent.started }), m, t, T0), null);
    assert.equal(a.account(req(1, { uploaded: 100 }), m, t, T0 + 1), Warnings.announceTooSoon);
    assert.equal(a.account(req(1, { uploaded: 250 }), m, t, T0 + 2), Warnings.announceTooSoon);
    assert.equal(a.account(req(1, { uploaded: 300 }), m, t, T0 + 842), null, 'min_gap after the last one');
    assert.equal(await credited(), 300);
  });
});

test('rules off: nothing is limited or early', () => {
  const clock = new ManualClock(T0);
  const a = accountant(clock, {});
  for (let p = 1; p <= 50; p++) assert.equal(a.account(req(p), member(1), torrent(1), T0), null);
  assert.equal(a.account(req(1), member(1), torrent(1), T0), null);
});
