/**
 * Private-mode accounting under the things staff and cheaters do (issue #15): torrents removed
 * while deltas are pending, many peer ids for one member, a database locked by another process.
 * Real HTTP announces, a manual clock, every database engine (test/helpers/db.ts).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import { ManualClock } from '../../src/core/clock.ts';
import { openDatabase } from '../../src/db/connect.ts';
import { Registry } from '../../src/db/registry.ts';
import { createTracker } from '../../src/index.ts';
import { type AnnounceFields, announcePath, bdecode, hashOf, httpGet, text } from '../helpers/clients.ts';
import { type Engine, engines } from '../helpers/db.ts';
import { lockSqlite } from '../helpers/sqlite-lock.ts';
import { privateTrackerConfig } from '../helpers/store-tracker.ts';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const GB = 1_000_000_000;

/** A database that outlives one tracker: a file for SQLite (`:memory:` dies with its connection). */
async function durable(engine: Engine, dir: string): Promise<{ url: string; drop(): Promise<void> }> {
  if (engine.name === 'sqlite') return { url: `sqlite:${join(dir, 'herald.db')}`, drop: async () => {} };
  return engine.create();
}

/** One private tracker on a manual clock, with helpers to announce as a member. */
async function privateTracker(url: string, dataDir: string, extra: Record<string, unknown> = {}) {
  const clock = new ManualClock(1_900_000_000);
  const tracker = createTracker(
    privateTrackerConfig({
      databaseUrl: url,
      dataDir,
      maxRate: 100_000_000,
      interval: 1200,
      minInterval: 60,
      peerTimeout: 1500,
      ...extra,
    }),
    { clock },
  );
  await tracker.start();
  const port = tracker.addresses().http[0].port;
  const ok = async (f: AnnounceFields & { passkey: string }) => {
    const r = await httpGet(port, '127.0.0.1', announcePath({ ...f, base: `/announce/${f.passkey}` }));
    const d = bdecode(r.body);
    assert.equal(d.get('failure reason'), undefined, `refused: ${text(d.get('failure reason'))}`);
    return d;
  };
  return { tracker, clock, ok, reg: tracker.registry() };
}

type Scratch = Awaited<ReturnType<typeof privateTracker>> & { dir: string };

