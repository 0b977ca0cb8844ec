/**
 * The workers' bus is reachable by Herald's user only (issue #13): its sockets are files in a
 * directory of mode 0700 that the primary makes, not abstract names, which any local process can
 * connect to and bind (and so, while a worker restarts, receive the secret the next connection
 * starts with). The directory goes when Herald stops.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { test } from 'node:test';
import { startTracker } from '../e2e/tracker-process.ts';
import { announcePath, httpGet } from '../helpers/clients.ts';
import { workerPids } from '../helpers/workers.ts';

/** The Unix socket names listed by the kernel (/proc/net/unix), '@' for abstract ones. */
function unixNames(): string[] {
  return readFileSync('/proc/net/unix', 'latin1')
    .split('\n')
    .slice(1)
    .map((l) => l.trim().split(/\s+/)[7])
    .filter((n): n is string => n !== undefined);
}

test('--workers 2: the bus listens on socket files in a 0700 directory, no abstract name; gone after stop', async () => {
  const t = await startTracker(['--workers', '2', '--http', '127.0.0.1:0', '--udp', 'off'], {
    ready: 'herald workers running',
  });
  let dir = '';
  try {
    let clusterId = '';
    for (const pid of workerPids(t.pid)) {
      const w = readFileSync(`/proc/${pid}/environ`, 'latin1')
        .split('\0')
        .find((e) => e.startsWith('HERALD_WORKER='));
      if (w === undefined) continue;
      const o = JSON.parse(w.slice('HERALD_WORKER='.length)) as { clusterId: string; busDir: string | null };
      clusterId = o.clusterId;
      dir = o.busDir ?? '';
    }
    assert.notEqual(clusterId, '');
    assert.notEqual(dir, '', 'the workers were given a directory for their sockets');
    // Traffic that crosses between the workers: a connection's first announce for the other worker's shard.
    for (let i = 0; i < 8; i++) {
      const hash = Buffer.alloc(20, i * 37 + 1);
      const r = await httpGet(t.http[0].port, '127.0.0.1', announcePath({ infoHash: hash, port: 7000 + i }));
      assert.equal(r.status, 200);
    }
    const st = statSync(dir);
    assert.equal(st.mode & 0o777, 0o700, 'only Herald’s user may enter it');
    assert.equal(st.uid, process.getuid?.());
    const names = unixNames();
    const files = names.filter((n) => n.startsWith(`${dir}/`));
    assert.deepEqual([...new Set(files)].sort(), [`${dir}/0.sock`, `${dir}/1.sock`]);
    assert.equal(
      names.filter((n) => n.startsWith(`@herald-${clusterId}-`)).length,
      0,
      'no abstract bus name any local process could bind or connect to',
    );
    await t.stopGracefully();
    assert.equal(existsSync(dir), false, 'the directory goes with the tracker');
  } finally {
    await t.stop();
  }
});
