/**
 * `kill -9` of `herald serve` under a private-mode announce load, then a restart (issue #15):
 * every flush the tracker logged before it died is in the database, nothing more than was
 * announced is, the database passes its integrity checks (SQLite `PRAGMA integrity_check` and
 * `foreign_key_check`; on both engines, every member's totals equal the sum of its per-torrent
 * rows, which one flush transaction writes together), and the restarted tracker works. The loss,
 * in bytes and in seconds of load, is measured and printed, not asserted (it is timing).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sql } from 'kysely';
import { openDatabase } from '../../src/db/connect.ts';
import { PRIVATE_SERVE, type RunningTracker, startTracker } from '../e2e/tracker-process.ts';
import { announcePath, bdecode, hashOf, httpGet, text } from '../helpers/clients.ts';
import { engines } from '../helpers/db.ts';

const LOAD_MS = 3500;
const STEP = 1000; // bytes each announce adds to `uploaded`
const TOKEN = 'crash-token-0123456789abcdef';

for (const engine of engines) {
  test(`kill -9 under load on ${engine.name}: what was flushed survives, the database is intact`, async (t) => {
    const db = engine.name === 'postgres' ? await engine.create() : null;
    const args = [
      ...PRIVATE_SERVE,
      ...['--log-level', 'debug', '--api-token', TOKEN],
      ...(db ? ['--database-url', db.url] : []),
    ];
    const first = await startTracker(args);
    let second: RunningTracker | null = null;
    try {
      // Set up through the API (a CLI command costs a Node start-up each).
      const api = async <T>(path: string, body: unknown): Promise<T> => {
        const r = await fetch(`http://127.0.0.1:${first.http[0].port}/api/${path}`, {
          method: 'POST',
          headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
        assert.equal(r.status, 201, await r.clone().text());
        return (await r.json()) as T;
      };
      const members: { id: number; passkey: string }[] = [];
      for (const username of ['crash1', 'crash2']) members.push(await api('members', { username }));
      const torrents = [hashOf(1, 19), hashOf(2, 19)];
      for (const [i, h] of torrents.entries())
        await api('torrents', { info_hash: h.toString('hex'), name: `crash-${i}`, size: 1000 });
      const peers = members.flatMap((m, i) =>
        torrents.map((infoHash, j) => ({
          passkey: m.passkey,
          infoHash,
          port: 7100 + i * 2 + j,
          peerId: Buffer.from(`-qB4500-crash${i}${j}00000`),
        })),
      );
      const announce = async (
        tr: RunningTracker,
        p: (typeof peers)[number],
        f: { uploaded?: number; event?: 'started' },
      ) => {
        const r = await httpGet(
          tr.http[0].port,
          '127.0.0.1',
          announcePath({ ...p, ...f, left: 0, base: `/announce/${p.passkey}` }),
        );
        const d = bdecode(r.body);
        if (d.has('failure reason')) throw new Error(text(d.get('failure reason')));
      };
      // The running tracker sees the new members and torrents within a second.
      for (let i = 0; ; i++) {
        try {
          for (const p of peers) await announce(first, p, { event: 'started' });
          break;
        } catch (e) {
          if (i > 50) throw e;
          await new Promise((r) => setTimeout(r, 100));
        }
      }

      // One announce loop a peer, each announce adding STEP bytes, until the process dies.
      const answered: number[] = []; // when each credited announce was answered
      let inFlight = 0;
      let dead = false;
      const loops = peers.map(async (p) => {
        for (let uploaded = STEP; !dead; uploaded += STEP) {
          inFlight++;
          try {
            await announce(first, p, { uploaded });
            answered.push(performance.now());
          } catch {
            return; // the tracker is gone
          } finally {
            inFlight--;
          }
        }
      });
      await new Promise((r) => setTimeout(r, LOAD_MS));
      const unanswered = inFlight;
      const killedAt = performance.now();
      await first.crash();
      dead = true;
      await Promise.all(loops);

      let flushed = 0;
      for (const line of first.stderr().split('\n'))
        if (line.includes('"accounting flushed"'))
          flushed += (JSON.parse(line) as { uploaded: number }).uploaded;

      // The restarted tracker opens the database and answers.
      second = await startTracker(args, { dataDir: first.dataDir });
      await announce(second, peers[0], { event: 'started' });
      await second.stopGracefully();

      const after = await openDatabase(db?.url ?? '', first.dataDir);
      let stored: number;
      try {
        const k = after.kysely;
        if (engine.name === 'sqlite') {
          const ic = await sql<{ integrity_check: string }>`PRAGMA integrity_check`.execute(k);
          assert.deepEqual(
            ic.rows.map((r) => r.integrity_check),
            ['ok'],
          );
          assert.deepEqual((await sql`PRAGMA foreign_key_check`.execute(k)).rows, []);
        }
        const totals = await k
          .selectFrom('members')
          .leftJoin('member_torrents', 'member_torrents.member_id', 'members.id')
          .select(['members.id', 'members.uploaded'])
          .select((eb) => eb.fn.coalesce(eb.fn.sum<number>('member_torrents.uploaded'), eb.lit(0)).as('rows'))
          .where(
            'members.id',
            'in',
            members.map((m) => m.id),
          )
          .groupBy(['members.id', 'members.uploaded'])
          .execute();
        for (const r of totals)
          assert.equal(Number(r.rows), r.uploaded, `member ${r.id}: totals and rows disagree`);
        stored = totals.reduce((n, r) => n + r.uploaded, 0);
      } finally {
        await after.close();
      }

      const sent = answered.length * STEP;
      assert.ok(flushed > 0, 'no flush was logged in the load');
      assert.ok(stored >= flushed, `the database holds ${stored} B, the flushes logged ${flushed} B`);
      assert.ok(
        stored <= sent + unanswered * STEP,
        `the database holds ${stored} B, only ${sent} B announced`,
      );

      // Measured: how much credit, and how many seconds of load, the crash took away.
      answered.sort((a, b) => a - b);
      const survivedUpTo =
        stored >= STEP ? answered[Math.min(answered.length, stored / STEP) - 1] : answered[0];
      const lostSeconds = ((killedAt - survivedUpTo) / 1000).toFixed(2);
      const report = `${engine.name}: ${answered.length} credited announces in ${LOAD_MS} ms; lost ${sent - stored} of ${sent} B = the last ${lostSeconds} s of load (flush_interval 1 s)`;
      t.diagnostic(report);
      process.stderr.write(`${report}\n`);
    } finally {
      await first.stop();
      if (second) await second.stop();
      await db?.drop();
    }
  });
}
