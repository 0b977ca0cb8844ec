/**
 * `peers_per_member` on Redis (counted in `<prefix>:{m<id>}:p`, src/store/redis/slots.ts) and access
 * withdrawn: a peer taken out of the swarms because its member lost access to the torrent frees its
 * place in the member's peer set at once, as its `stopped` would. Before, the entry stayed until
 * `peer_timeout`, so the member's other peers (or the same one, its grant given back) were refused
 * with "too many peers for your account" meanwhile.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { announceAt, hashOf, text } from '../helpers/clients.ts';
import { redisTargets } from '../helpers/redis.ts';
import { PRIVATE_ON_HTTP, trackerOnStore } from '../helpers/store-tracker.ts';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

for (const [storeName, storeUrl] of redisTargets)
  describe(`peers per member on ${storeName}: a revoked peer frees its place`, () => {
    const s = trackerOnStore(storeUrl, {
      ...PRIVATE_ON_HTTP,
      peersPerMember: 1,
      earlyAnnounce: 'off',
    });

    test('a revoked grant frees the member’s place at once: another of its peers is admitted', async () => {
      const [a, b] = [hashOf(8600), hashOf(8601)];
      for (const ih of [a, b])
        await s.reg.addTorrent({
          infoHash: hex(ih),
          infoHashV2: null,
          name: hex(ih),
          size: 1,
          fileCount: 1,
          restricted: true,
        });
      const m = await s.reg.addMember({ username: 'ppm' });
      for (const ih of [a, b]) await s.reg.grant({ torrent: hex(ih), member: m.id });
      await s.t.policy.refresh();
      const announce = (ih: Uint8Array, p: number) =>
        announceAt(s.http, { infoHash: ih, port: p, event: 'started', base: `/announce/${m.passkey}` });
      const failure = (d: Map<string, unknown>) => text(d.get('failure reason') ?? '');
      assert.equal(failure(await announce(a, 8701)), '');
      assert.match(failure(await announce(b, 8702)), /too many peers for your account/);

      await s.reg.revoke({ torrent: hex(a), member: m.id });
      await s.t.policy.refresh();
      // The peer on A left the swarm, and its place: a peer on B takes it.
      assert.equal(failure(await announce(b, 8702)), '');
      assert.match(failure(await announce(b, 8703)), /too many peers for your account/);
    });
  });
