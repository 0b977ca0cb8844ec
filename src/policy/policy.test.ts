import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sql } from 'kysely';
import { peerAnnounce } from '../../test/helpers/announce.ts';
import { turnsDuring } from '../../test/helpers/turns.ts';
import { Errors } from '../core/errors.ts';
import { createLogger } from '../core/log.ts';
import { AnnounceEvent } from '../core/types.ts';
import { openDatabase } from '../db/connect.ts';
import { Registry } from '../db/registry.ts';
import { MemorySwarmStore } from '../store/memory/memory-store.ts';
import { accessChange, dropUntracked, loadSnapshot, Policy } from './policy.ts';

/** Info hash n in hex (40 digits), and torrent n with that hash, restricted or not. */
const hex = (n: number) => n.toString(16).padStart(40, '0');
const addTorrent = (reg: Registry, n: number, restricted: boolean) =>
  reg.addTorrent({ infoHash: hex(n), infoHashV2: null, name: `t${n}`, size: 1, fileCount: 1, restricted });

test('policy reloads coalesce: one at a time, calls during a load share one more, and each caller sees its change', async () => {
  const db = await openDatabase('sqlite::memory:', '');
  try {
    const reg = new Registry(db);
    const m = await reg.addMember({ username: 'hammer' });
    const policy = new Policy({ mode: 'private', logger: createLogger('silent') });
    await policy.connect(reg);
    const loads0 = policy.loads;
    await reg.resetPasskey(m.id);
    // 25 calls at once, then a change while the first load runs, then 25 more calls.
    const early = Array.from({ length: 25 }, () => policy.refresh());
    const changed = await reg.resetPasskey(m.id);
    const late = Array.from({ length: 25 }, () => policy.refresh());
    const results = await Promise.all([...early, ...late]);
    assert.equal(policy.loads - loads0, 2, 'the first load, and exactly one more for every call during it');
    assert.equal(
      results.filter((r) => r).length,
      50,
      'every caller waited for a load that saw a new revision',
    );
    assert.ok(policy.snapshot.members.has(changed.passkey), 'the last change is in the snapshot');
    assert.equal(await policy.refresh(), false, 'nothing changed since: no load');
    assert.equal(policy.loads - loads0, 2);
  } finally {
    await db.close();
  }
});

test('accessChange names who may have lost access, and lost() judges them against the new snapshot', async () => {
  const db = await openDatabase('sqlite::memory:', '');
  try {
    const reg = new Registry(db);
    const add = (n: number, restricted: boolean) => addTorrent(reg, n, restricted);
    const [a, b, c] = [await add(1, true), await add(2, true), await add(3, false)];
    const [ann, bea, cid, dot] = [
      await reg.addMember({ username: 'ann' }),
      await reg.addMember({ username: 'bea' }),
      await reg.addMember({ username: 'cid' }),
      await reg.addMember({ username: 'dot' }),
    ];
    const group = await reg.addGroup('buyers');
    await reg.addToGroup(group.id, cid.id);
    await reg.addToGroup(group.id, dot.id);
    await reg.grant({ torrent: a.id, member: ann.id });
    const extended = await reg.grant({ torrent: b.id, member: ann.id, expiresAt: 2_000_000_000 });
    await reg.grant({ torrent: a.id, member: bea.id });
    await reg.grant({ torrent: b.id, group: group.id });
    const old = await loadSnapshot(reg);
    // Bea's grant goes; ann's on b is replaced by a longer one; the group grant goes; dot leaves
    // the group; torrent c is made restricted.
    await reg.revoke({ torrent: a.id, member: bea.id });
    await reg.revoke({ id: extended.id });
    await reg.grant({ torrent: b.id, member: ann.id });
    await reg.revoke({ torrent: b.id, group: group.id });
    await reg.removeFromGroup(group.id, dot.id);
    await reg.updateTorrent(c.id, { restricted: true });
    await reg.grant({ torrent: a.id, member: cid.id, expiresAt: 2_000_000_000 });
    const next = await loadSnapshot(reg);
    const now = 1_900_000_000;
    const change = await accessChange(old, next, now, now);
    // Ann's grant on b was replaced by one that lasts longer: not named.
    assert.deepEqual(
      [...change.pairs.entries()].map(([m, t]) => [m, [...t]]),
      [[bea.id, [a.id]]],
    );
    assert.deepEqual([...change.torrents].sort(), [b.id, c.id].sort());
    assert.deepEqual([...change.members], [dot.id]);
    assert.equal(change.lost(bea.id, a.id), true);
    assert.equal(change.lost(ann.id, b.id), false, 'a grant replaced by another is not lost');
    assert.equal(change.lost(cid.id, b.id), true);
    assert.equal(change.lost(ann.id, a.id), false);
    assert.equal(change.lost(ann.id, c.id), true, 'c is restricted now and ann has no grant to it');
    // With one snapshot, only grants that expired between the two times count.
    const expiring = await accessChange(next, next, 1_999_999_999, 2_000_000_001);
    assert.deepEqual(
      [...expiring.pairs.entries()].map(([m, t]) => [m, [...t]]),
      [[cid.id, [a.id]]],
    );
    assert.equal(expiring.torrents.size + expiring.members.size, 0);
    assert.equal(expiring.lost(cid.id, a.id), true);
    assert.equal(
      (await accessChange(next, next, 1_999_999_998, 1_999_999_999)).pairs.size,
      0,
      'not expired yet',
    );
  } finally {
    await db.close();
  }
});

