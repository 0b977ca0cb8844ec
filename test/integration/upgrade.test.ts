/**
 * Upgrades (issue #17): a database created by every earlier schema version is migrated when the
 * tracker starts, and the tracker then serves with its data intact. SQLite from the committed
 * fixtures (test/fixtures/schema/<version>.sql, made by make.ts); PostgreSQL from the same rows
 * written into a database migrated up to that version. A database that a newer Herald migrated
 * is refused with a message that says so.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { describe, test } from 'node:test';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { migrate, SCHEMA_VERSION } from '../../src/db/migrations.ts';
import { createTracker, type Tracker } from '../../src/index.ts';
import { EARLIER_VERSIONS, MEMBERS, populate, TORRENTS } from '../fixtures/schema/populate.ts';
import { announcePath, bdecode, httpGet, text } from '../helpers/clients.ts';
import { engines } from '../helpers/db.ts';

const FIXTURES = new URL('../fixtures/schema/', import.meta.url).pathname;

function sqliteFrom(version: string): { dir: string; file: string } {
  const dir = mkdtempSync(join(tmpdir(), 'herald-upgrade-'));
  const file = join(dir, 'herald.db');
  const db = new DatabaseSync(file);
  db.exec(readFileSync(join(FIXTURES, `${version}.sql`), 'utf8'));
  db.close();
  return { dir, file };
}

function trackerOn(databaseUrl: string, dataDir: string): Tracker {
  return createTracker({
    http: ['127.0.0.1:0'],
    udp: [],
    mode: 'private',
    portal: 'off',
    databaseUrl,
    dataDir,
    logLevel: 'silent',
  });
}

/** What a site upgraded from any earlier version must still have, and do. */
async function assertServesItsData(tracker: Tracker): Promise<void> {
  const port = tracker.addresses().http[0].port;
  const stats = JSON.parse((await httpGet(port, '127.0.0.1', '/stats')).body.toString());
  assert.equal(stats.schema, SCHEMA_VERSION);
  const reg = tracker.registry();
  // Members, with their passkeys and totals; 0005_usernames renamed the clashing names.
  const names = ['root', 'Alice', 'alice-3', '1234-4'];
  for (const [i, m] of MEMBERS.entries()) {
    const got = await reg.member(m.id);
    assert.equal(got.username, names[i]);
    assert.equal(got.passkey, m.passkey);
    assert.equal(got.uploaded, m.uploaded);
    assert.equal(got.downloaded, m.downloaded);
    assert.equal(got.role, m.role);
  }
  const history = await reg.memberTorrents(2);
  assert.equal(history.length, 1);
  assert.equal(history[0].uploaded, 5_000_000);
  // Torrents: listed, and a personal copy can be made of a row stored before summaries existed.
  assert.deepEqual(
    (await reg.listTorrents()).map((t) => t.info_hash).sort(),
    TORRENTS.map((t) => t.infoHash).sort(),
  );
  assert.notEqual(await reg.files.template(1), null);
  // Announces: a member on an open torrent, the granted member on a restricted one, and not another.
  const announce = async (passkey: string, infoHash: string) => {
    const r = await httpGet(
      port,
      '127.0.0.1',
      announcePath({
        infoHash: Buffer.from(infoHash, 'hex'),
        port: 7300,
        left: 0,
        peerId: Buffer.from('-qB4500-upgrade00001'),
        base: `/announce/${passkey}`,
      }),
    );
    const d = bdecode(r.body);
    return d.has('failure reason') ? text(d.get('failure reason')) : 'ok';
  };
  assert.equal(await announce(MEMBERS[1].passkey, TORRENTS[0].infoHash), 'ok');
  assert.equal(await announce(MEMBERS[1].passkey, TORRENTS[1].infoHash), 'ok');
  assert.notEqual(await announce(MEMBERS[2].passkey, TORRENTS[1].infoHash), 'ok');
}

describe('upgrade from every earlier schema version', () => {
  test('the fixtures cover every earlier version', () => {
    assert.ok(!EARLIER_VERSIONS.includes(SCHEMA_VERSION));
    for (const v of EARLIER_VERSIONS) assert.ok(v < SCHEMA_VERSION, v);
  });

  for (const version of EARLIER_VERSIONS)
    test(`SQLite at ${version} is migrated on start and serves its data`, async (t) => {
      const { dir, file } = sqliteFrom(version);
      t.after(() => rmSync(dir, { recursive: true, force: true }));
      const tracker = trackerOn(`sqlite:${file}`, dir);
      await tracker.start();
      try {
        await assertServesItsData(tracker);
      } finally {
        await tracker.stop();
      }
      const db = new DatabaseSync(file, { readOnly: true });
      try {
        assert.equal(db.prepare('PRAGMA integrity_check').get()?.integrity_check, 'ok');
        assert.equal(db.prepare('PRAGMA foreign_key_check').all().length, 0);
      } finally {
        db.close();
      }
    });

  for (const engine of engines.filter((e) => e.name === 'postgres'))
    for (const version of EARLIER_VERSIONS)
      test(`PostgreSQL at ${version} is migrated on start and serves its data`, async (t) => {
        const created = await engine.create();
        t.after(() => created.drop());
        const old = new Kysely({
          dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: created.url, max: 1 }) }),
        });
        try {
          await migrate(old, 'postgres', version);
          await populate(old, version);
          // Rows written with their ids leave the id sequences behind, as a dump's restore would not.
          for (const table of ['members', 'torrents'])
            await sql`SELECT setval(pg_get_serial_sequence(${table}, 'id'), (SELECT max(id) FROM ${sql.table(table)}))`.execute(
              old,
            );
        } finally {
          await old.destroy();
        }
        const dir = mkdtempSync(join(tmpdir(), 'herald-upgrade-'));
        t.after(() => rmSync(dir, { recursive: true, force: true }));
        const tracker = trackerOn(created.url, dir);
        await tracker.start();
        try {
          await assertServesItsData(tracker);
        } finally {
          await tracker.stop();
        }
      });

  test('a database migrated by a newer Herald is refused, and left as it was', async (t) => {
    // A version whose rows 0005_usernames would rename: nothing may be migrated.
    const { dir, file } = sqliteFrom('0004_login_addresses');
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const db = new DatabaseSync(file);
    db.exec(`INSERT INTO kysely_migration VALUES ('${SCHEMA_VERSION}', 'x'), ('9999_from_the_future', 'x')`);
    db.close();
    const tracker = trackerOn(`sqlite:${file}`, dir);
    await assert.rejects(tracker.start(), /schema \(9999_from_the_future\) is newer than this Herald's/);
    await tracker.stop();
    const after = new DatabaseSync(file, { readOnly: true });
    try {
      assert.equal(after.prepare('SELECT username FROM members WHERE id = 3').get()?.username, 'alice');
    } finally {
      after.close();
    }
  });
});
