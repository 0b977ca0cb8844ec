/**
 * What a SQLite lock held by another process does to a running private tracker (issue #15):
 * `herald serve` (SQLite file, flush every second) answers a steady stream of announces while a
 * second process holds the database's write lock (`BEGIN IMMEDIATE`, as a long CLI command, a
 * migration or a restore would) for LOCK seconds; one API write is made while it is held.
 *
 *   node bench/sqlite-lock.ts [LOCK_SECONDS=6]
 *
 * Prints, for before / during / after the lock: announces answered, median and slowest latency,
 * and how many took over 100 ms; then the API write's status and time, and whether every credited
 * byte reached the database once the lock was gone. Loopback only; every process is stopped by PID.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PRIVATE_SERVE, startTracker } from '../test/e2e/tracker-process.ts';
import { announcePath, bdecode, text } from '../test/helpers/clients.ts';
import { makeTorrent } from '../test/helpers/portal-client.ts';
import { lockSqlite } from '../test/helpers/sqlite-lock.ts';

const LOCK_SECONDS = Number(process.argv[2] ?? 6);
const TOKEN = 'bench-token-0123456789abcdef';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const t = await startTracker([...PRIVATE_SERVE, '--api-token', TOKEN]);
try {
  const json = (args: string[]) => {
    const r = t.admin([...args, '--json']);
    if (r.status !== 0) throw new Error(r.stderr);
    return JSON.parse(r.stdout);
  };
  const m = json(['member', 'add', 'bench']) as { passkey: string };
  const file = join(t.dataDir, 'bench.torrent');
  writeFileSync(file, makeTorrent('bench'));
  const { info_hash } = json(['torrent', 'add', file]) as { info_hash: string };
  const port = t.http[0].port;
  const infoHash = Buffer.from(info_hash, 'hex');
  let uploaded = 0;
  const announce = async (event?: 'started') => {
    const t0 = performance.now();
    const r = await fetch(
      `http://127.0.0.1:${port}${announcePath({
        infoHash,
        port: 7000,
        peerId: Buffer.from('-qB4500-benchlock001'),
        base: `/announce/${m.passkey}`,
        uploaded,
        left: 0,
        event,
      })}`,
    );
    const d = bdecode(Buffer.from(await r.arrayBuffer()));
    if (d.has('failure reason')) throw new Error(text(d.get('failure reason')));
    return performance.now() - t0;
  };
  // Policy picks up the new member and torrent within a second.
  for (let i = 0; ; i++) {
    try {
      await announce('started');
      break;
    } catch (e) {
      if (i > 50) throw e;
      await sleep(100);
    }
  }

  const phases: Record<string, number[]> = { before: [], during: [], after: [] };
  let phase = 'before';
  let running = true;
  const load = (async () => {
    while (running) {
      uploaded += 1000;
      phases[phase].push(await announce());
      await sleep(5);
    }
  })();

  await sleep(2000);
  // Another process takes the write lock and holds it.
  const lock = await lockSqlite(join(t.dataDir, 'herald.db'));
  const released = sleep(LOCK_SECONDS * 1000).then(() => lock.release());
  phase = 'during';
  await sleep(1500);
  const a0 = performance.now();
  const api = await fetch(`http://127.0.0.1:${port}/api/members`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'during-lock' }),
  });
  const apiMs = performance.now() - a0;
  await released;
  phase = 'after';
  await sleep(2500);
  running = false;
  await load;

  const row = (name: string, xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    const q = (p: number) => (s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))] : 0);
    return `${name.padEnd(7)} ${String(s.length).padStart(6)} announces  median ${q(0.5).toFixed(1)} ms  max ${(s.at(-1) ?? 0).toFixed(1)} ms  >100 ms: ${s.filter((x) => x > 100).length}`;
  };
  console.log(`write lock held by another process for ${LOCK_SECONDS} s`);
  for (const [k, v] of Object.entries(phases)) console.log(row(k, v));
  console.log(`API write during the lock: HTTP ${api.status} after ${apiMs.toFixed(0)} ms`);
  await sleep(1500); // one more flush
  const after = json(['member', 'show', 'bench']) as { uploaded: number };
  console.log(`credited ${after.uploaded} of ${uploaded} bytes announced`);
} finally {
  await t.stop();
}
