/**
 * Whitelist mode with `herald serve --workers 2`, over HTTP: info hashes taken off the allow list
 * (or put on the deny list) from the CLI while the tracker runs leave the swarms of the worker that
 * owns each within `policy_refresh`, and `/stats` (every worker added up) drops. Before, announces
 * were refused but the peers stayed in the shards until they expired (`peer_timeout`).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { shardOf } from '../../src/core/shard.ts';
import { PRIVATE_SERVE, startTracker } from '../e2e/tracker-process.ts';
import { announcePath, bdecode, hashOf, httpGet, text } from '../helpers/clients.ts';
import { adminJson } from '../helpers/private-instances.ts';

test('whitelist mode with 2 workers: hashes off the allow list or onto the deny list leave every worker’s swarms', {
  timeout: 120_000,
}, async () => {
  // Two hashes owned by each worker: one taken off the allow list, one put on the deny list.
  const owned: Buffer[][] = [[], []];
  for (let i = 0; owned[0].length < 3 || owned[1].length < 3; i++) {
    const h = hashOf(8300 + i);
    const s = shardOf(h, 2);
    if (owned[s].length < 3) owned[s].push(h);
  }
  // PRIVATE_SERVE's listeners and 1 s policy refresh, in whitelist mode.
  const t = await startTracker(['--mode', 'whitelist', ...PRIVATE_SERVE.slice(2), '--workers', '2'], {
    ready: 'herald workers running',
  });
  try {
    const port = t.http[0].port;
    for (const [delisted, denied, kept] of owned)
      for (const h of [delisted, denied, kept])
        adminJson(t.admin(['list', 'allow', 'add', h.toString('hex'), '--json']));
    const announce = async (ih: Uint8Array, p: number) =>
      bdecode((await httpGet(port, '127.0.0.1', announcePath({ infoHash: ih, port: p }))).body);
    const peers = async () =>
      JSON.parse((await httpGet(port, '127.0.0.1', '/stats')).body.toString()).swarm.peers as number;
    const until = async (what: string, ok: () => Promise<boolean>) => {
      const deadline = Date.now() + 10_000;
      while (!(await ok())) {
        assert.ok(Date.now() < deadline, what);
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    // Each worker reloads policy on its own: announce until both know every hash.
    await until('the hashes are allowed on both workers within 10 s', async () => {
      for (const hs of owned) for (const h of hs) for (const p of [8401, 8402]) await announce(h, p);
      return (await peers()) === 12;
    });

    for (const [delisted, denied] of owned) {
      adminJson(t.admin(['list', 'allow', 'remove', delisted.toString('hex'), '--json']));
      adminJson(t.admin(['list', 'deny', 'add', denied.toString('hex'), '--json']));
    }
    await until(
      'the peers of the delisted and denied hashes are still in the swarms 10 s after',
      async () => {
        return (await peers()) === 4;
      },
    );
    // Refused by both workers once each has reloaded (an announce reaches either).
    await until('the delisted and denied hashes are refused within 10 s', async () => {
      for (const [delisted, denied] of owned) {
        if (!/not on the whitelist/.test(text((await announce(delisted, 8401)).get('failure reason'))))
          return false;
        if (!/blacklisted/.test(text((await announce(denied, 8401)).get('failure reason')))) return false;
      }
      return true;
    });
  } finally {
    await t.stop();
  }
});