/** Runs `fn` on a private tracker over a scratch data directory (its SQLite file there), removed after. */
async function onScratchTracker(extra: Record<string, unknown>, fn: (t: Scratch) => Promise<void>) {
  const dir = mkdtempSync(join(tmpdir(), 'herald-acct-'));
  const t = await privateTracker(`sqlite:${join(dir, 'herald.db')}`, dir, extra);
  try {
    await fn({ ...t, dir });
  } finally {
    await t.tracker.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A new member and a new registered torrent, the policy reloaded. */
async function memberOnTorrent(t: Scratch, username: string, salt: number) {
  const m = await t.reg.addMember({ username });
  const h = hashOf(1, salt);
  await t.reg.addTorrent({ infoHash: hex(h), infoHashV2: null, name: username, size: 1000, fileCount: 1 });
  await t.tracker.policy.refresh();
  return { m, h };
}

for (const engine of engines) {
  describe(`accounting on ${engine.name}: rows the database cannot take`, () => {
    let dir: string;
    let db: { url: string; drop(): Promise<void> };
    let t: Awaited<ReturnType<typeof privateTracker>>;
    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'herald-acct-'));
      db = await durable(engine, dir);
      t = await privateTracker(db.url, dir);
    });
    after(async () => {
      await t.tracker.stop();
      await db.drop();
      rmSync(dir, { recursive: true, force: true });
    });

    test('holds back only its own member: the others are credited, it is written once allowed', async () => {
      const { reg, clock, ok, tracker } = t;
      const good = await reg.addMember({ username: 'good' });
      const bad = await reg.addMember({ username: 'bad' });
      const h = hashOf(1, 20);
      await reg.addTorrent({ infoHash: hex(h), infoHashV2: null, name: 'r', size: 1000, fileCount: 1 });
      await tracker.policy.refresh();
      // An operator's trigger (it could as well be a constraint, or a value out of range).
      const k = reg.db.kysely;
      if (engine.name === 'sqlite')
        await sql`CREATE TRIGGER refuse_bad BEFORE UPDATE ON members WHEN NEW.id = ${sql.lit(bad.id)}
          BEGIN SELECT RAISE(ABORT, 'refused'); END`.execute(k);
      else {
        await sql`CREATE FUNCTION refuse_bad() RETURNS trigger LANGUAGE plpgsql AS $$
          BEGIN IF NEW.id = ${sql.lit(bad.id)} THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$`.execute(
          k,
        );
        await sql`CREATE TRIGGER refuse_bad BEFORE UPDATE ON members FOR EACH ROW EXECUTE FUNCTION refuse_bad()`.execute(
          k,
        );
      }
      const peers = [good, bad].map((m, i) => ({
        passkey: m.passkey,
        infoHash: h,
        port: 6960 + i,
        peerId: Buffer.from(`-qB4500-refuse00000${i}`),
      }));
      for (const p of peers) await ok({ ...p, event: 'started', left: 0 });
      clock.advance(10);
      for (const p of peers) await ok({ ...p, uploaded: 400, left: 0 });
      for (let i = 0; i < 4; i++) await tracker.accountant!.flush();
      assert.equal((await reg.member(good.id)).uploaded, 400);
      assert.equal((await reg.member(bad.id)).uploaded, 0);
      assert.equal(tracker.accountant!.pending, 1, "the refused member's credit is kept");

      clock.advance(10);
      for (const p of peers) await ok({ ...p, uploaded: 500, left: 0 });
      await sql`DROP TRIGGER refuse_bad${engine.name === 'postgres' ? sql` ON members` : sql``}`.execute(k);
      await tracker.accountant!.flush();
      assert.equal(tracker.accountant!.pending, 0);
      assert.equal((await reg.member(good.id)).uploaded, 500);
      assert.equal((await reg.member(bad.id)).uploaded, 500, 'written once, nothing lost');
      assert.deepEqual(
        (await reg.memberTorrents(bad.id)).map((r) => r.uploaded),
        [500],
      );
    });

    // Last: it stops the tracker.
    test('staff remove a torrent with unflushed deltas: every other credit is still written', async () => {
      const { reg, clock, ok, tracker } = t;
      const alice = await reg.addMember({ username: 'alice' });
      const bob = await reg.addMember({ username: 'bob' });
      const doomed = hashOf(1, 15);
      const kept = hashOf(2, 15);
      for (const [i, h] of [doomed, kept].entries())
        await reg.addTorrent({ infoHash: hex(h), infoHashV2: null, name: `t${i}`, size: 1000, fileCount: 1 });
      await tracker.policy.refresh();
      const peer = (passkey: string, infoHash: Uint8Array, n: number) => ({
        passkey,
        infoHash,
        port: 7000 + n,
        peerId: Buffer.from(`-qB4500-acct${String(n).padStart(8, '0')}`),
      });
      const a1 = peer(alice.passkey, doomed, 1);
      const a2 = peer(alice.passkey, kept, 2);
      const b1 = peer(bob.passkey, kept, 3);
      for (const p of [a1, a2, b1]) await ok({ ...p, event: 'started', left: 0 });
      clock.advance(60);
      await ok({ ...a1, uploaded: 1000, left: 0 });
      await ok({ ...a2, uploaded: 200, left: 0 });
      await ok({ ...b1, uploaded: 30, left: 0 });
      // A delta over max_rate on the doomed torrent: a flag row for it is pending too.
      clock.advance(1);
      await ok({ ...a1, uploaded: 1000 + 10 * GB, left: 0 });

      await reg.removeTorrent(hex(doomed)); // the CLI, the API and the portal all come here
      const errors = tracker.accountant!.counts.flushErrors;
      await tracker.accountant!.flush();
      assert.equal(tracker.accountant!.counts.flushErrors, errors, 'the flush failed');
      assert.equal(tracker.accountant!.counts.rewrites, 1, 'the broken foreign key: written again, checked');
      assert.equal(tracker.accountant!.pending, 0);
      // The member earned the upload while the torrent was registered: the member total keeps
      // it; the per-torrent row and the flag went with the torrent.
      assert.equal((await reg.member(alice.id)).uploaded, 1200);
      assert.equal((await reg.member(bob.id)).uploaded, 30);
      assert.deepEqual(
        (await reg.memberTorrents(alice.id)).map((r) => [r.name, r.uploaded]),
        [['t1', 200]],
      );
      assert.equal((await reg.memberTorrents(bob.id))[0].uploaded, 30);

      // The removed torrent's peers go on announcing until the policy reloads: graceful stop
      // still writes everything else.
      clock.advance(60);
      await ok({ ...a1, uploaded: 2000 + 10 * GB, left: 0 });
      await ok({ ...b1, uploaded: 80, left: 0 });
      await tracker.stop();
      const after = await openDatabase(db.url, dir);
      try {
        const reg2 = new Registry(after);
        assert.equal((await reg2.member(bob.id)).uploaded, 80);
        assert.equal((await reg2.member(alice.id)).uploaded, 1200 + 1000);
      } finally {
        await after.close();
      }
    });
  });
}

