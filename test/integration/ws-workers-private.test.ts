/**
 * WebTorrent in private mode across the workers of `herald serve --workers 2`: access withdrawn
 * from the CLI while the tracker runs (a revoked grant, a banned member) closes that member's
 * WebSockets on every worker within `policy_refresh`, and their peers leave the swarms of every
 * worker, so they are offered no more SDP for a torrent they may no longer have. Before, they stayed
 * in the swarms, and were offered to, until their peers expired (`peer_timeout`, 45 minutes).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { PRIVATE_SERVE, runHerald, startTracker } from '../e2e/tracker-process.ts';
import { adminJson } from '../helpers/private-instances.ts';
import { restrictedPerWorker } from '../helpers/restricted-shards.ts';
import { holderOf, workerPids } from '../helpers/workers.ts';
import { id20, isOfferFor, Peer, sdp } from '../helpers/ws-peer.ts';

test('private WebTorrent with 2 workers: a revoked grant or a ban closes the member’s sockets on every worker, and no more offers reach them', {
  timeout: 120_000,
}, async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'herald-ws-workers-private-'));
  const admin = (a: string[]) => runHerald([...a, '--data-dir', dataDir]);
  // One restricted torrent owned by each worker, so that every socket holds a swarm elsewhere.
  const hashes = restrictedPerWorker(admin, dataDir, 2).map((h) => h.toString('latin1'));
  const [h0, h1] = hashes as string[];
  const hex = (h: string) => Buffer.from(h, 'latin1').toString('hex');
  const passkeys = new Map<string, string>();
  for (const name of ['seller', 'revoked', 'banned', 'kept']) {
    passkeys.set(name, adminJson<{ passkey: string }>(admin(['member', 'add', name, '--json'])).passkey);
    for (const h of hashes) adminJson(admin(['grant', 'add', hex(h!), '--member', name, '--json']));
  }
  // Sockets are opened until both workers hold one of each member: more than peers_per_torrent (3).
  const t = await startTracker([...PRIVATE_SERVE, '--workers', '2', '--peers-per-torrent', '0'], {
    dataDir,
    ready: 'herald workers running',
  });
  const open: Peer[] = [];
  try {
    const port = t.http[0].port;
    const pids = workerPids(t.pid);
    assert.equal(pids.length, 2);
    let serial = 0;
    const socket = async (name: string) => {
      const p = new Peer(`ws://127.0.0.1:${port}/announce/${passkeys.get(name)}`, id20(0x6d656d62, serial++));
      open.push(p);
      await p.opened();
      p.worker = await holderOf(pids, port, p.localPort);
      for (const h of [h0, h1])
        assert.equal((await p.announce(h, { event: 'started' }))['failure reason'], undefined);
      return p;
    };
    /** Sockets of `name` until each worker holds one. */
    const onEveryWorker = async (name: string) => {
      const mine: Peer[] = [];
      for (let tries = 0; !pids.every((pid) => mine.some((p) => p.worker === pid)); tries++) {
        assert.ok(tries < 40, 'sockets never reached both workers');
        mine.push(await socket(name));
      }
      return mine;
    };
    const revoked = await onEveryWorker('revoked');
    const banned = await onEveryWorker('banned');
    const kept = await socket('kept');
    const seller = await socket('seller');
    const closes = [...revoked, ...banned].map(
      (p) => new Promise<[number, string]>((r) => p.ws.once('close', (code, why) => r([code, String(why)]))),
    );
    const others = revoked.length + banned.length + 1;
    let offerId = 0;
    const offer = (h: string, n: number) =>
      seller.announce(h, {
        left: 0,
        numwant: n,
        offers: Array.from({ length: n }, () => ({
          offer: sdp('offer', offerId),
          offer_id: id20(7, offerId++),
        })),
      });
    // Every granted socket is offered to, on either worker, for either torrent.
    for (const h of [h0, h1]) {
      const r = await offer(h, others);
      assert.equal(r.incomplete, others);
      for (const p of [...revoked, ...banned, kept]) await p.waitFor(isOfferFor(h));
    }

    // Only the grant on worker 0's torrent goes; a ban takes everything.
    adminJson(t.admin(['grant', 'remove', hex(h0), '--member', 'revoked', '--json']));
    adminJson(t.admin(['member', 'ban', 'banned', '--reason', 'sharing', '--json']));
    const shut = await Promise.race([
      Promise.all(closes),
      new Promise<never>((_, j) =>
        setTimeout(() => j(new Error('sockets still open 10 s after the change')), 10_000),
      ),
    ]);
    for (const [i, [code, why]] of shut.entries()) {
      assert.equal(code, 1008);
      assert.match(why, i < revoked.length ? /no access to this torrent/ : /account is banned/);
    }
    // Both workers' swarms hold the seller and the member still granted, and only she is offered to.
    for (const h of [h0, h1]) {
      const r = await offer(h, others);
      assert.equal(r.incomplete, 1);
      await kept.waitFor(isOfferFor(h), 2);
      for (const p of [...revoked, ...banned]) assert.equal(p.got.filter(isOfferFor(h)).length, 1);
    }
    // The revoked member may still announce the torrent she keeps a grant for.
    const again = new Peer(
      `ws://127.0.0.1:${port}/announce/${passkeys.get('revoked')}`,
      id20(0x6d656d62, 999),
    );
    open.push(again);
    await again.opened();
    assert.match(String((await again.announce(h0))['failure reason']), /no access/);
    assert.equal((await again.announce(h1))['failure reason'], undefined);
  } finally {
    for (const p of open) p.ws.terminate();
    await t.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
});