test('accessChange names the info hashes no longer tracked, by mode: the deny list’s additions, and (but in open mode) what was listed', async () => {
  const db = await openDatabase('sqlite::memory:', '');
  try {
    const reg = new Registry(db);
    // 1, 2: on the allow list; 3, 4: registered; 5: listed nowhere.
    for (const n of [1, 2]) await reg.addToList('allow', hex(n));
    for (const n of [3, 4])
      await reg.addTorrent({ infoHash: hex(n), infoHashV2: null, name: `t${n}`, size: 1, fileCount: 1 });
    const old = await loadSnapshot(reg);
    // 1 leaves the allow list, 3 is denied, 4 is removed, 5 is denied.
    await reg.removeFromList('allow', hex(1));
    await reg.addToList('deny', hex(3));
    await reg.removeTorrent(hex(4));
    await reg.addToList('deny', hex(5));
    const next = await loadSnapshot(reg);
    const named = async (mode: 'open' | 'whitelist' | 'private') =>
      (await accessChange(old, next, 0, 0, mode)).hashes.map((h) => Buffer.from(h).toString('hex')).sort();
    assert.deepEqual(
      await named('whitelist'),
      [hex(1), hex(3), hex(4)],
      '5 was not tracked in whitelist mode',
    );
    assert.deepEqual(
      await named('private'),
      [hex(3), hex(4)],
      'the allow list means nothing in private mode',
    );
    assert.deepEqual(await named('open'), [hex(3), hex(5)], 'open mode tracks all but the deny list');
    assert.deepEqual((await accessChange(next, next, 0, 0, 'whitelist')).hashes, [], 'one snapshot: none');
  } finally {
    await db.close();
  }
});

test('dropUntracked drops a large change from the memory store in slices, the event loop turning between them', async () => {
  const store = new MemorySwarmStore({ peerTimeout: 1800 });
  const n = 10_000;
  const hashes: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const infoHash = Buffer.alloc(20, 7);
    infoHash.writeUInt32BE(i, 0);
    hashes.push(infoHash);
    store.announce(peerAnnounce(1, { infoHash, event: AnnounceEvent.started }), 1000);
  }
  assert.equal(store.stats().torrents, n);
  // Turns of the event loop while the drop runs (announces are answered in them).
  const { out: removed, turns } = await turnsDuring(() =>
    dropUntracked(store, [...hashes, Buffer.alloc(20, 9)]),
  );
  assert.equal(removed, n);
  assert.equal(store.stats().torrents, 0);
  assert.ok(turns >= 4, `the event loop turned ${turns} times during the drop`);
});

