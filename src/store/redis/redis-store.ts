import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Cluster, Command, type Redis } from 'ioredis';
import { Errors, type TrackerError } from '../../core/errors.ts';
import type { Logger } from '../../core/log.ts';
import {
  type AccountedResult,
  AnnounceEvent,
  type AnnounceRequest,
  type AnnounceResult,
  type ScrapeEntry,
  type SharedAccountArgs,
  type SharedAccounted,
  type SwarmStats,
} from '../../core/types.ts';
import type { SwarmStore, SwarmStoreOptions } from '../../swarm/types.ts';
import { connectRedis, keySlot } from './connect.ts';
import {
  announceRecord,
  BUCKETS,
  baselineOf,
  bucketOf,
  byBucket,
  eachBucket,
  HEADER,
  type Queued,
  resultOf,
} from './records.ts';
import { ACCOUNT, ANNOUNCE_BATCH, DROP, LATE, SCRAPE, SCRAPE_PAGE, SWEEP } from './scripts.ts';

/**
 * Swarms in Redis, shared by every Herald instance that names the same server (or Cluster) and
 * key prefix (docs/redis.md; issue #14).
 *
 * Key layout (all binary-safe; `<b>` is the swarm's bucket, the first 10 bits of its info hash,
 * in decimal; `<h>` the 20 raw bytes of the info hash; `<ep>` a peer's endpoint in wire form,
 * 6 bytes for IPv4 and 18 for IPv6):
 *   <prefix>:{<b>}:<h>:4s   ZSET  IPv4 seeders,  member <ep>, score last-seen (seconds)
 *   <prefix>:{<b>}:<h>:4l   ZSET  IPv4 leechers
 *   <prefix>:{<b>}:<h>:6s   ZSET  IPv6 seeders
 *   <prefix>:{<b>}:<h>:6l   ZSET  IPv6 leechers
 *   <prefix>:{<b>}:<h>:m    HASH  <ep> → flag byte ('0' leecher, '2' seeder, +1 once its
 *                                 completion was counted) + peer id (20 bytes) once the swarm keeps
 *                                 ids; 'p' → set by its first request asking for ids (compact=0);
 *                                 'd' → completions; 4s, 4l, 6s, 6l → the number of peers in each set
 *   <prefix>:{<b>}:i        ZSET  the bucket's swarms: member <h>, score a lower bound of its
 *                                 oldest peer's last-seen (exact once the sweep visited it)
 *   <prefix>:{<b>}:n        HASH  the bucket's statistics: t (swarms), 4s, 4l, 6s, 6l (peers)
 *
 * Every key of a bucket carries the hash tag `{<b>}`, so one script sees a swarm and its bucket's
 * index and statistics atomically, on one node or in one Cluster slot. 1024 buckets spread over
 * the Cluster's slots; the sweep, the full scrape and the statistics visit 1024 small keys, not
 * the keyspace (no SCAN).
 *
 * One round trip per announce (one EVALSHA, shared by the open-mode announces of one event-loop
 * turn to one server: ANNOUNCE_BATCH; or, where redis-server has loaded Herald's module
 * (native/redis/herald.c), its HERALD.ANNOUNCE command, which does the same natively on the same
 * keys: `module`) and per scrape (one EVALSHA per bucket the hashes
 * fall in, sent together: one write per node with auto-pipelining).
 *
 * Faults: every call has a timeout (`timeoutMs`); there is no offline queue (a call made while
 * the connection is down fails at once instead of piling up); the client reconnects with
 * backoff. An announce or scrape that fails is answered with `Errors.storeUnavailable` (a
 * `failure reason` with `retry in` over HTTP and WebSocket, a BEP 15 error over UDP), never
 * thrown at the frontend; `health()` says what is wrong for `/health`.
 *
 * `maxPeers` and `maxTorrents` do not apply: the memory is Redis's, bounded by its `maxmemory`
 * (with `maxmemory-policy noeviction`, a full Redis refuses writes: an announce is then answered
 * "tracker is full, try later", as the memory store answers at its ceiling).
 */
