/**
 * Private mode across instances (issue #14): two `herald serve` processes on one Redis (and on one
 * Redis Cluster) and one PostgreSQL, the second with two workers. One member's client alternates its announces between them
 * (and between the two hashes of a hybrid torrent); each delta is credited exactly once, the
 * snatch counts once, and the totals are in the database after a graceful stop of both. With a
 * baseline per instance, each instance would credit only the deltas since the announce it saw
 * (short), or, with the two hashes, twice. On a redis-server of the test's own with Herald's module
 * loaded, the first instance announces through the module (HERALD.ANNOUNCE) and the second through
 * the Lua script: the two ways share the baselines as they share the swarms.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import pg from 'pg';
import type { RunningTracker } from '../e2e/tracker-process.ts';
import { type AnnounceFields, announceAt, bdecode, httpGet, pct, text } from '../helpers/clients.ts';
import { engines } from '../helpers/db.ts';
import { privateTorrentFile } from '../helpers/libtorrent.ts';
import { adminJson, privateInstances } from '../helpers/private-instances.ts';
import { moduleRedis, redisTargets } from '../helpers/redis.ts';

const postgres = engines.find((e) => e.name === 'postgres');
const withModule = postgres === undefined ? null : moduleRedis();
after(() => withModule?.stop());
const moduleUrl = withModule === null ? null : await withModule.url();

/** [name, url, the first instance's redis_module, the second's]. */
const targets: [string, string, string, string][] = [
  ...(postgres === undefined ? [] : redisTargets).map(([name, url]): [string, string, string, string] => [
    name,
    url,
    'auto',
    'auto',
  ]),
  ...(moduleUrl === null
    ? []
    : [
        ['Redis with the herald module (A through it, B through Lua)', moduleUrl, 'require', 'off'] as [
          string,
          string,
          string,
          string,
        ],
      ]),
];

