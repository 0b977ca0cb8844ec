/**
 * Whitelist (curated) mode over HTTP: an info hash taken off the allow list, or a registered one put
 * on the deny list, leaves the swarms at the policy reload that notices it: its peers are gone from
 * the store at once (`/stats` counts drop), and should the hash be allowed again, its first announce
 * is handed none of the old peers. Before, announces of the hash were refused but its peers stayed
 * in the store until they expired (`peer_timeout`, 45 minutes by default), counted in `/stats` and
 * handed out again the moment the hash was listed again.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { announcePath, bdecode, compactPorts, hashOf, httpGet, text } from '../helpers/clients.ts';
import { redisTargets } from '../helpers/redis.ts';
import { trackerOnStore } from '../helpers/store-tracker.ts';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

const peerPorts = (d: Map<string, unknown>) => compactPorts(d.get('peers'));

for (const [storeName, storeUrl] of [['memory', 'memory'], ...redisTargets])
  describe(`whitelist mode on ${storeName}: a hash taken off the lists leaves the swarms at once`, () => {
    const s = trackerOnStore(storeUrl, {
      http: ['127.0.0.1:0'],
      mode: 'whitelist',
      databaseUrl: 'sqlite::memory:',
      policyRefresh: 3600,
    });

    const announce = async (ih: Uint8Array, p: number) =>
      bdecode((await httpGet(s.http, '127.0.0.1', announcePath({ infoHash: ih, port: p }))).body);
    const swarm = async () => {
      const { torrents, peers } = JSON.parse(
        (await httpGet(s.http, '127.0.0.1', '/stats')).body.toString(),
      ).swarm;
      return { torrents, peers };
    };

    test('off the allow list, or onto the deny list: the peers leave at the reload, and do not come back', async () => {
      const delisted = hashOf(8100);
      const denied = hashOf(8101);
      const kept = hashOf(8102);
      await s.reg.addToList('allow', hex(delisted));
      await s.reg.addToList('allow', hex(kept));
      await s.reg.addTorrent({
        infoHash: hex(denied),
        infoHashV2: null,
        name: 'denied',
        size: 1,
        fileCount: 1,
      });
      await s.t.policy.refresh();
      for (const ih of [delisted, denied, kept])
        for (const p of [8201, 8202]) assert.equal((await announce(ih, p)).get('failure reason'), undefined);
      assert.deepEqual(await swarm(), { torrents: 3, peers: 6 });

      await s.reg.removeFromList('allow', hex(delisted));
      await s.reg.addToList('deny', hex(denied));
      await s.t.policy.refresh();

      // Counts drop at once: only the kept hash's two peers are left.
      assert.deepEqual(await swarm(), { torrents: 1, peers: 2 });
      assert.match(text((await announce(delisted, 8203)).get('failure reason')), /not on the whitelist/);
      assert.match(text((await announce(denied, 8203)).get('failure reason')), /blacklisted/);
      assert.deepEqual(peerPorts(await announce(kept, 8203)), [8201, 8202]);
      // Listed again: none of the old peers is handed out.
      await s.reg.addToList('allow', hex(delisted));
      await s.reg.removeFromList('deny', hex(denied));
      await s.t.policy.refresh();
      assert.deepEqual(peerPorts(await announce(delisted, 8204)), []);
      assert.deepEqual(peerPorts(await announce(denied, 8204)), []);
    });
  });