export class RedisSwarmStore implements SwarmStore {
  readonly synchronous = false;
  readonly client: Redis | Cluster;
  #prefix: string;
  #peerTimeout: number;
  #logger: Logger | null;
  #random: () => number;
  /** Per bucket: the key base "<prefix>:{<b>}:" and the index key, made once. */
  #bases: Buffer[] = [];
  #indexes: Buffer[] = [];
  /** Per bucket: its Cluster slot (of its hash tag). */
  #slots: number[] = [];
  /** This turn's open-mode announces, by server (a Cluster master's "host:port"; '' for one server). */
  #batches = new Map<string, Queued[]>();
  #scheduled = false;
  /** Time (ms) of the last failed call, and how many failed since the last log line. */
  #failedAt = 0;
  /** Time (ms) of the last answered call. */
  #answeredAt = 0;
  #failures = 0;
  #loggedAt = 0;
  /** When the connection was last dropped for a call without an answer (`#unanswered`). */
  #resetAt = 0;
  #closed = false;
  #timeoutMs: number;
  /** redis_module: 'auto' uses HERALD.ANNOUNCE where the server has it, 'off' never, 'require' always. */
  #moduleMode: RedisModuleMode;
  /** Whether announces go through HERALD.ANNOUNCE now (else the Lua script). */
  #module: boolean;
  /** 'require' and the server answered that it has no HERALD.ANNOUNCE: for health(). */
  #moduleMissing = false;
  /** The module check made at the last (re)connection. */
  #detection: Promise<void> = Promise.resolve();
  /**
   * Calls in flight, oldest first (one timeout for all: insertion order is deadline order). The
   * client's own command timeout covers one attempt on one connection; a Cluster retries a
   * command through redirections and failovers, so the whole call gets this deadline too.
   */
  #pending = new Set<Pending>();
  #deadlines: NodeJS.Timeout;
  /**
   * Per server ('' for one server, a master's "host:port" on a Cluster): a lower bound of its
   * clock (Redis TIME, ms) minus Herald's monotonic clock (`performance.now()`), measured by
   * `#measureClocks` (`#deadline` says what for).
   */
  #offsets = new Map<string, number>();
  #measuring: Promise<void> | null = null;
  #clocks: NodeJS.Timeout;

  constructor(
    opts: SwarmStoreOptions & {
      /** redis://host:port[/db], rediss://…, or redis-cluster://host:port,host:port,… */
      url: string;
      /** Key prefix (no braces): instances sharing swarms use the same one. */
      prefix: string;
      /** Most milliseconds any call may take before it fails. */
      timeoutMs: number;
      logger?: Logger;
      random?: () => number;
      /** redis_module (default 'auto'). */
      module?: RedisModuleMode;
    },
  ) {
    if (/[{}]/.test(opts.prefix)) throw new Error('redis: the key prefix may not contain { or }');
    this.#prefix = opts.prefix;
    this.#peerTimeout = opts.peerTimeout;
    this.#logger = opts.logger ?? null;
    this.#random = opts.random ?? Math.random;
    for (let b = 0; b < BUCKETS; b++) {
      const base = Buffer.from(`${opts.prefix}:{${b}}:`, 'latin1');
      this.#bases.push(base);
      this.#indexes.push(Buffer.concat([base, Buffer.from('i')]));
      this.#slots.push(keySlot(String(b)));
    }
    this.#timeoutMs = opts.timeoutMs;
    this.#moduleMode = opts.module ?? 'auto';
    this.#module = this.#moduleMode === 'require';
    this.client = connectRedis(opts.url, opts.timeoutMs);
    // At every (re)connection: whether the server (every master of a Cluster) has the module.
    // At every (re)connection, and every CLOCKS_MS: each server's clock (#deadline).
    this.client.on('ready', () => {
      const detection = this.#moduleMode === 'auto' ? this.#detect() : Promise.resolve();
      this.#detection = Promise.all([detection, this.#measureClocks()]).then(() => {});
    });
    this.#deadlines = setInterval(() => this.#expire(), Math.max(10, opts.timeoutMs / 4));
    this.#deadlines.unref();
    this.#clocks = setInterval(() => this.#measureClocks(), CLOCKS_MS);
    this.#clocks.unref();
    for (const [name, lua] of [
      ['heraldScrape', SCRAPE],
      ['heraldScrapePage', SCRAPE_PAGE],
      ['heraldSweep', SWEEP],
      ['heraldDrop', DROP],
    ])
      this.client.defineCommand(name, { numberOfKeys: 1, lua });
    // Connection errors are reported through health() and the calls that fail; without a
    // listener, ioredis would print each one.
    this.client.on('error', (err: Error) => this.#failed(err));
  }

  get prefix(): string {
    return this.#prefix;
  }

  /** Calls waiting for Redis now (each has a deadline; none waits for a connection). */
  get inFlight(): number {
    return this.#pending.size;
  }

  /** Whether announces go through the Herald module's HERALD.ANNOUNCE now (else the Lua script). */
  get module(): boolean {
    return this.#module;
  }

  /** Asks every server (every master) whether it has HERALD.ANNOUNCE; uses it if all do. */
  async #detect(): Promise<void> {
    const nodes = this.client instanceof Cluster ? this.client.nodes('master') : [this.client];
    try {
      const infos = await this.#bounded(
        Promise.all(nodes.map((n) => n.command('INFO', 'herald.announce') as Promise<unknown[]>)),
      );
      const has = nodes.length > 0 && infos.every((r) => Array.isArray(r) && Array.isArray(r[0]));
      if (has !== this.#module)
        this.#logger?.info(`redis store: announces through ${has ? 'the herald module' : 'the Lua script'}`);
      this.#module = has;
    } catch (err) {
      this.#failed(err);
    }
  }