for (const [name, url, moduleA, moduleB] of targets)
  describe(`private mode, two instances on one ${name} and one PostgreSQL`, () => {
    // B with two workers (each talks to Redis; the primary writes their credits).
    const pair = privateInstances(postgres!, url, {
      first: ['--redis-module', moduleA],
      second: ['--workers', '2', '--redis-module', moduleB],
      secondReady: 'herald workers running',
    });

    /** A member and a hybrid torrent, known to both instances; announces as that member. */
    async function setUp(who: string, fill: number) {
      const { one: a, two: b, scratch } = pair;
      const file = privateTorrentFile(scratch, who, Buffer.alloc(200_000, fill));
      const member = adminJson<{ passkey: string }>(a.admin(['member', 'add', who, '--json']));
      const torrent = adminJson<{ id: number; info_hash: string; info_hash_v2: string }>(
        a.admin(['torrent', 'add', file, '--json']),
      );
      const v1 = Buffer.from(torrent.info_hash, 'hex');
      const v2 = Buffer.from(torrent.info_hash_v2.slice(0, 40), 'hex');
      const announce = (t: RunningTracker, ih: Buffer, f: Partial<AnnounceFields>) =>
        announceAt(t.http[0].port, {
          infoHash: ih,
          port: 9500,
          peerId: Buffer.from('-qB4500-instances001'),
          base: `/announce/${member.passkey}`,
          ...f,
        });
      // Both instances must know the torrent (each polls the database revision every second).
      for (const t of [a, b]) {
        let d = await announce(t, v1, { event: 'started', left: 200_000 });
        for (let i = 0; d.has('failure reason') && i < 75; i++) {
          await new Promise((r) => setTimeout(r, 200));
          d = await announce(t, v1, { event: 'started', left: 200_000 });
        }
        assert.equal(d.get('failure reason'), undefined, text(d.get('failure reason')));
      }
      // And every worker of B (each polls on its own).
      await new Promise((r) => setTimeout(r, 2500));
      return { torrent, v1, v2, announce, passkey: member.passkey };
    }

    test('peers_per_torrent (3) counts the peers the member runs through both instances', async () => {
      const { one: a, two: b } = pair;
      const { v1, v2, announce, passkey } = await setUp('bob', 5);
      // The set-up's peer is one; two more through B and A (one on each hash).
      for (const [t, ih, n] of [
        [b, v2, 2],
        [a, v1, 3],
      ] as const) {
        const d = await announce(t, ih, {
          event: 'started',
          port: 9500 + n,
          peerId: Buffer.from(`-qB4500-limits00000${n}`),
        });
        assert.equal(d.get('failure reason'), undefined, text(d.get('failure reason')));
      }
      for (const t of [a, b]) {
        const d = await announce(t, v1, {
          event: 'started',
          port: 9504,
          peerId: Buffer.from('-qB4500-limits000004'),
        });
        assert.match(text(d.get('failure reason')), /too many clients/);
      }
      // A stop through B frees a place on A.
      await announce(b, v1, { event: 'stopped', port: 9503, peerId: Buffer.from('-qB4500-limits000003') });
      const d = await announce(a, v2, {
        event: 'started',
        port: 9504,
        peerId: Buffer.from('-qB4500-limits000004'),
      });
      assert.equal(d.get('failure reason'), undefined, text(d.get('failure reason')));
      // Scrape finds both swarms of the hybrid where announces put them (the route hash's bucket).
      const files = bdecode(
        (
          await httpGet(
            b.http[0].port,
            '127.0.0.1',
            `/scrape/${passkey}?info_hash=${pct(v1)}&info_hash=${pct(v2)}`,
          )
        ).body,
      ).get('files') as Map<string, Map<string, number>>;
      const counts = [v1, v2].map((h) => {
        const e = files.get(h.toString('latin1'));
        return `${e?.get('complete')}/${e?.get('incomplete')}`;
      });
      assert.deepEqual(counts, ['0/1', '0/2']);
    });

    test('a client alternating between the instances is credited exactly once', async () => {
      const { one: a, two: b } = pair;
      const { torrent, v1, v2, announce } = await setUp('alice', 7);
      // 40 announces, alternating instances (and hashes every other pair): downloading for the
      // first 20, `completed` at 20 (on B), then seeding; another `completed` on A counts nothing.
      let up = 0;
      let down = 0;
      for (let i = 1; i <= 40; i++) {
        up += 1000 + i;
        if (i <= 20) down += 10_000;
        const left = i < 20 ? 200_000 - down : 0;
        const event = i === 20 || i === 21 ? 'completed' : undefined;
        const r = await announce(i % 2 === 0 ? b : a, i % 4 < 2 ? v1 : v2, {
          uploaded: up,
          downloaded: down,
          left,
          event,
        });
        assert.equal(r.get('failure reason'), undefined, text(r.get('failure reason')));
        // Every announce but `completed` is early (min_interval 900 s): warned, counted all the same.
        if (event === undefined) assert.match(text(r.get('warning message')), /announce/);
      }
      await Promise.all([a.stopGracefully(), b.stopGracefully()]);
      const c = new pg.Client({ connectionString: pair.db.url });
      await c.connect();
      try {
        const m = await c.query('SELECT uploaded, downloaded FROM members WHERE username = $1', ['alice']);
        assert.deepEqual(
          [Number(m.rows[0].uploaded), Number(m.rows[0].downloaded)],
          [up, down],
          'every byte credited once, none twice',
        );
        const t = await c.query('SELECT snatches FROM torrents WHERE id = $1', [torrent.id]);
        assert.equal(Number(t.rows[0].snatches), 1, 'one snatch');
        const mt = await c.query(
          'SELECT uploaded, downloaded, completed_at FROM member_torrents WHERE torrent_id = $1',
          [torrent.id],
        );
        assert.equal(mt.rows.length, 1);
        assert.deepEqual([Number(mt.rows[0].uploaded), Number(mt.rows[0].downloaded)], [up, down]);
        assert.notEqual(mt.rows[0].completed_at, null);
      } finally {
        await c.end();
      }
    });
  });
