/**
 * Peer limits and announce discipline (issue #16) as the accountant applies them: each threshold
 * at its edge, on a manual clock, credit read back from a real (in-memory SQLite) database.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { peerAnnounce } from '../../test/helpers/announce.ts';
import { ManualClock } from '../core/clock.ts';
import { Errors, Warnings } from '../core/errors.ts';
import { createLogger } from '../core/log.ts';
import { AnnounceEvent } from '../core/types.ts';
import { openDatabase } from '../db/connect.ts';
import { Registry } from '../db/registry.ts';
import { PolicySnapshot } from '../policy/policy.ts';
import type { PolicyMember, PolicyTorrent } from '../policy/types.ts';
import { Accountant } from './accountant.ts';
import { CLAIM_PEER, CLAIM_SLOT, NO_RULES, type PeerRules, Rules } from './rules.ts';

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

const req = peerAnnounce;

test('peers per torrent: the limit-th peer is taken, the next refused; stopped and silent peers free their place', () => {
  const clock = new ManualClock(T0);
  const a = accountant(clock, { peersPerTorrent: 3 });
  const m = member(1);
  const t = torrent(7);
  for (let p = 1; p <= 3; p++) assert.equal(a.account(req(p), m, t, T0), null, `peer ${p} of 3`);
  assert.equal(a.account(req(4), m, t, T0), Errors.peerLimitTorrent, 'the 4th is refused');
  assert.equal(a.rules.counts.refusedPeerLimit, 1);
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
    assert.equal(a.rules.counts.early, 1);
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

/** Baselines as plain counts, for the verdicts alone: `expire` drops what `silent` lists. */
function baselines() {
  const on = new Map<string, number>();
  const seeders = new Map<string, number>();
  const leeching = new Map<number, number>();
  const silent: (() => void)[] = [];
  let expired = 0;
  return {
    on,
    seeders,
    leeching,
    silent,
    get expired() {
      return expired;
    },
    view: {
      peersOn: (m: number, t: number) => on.get(`${m}:${t}`) ?? 0,
      seedersOn: (m: number, t: number) => seeders.get(`${m}:${t}`) ?? 0,
      peersOf: (m: number) => {
        let n = 0;
        for (const [k, v] of on) if (k.startsWith(`${m}:`)) n += v;
        return n;
      },
      leeching: (m: number) => leeching.get(m) ?? 0,
      expire: () => {
        expired++;
        for (const f of silent.splice(0)) f();
      },
    },
  };
}

test('Rules: download slots refuse a new leeching torrent beyond them, not one held, not seeding; silent ones are freed first', () => {
  const b = baselines();
  const r = new Rules(NO_RULES, b.view, (m) => (m === 1 ? 2 : 0));
  b.leeching.set(1, 2);
  b.on.set('1:5', 1);
  assert.equal(r.judge(null, req(1), 1, 6, T0), Errors.downloadSlots, 'a third leeching torrent');
  assert.equal(b.expired, 1, 'silent peers were looked for before refusing');
  assert.equal(r.judge(null, req(2), 1, 5, T0), null, 'another peer on a torrent already held');
  assert.equal(r.judge(null, req(1, { left: 0 }), 1, 6, T0), null, 'seeding takes no slot');
  assert.equal(r.judge(null, req(1, { event: AnnounceEvent.stopped }), 1, 6, T0), null, 'stopped passes');
  assert.equal(r.judge(null, req(1), 2, 6, T0), null, 'a member without slots');
  b.silent.push(() => b.leeching.set(1, 1));
  assert.equal(r.judge(null, req(1), 1, 6, T0), null, 'a silent torrent freed its slot');
  assert.equal(r.counts.refusedPeerLimit, 0, 'slots are not peer limits');
});

test('Rules: download slots: a known seeder that reports something left takes a slot unless another peer seeds there', () => {
  const b = baselines();
  const r = new Rules(NO_RULES, b.view, (m) => (m === 1 ? 1 : 0));
  b.leeching.set(1, 1);
  b.on.set('1:5', 2);
  b.seeders.set('1:5', 1);
  assert.equal(r.judge(T0, req(1), 1, 5, T0 + 900, true), Errors.downloadSlots, 'its only seeder');
  assert.equal(b.expired, 1, 'silent peers were looked for before refusing');
  assert.equal(r.judge(T0, req(1, { left: 0 }), 1, 5, T0 + 900, true), null, 'still seeding');
  assert.equal(r.judge(T0, req(2), 1, 5, T0 + 900, false), null, 'a leeching peer goes on leeching');
  b.seeders.set('1:5', 2);
  assert.equal(r.judge(T0, req(1), 1, 5, T0 + 900, true), null, 'another peer of the member seeds it');
  b.seeders.set('1:5', 1);
  b.silent.push(() => b.leeching.set(1, 0));
  assert.equal(r.judge(T0, req(1), 1, 5, T0 + 900, true), null, 'a silent torrent freed its slot');
  assert.equal(r.judge(T0, req(1), 2, 5, T0 + 900, true), null, 'a member without slots');
});

