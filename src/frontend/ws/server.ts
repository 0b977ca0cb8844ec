import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import { parseIp } from '../../core/address.ts';
import { binaryString } from '../../core/bytes.ts';
import type { ConnectionLimit } from '../../core/connection-limit.ts';
import { Errors, TrackerError } from '../../core/errors.ts';
import { listenOn } from '../../core/listen.ts';
import type { Logger } from '../../core/log.ts';
import { AnnounceEvent, type AnnounceRequest, type ScrapeEntry } from '../../core/types.ts';
import {
  encodeAnnounceResponse,
  encodeFailure,
  encodeScrapeResponse,
  WS_LIMITS,
  type WsAnnounce,
  type WsLimits,
  WsReasons,
} from '../../protocol/websocket/codec.ts';
import { parseClientFrame } from '../../protocol/websocket/scan.ts';
import { type FullScrapeGate, FullScrapeLimiter } from '../../tracker/full-scrape.ts';
import { type RequestContext, requestContext, type TrackerService } from '../../tracker/service.ts';
import { handshakeResponse, RawWebSocket, type UpgradeRequest, upgradeRequestOf } from './raw-websocket.ts';
import {
  type RtcConnection,
  type RtcCounts,
  type RtcScrapeRow,
  type RtcShards,
  type WebRtcStats,
  WebRtcSwarms,
} from './webrtc-swarms.ts';

export interface WsFrontendOptions {
  /** Clock, counters and `numWant` clamping. WebRTC peers live in this frontend's own swarms. */
  service: TrackerService;
  /** Its own listeners (may be empty when the HTTP listener hands upgrades over). */
  listen: { host: string; port: number }[];
  /** Given: the own listeners speak `wss://`. */
  tls?: { cert: Buffer; key: Buffer } | null;
  logger: Logger;
  /** Largest message in bytes (default 64 KiB): a longer one gets a failure and close 1009. */
  maxPayload?: number;
  /**
   * A socket that has not announced for this long is closed (default: `peerTimeout`, when its
   * peers expire). Keep it above `interval`: a WebTorrent client is silent between announces.
   * Only an announce that was answered counts: scrapes, answers, pongs and refused announces
   * keep no socket open.
   */
  idleTimeoutMs?: number;
  /**
   * A socket that has not announced this long after it opened is closed (default 30 000); the own
   * listeners give an upgrade request as long to arrive, and a message begun must arrive whole
   * as soon (1008 "message too slow": its bytes are held until then). WebTorrent announces as
   * it connects.
   */
  firstAnnounceTimeoutMs?: number;
  /**
   * A socket that has sent nothing for this long is pinged, and dropped when it has sent nothing
   * for twice as long: a client that vanished (no FIN) is found before its idle timeout, and its
   * peers stop being offered (default 60 000; 0: no pings). Browsers answer pings by themselves.
   */
  pingIntervalMs?: number;
  /** Seconds between announces, sent to clients. */
  interval: number;
  /** Seconds a client must wait between announces, sent to clients. */
  minInterval: number;
  /** Most offers in one announce (default: the codec's 20). */
  maxOffers?: number;
  /** Scrape without `info_hash` lists every WebRTC swarm (default false: refused). */
  fullScrape?: boolean;
  /** Seconds one address (IPv4, or IPv6 /64) waits between full scrapes (default 60), as over HTTP. */
  fullScrapeInterval?: number;
  /** Whose limit a full scrape is counted against (default this process's; workers: the tracker's). */
  fullScrapeGate?: FullScrapeGate;
  /**
   * The policy steps for an announce (the composition root connects the service's steps here).
   * `req.ip`/`req.port` are the socket's remote endpoint; `req.numWant` is already clamped.
   * Not called for an answer: it changes no state, and only a peer that got the offer may send it.
   */
  authorize?: (
    req: AnnounceRequest,
    ctx: RequestContext,
  ) => TrackerError | null | Promise<TrackerError | null>;
  /** The policy steps for a scrape (full scrape included, with an empty list). */
  authorizeScrape?: (infoHashes: readonly Uint8Array[], ctx: RequestContext) => TrackerError | null;
  /**
   * Keep the torrents each socket announced, so that `revalidate()` (after a policy reload) can
   * close the sockets that lost access to one: whitelist and private modes, where access is
   * withdrawn (a revoked grant, a disabled member, a reset passkey, a hash taken off a list).
   */
  revalidate?: boolean;
  /**
   * A socket that closes frees its peers' places under the private-community limits at once (a
   * `stopped` for each, through `authorize`), not when they expire: set where a limit applies, so
   * that a member who reloads a tab is not locked out for `peer_timeout`.
   */
  freeOnClose?: boolean;
  /** Seconds after its last announce that a WebRTC peer expires (default 2 × interval). */
  peerTimeout?: number;
  /** Most torrents one socket may announce (default 100). */
  maxSwarmsPerSocket?: number;
  /** Log every announce and scrape (debugging only: costly). */
  logRequests?: boolean;
  /** SO_REUSEPORT on the listeners: several worker processes bind the same address (issue #13). */
  reusePort?: boolean;
  /** max_connections_per_ip for the own listeners, shared with the HTTP(S) ones (null: none). */
  connectionLimit?: ConnectionLimit | null;
  /**
   * With workers: the WebRTC swarms are sharded by info hash, this frontend's own swarms are its
   * worker's shard, and the rest is asked of `shards` (src/cluster/webrtc-shard.ts).
   */
  shards?: RtcShards;
}