  /**
   * Measures each server's clock (each master's on a Cluster) against Herald's monotonic clock
   * (`#offsets`, for `#deadline`): the server read its clock (TIME) between the moment the call
   * left and the moment its answer came back, so its clock minus Herald's was at least its time
   * minus the moment the answer came back. The bound is low by at most the round trip (a deadline
   * then passes that much early, never late). One measurement at a time; a failed one is skipped.
   */
  #measureClocks(): Promise<void> {
    if (this.#measuring !== null) return this.#measuring;
    const cluster = this.client instanceof Cluster;
    const nodes = this.client instanceof Cluster ? this.client.nodes('master') : [this.client];
    this.#measuring = Promise.all(
      nodes.map(async (node) => {
        try {
          const [sec, usec] = await this.#bounded(node.time());
          const back = performance.now();
          this.#offsets.set(
            cluster ? `${node.options.host}:${node.options.port}` : '',
            Number(sec) * 1000 + Number(usec) / 1000 - back,
          );
        } catch (err) {
          this.#failed(err);
        }
      }),
    ).then(() => {
      this.#measuring = null;
    });
    return this.#measuring;
  }

  /**
   * The deadline, in milliseconds by `node`'s clock, of a private-mode announce call to it made
   * now: the script (HERALD.ANNOUNCE) refuses the whole call, untouched, when it starts later (the
   * error LATE). Herald gives up on the call `timeoutMs` after sending it and answers "try again
   * later"; had Redis run it afterwards (a server that was only slow runs what is on its socket
   * when it wakes; around a failover, ioredis sends it again to the new master), each peer's
   * accounting baseline would have moved on with no instance crediting the delta, and the traffic
   * that announce reported would never be credited. The deadline is three quarters of
   * `timeoutMs`: the last quarter is for the answer to come back (the script's run, the way back,
   * Herald's event loop). Herald's and Redis's clocks need not agree: the deadline is expressed in
   * the server's clock by `#offsets`, whose error makes it early, never late. 0 (no deadline) while
   * no server's clock is known yet (a master not measured yet is judged by the lowest offset
   * known: nodes of one Cluster are kept in sync by NTP, and a lower offset errs early).
   */
  #deadline(node: string): number {
    let offset = this.#offsets.get(node);
    if (offset === undefined) {
      void this.#measureClocks();
      for (const o of this.#offsets.values()) if (offset === undefined || o < offset) offset = o;
      if (offset === undefined) return 0;
    }
    return Math.floor(performance.now() + (this.#timeoutMs * 3) / 4 + offset);
  }

  /**
   * Null when the store is usable; otherwise what is wrong (for `/health`: not ready), or what is
   * degraded while this instance still answers (`{ degraded }`: ready).
   */
  health(): string | { degraded: string } | null {
    const status = this.client.status;
    if (status !== 'ready') return `redis ${status}`;
    if (this.#moduleMissing) return 'redis: the herald module is not loaded (redis_module = "require")';
    if (Date.now() - this.#failedAt >= 5000) return null;
    // A call answered after the last failed one was sent (a failure comes at the latest at its
    // deadline): Redis answers some calls and not others. Part of the swarms fail (a Cluster
    // master down or failing over), the rest are served, here and on every instance on this
    // store alike: ready, degraded (a 503 would have a load balancer take every instance out at
    // once). A server that answers nothing (hung, paused) is not ready from its first call sent
    // after its last answer that fails.
    // (A failure is recorded after its deadline, late by as much as the event loop lags: sockets
    // are read before a call is failed. So "sent" is taken as up to two timeouts before it was
    // recorded; a server that answers nothing is then not ready one timeout later at most.)
    if (this.#answeredAt > this.#failedAt - 2 * this.#timeoutMs)
      return { degraded: 'redis: some calls failing (part of the swarms: a Cluster master down?)' };
    return 'redis calls failing';
  }

  /**
   * Resolves when connected and the module check is done (or rejects after `ms`): start-up waits
   * for it, then goes on.
   */
  async ready(ms: number): Promise<void> {
    await this.#connected(ms);
    await this.#detection;
  }

  #connected(ms: number): Promise<void> {
    if (this.client.status === 'ready') return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.client.off('ready', ok);
        reject(new Error(`redis: not connected after ${ms} ms (${this.client.status})`));
      }, ms);
      const ok = () => {
        clearTimeout(t);
        resolve();
      };
      this.client.once('ready', ok);
    });
  }

  /**
   * Runs script command `name` (a `defineCommand` name, `…Buffer` for Buffer replies) under the
   * deadline. On a Cluster, a call answered MOVED or ASK (a slot moved or moving to another master)
   * is sent once more alone: ioredis follows redirections for a command or pipeline that fails
   * whole, but not for one command of an auto-pipeline whose other commands succeeded (the calls
   * of one tick to one master leave as one pipeline), which it fails with the redirection.
   */
  #script<T>(name: string, args: (Buffer | string | number)[]): Promise<T> {
    const client = this.client as unknown as Record<string, (...a: unknown[]) => Promise<T>>;
    const first = client[name](...args);
    if (!(this.client instanceof Cluster)) return this.#bounded(first);
    const cluster = this.client;
    return this.#bounded(
      first.catch((err: unknown) => {
        if (!redirected(err)) throw err;
        const pipe = cluster.pipeline() as unknown as Record<string, (...a: unknown[]) => unknown>;
        pipe[name](...args);
        return (pipe as unknown as { exec(): Promise<[Error | null, T][]> }).exec().then((r) => {
          const [e, v] = r[0];
          if (e !== null) throw e;
          return v;
        });
      }),
    );
  }

  /**
   * `p`, or a rejection once it has taken longer than the timeout (by the monotonic clock, as
   * `#deadline` reckons: a step of the wall clock moves neither).
   */
  #bounded<T>(p: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const d: Pending = { at: performance.now() + this.#timeoutMs, fail: reject, settled: false };
      this.#pending.add(d);
      p.then(
        (v) => {
          d.settled = true;
          this.#pending.delete(d);
          this.#answeredAt = Date.now();
          resolve(v);
        },
        (err) => {
          d.settled = true;
          this.#pending.delete(d);
          if (err instanceof Error && err.message === 'Command timed out') this.#unanswered();
          reject(err);
        },
      );
    });
  }

  /**
   * `p`, a call on `client` made by another part of Herald (the WebRTC swarms, rtc-swarms.ts),
   * under this store's deadline; a failure counts for health() and the log as the store's own do.
   */
  call<T>(p: Promise<T>): Promise<T> {
    return this.#bounded(p).catch((err) => {
      this.#failed(err);
      throw err;
    });
  }

  /**
   * Script `lua` (SHA1 `sha`) with one key, `args[0]`, for another part of Herald whose answers
   * must be used even after a stall of Herald's event loop (the member limits' claims, slots.ts):
   * sent alone, as the announce script is (`#lua`, `#expire`), replies as bytes (bulk strings are
   * Buffers, integers numbers); a failure counts as `call`'s do.
   */
  script(lua: string, sha: string, args: (Buffer | string | number)[]): Promise<unknown> {
    return this.#lua(lua, sha, args).catch((err) => {
      this.#failed(err);
      throw err;
    });
  }

  /**
   * The deadline (`#deadline`, as a script argument; '0': none yet) of a call made now on a key
   * with hash tag `tag`, for another part of Herald's scripts that must not write once Herald has
   * given up on them (the member limits' claims, slots.ts), checked against the server's clock as
   * ANNOUNCE_BATCH checks it.
   */
  deadlineFor(tag: string): string {
    const deadline = this.#deadline(this.#serverOfSlot(keySlot(tag)));
    return deadline === 0 ? '0' : String(deadline);
  }

  /**
   * Fails the calls past their deadline, once the event loop has read its sockets: timers run
   * before I/O in a turn of the event loop, and `setImmediate` after it. After a stall of Herald's
   * own event loop (a long GC, a burst of synchronous work), an answer that came in time and waited
   * in the socket is then used, not thrown away with the connection: a private announce Redis
   * applied in time is answered and credited, instead of being refused with its baseline moved on
   * (the traffic it reported never credited). `#sendKeyed` defers the client's own per-command
   * timeout the same way.
   */
  #expire(): void {
    const now = performance.now();
    const late: Pending[] = [];
    for (const d of this.#pending) {
      if (d.at > now) break;
      this.#pending.delete(d);
      late.push(d);
    }
    if (late.length === 0) return;
    setImmediate(() => {
      let unanswered = false;
      for (const d of late)
        if (!d.settled) {
          d.fail(new Error(`redis: no answer within ${this.#timeoutMs} ms`));
          unanswered = true;
        }
      if (unanswered) this.#unanswered();
    });
  }

  /**
   * A call got no answer in time (ioredis's command timeout, or the deadline): the connection's
   * reply stream is in doubt. ioredis matches replies to commands in order and keeps a timed-out
   * command in its queue, so after a reply lost or cut short on the way (a faulty link or
   * middlebox; the connection stays open) every later reply lands on the command before it: each
   * call would fail from then on, or get another call's answer (another swarm's peers). So the
   * connection is dropped and made again (what it still had queued fails at once), at most once
   * per timeout; a Redis that was merely slow costs one reconnection.
   */
  #unanswered(): void {
    const now = Date.now();
    if (this.#closed || this.client.status !== 'ready') return;
    if (this.client instanceof Cluster) {
      this.#unansweredNodes(this.client);
      return;
    }
    if (now - this.#resetAt < this.#timeoutMs) return;
    this.#resetAt = now;
    this.#logger?.warn('redis store: a call got no answer in time; connecting again');
    this.client.disconnect(true);
  }

  /**
   * On a Cluster, each node has a connection (and a reply stream) of its own: only a connection
   * that still waits for the reply of a command that gave up waiting (failed by ioredis's command
   * timeout, still in its queue) is in doubt, and only it is dropped (the Cluster connects to the
   * node again at its next call or slot refresh). Dropping the whole Cluster, as on one server,
   * refused every master's swarms for a reconnection whenever one master stopped answering: a
   * killed master's calls time out until its replica takes over (redis-faults.test.ts "the
   * other masters' swarms are served throughout").
   */
  #unansweredNodes(cluster: Cluster): void {
    let dropped = 0;
    for (const node of cluster.nodes()) {
      if (node.status !== 'ready') continue;
      const queue = (node as unknown as { commandQueue: CommandQueue }).commandQueue;
      let stale = false;
      // Every command written gets its timeout timer (commandTimeout), cleared once it settles: an
      // answered one has left the queue first, so a settled one still queued gave up waiting.
      for (let i = 0; i < queue.length && !stale; i++) {
        const c = queue.peekAt(i)?.command;
        stale = c !== undefined && c._commandTimeoutTimer === undefined;
      }
      if (!stale) continue;
      this.#logger?.warn('redis store: a call got no answer in time; connecting to its node again', {
        node: `${node.options.host}:${node.options.port}`,
      });
      node.disconnect();
      dropped++;
    }
    if (dropped > 0) cluster.refreshSlotsCache();
  }

  /**
   * Private mode: maps an info hash to its torrent's route hash (`PolicyTorrent.route`), whose
   * bucket holds the swarm, so that both hashes of a hybrid torrent and the member's baselines
   * share one hash tag (one script, one Cluster slot). Null: every swarm is in its own hash's bucket.
   */
  routeOf: ((infoHash: Uint8Array) => Uint8Array) | null = null;

  #bucketOf(infoHash: Uint8Array): number {
    return bucketOf(this.routeOf === null ? infoHash : this.routeOf(infoHash));
  }

  announce(req: AnnounceRequest, now: number): Promise<AnnounceResult | TrackerError> {
    return this.#announce(req, now, null) as Promise<AnnounceResult | TrackerError>;
  }

  /**
   * Private mode: the announce, the peer-limit and early-announce rules, and the exchange of the
   * peer's accounting baseline, in one script (scripts.ts ANNOUNCE_BATCH, with the other announces
   * of its turn). The result carries the previous baseline (null if none is live) for the
   * accountant to compute the delta from.
   */
  announceAccounted(
    req: AnnounceRequest,
    now: number,
    acct: SharedAccountArgs,
  ): Promise<AccountedResult | TrackerError> {
    return this.#announce(req, now, acct) as Promise<AccountedResult | TrackerError>;
  }

  /**
   * Private mode, a WebTorrent peer's announce (its swarm is this store's WebRTC swarms, not the
   * announce script's sets): its accounting baseline exchanged, and `peers_per_torrent` and early
   * announces judged, in the same baselines as the member's other peers on the torrent (scripts.ts
   * ACCOUNT), so that they and download slots count browsers on every instance. The previous
   * baseline, or the refusal. Carries the call's deadline, as a private-mode announce does.
   */
  accountOnly(
    req: AnnounceRequest,
    now: number,
    acct: SharedAccountArgs,
  ): Promise<SharedAccounted | TrackerError> {
    const b = bucketOf(acct.route);
    const key = Buffer.concat([
      this.#bases[b],
      Buffer.from(`a:${acct.torrentId}:${acct.memberId}`, 'latin1'),
    ]);
    const deadline = this.#deadline(this.#serverOf(b));
    // Sent alone as the announce is (`#lua`): its answer is then used even after a stall of
    // Herald's event loop (`#expire`).
    const r = this.#lua(ACCOUNT, ACCOUNT_SHA, [
      key,
      Buffer.from(req.peerId),
      `${req.uploaded}:${req.downloaded}`,
      acct.peersPerTorrent,
      acct.minGap,
      acct.refuseEarly ? '1' : '0',
      this.#peerTimeout,
      req.event,
      req.left === 0 ? '1' : '0',
      now,
      deadline === 0 ? '0' : String(deadline),
    ]) as unknown as Promise<[Buffer | number, Buffer | number, number]>;
    return r.then(([prev, seed, early]): SharedAccounted | TrackerError => {
      if (prev === -1) return String(seed) === 'torrent' ? Errors.peerLimitTorrent : Errors.announceTooSoon;
      return { previous: baselineOf(prev as Buffer), seed: Number(seed), early: early === 1 };
    }, this.#refusal);
  }

  #announce(
    req: AnnounceRequest,
    now: number,
    acct: SharedAccountArgs | null,
  ): Promise<AnnounceResult | AccountedResult | TrackerError> {
    const b = acct === null ? this.#bucketOf(req.infoHash) : bucketOf(acct.route);
    const stride = req.family === 4 ? 6 : 18;
    const asked = req.wantPeerIds && req.event !== AnnounceEvent.stopped && req.numWant > 0;
    // The record is a copy: the caller may reuse its arrays once this returns.
    const record = announceRecord(req, b, now, this.#random(), acct, this.#peerTimeout);
    return new Promise((resolve) => {
      const q: Queued = { b, record, stride, asked, accounted: acct !== null, resolve };
      // With the other announces of this event-loop turn to the same server (ANNOUNCE_BATCH).
      const node = this.#serverOf(b);
      let queue = this.#batches.get(node);
      if (queue === undefined) {
        queue = [];
        this.#batches.set(node, queue);
      }
      queue.push(q);
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(this.#flush);
      }
    });
  }

  /**
   * Every announce queued before the event loop next checks (`setImmediate`) leaves in one
   * ANNOUNCE_BATCH call per server (on a Cluster, per master holding its slot in the client's slot
   * map), at most MAX_BATCH a call.
   */
  #flush = (): void => {
    this.#scheduled = false;
    for (const queue of this.#batches.values())
      for (let i = 0; i < queue.length; i += MAX_BATCH) this.#sendBatch(queue.slice(i, i + MAX_BATCH), false);
    this.#batches.clear();
  };

  /**
   * One ANNOUNCE_BATCH call; its first announce's bucket index routes it. An announce skipped
   * because its slot is on another master now (the slot map was stale) is sent again alone
   * (`alone`), routed by its own bucket.
   */
  #sendBatch(items: Queued[], alone: boolean): void {
    const records = items.length === 1 ? items[0].record : Buffer.concat(items.map((q) => q.record));
    // A deadline for a call with private-mode announces (their baselines: #deadline); a late
    // open-mode announce only refreshes a peer that did announce.
    let accounted = false;
    for (const q of items) accounted ||= q.accounted;
    const deadline = accounted ? this.#deadline(this.#serverOf(items[0].b)) : 0;
    const args = [this.#indexes[items[0].b], this.#prefix, records, deadline === 0 ? '0' : String(deadline)];
    const viaModule = this.#module;
    (viaModule ? this.#moduleAnnounce(args) : this.#luaAnnounce(args)).then(
      (r) => {
        let o = 0;
        for (const q of items) {
          const status = r[o];
          const peers = r.readUInt16BE(o + 13);
          const ids = r.readUInt16BE(o + 15);
          const prev = r.readUInt16BE(o + 17);
          const at = o + HEADER;
          o = at + peers + ids + ids / 20 + prev;
          if (status === 3 && !alone) this.#sendBatch([q], true);
          else if (status === 3) q.resolve(Errors.storeUnavailable);
          else if (status === 1) q.resolve(Errors.peerLimitTorrent);
          else if (status === 2) q.resolve(Errors.announceTooSoon);
          else q.resolve(resultOf(q, r, at - HEADER, at, peers, ids, prev));
        }
      },
      (err) => {
        if (viaModule && unknownCommand(err)) {
          if (this.#moduleMode === 'auto') {
            // A server without the module (a new master after a failover, a restart without
            // --loadmodule): the Lua script until the next connection's check.
            if (this.#module)
              this.#logger?.warn('redis store: HERALD.ANNOUNCE unknown, back to the Lua script');
            this.#module = false;
            this.#sendBatch(items, alone);
            return;
          }
          this.#moduleMissing = true;
        }
        const refusal = this.#refusal(err);
        for (const q of items) q.resolve(refusal);
      },
    );
  }

  /**
   * ANNOUNCE_BATCH by EVALSHA, sent as one command as HERALD.ANNOUNCE is (`#moduleAnnounce`), not
   * through the script helper `defineCommand` makes: that one goes through ioredis's auto-pipeline,
   * which builds a Pipeline (and on a Cluster computes every key's slot again) for each call, and
   * more of Herald's CPU per announce went there than to anything else of the store's (docs/
   * design-notes.md "Shared swarms on Redis"). A server that does not have the script (restarted,
   * SCRIPT FLUSH, a new master after a failover) answers NOSCRIPT: the call is sent again as EVAL,
   * which loads it. A Cluster follows a command's MOVED and ASK itself.
   */
  #luaAnnounce(args: Buffer[] | (Buffer | string)[]): Promise<Buffer> {
    return this.#lua(ANNOUNCE_BATCH, ANNOUNCE_BATCH_SHA, args);
  }

  /** Script `lua` (SHA1 `sha`) with one key, `args[0]`, sent alone as `#luaAnnounce` says, under the deadline. */
  #lua(lua: string, sha: string, args: (Buffer | string | number)[]): Promise<Buffer> {
    const key = args[0] as Buffer | string;
    return this.#bounded(
      this.#sendKeyed('EVALSHA', [sha, 1, ...args], key).catch((err: unknown) => {
        if (!noScript(err)) throw err;
        return this.#sendKeyed('EVAL', [lua, 1, ...args], key);
      }),
    );
  }

  /**
   * HERALD.ANNOUNCE (native/redis/herald.c) with ANNOUNCE_BATCH's arguments and reply, sent alone
   * with its key (`#sendKeyed`).
   */
  #moduleAnnounce(args: Buffer[] | (Buffer | string)[]): Promise<Buffer> {
    return this.#bounded(
      this.#sendKeyed('HERALD.ANNOUNCE', args, args[0]).then((r) => {
        this.#moduleMissing = false;
        return r;
      }),
    );
  }

  /**
   * One command sent alone, its reply as bytes. ioredis does not know which argument is the key of
   * EVALSHA's or HERALD.ANNOUNCE's: it is given, so that a Cluster routes the call by it (and
   * follows its redirections, as for any command sent alone).
   */
  #sendKeyed(name: string, argv: (Buffer | string | number)[], key: Buffer | string): Promise<Buffer> {
    const cmd = new Command(name, argv, { replyEncoding: null });
    (cmd as unknown as { keys: unknown[] }).keys = [key];
    // The client's command timeout (`commandTimeout`, which keeps a timer it set first), failing
    // the command only once the event loop has read its sockets, as `#expire` fails the call: its
    // own timer would otherwise throw away an answer that waited in the socket while Herald's
    // event loop stalled. (It clears the timer when the command settles.)
    const c = cmd as unknown as TimedCommand;
    c._commandTimeoutTimer = setTimeout(
      () =>
        setImmediate(() => {
          if (!c.isResolved) c.reject(new Error('Command timed out'));
        }),
      this.#timeoutMs,
    );
    return (this.client as Redis).sendCommand(cmd) as unknown as Promise<Buffer>;
  }

  /** A failed call: logged (at most every 10 s), recorded for health(), answered as a refusal. */
  #refusal = (err: unknown): TrackerError => {
    this.#failed(err);
    return String(err).includes('OOM') ? Errors.trackerFull : Errors.storeUnavailable;
  };

  #failed(err: unknown): void {
    if (this.#closed) return;
    // Refused by the server's clock while Herald still waited (a call carrying its deadline): late,
    // or the clock measured wrong (it stepped forward since): measured again.
    if (err instanceof Error && err.message === LATE) void this.#measureClocks();
    const now = Date.now();
    this.#failedAt = now;
    this.#failures++;
    if (now - this.#loggedAt >= 10_000) {
      this.#loggedAt = now;
      this.#logger?.warn('redis store: calls failing', { err: String(err), failures: this.#failures });
      this.#failures = 0;
    }
  }

  scrape(infoHashes: readonly Uint8Array[]): Promise<ScrapeEntry[]> {
    const out: ScrapeEntry[] = new Array(infoHashes.length);
    // One script per bucket the hashes fall in, all sent at once.
    const calls: Promise<void>[] = [];
    // In private mode a hybrid's two hashes live in its route hash's bucket.
    for (const [b, at] of byBucket(infoHashes, (h) => this.#bucketOf(h)))
      calls.push(
        this.#script<number[]>('heraldScrape', [
          this.#indexes[b],
          this.#bases[b],
          ...at.map((i) => Buffer.from(infoHashes[i])),
        ]).then((r) => {
          for (let k = 0; k < at.length; k++)
            out[at[k]] = { complete: r[k * 3], incomplete: r[k * 3 + 1], downloaded: r[k * 3 + 2] };
        }),
      );
    return Promise.all(calls).then(
      () => out,
      (err) => {
        throw this.#refusal(err);
      },
    );
  }

  /**
   * Every swarm, bucket by bucket, in pages of 1000 (no call holds Redis for long). Swarms that
   * come or go while it runs may be missed or listed once more: a full scrape is a snapshot only
   * in the memory store.
   */
  async scrapeAll(): Promise<Iterable<[Uint8Array, ScrapeEntry]>> {
    const out: [Uint8Array, ScrapeEntry][] = [];
    const page = 1000;
    // A failure is the refusal announces get (a TrackerError), not an internal error.
    await this.#eachBucket(async (b) => {
      for (let first = 0; ; first += page) {
        const r = await this.#script<(number | Buffer)[]>('heraldScrapePageBuffer', [
          this.#indexes[b],
          this.#bases[b],
          first,
          page,
        ]);
        for (let k = 0; k < r.length; k += 4)
          out.push([
            new Uint8Array(r[k] as Buffer),
            { complete: r[k + 1] as number, incomplete: r[k + 2] as number, downloaded: r[k + 3] as number },
          ]);
        if (r.length < page * 4) return;
      }
    }).catch((err) => {
      throw this.#refusal(err);
    });
    return out;
  }

  /**
   * Expiry over every bucket, stopping once `budget` peers are removed: the buckets of one server
   * (on a Cluster, of one master by the client's slot map) go SWEEP_BUCKETS to a call, and the
   * buckets that may have more go again. A bucket costs one short call of the script when nothing
   * in it has expired (the index is ordered by each swarm's oldest peer). Every instance may run
   * it at once. A bucket whose slot is on another master than the map said is left for the next
   * sweep (the map is refreshed meanwhile). A failure is logged and counts as nothing removed
   * (the next tick retries).
   */
  async sweep(now: number, budget: number): Promise<number> {
    const cutoff = now - this.#peerTimeout;
    let removed = 0;
    let todo = Array.from({ length: BUCKETS }, (_, b) => b);
    try {
      while (todo.length > 0 && removed < budget) {
        const next: number[] = [];
        const calls: Promise<void>[] = [];
        for (const group of this.#byServer(todo).values())
          for (let i = 0; i < group.length; i += SWEEP_BUCKETS) {
            const bs = group.slice(i, i + SWEEP_BUCKETS);
            const args = [this.#indexes[bs[0]], cutoff, Math.min(budget - removed, 1000)];
            for (const b of bs) args.push(this.#bases[b]);
            calls.push(
              this.#script<number[]>('heraldSweep', args).then((r) => {
                removed += r[0];
                for (const [k, b] of bs.entries()) if (r[k + 1] === 1) next.push(b);
              }),
            );
          }
        await Promise.all(calls);
        todo = next;
      }
    } catch (err) {
      this.#failed(err);
    }
    return removed;
  }

  /** Every peer of these swarms, removed (one script per bucket, sent together); the peers removed. */
  async dropSwarms(infoHashes: readonly Uint8Array[]): Promise<number> {
    let removed = 0;
    const calls: Promise<void>[] = [];
    for (const [b, at] of byBucket(infoHashes, (h) => this.#bucketOf(h)))
      calls.push(
        this.#script<number>('heraldDrop', [
          this.#indexes[b],
          this.#bases[b],
          ...at.map((i) => Buffer.from(infoHashes[i])),
        ]).then((n) => {
          removed += n;
        }),
      );
    try {
      await Promise.all(calls);
    } catch (err) {
      this.#failed(err);
    }
    return removed;
  }

  /** `buckets` by the server they are on: one group on one server, a group per master on a Cluster. */
  #byServer(buckets: number[]): Map<string, number[]> {
    const groups = new Map<string, number[]>();
    for (const b of buckets) {
      const node = this.#serverOf(b);
      const g = groups.get(node);
      if (g === undefined) groups.set(node, [b]);
      else g.push(b);
    }
    return groups;
  }

  /** The master holding bucket `b`'s slot by the client's slot map ('' on one server). */
  #serverOf(b: number): string {
    return this.#serverOfSlot(this.#slots[b]);
  }

  /** The master holding Cluster slot `slot` by the client's slot map ('' on one server). */
  #serverOfSlot(slot: number): string {
    return this.client instanceof Cluster ? (this.client.slots[slot]?.[0] ?? '') : '';
  }

  async stats(): Promise<SwarmStats> {
    const t = [0, 0, 0, 0, 0];
    try {
      await this.#eachBucket(async (b) => {
        const key = Buffer.concat([this.#bases[b], Buffer.from('n')]);
        const r = await this.#bounded(this.client.hmget(key, 't', '4s', '4l', '6s', '6l'));
        for (let i = 0; i < 5; i++) t[i] += Number(r[i] ?? 0);
      });
    } catch (err) {
      throw this.#refusal(err);
    }
    const [torrents, s4, l4, s6, l6] = t;
    return {
      torrents,
      peers: s4 + l4 + s6 + l6,
      seeders: s4 + s6,
      leechers: l4 + l6,
      peers4: s4 + l4,
      peers6: s6 + l6,
    };
  }

  #eachBucket(fn: (b: number) => Promise<void>): Promise<void> {
    return eachBucket(fn);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#deadlines);
    clearInterval(this.#clocks);
    try {
      await Promise.race([this.client.quit(), new Promise((resolve) => setTimeout(resolve, 1000).unref())]);
    } catch {}
    this.client.disconnect();
  }
}

