/**
 * `peers_per_member` across instances (issue #16): two `herald serve` processes on one Redis (and
 * on one Redis Cluster) and one PostgreSQL. A member's peers are counted in Redis, so a peer
 * beyond the limit is refused whichever instance it reaches, and stopping a peer or its going
 * silent for `peer_timeout` frees its place everywhere. Counted per instance, each instance would
 * let the member run `peers_per_member` peers of its own.
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
import { id20, Peer } from '../helpers/ws-peer.ts';

const postgres = engines.find((e) => e.name === 'postgres');
/** Seconds a silent peer holds its place. */
const PEER_TIMEOUT = 4;

for (const [name, url] of postgres === undefined ? [] : redisTargets)
  describe(`peers per member, two instances on one ${name} and one PostgreSQL`, () => {
    const pair = privateInstances(postgres!, url, {
      args: ['--peers-per-member', '2', ...quickPeers(PEER_TIMEOUT)],
    });

    /** A member and `n` torrents, known to both instances. */
    const setUp = (who: string, n: number) => memberWithTorrents(pair, who, n, 'peers', 9700);

    const refused = (d: Map<string, unknown>) => text(d.get('failure reason'));
    const ok = (d: Map<string, unknown>, what: string) =>
      assert.equal(d.get('failure reason'), undefined, `${what}: ${refused(d)}`);
    const TOO_MANY = /too many peers for your account/;

    test('two peers through two instances: a third is refused on both; a stopped peer frees its place everywhere', async () => {
      const { one, two } = pair;
      const { hashes, announce } = await setUp('pam', 3);
      const [a, b, c] = hashes;
      ok(await announce(one, a, 1, { event: 'started' }), 'peer 1 through one');
      ok(await announce(two, b, 2, { event: 'started', left: 0 }), 'peer 2 (seeding) through two');
      assert.match(refused(await announce(one, c, 3, { event: 'started' })), TOO_MANY);
      assert.match(refused(await announce(two, c, 3, { event: 'started' })), TOO_MANY);
      ok(await announce(two, a, 1), 'peer 1 again, through the other instance');
      ok(await announce(one, b, 2, { left: 0 }), 'peer 2 again, through the other instance');
      await announce(two, a, 1, { event: 'stopped' });
      ok(await announce(two, c, 3, { event: 'started' }), 'peer 1 stopped: peer 3 takes its place');
      assert.match(refused(await announce(one, a, 1, { event: 'started' })), TOO_MANY);
      await Promise.all([
        announce(one, b, 2, { event: 'stopped' }),
        announce(two, c, 3, { event: 'stopped' }),
      ]);
    });

    test('a silent peer frees its place after peer_timeout, on every instance', async () => {
      const { one, two } = pair;
      const { hashes, announce } = await setUp('pia', 2);
      const [a, b] = hashes;
      ok(await announce(one, a, 1, { event: 'started' }), 'peer 1');
      ok(await announce(one, b, 2, { event: 'started' }), 'peer 2');
      assert.match(refused(await announce(two, b, 3, { event: 'started' })), TOO_MANY);
      // Peer 2 keeps announcing (through both instances); peer 1 goes silent.
      for (let i = 0; i < PEER_TIMEOUT + 2; i++) {
        await new Promise((r) => setTimeout(r, 1000));
        ok(await announce(i % 2 === 0 ? one : two, b, 2), 'peer 2 announces on');
      }
      ok(await announce(two, b, 3, { event: 'started' }), 'peer 1 went silent: peer 3 takes its place');
      assert.match(refused(await announce(one, a, 1, { event: 'started' })), TOO_MANY);
      await Promise.all([
        announce(one, b, 2, { event: 'stopped' }),
        announce(two, b, 3, { event: 'stopped' }),
      ]);
    });

    test('WebTorrent peers count with the others: WebSocket peers through two instances, and HTTP peers; a stop or a closed socket frees their places', async () => {
      const { one, two } = pair;
      const { hashes, announce, passkey } = await setUp('pwa', 3);
      const [a, b, c] = hashes.map((h) => h.toString('latin1'));
      const socket = async (t: typeof one, n: number) => {
        const p = new Peer(`ws://127.0.0.1:${t.http[0].port}/announce/${passkey}`, id20(0x70776120, n));
        await p.opened();
        return p;
      };
      const s1 = await socket(one, 1);
      const s2 = await socket(two, 2);
      const why = (m: Record<string, unknown>) => String(m['failure reason'] ?? '');
      try {
        assert.equal(why(await s1.announce(a, { event: 'started' })), '', 'WebSocket peer 1 through one');
        assert.equal(why(await s2.announce(b, { event: 'started' })), '', 'WebSocket peer 2 through two');
        assert.match(why(await s1.announce(c, { event: 'started', peer_id: id20(0x70776120, 3) })), TOO_MANY);
        assert.match(why(await s2.announce(c, { event: 'started', peer_id: id20(0x70776120, 4) })), TOO_MANY);
        assert.match(refused(await announce(one, hashes[2], 3, { event: 'started' })), TOO_MANY);
        assert.match(refused(await announce(two, hashes[2], 3, { event: 'started' })), TOO_MANY);
        assert.equal(why(await s1.announce(a, { event: 'stopped' })), '', 'WebSocket peer 1 stops');
        ok(await announce(two, hashes[2], 3, { event: 'started' }), 'HTTP peer 3 takes its place');
        assert.match(why(await s2.announce(a, { event: 'started', peer_id: id20(0x70776120, 5) })), TOO_MANY);
        // A closed socket frees its peers' places at once (on every instance).
        s2.ws.terminate();
        await s2.closed;
        for (
          let i = 0;
          (await announce(one, hashes[0], 4, { event: 'started' })).has('failure reason');
          i++
        ) {
          assert.ok(i < 50, 'the closed socket’s place is freed');
          await new Promise((r) => setTimeout(r, 100));
        }
        assert.match(why(await s1.announce(b, { event: 'started' })), TOO_MANY);
      } finally {
        s1.ws.terminate();
        s2.ws.terminate();
        await Promise.all([
          announce(one, hashes[2], 3, { event: 'stopped' }),
          announce(two, hashes[0], 4, { event: 'stopped' }),
        ]);
      }
    });

    test('two new peers at once, one through each instance, for the last place: exactly one is taken', async () => {
      const { one } = pair;
      const { hashes, announce } = await setUp('pat', 3);
      const [a, b, c] = hashes;
      ok(await announce(one, a, 1, { event: 'started' }), 'peer 1');
      await exactlyOneOfTwo(pair, announce, [b, 2], [c, 3]);
    });
  });
