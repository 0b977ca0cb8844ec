/**
 * Loopback clients for the fuzzer and the soak test: what a BitTorrent client, a browser tab or a
 * staff script sends, as bytes over real sockets (HTTP/1.1, BEP 15 UDP, RFC 6455 WebSocket).
 */
import { randomBytes } from 'node:crypto';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { Agent, request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { decode } from '../../src/protocol/bencode/index.ts';
import {
  type AnnounceFields,
  type ConnectionId,
  parseResponse,
  type UdpResponse,
  writeAnnounceRequest,
  writeConnectRequest,
} from '../../src/protocol/udp/codec.ts';
import type { Address } from './herald-child.ts';

export interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** One request through node:http (keep-alive through `agent`); the body may be any bytes. */
export function httpRequest(
  addr: Address,
  method: string,
  path: string,
  opts: {
    headers?: Record<string, string>;
    body?: Buffer | string;
    agent?: Agent;
    localAddress?: string;
    timeoutMs?: number;
  } = {},
): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const body = opts.body === undefined ? undefined : Buffer.from(opts.body);
    const headers: Record<string, string> = { ...opts.headers };
    if (body !== undefined) headers['content-length'] = String(body.length);
    const req = request(
      {
        host: addr.host,
        port: addr.port,
        method,
        path,
        headers,
        // No agent: a connection per request, closed after it (nothing of the harness stays open).
        agent: opts.agent ?? false,
        localAddress: opts.localAddress,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
        );
        res.on('error', reject);
      },
    );
    req.setTimeout(opts.timeoutMs ?? 10_000, () => req.destroy(new Error(`timeout: ${method} ${path}`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** A bencoded tracker answer as a plain object (strings latin1), or null when it is not bencode. */
export function bdecodeDict(body: Buffer): Map<string, unknown> | null {
  const r = decode(body);
  return r.ok && r.value instanceof Map ? (r.value as Map<string, unknown>) : null;
}

/** A UDP client socket whose replies are matched to requests by transaction id. */
export class UdpClient {
  readonly socket: UdpSocket;
  #waiting = new Map<number, (r: UdpResponse) => void>();
  /** Called for every reply (also the ones nobody waits for). */
  onReply: ((buf: Buffer) => void) | null = null;
  #target: Address;
  #out = Buffer.alloc(2048);
  #tx = 1;
  /** How long `exchange`, `connectId` and `announce` wait for a reply unless told otherwise. */
  timeoutMs = 2000;

  private constructor(target: Address) {
    this.#target = target;
    this.socket = createSocket('udp4');
    this.socket.on('message', (m: Buffer) => {
      this.onReply?.(m);
      if (m.length < 8) return;
      const w = this.#waiting.get(m.readUInt32BE(4));
      if (w !== undefined) {
        this.#waiting.delete(m.readUInt32BE(4));
        w(parseResponse(m, m.length));
      }
    });
  }

  static async open(target: Address): Promise<UdpClient> {
    const c = new UdpClient(target);
    await new Promise<void>((r) => c.socket.bind(0, '127.0.0.1', () => r()));
    return c;
  }

  send(bytes: Uint8Array): void {
    this.socket.send(bytes, this.#target.port, this.#target.host);
  }

  nextTransaction(): number {
    this.#tx = (this.#tx + 1) >>> 0 || 1;
    return (0x70000000 | this.#tx) >>> 0;
  }

  /** Sends and waits for the reply with the same transaction id (null after `timeoutMs`). */
  exchange(
    bytes: Uint8Array,
    transactionId: number,
    timeoutMs = this.timeoutMs,
  ): Promise<UdpResponse | null> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.#waiting.delete(transactionId);
        resolve(null);
      }, timeoutMs);
      this.#waiting.set(transactionId, (r) => {
        clearTimeout(t);
        resolve(r);
      });
      this.send(bytes);
    });
  }

  async connectId(timeoutMs = this.timeoutMs): Promise<ConnectionId | null> {
    const tx = this.nextTransaction();
    const n = writeConnectRequest(this.#out, tx);
    const r = await this.exchange(Buffer.from(this.#out.subarray(0, n)), tx, timeoutMs);
    return r !== null && r.action === 0 ? r.connectionId : null;
  }

  /** connect (unless given an id) + announce; the announce reply (or null, or the error/parse failure). */
  async announce(
    f: Omit<AnnounceFields, 'connectionId' | 'transactionId'> & { connectionId?: ConnectionId },
  ): Promise<UdpResponse | null> {
    const id = f.connectionId ?? (await this.connectId());
    if (id === null) return null;
    const tx = this.nextTransaction();
    const n = writeAnnounceRequest(this.#out, { ...f, connectionId: id, transactionId: tx });
    return this.exchange(Buffer.from(this.#out.subarray(0, n)), tx);
  }

  close(): void {
    this.socket.close();
  }
}

// ---- WebSocket (RFC 6455), client side ----

export const WsOp = { continuation: 0, text: 1, binary: 2, close: 8, ping: 9, pong: 10 } as const;

/** One client frame: masked with `mask` (4 bytes; random when omitted). */
export function wsFrame(opcode: number, payload: Uint8Array, opts: { fin?: boolean; mask?: Buffer } = {}) {
  const mask = opts.mask ?? randomBytes(4);
  const len = payload.length;
  const head = len < 126 ? 2 : len < 65536 ? 4 : 10;
  const out = Buffer.allocUnsafe(head + 4 + len);
  out[0] = (opts.fin === false ? 0 : 0x80) | opcode;
  if (len < 126) out[1] = 0x80 | len;
  else if (len < 65536) {
    out[1] = 0x80 | 126;
    out.writeUInt16BE(len, 2);
  } else {
    out[1] = 0x80 | 127;
    out.writeBigUInt64BE(BigInt(len), 2);
  }
  mask.copy(out, head, 0, 4);
  for (let i = 0; i < len; i++) out[head + 4 + i] = payload[i] ^ mask[i & 3];
  return out;
}

export interface ServerFrame {
  fin: boolean;
  opcode: number;
  payload: Buffer;
}

/** Splits the server's (unmasked) frames off `buf`; returns them and the unread rest. */
export function readServerFrames(buf: Buffer): { frames: ServerFrame[]; rest: Buffer; bad: boolean } {
  const frames: ServerFrame[] = [];
  let off = 0;
  while (buf.length - off >= 2) {
    const b0 = buf[off];
    const b1 = buf[off + 1];
    if (b1 & 0x80) return { frames, rest: buf.subarray(off), bad: true }; // servers never mask
    let len = b1 & 0x7f;
    let p = off + 2;
    if (len === 126) {
      if (buf.length - p < 2) break;
      len = buf.readUInt16BE(p);
      p += 2;
    } else if (len === 127) {
      if (buf.length - p < 8) break;
      const big = buf.readBigUInt64BE(p);
      if (big > 0xffffffffn) return { frames, rest: buf.subarray(off), bad: true };
      len = Number(big);
      p += 8;
    }
    if (buf.length - p < len) break;
    frames.push({ fin: (b0 & 0x80) !== 0, opcode: b0 & 0x0f, payload: buf.subarray(p, p + len) });
    off = p + len;
  }
  return { frames, rest: buf.subarray(off), bad: false };
}

/**
 * Opens a TCP connection and upgrades it to a WebSocket on `path`; resolves with the socket and
 * any bytes that followed the 101 head (or rejects with the status line it got instead).
 */
export function wsOpen(
  addr: Address,
  path: string,
  timeoutMs = 5000,
): Promise<{ socket: Socket; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: addr.host, port: addr.port });
    socket.setNoDelay(true);
    let got = Buffer.alloc(0);
    const t = setTimeout(() => {
      socket.destroy();
      reject(new Error('websocket upgrade timed out'));
    }, timeoutMs);
    const onData = (d: Buffer) => {
      got = Buffer.concat([got, d]);
      const end = got.indexOf('\r\n\r\n');
      if (end < 0) return;
      clearTimeout(t);
      socket.off('data', onData);
      const head = got.subarray(0, end).toString('latin1');
      if (!head.startsWith('HTTP/1.1 101')) {
        socket.destroy();
        reject(new Error(`websocket upgrade refused: ${head.split('\r\n')[0]}`));
        return;
      }
      resolve({ socket, rest: got.subarray(end + 4) });
    };
    socket.on('data', onData);
    socket.once('error', (e) => {
      clearTimeout(t);
      reject(e);
    });
    socket.write(
      `GET ${path} HTTP/1.1\r\nHost: ${addr.host}:${addr.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
  });
}

/** Bytes as a JavaScript string of code points 0..255 (WebTorrent's info_hash and peer_id). */
export const binary = (b: Uint8Array) => Buffer.from(b).toString('latin1');

/** A keep-alive agent for one target's loopback connections. */
export function keepAlive(maxSockets: number): Agent {
  return new Agent({ keepAlive: true, maxSockets });
}

/** Resolves once something accepts TCP connections on 127.0.0.1:`port` (within 15 s). */
export async function waitTcp(port: number): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nothing listening on ${port}`);
}
