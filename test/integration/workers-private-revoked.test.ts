/**
 * Private mode with `herald serve --workers 2`, over HTTP: access withdrawn from the CLI while the
 * tracker runs (a revoked grant, a banned member) takes that member's peers out of the swarms of
 * the worker that owns each torrent (it holds their accounting) within `policy_refresh`, and the
 * counts drop. Before, their announces were refused but their peers stayed in the swarms, handed to
 * every other member, until they expired (`peer_timeout`, 45 minutes by default).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { PRIVATE_SERVE, runHerald, startTracker } from '../e2e/tracker-process.ts';
import { announcePath, bdecode, httpGet, pct, text } from '../helpers/clients.ts';
import { adminJson } from '../helpers/private-instances.ts';
import { restrictedPerWorker } from '../helpers/restricted-shards.ts';

test('private mode with 2 workers: a revoked grant or a ban takes the member’s HTTP peers out of every worker’s swarms', {
  timeout: 120_000,
}, async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'herald-workers-private-revoked-'));
  const admin = (a: string[]) => runHerald([...a, '--data-dir', dataDir]);
  // One restricted torrent owned by each worker.
  const hashes = restrictedPerWorker(admin, dataDir, 2);
  const [h0, h1] = hashes as Buffer[];
  const passkeys = new Map<string, string>();
  for (const name of ['observer', 'revoked', 'banned', 'kept']) {
    passkeys.set(name, adminJson<{ passkey: string }>(admin(['member', 'add', name, '--json'])).passkey);
    for (const h of hashes)
      adminJson(admin(['grant', 'add', h!.toString('hex'), '--member', name, '--json']));
  }
  const t = await startTracker([...PRIVATE_SERVE, '--workers', '2'], {
    dataDir,
    ready: 'herald workers running',
  });
  try {
    const port = t.http[0].port;
    const announce = async (name: string, ih: Uint8Array, p: number) =>
      bdecode(
        (
          await httpGet(
            port,
            '127.0.0.1',
            announcePath({ infoHash: ih, port: p, base: `/announce/${passkeys.get(name)}` }),
          )
        ).body,
      );
    const peerPorts = (d: Map<string, unknown>) => {
      const b = d.get('peers') as Buffer;
      const out: number[] = [];
      for (let i = 0; i + 6 <= b.length; i += 6) out.push(b.readUInt16BE(i + 4));
      return out.sort((x, y) => x - y);
    };
    const incomplete = async (ih: Uint8Array) => {
      const r = bdecode(
        (await httpGet(port, '127.0.0.1', `/scrape/${passkeys.get('observer')}?info_hash=${pct(ih)}`)).body,
      );
      return [...(r.get('files') as Map<string, Map<string, number>>).values()][0].get('incomplete');
    };
    const ports = { revoked: 7401, banned: 7402, kept: 7403, observer: 7400 };
    for (const h of [h0, h1])
      for (const name of ['revoked', 'banned', 'kept'] as const)
        assert.equal((await announce(name, h, ports[name])).get('failure reason'), undefined);
    for (const h of [h0, h1])
      assert.deepEqual(peerPorts(await announce('observer', h, 7400)), [7401, 7402, 7403]);

    // Only the grant on worker 0's torrent goes; a ban takes everything.
    adminJson(t.admin(['grant', 'remove', h0.toString('hex'), '--member', 'revoked', '--json']));
    adminJson(t.admin(['member', 'ban', 'banned', '--reason', 'sharing', '--json']));
    const deadline = Date.now() + 10_000;
    while ((await incomplete(h0)) !== 2 || (await incomplete(h1)) !== 3) {
      assert.ok(
        Date.now() < deadline,
        'the revoked and banned peers are still in the swarms 10 s after the change',
      );
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.deepEqual(peerPorts(await announce('observer', h0, 7400)), [7403]);
    assert.deepEqual(peerPorts(await announce('observer', h1, 7400)), [7401, 7403]);
    assert.match(text((await announce('revoked', h0, 7401)).get('failure reason')), /no access/);
    assert.match(text((await announce('banned', h1, 7402)).get('failure reason')), /banned/);
  } finally {
    await t.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
});
