import { randomBytes } from 'node:crypto';
import { binaryString } from '../../core/bytes.ts';
import { Errors, TrackerError } from '../../core/errors.ts';
import type { Logger } from '../../core/log.ts';
import { AnnounceEvent, type ScrapeEntry } from '../../core/types.ts';
import {
  type RtcConnection,
  type RtcCounts,
  type RtcScrapeRow,
  type RtcShards,
  type WebRtcStats,
  WsSwarmErrors,
} from '../../frontend/ws/webrtc-swarms.ts';
import {
  encodeAnswer,
  jsonBinaryBytes,
  OFFER_END,
  OFFER_KEY,
  offerHead,
  type WsAnnounce,
} from '../../protocol/websocket/codec.ts';
import { duplicateRedis } from './connect.ts';
import { BUCKETS, bucketOf, byBucket, eachBucket } from './records.ts';
import type { RedisSwarmStore } from './redis-store.ts';
import {
  INSTANCE_BYTES,
  type RtcRelayMessage,
  RtcRelayType,
  readRtcBatch,
  writeRtcBatch,
  writeRtcMessage,
} from './rtc-messages.ts';
import {
  RTC_ANNOUNCE,
  RTC_BEAT,
  RTC_DROP_INSTANCE,
  RTC_LEAVE,
  RTC_SCRAPE,
  RTC_SCRAPE_PAGE,
  RTC_SWEEP,
} from './rtc-scripts.ts';

/**
 * Announces one socket may have sent to Redis and not had answered: past it, the next gets the
 * retryable "tracker busy" at once (a socket that floods cannot queue calls without end).
 */
export const MAX_IN_FLIGHT = 256;
/** Bytes queued for one other instance in one turn of the event loop; past it, messages are dropped. */
export const MAX_QUEUED_BYTES = 1024 * 1024;
/** Bytes of PUBLISH calls in flight; past it, messages are dropped (Redis is not keeping up). */
export const MAX_PUBLISHING_BYTES = 16 * 1024 * 1024;

/**
 * How instances reach each other (the thin transport, STYLE.md example 11): a payload for one
 * instance, delivered at most once (a lost offer costs a browser one connection attempt, as an
 * offer to a peer that has gone does).
 */
export interface RtcTransport {
  /** This instance's payloads arrive here. */
  onMessage: (payload: Buffer) => void;
  publish(to: Buffer, payload: Buffer): Promise<unknown>;
  /** Resolves once this instance's payloads can arrive. */
  subscribed(): Promise<void>;
  /** Null while payloads can arrive; otherwise what is wrong (for `/health`). */
  health(): string | null;
  close(): Promise<void>;
}

/**
 * Redis pub/sub: one channel per instance, `<prefix>:rtc:<instance id in hex>`, plain PUBLISH on
 * one server and on Cluster alike (on Cluster the bus carries a message to every node: measured
 * in docs/redis.md; SPUBLISH would keep it on one shard but ties the subscriber to slot
 * migrations). The subscriber is a connection of its own (the store's client's duplicate), which
 * subscribes again each time it is ready (after a restart of Redis too).
 */
export class RedisPubSub implements RtcTransport {
  onMessage: (payload: Buffer) => void = () => {};
  readonly #store: RedisSwarmStore;
  readonly #sub: RedisSwarmStore['client'];
  readonly #prefix: string;
  readonly #subscribed: Promise<void>;

  constructor(store: RedisSwarmStore, instance: Buffer) {
    this.#store = store;
    this.#prefix = `${store.prefix}:rtc:`;
    const mine = this.#channel(instance);
    this.#sub = duplicateRedis(store.client);
    this.#sub.on('error', () => {});
    this.#sub.on('messageBuffer', (_channel: Buffer, payload: Buffer) => this.onMessage(payload));
    let done: () => void = () => {};
    this.#subscribed = new Promise((resolve) => {
      done = resolve;
    });
    const subscribe = () =>
      void this.#sub.subscribe(mine).then(
        () => done(),
        () => {},
      );
    this.#sub.on('ready', subscribe);
    if (this.#sub.status === 'ready') subscribe();
  }

  subscribed(): Promise<void> {
    return this.#subscribed;
  }

  health(): string | null {
    const status = this.#sub.status;
    return status === 'ready' ? null : `redis pub/sub ${status}`;
  }

  #channel(instance: Buffer): string {
    return this.#prefix + instance.toString('hex');
  }

  publish(to: Buffer, payload: Buffer): Promise<unknown> {
    return this.#store.call(this.#store.client.publish(this.#channel(to), payload));
  }

  async close(): Promise<void> {
    this.#sub.disconnect();
  }
}

