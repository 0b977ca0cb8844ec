/**
 * A long deny list (takedowns add up: 10⁵-10⁶ hashes on a real site) and a restricted torrent
 * granted to thousands of members, through the API and the staff's pages, on every database
 * engine: both come a page at a time, never whole in one answer (one read and one render of every
 * entry, on the event loop), and the pages together give every entry once.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { memberRow } from '../../src/db/rows.ts';
import type { Tracker } from '../../src/index.ts';
import { hashPassword } from '../../src/web/portal/security.ts';
import { engines } from '../helpers/db.ts';
import { PortalClient } from '../helpers/portal-client.ts';
import { startPortalTracker } from '../helpers/portal-tracker.ts';

const TOKEN = 'lists-paging-token-0123456789';
const PASSWORD = 'a long enough password';
/** Entries on the deny list: two API pages and a half. */
const N = 2500;
const hashOf = (i: number) => (i * 7919).toString(16).padStart(40, '0');

for (const engine of engines) {
  describe(`a long deny list, a page at a time (${engine.name})`, () => {
    let tracker: Tracker;
    let stop: () => Promise<void>;
    let base = '';
    let restricted = 0;

    before(async () => {
      ({ tracker, base, stop } = await startPortalTracker(engine, { udp: [], apiToken: TOKEN }));
      const k = tracker.registry().db.kysely;
      for (let i = 0; i < N; i += 500)
        await k
          .insertInto('hash_lists')
          .values(
            Array.from({ length: 500 }, (_, j) => ({
              list: 'deny' as const,
              info_hash: hashOf(i + j),
              note: null,
              created_at: i + j,
            })),
          )
          .execute();
      // A restricted torrent granted to N members, one by one (a shop's sales).
      const reg = tracker.registry();
      restricted = (
        await reg.addTorrent({
          infoHash: 'cd'.repeat(20),
          infoHashV2: null,
          name: 'sold',
          size: 1,
          fileCount: 1,
          restricted: true,
        })
      ).id;
      for (let i = 0; i < N; i += 500) {
        const ids = (
          await k
            .insertInto('members')
            .values(
              Array.from({ length: 500 }, (_, j) => memberRow({ username: `buyer${i + j}`, createdAt: 0 })),
            )
            .returning('id')
            .execute()
        ).map((r) => r.id);
        await k
          .insertInto('grants')
          .values(
            ids.map((member_id) => ({
              torrent_id: restricted,
              member_id,
              group_id: null,
              reference: null,
              created_at: 0,
              expires_at: null,
            })),
          )
          .execute();
      }
    });

    after(async () => {
      await stop();
    });

    const api = async (path: string) => {
      const r = await fetch(`${base}/api/${path}`, { headers: { authorization: `Bearer ${TOKEN}` } });
      return { status: r.status, body: (await r.json()) as { info_hash: string }[] };
    };

    test('the API gives at most 1,000 entries a page (100 by default) by hash, `after` the last one for the next page; every entry once', async () => {
      const seen: string[] = [];
      let path = 'lists/deny?limit=1000';
      for (;;) {
        const r = await api(path);
        assert.equal(r.status, 200);
        assert.ok(r.body.length <= 1000, `${r.body.length} entries in one answer`);
        seen.push(...r.body.map((e) => e.info_hash));
        if (r.body.length < 1000) break;
        path = `lists/deny?limit=1000&after=${r.body.at(-1)!.info_hash}`;
      }
      const all = Array.from({ length: N }, (_, i) => hashOf(i)).sort();
      assert.deepEqual(seen, all);
      assert.equal((await api('lists/deny')).body.length, 100, 'by default, 100');
      assert.equal((await api('lists/deny?limit=10')).body.length, 10);
      assert.equal((await api('lists/deny?limit=1001')).status, 400);
      assert.equal((await api('lists/deny?after=not-a-hash')).status, 400);
    });

    test('the staff Lists page shows 100 entries of the deny list, how many there are, and the next page', async () => {
      await tracker
        .registry()
        .addMember({ username: 'lister', role: 'admin', passwordHash: await hashPassword(PASSWORD) });
      const c = new PortalClient(base, { localAddress: '127.0.4.1' });
      assert.equal((await c.login('lister', PASSWORD)).location, '/torrents');
      const sorted = Array.from({ length: N }, (_, i) => hashOf(i)).sort();
      const page = await c.get('/staff/lists');
      assert.equal(page.status, 200);
      const rows = (body: string) =>
        [...body.matchAll(/<td class="mono">([0-9a-f]{40})<\/td>/g)].map((m) => m[1]);
      assert.deepEqual(rows(page.body), sorted.slice(0, 100));
      assert.match(page.body, /2,500 entries/);
      const next = page.body.match(/href="(\/staff\/lists\?deny_after=[0-9a-f]{40})"/);
      assert.ok(next, 'a link to the next page');
      assert.deepEqual(rows((await c.get(next[1])).body), sorted.slice(100, 200));
    });

    test('the API gives a torrent\u2019s grants 100 a page by default, `after` the last id for the next page; every grant once', async () => {
      assert.equal((await api(`grants?torrent=${restricted}`)).body.length, 100);
      const seen = new Set<number>();
      let after = 0;
      for (;;) {
        const r = await fetch(`${base}/api/grants?torrent=${restricted}&limit=1000&after=${after}`, {
          headers: { authorization: `Bearer ${TOKEN}` },
        });
        const page = (await r.json()) as { id: number; member_id: number }[];
        assert.ok(Array.isArray(page), JSON.stringify(page));
        for (const g of page) seen.add(g.member_id);
        if (page.length < 1000) break;
        after = page[page.length - 1].id;
      }
      assert.equal(seen.size, N);
    });

    test('the torrent\u2019s page shows its first 500 grants with their members\u2019 names, and how many there are', async () => {
      const c = new PortalClient(base, { localAddress: '127.0.4.2' });
      assert.equal((await c.login('lister', PASSWORD)).location, '/torrents');
      const page = await c.get(`/torrent/${restricted}`);
      assert.equal(page.status, 200);
      assert.equal(
        [...page.body.matchAll(/member <a href="\/member\/[0-9]+">buyer[0-9]+<\/a>/g)].length,
        500,
      );
      assert.match(page.body, /2,500 grants; the first 500 are shown/);
    });
  });
}
