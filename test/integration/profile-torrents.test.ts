/**
 * A member's profile on a big site (every database engine): a member with more torrents than a
 * page lists them last announced first, a page at a time, each torrent once over the pages (rows
 * with the same last announce ordered by torrent id); the snatch count is every snatch, not those of
 * the page. Before, the page read every torrent the member ever announced (tens of thousands for a
 * long-time seeder) for each view and showed only the first 200, with no way to the others.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Tracker } from '../../src/index.ts';
import { hashPassword } from '../../src/web/portal/security.ts';
import { engines } from '../helpers/db.ts';
import { PortalClient } from '../helpers/portal-client.ts';
import { startPortalTracker } from '../helpers/portal-tracker.ts';
import { memberTorrentRow, torrentRow } from '../helpers/scheduler.ts';

const PASSWORD = 'a long enough password';
/** Torrents of the member: more than two pages of 100. */
const N = 250;

for (const engine of engines) {
  describe(`a member's profile with ${N} torrents (${engine.name})`, () => {
    let tracker: Tracker;
    let stop: () => Promise<void>;
    let c: PortalClient;
    let memberId = 0;

    before(async () => {
      let base: string;
      ({ tracker, base, stop } = await startPortalTracker(engine, { udp: [] }));
      const reg = tracker.registry();
      const k = reg.db.kysely;
      const m = await reg.addMember({ username: 'seeder', passwordHash: await hashPassword(PASSWORD) });
      memberId = m.id;
      const torrents = await k
        .insertInto('torrents')
        .values(Array.from({ length: N }, (_, j) => torrentRow(j, `held ${String(j).padStart(3, '0')}`)))
        .returning('id')
        .execute();
      // Torrent j last announced at 10,000 + j / 3 (three at a time share a second: the pages must
      // split such ties by torrent id); every other one snatched.
      await k
        .insertInto('member_torrents')
        .values(
          torrents.map((t, j) =>
            memberTorrentRow(m.id, t.id, 10_000 + Math.floor(j / 3), {
              completed_at: j % 2 === 0 ? 5000 : null,
              first_announce_at: 9000,
            }),
          ),
        )
        .execute();
      c = new PortalClient(base, { localAddress: '127.0.6.1' });
      assert.equal((await c.login('seeder', PASSWORD)).status, 303);
    });

    after(async () => {
      await stop();
    });

    test('every torrent once over the pages, last announced first; snatches counts them all', async () => {
      const seen: string[] = [];
      let path = `/member/${memberId}`;
      let pages = 0;
      for (;;) {
        const r = await c.get(path);
        assert.equal(r.status, 200);
        pages++;
        if (pages === 1) assert.match(r.body, /Snatches<\/div><div class="value">125</);
        const names = [...r.body.matchAll(/<a href="\/torrent\/[0-9]+">(held [0-9]+)<\/a>/g)].map(
          (x) => x[1],
        );
        assert.ok(names.length <= 100, `a page lists at most 100 (${names.length})`);
        seen.push(...names);
        const next = /href="(\/member\/[0-9]+\?torrents_before=[0-9]+\.[0-9]+)#torrents">Older/.exec(r.body);
        if (next === null) break;
        path = next[1];
        assert.ok(pages < 10, 'the pages end');
      }
      assert.equal(pages, 3);
      const expected = Array.from({ length: N }, (_, j) => `held ${String(N - 1 - j).padStart(3, '0')}`);
      assert.deepEqual(seen, expected);
    });
  });
}
