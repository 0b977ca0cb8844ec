/**
 * `herald backup` and `herald restore` (issue #17) on a real `herald serve` (private mode, SQLite)
 * under announce and portal load: the backup taken mid-load opens as one file and passes
 * `PRAGMA integrity_check`; nothing the live database was sent is lost (every credited byte and
 * every uploaded torrent is there after the load); a restore is refused while a tracker holds the
 * database (also when a crashed tracker left its record), refuses a damaged file, and once the
 * tracker is stopped puts the backup in place, keeping the replaced database; the tracker then
 * serves the backup's data.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { SCHEMA_VERSION } from '../../src/db/migrations.ts';
import { PRIVATE_SERVE, type RunningTracker, startTracker } from '../e2e/tracker-process.ts';
import { announcePath, bdecode, hashOf, httpGet, text } from '../helpers/clients.ts';
import { makeTorrent, PortalClient } from '../helpers/portal-client.ts';

const ROOT = new URL('../../', import.meta.url).pathname;
const NODE = join(ROOT, 'node_modules/.bin/node');
const TOKEN = 'backup-token-0123456789abcdef';
const PASSWORD = 'correct horse battery staple';
const STEP = 1000;
const LOAD_MS = 3000;

/** A herald command as its own process (asynchronous: the load goes on meanwhile). */
async function herald(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await promisify(execFile)(NODE, [join(ROOT, 'bin/herald.js'), ...args], { encoding: 'utf8' });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

function query<T>(file: string, sql: string): T[] {
  const db = new DatabaseSync(file, { readOnly: true });
  try {
    return db
      .prepare(sql)
      .all()
      .map((r) => ({ ...r })) as T[];
  } finally {
    db.close();
  }
}

test('backup under announce and portal load, restore refused while serving, restore when stopped', async (t) => {
  const scratch = mkdtempSync(join(tmpdir(), 'herald-backup-'));
  t.after(() => rmSync(scratch, { recursive: true, force: true }));
  const args = [...PRIVATE_SERVE, '--api-token', TOKEN];
  let tracker: RunningTracker = await startTracker(args);
  const dataDir = tracker.dataDir;
  const live = join(dataDir, 'herald.db');
  const flags = ['--data-dir', dataDir];
  t.after(() => tracker.stop());
  const base = () => `http://127.0.0.1:${tracker.http[0].port}`;

  // The portal's first account is its administrator; announces come from a member made over the API.
  const admin = new PortalClient(base());
  await admin.get('/register');
  const reg = await admin.post('/register', {
    invite: '',
    username: 'root',
    email: 'root@example.org',
    password: PASSWORD,
    password2: PASSWORD,
  });
  assert.equal(reg.status, 303, reg.body.slice(0, 500));
  assert.equal((await admin.login('root', PASSWORD)).status, 303);
  const api = async <T>(path: string, body: unknown): Promise<T> => {
    const r = await fetch(`${base()}/api/${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    assert.equal(r.status, 201, await r.clone().text());
    return (await r.json()) as T;
  };
  const member = await api<{ passkey: string }>('members', { username: 'seeder' });
  const hashes = [hashOf(1, 17), hashOf(2, 17)];
  for (const [i, h] of hashes.entries())
    await api('torrents', { info_hash: h.toString('hex'), name: `b-${i}`, size: 1000 });
  const peers = hashes.map((infoHash, i) => ({
    infoHash,
    port: 7200 + i,
    peerId: Buffer.from(`-qB4500-backup${i}00000`),
    base: `/announce/${member.passkey}`,
    left: 0,
  }));
  const announce = async (p: (typeof peers)[number], uploaded: number) => {
    const r = await httpGet(tracker.http[0].port, '127.0.0.1', announcePath({ ...p, uploaded }));
    const d = bdecode(r.body);
    if (d.has('failure reason')) throw new Error(text(d.get('failure reason')));
  };
  for (let i = 0; ; i++) {
    try {
      for (const p of peers) await announce(p, 0);
      break;
    } catch (e) {
      if (i > 50) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  // Load: announces crediting STEP bytes each, portal uploads, and a backup in the middle.
  const credited = peers.map(() => 0);
  let uploads = 0;
  let uploadsBeforeBackup = -1;
  const until = Date.now() + LOAD_MS;
  const announcing = peers.map(async (p, i) => {
    for (let k = 1; Date.now() < until; k++) {
      await announce(p, k * STEP);
      credited[i] = k * STEP;
    }
  });
  const uploading = (async () => {
    while (Date.now() < until) {
      await admin.get('/upload');
      const up = await admin.postMultipart(
        '/upload',
        { category: 'Software' },
        { name: 'torrent', filename: 'x.torrent', data: makeTorrent() },
      );
      assert.equal(up.status, 303, up.body.slice(0, 500));
      uploads++;
    }
  })();
  const copy = join(scratch, 'herald-backup.db');
  await new Promise((r) => setTimeout(r, LOAD_MS / 3));
  uploadsBeforeBackup = uploads;
  const backup = await herald(['backup', copy, ...flags]);
  await Promise.all([...announcing, uploading]);
  assert.equal(backup.code, 0, backup.stderr);
  assert.match(backup.stdout, /integrity ok/);
  assert.ok(uploads > uploadsBeforeBackup && uploadsBeforeBackup > 0, `${uploadsBeforeBackup} / ${uploads}`);

  // The copy: one file, intact, with what was written before it began.
  assert.deepEqual(
    readdirSync(scratch).filter((f) => f.startsWith('herald-backup')),
    ['herald-backup.db'],
    'no -wal or temporary file beside it',
  );
  assert.deepEqual(query(copy, 'PRAGMA integrity_check'), [{ integrity_check: 'ok' }]);
  assert.deepEqual(query(copy, 'PRAGMA journal_mode'), [{ journal_mode: 'delete' }]);
  assert.deepEqual(query(copy, 'SELECT max(name) AS v FROM kysely_migration'), [{ v: SCHEMA_VERSION }]);
  const inCopy = query<{ n: number }>(copy, 'SELECT count(*) AS n FROM torrents')[0].n;
  assert.ok(inCopy >= hashes.length + uploadsBeforeBackup, `${inCopy} torrents in the backup`);

  // A restore while the tracker runs is refused, and changes nothing.
  const refused = await herald(['restore', copy, ...flags]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, new RegExp(`in use by process ${tracker.pid} \\(herald\\)`));
  assert.deepEqual(
    readdirSync(dataDir).filter((f) => f.includes('before-restore')),
    [],
  );

  // Nothing the live database was sent is lost: a graceful stop writes the last deltas.
  await tracker.stopGracefully();
  assert.equal(
    query<{ n: number }>(live, 'SELECT count(*) AS n FROM torrents')[0].n,
    hashes.length + uploads,
    'every upload is in the live database',
  );
  assert.deepEqual(query(live, "SELECT uploaded FROM members WHERE username = 'seeder'"), [
    { uploaded: credited[0] + credited[1] },
  ]);

  // A damaged or foreign file is refused; the live database is untouched.
  const junk = join(scratch, 'junk.db');
  writeFileSync(junk, Buffer.alloc(8192, 0x41));
  const bad = await herald(['restore', junk, ...flags]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /integrity check/);
  const damaged = join(scratch, 'damaged.db');
  const raw = Buffer.from(await import('node:fs').then((fs) => fs.readFileSync(copy)));
  raw.fill(0x5a, 4096 * 2, 4096 * 4); // two pages of B-tree turned to noise
  writeFileSync(damaged, raw);
  const bad2 = await herald(['restore', damaged, ...flags]);
  assert.equal(bad2.code, 1, bad2.stdout);
  assert.match(bad2.stderr, /integrity check/);

  // Stopped: the restore puts the backup in place and keeps the database it replaces. Run by
  // root on a service user's database, the restored file keeps that user as its owner.
  const asRoot = process.getuid?.() === 0;
  if (asRoot) chownSync(live, 65534, 65534);
  const restored = await herald(['restore', copy, ...flags]);
  assert.equal(restored.code, 0, restored.stderr);
  const kept = readdirSync(dataDir).filter((f) => /^herald\.db\.before-restore-[-0-9TZ]+$/.test(f));
  assert.equal(kept.length, 1, readdirSync(dataDir).join(', '));
  if (asRoot) assert.equal(statSync(live).uid, 65534, 'the restored database keeps its owner');
  // Any user may record itself (root running a command first must not lock the service user out).
  assert.equal(statSync(join(dataDir, 'herald.db.holders')).mode & 0o7777, 0o1777);
  assert.equal(
    query<{ n: number }>(join(dataDir, kept[0]), 'SELECT count(*) AS n FROM torrents')[0].n,
    hashes.length + uploads,
  );
  tracker = await startTracker(args, { dataDir });
  const listed = await fetch(`${base()}/api/torrents?limit=1000`, {
    headers: { authorization: `Bearer ${TOKEN}` },
  }).then((r) => r.json() as Promise<unknown[]>);
  assert.equal(listed.length, inCopy, 'the tracker serves the backup’s torrents');
  await announce(peers[0], 0);

  // A tracker killed with SIGKILL leaves its record behind; it does not block a restore.
  await tracker.crash();
  assert.ok(existsSync(join(dataDir, 'herald.db.holders', String(tracker.pid))));
  const afterCrash = await herald(['restore', copy, ...flags]);
  assert.equal(afterCrash.code, 0, afterCrash.stderr);
});

test('backup and restore say what to use for PostgreSQL and refuse a database in memory', async () => {
  const pg = await herald(['backup', '/tmp/x.db', '--database-url', 'postgres://u@127.0.0.1/db']);
  assert.equal(pg.code, 2);
  assert.match(pg.stderr, /pg_dump/);
  const pgr = await herald(['restore', '/tmp/x.db', '--database-url', 'postgres://u@127.0.0.1/db']);
  assert.match(pgr.stderr, /pg_restore/);
  const mem = await herald(['backup', '/tmp/x.db', '--database-url', 'sqlite::memory:']);
  assert.equal(mem.code, 2);
  assert.match(mem.stderr, /in memory/);
  const usage = await herald(['backup']);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /usage: herald backup FILE/);
});
