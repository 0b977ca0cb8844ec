/**
 * The portal's torrent list on a site with more torrents than it used to read (the newest 5,000),
 * on every database engine: the count is every match, and every sort (size, age, name, snatches,
 * and the live seeders) runs over every match, so the biggest, the oldest or the best seeded
 * torrent of the site is where the sort puts it, however old it is.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Tracker } from '../../src/index.ts';
import { hashPassword } from '../../src/web/portal/security.ts';
import { announceAt } from '../helpers/clients.ts';
import { engines } from '../helpers/db.ts';
import { PortalClient } from '../helpers/portal-client.ts';
import { startPortalTracker } from '../helpers/portal-tracker.ts';

const PASSWORD = 'a long enough password';
/** Torrents: past the 5,000 the list read before. */
const N = 5100;
const GiB = 1024 ** 3;

for (const engine of engines) {
  describe(`the torrent list of a large site (${engine.name})`, () => {
    let tracker: Tracker;
    let stop: () => Promise<void>;
    let base = '';
    let c: PortalClient;
    let passkey = '';

    before(async () => {
      ({ tracker, base, stop } = await startPortalTracker(engine, { udp: [] }));
      const reg = tracker.registry();
      const k = reg.db.kysely;
      for (let i = 0; i < N; i += 500) {
        const rows = [];
        for (let j = i; j < Math.min(N, i + 500); j++)
          rows.push({
            info_hash: (j + 1).toString(16).padStart(40, '0'),
            info_hash_v2: null,
            name: `browse ${String(j).padStart(5, '0')}`,
            // The first (oldest) torrent is the biggest and the most snatched.
            size: j === 0 ? 100 * GiB : GiB,
            file_count: 1,
            category: null,
            description: null,
            uploader_id: null,
            created_at: 1000 + j,
            download_factor: 100,
            upload_factor: 100,
            restricted: 0,
            snatches: j === 0 ? 50 : 0,
            metainfo: null,
          });
        await k.insertInto('torrents').values(rows).execute();
      }
      const m = await reg.addMember({ username: 'browser', passwordHash: await hashPassword(PASSWORD) });
      passkey = m.passkey;
      await tracker.policy.refresh();
      c = new PortalClient(base, { localAddress: '127.0.5.1' });
      assert.equal((await c.login('browser', PASSWORD)).location, '/torrents');
    });

    after(async () => {
      await stop();
    });

    /** The torrent names of a list page, in order. */
    const names = async (query: string) => {
      const r = await c.get(`/torrents${query}`);
      assert.equal(r.status, 200);
      return {
        body: r.body,
        names: [...r.body.matchAll(/<a href="\/torrent\/[0-9]+">(browse [0-9]+)<\/a>/g)].map((x) => x[1]),
      };
    };

    test('the count is every torrent, and size, age, name and snatches sort all of them', async () => {
      const first = await names('');
      assert.match(first.body, /5,?100 torrents/);
      assert.equal(first.names[0], 'browse 05099', 'newest first');
      assert.equal((await names('?sort=size')).names[0], 'browse 00000', 'the biggest');
      assert.equal((await names('?sort=snatches')).names[0], 'browse 00000', 'the most snatched');
      assert.equal((await names('?sort=age&dir=asc')).names[0], 'browse 00000', 'the oldest');
      assert.equal((await names('?sort=name&dir=asc')).names[0], 'browse 00000');
      const p2 = await names('?sort=name&dir=asc&page=2');
      assert.deepEqual(p2.names.slice(0, 2), ['browse 00050', 'browse 00051'], 'page 2 follows page 1');
      assert.match((await names('?q=browse')).body, /5,100 torrents/, 'a search counts every match');
    });

    test('seeders sort every torrent by its live swarm', async () => {
      // A seeder on the oldest torrent.
      const r = await announceAt(Number(new URL(base).port), {
        infoHash: Buffer.from('1'.padStart(40, '0'), 'hex'),
        port: 6881,
        left: 0,
        base: `/${passkey}/announce`,
      });
      assert.equal(r.has('failure reason'), false, String(r.get('failure reason')));
      assert.equal((await names('?sort=seeders')).names[0], 'browse 00000');
    });
  });
}