test('a snapshot keeps member and torrent ids above 2^32 whole, and refuses an id above 2^53 naming its table', async () => {
  const db = await openDatabase('sqlite::memory:', '');
  try {
    const reg = new Registry(db);
    const low = await reg.addMember({ username: 'low' });
    const high = await reg.addMember({ username: 'high' });
    const t = await addTorrent(reg, 1, false);
    const k = db.kysely;
    await sql`UPDATE members SET id = ${2 ** 32 + low.id} WHERE id = ${high.id}`.execute(k);
    await sql`UPDATE torrents SET id = ${2 ** 40} WHERE id = ${t.id}`.execute(k);
    const s = await loadSnapshot(reg);
    assert.equal(s.memberById.get(2 ** 32 + low.id)?.id, 2 ** 32 + low.id);
    assert.equal(s.memberById.get(low.id)?.id, low.id);
    assert.equal(s.torrentById.get(2 ** 40)?.id, 2 ** 40);
    await sql`UPDATE members SET id = 9007199254740993 WHERE id = ${2 ** 32 + low.id}`.execute(k);
    await assert.rejects(
      loadSnapshot(reg),
      /^Error: the members table holds an id above 2\^53 - 1 .*9007199254740993/,
    );
  } finally {
    await db.close();
  }
});

test('recheck: what a newer snapshot refuses of an announce judged by ids (workers: the owner judges it again)', async () => {
  const db = await openDatabase('sqlite::memory:', '');
  try {
    const reg = new Registry(db);
    const add = (n: number, restricted: boolean) => addTorrent(reg, n, restricted);
    const [open, closed, gone] = [await add(1, false), await add(2, true), await add(3, false)];
    const [ann, bob] = [await reg.addMember({ username: 'ann' }), await reg.addMember({ username: 'bob' })];
    await reg.grant({ torrent: closed.id, member: ann.id });
    const policy = new Policy({ mode: 'private', logger: createLogger('silent') });
    await policy.connect(reg);
    const req = (n: number) => peerAnnounce(1, { infoHash: Buffer.from(hex(n), 'hex') });
    assert.equal(policy.recheck(req(1), ann.id, open.id, null), null);
    assert.equal(policy.recheck(req(2), ann.id, closed.id, null), null);
    await reg.revoke({ torrent: closed.id, member: ann.id });
    await reg.setMemberStatus(bob.id, 'banned', null);
    await reg.removeTorrent(gone.id);
    await reg.addToList('deny', hex(1));
    await policy.refresh();
    assert.equal(policy.recheck(req(2), ann.id, closed.id, null), Errors.torrentNotGranted);
    assert.equal(policy.recheck(req(3), ann.id, gone.id, null), Errors.torrentNotRegistered);
    assert.equal(policy.recheck(req(2), bob.id, open.id, null), Errors.memberBanned);
    assert.equal(policy.recheck(req(1), ann.id, open.id, null), Errors.infoHashDenied);
    assert.equal(policy.recheck(req(2), 999_999, open.id, null), Errors.passkeyUnknown);
  } finally {
    await db.close();
  }
});

test('recheck: the owner admits the passkey the sender admitted only if it is the member’s key in its own snapshot', async () => {
  const db = await openDatabase('sqlite::memory:', '');
  try {
    const reg = new Registry(db);
    const t = await addTorrent(reg, 1, false);
    const [ann, bob] = [await reg.addMember({ username: 'ann' }), await reg.addMember({ username: 'bob' })];
    const key = new Uint8Array([1, 2, 3, 4]);
    const sender = new Policy({ mode: 'private', logger: createLogger('silent'), passkeyPrintKey: key });
    const policy = new Policy({ mode: 'private', logger: createLogger('silent'), passkeyPrintKey: key });
    for (const p of [sender, policy]) await p.connect(reg);
    const req = peerAnnounce(1, { infoHash: Buffer.from(hex(1), 'hex') });
    const print = (p: Policy, id: number) => p.keyPrint(p.snapshot.memberById.get(id)!);
    const oldKey = print(sender, ann.id);
    assert.equal(print(policy, ann.id), oldKey, 'every worker computes the same fingerprint');
    assert.notEqual(print(policy, bob.id), oldKey);
    const otherKey = new Policy({
      mode: 'private',
      logger: createLogger('silent'),
      passkeyPrintKey: Uint8Array.from([4, 3, 2, 1]),
    });
    await otherKey.connect(reg);
    assert.notEqual(print(otherKey, ann.id), oldKey, 'keyed');
    // A leaked passkey is reset: the owner takes the member's peers out at its reload. A worker
    // still on the older snapshot admits the old key, and sends its fingerprint with the announce.
    await reg.resetPasskey(ann.id);
    await policy.refresh();
    assert.equal(policy.recheck(req, ann.id, t.id, oldKey), Errors.passkeyUnknown);
    assert.equal(policy.recheck(req, bob.id, t.id, print(sender, bob.id)), null, 'another member');
    // A sender that read the new key (however old its revision) is admitted.
    assert.equal(policy.recheck(req, ann.id, t.id, print(policy, ann.id)), null);
    // Still refused after more changes, for a sender behind the reset.
    await reg.addToList('deny', hex(9));
    await policy.refresh();
    assert.equal(policy.recheck(req, ann.id, t.id, oldKey), Errors.passkeyUnknown);
  } finally {
    await db.close();
  }
});

