import type { Socket } from 'node:net';
import type { PeerAddress } from '../../core/address.ts';
import { parseRequestHead } from '../../protocol/http/request.ts';
import { httpResponse } from '../../protocol/http/response.ts';
import { MAX_HEAD, MAX_UNSENT, type ResponseSink, type Served, Stop } from './raw-path.ts';

/*
 * The raw fast path on Node's own sockets (node:net, node:tls, and connections the batched addon
 * hands over): per-connection state and the listeners that feed it. `HttpFrontend` keeps the set
 * of connections and decides hand-overs; the answering loop is `HttpFrontend.serve`.
 */

/**
 * What a connection needs from the frontend that serves it (`HttpFrontend`; declared here so
 * that this module does not import the frontend that imports it).
 */
export interface SocketHost {
  readonly served: Served;
  /** The raw fast path (see `HttpFrontend.serve`). */
  serve(buf: Buffer, off: number, end: number, peer: PeerAddress, trusted: boolean, sink: ResponseSink): Stop;
  /** The connection closed: drop it from the frontend's set. */
  forget(conn: RawConnection): void;
  /** A WebSocket upgrade on a tracker path leaves for the WebSocket frontend (false: not one). */
  tryRawUpgrade(
    socket: Socket,
    buf: Buffer,
    off: number,
    pathStart: number,
    pathEnd: number,
    headEnd: number,
  ): boolean;
  /** Passes the connection to node:http with the bytes it has not consumed. */
  handOff(socket: Socket, rest: Buffer): void;
}

/** The socket's raw-path state (set on accept, cleared on hand-over); see `onRawData`. */
const RAW = Symbol('herald.raw');
export type RawSocket = Socket & { [RAW]?: RawConnection };

/** Shared listeners (no closure per connection). `this` is the socket. */
function onRawData(this: RawSocket, chunk: Buffer): void {
  this[RAW]?.onData(chunk);
}
function onRawClose(this: RawSocket): void {
  const c = this[RAW];
  if (c !== undefined) c.frontend.forget(c);
}
function ignoreError(): void {}
function onRawDrain(this: RawSocket): void {
  this[RAW]?.resume();
}

/** Feeds the socket's bytes to `conn` (shared listeners: no closure per connection). */
export function listen(socket: RawSocket, conn: RawConnection): void {
  socket[RAW] = conn;
  socket.on('error', ignoreError);
  socket.on('close', onRawClose);
  socket.on('data', onRawData);
}

/**
 * Takes the socket off the raw path; returns the connection it had. Its error listener stays
 * (see `stopIgnoringErrors`) until the new owner has its own.
 */
export function unlisten(socket: RawSocket): RawConnection | undefined {
  const c = socket[RAW];
  socket[RAW] = undefined;
  socket.removeListener('data', onRawData);
  socket.removeListener('close', onRawClose);
  return c;
}

/** Removes the raw path's error listener (the socket's new owner listens for errors itself). */
export function stopIgnoringErrors(socket: Socket): void {
  socket.removeListener('error', ignoreError);
}

const GZIP_HEADER = 'Content-Encoding: gzip\r\n';

/** Per-connection state of the raw fast path on a Node socket; it is its own `ResponseSink`. */
export class RawConnection implements ResponseSink {
  readonly frontend: SocketHost;
  readonly socket: Socket;
  #peer: PeerAddress;
  #trusted: boolean;
  #pending: Buffer | null = null;
  #waiting = false;
  /** Corked only when pipelined requests follow, so that their answers leave in one write. */
  #corked = false;
  /** Not read until the answers written so far are sent (see `Stop.full`). */
  paused = false;
  /** Not read until the bytes queued behind an asynchronous answer are served (see `onData`). */
  #throttled = false;
  /** performance.now() of the last answer (the idle sweep's clock). */
  lastActive: number;

  constructor(frontend: SocketHost, socket: Socket, peer: PeerAddress, trusted: boolean, now: number) {
    this.frontend = frontend;
    this.socket = socket;
    this.#peer = peer;
    this.#trusted = trusted;
    this.lastActive = now;
  }

  onData(chunk: Buffer): void {
    const buf = this.#pending === null ? chunk : Buffer.concat([this.#pending, chunk]);
    this.#pending = null;
    if (this.#waiting || this.paused) {
      // An asynchronous answer is in flight, or the answers so far wait to be sent: keep order
      // by queueing the bytes. Past a bound, read nothing more until they are served (the
      // kernel's buffers then fill, and the client's writes stop): closing instead cut off a
      // client that pipelined more than this while its first answer took a round trip.
      this.#pending = buf;
      if (buf.length > 16 * MAX_HEAD && !this.#throttled) {
        this.#throttled = true;
        this.socket.pause();
      }
      return;
    }
    this.#process(buf, 0);
  }