interface Scripts {
  heraldRtcAnnounceBuffer(...args: (Buffer | string | number)[]): Promise<(number | Buffer)[]>;
  heraldRtcLeave(...args: (Buffer | string | number)[]): Promise<number>;
  heraldRtcDropInstance(...args: (Buffer | string | number)[]): Promise<[number, number]>;
  heraldRtcScrape(...args: (Buffer | string | number)[]): Promise<number[]>;
  heraldRtcScrapePageBuffer(...args: (Buffer | string | number)[]): Promise<(number | Buffer)[]>;
  heraldRtcSweep(...args: (Buffer | string | number)[]): Promise<[number, number]>;
  heraldRtcBeatBuffer(...args: (Buffer | string | number)[]): Promise<Buffer[]>;
}

/** An offer relayed to one of this instance's sockets, until it is answered or forgotten. */
interface PendingOffer {
  /** Info hash, offering peer's id, offer id: binary strings. */
  infoHash: string;
  from: string;
  offerId: string;
  /** Where the offering socket is. */
  instance: Buffer;
  socket: number;
  /** Second it was relayed. */
  at: number;
}

/** One of this instance's sockets that announced. */
interface Socket {
  id: number;
  conn: RtcConnection;
  /** [info hash, peer id, ...] (binary strings): its peer in each swarm it joined. */
  joined: string[];
  /** Its owner value in Redis: instance id and socket number (12 bytes). */
  owner: Buffer;
  inFlight: number;
  closed: boolean;
  /** Offers relayed to it, oldest first, at most `maxPendingOffers`. */
  pending: PendingOffer[];
}

export interface RedisRtcSwarmsOptions {
  store: RedisSwarmStore;
  logger: Logger;
  /** Seconds after its last announce that a peer expires. */
  peerTimeout: number;
  /** Current time in seconds (the tracker's clock). */
  now: () => number;
  /** Most swarms one socket may join (default 100). */
  maxSwarmsPerConnection?: number;
  /** Most unanswered offers remembered per socket (default 200); the oldest is forgotten first. */
  maxPendingOffers?: number;
  /** Seconds an unanswered offer is remembered (default 120). */
  offerTimeout?: number;
  /** Milliseconds between this instance's heartbeats (default 5000). */
  heartbeatMs?: number;
  /** Milliseconds without a heartbeat after which an instance's peers are removed (default 30 000). */
  instanceTimeoutMs?: number;
  /** The transport (default: Redis pub/sub on the store's server). */
  transport?: (instance: Buffer) => RtcTransport;
  random?: () => number;
}

/**
 * WebRTC swarms shared by every Herald instance on one Redis (or Cluster) and key prefix: the
 * WebSocket frontend hands every announce, answer, close and scrape here (as `RtcShards` that own
 * no swarm locally), so a browser on one instance is offered to, and answered by, browsers on any
 * other (issue #14; docs/redis.md "WebTorrent").
 *
 * - Membership lives in Redis next to the TCP/UDP swarms, under the same bucket hash tags
 *   (rtc-scripts.ts): one script per announce binds the peer id to its socket (instance id and
 *   socket number), updates seeding, completion and last-seen, and picks the offers' targets with
 *   where each one's socket is. Counts are ZCARDs, so they include every instance's peers.
 * - Offers go to the instance holding each target's socket as an `offer` message (rtc-messages.ts)
 *   over the transport (Redis pub/sub), several per PUBLISH; a target on this instance gets it
 *   directly. The receiving instance remembers the offer for that socket, so an answer is relayed
 *   only by a peer that was sent that very offer, once (the rule the one-process swarms keep, by
 *   the instance that holds the answering socket), and goes back as a finished text (`deliver`).
 * - A socket that closes removes its peers (one script per bucket). An instance that stops
 *   removes what is left of its peers; one that dies stops beating (`<prefix>:rtc:instances`, a
 *   sorted set of heartbeats), and the first other instance to remove it from that set removes
 *   its peers, bucket by bucket, from the per-instance owner sets. Peers also expire by last-seen.
 * - Bounded: announces in flight per socket, bytes queued per instance per turn, PUBLISH calls in
 *   flight, offers remembered per socket; every Redis call has the store's deadline. With Redis
 *   away an announce or scrape is answered "tracker storage unavailable, try again later".
 */
