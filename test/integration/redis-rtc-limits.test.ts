/**
 * WebTorrent (WebSocket) peers under the member limits that count over every instance on Redis:
 * `peers_per_torrent` and download slots, two `herald serve` processes on one Redis (and on one
 * Redis Cluster) and one PostgreSQL. A WebTorrent peer's accounting baseline is in Redis with the
 * member's other peers', so a browser on one instance and a browser (or an HTTP client) on the
 * other are counted together. Counted per instance, each instance would let the member run its
 * own `peers_per_torrent` browsers on a torrent, and leech its own slots' worth of torrents.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { text } from '../helpers/clients.ts';
import { engines } from '../helpers/db.ts';
import { memberWithTorrents, privateInstances, quickPeers } from '../helpers/private-instances.ts';
import { redisTargets } from '../helpers/redis.ts';
import { id20, Peer } from '../helpers/ws-peer.ts';

const postgres = engines.find((e) => e.name === 'postgres');

for (const [name, url] of postgres === undefined ? [] : redisTargets)
  describe(`WebTorrent peers under the member limits, two instances on one ${name} and one PostgreSQL`, () => {
    const pair = privateInstances(postgres!, url, {
      args: ['--member-classes', 'User: slots=1', '--peers-per-torrent', '1', ...quickPeers(4)],
    });

    const refused = (d: Map<string, unknown>) => text(d.get('failure reason'));
    const why = (m: Record<string, unknown>) => String(m['failure reason'] ?? '');
    const TOO_MANY = /too many clients on this torrent/;
    const SLOTS = /download slots full/;

    /** A member's browsers, one socket each, on instance `t`; closed after `f`. */
    async function browsers(
      who: string,
      tag: number,
      f: (
        socket: (t: typeof pair.one, n: number) => Promise<Peer>,
        hashes: string[],
        announce: Awaited<ReturnType<typeof memberWithTorrents>>['announce'],
        raw: Buffer[],
      ) => Promise<void>,
    ) {
      const { hashes, announce, passkey } = await memberWithTorrents(pair, who, 2, who.slice(0, 5), 9800);
      const open: Peer[] = [];
      const socket = async (t: typeof pair.one, n: number) => {
        const p = new Peer(`ws://127.0.0.1:${t.http[0].port}/announce/${passkey}`, id20(tag, n));
        open.push(p);
        await p.opened();
        return p;
      };
      try {
        await f(
          socket,
          hashes.map((h) => h.toString('latin1')),
          announce,
          hashes,
        );
      } finally {
        for (const p of open) p.ws.terminate();
      }
    }

    test('peers_per_torrent 1: a browser on one instance, a second browser (or an HTTP client) of the member on the other is refused; a stop frees the place', async () => {
      const { one, two } = pair;
      await browsers('wanda', 0x77616e64, async (socket, [a], announce, [ha]) => {
        const s1 = await socket(one, 1);
        const s2 = await socket(two, 2);
        assert.equal(why(await s1.announce(a, { event: 'started', left: 0 })), '', 'browser 1 through one');
        assert.match(
          why(await s2.announce(a, { event: 'started', left: 0 })),
          TOO_MANY,
          'browser 2 through two',
        );
        assert.match(refused(await announce(two, ha, 3, { event: 'started', left: 0 })), TOO_MANY);
        assert.equal(why(await s1.announce(a, { event: 'stopped', left: 0 })), '', 'browser 1 stops');
        assert.equal(
          why(await s2.announce(a, { event: 'started', left: 0 })),
          '',
          'browser 2 takes the place',
        );
        assert.match(refused(await announce(one, ha, 3, { event: 'started', left: 0 })), TOO_MANY);
      });
    });

    test('download slots 1: a browser leeching A on one instance, leeching B is refused on the other (browser or HTTP); a closed socket frees the slot', async () => {
      const { one, two } = pair;
      await browsers('wendy', 0x77656e64, async (socket, [a, b], announce, [, hb]) => {
        const s1 = await socket(one, 1);
        const s2 = await socket(two, 2);
        assert.equal(why(await s1.announce(a, { event: 'started' })), '', 'browser 1 leeches A through one');
        assert.match(why(await s2.announce(b, { event: 'started' })), SLOTS, 'browser 2 on B through two');
        assert.match(refused(await announce(two, hb, 3, { event: 'started' })), SLOTS, 'an HTTP client on B');
        s1.ws.terminate();
        await s1.closed;
        // The closed socket's peer leaves (a `stopped` of its own, sent as the socket closes).
        for (let i = 0; ; i++) {
          const m = await s2.announce(b, { event: 'started' });
          if (why(m) === '') break;
          assert.match(why(m), SLOTS);
          assert.ok(i < 50, 'the closed socket’s slot is freed');
          await new Promise((r) => setTimeout(r, 100));
        }
        assert.match(
          refused(await announce(one, hb, 3, { event: 'started' })),
          TOO_MANY,
          'B: browser 2 only',
        );
      });
    });
  });
