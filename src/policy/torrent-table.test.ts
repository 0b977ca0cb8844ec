import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { TorrentTable } from './torrent-table.ts';
import type { PolicyTorrent } from './types.ts';

const hash = (s: string) => createHash('sha1').update(s).digest();
const torrent = (id: number): PolicyTorrent => ({
  id,
  restricted: false,
  downloadFactor: 100,
  uploadFactor: 100,
  route: hash(`t${id}`),
});

test('torrent table: every torrent of 50,000 found by its hashes (a hybrid by both), others not', () => {
  const t = new TorrentTable();
  const n = 50_000;
  for (let i = 0; i < n; i++) t.set(hash(`t${i}`), torrent(i));
  const hybrid = torrent(n);
  const v2 = createHash('sha256').update('hybrid').digest();
  t.set(hash('hybrid'), hybrid);
  t.set(v2.subarray(0, 20), hybrid);
  assert.equal(t.size, n + 2);
  for (let i = 0; i < n; i++) assert.equal(t.get(hash(`t${i}`))?.id, i);
  assert.equal(t.get(hash('hybrid')), hybrid);
  assert.equal(t.get(v2.subarray(0, 20)), hybrid, 'a v2 hash by its first 20 bytes, as requests carry it');
  assert.equal(t.get(hash('not registered')), undefined);
  assert.equal(t.get(v2), undefined, 'not 20 bytes: never found');
  // Set again: replaced, not added.
  const again = torrent(7);
  t.set(hash('t7'), again);
  assert.equal(t.size, n + 2);
  assert.equal(t.get(hash('t7')), again);
});
