/**
 * Which worker process of `herald serve --workers N` holds a TCP connection, read from /proc (no
 * hook in Herald): the worker's open descriptors name socket inodes, and /proc/net/tcp{,6} gives
 * each inode's endpoints. Tests use it to place clients on every worker on purpose instead of
 * hoping that the kernel spread them.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { until } from './bt-peer.ts';

/** The worker processes of the primary `primary` (its children). */
export function workerPids(primary: number): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(primary)], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

/**
 * The established connections accepted on `serverPort`, by the client's port: which of `pids`
 * holds each. A connection held by none of them is left out.
 */
export function connectionHolders(pids: readonly number[], serverPort: number): Map<number, number> {
  const pidOfInode = new Map<string, number>();
  for (const pid of pids) {
    let fds: string[] = [];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m) pidOfInode.set(m[1], pid);
      } catch {}
    }
  }
  const out = new Map<number, number>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let lines: string[] = [];
    try {
      lines = readFileSync(table, 'utf8').split('\n').slice(1);
    } catch {
      continue;
    }
    for (const line of lines) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== '01') continue; // 01: ESTABLISHED
      const local = Number.parseInt(f[1].slice(f[1].lastIndexOf(':') + 1), 16);
      if (local !== serverPort) continue;
      const pid = pidOfInode.get(f[9]);
      if (pid !== undefined) out.set(Number.parseInt(f[2].slice(f[2].lastIndexOf(':') + 1), 16), pid);
    }
  }
  return out;
}

/**
 * Opens TCP connections to `port` until each worker of `pids` holds one (the kernel spreads
 * them by source port; at most 40 tries), and returns one per worker in `pids` order with every
 * socket opened (close them all with `destroy`). Fails the test when a worker got none.
 */
export async function connectionOnEachWorker(
  pids: readonly number[],
  port: number,
): Promise<{ onEach: Socket[]; sockets: Socket[] }> {
  const sockets: Socket[] = [];
  let onEach: Socket[] = [];
  for (let i = 0; i < 40 && onEach.length < pids.length; i++) {
    const s = connect(port, '127.0.0.1');
    await new Promise((resolve) => s.once('connect', resolve));
    sockets.push(s);
    await holderOf(pids, port, s.localPort!);
    const holders = connectionHolders(pids, port);
    onEach = pids.flatMap((pid) => {
      const first = sockets.find((x) => holders.get(x.localPort!) === pid);
      return first === undefined ? [] : [first];
    });
  }
  if (onEach.length < pids.length) {
    for (const s of sockets) s.destroy();
    throw new Error(`a connection on each of ${pids.length} workers: only ${onEach.length} after 40`);
  }
  return { onEach, sockets };
}

/** The worker of `pids` holding the connection from `localPort` to `port`, once /proc shows it (15 s at most). */
export async function holderOf(pids: readonly number[], port: number, localPort: number): Promise<number> {
  let pid = 0;
  await until(
    'connection seen in /proc',
    () => {
      pid = connectionHolders(pids, port).get(localPort) ?? 0;
      return pid !== 0;
    },
    15_000,
  );
  return pid;
}

/**
 * Writes `request` on an open connection and reads one Content-Length-framed response: its head
 * (as text) and body.
 */
export function responseOn(s: Socket, request: string): Promise<{ head: string; body: Buffer }> {
  return new Promise((resolve, reject) => {
    let got = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      got = Buffer.concat([got, chunk]);
      const end = got.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = got.subarray(0, end).toString('latin1');
      const m = /content-length: *(\d+)/i.exec(head);
      if (m === null) {
        s.off('data', onData);
        return reject(new Error(`no content-length: ${got.toString('latin1')}`));
      }
      if (got.length < end + 4 + Number(m[1])) return;
      s.off('data', onData);
      resolve({ head, body: got.subarray(end + 4, end + 4 + Number(m[1])) });
    };
    s.on('data', onData);
    s.write(request);
  });
}
