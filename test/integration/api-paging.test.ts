/**
 * The API's members, torrents, hit-and-runs and a member's torrents on a big site, on every
 * database engine: each comes a page at a time by key (`limit`, `after`), the answer names the
 * next page (`Link: <...>; rel="next"`, none on the last), and the pages together give every row
 * once, even while members join and torrents are uploaded between two pages (OFFSET pages shifted
 * then: a row given twice, or never).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { torrentRow } from '../../bench/harness/rows.ts';
import { memberRow } from '../../src/db/rows.ts';
import type { Tracker } from '../../src/index.ts';
import { engines } from '../helpers/db.ts';
import { startPortalTracker } from '../helpers/portal-tracker.ts';

const TOKEN = 'api-paging-token-0123456789';
/** Rows of each kind: two pages of 100 and a half. */
const N = 250;

for (const engine of engines) {
  describe(`the API's lists a page at a time by key (${engine.name})`, () => {
    let tracker: Tracker;
    let stop: () => Promise<void>;
    let base = '';
    /** The member who snatched every torrent. */
    let busy = 0;

    before(async () => {
      ({ tracker, base, stop } = await startPortalTracker(engine, { udp: [], apiToken: TOKEN }));
      const k = tracker.registry().db.kysely;
      const members = (
        await k
          .insertInto('members')
          .values(Array.from({ length: N }, (_, i) => memberRow({ username: `joiner${i}`, createdAt: 0 })))
          .returning('id')
          .execute()
      ).map((r) => r.id);
      busy = members[0];
      const torrents = (
        await k
          .insertInto('torrents')
          .values(
            Array.from({ length: N }, (_, i) =>
              torrentRow(i.toString(16).padStart(40, '0'), `upload ${i}`, 1),
            ),
          )
          .returning('id')
          .execute()
      ).map((r) => r.id);
      await k
        .insertInto('member_torrents')
        .values(
          torrents.map((torrent_id, i) => ({
            member_id: busy,
            torrent_id,
            uploaded: 0,
            downloaded: 1,
            raw_uploaded: 0,
            raw_downloaded: 1,
            seed_time: 0,
            announces: 1,
            completed_at: i,
            first_announce_at: i,
            // Announced in another order than the torrents' ids.
            last_announce_at: (i * 7) % N,
          })),
        )
        .execute();
      await k
        .insertInto('hit_and_runs')
        .values(
          members.map((member_id, i) => ({
            member_id,
            torrent_id: torrents[i],
            snatched_at: 0,
            marked_at: 0,
            seed_time: 0,
            status: i % 2 === 0 ? ('active' as const) : ('expired' as const),
          })),
        )
        .execute();
    });

    after(async () => {
      await stop();
    });

    const get = async (path: string) => {
      const r = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${TOKEN}` } });
      const body = (await r.json()) as unknown;
      const next = /^<([^>]+)>; rel="next"$/.exec(r.headers.get('link') ?? '')?.[1] ?? null;
      return { status: r.status, body, next };
    };

    /** Follows the `next` links from `path`; `between` runs after each page but the last. */
    const walk = async (path: string, between: (page: number) => Promise<void> = async () => {}) => {
      const pages: Record<string, unknown>[][] = [];
      for (let p: string | null = path; p !== null; ) {
        const r = await get(p);
        assert.equal(r.status, 200, JSON.stringify(r.body));
        assert.ok(Array.isArray(r.body), JSON.stringify(r.body));
        pages.push(r.body as Record<string, unknown>[]);
        assert.ok(pages.length <= 100, `a page too many: ${p}`);
        p = r.next;
        if (p !== null) await between(pages.length);
      }
      return pages;
    };

    /** N rows in pages of 100, 100 and 50, each once, by `key` ascending (1) or descending (-1). */
    const everyOnceInOrder = (pages: Record<string, unknown>[][], key: string, order: 1 | -1) => {
      assert.deepEqual(
        pages.map((p) => p.length),
        [100, 100, 50],
      );
      const ids = pages.flat().map((r) => r[key] as number);
      assert.deepEqual(
        ids,
        [...ids].sort((a, b) => order * (a - b)),
      );
      assert.equal(new Set(ids).size, N);
    };

    test('members: 100 a page by id, the next page named in the answer, every member once while others join', async () => {
      const reg = tracker.registry();
      const before = (await reg.db.kysely.selectFrom('members').select('id').orderBy('id').execute()).map(
        (r) => r.id,
      );
      let joined = 0;
      const pages = await walk('/api/members', async () => {
        await reg.addMember({ username: `latecomer${joined++}` });
      });
      assert.deepEqual(
        pages.map((p) => p.length),
        [100, 100, 52],
      );
      const ids = pages.flat().map((m) => m.id as number);
      assert.deepEqual(ids.slice(0, before.length), before, 'every member once, by id');
      assert.equal(new Set(ids).size, ids.length, 'no member twice');
      assert.equal(ids.length, before.length + joined, 'the members who joined meanwhile come last');
      // The filters hold on every page.
      const searched = await walk('/api/members?search=joiner1&limit=5');
      assert.equal(searched.flat().length, 1 + 10 + 100);
      assert.ok(searched.flat().every((m) => String(m.username).startsWith('joiner1')));
      assert.equal((await get('/api/members?after=x')).status, 400);
    });

    test('torrents: 100 a page, newest first, every torrent once while others are uploaded', async () => {
      const reg = tracker.registry();
      const all = (
        await reg.db.kysely.selectFrom('torrents').select('id').orderBy('id', 'desc').execute()
      ).map((r) => r.id);
      let uploaded = 0;
      const pages = await walk('/api/torrents', async () => {
        await reg.addTorrent({
          infoHash: `ff${(uploaded++).toString(16).padStart(38, '0')}`,
          infoHashV2: null,
          name: 'uploaded while paging',
          size: 1,
          fileCount: 1,
        });
      });
      const ids = pages.flat().map((t) => t.id as number);
      assert.equal(uploaded, 2);
      assert.deepEqual(ids, all, 'every torrent there was at the first page, once, newest first');
      const searched = await walk('/api/torrents?search=upload%202&limit=7');
      assert.equal(searched.flat().length, 1 + 10 + 50);
    });

    test('hit-and-runs: 100 a page, newest first, every one once; of one status', async () => {
      everyOnceInOrder(await walk('/api/hit-and-runs'), 'id', -1);
      const active = (await walk('/api/hit-and-runs?status=active&limit=30')).flat();
      assert.equal(active.length, N / 2);
      assert.ok(active.every((h) => h.status === 'active'));
    });

    test('a member\u2019s torrents: 100 a page by torrent id, every one once', async () => {
      everyOnceInOrder(await walk(`/api/members/${busy}/torrents`), 'torrent_id', 1);
      assert.equal((await get(`/api/members/${busy}/torrents?limit=1001`)).status, 400);
    });

    test('old clients: `offset` pages as before; with `after` it is refused', async () => {
      const first = (await get('/api/members?limit=10')).body as { id: number }[];
      const second = (await get('/api/members?limit=5&offset=5')).body as { id: number }[];
      assert.deepEqual(
        second.map((m) => m.id),
        first.slice(5).map((m) => m.id),
      );
      assert.equal((await get(`/api/members?offset=5&after=${first[0].id}`)).status, 400);
    });
  });
}