export interface WsStats extends WebRtcStats {
  sockets: number;
}

const EMPTY_IP = new Uint8Array(4);
/** Close codes (RFC 6455 §7.4.1). */
const GOING_AWAY = 1001;
const POLICY = 1008;
const TOO_BIG = 1009;
/** Most torrents `held` per socket (above the default `maxSwarmsPerSocket`, 100). */
const MAX_HELD = 256;

/** One socket. It is also the socket's connection in the WebRTC swarms (one object less each). */
interface Client extends RtcConnection {
  ws: RawWebSocket;
  /** Reused per message; `member`/`torrent` are reset each time (policy fills them). */
  ctx: RequestContext;
  family: 4 | 6;
  /** The remote address as the socket reports it (parsed per announce: no bytes kept per socket). */
  remote: string;
  port: number;
  /** Date.now() of the last announce answered, or of the opening until there is one. */
  since: number;
  announced: boolean;
  /**
   * With `revalidate` or `freeOnClose`: the info hash and peer id (40 bytes, a binary string) of
   * each peer this socket announced and was answered for, in this worker's swarms or another's,
   * until it stops it; null until its first.
   */
  held: string[] | null;
  /** Date.now() when the heartbeat last saw input from it (`ws.received`), and whether pinged since. */
  heardAt: number;
  pinged: boolean;
}

/**
 * Records an answered announce in `c.held` (`revalidate`, `freeOnClose`): added once, removed on
 * `stopped`.
 */
function hold(c: Client, msg: WsAnnounce): void {
  const key = binaryString(msg.infoHash) + binaryString(msg.peerId);
  const held = c.held;
  const at = held === null ? -1 : held.indexOf(key);
  if (msg.event === AnnounceEvent.stopped) {
    if (at >= 0) held!.splice(at, 1);
  } else if (held === null) c.held = [key];
  else if (at < 0) {
    // Bounded: a torrent the socket announced once and left to expire is forgotten first.
    if (held.length >= MAX_HELD) held.shift();
    held.push(key);
  }
}

function destroyOnEnd(this: Duplex): void {
  this.destroy();
}

/**
 * The passkey of a tracker WebSocket path, '' when the path has none, or null when the path is
 * not one: `/`, `/announce`, `/announce/<passkey>`, `/<passkey>/announce` (query ignored).
 * Plain `/` is accepted because many magnet links carry `wss://host:port` with no path.
 */