  answer(body: Buffer, keepAlive: boolean, gzip: boolean, more: boolean): void {
    this.send(httpResponse(200, body, { keepAlive, extraHeaders: gzip ? GZIP_HEADER : undefined }), more);
  }

  send(response: Buffer, more: boolean): void {
    if (more && !this.#corked) {
      this.socket.cork();
      this.#corked = true;
    }
    this.socket.write(response);
  }

  get full(): boolean {
    return this.socket.writableLength > MAX_UNSENT;
  }

  /** The answers written before `Stop.full` have been sent: read and answer again. */
  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.#throttled = false;
    const socket = this.socket;
    if (socket.destroyed) return;
    socket.resume();
    const rest = this.#pending;
    this.#pending = null;
    if (rest !== null) this.#process(rest, 0);
  }

  #process(buf: Buffer, off: number): void {
    const f = this.frontend;
    let stop: Stop;
    try {
      stop = f.serve(buf, off, buf.length, this.#peer, this.#trusted, this);
    } finally {
      if (this.#corked) {
        this.#corked = false;
        this.socket.uncork();
      }
    }
    const s = f.served;
    if (stop !== Stop.partial || s.at > off) this.lastActive = performance.now();
    this.after(stop, buf, s.at, s.answer, s.keepAlive);
  }

  /** Acts on where the raw path stopped; `buf[at, ...)` are the bytes not consumed. */
  after(stop: Stop, buf: Buffer, at: number, answer: Promise<Buffer> | null, keepAlive: boolean): void {
    const socket = this.socket;
    switch (stop) {
      case Stop.drained:
        return;
      case Stop.close:
        closeAfterWrite(socket);
        return;
      case Stop.error:
        socket.end();
        return;
      case Stop.partial:
        this.#pending = at === 0 ? buf : buf.subarray(at);
        return;
      case Stop.other: {
        const head = parseRequestHead(buf, at, buf.length, MAX_HEAD);
        if (
          head.kind === 'ok' &&
          head.upgrade &&
          head.method === 'GET' &&
          !head.hasBody &&
          this.frontend.tryRawUpgrade(socket, buf, at, head.pathStart, head.queryEnd, head.headEnd)
        )
          return;
        this.frontend.handOff(socket, buf.subarray(at));
        return;
      }
      case Stop.async:
        this.#await(answer!, keepAlive, buf.subarray(at));
        return;
      case Stop.full:
        // Read nothing more (the kernel's buffers then fill, and the client's writes stop) until
        // the answers so far are sent; the bytes already read wait here. A client that never
        // reads is closed by the idle sweep.
        this.#pending = at < buf.length ? buf.subarray(at) : null;
        this.paused = true;
        if (socket.writableNeedDrain) {
          socket.pause();
          socket.once('drain', onRawDrain);
        } else this.resume();
        return;
    }
  }

  /** An asynchronous answer: bytes that arrive meanwhile are queued, then served in order. */
  #await(answer: Promise<Buffer>, keepAlive: boolean, rest: Buffer): void {
    const socket = this.socket;
    this.#waiting = true;
    answer.then((body) => {
      this.#waiting = false;
      if (socket.destroyed) return;
      socket.write(httpResponse(200, body, { keepAlive }));
      if (!keepAlive) {
        closeAfterWrite(socket);
        return;
      }
      const more = this.#pending === null ? rest : Buffer.concat([rest, this.#pending]);
      this.#pending = null;
      // Answers that are all promises never stop the raw path on `full` (it checks after a
      // synchronous answer): the same rule here, or a client that pipelines and does not read
      // would have every answer buffered.
      if (this.full) {
        this.after(Stop.full, more, 0, null, false);
        return;
      }
      if (more.length > 0) this.#process(more, 0);
      // Read again once the queued bytes are served (unless they stopped on something else).
      if (this.#throttled && !this.#waiting && !this.paused) {
        this.#throttled = false;
        socket.resume();
      }
    });
  }
}

/**
 * Closes a connection after its last answer. When the answer has already gone to the kernel
 * (the usual case: one small write), the socket is closed at once, as opentracker does: waiting
 * for the client's FIN after a half-close costs Node a shutdown, a read and more events per
 * connection (about a quarter of the cost of a one-request connection). Otherwise it is ended
 * once the write finishes.
 */
function closeAfterWrite(socket: Socket): void {
  if (socket.writableLength === 0) socket.destroy();
  else socket.end();
}
