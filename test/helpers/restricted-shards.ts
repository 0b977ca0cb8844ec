/**
 * Private-mode workers tests: restricted torrents added through the CLI, one owned by each worker
 * of `herald serve --workers n` (by `shardOf` of the v1 info hash), so that a member's peers or
 * sockets hold a swarm on every worker.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { shardOf } from '../../src/core/shard.ts';
import { parseMetainfo } from '../../src/protocol/metainfo/index.ts';
import { makeTorrent } from './portal-client.ts';
import { adminJson } from './private-instances.ts';

/** Adds restricted torrents until worker i owns hashes[i] (its v1 info hash), for i in [0, n). */
export function restrictedPerWorker(
  admin: (args: string[]) => { status: number; stdout: string; stderr: string },
  dataDir: string,
  n: number,
): Buffer[] {
  const hashes: (Buffer | undefined)[] = new Array(n).fill(undefined);
  for (let i = 0; hashes.includes(undefined); i++) {
    const bytes = makeTorrent(`licensed ${i}`);
    const parsed = parseMetainfo(bytes);
    assert.ok(parsed.ok);
    const h = parsed.torrent.infoHashV1!;
    const s = shardOf(h, n);
    if (hashes[s] !== undefined) continue;
    const file = join(dataDir, `t${i}.torrent`);
    writeFileSync(file, bytes);
    adminJson(admin(['torrent', 'add', file, '--restricted', 'yes', '--json']));
    hashes[s] = h;
  }
  return hashes as Buffer[];
}