test('recheck in whitelist mode: by the hash and the client (a hybrid torrent’s two hashes alike)', async () => {
  const db = await openDatabase('sqlite::memory:', '');
  try {
    const reg = new Registry(db);
    await reg.addToList('allow', hex(1));
    await reg.addTorrent({
      infoHash: hex(2),
      infoHashV2: hex(3).repeat(2).slice(0, 64),
      name: 'h',
      size: 1,
      fileCount: 1,
    });
    await reg.addClientPrefix('-qB');
    await reg.addClientPrefix('-TR');
    const policy = new Policy({ mode: 'whitelist', logger: createLogger('silent') });
    await policy.connect(reg);
    const req = (n: number, v2 = false) =>
      peerAnnounce(1, { infoHash: Buffer.from(v2 ? hex(3).repeat(2).slice(0, 40) : hex(n), 'hex') });
    for (const r of [req(1), req(2), req(0, true)]) assert.equal(policy.recheck(r, null, null, null), null);
    assert.equal(policy.recheck(req(4), null, null, null), Errors.infoHashNotListed);
    await reg.removeFromList('allow', hex(1));
    await reg.addToList('deny', hex(3).repeat(2).slice(0, 40));
    await policy.refresh();
    assert.equal(policy.recheck(req(1), null, null, null), Errors.infoHashNotListed, 'off the allow list');
    assert.equal(
      policy.recheck(req(0, true), null, null, null),
      Errors.infoHashDenied,
      'the hybrid’s v2 hash denied',
    );
    assert.equal(policy.recheck(req(2), null, null, null), null, 'its v1 hash still listed');
    await reg.removeClientPrefix('-qB');
    await policy.refresh();
    assert.equal(policy.recheck(req(2), null, null, null), Errors.clientNotAllowed, 'the client taken off');
  } finally {
    await db.close();
  }
});

test('a snapshot loads a long deny list and many freeleech windows in pages, the event loop turning between them', async () => {
  const db = await openDatabase('sqlite::memory:', '');
  try {
    const reg = new Registry(db);
    const k = db.kysely;
    const m = await reg.addMember({ username: 'token-spender' });
    const t = await reg.addTorrent({
      infoHash: 'ab'.repeat(20),
      infoHashV2: null,
      name: 't',
      size: 1,
      fileCount: 1,
    });
    const n = 2500;
    for (let i = 0; i < n; i += 500) {
      const hashes = Array.from({ length: Math.min(500, n - i) }, (_, j) =>
        (i + j).toString(16).padStart(40, '0'),
      );
      await k
        .insertInto('hash_lists')
        .values(hashes.map((info_hash) => ({ list: 'deny' as const, info_hash, note: null, created_at: 0 })))
        .execute();
      await k
        .insertInto('personal_freeleech')
        .values(
          hashes.map((_, j) => ({
            member_id: m.id,
            torrent_id: t.id,
            starts_at: j,
            ends_at: 4_000_000_000,
            source: 'token',
            created_at: 0,
            by_member: null,
          })),
        )
        .execute();
    }
    const { out: s, turns } = await turnsDuring(() => loadSnapshot(reg));
    assert.equal(s.deny.size, n);
    assert.equal(
      s.promotions.personal.get(m.id)?.get(t.id)?.length,
      3 * n,
      'every window: [starts, ends, upload%]',
    );
    // One member, one torrent: their pages give no turn. Without pages for the list and the
    // windows: 1 turn (the one before the lists).
    assert.ok(turns >= 4, `the event loop turned ${turns} times during the load`);
  } finally {
    await db.close();
  }
});
