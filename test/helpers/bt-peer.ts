/**
 * Tiny TCP listeners that stand in for a BitTorrent peer's port in connectable-check tests
 * (issue #16): one that answers a BEP 3 handshake for the torrents it has, one that answers
 * garbage, one that accepts and never answers. Each counts its connections, and how many were open
 * at once (a shared `Gauge` counts over several listeners).
 */
import { createServer, type Server, type Socket } from 'node:net';
import { writeHandshake } from '../../src/protocol/peer-wire/handshake.ts';

export class Gauge {
  open = 0;
  peak = 0;
  total = 0;
  up(): void {
    this.total++;
    if (++this.open > this.peak) this.peak = this.open;
  }
  down(): void {
    this.open--;
  }
}

export interface FakePeer {
  port: number;
  gauge: Gauge;
  /** Handshakes received (their info hashes, hex). */
  handshakes: string[];
  /** Closes the connections it holds now (a silent peer giving up). */
  drop(): void;
  close(): Promise<void>;
}

type Behaviour = 'handshake' | 'garbage' | 'silent';

/** A listener on `host` (127.0.0.1 or ::1), port chosen by the system. */
export async function fakePeer(
  behaviour: Behaviour,
  opts: { host?: string; infoHashes?: Uint8Array[]; gauge?: Gauge } = {},
): Promise<FakePeer> {
  const gauge = opts.gauge ?? new Gauge();
  const handshakes: string[] = [];
  const have = new Set((opts.infoHashes ?? []).map((h) => Buffer.from(h).toString('hex')));
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    sockets.add(s);
    gauge.up();
    let closed = false;
    s.on('close', () => {
      if (!closed) gauge.down();
      closed = true;
      sockets.delete(s);
    });
    s.on('error', () => {});
    if (behaviour === 'garbage') {
      s.end('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    // Reads (and drops) what comes, so that the peer's close is seen, but never answers.
    if (behaviour === 'silent') return void s.resume();
    let got = Buffer.alloc(0);
    s.on('data', (chunk: Buffer) => {
      got = Buffer.concat([got, chunk]);
      if (got.length < 68) return;
      const hash = got.subarray(28, 48);
      handshakes.push(hash.toString('hex'));
      // A real client drops a handshake for a torrent it does not have.
      if (!have.has(hash.toString('hex'))) return void s.destroy();
      s.write(writeHandshake(hash, Buffer.from('-LT2000-fakepeer0001')));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, opts.host ?? '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    gauge,
    handshakes,
    drop() {
      for (const s of sockets) s.destroy();
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const handedOut = new Set<number>();

/** A port on `host` where nothing listens (bound, then closed), never the same one twice in a process. */
export async function closedPort(host = '127.0.0.1'): Promise<number> {
  // Below the kernel's ephemeral range (32768-60999 here): a port a concurrent test's
  // `listen(0)` or an outgoing connection took after ours was closed would answer (or stay
  // silent) instead of refusing, and a check timed by a manual clock would then never end.
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (handedOut.has(port)) continue;
    const server = createServer();
    const free = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false));
      server.listen(port, host, () => resolve(true));
    });
    if (!free) continue;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    handedOut.add(port);
    return port;
  }
}

/** Waits until `check()` is true (polling every 50 ms); throws with `what` after `ms`. */
export async function until(
  what: string,
  check: () => boolean | Promise<boolean>,
  ms = 20_000,
): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
