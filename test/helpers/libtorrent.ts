import { execFileSync, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LT, PY } from '../e2e/processes.ts';

const SCRIPT = `
import json, libtorrent as lt, os, sys, tempfile
name, files = sys.argv[1], json.loads(sys.argv[2])
with tempfile.TemporaryDirectory() as tmp:
    root = os.path.join(tmp, name)
    for rel, size in (files or {'': 50000}).items():
        path = os.path.join(root, rel) if rel else root
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'wb') as f:
            f.write(os.urandom(size))
    fs = lt.file_storage()
    lt.add_files(fs, root)
    ct = lt.create_torrent(fs, 16384)
    ct.add_tracker('http://old.example/announce')
    lt.set_piece_hashes(ct, tmp)
    sys.stdout.write(lt.bencode(ct.generate()).hex())
`;

/**
 * A hybrid (v1+v2) torrent made by libtorrent 2 (Debian's python3-libtorrent, in Debian's own
 * python3), announcing to a foreign tracker: a folder `name` holding `files` (relative path →
 * size, random content), or a single 50,000-byte file `name` when `files` is omitted.
 */
export function libtorrentHybrid(name: string, files?: Record<string, number>): Buffer {
  const r = spawnSync('/usr/bin/python3', ['-c', SCRIPT, name, JSON.stringify(files ?? null)], {
    encoding: 'utf8',
  });
  if (r.status !== 0)
    throw new Error(
      `this test needs /usr/bin/python3 with libtorrent (apt-get install python3-libtorrent): ${r.stderr}`,
    );
  return Buffer.from(r.stdout, 'hex');
}

/**
 * A private .torrent (`kind`: v1, or hybrid v1+v2) made by libtorrent (test/e2e/lt_client.py
 * `make`) announcing to http://127.0.0.1/announce: `payload` is written to `dir/name.bin`, the
 * torrent to `dir/name.torrent`, whose path is returned (for `herald torrent add`).
 */
export function privateTorrentFile(
  dir: string,
  name: string,
  payload: Buffer,
  kind: 'v1' | 'hybrid' = 'hybrid',
): string {
  const data = join(dir, `${name}.bin`);
  const file = join(dir, `${name}.torrent`);
  writeFileSync(data, payload);
  execFileSync(PY, [LT, 'make', data, file, 'http://127.0.0.1/announce', kind, 'private']);
  return file;
}