export function wsPasskey(url: string): string | null {
  const q = url.indexOf('?');
  const path = q >= 0 ? url.slice(0, q) : url;
  if (path === '/' || path === '/announce' || path === '/announce/') return '';
  const parts = path.split('/');
  if (parts.length !== 3 || parts[0] !== '' || parts[1].length === 0 || parts[2].length === 0) return null;
  if (parts[1] === 'announce' && parts[2] !== 'announce') return parts[2];
  if (parts[2] === 'announce' && parts[1] !== 'announce') return parts[1];
  return null;
}

/**
 * The WebTorrent tracker over WebSocket (DESIGN.md "WS"): browsers announce with SDP offers, the
 * tracker relays each offer to another peer of the swarm and relays the answer back. Text frames
 * only, parsed by `protocol/websocket/scan.ts` (an announce straight from the frame's bytes, its
 * offers relayed as the client wrote them) or else by `codec.ts`; peers kept in `WebRtcSwarms`,
 * apart from the TCP/UDP store.
 *
 * Sockets reach it from its own listeners (`listen`, `tls`) or from the HTTP listener through
 * `handleUpgrade`. Call `start()` in either case: it also starts the idle and expiry timers.
 *
 * A malformed or oversized message gets a `failure reason` and the socket is closed (1008 or
 * 1009): a real client never sends one. A refusal (policy, peer id in use) gets a
 * `failure reason` and the socket stays open.
 */
export class WsFrontend {
  #o: WsFrontendOptions;
  #swarms: WebRtcSwarms;
  /** Null with one worker: every swarm is in `#swarms`, and that costs one test per message. */
  #shards: RtcShards | null;
  #servers: Server[] = [];
  #clients = new Set<Client>();
  #limits: WsLimits;
  #maxPayload: number;
  #idleTimeoutMs: number;
  #firstAnnounceTimeoutMs: number;
  #pingIntervalMs: number;
  #idleTimer: NodeJS.Timeout | null = null;
  #sweepTimer: NodeJS.Timeout | null = null;
  #stopped = false;
  #fullScrapes: FullScrapeGate;

