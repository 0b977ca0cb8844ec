/**
 * The private site of `npm run bench`'s rules row (issue #16): a Herald database in DATA_DIR with
 * MEMBERS members and TORRENTS torrents, some members below the ratio minimum (ratio watch warns
 * them at start), and freeleech tokens spent on some (member, torrent) pairs the load announces.
 * Writes HASHES (one info hash a line, hex) and PASSKEYS (one a line, in member order) for the
 * load generator (bench/http.lua, modes `fill` and `peers`), which derives its peers from them.
 *
 *   node bench/rules-site.ts DATA_DIR HASHES PASSKEYS MEMBERS TORRENTS PEERS [DATABASE_URL]
 *
 * DATABASE_URL (a `database_url`, e.g. postgres://...): the site goes there instead of DATA_DIR's SQLite file.
 */
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { openDatabase } from '../src/db/connect.ts';
import { memberRow } from '../src/db/rows.ts';
import { torrentRow } from './harness/rows.ts';

const [dataDir, hashFile, passkeyFile, members, torrents, peers, url = ''] = process.argv.slice(2);
const MEMBERS = Number(members);
const TORRENTS = Number(torrents);
const PEERS = Number(peers);
const GiB = 1024 ** 3;
const BATCH = 500;

/** The torrent of peer `i` (as bench/http.lua picks it): popular torrents have more peers. */
export function torrentOf(i: number, torrents: number): number {
  // A fixed hash of i to [0, 1), squared: skewed toward the first torrents.
  const r = ((i * 2654435761) % 4294967296) / 4294967296;
  return Math.floor(r * r * torrents);
}

const db = await openDatabase(url, dataDir);
try {
  const k = db.kysely;
  const hashes: string[] = [];
  for (let i = 0; i < TORRENTS; i++) hashes.push(createHash('sha1').update(`bench-rules-${i}`).digest('hex'));
  for (let i = 0; i < MEMBERS; i += BATCH) {
    const rows = [];
    for (let j = i; j < Math.min(MEMBERS, i + BATCH); j++) {
      const row = memberRow({ username: `m${j}`, createdAt: 0 });
      // One member in ten below the ratio minimum, past the grace: warned at start.
      if (j % 10 === 0) Object.assign(row, { downloaded: 10 * GiB, uploaded: GiB });
      rows.push(row);
    }
    await k.insertInto('members').values(rows).execute();
  }
  for (let i = 0; i < TORRENTS; i += BATCH)
    await k
      .insertInto('torrents')
      .values(
        hashes.slice(i, i + BATCH).map((h, j) => torrentRow(h, `t${i + j}`, (1 + ((i + j) % 50)) * GiB)),
      )
      .execute();
  const ids = (await k.selectFrom('members').select(['id', 'passkey']).orderBy('id').execute()).slice(
    0,
    MEMBERS,
  );
  const tids = (await k.selectFrom('torrents').select('id').orderBy('id').execute()).map((r) => r.id);
  // Freeleech tokens spent: one peer in fifty's (member, torrent) is freeleech for that member.
  const spent = new Map<string, { member_id: number; torrent_id: number }>();
  for (let i = 0; i < PEERS; i += 50) {
    const m = ids[i % MEMBERS].id;
    const t = tids[torrentOf(i, TORRENTS)];
    spent.set(`${m}:${t}`, { member_id: m, torrent_id: t });
  }
  const windows = [...spent.values()].map((s) => ({
    ...s,
    starts_at: 0,
    ends_at: 4_000_000_000,
    source: 'token',
    created_at: 0,
    by_member: null,
  }));
  for (let i = 0; i < windows.length; i += BATCH)
    await k
      .insertInto('personal_freeleech')
      .values(windows.slice(i, i + BATCH))
      .execute();
  writeFileSync(hashFile, `${hashes.join('\n')}\n`);
  writeFileSync(passkeyFile, `${ids.map((r) => r.passkey).join('\n')}\n`);
  process.stdout.write(
    `${MEMBERS} members, ${TORRENTS} torrents, ${windows.length} freeleech tokens spent\n`,
  );
} finally {
  await db.close();
}
