/**
 * Download slots across instances (issue #16): two `herald serve` processes on one Redis (and on
 * one Redis Cluster) and one PostgreSQL, a member whose class has one slot. The torrents the
 * member leeches are counted in Redis, so a second leeching torrent is refused whichever instance
 * it reaches, and stopping, finishing or going silent on the first frees the slot everywhere.
 * Counted per instance, each instance would let the member leech one torrent more.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { text } from '../helpers/clients.ts';
import { engines } from '../helpers/db.ts';
import {
  exactlyOneOfTwo,
  memberWithTorrents,
  privateInstances,
  quickPeers,
} from '../helpers/private-instances.ts';
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
        ...quickPeers(PEER_TIMEOUT),
        // A claim whose announce may still be on its way is waited for up to two of these.
        '--redis-timeout',
        '300',
      ],
    });

    /** A member (class User: one slot) and `n` torrents, known to both instances. */
    const setUp = (who: string, n: number) => memberWithTorrents(pair, who, n, 'slots', 9600);

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
      const { hashes, announce } = await setUp('lee', 2);
      const [a, b] = hashes;
      await exactlyOneOfTwo(pair, announce, [a, 1], [b, 2]);
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
