import { timingSafeEqual } from 'node:crypto';
import { unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import type { Logger } from '../core/log.ts';
import { FrameWriter, HEADER, MAX_FRAME, type MessageType } from './messages.ts';

/** How long a request to another worker may take before it fails (a worker died or hangs). */
const REQUEST_TIMEOUT_MS = 5000;

/**
 * Bytes a link may hold unsent (its frame buffer and its socket's queue) before it sheds frames:
 * a worker that does not keep up with another (stopped, or flooded through it) costs the sender
 * at most this much memory. Past it, requests fail at once (the caller answers "tracker busy")
 * and one-way frames are dropped.
 */
export const MAX_BACKLOG = 32 * 1024 * 1024;

/**
 * The address of worker `index` of cluster `id`: a socket file in `dir`, a directory only
 * Herald's user may enter (the primary makes it, mode 0700), so no other local user can bind a
 * restarting worker's address and be sent the secret, or connect at all. Without `dir` (tests of
 * the bus alone), a Linux abstract socket.
 */
export function workerSocketPath(clusterId: string, index: number, dir?: string | null): string {
  return dir ? join(dir, `${index}.sock`) : `\0herald-${clusterId}-${index}`;
}

/**
 * What a worker answers when another asks: `reply` appends the answer frame to the link's
 * output (it is flushed with everything else written in this turn of the event loop).
 */
export type RequestHandler = (
  type: MessageType,
  id: number,
  body: Buffer,
  at: number,
  reply: FrameWriter,
  done: () => void,
) => void;

/** A request waiting for its reply (one object a request: no closure per request but the promise's). */
class Pending<T = unknown> {
  readonly resolve: (v: T) => void;
  readonly reject: (err: unknown) => void;
  readonly read: (body: Buffer, at: number, type: MessageType) => T;
  readonly fail: ((err: unknown) => T) | null;
  readonly deadline: number;
  constructor(
    resolve: (v: T) => void,
    reject: (err: unknown) => void,
    read: (body: Buffer, at: number, type: MessageType) => T,
    fail: ((err: unknown) => T) | null,
  ) {
    this.resolve = resolve;
    this.reject = reject;
    this.read = read;
    this.fail = fail;
    this.deadline = Date.now() + REQUEST_TIMEOUT_MS;
  }

  /** The reply arrived: what `read` makes of it, or the failure it throws. */
  settle(body: Buffer, at: number, type: MessageType): void {
    let v: T;
    try {
      v = this.read(body, at, type);
    } catch (err) {
      this.failed(err);
      return;
    }
    this.resolve(v);
  }

  /** No reply (timeout, link down, backlog full) or a refusal: `fail`'s value, else a rejection. */
  failed(err: unknown): void {
    if (this.fail === null) this.reject(err);
    else this.resolve(this.fail(err));
  }
}

/**
 * Frames flow over Unix-domain sockets between the workers of one host, one connection per
 * ordered pair (the worker that asks opens it, lazily, and re-opens it after a failure). Writes
 * are coalesced: every frame written in one turn of the event loop goes out in one `write`
 * (`bench/handover.ts`: 1.2-1.3 µs of CPU per request and reply at 64 a turn, 40-50 µs alone).
 */
class Link {
  socket: Socket | null = null;
  out = new FrameWriter();
  scheduled = false;
  pending = new Map<number, Pending>();
  readonly #path: string;
  readonly #onFrame: (link: Link, type: MessageType, id: number, body: Buffer, at: number) => void;

  constructor(
    path: string,
    onFrame: (link: Link, type: MessageType, id: number, body: Buffer, at: number) => void,
  ) {
    this.#path = path;
    this.#onFrame = onFrame;
  }

  /** Outgoing link: connect on first use; the first bytes are the cluster's token. */
  ensure(token: Buffer | null): void {
    if (this.socket !== null) return;
    const socket = createConnection(this.#path);
    if (token !== null) socket.write(token);
    this.attach(socket);
  }

  attach(socket: Socket): void {
    this.socket = socket;
    socket.setNoDelay?.(true);
    let carry: Buffer | null = null;
    socket.on('data', (chunk: Buffer) => {
      const buf = carry === null ? chunk : Buffer.concat([carry, chunk]);
      carry = null;
      let o = 0;
      while (buf.length - o >= 4) {
        const len = buf.readUInt32BE(o);
        if (len < HEADER - 4 || len > MAX_FRAME) {
          socket.destroy(new Error(`cluster: bad frame length ${len}`));
          return;
        }
        if (buf.length - o - 4 < len) break;
        this.#onFrame(this, buf[o + 4] as MessageType, buf.readUInt32BE(o + 5), buf, o + HEADER);
        o += 4 + len;
      }
      if (o < buf.length) carry = buf.subarray(o);
      // A frame held back keeps its chunk: copy it so that a big chunk is not pinned.
      if (carry !== null && carry.length < 4096) carry = Buffer.from(carry);
    });
    const failed = (err?: Error) => {
      if (this.socket === socket) this.socket = null;
      this.failAll(err ?? new Error('cluster: connection closed'));
    };
    socket.on('error', failed);
    socket.on('close', () => failed());
  }

  failAll(err: Error): void {
    const list = [...this.pending.values()];
    this.pending.clear();
    for (const p of list) p.failed(err);
  }

  /** Bytes written to this link and not yet taken by the kernel. */
  backlog(): number {
    return this.out.len + (this.socket?.writableLength ?? 0);
  }

  schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      if (this.out.len === 0) return;
      const bytes = this.out.take();
      if (this.socket !== null && !this.socket.destroyed) this.socket.write(bytes);
    });
  }
}