  constructor(opts: WsFrontendOptions) {
    this.#o = opts;
    this.#maxPayload = opts.maxPayload ?? 64 * 1024;
    this.#idleTimeoutMs = opts.idleTimeoutMs ?? (opts.peerTimeout ?? 2 * opts.interval) * 1000;
    this.#firstAnnounceTimeoutMs = opts.firstAnnounceTimeoutMs ?? 30_000;
    this.#pingIntervalMs = opts.pingIntervalMs ?? 60_000;
    this.#fullScrapes = opts.fullScrapeGate ?? new FullScrapeLimiter(opts.fullScrapeInterval ?? 60);
    this.#limits = {
      maxBytes: this.#maxPayload,
      maxOffers: opts.maxOffers ?? WS_LIMITS.maxOffers,
    };
    this.#swarms = new WebRtcSwarms({
      peerTimeout: opts.peerTimeout ?? 2 * opts.interval,
      maxSwarmsPerConnection: opts.maxSwarmsPerSocket,
    });
    this.#shards = opts.shards ?? null;
    this.#shards?.attach(this.#swarms);
    if (this.#idleTimeoutMs < opts.interval * 1000)
      opts.logger.warn('ws idle timeout is shorter than the announce interval: quiet clients get closed', {
        idleTimeoutMs: this.#idleTimeoutMs,
        interval: opts.interval,
      });
  }

  /** Own listeners' bound addresses, in listen order (useful with port 0). */
  addresses(): { protocol: 'ws' | 'wss'; host: string; port: number }[] {
    const protocol = this.#o.tls ? 'wss' : 'ws';
    return this.#servers.map((s) => {
      const a = s.address();
      if (a && typeof a === 'object') return { protocol, host: a.address, port: a.port };
      return { protocol, host: '', port: 0 };
    });
  }

  async start(): Promise<void> {
    this.#stopped = false;
    this.#startTimers();
    for (const l of this.#o.listen) {
      const onRequest = (_req: IncomingMessage, res: ServerResponse) => {
        res.writeHead(426, { upgrade: 'websocket', connection: 'close', 'content-type': 'text/plain' });
        res.end('WebTorrent tracker: connect with a WebSocket\n');
      };
      // An upgrade request gets as long as a socket has to announce; node:http answers one that
      // is late with 408 and one with a head over its 16 KiB with 431 (no 'clientError' here).
      const first = this.#firstAnnounceTimeoutMs;
      const timeouts = {
        headersTimeout: first,
        requestTimeout: Math.max(first, 300_000),
        connectionsCheckingInterval: Math.min(Math.max(Math.floor(first / 4), 20), 30_000),
      };
      const s = this.#o.tls
        ? createHttpsServer({ cert: this.#o.tls.cert, key: this.#o.tls.key, ...timeouts }, onRequest)
        : createHttpServer(timeouts, onRequest);
      this.#o.connectionLimit?.guard(s);
      s.on('upgrade', (req, socket, head) => this.handleUpgrade(req, socket, head));
      // A failed or timed-out handshake: Node leaves the socket open when this is listened to.
      s.on('tlsClientError', (_err, socket) => socket.destroy());
      this.#servers.push(s);
      // ipv6Only: '[::]' serves IPv6 only, so '0.0.0.0' on the same port can serve IPv4.
      await listenOn(s, this.#o.tls ? 'wss' : 'ws', 'ws', l, {
        ipv6Only: l.host.includes(':'),
        reusePort: this.#o.reusePort === true,
        onError: (err) => this.#o.logger.error('ws listener error', { err: String(err) }),
      });
    }
  }

  /** Closes every socket (1001) and the own listeners; later upgrades are refused (503). */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#idleTimer) clearInterval(this.#idleTimer);
    if (this.#sweepTimer) clearInterval(this.#sweepTimer);
    this.#idleTimer = null;
    this.#sweepTimer = null;
    const closes = this.#servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
    const clients = [...this.#clients];
    const gone = clients.map((c) => new Promise<void>((resolve) => c.ws.addCloseListener(resolve)));
    for (const c of clients) c.ws.close(GOING_AWAY, 'server shutting down');
    // A client that does not answer the close handshake promptly is cut off.
    const grace = setTimeout(() => {
      for (const c of clients) c.ws.terminate();
    }, 1000);
    await Promise.all(gone);
    clearTimeout(grace);
    for (const s of this.#servers) s.closeAllConnections();
    await Promise.all(closes);
    this.#servers = [];
  }

  /**
   * Takes over an HTTP `Upgrade: websocket` request (from the own listeners or the HTTP
   * frontend). The path must be `/`, `/announce` or `/announce/<passkey>`; anything else gets
   * 404. `ws` answers a malformed handshake with 400 itself.
   */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.accept(req.url ?? '/', upgradeRequestOf(req), socket, head);
  }

  /** Whether `url` is a tracker WebSocket path (the HTTP fast path asks before handing over). */
  isTrackerPath(url: string): boolean {
    return wsPasskey(url) !== null;
  }

  /**
   * Takes over a connection whose upgrade request has been read (by node:http, or by the HTTP
   * frontend's raw path, which saves the ~1 KB per socket that node:http's hand-over leaves
   * behind). `head` holds bytes that arrived after the request.
   */
  accept(url: string, h: UpgradeRequest, socket: Duplex, head: Buffer): void {
    socket.on('error', () => {});
    // A client that goes away with a FIN (a closed tab, `terminate()`) is gone: node:http's
    // sockets allow half-open connections, which would otherwise linger until the idle timeout.
    socket.on('end', destroyOnEnd);
    const passkey = wsPasskey(url);
    if (this.#stopped || passkey === null) {
      const status = this.#stopped ? '503 Service Unavailable' : '404 Not Found';
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      return;
    }
    const hs = handshakeResponse(h);
    if (!hs.ok) {
      socket.end(hs.response);
      return;
    }
    try {
      socket.write(hs.response);
      const raw = socket as Duplex & { setNoDelay?: (on: boolean) => void };
      raw.setNoDelay?.(true);
      this.#onConnection(
        new RawWebSocket(socket, head, this.#maxPayload),
        socket,
        passkey === '' ? null : passkey,
      );
    } catch (err) {
      this.#internal(err);
      socket.destroy();
    }
  }

  stats(): WsStats {
    return { sockets: this.#clients.size, ...this.#swarms.stats() };
  }

  /**
   * After a policy reload: each socket whose announces the new policy refuses for a torrent it
   * holds (a revoked grant, a disabled or banned member, a reset passkey, a hash off the allow
   * list) is told why and closed (1008), so that its peers leave every swarm (every worker's)
   * and it is offered no more SDP; otherwise it would be until its peers expired (peer_timeout),
   * answering offers from the peers of a torrent it may no longer have. A client that reconnects
   * is judged announce by announce, as always. Returns the sockets closed.
   */
  revalidate(): number {
    const check = this.#o.authorizeScrape;
    if (check === undefined || this.#o.revalidate !== true) return 0;
    let closed = 0;
    for (const c of this.#clients) {
      const held = c.held;
      if (held === null || c.ws.readyState !== c.ws.OPEN) continue;
      // A context of its own: the socket's is reused by its messages, and the member is looked up anew.
      const ctx = requestContext('ws', c.ctx.passkey);
      for (let i = 0; i < held.length; i++) {
        const infoHash = Buffer.from(held[i], 'latin1').subarray(0, 20);
        const refused = check([infoHash], ctx);
        if (refused === null) continue;
        this.#o.service.counters.failures.ws++;
        c.ws.send(encodeFailure(refused.message, { action: 'announce', infoHash }));
        c.ws.close(POLICY, refused.message);
        // Out of the swarms now, not when the client completes the close (up to a second later).
        this.#leaveAll(c);
        closed++;
        break;
      }
    }
    return closed;
  }

  /** Expires WebRTC peers now (the timer does it every so often). Returns the number removed. */
  sweep(): number {
    const n = this.#swarms.sweep(this.#o.service.clock.now());
    this.#shards?.swept();
    return n;
  }

  #startTimers(): void {
    if (this.#idleTimer === null) {
      const shortest = Math.min(
        this.#idleTimeoutMs,
        this.#firstAnnounceTimeoutMs,
        this.#pingIntervalMs > 0 ? this.#pingIntervalMs : Number.POSITIVE_INFINITY,
      );
      const every = Math.min(Math.max(Math.floor(shortest / 4), 20), 15_000);
      this.#idleTimer = setInterval(() => this.#closeIdle(), every);
      this.#idleTimer.unref();
    }
    if (this.#sweepTimer === null) {
      this.#sweepTimer = setInterval(() => {
        try {
          this.sweep();
        } catch (err) {
          this.#internal(err);
        }
      }, 30_000);
      this.#sweepTimer.unref();
    }
  }

  /**
   * Every few seconds, each socket: one that has not announced in time is closed (1001, "idle
   * timeout", or "no announce" when it never did), and one whose message is late to arrive whole
   * (1008, "message too slow"); with pings on, one that has sent nothing for a ping interval is
   * pinged, and one silent for two is dropped (it cannot take a close frame). A socket costs
   * nothing per chunk for this: `ws.received` is a flag the sweep clears.
   */
  #closeIdle(): void {
    const now = Date.now();
    const first = now - this.#firstAnnounceTimeoutMs;
    const idle = now - this.#idleTimeoutMs;
    const ping = this.#pingIntervalMs;
    for (const c of this.#clients) {
      const ws = c.ws;
      if (ws.readyState !== ws.OPEN) continue;
      if (c.since < (c.announced ? idle : first)) {
        ws.close(GOING_AWAY, c.announced ? 'idle timeout' : 'no announce');
        continue;
      }
      const partial = ws.partialSince;
      if (partial !== 0 && partial < first) {
        ws.close(POLICY, 'message too slow');
        continue;
      }
      if (ping === 0) continue;
      if (ws.received) {
        ws.received = false;
        c.heardAt = now;
        c.pinged = false;
      } else if (now - c.heardAt >= 2 * ping) ws.terminate();
      else if (now - c.heardAt >= ping && !c.pinged) {
        c.pinged = true;
        ws.ping();
      }
    }
  }

  #onConnection(
    ws: RawWebSocket,
    socket: Duplex & { remoteAddress?: string; remotePort?: number },
    passkey: string | null,
  ): void {
    const addr = parseIp(socket.remoteAddress ?? '');
    if (addr === null) {
      ws.terminate();
      return;
    }
    // Upgrades handed over before start(): the timers still run.
    if (!this.#stopped) this.#startTimers();
    const now = Date.now();
    const c: Client = {
      ws,
      joined: [],
      elsewhere: 0,
      ctx: requestContext('ws', passkey),
      family: addr.family,
      remote: socket.remoteAddress ?? '',
      port: socket.remotePort ?? 0,
      since: now,
      announced: false,
      held: null,
      heardAt: now,
      pinged: false,
    };
    this.#clients.add(c);
    ws.onMessage = (data, isBinary) => this.#onMessage(c, data, isBinary);
    // Announced longer than the limit: answered and closed without reading the payload.
    ws.onTooBig = () => this.#reject(c, WsReasons.tooLarge, TOO_BIG);
    // Protocol errors (bad frame, invalid UTF-8): RawWebSocket closes the socket itself.
    ws.addCloseListener(() => {
      this.#clients.delete(c);
      this.#leaveAll(c);
      if (this.#o.freeOnClose === true && c.held !== null)
        for (const key of c.held) this.#free(c, Buffer.from(key, 'latin1'));
    });
  }

  /**
   * A closed socket's peer (`key`: info hash and peer id) frees its place under the limits: a
   * `stopped` through `authorize` (counters that went backwards credit nothing: the bytes since
   * its last announce are lost, as for any peer that vanishes; `left` is not 0, so no snatch).
   */
  #free(c: Client, key: Buffer): void {
    const authorize = this.#o.authorize;
    if (authorize === undefined) return;
    const req: AnnounceRequest = {
      infoHash: key.subarray(0, 20),
      peerId: key.subarray(20, 40),
      family: c.family,
      ip: parseIp(c.remote)?.bytes ?? EMPTY_IP,
      port: c.port,
      uploaded: 0,
      downloaded: 0,
      left: 1,
      event: AnnounceEvent.stopped,
      numWant: 0,
      wantPeerIds: false,
    };
    try {
      const r = authorize(req, requestContext('ws', c.ctx.passkey));
      if (r instanceof Promise) r.catch((err) => this.#internal(err));
    } catch (err) {
      this.#internal(err);
    }
  }

  /** All of a socket's peers leave all their swarms at once (other workers' too). Idempotent. */
  #leaveAll(c: Client): void {
    this.#swarms.disconnect(c);
    this.#shards?.closed(c);
  }

  #reject(c: Client, reason: string, code: number): void {
    this.#o.service.counters.failures.ws++;
    c.ws.send(encodeFailure(reason));
    c.ws.close(code, reason);
  }

  #onMessage(c: Client, data: Buffer, isBinary: boolean): void {
    if (c.ws.readyState !== c.ws.OPEN) return; // already closing: what follows is ignored
    if (isBinary) {
      this.#reject(c, WsReasons.notText, POLICY);
      return;
    }
    if (data.length > this.#maxPayload) {
      this.#reject(c, WsReasons.tooLarge, TOO_BIG);
      return;
    }
    const r = parseClientFrame(data, this.#limits);
    if (!r.ok) {
      this.#reject(c, r.reason, r.reason === WsReasons.tooLarge ? TOO_BIG : POLICY);
      return;
    }
    const service = this.#o.service;
    const counters = service.counters;
    const ctx = c.ctx;
    ctx.member = null;
    ctx.torrent = null;
    try {
      const msg = r.msg;
      if (msg.action === 'scrape') {
        const refused = this.#o.authorizeScrape?.(msg.infoHashes, ctx) ?? null;
        if (refused !== null) {
          counters.failures.ws++;
          c.ws.send(encodeFailure(refused.message, { action: 'scrape' }));
          return;
        }
        const shards = this.#shards;
        const hashes = msg.infoHashes;
        if (hashes.length === 0) {
          if (!this.#o.fullScrape) {
            counters.failures.ws++;
            c.ws.send(encodeFailure(Errors.fullScrapeDisabled.message, { action: 'scrape' }));
            return;
          }
          // A full scrape costs O(swarms) and a socket can ask for one per frame: per address,
          // not per socket, so opening more sockets does not help (nor more workers: the gate).
          const allowed = this.#fullScrapes.allow(c.remote, service.clock.now());
          if (allowed === false) {
            this.#fullScrapeRefused(c, Errors.fullScrapeRateLimited);
            return;
          }
          if (allowed === true) this.#fullScrape(c, ctx.passkey);
          else
            allowed.then(
              (ok) =>
                ok
                  ? this.#fullScrape(c, ctx.passkey)
                  : this.#fullScrapeRefused(c, Errors.fullScrapeRateLimited),
              (err) =>
                this.#fullScrapeRefused(c, err instanceof TrackerError ? err : Errors.shardUnavailable),
            );
        } else {
          const entries = shards === null ? this.#swarms.scrape(hashes) : shards.scrape(hashes);
          const text = (e: ScrapeEntry[]) =>
            encodeScrapeResponse(hashes.map((infoHash, i) => ({ infoHash, ...e[i] })));
          if (entries instanceof Promise) this.#later(c, 'scrape', entries.then(text));
          else c.ws.send(text(entries));
        }
        counters.scrapes.ws++;
        if (this.#o.logRequests) this.#o.logger.info('ws scrape', { hashes: hashes.length });
        return;
      }
      const now = service.clock.now();
      // With workers, another worker's swarm is that worker's to update (this.#shards).
      const shards = this.#shards;
      const here = shards === null || shards.owns(msg.infoHash);
      if (msg.answer !== undefined) {
        if (here) this.#swarms.answer(c, msg, now);
        else shards.answer(c, msg, now);
        return;
      }
      const numWant = service.numWant(msg.numwant ?? -1);
      const authorize = this.#o.authorize;
      if (authorize === undefined) {
        this.#join(c, msg, numWant, now, undefined);
        return;
      }
      const req: AnnounceRequest = {
        infoHash: msg.infoHash,
        peerId: msg.peerId,
        family: c.family,
        ip: parseIp(c.remote)?.bytes ?? EMPTY_IP,
        port: c.port,
        uploaded: msg.uploaded,
        downloaded: msg.downloaded,
        left: msg.left,
        event: msg.event,
        numWant,
        wantPeerIds: false,
      };
      const refused = authorize(req, ctx);
      if (!(refused instanceof Promise)) {
        this.#authorized(c, msg, req, refused, now);
        return;
      }
      // The verdict comes later (a limit counted beyond this process: the owner of the torrent, the
      // member's home worker, Redis). The socket's next messages wait for it, so that its announces
      // are answered in order and it has one verdict pending at most.
      c.ws.hold();
      refused
        .then((r) => {
          if (c.ws.readyState === c.ws.OPEN) this.#authorized(c, msg, req, r, now);
          // Closed meanwhile: its peers left the swarms already; a place granted is freed.
          else if (r === null && this.#o.freeOnClose === true)
            this.#free(c, Buffer.concat([msg.infoHash, msg.peerId]));
        })
        .catch((err) => {
          this.#internal(err);
          c.ws.send(encodeFailure(Errors.internal.message));
        })
        .finally(() => c.ws.release());
    } catch (err) {
      this.#internal(err);
      c.ws.send(encodeFailure(Errors.internal.message));
    }
  }

  /** An announce that policy and accounting judged: refused, or into its swarm. */
  #authorized(
    c: Client,
    msg: WsAnnounce,
    req: AnnounceRequest,
    refused: TrackerError | null,
    now: number,
  ): void {
    if (refused !== null) {
      this.#o.service.counters.failures.ws++;
      c.ws.send(encodeFailure(refused.message, { action: 'announce', infoHash: msg.infoHash }));
      return;
    }
    // A rule may have withheld the peer list (peer_list_limit): no offers go out then. A rule's
    // `warning message` (issue #16) is on the socket's context until its next message.
    this.#join(c, msg, req.numWant, now, c.ctx.warning?.message);
  }

  /** The announce in its swarm (this worker's, or another's with workers), then the response. */
  #join(c: Client, msg: WsAnnounce, numWant: number, now: number, warning: string | undefined): void {
    const shards = this.#shards;
    if (shards === null || shards.owns(msg.infoHash))
      this.#announced(c, msg, this.#swarms.announce(c, msg, numWant, now), warning);
    else
      shards
        .announce(c, msg, numWant, now)
        .then((res) => this.#announced(c, msg, res, warning))
        .catch((err) => {
          this.#internal(err);
          c.ws.send(encodeFailure(Errors.internal.message));
        });
  }

  /** The response to an announce the swarms took (or refused). */
  #announced(c: Client, msg: WsAnnounce, res: RtcCounts | TrackerError, warning?: string): void {
    // The verdict took (or freed) the peer's place whatever the swarm answers: the socket's close
    // frees it, and a socket closed while another worker's swarm answered frees it now.
    if (this.#o.revalidate === true || this.#o.freeOnClose === true) {
      if (c.ws.readyState !== RawWebSocket.CLOSED) hold(c, msg);
      else if (this.#o.freeOnClose === true && msg.event !== AnnounceEvent.stopped)
        this.#free(c, Buffer.concat([msg.infoHash, msg.peerId]));
    }
    if (res instanceof TrackerError) {
      this.#o.service.counters.failures.ws++;
      this.#o.service.refused(res);
      c.ws.send(encodeFailure(res.message, { action: 'announce', infoHash: msg.infoHash }));
      return;
    }
    this.#o.service.counters.announces.ws++;
    c.since = Date.now();
    c.announced = true;
    if (this.#o.logRequests)
      this.#o.logger.info('ws announce', { event: msg.event, offers: msg.offers?.length ?? 0 });
    c.ws.send(
      encodeAnnounceResponse({
        infoHash: msg.infoHash,
        complete: res.complete,
        incomplete: res.incomplete,
        interval: this.#o.interval,
        minInterval: this.#o.minInterval,
        warning,
      }),
    );
  }

  /**
   * Sends a message that waits for other workers (with workers); a refusal (an owner down)
   * becomes a `failure reason`, anything else an internal error.
   */
  /** A full scrape the rate limit let through: every WebRTC swarm policy answers a scrape for now. */
  #fullScrape(c: Client, passkey: string | null): void {
    this.#o.service.counters.fullScrapes++;
    // Only the swarms policy answers a scrape for now (a hash off the allow list, or on the
    // deny list, keeps its swarm until its peers expire).
    const judge = requestContext('ws', passkey);
    const check = this.#o.authorizeScrape;
    const listed = (rows: RtcScrapeRow[]) =>
      encodeScrapeResponse(
        check === undefined ? rows : rows.filter((r) => check([r.infoHash], judge) === null),
      );
    const shards = this.#shards;
    if (shards === null) c.ws.send(listed(this.#swarms.scrapeAll()));
    else this.#later(c, 'scrape', shards.scrapeAll().then(listed));
  }

  #fullScrapeRefused(c: Client, refusal: TrackerError): void {
    this.#o.service.counters.failures.ws++;
    c.ws.send(encodeFailure(refusal.message, { action: 'scrape' }));
  }

  #later(c: Client, action: 'scrape', text: Promise<string>): void {
    text.then(
      (t) => c.ws.send(t),
      (err) => {
        if (!(err instanceof TrackerError)) this.#internal(err);
        const refusal = err instanceof TrackerError ? err : Errors.internal;
        this.#o.service.counters.failures.ws++;
        c.ws.send(encodeFailure(refusal.message, { action }));
      },
    );
  }

  #internal(err: unknown): void {
    this.#o.service.counters.internalErrors++;
    this.#o.logger.error('internal error answering a ws request', {
      err: err instanceof Error ? (err.stack ?? err.message) : String(err),
    });
  }
}
