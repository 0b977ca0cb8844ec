import { closeSync, readFileSync } from 'node:fs';
import {
  createServer as createHttpServer,
  type Server as HttpServer,
  type IncomingMessage,
  type ServerOptions,
  type ServerResponse,
} from 'node:http';
import { createServer as createNetServer, isIP, type Server as NetServer, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import {
  createServer as createTlsServer,
  type SecureContextOptions,
  type Server as TlsServer,
} from 'node:tls';
import { gzipSync } from 'node:zlib';
import { formatIp, type PeerAddress, parseIp } from '../../core/address.ts';
import type { ConnectionLimit } from '../../core/connection-limit.ts';
import { Errors, TrackerError } from '../../core/errors.ts';
import { TrustedProxies } from '../../core/forwarded.ts';
import { listenOn, opening } from '../../core/listen.ts';
import type { Logger } from '../../core/log.ts';
import type { AnnounceRequest, AnnounceResult, ScrapeEntry } from '../../core/types.ts';
import { parseAnnounce, parseScrape } from '../../protocol/http/query.ts';
import { parseRequestHead } from '../../protocol/http/request.ts';
import { encodeAnnounce, encodeFailure, encodeScrape, httpResponse } from '../../protocol/http/response.ts';
import { type FullScrapeGate, FullScrapeLimiter } from '../../tracker/full-scrape.ts';
import { type RequestContext, requestContext, type TrackerService } from '../../tracker/service.ts';
import type { HttpConnectionStats } from '../../tracker/stats.ts';
import { type UpgradeRequest, upgradeRequestOfHead } from '../ws/raw-websocket.ts';
import { loadHttpBatchAddon } from './batch.ts';
import { BatchedListener } from './batched-listener.ts';
import { listen, RawConnection, type RawSocket, stopIgnoringErrors, unlisten } from './node-connection.ts';
import { MAX_HEAD, type RawHost, type ResponseSink, type Served, Stop } from './raw-path.ts';

export interface Listen {
  host: string;
  port: number;
}

export interface HttpFrontendOptions {
  service: TrackerService;
  /** Plain HTTP listeners. */
  http: Listen[];
  /** HTTPS listeners; they need `tls`. */
  https: Listen[];
  tls: { certFile: string; keyFile: string } | null;
  /** Reverse proxies whose `X-Forwarded-For` is read (see `TrustedProxies`); '*': every peer. */
  trustedProxies: string[];
  /** Believe the announce `ip=` parameter (default false: anyone could name a third party). */
  trustIpParam?: boolean;
  fullScrape: boolean;
  fullScrapeInterval: number;
  /**
   * Whose limit a full scrape is counted against: this process's by default; with workers, the
   * whole tracker's (`SharedFullScrapeGates`).
   */
  fullScrapeGate?: FullScrapeGate;
  maxScrapeHashes: number;
  /** `Upgrade: websocket` requests (WebTorrent on the announce path); none: refused. */
  upgrade?: ((req: IncomingMessage, socket: Duplex, head: Buffer) => void) | null;
  /**
   * WebSocket upgrades read by the raw path itself (the tracker's own WebSocket paths): the
   * connection is handed straight over, skipping node:http. `isPath` says which URLs qualify.
   */
  rawUpgrade?: {
    isPath: (url: string) => boolean;
    accept: (url: string, h: UpgradeRequest, socket: Duplex, head: Buffer) => void;
  } | null;
  /** Every request that is not a tracker request (portal, API, /stats, /metrics, /health). */
  web: (req: IncomingMessage, res: ServerResponse) => void;
  logger: Logger;
  logRequests: boolean;
  /** SO_REUSEPORT on the listeners: several worker processes bind the same address (issue #13). */
  reusePort?: boolean;
  /** Idle keep-alive connections and slow heads are closed after this many ms (default 30 s). */
  idleTimeoutMs?: number;
  /**
   * max_connections_per_ip, shared with the other listeners (null: no limit). Every connection
   * accepted is counted from accept to close, whoever holds it then (node:http, WebSocket).
   */
  connectionLimit?: ConnectionLimit | null;
  /**
   * Plain HTTP listeners: 'batched' through the native addon (C accepts, reads and writes; Node
   * sockets only for what leaves the fast path; a connection whose answer is a promise waits
   * parked in the addon), 'node' on node:net, 'auto' (the default): batched when the addon is
   * built. HTTPS always uses node:tls.
   */
  io?: 'auto' | 'batched' | 'node';
  /**
   * `herald serve --workers N` with the sharded memory store (issue #13): the first batched
   * listener relays kept-alive announces for another worker's swarms to that worker in C, and
   * serves theirs (`BatchedListener.relay`). `secret`: the cluster bus's 32-byte secret.
   */
  relay?: { clusterId: string; index: number; count: number; secret: Buffer } | null;
}

/** Idle keep-alive connections and slow heads are closed after this (by default). */
const IDLE_TIMEOUT_MS = 30_000;

const ANNOUNCE = Buffer.from('/announce', 'latin1');
const SCRAPE = Buffer.from('/scrape', 'latin1');

function pathIs(buf: Uint8Array, start: number, end: number, path: Uint8Array): boolean {
  if (end - start !== path.length) return false;
  for (let i = 0; i < path.length; i++) if (buf[start + i] !== path[i]) return false;
  return true;
}

type Kind = 0 | 1 | 2; // 0 = not a tracker path, 1 = announce, 2 = scrape

/**
 * The passkey of the last path `trackerPath` matched, or null. A module-level scratch instead of
 * a result object: the common public path (`/announce`) then allocates nothing.
 */
let pathPasskey: string | null = null;

function trackerPath(buf: Buffer, start: number, end: number): Kind {
  pathPasskey = null;
  if (pathIs(buf, start, end, ANNOUNCE)) return 1;
  if (pathIs(buf, start, end, SCRAPE)) return 2;
  // Private-tracker paths: /announce/<passkey>, /scrape/<passkey>, and /<passkey>/announce for
  // trackers migrating from software that used that form. Found in the bytes: the passkey is the
  // one string made (no split, no view).
  if (end - start < 10 || end - start > 200 || buf[start] !== 47) return 0;
  let slash = -1;
  for (let i = start + 1; i < end; i++)
    if (buf[i] === 47) {
      if (slash >= 0) return 0;
      slash = i;
    }
  if (slash <= start + 1 || slash === end - 1) return 0;
  // `/announce` or `/scrape` before the slash: the passkey after it; else after it, the passkey before.
  const first = pathIs(buf, start, slash, ANNOUNCE) ? 1 : pathIs(buf, start, slash, SCRAPE) ? 2 : 0;
  if (first !== 0) {
    pathPasskey = buf.toString('latin1', slash + 1, end);
    return first;
  }
  const second = pathIs(buf, slash, end, ANNOUNCE) ? 1 : pathIs(buf, slash, end, SCRAPE) ? 2 : 0;
  if (second !== 0) pathPasskey = buf.toString('latin1', start + 1, slash);
  return second;
}

/**
 * HTTP(S) frontend (DESIGN.md "Where Node's own I/O is the ceiling"): each connection is read
 * raw; a `GET /announce` or `GET /scrape` without a body is answered right on the connection from
 * the codecs in `protocol/http`, pipelined requests in order, partial heads buffered up to
 * `MAX_HEAD`. The first request that is anything else hands the whole connection (with the bytes
 * not yet consumed) to a `node:http` server, which serves the web side and, should tracker
 * requests follow on that connection, answers them through the same tracker functions.
 *
 * Plain HTTP listeners are served by the batched addon when it is built (`BatchedListener`: no
 * Node socket at all for a connection that stays on the fast path); HTTPS listeners, and plain
 * ones without the addon, by `node:net`/`node:tls` sockets (`RawConnection`). One loop, `serve`,
 * answers for both.
 */
export class HttpFrontend implements RawHost {
  #o: HttpFrontendOptions;
  /** The request context, reused (see `answer`). */
  #ctx: RequestContext = requestContext('http', null);
  /**
   * Where an announce's hashes are decoded when the store has read them before the next request
   * is parsed (`synchronous`, `readsRequestAtOnce`); another store gets fresh arrays per request.
   */
  #hashes: { infoHash: Uint8Array; peerId: Uint8Array } | null;
  #web: HttpServer;
  #servers: (NetServer | TlsServer)[] = [];
  #batched: BatchedListener[] = [];
  /** Every listener in listen order, for `addresses()`. */
  #listeners: (NetServer | TlsServer | BatchedListener)[] = [];
  /** Connections on the raw path over Node sockets, for the idle sweep and stop(). */
  #conns = new Set<RawConnection>();
  #idleMs: number;
  #idleTimer: NodeJS.Timeout | null = null;
  #limiter: FullScrapeGate;
  #proxies: TrustedProxies;
  #fullScrapeCache: { at: number; plain: Buffer; gzip: Buffer } | null = null;
  #tlsServers: TlsServer[] = [];
  /** TCP connections of the HTTPS listeners (handshaking ones included), for stop(). */
  #tlsTcp = new Set<Socket>();
  /** Where the last `serve` stopped (scratch: no object per call). */
  readonly served: Served = { at: 0, answer: null, keepAlive: false };
  readonly connectionLimit: ConnectionLimit | null;

  constructor(opts: HttpFrontendOptions) {
    this.#o = opts;
    const store = opts.service.store;
    this.#hashes =
      store.synchronous === true || store.readsRequestAtOnce === true
        ? { infoHash: new Uint8Array(20), peerId: new Uint8Array(20) }
        : null;
    this.#limiter = opts.fullScrapeGate ?? new FullScrapeLimiter(opts.fullScrapeInterval);
    this.#idleMs = opts.idleTimeoutMs ?? IDLE_TIMEOUT_MS;
    this.connectionLimit = opts.connectionLimit ?? null;
    this.#proxies = new TrustedProxies(opts.trustedProxies);
    // A connection handed over to node:http keeps http_idle_timeout for its heads (node:http's own
    // default is 60 s, checked every 30 s: a head dribbled a byte at a time lived that long after
    // one web request); a keep-alive connection idles 5 s there at most.
    this.#web = createHttpServer(webTimeouts(this.#idleMs), (req, res) => this.#onWebRequest(req, res));
    // This server never listens (connections are handed to it), and node:http starts the checker
    // of those timeouts on 'listening': without this, no head or request on it ever timed out.
    // stop() ends the checker (close()).
    this.#web.emit('listening');
    this.#web.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      if (opts.upgrade) opts.upgrade(req, socket, head);
      else socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    });
    this.#web.on('clientError', (_err, socket) => {
      if (socket.writable)
        socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    });
  }

  /** How plain HTTP is served: 'batched' (the addon), 'node' (node:net) or 'none' (no listener). */
  get io(): 'batched' | 'node' | 'none' {
    return this.#batched.length > 0 ? 'batched' : this.#o.http.length > 0 ? 'node' : 'none';
  }

  /**
   * Connections the tracker path holds, those paused for a slow reader (and their unsent bytes),
   * those parked for an asynchronous answer.
   */
  stats(): HttpConnectionStats {
    let paused = 0;
    let unsentBytes = 0;
    for (const c of this.#conns) {
      if (c.paused) paused++;
      unsentBytes += c.socket.writableLength;
    }
    let connections = this.#conns.size;
    let parked = 0;
    const relayed = { out: 0, in: 0, busy: 0 };
    for (const b of this.#batched) {
      const c = b.counts;
      connections += c[0];
      parked += c[1];
      relayed.out += c[3];
      relayed.in += c[4];
      relayed.busy += c[6];
    }
    return this.#o.relay != null && this.#batched.length > 0
      ? { connections, paused, parked, unsentBytes, relayed }
      : { connections, paused, parked, unsentBytes };
  }

  /** Bound addresses, in listen order (useful with port 0). */
  addresses(): { protocol: 'http' | 'https'; host: string; port: number }[] {
    return this.#listeners.map((s) => {
      if (s instanceof BatchedListener) return { protocol: 'http', host: s.host, port: s.port };
      const a = s.address();
      const protocol = this.#tlsServers.includes(s as TlsServer) ? 'https' : 'http';
      if (a && typeof a === 'object') return { protocol, host: a.address, port: a.port };
      return { protocol, host: '', port: 0 };
    });
  }

  async start(): Promise<void> {
    // ipv6Only: '[::]' serves IPv6 only, so '0.0.0.0' on the same port can serve IPv4.
    const listenOne = (server: NetServer | TlsServer, protocol: 'http' | 'https', l: Listen) =>
      listenOn(server, protocol, protocol, l, {
        ipv6Only: l.host.includes(':'),
        reusePort: this.#o.reusePort === true,
        onError: (err) => this.#o.logger.error('http listener error', { err: String(err) }),
      });
    // One sweep closes idle raw connections: a timer per connection costs more than the whole
    // answer on a connection that carries one request (most clients).
    this.#idleTimer = setInterval(() => this.#sweepIdle(), sweepEvery(this.#idleMs));
    this.#idleTimer.unref();
    const io = this.#o.io ?? 'auto';
    const addon = io === 'node' || this.#o.http.length === 0 ? null : loadHttpBatchAddon();
    if (io === 'batched' && this.#o.http.length > 0 && addon === null)
      throw new Error(
        'http io "batched": the native addon is not built, or was built from older sources (npm rebuild)',
      );
    for (const l of this.#o.http) {
      // The addon binds address literals only; a host name (or a scoped IPv6 address) stays on
      // node:net.
      if (addon !== null && isIP(l.host) !== 0 && !l.host.includes('%')) {
        const b = await opening(
          'http',
          'http',
          l,
          () => new BatchedListener(addon, this, l.host, l.port, { reusePort: this.#o.reusePort === true }),
        );
        const relay = this.#o.relay;
        if (relay != null && this.#batched.length === 0) {
          const busy = httpResponse(200, encodeFailure(Errors.shardUnavailable.message), {
            keepAlive: false,
          });
          try {
            b.relay(relay.clusterId, relay.index, relay.count, relay.secret, busy);
          } catch (err) {
            // Without the relay, crossings go through JavaScript and the bus, as before it.
            this.#o.logger.error('http relay not started', { err: String(err) });
          }
        }
        this.#batched.push(b);
        this.#listeners.push(b);
        continue;
      }
      const s = createNetServer({ noDelay: true }, (sock) => this.#onConnection(sock));
      this.connectionLimit?.guard(s);
      this.#servers.push(s);
      this.#listeners.push(s);
      await listenOne(s, 'http', l);
    }
    if (this.#o.https.length > 0) {
      if (this.#o.tls === null) throw new Error('https listeners need tls certificate and key');
      const ctx = this.#loadTls();
      for (const l of this.#o.https) {
        // A handshake that does not finish is given up after the idle timeout too.
        const s = createTlsServer({ ...ctx, handshakeTimeout: this.#idleMs }, (sock) =>
          this.#onConnection(sock),
        );
        // Counted on the TCP connection, before the handshake costs anything.
        this.connectionLimit?.guard(s);
        s.on('connection', (tcp: Socket) => {
          this.#tlsTcp.add(tcp);
          tcp.on('close', () => this.#tlsTcp.delete(tcp));
        });
        // A failed or timed-out handshake: Node leaves the socket open when this is listened to.
        s.on('tlsClientError', (_err, socket) => socket.destroy());
        this.#servers.push(s);
        this.#listeners.push(s);
        this.#tlsServers.push(s);
        await listenOne(s, 'https', l);
      }
    }
  }

  #loadTls(): SecureContextOptions {
    const t = this.#o.tls!;
    return { cert: readFileSync(t.certFile), key: readFileSync(t.keyFile) };
  }

  /**
   * Re-reads the certificate and key (SIGHUP). Existing connections keep their session; new
   * handshakes use the new certificate. A bad file leaves the old certificate in place.
   */
  reloadTls(): void {
    if (this.#tlsServers.length === 0) return;
    try {
      const ctx = this.#loadTls();
      for (const s of this.#tlsServers) s.setSecureContext(ctx);
      this.#o.logger.info('tls certificate reloaded', {});
    } catch (err) {
      this.#o.logger.error('tls reload failed; keeping the previous certificate', { err: String(err) });
    }
  }

  async stop(): Promise<void> {
    const closes = this.#servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
    if (this.#idleTimer !== null) clearInterval(this.#idleTimer);
    this.#idleTimer = null;
    // The addon closes its listener and every connection it holds.
    for (const b of this.#batched) b.close();
    this.#batched = [];
    for (const c of this.#conns) c.socket.destroy();
    this.#conns.clear();
    // HTTPS connections still in their handshake (or handed over): close() would wait for them.
    for (const tcp of this.#tlsTcp) tcp.destroy();
    this.#web.closeAllConnections();
    this.#web.close();
    await Promise.all(closes);
    this.#servers = [];
    this.#listeners = [];
  }

  isTrusted(address: PeerAddress | null): boolean {
    return this.#proxies.trusts(address);
  }

  #onConnection(socket: RawSocket): void {
    if (socket.destroyed) return; // refused by the connection limit
    const peer = parseIp(socket.remoteAddress ?? '');
    if (peer === null) {
      socket.destroy();
      return;
    }
    this.#attach(socket, peer, this.isTrusted(peer), performance.now());
  }

  #attach(socket: RawSocket, peer: PeerAddress, trusted: boolean, lastActive: number): RawConnection {
    const conn = new RawConnection(this, socket, peer, trusted, lastActive);
    this.#conns.add(conn);
    listen(socket, conn);
    return conn;
  }

  /** See `RawHost.adopt`: a connection leaves the batched addon for a Node socket. */
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
  ): void {
    let socket: RawSocket;
    try {
      socket = new Socket({ fd, readable: true, writable: true });
    } catch (err) {
      closeSync(fd);
      if (counted) this.connectionLimit?.release(peer);
      throw err;
    }
    if (counted) this.connectionLimit?.adopt(socket, peer);
    const conn = this.#attach(socket, peer, trusted, performance.now() - idleForMs);
    for (const w of written) if (w.length > 0) socket.write(w);
    conn.after(stop, rest, 0, answer, keepAlive);
  }

  internalError(err: unknown): Buffer {
    return this.#internal(err);
  }

  /** A raw connection closed. */
  forget(conn: RawConnection): void {
    this.#conns.delete(conn);
  }

  /** Closes raw connections that have been idle (or slow to send a head) for `idleTimeoutMs`. */
  #sweepIdle(): void {
    const cutoff = performance.now() - this.#idleMs;
    for (const c of this.#conns) if (c.lastActive <= cutoff) c.socket.destroy();
    for (const b of this.#batched) b.sweep(this.#idleMs);
  }

  /**
   * The connection leaves the raw path (hand-over to node:http or the WebSocket frontend). Its
   * error listener stays: the caller removes it once the new owner has its own.
   */
  #detach(socket: RawSocket): void {
    const c = unlisten(socket);
    if (c !== undefined) this.#conns.delete(c);
  }

  /**
   * A `GET` with `Upgrade` on one of the WebSocket frontend's paths: the socket leaves the raw
   * path for it directly. Returns false (the caller hands over to node:http) for other paths.
   */
  tryRawUpgrade(
    socket: Socket,
    buf: Buffer,
    off: number,
    pathStart: number,
    pathEnd: number,
    headEnd: number,
  ): boolean {
    const up = this.#o.rawUpgrade;
    if (!up) return false;
    const url = buf.toString('latin1', pathStart, pathEnd);
    if (!up.isPath(url)) return false;
    // The socket leaves this frontend entirely: none of its listeners may outlive the hand-over.
    this.#detach(socket);
    stopIgnoringErrors(socket);
    up.accept(
      url,
      upgradeRequestOfHead('GET', buf.toString('latin1', off, headEnd)),
      socket,
      buf.subarray(headEnd),
    );
    return true;
  }

  /** Passes the connection to node:http with the bytes it has not consumed. */
  handOff(socket: Socket, rest: Buffer): void {
    // The error listener stays: node:http would otherwise see an error with no listener between
    // now and its own.
    this.#detach(socket);
    socket.pause();
    if (rest.length > 0) socket.unshift(rest);
    this.#web.emit('connection', socket);
    socket.resume();
  }

  /**
   * The raw fast path over `buf[off, end)`: answers every complete tracker request in order into
   * `sink` and stops at the first thing it cannot finish synchronously (see `Stop`; the details
   * are in `served`). Shared by Node sockets and the batched addon.
   */
  serve(
    buf: Buffer,
    off: number,
    end: number,
    peer: PeerAddress,
    trusted: boolean,
    sink: ResponseSink,
  ): Stop {
    const served = this.served;
    served.answer = null;
    while (off < end) {
      const head = parseRequestHead(buf, off, end, MAX_HEAD);
      if (head.kind === 'incomplete') {
        served.at = off;
        return Stop.partial;
      }
      if (head.kind === 'error') {
        sink.send(plainError(head.status, head.reason), false);
        served.at = end;
        return Stop.error;
      }
      const kind: Kind =
        head.method === 'GET' && !head.hasBody && !head.upgrade
          ? trackerPath(buf, head.pathStart, head.pathEnd)
          : 0;
      if (kind === 0) {
        served.at = off;
        return Stop.other;
      }
      const keepAlive = head.keepAlive;
      const acceptsGzip = kind === 2 && buf.subarray(off, head.headEnd).includes(GZIP);
      let out: ReturnType<HttpFrontend['answer']>;
      try {
        out = this.answer(
          kind,
          buf,
          head.queryStart,
          head.queryEnd,
          peer,
          trusted,
          head.xForwardedFor,
          acceptsGzip,
          pathPasskey,
        );
      } catch (err) {
        out = this.#internal(err);
      }
      off = head.headEnd;
      if (out instanceof Promise) {
        served.at = off;
        served.answer = out;
        served.keepAlive = keepAlive;
        return Stop.async;
      }
      if (Buffer.isBuffer(out)) sink.answer(out, keepAlive, false, keepAlive && off < end);
      else sink.answer(out.body, keepAlive, out.gzip, keepAlive && off < end);
      if (!keepAlive) {
        served.at = off;
        return Stop.close;
      }
      // A client that pipelines and does not read: answer (and read) no more until what it has
      // is sent. Checked after an answer, so that every pass makes progress; also at the end of
      // the bytes, or requests arriving one per read would each be answered.
      if (sink.full) {
        served.at = off;
        return Stop.full;
      }
    }
    served.at = off;
    return Stop.drained;
  }

  /**
   * Answers one tracker request. `buf[qs, qe)` is the raw query string. Returns the bencoded
   * body (always status 200: clients read `failure reason` from the body). It may throw (a store
   * that throws instead of answering or rejecting): callers answer that request with
   * `internalError`'s failure, and the connection goes on.
   */
  answer(
    kind: Kind,
    buf: Uint8Array,
    qs: number,
    qe: number,
    peer: PeerAddress,
    trusted: boolean,
    xForwardedFor: string | null,
    acceptsGzip: boolean,
    passkey: string | null,
  ): Buffer | { body: Buffer; gzip: boolean } | Promise<Buffer> {
    const o = this.#o;
    const counters = o.service.counters;
    // Reused: the service reads the context synchronously, before any await (as UDP's).
    const ctx = this.#ctx;
    ctx.passkey = passkey;
    ctx.member = null;
    ctx.torrent = null;
    if (kind === 1) {
      const q = parseAnnounce(buf, qs, qe, this.#hashes);
      if (q instanceof TrackerError) {
        counters.failures.http++;
        return encodeFailure(q.message);
      }
      // X-Forwarded-For is read only from trusted proxies, and only the entries they wrote; `ip=`
      // only with trust_ip_param (DESIGN.md checklist): either would otherwise let anyone register,
      // or remove with event=stopped, a peer at a third party's address.
      let address = trusted ? this.#proxies.client(peer, xForwardedFor) : peer;
      if (q.ip !== null && o.trustIpParam === true) {
        const claimed = parseIp(q.ip);
        if (claimed === null) {
          counters.failures.http++;
          return encodeFailure(Errors.invalidIp.message);
        }
        address = claimed;
      }
      const req: AnnounceRequest = {
        infoHash: q.infoHash,
        peerId: q.peerId,
        family: address.family,
        ip: address.bytes,
        port: q.port,
        uploaded: q.uploaded,
        downloaded: q.downloaded,
        left: q.left,
        event: q.event,
        numWant: q.numWant,
        wantPeerIds: !q.compact && !q.noPeerId,
      };
      const r = o.service.announce(req, ctx);
      // A closure only for an asynchronous answer; a synchronous one is encoded at once.
      if (r instanceof Promise)
        return r.then(
          (v) => this.#encodeAnnounce(v, req, peer, address, q.compact, q.noPeerId),
          (err) => this.#internal(err),
        );
      return this.#encodeAnnounce(r, req, peer, address, q.compact, q.noPeerId);
    }
    const hashes = parseScrape(buf, qs, qe, o.maxScrapeHashes);
    if (hashes instanceof TrackerError) {
      counters.failures.http++;
      return encodeFailure(hashes.message);
    }
    // Rate-limited per client: behind a trusted proxy, the one X-Forwarded-For names (as announces).
    if (hashes.length === 0) {
      const client = trusted ? this.#proxies.client(peer, xForwardedFor) : peer;
      return this.#fullScrape(formatIp(client.bytes), acceptsGzip);
    }
    const encode = (entries: ScrapeEntry[] | TrackerError): Buffer => {
      if (entries instanceof TrackerError) {
        counters.failures.http++;
        return encodeFailure(entries.message);
      }
      counters.scrapes.http++;
      return encodeScrape(hashes.map((h, i) => [h, entries[i]] as [Uint8Array, ScrapeEntry]));
    };
    const r = o.service.scrape(hashes, ctx);
    if (r instanceof Promise)
      return r.then(encode, (err) => (err instanceof TrackerError ? encode(err) : this.#internal(err)));
    return encode(r);
  }

  #encodeAnnounce(
    r: AnnounceResult | TrackerError,
    req: AnnounceRequest,
    peer: PeerAddress,
    address: PeerAddress,
    compact: boolean,
    noPeerId: boolean,
  ): Buffer {
    const o = this.#o;
    if (r instanceof TrackerError) {
      o.service.counters.failures.http++;
      o.service.refused(r);
      return encodeFailure(r.message, r.retryLater ? o.service.settings.interval : undefined);
    }
    o.service.counters.announces.http++;
    if (o.logRequests)
      o.logger.info('announce', { remote: formatIp(peer.bytes), event: req.event, left: req.left });
    return encodeAnnounce(r, {
      family: address.family,
      compact,
      noPeerId,
      interval: o.service.settings.interval,
      minInterval: o.service.settings.minInterval,
      externalIp: address.bytes,
      warning: r.warning == null ? null : r.warning.message,
    });
  }

  #internal(err: unknown): Buffer {
    this.#o.service.counters.internalErrors++;
    this.#o.logger.error('internal error answering a tracker request', { err: String(err) });
    return encodeFailure(Errors.internal.message);
  }

  /**
   * Full scrape: off unless configured; rate-limited per address; the encoded body is cached for
   * a few seconds and sent gzip-compressed to clients that accept it.
   */
  #fullScrape(
    remote: string,
    acceptsGzip: boolean,
  ): Buffer | { body: Buffer; gzip: boolean } | Promise<Buffer> {
    const o = this.#o;
    const counters = o.service.counters;
    if (!o.fullScrape) {
      counters.failures.http++;
      return encodeFailure(Errors.fullScrapeDisabled.message);
    }
    const now = o.service.clock.now();
    const refused = () => {
      counters.failures.http++;
      return encodeFailure(Errors.fullScrapeRateLimited.message, o.fullScrapeInterval);
    };
    const allowed = this.#limiter.allow(remote, now);
    if (allowed === false) return refused();
    if (allowed === true) return this.#fullScrapeAllowed(now, acceptsGzip);
    // Asked of another worker: the answer goes out later, as a plain body (no Content-Encoding).
    return allowed.then(
      (ok) => {
        if (!ok) return refused();
        const r = this.#fullScrapeAllowed(now, false);
        return r instanceof Promise || Buffer.isBuffer(r) ? r : r.body;
      },
      (err) => this.#refusal(err instanceof TrackerError ? err : Errors.shardUnavailable),
    );
  }

  /** A refusal's failure, counted (with `retry in` when it says to come back). */
  #refusal(err: TrackerError): Buffer {
    this.#o.service.counters.failures.http++;
    return encodeFailure(err.message, err.retryLater ? this.#o.service.settings.interval : undefined);
  }

  /** A full scrape the rate limit let through: the cached body, or every swarm's row. */
  #fullScrapeAllowed(
    now: number,
    acceptsGzip: boolean,
  ): Buffer | { body: Buffer; gzip: boolean } | Promise<Buffer> {
    const o = this.#o;
    const counters = o.service.counters;
    counters.fullScrapes++;
    const cached = this.#fullScrapeCache;
    const pick = (c: { plain: Buffer; gzip: Buffer }) =>
      acceptsGzip ? { body: c.gzip, gzip: true } : { body: c.plain, gzip: false };
    if (cached !== null && now - cached.at < 5) return pick(cached);
    const build = (all: Iterable<[Uint8Array, ScrapeEntry]>) => {
      const plain = encodeScrape([...all]);
      const c = { at: now, plain, gzip: gzipSync(plain) };
      this.#fullScrapeCache = c;
      return c;
    };
    // A context of its own: policy may judge the rows after an await (an asynchronous store).
    const all = o.service.scrapeAll(requestContext('http', null));
    // An answer that comes later is sent as a plain body (it carries no Content-Encoding).
    if (all instanceof Promise)
      return all.then(
        (a) => build(a).plain,
        (err) => {
          // A store that cannot answer now (Redis away): the refusal announces get.
          return err instanceof TrackerError ? this.#refusal(err) : this.#internal(err);
        },
      );
    return pick(build(all));
  }

  /** node:http path: a tracker request that arrived on a connection already handed over. */
  #onWebRequest(req: IncomingMessage, res: ServerResponse): void {
    const url = Buffer.from(req.url ?? '/', 'latin1');
    const qi = url.indexOf(63);
    const pe = qi >= 0 ? qi : url.length;
    const kind = req.method === 'GET' ? trackerPath(url, 0, pe) : 0;
    if (kind === 0) {
      this.#o.web(req, res);
      return;
    }
    const peer = parseIp(req.socket.remoteAddress ?? '');
    if (peer === null) {
      res.destroy();
      return;
    }
    const xff = req.headers['x-forwarded-for'];
    const gzipOk = /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
    let out: ReturnType<HttpFrontend['answer']>;
    try {
      out = this.answer(
        kind,
        url,
        qi >= 0 ? qi + 1 : pe,
        url.length,
        peer,
        this.isTrusted(peer),
        typeof xff === 'string' ? xff : null,
        gzipOk,
        pathPasskey,
      );
    } catch (err) {
      out = this.#internal(err);
    }
    const send = (r: Buffer | { body: Buffer; gzip: boolean }) => {
      const body = Buffer.isBuffer(r) ? r : r.body;
      const headers: Record<string, string | number> = {
        'content-type': 'text/plain',
        'content-length': body.length,
      };
      if (!Buffer.isBuffer(r) && r.gzip) headers['content-encoding'] = 'gzip';
      res.writeHead(200, headers);
      res.end(body);
    };
    if (out instanceof Promise) out.then(send);
    else send(out);
  }
}

const GZIP = Buffer.from('gzip', 'latin1');

/** How often connections are checked against an idle timeout of `idleMs`. */
/**
 * node:http's timeouts for web requests under http_idle_timeout (`idleMs`): a head must arrive
 * whole within it, a keep-alive connection idles 5 s at most, a request body gets 5 minutes; checked
 * every quarter of it. For the connections the tracker hands over, and the portal's own listeners
 * (portal_listen), which would otherwise keep node:http's defaults (60 s a head, checked every 30 s).
 */
export function webTimeouts(idleMs: number): ServerOptions {
  return {
    keepAliveTimeout: Math.min(5000, idleMs),
    headersTimeout: idleMs,
    requestTimeout: Math.max(300_000, idleMs),
    connectionsCheckingInterval: sweepEvery(idleMs),
  };
}

function sweepEvery(idleMs: number): number {
  return Math.max(50, Math.min(5000, idleMs / 4));
}

/** A plain HTTP error for a head the raw path cannot parse; the connection then ends. */
function plainError(status: number, reason: string): Buffer {
  const text = `${reason}\n`;
  return Buffer.from(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: text/plain\r\nContent-Length: ${text.length}\r\nConnection: close\r\n\r\n${text}`,
    'latin1',
  );
}
