/**
 * Private mode as operators run it: `herald serve` as a process, administered with the CLI on
 * the same database while it runs; a crash (SIGKILL) mid-load loses at most one flush interval
 * of accounting; a graceful stop (SIGTERM) loses nothing.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { encode } from '../../src/protocol/bencode/index.ts';
import { PRIVATE_SERVE, type RunningTracker, startTracker } from '../e2e/tracker-process.ts';
import { announcePath, bdecode, httpGet, text } from '../helpers/clients.ts';
import { adminJson } from '../helpers/private-instances.ts';

const SERVE = PRIVATE_SERVE;

function makeTorrent(dir: string): string {
  const info = new Map<string, unknown>([
    ['length', 65536],
    ['name', Buffer.from('payload.bin')],
    ['piece length', 16384],
    ['pieces', Buffer.alloc(80, 7)],
    ['private', 1],
  ]);
  const file = join(dir, 'payload.torrent');
  writeFileSync(file, encode(new Map([['info', info]]) as never));
  return file;
}

async function announceAs(t: RunningTracker, passkey: string, ih: Buffer, f: Record<string, unknown>) {
  const r = await httpGet(
    t.http[0].port,
    '127.0.0.1',
    announcePath({
      infoHash: ih,
      port: 9100,
      peerId: Buffer.from('-qB4500-crashtest001'),
      base: `/announce/${passkey}`,
      ...f,
    }),
  );
  return bdecode(r.body);
}

test('CLI changes reach the running tracker within seconds; crash loses at most one flush interval', async () => {
  const scratch = mkdtempSync(join(tmpdir(), 'herald-private-'));
  const t = await startTracker(SERVE);
  let second: RunningTracker | null = null;
  try {
    const alice = adminJson<{ passkey: string; announce_urls: string[] }>(
      t.admin(['member', 'add', 'alice', '--json']),
    );
    assert.match(alice.passkey, /^[0-9a-f]{32}$/);
    assert.ok(alice.announce_urls.some((u) => u.endsWith(`/announce/${alice.passkey}`)));
    const torrent = adminJson<{ info_hash: string; private: boolean }>(
      t.admin(['torrent', 'add', makeTorrent(scratch), '--json']),
    );
    assert.equal(torrent.private, true);
    const ih = Buffer.from(torrent.info_hash, 'hex');

    // The running tracker polls the database revision every second.
    const t0 = Date.now();
    let d = await announceAs(t, alice.passkey, ih, { event: 'started', left: 0 });
    while (d.has('failure reason') && Date.now() - t0 < 10_000) {
      await new Promise((r) => setTimeout(r, 200));
      d = await announceAs(t, alice.passkey, ih, { event: 'started', left: 0 });
    }
    assert.equal(d.get('failure reason'), undefined, text(d.get('failure reason')));
    assert.ok(Date.now() - t0 < 5000, `took ${Date.now() - t0} ms to apply`);

    await announceAs(t, alice.passkey, ih, { uploaded: 1000, left: 0 });
    await new Promise((r) => setTimeout(r, 2500)); // at least one flush happens
    await announceAs(t, alice.passkey, ih, { uploaded: 5000, left: 0 });
    await t.crash(); // no chance to flush the last delta
    const after = adminJson<{ uploaded: number }>(t.admin(['member', 'show', 'alice', '--json']));
    assert.equal(after.uploaded, 1000, 'what was flushed survived; the last second was lost');

    // With a flush interval far longer than the test, only the graceful stop can write the delta.
    second = await startTracker(
      SERVE.map((a) => (a === '1' ? '3600' : a)),
      { dataDir: t.dataDir },
    );
    d = await announceAs(second, alice.passkey, ih, { event: 'started', left: 0 });
    await announceAs(second, alice.passkey, ih, { uploaded: 700, left: 0 });
    await second.stopGracefully();
    const graceful = adminJson<{ uploaded: number }>(second.admin(['member', 'show', 'alice', '--json']));
    assert.equal(graceful.uploaded, 1700, 'a graceful stop writes every pending delta');
  } finally {
    await t.stop();
    if (second) await second.stop();
  }
});
