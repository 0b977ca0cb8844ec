import type { PeerAddress } from '../../core/address.ts';
import type { ConnectionLimit } from '../../core/connection-limit.ts';

/** The request head may not exceed this; a longer one gets 431 and the connection closes. */
export const MAX_HEAD = 8192;

/**
 * Answer bytes one connection may have waiting to be sent before the raw path stops reading it
 * (`Stop.full`): a client that pipelines requests and never reads would otherwise make Herald
 * buffer every answer (a 170-byte announce can ask for a 14 KB answer).
 */
export const MAX_UNSENT = 64 * 1024;

/**
 * What the raw fast path (`HttpFrontend.serve`) stopped on, after answering every complete
 * tracker request before it. The same loop serves Node sockets and the batched addon; each
 * transport acts on the stop in its own way.
 */
export const Stop = {
  /** Every byte was consumed; the connection stays open for the next request. */
  drained: 0,
  /** The last answer ends the connection (Connection: close, HTTP/1.0 without keep-alive). */
  close: 1,
  /** A malformed head was answered with a plain HTTP error; the connection ends. */
  error: 2,
  /** An incomplete head starts at `served.at` (an index into the buffer served). */
  partial: 3,
  /** The request at `served.at` is not for the raw path (node:http, a WebSocket upgrade). */
  other: 4,
  /** The answer is a Promise (`served.answer`); the next request starts at `served.at`. */
  async: 5,
  /**
   * The sink holds more than MAX_UNSENT bytes not yet sent (`ResponseSink.full`); the next request
   * starts at `served.at`. The connection is not read until its output drains.
   */
  full: 6,
} as const;
export type Stop = (typeof Stop)[keyof typeof Stop];

/** Details of the last stop (scratch owned by the frontend; read at once by the caller). */
export interface Served {
  at: number;
  answer: Promise<Buffer> | null;
  /** Whether the request answered by `answer` keeps the connection open. */
  keepAlive: boolean;
}

/** Where the raw path puts its responses, in order; `more`: further answers follow in this pass. */
export interface ResponseSink {
  /**
   * A tracker answer: status 200 with this bencoded body, exactly the head `httpResponse` writes
   * (`Connection: close` unless `keepAlive`; `Content-Encoding: gzip` when `gzip`).
   */
  answer(body: Buffer, keepAlive: boolean, gzip: boolean, more: boolean): void;
  /** A whole response (head and body) as bytes. */
  send(response: Buffer, more: boolean): void;
  /** Whether more than MAX_UNSENT bytes written here are not yet sent (checked between requests). */
  readonly full: boolean;
}

/** What a batched listener needs from the frontend it serves. */
export interface RawHost {
  readonly served: Served;
  /** max_connections_per_ip (null: no limit); the addon's connections are counted in it too. */
  readonly connectionLimit: ConnectionLimit | null;
  /** The raw fast path over `buf[off, end)` (see `HttpFrontend.serve`). */
  serve(buf: Buffer, off: number, end: number, peer: PeerAddress, trusted: boolean, sink: ResponseSink): Stop;
  isTrusted(peer: PeerAddress): boolean;
  /**
   * Takes a connection from the addon onto Node's machinery: writes `written` (responses not
   * yet sent, in order), then acts on `stop` with the bytes not yet consumed (`rest`, a copy).
   * `counted`: the connection holds a slot in `connectionLimit`, which the socket now releases.
   */
  adopt(
    fd: number,
    peer: PeerAddress,
    trusted: boolean,
    idleForMs: number,
    written: readonly Buffer[],
    stop: Stop,
    rest: Buffer,
    answer: Promise<Buffer> | null,
    keepAlive: boolean,
    counted: boolean,
  ): void;
  /** Logs an unexpected error; returns the body of the generic `failure reason` for the client. */
  internalError(err: unknown): Buffer;
}