/**
 * One worker's end of the cluster bus: it asks other workers (`request`) and answers them
 * (`handler`). Requests to a worker that is down or restarting fail after at most
 * REQUEST_TIMEOUT_MS (at once when its socket refuses), and the caller answers its client with a
 * retryable failure; nothing waits forever and nothing is kept for a dead worker.
 */
export class ClusterBus {
  readonly index: number;
  readonly count: number;
  readonly #clusterId: string;
  readonly #logger: Logger;
  readonly #handler: RequestHandler;
  /** Handlers by message type, set by `route` (other types go to `handler`). */
  readonly #routes: (RequestHandler | undefined)[] = [];
  #server: Server | null = null;
  #out: Link[] = [];
  #in = new Set<Link>();
  #nextId = 1;
  #timer: NodeJS.Timeout | null = null;

  /**
   * A secret every connection between workers starts with (the primary draws it and hands it to
   * its workers in their environment, which only their user can read). Abstract Unix sockets
   * are reachable by any local process, and /proc/net/unix lists their names, so without it a
   * local user could inject frames (an announce credited to a member, say).
   */
  readonly #token: Buffer | null;
  readonly #dir: string | null;

  constructor(opts: {
    clusterId: string;
    index: number;
    count: number;
    logger: Logger;
    handler: RequestHandler;
    token?: Buffer | null;
    /** Where the workers' sockets are (see workerSocketPath); null: abstract sockets. */
    dir?: string | null;
  }) {
    this.#token = opts.token ?? null;
    this.#dir = opts.dir ?? null;
    this.index = opts.index;
    this.count = opts.count;
    this.#clusterId = opts.clusterId;
    this.#logger = opts.logger;
    this.#handler = opts.handler;
    for (let i = 0; i < opts.count; i++)
      this.#out.push(
        new Link(workerSocketPath(opts.clusterId, i, this.#dir), (l, t, id, b, at) =>
          this.#onReply(l, t, id, b, at),
        ),
      );
  }