export class RedisRtcSwarms implements RtcShards {
  readonly instance: Buffer;
  readonly #store: RedisSwarmStore;
  readonly #logger: Logger;
  readonly #peerTimeout: number;
  readonly #now: () => number;
  readonly #maxSwarms: number;
  readonly #maxPending: number;
  readonly #offerTimeout: number;
  readonly #heartbeatMs: number;
  readonly #instanceTimeoutMs: number;
  readonly #random: () => number;
  readonly #transport: RtcTransport;
  readonly #bases: Buffer[] = [];
  readonly #indexes: Buffer[] = [];
  readonly #stats: Buffer[] = [];
  readonly #instancesKey: string;
  #nextSocket = 1;
  readonly #sockets = new Map<number, Socket>();
  readonly #byConn = new Map<RtcConnection, Socket>();
  /** Messages for other instances, by instance id (hex), sent together at the end of the turn. */
  #queued = new Map<string, { to: Buffer; messages: Buffer[]; bytes: number }>();
  #flushing = false;
  /** Bytes of PUBLISH calls not answered yet. */
  #publishing = 0;
  #timer: NodeJS.Timeout | null = null;
  #sweeping = false;
  #closed = false;
  #counts = { swarms: 0, peers: 0, seeders: 0, leechers: 0 };
  #offersRelayed = 0;
  #answersRelayed = 0;
  #answersDropped = 0;
  /** Messages dropped: a queue or the publisher was full, or a PUBLISH failed. */
  dropped = 0;
  /** Scratch: the parts of one relayed offer. */
  #parts: Uint8Array[] = [OFFER_END, OFFER_END, OFFER_KEY, OFFER_END, OFFER_END];