/** Most announces in one ANNOUNCE_BATCH call (bounds how long one script holds Redis). */
const MAX_BATCH = 128;
/** Each server's clock is measured again this often (ms; #measureClocks). */
const CLOCKS_MS = 5000;
/** Most buckets in one SWEEP call. */
const SWEEP_BUCKETS = 256;

/** A call waiting for Redis, under its deadline (`#bounded`, `#expire`). */
interface Pending {
  /** Its deadline, by the monotonic clock (ms). */
  at: number;
  fail: (err: Error) => void;
  /** Answered or failed by the client already. */
  settled: boolean;
}

/** The parts of an ioredis Command that `#sendKeyed` reads and sets for its command timeout. */
interface TimedCommand {
  _commandTimeoutTimer?: NodeJS.Timeout;
  isResolved: boolean;
  reject: (err: Error) => void;
}

/** The part of an ioredis connection's queue of sent, unanswered commands that #unansweredNodes reads. */
interface CommandQueue {
  length: number;
  peekAt(i: number): { command: { _commandTimeoutTimer?: unknown } } | undefined;
}

/** redis_module: see src/config/schema.ts. */
export type RedisModuleMode = 'auto' | 'off' | 'require';

/** The server does not know the command (no module loaded). */
function unknownCommand(err: unknown): boolean {
  return /unknown command/i.test(err instanceof Error ? err.message : String(err));
}

/** The server does not have the script (EVALSHA of a SHA1 it never loaded or has flushed). */
function noScript(err: unknown): boolean {
  return err instanceof Error && err.message.startsWith('NOSCRIPT');
}

/** ANNOUNCE_BATCH's SHA1, the name EVALSHA calls it by. */
const ANNOUNCE_BATCH_SHA = createHash('sha1').update(ANNOUNCE_BATCH).digest('hex');
/** ACCOUNT's SHA1. */
const ACCOUNT_SHA = createHash('sha1').update(ACCOUNT).digest('hex');

/** A Cluster's redirection: the slot has moved (MOVED) or is moving (ASK) to another master. */
function redirected(err: unknown): boolean {
  const m = err instanceof Error ? err.message : '';
  return m.startsWith('MOVED ') || m.startsWith('ASK ');
}
