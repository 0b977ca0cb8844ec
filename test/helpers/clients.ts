/**
 * Minimal protocol clients for integration tests: raw bytes over real loopback sockets, so that
 * what is tested is exactly what a BitTorrent client sends and receives.
 */
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { AnnounceEvent, type AnnounceRequest } from '../../src/core/types.ts';
import { decode } from '../../src/protocol/bencode/index.ts';
import {
  type ConnectionId,
  parseResponse,
  writeAnnounceRequest,
  writeConnectRequest,
} from '../../src/protocol/udp/codec.ts';

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** Percent-encodes every byte (as real clients do for binary fields). */
export function pct(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += `%${b.toString(16).padStart(2, '0')}`;
  return s;
}

export function hashOf(n: number, salt = 0): Buffer {
  const b = Buffer.alloc(20);
  b.writeUInt32BE(n >>> 0, 0);
  b.writeUInt32BE(salt >>> 0, 4);
  b[19] = 0xff; // a byte that is not valid UTF-8 on its own
  return b;
}

export interface AnnounceFields {
  infoHash: Uint8Array;
  peerId?: Uint8Array;
  port: number;
  uploaded?: number;
  downloaded?: number;
  left?: number;
  event?: 'started' | 'stopped' | 'completed';
  numwant?: number;
  compact?: 0 | 1;
  noPeerId?: boolean;
  ip?: string;
  extra?: string;
  /** Path before the query (default /announce; private trackers: /announce/<passkey>). */
  base?: string;
}

export function announcePath(f: AnnounceFields): string {
  const peerId = f.peerId ?? Buffer.from(`-HT0001-${String(f.port).padStart(12, '0')}`);
  let q = `${f.base ?? '/announce'}?info_hash=${pct(f.infoHash)}&peer_id=${pct(peerId)}&port=${f.port}`;
  q += `&uploaded=${f.uploaded ?? 0}&downloaded=${f.downloaded ?? 0}&left=${f.left ?? 1000}`;
  if (f.event) q += `&event=${f.event}`;
  if (f.numwant !== undefined) q += `&numwant=${f.numwant}`;
  if (f.compact !== undefined) q += `&compact=${f.compact}`;
  if (f.noPeerId) q += '&no_peer_id=1';
  if (f.ip) q += `&ip=${f.ip}`;
  if (f.extra) q += f.extra;
  return q;
}

/** Sends raw bytes, reads until the server closes (or `timeoutMs`), returns all bytes. */
export function rawExchange(
  port: number,
  host: string,
  data: string | Buffer,
  opts: { localAddress?: string; timeoutMs?: number; halfClose?: boolean } = {},
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const sock = connect({ port, host, localAddress: opts.localAddress });
    const timer = setTimeout(() => {
      sock.destroy();
      resolve(Buffer.concat(chunks));
    }, opts.timeoutMs ?? 2000);
    sock.on('data', (d) => chunks.push(d));
    sock.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    sock.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
    // halfClose: send FIN after the data ("that is all"), as a client that gives up does.
    if (opts.halfClose) sock.end(data);
    else sock.write(data);
  });
}

/** Splits a byte stream into HTTP/1.1 responses (Content-Length framed). */
export function splitResponses(all: Buffer): RawResponse[] {
  const out: RawResponse[] = [];
  let off = 0;
  while (off < all.length) {
    const end = all.indexOf('\r\n\r\n', off);
    if (end < 0) throw new Error(`truncated head: ${JSON.stringify(all.subarray(off).toString('latin1'))}`);
    const head = all.subarray(off, end).toString('latin1').split('\r\n');
    const status = Number(head[0].split(' ')[1]);
    const headers: Record<string, string> = {};
    for (const line of head.slice(1)) {
      const i = line.indexOf(':');
      headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
    }
    const len = Number(headers['content-length'] ?? '0');
    const body = all.subarray(end + 4, end + 4 + len);
    if (body.length !== len) throw new Error('truncated body');
    out.push({ status, headers, body });
    off = end + 4 + len;
  }
  return out;
}

export async function httpGet(
  port: number,
  host: string,
  path: string,
  headers: Record<string, string> = {},
  opts: { localAddress?: string; timeoutMs?: number } = {},
): Promise<RawResponse> {
  let req = `GET ${path} HTTP/1.1\r\nHost: tracker\r\nConnection: close\r\n`;
  for (const [k, v] of Object.entries(headers)) req += `${k}: ${v}\r\n`;
  const all = await rawExchange(port, host.replace(/^\[|\]$/g, ''), `${req}\r\n`, opts);
  const [r] = splitResponses(all);
  if (!r) throw new Error('no response');
  return r;
}

/**
 * HTTP announces of one member: client `n` has port `portBase + n` and a peer id tagged `tag`;
 * `defaults`, then `f`, add fields.
 */