describe('accounting: one member, many peer ids', () => {
  const MAX = 100_000_000; // max_rate in privateTracker
  let t: Awaited<ReturnType<typeof privateTracker>>;
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'herald-acct-'));
    // What accounting does with many peer ids, the peer limit (issue #16) lifted.
    t = await privateTracker('sqlite::memory:', dir, { accountingMaxPeers: 1000, peersPerTorrent: 0 });
  });
  after(async () => {
    await t.tracker.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const torrent = async (n: number) => {
    const h = hashOf(n, 16);
    await t.reg.addTorrent({ infoHash: hex(h), infoHashV2: null, name: `m${n}`, size: 1000, fileCount: 1 });
    return h;
  };
  const peerId = (tag: string, i: number) =>
    Buffer.from(`-qB4500-${tag}${String(i).padStart(12 - tag.length, '0')}`);

  test('twenty peer ids from one endpoint, 3 s apart: credit, seeding time and "seeding now" as for one', async () => {
    const { reg, clock, ok, tracker } = t;
    const m = await reg.addMember({ username: 'mallory' });
    const h = await torrent(1);
    await tracker.policy.refresh();
    const start = clock.now();
    // Each peer id reports exactly max_rate over its own 60 s between announces: alone, each is
    // plausible; together they claim twenty times what one link can carry.
    for (let round = 0; round <= 3; round++)
      for (let i = 0; i < 20; i++) {
        clock.set(start + round * 60 + i * 3);
        await ok({
          passkey: m.passkey,
          infoHash: h,
          port: 6881, // one endpoint: 127.0.0.1:6881
          peerId: peerId('mal', i),
          uploaded: round * 60 * MAX,
          left: 0,
          event: round === 0 ? 'started' : undefined,
        });
      }
    const elapsed = clock.now() - start;
    assert.deepEqual(tracker.accountant!.activity(m.id), { seeding: 1, leeching: 0 });
    await tracker.accountant!.flush();
    const row = await reg.member(m.id);
    assert.ok(row.uploaded <= MAX * elapsed, `credited ${row.uploaded} B in ${elapsed} s`);
    assert.ok(row.uploaded >= MAX * 60 * 3, 'one link at max_rate is still credited in full');
    assert.ok(row.seed_time <= elapsed, `seeding time ${row.seed_time} s in ${elapsed} s`);
    assert.ok(row.seed_time >= elapsed - 60);
    const flags = await reg.db.kysely
      .selectFrom('accounting_flags')
      .select('kind')
      .where('member_id', '=', m.id)
      .execute();
    assert.ok(flags.length > 0 && flags.every((f) => f.kind === 'rate-member-torrent'));
  });

  test('two members at one address: max_rate is what the address can carry', async () => {
    const { reg, clock, ok, tracker } = t;
    const a = await reg.addMember({ username: 'sock1' });
    const b = await reg.addMember({ username: 'sock2' });
    const h1 = await torrent(2);
    const h2 = await torrent(3);
    await tracker.policy.refresh();
    const pa = { passkey: a.passkey, infoHash: h1, port: 6891, peerId: peerId('sa', 1) };
    const pb = { passkey: b.passkey, infoHash: h2, port: 6892, peerId: peerId('sb', 1) };
    await ok({ ...pa, event: 'started', left: 0 });
    await ok({ ...pb, event: 'started', left: 0 });
    clock.advance(100);
    await ok({ ...pa, uploaded: 80 * MAX, left: 0 }); // 80 % of max_rate: credited
    await ok({ ...pb, uploaded: 80 * MAX, left: 0 }); // together 160 %: not credited
    await tracker.accountant!.flush();
    assert.equal((await reg.member(a.id)).uploaded, 80 * MAX);
    assert.equal((await reg.member(b.id)).uploaded, 0);
    const flags = await reg.db.kysely
      .selectFrom('accounting_flags')
      .select(['kind', 'uploaded', 'seconds'])
      .where('member_id', '=', b.id)
      .execute();
    assert.deepEqual(
      flags.map((f) => ({ ...f })),
      [{ kind: 'rate-address', uploaded: 80 * MAX, seconds: 100 }],
    );
  });
});

