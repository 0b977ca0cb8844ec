/**
 * Download slots across instances (issue #16): two `herald serve` processes on one Redis (and on
 * one Redis Cluster) and one PostgreSQL, a member whose class has one slot. The torrents the
 * member leeches are counted in Redis, so a second leeching torrent is refused whichever instance
 * it reaches, and stopping, finishing or going silent on the first frees the slot everywhere.
 * Counted per instance, each instance would let the member leech one torrent more.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { encode } from '../../src/protocol/bencode/index.ts';
import type { RunningTracker } from '../e2e/tracker-process.ts';
import { type AnnounceFields, announceAt, text } from '../helpers/clients.ts';
import { engines } from '../helpers/db.ts';
import { adminJson, privateInstances } from '../helpers/private-instances.ts';
import { redisTargets } from '../helpers/redis.ts';

const postgres = engines.find((e) => e.name === 'postgres');
/** Seconds a silent peer holds its place (and its slot). */
const PEER_TIMEOUT = 4;

for (const [name, url] of postgres === undefined ? [] : redisTargets)
  describe(`download slots, two instances on one ${name} and one PostgreSQL`, () => {
    const pair = privateInstances(postgres!, url, {
      args: [
        '--member-classes',
        'User: slots=1',
        '--early-announce',
        'off',
        '--interval',
        '2',
        '--min-interval',
        '1',
        '--peer-timeout',
        String(PEER_TIMEOUT),
        // A claim whose announce may still be on its way is waited for up to two of these.
        '--redis-timeout',
        '300',
      ],
    });

    /** A member (class User: one slot) and `n` torrents, known to both instances. */
    async function setUp(who: string, n: number) {
      const { one, two, scratch } = pair;
      const member = adminJson<{ passkey: string }>(one.admin(['member', 'add', who, '--json']));
      const hashes: Buffer[] = [];
      for (let i = 1; i <= n; i++) {
        const file = join(scratch, `${who}${i}.torrent`);
        const info = {
          length: 1000 * i,
          name: `${who}${i}`,
          'piece length': 16384,
          pieces: Buffer.alloc(20, i),
        };
        writeFileSync(file, encode({ announce: 'http://127.0.0.1/announce', info: { ...info, private: 1 } }));
        const t = adminJson<{ info_hash: string }>(one.admin(['torrent', 'add', file, '--json']));
        hashes.push(Buffer.from(t.info_hash, 'hex'));
      }
      /** Client `c` of the member announces torrent `ih` to instance `t`. */
      const announce = (t: RunningTracker, ih: Buffer, c: number, f: Partial<AnnounceFields> = {}) =>
        announceAt(t.http[0].port, {
          infoHash: ih,
          port: 9600 + c,
          peerId: Buffer.from(`-qB4500-slots${String(c).padStart(7, '0')}`),
          base: `/announce/${member.passkey}`,
          left: 1000,
          ...f,
        });
      // Both instances must know the torrents (each polls the database revision every second):
      // a seeding announce, stopped at once, takes no slot.
      for (const t of [one, two])
        for (const ih of hashes) {
          let d = await announce(t, ih, 99, { event: 'started', left: 0 });
          for (let i = 0; d.has('failure reason') && i < 75; i++) {
            await new Promise((r) => setTimeout(r, 200));
            d = await announce(t, ih, 99, { event: 'started', left: 0 });
          }
          assert.equal(d.get('failure reason'), undefined, text(d.get('failure reason')));
          await announce(t, ih, 99, { event: 'stopped', left: 0 });
        }
      return { hashes, announce };
    }

    const refused = (d: Map<string, unknown>) => text(d.get('failure reason'));
    const ok = (d: Map<string, unknown>, what: string) =>
      assert.equal(d.get('failure reason'), undefined, what);

    test('leeching A through one instance, B is refused through the other; stopping A frees the slot', async () => {
      const { one, two } = pair;
      const { hashes, announce } = await setUp('sam', 2);
      const [a, b] = hashes;
      ok(await announce(one, a, 1, { event: 'started' }), 'A, the first leeching torrent');
      assert.match(refused(await announce(two, b, 2, { event: 'started' })), /download slots full/);
      assert.match(refused(await announce(one, b, 2, { event: 'started' })), /download slots full/);
      ok(await announce(two, a, 3, { event: 'started' }), 'another client on A: A holds the slot already');
      ok(await announce(two, a, 1), 'A again, through the other instance');
      ok(await announce(two, b, 4, { event: 'started', left: 0 }), 'seeding B takes no slot');
      await announce(two, b, 4, { event: 'stopped', left: 0 });
      await announce(one, a, 1, { event: 'stopped' });
      assert.match(
        refused(await announce(two, b, 2, { event: 'started' })),
        /download slots full/,
        'one client left on A',
      );
      await announce(one, a, 3, { event: 'stopped' });
      ok(await announce(two, b, 2, { event: 'started' }), 'A stopped everywhere: B takes the slot');
      assert.match(
        refused(await announce(one, a, 1, { event: 'started' })),
        /download slots full/,
        'now B holds it',
      );
      // Finishing B (left 0, through the other instance) frees the slot too.
      ok(await announce(one, b, 2, { event: 'completed', left: 0 }), 'B completed');
      ok(await announce(two, a, 1, { event: 'started' }), 'A leeches again once B is seeding');
    });

    test('two new leeching torrents at once, one through each instance: exactly one is taken', async () => {
      const { one, two } = pair;
      const { hashes, announce } = await setUp('lee', 2);
      const [a, b] = hashes;
      for (let round = 0; round < 5; round++) {
        const answers = await Promise.all([
          announce(one, a, 1, { event: 'started' }),
          announce(two, b, 2, { event: 'started' }),
        ]);
        const taken = answers.filter((d) => !d.has('failure reason')).length;
        assert.equal(taken, 1, `round ${round}: ${answers.map(refused).join(' / ')}`);
        await Promise.all([
          announce(one, a, 1, { event: 'stopped' }),
          announce(two, b, 2, { event: 'stopped' }),
        ]);
      }
    });

    test('a client that announces as a seeder first and then has something left takes a slot, on either instance', async () => {
      const { one, two } = pair;
      const { hashes, announce } = await setUp('sly', 3);
      const [a, b, c] = hashes;
      ok(await announce(one, a, 1, { event: 'started' }), 'A, the first leeching torrent');
      ok(await announce(one, b, 2, { event: 'started', left: 0 }), 'seeding B');
      ok(await announce(two, c, 3, { event: 'started', left: 0 }), 'seeding C');
      assert.match(
        refused(await announce(one, b, 2)),
        /download slots full/,
        'then leeching B, same instance',
      );
      assert.match(refused(await announce(one, c, 3)), /download slots full/, 'leeching C, other instance');
      ok(await announce(two, b, 2, { left: 0 }), 'seeding B still');
      ok(await announce(two, b, 4, { event: 'started', left: 0 }), 'another client seeding B');
      ok(await announce(one, b, 2), 'B held by another seeding client: no new leeching torrent');
      await announce(one, a, 1, { event: 'stopped' });
      ok(await announce(two, c, 3), 'A stopped: C takes the slot');
    });

    test('a leeching torrent whose clients went silent frees its slot after peer_timeout, on every instance', async () => {
      const { one, two } = pair;
      const { hashes, announce } = await setUp('kim', 2);
      const [a, b] = hashes;
      ok(await announce(one, a, 1, { event: 'started' }), 'A');
      assert.match(refused(await announce(two, b, 2, { event: 'started' })), /download slots full/);
      await new Promise((r) => setTimeout(r, (PEER_TIMEOUT + 2) * 1000));
      ok(await announce(two, b, 2, { event: 'started' }), 'A went silent: B takes the slot');
      assert.match(refused(await announce(one, a, 1, { event: 'started' })), /download slots full/);
    });
  });