export function announcer(
  port: number,
  passkey: string,
  portBase: number,
  tag: string,
  defaults: Partial<AnnounceFields>,
) {
  return async (ih: Buffer, n: number, f: Partial<AnnounceFields> = {}) =>
    bdecode(
      (
        await httpGet(
          port,
          '127.0.0.1',
          announcePath({
            infoHash: ih,
            port: portBase + n,
            peerId: Buffer.from(`-qB4500-${tag}${String(n).padStart(7, '0')}`),
            base: `/announce/${passkey}`,
            ...defaults,
            ...f,
          }),
        )
      ).body,
    );
}

/** Decodes a bencoded body to plain JS: dict -> Map (latin1 keys), strings -> Buffer. */
export function bdecode(body: Buffer): Map<string, unknown> {
  const r = decode(body);
  if (!r.ok) throw new Error(`invalid bencode: ${r.error} in ${JSON.stringify(body.toString('latin1'))}`);
  return r.value as Map<string, unknown>;
}

/** An HTTP announce to 127.0.0.1:`port`, its bencoded answer decoded. */
export async function announceAt(port: number, f: AnnounceFields): Promise<Map<string, unknown>> {
  return bdecode((await httpGet(port, '127.0.0.1', announcePath(f))).body);
}

export function text(v: unknown): string {
  return Buffer.isBuffer(v) ? v.toString('utf8') : String(v);
}

/** A UDP client socket with a promise-based request/response exchange. */
export async function udpClient(family: 4 | 6) {
  const sock = createSocket(family === 4 ? 'udp4' : 'udp6');
  await new Promise<void>((r) => sock.bind(0, family === 4 ? '127.0.0.1' : '::1', () => r()));
  const queue: Buffer[] = [];
  let waiter: ((b: Buffer | null) => void) | null = null;
  sock.on('message', (m) => {
    if (waiter) {
      const w = waiter;
      waiter = null;
      w(m);
    } else queue.push(m);
  });
  return {
    socket: sock,
    /** Sends and waits up to `timeoutMs` for one reply; null if none came. */
    async request(data: Uint8Array, port: number, timeoutMs = 1000): Promise<Buffer | null> {
      sock.send(data, port, family === 4 ? '127.0.0.1' : '::1');
      if (queue.length) return queue.shift()!;
      return new Promise((resolve) => {
        const t = setTimeout(() => {
          waiter = null;
          resolve(null);
        }, timeoutMs);
        waiter = (b) => {
          clearTimeout(t);
          resolve(b);
        };
      });
    },
    close() {
      sock.close();
    },
  };
}

/**
 * BEP 15 over IPv4: connect, then one `started` announce to 127.0.0.1:`trackerPort` (numwant 50);
 * the parsed reply, or null when either went unanswered.
 */
export async function udpAnnounce(
  trackerPort: number,
  f: { infoHash: Uint8Array; port: number; left: number; peerId?: Uint8Array },
): Promise<ReturnType<typeof parseResponse> | null> {
  const c = await udpClient(4);
  try {
    const buf = Buffer.alloc(512);
    const cr = await c.request(buf.subarray(0, writeConnectRequest(buf, 1)), trackerPort);
    if (cr === null) return null;
    const connectionId = (parseResponse(cr, cr.length) as { connectionId: ConnectionId }).connectionId;
    const n = writeAnnounceRequest(buf, {
      connectionId,
      transactionId: 2,
      infoHash: f.infoHash,
      peerId: f.peerId ?? Buffer.alloc(20, 9),
      downloaded: 0,
      left: f.left,
      uploaded: 0,
      event: 2,
      numWant: 50,
      port: f.port,
    });
    const ar = await c.request(buf.subarray(0, n), trackerPort);
    return ar === null ? null : parseResponse(ar, ar.length, 4);
  } finally {
    c.close();
  }
}

/**
 * An IPv4 seeder's `started` announce for the store itself (filling swarms without HTTP): peer
 * number `i` (0..65535) at 10.`net`.x.y, port 1000 + i % 5000.
 */
export function seederRequest(infoHash: Uint8Array, i: number, net = 0): AnnounceRequest {
  return {
    infoHash,
    peerId: hashOf(i, 8),
    family: 4,
    ip: new Uint8Array([10, net, (i >> 8) & 255, i & 255]),
    port: 1000 + (i % 5000),
    uploaded: 0,
    downloaded: 0,
    left: 0,
    event: AnnounceEvent.started,
    numWant: 0,
    wantPeerIds: false,
  };
}

/** The ports of the IPv4 peers in a compact peer list (`peers` of an announce answer), sorted. */
export function compactPorts(peers: unknown): number[] {
  const b = peers as Buffer;
  const out: number[] = [];
  for (let i = 0; i + 6 <= b.length; i += 6) out.push(b.readUInt16BE(i + 4));
  return out.sort((x, y) => x - y);
}