  constructor(opts: RedisRtcSwarmsOptions) {
    this.#store = opts.store;
    this.#logger = opts.logger;
    this.#peerTimeout = opts.peerTimeout;
    this.#now = opts.now;
    this.#maxSwarms = opts.maxSwarmsPerConnection ?? 100;
    this.#maxPending = opts.maxPendingOffers ?? 200;
    this.#offerTimeout = opts.offerTimeout ?? 120;
    this.#heartbeatMs = opts.heartbeatMs ?? 5000;
    this.#instanceTimeoutMs = opts.instanceTimeoutMs ?? 30_000;
    this.#random = opts.random ?? Math.random;
    this.instance = randomBytes(INSTANCE_BYTES);
    const prefix = opts.store.prefix;
    for (let b = 0; b < BUCKETS; b++) {
      const base = Buffer.from(`${prefix}:{${b}}:`, 'latin1');
      this.#bases.push(base);
      this.#indexes.push(Buffer.concat([base, Buffer.from('wi')]));
      this.#stats.push(Buffer.concat([base, Buffer.from('wn')]));
    }
    this.#instancesKey = `${prefix}:rtc:instances`;
    const client = opts.store.client;
    for (const [name, lua] of [
      ['heraldRtcAnnounce', RTC_ANNOUNCE],
      ['heraldRtcLeave', RTC_LEAVE],
      ['heraldRtcDropInstance', RTC_DROP_INSTANCE],
      ['heraldRtcScrape', RTC_SCRAPE],
      ['heraldRtcScrapePage', RTC_SCRAPE_PAGE],
      ['heraldRtcSweep', RTC_SWEEP],
      ['heraldRtcBeat', RTC_BEAT],
    ])
      client.defineCommand(name, { numberOfKeys: 1, lua });
    this.#transport = (opts.transport ?? ((i) => new RedisPubSub(opts.store, i)))(this.instance);
    this.#transport.onMessage = (payload) => {
      for (const m of readRtcBatch(payload)) this.#receive(m);
    };
  }

  #cmd(): Scripts {
    return this.#store.client as unknown as Scripts;
  }

  /**
   * Starts the heartbeat (and with it the removal of dead instances' peers); resolves once offers
   * for this instance can arrive, or after `waitMs` (Redis away: they can once it is back).
   */
  async start(waitMs = 5000): Promise<void> {
    if (this.#timer !== null) return;
    void this.#beat();
    this.#timer = setInterval(() => void this.#beat(), this.#heartbeatMs);
    this.#timer.unref();
    let t: NodeJS.Timeout | undefined;
    await Promise.race([
      this.#transport.subscribed(),
      new Promise((resolve) => {
        t = setTimeout(resolve, waitMs);
      }),
    ]);
    clearTimeout(t);
  }

  /** Null while offers for this instance's sockets can arrive; otherwise what is wrong (`/health`). */
  health(): string | null {
    return this.#transport.health();
  }

  /** The WS frontend keeps its own (empty) swarms: every swarm is here. */
  attach(): void {}

  owns(): boolean {
    return false;
  }

  announce(
    conn: RtcConnection,
    msg: WsAnnounce,
    numWant: number,
    now: number,
  ): Promise<RtcCounts | TrackerError> {
    const ih = binaryString(msg.infoHash);
    const pid = binaryString(msg.peerId);
    const s = this.#socketOf(conn);
    const mine = joinedPeer(s.joined, ih);
    if (mine !== undefined && mine !== pid) return Promise.resolve(WsSwarmErrors.peerIdChanged);
    const stopped = msg.event === AnnounceEvent.stopped;
    if (mine === undefined && !stopped && s.joined.length / 2 + s.inFlight >= this.#maxSwarms)
      return Promise.resolve(WsSwarmErrors.tooManyTorrents);
    if (s.inFlight >= MAX_IN_FLIGHT) return Promise.resolve(Errors.shardUnavailable);
    const all = msg.offers;
    const want = all !== undefined && numWant > 0 && !stopped ? Math.min(all.length, numWant) : 0;
    // Copies: the offers are views of the client's frame, and they are sent after the reply.
    const offers: { offerId: Buffer; offerJson: Buffer }[] = [];
    for (let i = 0; i < want; i++)
      offers.push({ offerId: Buffer.from(all![i].offerId), offerJson: Buffer.from(all![i].offerJson) });
    const infoHash = Buffer.from(msg.infoHash);
    const peerId = Buffer.from(msg.peerId);
    const b = bucketOf(infoHash);
    s.inFlight++;
    return this.#store
      .call(
        this.#cmd().heraldRtcAnnounceBuffer(
          this.#indexes[b],
          this.#bases[b],
          infoHash,
          peerId,
          s.owner,
          msg.left === 0 ? '1' : '0',
          msg.event,
          want,
          now,
          this.#random(),
        ),
      )
      .then(
        (r): RtcCounts | TrackerError => {
          s.inFlight--;
          if (r[0] === -1) return WsSwarmErrors.peerIdInUse;
          if (stopped) forget(s.joined, ih, pid);
          else if (s.closed) {
            // Closed while this was in flight: its peer leaves, and offers no one.
            this.#leave(s.owner, [ih, pid]);
            return Errors.shardUnavailable;
          } else {
            const other = joinedPeer(s.joined, ih);
            if (other === undefined) s.joined.push(ih, pid);
            else if (other !== pid) {
              // Two announces in flight with two peer ids for one swarm: the first one kept.
              this.#leave(s.owner, [ih, pid]);
              return WsSwarmErrors.peerIdChanged;
            }
          }
          this.#offer(s, infoHash, peerId, offers, r[2] as Buffer);
          return { complete: r[0] as number, incomplete: r[1] as number };
        },
        (err) => {
          s.inFlight--;
          return refusal(err);
        },
      );
  }

  /** Sends each offer to its target (32 bytes each in `targets`: peer id, instance, socket). */
  #offer(
    s: Socket,
    infoHash: Buffer,
    peerId: Buffer,
    offers: { offerId: Buffer; offerJson: Buffer }[],
    targets: Buffer,
  ): void {
    for (let i = 0, o = 0; i < offers.length && o + 32 <= targets.length; i++, o += 32) {
      const instance = targets.subarray(o + 20, o + 28);
      this.#send(instance, {
        type: RtcRelayType.offer,
        to: targets.readUInt32BE(o + 28),
        fromInstance: this.instance,
        fromSocket: s.id,
        infoHash,
        peerId,
        offerId: offers[i].offerId,
        offerJson: offers[i].offerJson,
      });
    }
  }

  answer(conn: RtcConnection, msg: WsAnnounce, now: number): void {
    const a = msg.answer;
    const s = this.#byConn.get(conn);
    const ih = binaryString(msg.infoHash);
    // Only this socket's own peer in that swarm answers, and only an offer it was sent.
    if (a === undefined || s === undefined || joinedPeer(s.joined, ih) !== binaryString(msg.peerId)) {
      this.#answersDropped++;
      return;
    }
    const from = binaryString(a.toPeerId);
    const offerId = binaryString(a.offerId);
    const pend = s.pending;
    let i = pend.length - 1;
    while (i >= 0 && !(pend[i].offerId === offerId && pend[i].from === from && pend[i].infoHash === ih)) i--;
    if (i < 0 || now - pend[i].at > this.#offerTimeout) {
      this.#answersDropped++;
      return;
    }
    const p = pend[i];
    pend.splice(i, 1); // one answer per offer
    this.#answersRelayed++;
    const text = encodeAnswer({
      infoHash: msg.infoHash,
      fromPeerId: msg.peerId,
      offerId: a.offerId,
      answer: a.answer,
    });
    this.#send(p.instance, { type: RtcRelayType.deliver, to: p.socket, text: Buffer.from(text, 'latin1') });
  }

  closed(conn: RtcConnection): void {
    const s = this.#byConn.get(conn);
    if (s === undefined) return;
    this.#byConn.delete(conn);
    this.#sockets.delete(s.id);
    s.closed = true;
    s.pending.length = 0;
    if (s.joined.length > 0) this.#leave(s.owner, s.joined);
  }

  /** Removes the peers [info hash, peer id, ...] of socket `owner` (one call per bucket). */
  #leave(owner: Buffer, pairs: string[]): void {
    const byBucket = new Map<number, Buffer[]>();
    for (let j = 0; j < pairs.length; j += 2) {
      const key = Buffer.from(pairs[j] + pairs[j + 1], 'latin1');
      const b = bucketOf(key);
      const list = byBucket.get(b);
      if (list === undefined) byBucket.set(b, [key]);
      else list.push(key);
    }
    // A failure leaves the peers to expiry (or to the instance's removal when it stops).
    for (const [b, keys] of byBucket)
      this.#store
        .call(this.#cmd().heraldRtcLeave(this.#indexes[b], this.#bases[b], owner, ...keys))
        .catch(() => {});
  }

  scrape(infoHashes: readonly Uint8Array[]): Promise<ScrapeEntry[]> {
    const out: ScrapeEntry[] = new Array(infoHashes.length);
    const calls: Promise<void>[] = [];
    for (const [b, at] of byBucket(infoHashes))
      calls.push(
        this.#store
          .call(
            this.#cmd().heraldRtcScrape(
              this.#indexes[b],
              this.#bases[b],
              ...at.map((i) => Buffer.from(infoHashes[i])),
            ),
          )
          .then((r) => {
            for (let k = 0; k < at.length; k++)
              out[at[k]] = { complete: r[k * 3], incomplete: r[k * 3 + 1], downloaded: r[k * 3 + 2] };
          }),
      );
    return Promise.all(calls).then(
      () => out,
      (err) => {
        throw refusal(err);
      },
    );
  }

  async scrapeAll(): Promise<RtcScrapeRow[]> {
    const rows: RtcScrapeRow[] = [];
    const page = 1000;
    try {
      await eachBucket(async (b) => {
        for (let first = 0; ; first += page) {
          const r = await this.#store.call(
            this.#cmd().heraldRtcScrapePageBuffer(this.#indexes[b], this.#bases[b], first, page),
          );
          for (let k = 0; k < r.length; k += 4)
            rows.push({
              infoHash: new Uint8Array(r[k] as Buffer),
              complete: r[k + 1] as number,
              incomplete: r[k + 2] as number,
              downloaded: r[k + 3] as number,
            });
          if (r.length < page * 4) return;
        }
      });
    } catch (err) {
      throw refusal(err);
    }
    return rows;
  }

  /** The frontend's expiry tick: expired peers leave Redis, old offers are forgotten, figures refreshed. */
  swept(): void {
    const before = this.#now() - this.#offerTimeout;
    for (const s of this.#sockets.values()) {
      let k = 0;
      while (k < s.pending.length && s.pending[k].at < before) k++;
      if (k > 0) s.pending.splice(0, k);
    }
    void this.sweep(this.#now());
  }

  /** Removes peers not seen since `now - peerTimeout` (every instance may run it at once). */
  async sweep(now: number, budget = 100_000): Promise<number> {
    if (this.#sweeping) return 0;
    this.#sweeping = true;
    const cutoff = now - this.#peerTimeout;
    let removed = 0;
    try {
      await eachBucket(async (b) => {
        for (;;) {
          const [n, more] = await this.#store.call(
            this.#cmd().heraldRtcSweep(this.#indexes[b], this.#bases[b], cutoff, Math.min(1000, budget)),
          );
          removed += n;
          if (more === 0 || removed >= budget) return;
        }
      });
    } catch {
      // Logged by the store; the next tick tries again.
    } finally {
      this.#sweeping = false;
    }
    return removed;
  }

  /** Removes every peer of instance `id` (bucket by bucket). Returns how many. */
  async dropInstance(id: Buffer): Promise<number> {
    let removed = 0;
    await eachBucket(async (b) => {
      for (;;) {
        const [n, more] = await this.#store.call(
          this.#cmd().heraldRtcDropInstance(this.#indexes[b], this.#bases[b], id, 1000),
        );
        removed += n;
        if (more === 0) return;
      }
    });
    return removed;
  }

  /**
   * This instance is alive; an instance whose last beat is older than the timeout is not, and
   * whoever removes it from the set first (ZREM answers 1 to one caller only) removes its peers.
   */
  async #beat(): Promise<void> {
    const client = this.#store.client;
    try {
      const stale = await this.#store.call(
        this.#cmd().heraldRtcBeatBuffer(this.#instancesKey, this.instance, this.#instanceTimeoutMs),
      );
      for (const id of stale) {
        if (id.equals(this.instance)) continue;
        if ((await this.#store.call(client.zrem(this.#instancesKey, id))) !== 1) continue;
        const n = await this.dropInstance(id);
        this.#logger.warn('webrtc: an instance stopped beating; its peers are removed', {
          instance: id.toString('hex'),
          peers: n,
        });
      }
    } catch {
      // Redis away: logged by the store; the next beat tries again.
    }
  }

  /** The WebRTC swarms of every instance (one HMGET per bucket); the last figures when Redis fails. */
  async counts(): Promise<{ swarms: number; peers: number; seeders: number; leechers: number }> {
    const t = [0, 0, 0];
    try {
      await eachBucket(async (b) => {
        const r = await this.#store.call(this.#store.client.hmget(this.#stats[b], 't', 's', 'l'));
        for (let i = 0; i < 3; i++) t[i] += Number(r[i] ?? 0);
      });
      this.#counts = { swarms: t[0], peers: t[1] + t[2], seeders: t[1], leechers: t[2] };
    } catch {}
    return this.#counts;
  }

  /** Swarm figures of every instance (as of the last `counts()`) and this instance's relay counters. */
  stats(): WebRtcStats {
    return {
      ...this.#counts,
      offersRelayed: this.#offersRelayed,
      answersRelayed: this.#answersRelayed,
      answersDropped: this.#answersDropped,
    };
  }

  /** Stops beating and removes what is left of this instance's peers (its sockets are closed by now). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    try {
      await this.dropInstance(this.instance);
      await this.#store.call(this.#store.client.zrem(this.#instancesKey, this.instance));
    } catch {
      // Redis away: the peers expire, or the other instances remove them when the beat is stale.
    }
    await this.#transport.close();
  }

  #socketOf(conn: RtcConnection): Socket {
    let s = this.#byConn.get(conn);
    if (s === undefined) {
      const id = this.#nextSocket;
      this.#nextSocket = (id + 1) >>> 0 || 1;
      const owner = Buffer.allocUnsafe(INSTANCE_BYTES + 4);
      owner.set(this.instance, 0);
      owner.writeUInt32BE(id, INSTANCE_BYTES);
      s = { id, conn, joined: [], owner, inFlight: 0, closed: false, pending: [] };
      this.#byConn.set(conn, s);
      this.#sockets.set(id, s);
    }
    return s;
  }

  /** A message for a socket on instance `to`: handled here when it is this one, else queued. */
  #send(to: Uint8Array, m: RtcRelayMessage): void {
    if (this.instance.equals(to)) {
      this.#receive(m);
      return;
    }
    const bytes = writeRtcMessage(m);
    const key = Buffer.from(to).toString('hex');
    let q = this.#queued.get(key);
    if (q === undefined) {
      q = { to: Buffer.from(to), messages: [], bytes: 0 };
      this.#queued.set(key, q);
    }
    if (q.bytes + bytes.length > MAX_QUEUED_BYTES) {
      this.dropped++;
      return;
    }
    q.messages.push(bytes);
    q.bytes += bytes.length;
    if (!this.#flushing) {
      this.#flushing = true;
      setImmediate(() => this.#flush());
    }
  }

  /** One PUBLISH per instance for everything queued in this turn. */
  #flush(): void {
    this.#flushing = false;
    const queued = this.#queued;
    this.#queued = new Map();
    for (const q of queued.values()) {
      if (this.#publishing + q.bytes > MAX_PUBLISHING_BYTES) {
        this.dropped += q.messages.length;
        continue;
      }
      this.#publishing += q.bytes;
      this.#transport.publish(q.to, writeRtcBatch(q.messages)).then(
        () => {
          this.#publishing -= q.bytes;
        },
        () => {
          this.#publishing -= q.bytes;
          this.dropped += q.messages.length;
        },
      );
    }
  }

  /** A message for one of this instance's sockets (from another instance, or from this one). */
  #receive(m: RtcRelayMessage): void {
    const s = this.#sockets.get(m.to);
    if (s === undefined) return; // closed meanwhile
    if (m.type === RtcRelayType.deliver) {
      s.conn.ws.sendParts([m.text], 1);
      return;
    }
    // Remembered for the answer; bounded: a peer that never answers cannot grow this without end.
    if (s.pending.length >= this.#maxPending) s.pending.shift();
    s.pending.push({
      infoHash: binaryString(m.infoHash),
      from: binaryString(m.peerId),
      offerId: binaryString(m.offerId),
      instance: Buffer.from(m.fromInstance),
      socket: m.fromSocket,
      at: this.#now(),
    });
    const parts = this.#parts;
    parts[0] = offerHead(m.infoHash, m.peerId);
    parts[1] = jsonBinaryBytes(m.offerId);
    parts[3] = m.offerJson;
    s.conn.ws.sendParts(parts, 5);
    parts[0] = parts[1] = parts[3] = OFFER_END;
    this.#offersRelayed++;
  }
}

/** A failed call, as the client hears it. */
function refusal(err: unknown): TrackerError {
  if (err instanceof TrackerError) return err;
  return String(err).includes('OOM') ? Errors.trackerFull : Errors.storeUnavailable;
}

/** The peer id of swarm `ih` in `joined`, if any. */
function joinedPeer(joined: string[], ih: string): string | undefined {
  for (let j = 0; j < joined.length; j += 2) if (joined[j] === ih) return joined[j + 1];
  return undefined;
}

function forget(joined: string[], ih: string, pid: string): void {
  for (let j = 0; j < joined.length; j += 2)
    if (joined[j] === ih && joined[j + 1] === pid) {
      joined[j] = joined[joined.length - 2];
      joined[j + 1] = joined[joined.length - 1];
      joined.length -= 2;
      return;
    }
}
