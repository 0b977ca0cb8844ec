/**
 * The node:sqlite dialect's own behaviour: statements run once per row of their parameters (the
 * accounting flush's credit of members), and the WAL size at which a commit checkpoints.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { sql } from 'kysely';
import { openDatabase } from './connect.ts';
import { perRowQuery, SQLITE_WAL_AUTOCHECKPOINT } from './node-sqlite.ts';
import { Registry } from './registry.ts';

test('a per-row query runs its statement once per row inside a transaction; affected rows are summed', async () => {
  const db = await openDatabase('sqlite::memory:', '');
  try {
    const reg = new Registry(db);
    const a = await reg.addMember({ username: 'alice' });
    const b = await reg.addMember({ username: 'bob' });
    const text = 'UPDATE members SET uploaded = uploaded + ?2, invites = invites + ?3 WHERE id = ?1';
    // Three rows of three values, one for a member that does not exist (0 rows affected).
    const params = [a.id, 100, 1, b.id, 20, 2, 999_999, 5, 5];
    const r = await db.kysely.transaction().execute((trx) => trx.executeQuery(perRowQuery(text, 3, params)));
    assert.equal(r.numAffectedRows, 2n);
    const rows = await db.kysely
      .selectFrom('members')
      .select(['id', 'uploaded', 'invites'])
      .orderBy('id')
      .execute();
    assert.deepEqual(
      rows.map((m) => ({ ...m })),
      [
        { id: a.id, uploaded: 100, invites: 1 },
        { id: b.id, uploaded: 20, invites: 2 },
      ],
    );
    // Outside a transaction it is refused, nothing written: a lock met after the first row would
    // otherwise be waited for and the whole list run again.
    await assert.rejects(db.kysely.executeQuery(perRowQuery(text, 3, params)), /only inside a transaction/);
    // Parameters that are not whole rows are refused, nothing written.
    await assert.rejects(
      db.kysely.transaction().execute((trx) => trx.executeQuery(perRowQuery(text, 3, [a.id, 1]))),
      /2 parameters, rows of 3/,
    );
    assert.deepEqual(
      (await db.kysely.selectFrom('members').select('uploaded').orderBy('id').execute()).map(
        (m) => m.uploaded,
      ),
      [100, 20],
    );
  } finally {
    await db.close();
  }
});

test("a file database's connection checkpoints the WAL at SQLITE_WAL_AUTOCHECKPOINT pages, not SQLite's 1,000", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-wal-'));
  const db = await openDatabase('', dir);
  try {
    assert.equal(SQLITE_WAL_AUTOCHECKPOINT, 10000);
    const r = await sql<{ wal_autocheckpoint: number }>`PRAGMA wal_autocheckpoint`.execute(db.kysely);
    assert.equal(r.rows[0].wal_autocheckpoint, SQLITE_WAL_AUTOCHECKPOINT);
    // A commit of about 1,500 pages stays in the WAL: at SQLite's 1,000 the commit would have
    // copied them into the database file at once (and waited for its fsyncs).
    const file = join(dir, 'herald.db');
    const before = statSync(file).size;
    await sql`CREATE TABLE filler (b BLOB)`.execute(db.kysely);
    await sql`INSERT INTO filler WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1500) SELECT randomblob(3000) FROM c`.execute(
      db.kysely,
    );
    assert.ok(statSync(`${file}-wal`).size > 1000 * 4096, 'the commit is in the WAL');
    assert.ok(statSync(file).size - before < 1000 * 4096, 'and not yet in the database file');
  } finally {
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