describe('accounting: the per-peer baselines are bounded', () => {
  test('past accounting_max_peers the least recently seen is forgotten: its next announce credits nothing', () =>
    onScratchTracker({ accountingMaxPeers: 2 }, async (t) => {
      const { reg, clock, ok, tracker } = t;
      const { m, h } = await memberOnTorrent(t, 'many', 17);
      const p = (i: number) => ({
        passkey: m.passkey,
        infoHash: h,
        port: 6900 + i,
        peerId: Buffer.from(`-qB4500-bound000000${i}`),
      });
      await ok({ ...p(1), event: 'started', left: 0 });
      clock.advance(10);
      await ok({ ...p(2), event: 'started', left: 0 });
      clock.advance(10);
      await ok({ ...p(3), event: 'started', left: 0 }); // peer 1 is forgotten
      assert.equal(tracker.accountant!.peers, 2);
      clock.advance(10);
      await ok({ ...p(1), uploaded: 1000, left: 0 }); // a new baseline (and peer 2 is forgotten)
      clock.advance(10);
      await ok({ ...p(1), uploaded: 1500, left: 0 });
      await ok({ ...p(3), uploaded: 70, left: 0 });
      assert.equal(tracker.accountant!.peers, 2);
      await tracker.accountant!.flush();
      assert.equal((await reg.member(m.id)).uploaded, 500 + 70);
    }));
});

describe('accounting: the flush writes rows in key order', () => {
  test('members by id, member-torrent rows by member and torrent, whatever order the announces came in', () =>
    onScratchTracker({}, async (t) => {
      const { reg, ok, tracker } = t;
      // Three members, each with a torrent of its own; announced out of key order below.
      const pairs: Awaited<ReturnType<typeof memberOnTorrent>>[] = [];
      for (let i = 0; i < 3; i++) pairs.push(await memberOnTorrent(t, `order${i}`, 40 + i));
      const k = reg.db.kysely;
      await sql`CREATE TABLE write_log (n INTEGER PRIMARY KEY, kind TEXT, member_id INTEGER, torrent_id INTEGER)`.execute(
        k,
      );
      await sql`CREATE TRIGGER log_mt AFTER INSERT ON member_torrents BEGIN
        INSERT INTO write_log (kind, member_id, torrent_id) VALUES ('mt', NEW.member_id, NEW.torrent_id); END`.execute(
        k,
      );
      await sql`CREATE TRIGGER log_m AFTER UPDATE OF uploaded ON members BEGIN
        INSERT INTO write_log (kind, member_id) VALUES ('m', NEW.id); END`.execute(k);
      const order: [number, number][] = [
        [2, 0],
        [0, 2],
        [1, 1],
        [2, 2],
        [0, 0],
      ];
      for (const [mi, ti] of order)
        await ok({
          passkey: pairs[mi].m.passkey,
          infoHash: pairs[ti].h,
          port: 7000 + mi * 3 + ti,
          peerId: Buffer.from(`-qB4500-order0000${mi}${ti}0`),
          event: 'started',
          left: 0,
        });
      await tracker.accountant!.flush();
      const log = (
        await sql<{ kind: string; member_id: number; torrent_id: number | null }>`
        SELECT kind, member_id, torrent_id FROM write_log ORDER BY n`.execute(k)
      ).rows;
      const ids = (i: number) => pairs[i].m.id;
      const torrentId = async (i: number) => (await reg.torrent(hex(pairs[i].h))).id;
      const tid = [await torrentId(0), await torrentId(1), await torrentId(2)];
      assert.deepEqual(
        log.filter((r) => r.kind === 'm').map((r) => r.member_id),
        [ids(0), ids(1), ids(2)],
      );
      const expected = order.map(([mi, ti]) => [ids(mi), tid[ti]]).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      assert.deepEqual(
        log.filter((r) => r.kind === 'mt').map((r) => [r.member_id, r.torrent_id]),
        expected,
      );
      // Every torrent and member still exists: written once, without reading which do first.
      assert.equal(tracker.accountant!.counts.rewrites, 0);
      // herald_accounting_rows_written_total and _flush_seconds_total: five rows, some time.
      assert.equal(tracker.accountant!.counts.rowsWritten, 5);
      assert.ok(tracker.accountant!.counts.flushSeconds > 0);
    }));
});

