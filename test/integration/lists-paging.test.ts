/**
 * A long deny list (takedowns add up: 10⁵-10⁶ hashes on a real site) through the API and the
 * staff's Lists page, on every database engine: both come a page at a time by hash, never the
 * whole list in one answer (one read and one render of every entry, on the event loop), and the
 * pages together give every entry once.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
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
  });
}
