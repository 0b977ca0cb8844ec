/**
 * Private mode over HTTP and UDP: a member who loses access to a torrent (grant revoked or expired,
 * member disabled or banned, passkey reset) leaves the torrent's swarm at the reload that notices
 * it (or at the grant's expiry), and every count (scrape, /stats) drops at once. Before, their
 * announces were refused but their peer stayed in the swarm, handed to every other member, until
 * it expired (peer_timeout, 45 minutes by default): attack10.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  type ConnectionId,
  parseResponse,
  writeAnnounceRequest,
  writeConnectRequest,
} from '../../src/protocol/udp/codec.ts';
import {
  announceAt,
  announcePath,
  bdecode,
  compactPorts,
  hashOf,
  httpGet,
  pct,
  text,
  udpClient,
} from '../helpers/clients.ts';
import { redisTargets } from '../helpers/redis.ts';
import { PRIVATE_ON_HTTP, trackerOnStore } from '../helpers/store-tracker.ts';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
type Member = { id: number; passkey: string };

const ports = compactPorts;

// On Redis, the instance that holds a peer's baseline (every instance reloads policy) removes it.
for (const [storeName, storeUrl] of [['memory', 'memory'], ...redisTargets])
  describe(`private mode on ${storeName}: peers of members who lose access leave the swarms at once`, () => {
    const s = trackerOnStore(storeUrl, {
      ...PRIVATE_ON_HTTP,
      udp: ['127.0.0.1:0'],
      maxRate: 100_000_000,
    });
    let serial = 0;

    const torrent = async () => {
      const ih = hashOf(7000 + serial++);
      await s.reg.addTorrent({
        infoHash: hex(ih),
        infoHashV2: null,
        name: `t${serial}`,
        size: 1,
        fileCount: 1,
        restricted: true,
      });
      return ih;
    };
    const member = async (name: string, ih: Uint8Array, expiresAt?: number): Promise<Member> => {
      const m = await s.reg.addMember({ username: `${name}${serial++}` });
      await s.reg.grant({ torrent: hex(ih), member: m.id, expiresAt });
      return m;
    };
    const announce = async (pk: string, ih: Uint8Array, p: number, extra: Record<string, unknown> = {}) =>
      bdecode(
        (
          await httpGet(
            s.http,
            '127.0.0.1',
            announcePath({ infoHash: ih, port: p, base: `/announce/${pk}`, ...extra } as never),
          )
        ).body,
      );
    const scrape = async (pk: string, ih: Uint8Array) => {
      const r = bdecode((await httpGet(s.http, '127.0.0.1', `/scrape/${pk}?info_hash=${pct(ih)}`)).body);
      const files = r.get('files') as Map<string, Map<string, number>>;
      const e = [...files.values()][0];
      return { complete: e.get('complete'), incomplete: e.get('incomplete') };
    };

    test('HTTP: revoked, disabled, banned and reset members leave the peer list and the counts at the reload', async () => {
      const ih = await torrent();
      const observer = await member('observer', ih);
      const revoked = await member('revoked', ih);
      const disabled = await member('disabled', ih);
      const banned = await member('banned', ih);
      const reset = await member('reset', ih);
      const kept = await member('kept', ih);
      await s.t.policy.refresh();
      const all: [Member, number][] = [
        [revoked, 7101],
        [disabled, 7102],
        [banned, 7103],
        [reset, 7104],
        [kept, 7105],
      ];
      for (const [m, p] of all)
        assert.equal((await announce(m.passkey, ih, p)).get('failure reason'), undefined);
      // What the revoked member moved, credited at its last accepted announce, is kept.
      const r = await announce(revoked.passkey, ih, 7101, { uploaded: 1000 });
      assert.equal(r.get('failure reason'), undefined);
      assert.deepEqual(
        ports((await announce(observer.passkey, ih, 7100)).get('peers')),
        [7101, 7102, 7103, 7104, 7105],
      );
      assert.deepEqual(await scrape(observer.passkey, ih), { complete: 0, incomplete: 6 });
      const credited = s.t.accountant!.counts.credited;
      const held = s.t.accountant!.peers;

      await s.reg.revoke({ torrent: hex(ih), member: revoked.id });
      await s.reg.setMemberStatus(disabled.id, 'disabled', 'test');
      await s.reg.setMemberStatus(banned.id, 'banned', 'test');
      await s.reg.resetPasskey(reset.id);
      await s.t.policy.refresh();

      // Counts drop at once (no announce of the observer in between).
      assert.deepEqual(await scrape(observer.passkey, ih), { complete: 0, incomplete: 2 });
      assert.deepEqual(ports((await announce(observer.passkey, ih, 7100)).get('peers')), [7105]);
      assert.equal(s.t.accountant!.peers, held - 4);
      assert.equal(s.t.accountant!.counts.credited, credited, 'nothing more credited');
      // The baselines forgotten are counted in /stats and /metrics beside the other accounting figures.
      const revokedNow = s.t.accountant!.counts.revoked;
      assert.ok(revokedNow >= 4);
      const stats = JSON.parse((await httpGet(s.http, '127.0.0.1', '/stats')).body.toString());
      assert.equal(stats.accounting.revoked, revokedNow);
      const metrics = (await httpGet(s.http, '127.0.0.1', '/metrics')).body.toString();
      assert.match(metrics, new RegExp(`^herald_accounting_revoked_total ${revokedNow}$`, 'm'));
      // Refused from now on, and nothing of theirs comes back.
      assert.match(text((await announce(revoked.passkey, ih, 7101)).get('failure reason')), /no access/);
      assert.deepEqual(ports((await announce(observer.passkey, ih, 7100)).get('peers')), [7105]);
      await s.t.accountant!.flush();
      assert.equal((await s.reg.member(revoked.id)).uploaded, 1000, 'the accepted delta is written');
    });

    test('UDP (BEP 41 URL data): a revoked member’s peer leaves the swarm at the reload', async () => {
      const ih = await torrent();
      const revoked = await member('udprevoked', ih);
      const observer = await member('udpobserver', ih);
      await s.t.policy.refresh();
      const c = await udpClient(4);
      const buf = Buffer.alloc(1024);
      try {
        const cr = parseResponse(
          (await c.request(buf.subarray(0, writeConnectRequest(buf, 1)), s.udp))!,
          16,
        ) as {
          connectionId: ConnectionId;
        };
        const send = async (pk: string, p: number) => {
          const n = writeAnnounceRequest(buf, {
            connectionId: cr.connectionId,
            transactionId: 9,
            infoHash: ih,
            peerId: Buffer.from(`-UD0001-${String(p).padStart(12, '0')}`),
            downloaded: 0,
            left: 100,
            uploaded: 0,
            event: 0,
            numWant: 50,
            port: p,
            urlData: `/announce/${pk}`,
          });
          const reply = (await c.request(buf.subarray(0, n), s.udp))!;
          return parseResponse(reply, reply.length, 4) as {
            action: number;
            peers?: Uint8Array;
            leechers?: number;
          };
        };
        assert.equal((await send(revoked.passkey, 7201)).action, 1);
        const before = await send(observer.passkey, 7200);
        assert.deepEqual(ports(Buffer.from(before.peers!)), [7201]);
        await s.reg.revoke({ torrent: hex(ih), member: revoked.id });
        await s.t.policy.refresh();
        assert.deepEqual(await scrape(observer.passkey, ih), { complete: 0, incomplete: 1 });
        const afterRevoke = await send(observer.passkey, 7200);
        assert.equal(afterRevoke.action, 1);
        assert.deepEqual(ports(Buffer.from(afterRevoke.peers!)), []);
        assert.equal((await send(revoked.passkey, 7201)).action, 3);
      } finally {
        c.close();
      }
    });

    test('a registered torrent put on the deny list, or removed: its swarm is dropped at the reload', async () => {
      const [denied, removed] = [await torrent(), await torrent()];
      const m = await member('dropper', denied);
      await s.reg.grant({ torrent: hex(removed), member: m.id });
      await s.t.policy.refresh();
      for (const ih of [denied, removed])
        for (const p of [7501, 7502])
          assert.equal((await announce(m.passkey, ih, p)).get('failure reason'), undefined);
      const peers = async () =>
        JSON.parse((await httpGet(s.http, '127.0.0.1', '/stats')).body.toString()).swarm.peers;
      const before = await peers();
      await s.reg.addToList('deny', hex(denied));
      await s.reg.removeTorrent(hex(removed));
      await s.t.policy.refresh();
      assert.equal(await peers(), before - 4);
      assert.match(text((await announce(m.passkey, denied, 7501)).get('failure reason')), /blacklisted/);
    });

    test('a grant that expires takes the member’s peer out when it expires, with no reload', async () => {
      const ih = await torrent();
      const observer = await member('expobserver', ih);
      const expiring = await member('expiring', ih, Math.floor(Date.now() / 1000) + 2);
      await s.t.policy.refresh();
      const loads = s.t.policy.loads;
      assert.equal((await announce(expiring.passkey, ih, 7301)).get('failure reason'), undefined);
      assert.deepEqual(await scrape(observer.passkey, ih), { complete: 0, incomplete: 1 });
      // The timer at the earliest expiry judges access again: no database change, no reload.
      const deadline = Date.now() + 10_000;
      while ((await scrape(observer.passkey, ih)).incomplete !== 0) {
        assert.ok(Date.now() < deadline, 'the expired grant’s peer is still in the swarm');
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(s.t.policy.loads, loads, 'no reload ran');
      assert.deepEqual(ports((await announce(observer.passkey, ih, 7300)).get('peers')), []);
      assert.match(text((await announce(expiring.passkey, ih, 7301)).get('failure reason')), /no access/);
    });
  });

// A baseline forgotten early because accounting_max_peers was full: its peer leaves the swarm with it
// (back at its next announce, with a new baseline), so no peer is left in a private swarm that
// accounting does not know, and a member who then loses access leaves nothing behind. Before, the
// peer stayed in the swarm, and a revocation did not find it: it stayed until peer_timeout.
for (const [storeName, storeUrl] of [['memory', 'memory'], ...redisTargets])
  describe(`private mode on ${storeName}, accounting_max_peers full: a banned member’s forgotten peer leaves too`, () => {
    const s = trackerOnStore(storeUrl, {
      ...PRIVATE_ON_HTTP,
      accountingMaxPeers: 2,
    });

    test('three members, two baselines: the banned member’s peer is not in the swarm after the reload', async () => {
      const ih = hashOf(7900);
      await s.reg.addTorrent({ infoHash: hex(ih), infoHashV2: null, name: 'full', size: 1, fileCount: 1 });
      const [a, b, c] = [
        await s.reg.addMember({ username: 'fulla' }),
        await s.reg.addMember({ username: 'fullb' }),
        await s.reg.addMember({ username: 'fullc' }),
      ];
      await s.t.policy.refresh();
      const announce = (pk: string, p: number) =>
        announceAt(s.http, { infoHash: ih, port: p, base: `/announce/${pk}` });
      for (const [m, p] of [
        [a, 7901],
        [b, 7902],
        [c, 7903],
      ] as const)
        assert.equal((await announce(m.passkey, p)).get('failure reason'), undefined);
      assert.equal(s.t.accountant!.peers, 2, 'a’s baseline was forgotten');

      await s.reg.setMemberStatus(a.id, 'banned', 'test');
      await s.t.policy.refresh();
      const r = bdecode(
        (await httpGet(s.http, '127.0.0.1', `/scrape/${b.passkey}?info_hash=${pct(ih)}`)).body,
      );
      const e = [...(r.get('files') as Map<string, Map<string, number>>).values()][0];
      assert.equal(e.get('incomplete'), 2, 'b and c only');
      assert.match(text((await announce(a.passkey, 7901)).get('failure reason')), /banned/);
    });
  });