describe('accounting on sqlite: the database locked by another process', () => {
  test('announces are answered while writes wait for the lock; the flush keeps its deltas and writes them once', () =>
    onScratchTracker({}, async (t) => {
      const { reg, clock, ok, tracker } = t;
      const { m, h } = await memberOnTorrent(t, 'locked', 18);
      const p = { passkey: m.passkey, infoHash: h, port: 6950, peerId: Buffer.from('-qB4500-locked000001') };
      await ok({ ...p, event: 'started', left: 0 });
      clock.advance(10);
      await ok({ ...p, uploaded: 1000, left: 0 });
      await reg.addClientPrefix('-qB'); // a change for the policy to pick up under the lock

      const lock = await lockSqlite(join(t.dir, 'herald.db'));
      let released = false;
      try {
        // A staff write (CLI, API and portal all go through Registry) waits for the lock...
        let settled = false;
        const write = reg
          .addMember({ username: 'patient' })
          .catch((e: Error) => e)
          .finally(() => {
            settled = true;
          });
        // ...and the tracker goes on answering meanwhile.
        clock.advance(10);
        await ok({ ...p, uploaded: 1500, left: 0 });
        assert.equal(
          settled,
          false,
          'the event loop waited for the lock: the announce was answered only after',
        );
        // Readers are not blocked by a writer (WAL): the policy reloads.
        assert.equal(await tracker.policy.refresh(), true);
        // The flush gives up soon, keeping its deltas for the next one.
        const errors = tracker.accountant!.counts.flushErrors;
        await tracker.accountant!.flush();
        assert.equal(tracker.accountant!.counts.flushErrors, errors + 1);
        assert.equal(tracker.accountant!.pending, 1);
        await lock.release();
        released = true;
        const written = await write;
        if (written instanceof Error) assert.fail(`the write failed: ${written.message}`);
        assert.equal(written.username, 'patient');
      } finally {
        if (!released) await lock.release();
      }
      await tracker.accountant!.flush();
      assert.equal(tracker.accountant!.pending, 0);
      assert.equal((await reg.member(m.id)).uploaded, 1500, 'every delta written exactly once');
    }));
});

test('a SQLite database file is opened with a page cache of 64 MiB: the flush rewrites member_torrents pages that outgrow the default 2 MiB', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-cache-'));
  try {
    const db = await openDatabase('sqlite:', dir);
    try {
      const r = await sql<{ cache_size: number }>`PRAGMA cache_size`.execute(db.kysely);
      assert.equal(Number(r.rows[0].cache_size), -65536, 'KiB, as SQLite reports a size set in KiB');
    } finally {
      await db.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