  async start(): Promise<void> {
    const server = createServer((socket) => {
      const link: Link = new Link('', (l, type, id, body, at) => {
        (this.#routes[type] ?? this.#handler)(type, id, body, at, l.out, () => l.schedule());
      });
      this.#in.add(link);
      socket.on('close', () => this.#in.delete(link));
      const token = this.#token;
      if (token === null) {
        link.attach(socket);
        return;
      }
      // Nothing is read as a frame before the token has matched.
      let got = Buffer.alloc(0);
      const timer = setTimeout(() => socket.destroy(), REQUEST_TIMEOUT_MS);
      socket.on('error', () => {});
      const first = (chunk: Buffer) => {
        got = Buffer.concat([got, chunk]);
        if (got.length < token.length) return;
        socket.off('data', first);
        clearTimeout(timer);
        if (!timingSafeEqual(got.subarray(0, token.length), token)) {
          this.#logger.warn('cluster: a connection without the token was refused');
          socket.destroy();
          return;
        }
        socket.pause();
        if (got.length > token.length) socket.unshift(got.subarray(token.length));
        link.attach(socket);
        socket.resume();
      };
      socket.on('data', first);
    });
    this.#server = server;
    const path = workerSocketPath(this.#clusterId, this.index, this.#dir);
    // A restarted worker's predecessor left its socket file behind.
    if (this.#dir !== null)
      try {
        unlinkSync(path);
      } catch {}
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.#timer = setInterval(() => this.#expire(), 500);
    this.#timer.unref();
  }

  /**
   * Sends a request frame (written by `write` into the link's buffer) to worker `to`; resolves
   * with what `read` makes of the reply's body (a view valid only during the call: copy what you
   * keep). A failure (no reply in time, the worker down, the link's backlog full, or `read`
   * throwing) rejects, or resolves with `fail(err)` when `fail` is given (one promise a request:
   * no `.catch` on the hot path).
   */
  request<T>(
    to: number,
    write: (w: FrameWriter, id: number) => void,
    read: (body: Buffer, at: number, type: MessageType) => T,
    fail: ((err: unknown) => T) | null = null,
  ): Promise<T> {
    const link = this.#out[to];
    let refused: Error | null = null;
    try {
      link.ensure(this.#token);
    } catch (err) {
      refused = err as Error;
    }
    if (refused === null && link.backlog() > MAX_BACKLOG) refused = new Error('cluster: link backlog full');
    if (refused !== null) return fail === null ? Promise.reject(refused) : Promise.resolve(fail(refused));
    const id = this.#nextId;
    this.#nextId = (this.#nextId + 1) >>> 0 || 1;
    return new Promise<T>((resolve, reject) => {
      link.pending.set(id, new Pending<T>(resolve, reject, read, fail) as Pending);
      write(link.out, id);
      link.schedule();
    });
  }

  /**
   * Messages of these types, from any worker, go to `handler` instead of the bus's own (another
   * service over the same links: the WebRTC swarms, src/cluster/webrtc-shard.ts).
   */
  route(types: readonly MessageType[], handler: RequestHandler): void {
    for (const t of types) this.#routes[t] = handler;
  }

  /**
   * Sends a one-way frame (written by `write`, id 0) to worker `to`: no reply is expected and
   * none is awaited. Best effort: a frame for a worker that is down or restarting, or that does
   * not keep up (MAX_BACKLOG), is lost.
   */
  notify(to: number, write: (w: FrameWriter) => void): void {
    const link = this.#out[to];
    try {
      link.ensure(this.#token);
    } catch {
      return;
    }
    if (link.backlog() > MAX_BACKLOG) return;
    write(link.out);
    link.schedule();
  }

  #onReply(link: Link, type: MessageType, id: number, body: Buffer, at: number): void {
    const p = link.pending.get(id);
    if (p === undefined) return; // timed out already
    link.pending.delete(id);
    p.settle(body, at, type);
  }

  #expire(): void {
    const now = Date.now();
    for (const link of this.#out) {
      for (const [id, p] of link.pending) {
        if (p.deadline > now) continue;
        link.pending.delete(id);
        p.failed(new Error('cluster: request timed out'));
      }
    }
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    for (const link of this.#out) {
      link.failAll(new Error('cluster: stopping'));
      link.socket?.destroy();
    }
    for (const link of this.#in) link.socket?.destroy();
    const server = this.#server;
    this.#server = null;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    this.#logger.debug?.('cluster bus stopped', { index: this.index });
  }
}