test('Rules: early announces at the edge of min_gap; completed and stopped pass', () => {
  const r = new Rules({ ...NO_RULES, minGap: 840, early: 'refuse' }, baselines().view, () => 0);
  assert.equal(r.judge(T0, req(1), 1, 1, T0 + 839), Errors.announceTooSoon);
  assert.equal(r.judge(T0, req(1), 1, 1, T0 + 840), null);
  assert.equal(r.judge(T0, req(1, { event: AnnounceEvent.completed }), 1, 1, T0 + 1), null);
  assert.equal(r.judge(T0, req(1, { event: AnnounceEvent.stopped }), 1, 1, T0 + 1), null);
  assert.equal(r.counts.early, 1);
  const w = new Rules({ ...NO_RULES, minGap: 840, early: 'warn' }, baselines().view, () => 0);
  assert.equal(w.judge(T0, req(1), 1, 1, T0 + 839), Warnings.announceTooSoon);
});

test('Rules.admit (shared store): peers per member, a known peer and stopped always admitted', () => {
  const b = baselines();
  const r = new Rules({ ...NO_RULES, peersPerMember: 2 }, b.view, () => 0);
  b.on.set('1:1', 2);
  assert.equal(r.admit(false, req(3), 1), Errors.peerLimitMember);
  assert.equal(r.admit(true, req(1), 1), null);
  assert.equal(r.admit(false, req(3, { event: AnnounceEvent.stopped }), 1), null);
  assert.equal(r.counts.refusedPeerLimit, 1);
  b.silent.push(() => b.on.set('1:1', 1));
  assert.equal(r.admit(false, req(3), 1), null, 'after a silent peer expired');
});

test('Rules.claims (workers): a new peer with peers_per_member, a torrent the member starts leeching with slots', () => {
  const b = baselines();
  const r = new Rules({ ...NO_RULES, peersPerMember: 2 }, b.view, (m) => (m === 1 ? 1 : 0));
  assert.equal(r.claims(null, req(1), 1, 5), CLAIM_PEER | CLAIM_SLOT, 'a new leeching peer on a new torrent');
  assert.equal(r.claims(null, req(1, { left: 0 }), 1, 5), CLAIM_PEER, 'a new seeding peer');
  assert.equal(r.claims(null, req(1), 2, 5), CLAIM_PEER, 'a member without slots');
  assert.equal(r.claims(false, req(1), 1, 5), 0, 'a known leecher');
  assert.equal(r.claims(null, req(1, { event: AnnounceEvent.stopped }), 1, 5), 0, 'stopped');
  b.on.set('1:5', 1);
  assert.equal(r.claims(null, req(2), 1, 5), CLAIM_PEER, 'another peer on a torrent already held');
  b.seeders.set('1:5', 1);
  assert.equal(r.claims(true, req(2), 1, 5), CLAIM_SLOT, 'its only seeder now leeching');
  assert.equal(r.claims(true, req(2, { left: 0 }), 1, 5), 0, 'its only seeder still seeding');
  b.seeders.set('1:5', 2);
  assert.equal(r.claims(true, req(2), 1, 5), 0, 'another peer of the member seeds it');
  const none = new Rules(NO_RULES, b.view, () => 0);
  assert.equal(none.claims(null, req(1), 1, 5), 0, 'no limits: nothing claimed');
});

test('Rules.held: peers and leeching torrents as the limits count them; silent peers forgotten on asking', () => {
  const b = baselines();
  const r = new Rules({ ...NO_RULES, peersPerMember: 3 }, b.view, (m) => (m === 1 ? 2 : 0));
  b.on.set('1:5', 2);
  b.on.set('2:5', 1);
  b.leeching.set(1, 1);
  b.leeching.set(2, 1);
  assert.deepEqual(r.held(1), { peers: 2, leeching: 1 });
  assert.deepEqual(r.held(2), { peers: 1, leeching: 0 }, 'no slots: leeching not counted');
  b.silent.push(() => b.on.set('1:5', 1));
  assert.deepEqual(r.held(1), { peers: 2, leeching: 1 }, 'not expired unless asked');
  assert.deepEqual(r.held(1, true), { peers: 1, leeching: 1 });
});
