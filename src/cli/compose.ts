import { mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { getHeapStatistics } from 'node:v8';
import { sql } from 'kysely';
import type { Accountant } from '../accounting/accountant.ts';
import { createApiHandler } from '../api/api.ts';
import { AccountingWriter } from '../cluster/accounting-link.ts';
import { openHostConnections } from '../cluster/connection-table.ts';
import { type WorkerCluster, WorkerLinks } from '../cluster/worker-links.ts';
import { parseClasses } from '../config/classes.ts';
import { resolveConfig } from '../config/load.ts';
import { type HeraldConfig, wsIdleTimeout } from '../config/schema.ts';
import { ConnectableChecker } from '../connectable/checker.ts';
import { ConnectableRecorder } from '../connectable/recorder.ts';
import { ConnectableStore, connectableDispatch } from '../connectable/store.ts';
import { parseHostPort } from '../core/address.ts';
import { CachedClock, type Clock } from '../core/clock.ts';
import { ConnectionLimit } from '../core/connection-limit.ts';
import { TrustedProxies } from '../core/forwarded.ts';
import { listenOn } from '../core/listen.ts';
import { createLogger, type Logger } from '../core/log.ts';
import { TrackerCounters } from '../core/metrics.ts';
import { announceBases } from '../core/urls.ts';
import { VERSION } from '../core/version.ts';
import { type Db, openDatabase } from '../db/connect.ts';
import { Registry } from '../db/registry.ts';
import { HttpFrontend, webTimeouts } from '../frontend/http/server.ts';
import { UdpFrontend } from '../frontend/udp/server.ts';
import { WsFrontend } from '../frontend/ws/server.ts';
import { Mailer } from '../mail/mailer.ts';
import type { MailNotices } from '../mail/notices.ts';
import type { BonusWatch } from '../policy/bonus.ts';
import type { ClassWatch } from '../policy/classes.ts';
import { type HitAndRunWatch, hnrRules, hnrThreshold } from '../policy/hit-and-run.ts';
import { dropUntracked, Policy } from '../policy/policy.ts';
import type { RatioWatch } from '../policy/ratio-watch.ts';
import { MAX_HEAP_BYTES_PER_PEER, MemorySwarmStore } from '../store/memory/memory-store.ts';
import { RedisSwarmStore } from '../store/redis/redis-store.ts';
import { RedisRtcSwarms } from '../store/redis/rtc-swarms.ts';
import { SharedMemorySwarmStore } from '../store/shared/shared-memory-store.ts';
import type { SwarmStore } from '../swarm/types.ts';
import { ExpirySweeper } from '../tracker/expiry.ts';
import { TrackerService } from '../tracker/service.ts';
import { StatsReporter } from '../tracker/stats.ts';
import { createWebHandler } from '../web/app.ts';
import { Health } from '../web/health.ts';
import { createPortal, type Portal } from '../web/portal/portal.ts';
import { privateWiring } from './private-wiring.ts';
import { Schedulers } from './schedulers.ts';

export interface TrackerAddresses {
  http: { host: string; port: number }[];
  https: { host: string; port: number }[];
  udp: { host: string; port: number }[];
  /** Own WebSocket listeners (`ws`); WebTorrent also works on every HTTP(S) listener. */
  ws: { host: string; port: number }[];
  /** The portal's own listeners (`portal_listen`); empty when it shares the HTTP(S) ports. */
  portal: { host: string; port: number }[];
}

/** A running (or startable) Herald tracker: the library API (README "Embedding"). */
export interface Tracker {
  readonly config: HeraldConfig;
  readonly service: TrackerService;
  readonly stats: StatsReporter;
  readonly logger: Logger;
  /** Binds every listener; rejects (and releases what it bound) if one fails. */
  start(): Promise<void>;
  /** Ordered stop: frontends, then expiry and stats, then the store. Idempotent. */
  stop(): Promise<void>;
  /** Actual bound addresses (useful with port 0). */
  addresses(): TrackerAddresses;
  /** Re-read the TLS certificate and key (the CLI calls this on SIGHUP). */
  reloadTls(): void;
  /** The database's staff operations (members, torrents, lists, grants); after `start()`. */
  registry(): Registry;
  /** Policy (mode, passkeys, lists, grants) as loaded from the database. */
  readonly policy: Policy;
  /** Private mode: the accounting step (null otherwise). */
  readonly accountant: Accountant | null;
  /** Private mode: the ratio watch scheduler (null otherwise, and in workers other than the first). */
  readonly ratioWatch: RatioWatch | null;
  /** Private mode: the hit-and-run scheduler (null as `ratioWatch` is). */
  readonly hnrWatch: HitAndRunWatch | null;
  /** Private mode: the member-class scheduler (null as `ratioWatch` is). */
  readonly classWatch: ClassWatch | null;
  /** Private mode: the bonus-point scheduler (null as `ratioWatch` is). */
  readonly bonusWatch: BonusWatch | null;
  /** The community portal (null when `portal` is off). */
  readonly portal: Portal | null;
  /** Account mail (null without `smtp_url`). */
  readonly mailer: Mailer | null;
  /** Mail notices of ratio warnings and hit-and-runs (null without mail, or where no scheduler runs). */
  readonly mailNotices: MailNotices | null;
  /** Announce base URLs (configured `public_urls`, or derived from the listeners). */
  publicUrls(): string[];
  /**
   * Readiness checks behind `/health` (database, listeners, workers); more can be added, e.g. a
   * shared swarm store's connection: `tracker.health.add('store', () => connected || 'disconnected')`.
   */
  readonly health: Health;
}

function listens(list: string[], key: string): { host: string; port: number }[] {
  return list.map((text) => {
    const hp = parseHostPort(text);
    if (hp === null) throw new Error(`config: ${key}: invalid HOST:PORT "${text}"`);
    return hp;
  });
}

/**
 * Builds a tracker from a (partial) configuration; missing keys take their documented defaults
 * and the result is validated as the CLI validates it. Nothing listens until `start()`.
 *
 * @example
 * const tracker = createTracker({ http: ['127.0.0.1:6969'], udp: ['127.0.0.1:6969'] });
 * await tracker.start();
 * // ... later
 * await tracker.stop();
 */
export function createTracker(
  partial: Partial<HeraldConfig> = {},
  deps: {
    logger?: Logger;
    clock?: Clock;
    store?: SwarmStore;
    /** This process is worker `index` of `count` (`herald serve --workers N`, src/cluster/primary.ts). */
    cluster?: WorkerCluster;
  } = {},
): Tracker {
  const config = resolveConfig(partial);
  // Workers are processes that `herald serve` starts (src/cluster/primary.ts); an embedded
  // tracker is this one process.
  if (deps.cluster === undefined && config.workers !== 1)
    throw new Error(
      'config: workers: createTracker runs in this one process; run `herald serve --workers N` for several',
    );
  const logger = deps.logger ?? createLogger(config.logLevel);
  const ownClock = deps.clock === undefined ? new CachedClock() : null;
  const clock = deps.clock ?? ownClock!;
  const counters = new TrackerCounters();
  // Several instances share their swarms through Redis (issue #14; docs/redis.md).
  const redis =
    deps.store === undefined && config.store !== 'memory'
      ? new RedisSwarmStore({
          url: config.store,
          prefix: config.redisPrefix,
          timeoutMs: config.redisTimeout,
          peerTimeout: config.peerTimeout,
          module: config.redisModule,
          logger,
        })
      : null;
  // With workers, swarms in memory are sharded by info hash (below): each worker holds its share
  // of the ceiling, so that the tracker as a whole holds at most max_peers peers in max_torrents
  // torrents, as one process does (info hashes spread evenly over the shards).
  // Or, with worker_swarms = shared, every worker's swarms in the one memfd the primary made: the
  // whole ceiling, no sharding (src/store/shared/).
  const sharedFd = deps.cluster?.sharedSwarmsFd ?? null;
  const shares =
    deps.cluster !== undefined && deps.cluster.count > 1 && sharedFd === null ? deps.cluster.count : 1;
  const maxPeers = Math.ceil(config.maxPeers / shares);
  const local =
    deps.store ??
    redis ??
    (sharedFd !== null
      ? new SharedMemorySwarmStore({ peerTimeout: config.peerTimeout, fd: sharedFd })
      : new MemorySwarmStore({
          peerTimeout: config.peerTimeout,
          maxPeers,
          maxTorrents: Math.ceil(config.maxTorrents / shares),
        }));
  // The connectable check (issue #16, off by default): it wraps the store where the swarms are, so
  // with workers it runs in the worker that owns the swarm (README "Connectable check").
  const connectableOn =
    config.connectableCheck === 'any' || (config.connectableCheck === 'private' && config.mode === 'private');
  const connectableRecorder =
    connectableOn && config.mode === 'private'
      ? new ConnectableRecorder((rows) => getRegistry().connectable.record(rows), logger)
      : null;
  const connectable = connectableOn
    ? new ConnectableChecker({
        concurrency: config.connectableConcurrency,
        queue: config.connectableQueue,
        timeoutMs: config.connectableTimeout * 1000,
        interval: config.connectableInterval,
        allowPrivate: config.connectablePrivateAddresses,
        maxEndpoints: config.maxPeers,
        clock,
        logger,
        record: connectableRecorder ? (r) => connectableRecorder.add(r) : undefined,
      })
    : null;
  const owned =
    connectable !== null
      ? new ConnectableStore(local, connectable, config.connectableOnlyForUnconnectable)
      : local;
  // With workers, the bus between them (src/cluster/worker-links.ts); swarms in memory are sharded
  // by info hash over it: each worker owns its shard (issue #13). A shared store (Redis) needs no
  // sharding: every worker talks to it directly, as several instances do (issue #14).
  const cluster = deps.cluster;
  const links = WorkerLinks.open({ cluster, local, owned, logger });
  const workers = links !== null;
  const sharded = links?.sharded ?? null;
  const store: SwarmStore = sharded ?? owned;
  const reusePort = workers;
  // Policy and accounting read the database through in-memory snapshots; the database itself is
  // opened by start(). Open mode gets only the (empty, free) blacklist and client-prefix steps.
  // Member classes (issue #16): private mode only (they belong to members).
  const classes = config.mode === 'private' ? parseClasses(config.memberClasses) : [];
  // With workers, a member's peer lists are counted by its home worker over every worker
  // (src/cluster/peer-list-gate.ts), on the memory store and on Redis alike.
  const peerLists =
    config.mode === 'private' && config.peerListLimit > 0
      ? links?.peerLists({
          limit: config.peerListLimit,
          window: config.peerListWindow,
          now: () => clock.now(),
        })
      : undefined;
  const policy = new Policy({
    mode: config.mode,
    logger,
    passkeyPrintKey: cluster?.busToken ? Buffer.from(cluster.busToken, 'hex') : null,
    clock,
    peerListLimit: config.peerListLimit,
    peerListWindow: config.peerListWindow,
    peerLists,
    classes,
  });
  // Workers: the owner of a swarm judges again an announce that another worker judged by an older
  // policy snapshot (each reloads on its own), so a lagging worker cannot put back a peer a change
  // took out.
  sharded?.recheckWith({
    revision: () => policy.snapshot.revision,
    recheck: (req, memberId, torrentId, keyPrint) => policy.recheck(req, memberId, torrentId, keyPrint),
    keyPrint: (member) => policy.keyPrint(member),
  });
  // Private mode: the accountant, its rules, and where it runs (src/cli/private-wiring.ts).
  const priv =
    config.mode === 'private'
      ? privateWiring({ config, classes, policy, local, redis, sharded, connectable, clock, logger })
      : null;
  const accountant = priv?.accountant ?? null;
  let db: Db | null = null;
  let registry: Registry | null = null;
  // With workers, the primary writes every worker's deltas in one transaction (it collects them);
  // one process writes its own.
  const accountWriter =
    accountant && new AccountingWriter(accountant, deps.cluster?.primaryWritesAccounting === true);
  const getRegistry = (): Registry => {
    if (registry === null) throw new Error('the tracker is not started: no database yet');
    return registry;
  };
  // One scheduler for the whole tracker: worker 0 runs it; the others see its changes through
  // the revision, as they see the portal's.
  const scheduler = config.mode === 'private' && (deps.cluster === undefined || deps.cluster.index === 0);
  const service = new TrackerService({
    store,
    clock,
    counters,
    announceSteps: policy.announceSteps(),
    scrapeSteps: policy.scrapeSteps(),
    account: priv?.account,
    wsAccount: priv?.wsAccount,
    // Workers: accounting and the swarm update in the worker that owns the torrent. Redis:
    // accounting from the baselines the announce script returns (WebSocket peers, whose swarms
    // are this instance's own, are accounted here through `account`).
    dispatch: sharded
      ? (req, ctx, now) => sharded.dispatch(req, ctx, now)
      : priv?.shared !== undefined && connectable !== null
        ? connectableDispatch(priv.shared, connectable, config.connectableOnlyForUnconnectable)
        : priv?.shared,
    settings: {
      interval: config.interval,
      minInterval: config.minInterval,
      defaultNumWant: config.defaultNumWant,
      maxNumWant: config.maxNumWant,
    },
  });
  const stats = links?.stats(counters) ?? new StatsReporter(counters, store);
  if (priv !== null) stats.accounting = () => priv.stats();
  if (connectable !== null) stats.connectable = () => connectable.stats();
  // Workers: accounting in the worker that owns the torrent; peers per member and download slots
  // counted by each member's home worker, over every worker (src/cluster/member-limits.ts).
  if (priv !== null)
    links?.privateMode({
      accountant: priv.accountant,
      account: priv.account,
      peerLimit: priv.rules.peersPerMember,
      routeOf: priv.routeOf,
    });
  const onError = (err: unknown) => {
    counters.internalErrors++;
    logger.error('internal error', { err: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  };
  // Readiness (src/web/health.ts): the database answers, every listener is bound, no worker is down.
  // A shared swarm store adds its own check ('store') where it is built.
  const health = new Health((name, err) =>
    logger.warn('health check failed', {
      check: name,
      err: err instanceof Error ? err.message : String(err),
    }),
  );
  let serving = false;
  // A shared swarm store (Redis): its connection, and the WebRTC relay's subscription.
  if (redis !== null)
    health.add('store', () => {
      const h = redis.health();
      // A failure of either is not ready; the store's `degraded` (part of its calls fail) is.
      return typeof h === 'string' ? h : (rtcRedis?.health() ?? h ?? true);
    });
  health.add('database', async () => {
    if (db === null) return 'not open';
    await sql`select 1`.execute(db.kysely);
    return true;
  });
  health.add('listeners', () => {
    if (!serving) return stopped ? 'stopping' : 'starting';
    const a = tracker.addresses();
    const bound = a.http.length + a.https.length + a.udp.length + a.ws.length + a.portal.length;
    const wanted =
      config.http.length + config.https.length + config.udp.length + config.ws.length + portalListen.length;
    return bound >= wanted || `${wanted - bound} of ${wanted} not bound`;
  });
  const workersDown = cluster?.workersDown;
  if (workersDown)
    health.add('workers', () => {
      const down = workersDown();
      return down.length === 0 || `down: ${down.join(', ')}`;
    });
  // Each worker sweeps only its own shard.
  const sweeper = new ExpirySweeper({ store: local, clock, counters, onError });
  // One count per address over every HTTP(S), WebSocket and portal listener; with workers, over
  // every worker (a table they all map, src/cluster/connection-table.ts).
  const connTableFd = deps.cluster?.connTableFd ?? null;
  const connectionLimit =
    config.maxConnectionsPerIp > 0
      ? new ConnectionLimit(
          config.maxConnectionsPerIp,
          counters,
          new TrustedProxies(config.trustedProxies),
          connTableFd === null ? null : openHostConnections(connTableFd, deps.cluster!.index, logger),
        )
      : null;
  // WebTorrent: its own swarms of WebRTC peers, the same policy and accounting (service.authorize);
  // with workers, sharded like the TCP/UDP swarms, over the same bus; with Redis, shared by every
  // instance (and worker process) on it, offers and answers over Redis pub/sub (docs/redis.md
  // "WebTorrent").
  const rtcRedis =
    redis !== null
      ? new RedisRtcSwarms({ store: redis, logger, peerTimeout: config.peerTimeout, now: () => clock.now() })
      : null;
  const rtcShards = rtcRedis === null ? (links?.webRtcShard() ?? null) : null;
  // With workers, one address's full scrapes are counted for the whole tracker (worker 0 keeps the
  // limits), not per worker.
  const fullScrapeGates = config.fullScrape
    ? (links?.fullScrapeGates(config.fullScrapeInterval) ?? null)
    : null;
  const ws = new WsFrontend({
    service,
    listen: listens(config.ws, 'ws'),
    logger,
    interval: config.interval,
    minInterval: config.minInterval,
    peerTimeout: config.peerTimeout,
    idleTimeoutMs: wsIdleTimeout(config) * 1000,
    firstAnnounceTimeoutMs: config.wsFirstAnnounceTimeout * 1000,
    pingIntervalMs: config.wsPingInterval * 1000,
    fullScrape: config.fullScrape && config.mode !== 'private',
    fullScrapeInterval: config.fullScrapeInterval,
    fullScrapeGate: fullScrapeGates?.ws,
    authorize: (req, ctx) => service.authorizeWs(req, ctx),
    authorizeScrape: (hashes, ctx) => service.authorizeScrape(hashes, ctx),
    // Access withdrawn (a revoked grant, a disabled member, a reset passkey, a hash off the allow
    // list) closes the WebSockets that hold it at the next policy reload.
    revalidate: config.mode !== 'open',
    freeOnClose: priv?.peerLimits ?? false,
    logRequests: config.logRequests,
    reusePort,
    connectionLimit,
    shards: rtcShards ?? rtcRedis ?? undefined,
  });
  policy.onReload(() => ws.revalidate());
  // HTTP/UDP peers of members who lost access leave the swarms at once (PrivateWiring.revoke).
  if (priv !== null) policy.onReload((change) => priv.revoke(change));
  // Info hashes no longer tracked at all (off the allow list, onto the deny list, a registered torrent
  // removed) leave the swarms whole at once, whoever their peers are: each process drops them from
  // its own store (a worker's shard holds them or not; on Redis every instance drops the same keys).
  policy.onReload((change) => {
    dropUntracked(local, change.hashes).catch((err) =>
      logger.warn('untracked swarms not removed from the store', { err: String(err) }),
    );
  });
  stats.webrtc = () => {
    const s = ws.stats();
    const figures = (w: { swarms: number; peers: number; seeders: number; leechers: number }) => ({
      sockets: s.sockets,
      swarms: w.swarms,
      peers: w.peers,
      seeders: w.seeders,
      leechers: w.leechers,
    });
    // With Redis, every instance's swarms.
    return rtcRedis === null ? figures(s) : rtcRedis.counts().then(figures);
  };
  // The portal: on by default in private mode; on the tracker's HTTP(S) ports unless it has
  // listeners of its own (portal_listen).
  const portalOn = config.portal === 'on' || (config.portal === 'auto' && config.mode === 'private');
  // Account mail (issue #16): for the portal's mails and the schedulers' notices.
  const mailer = portalOn || scheduler ? Mailer.fromConfig(config, logger) : null;
  const schedulers = scheduler
    ? new Schedulers(config, classes, {
        registry: getRegistry,
        clock,
        logger,
        refreshPolicy: () => policy.refresh(),
        mailer,
      })
    : null;
  // What a member seeds and leeches now (portal, API). With workers, each owns the holdings of its
  // torrents: the figures are added up.
  const activity = accountant
    ? sharded
      ? (id: number) => sharded.activity(id)
      : (id: number) => accountant.activity(id)
    : undefined;
  const portal = portalOn
    ? createPortal({
        config,
        mailer,
        registry: getRegistry,
        refreshPolicy: () => policy.refresh(),
        promotions: () => policy.snapshot.promotions,
        scrape: (hashes) => store.scrape(hashes, clock.now()),
        stats: () => stats.snapshot(),
        urls: () => publicUrls(),
        activity,
        onError,
      })
    : null;
  const portalListen = portal ? listens(config.portalListen, 'portal_listen') : [];
  const portalServers: Server[] = [];
  const http = new HttpFrontend({
    service,
    http: listens(config.http, 'http'),
    https: listens(config.https, 'https'),
    tls: config.tlsCert && config.tlsKey ? { certFile: config.tlsCert, keyFile: config.tlsKey } : null,
    trustedProxies: config.trustedProxies,
    trustIpParam: config.trustIpParam,
    // A private tracker's full scrape would list its torrents to anyone: never offered there.
    fullScrape: config.fullScrape && config.mode !== 'private',
    fullScrapeInterval: config.fullScrapeInterval,
    fullScrapeGate: fullScrapeGates?.http,
    maxScrapeHashes: config.maxScrapeHashes,
    idleTimeoutMs: config.httpIdleTimeout * 1000,
    connectionLimit,
    io: config.httpIo,
    upgrade: (req, socket, head) => ws.handleUpgrade(req, socket, head),
    rawUpgrade: {
      isPath: (url) => ws.isTrackerPath(url),
      accept: (url, h, socket, head) => ws.accept(url, h, socket, head),
    },
    web: createWebHandler({
      stats,
      onError,
      api: config.apiToken
        ? createApiHandler({
            token: config.apiToken,
            registry: getRegistry,
            policy,
            stats,
            onError,
            urls: () => publicUrls(),
            activity,
            peerTimeout: config.peerTimeout,
            connectableMaxAge: config.connectableInterval + config.peerTimeout,
            hnrThreshold: hnrThreshold(hnrRules(config)),
            classes,
            promotions: {
              uploadFactor: config.promotionUploadFactor,
              featuredDays: config.featuredDays,
              tokenDays: config.freeleechTokenDays,
            },
            require2faForStaff: config.require2faForStaff,
          })
        : null,
      portal: portal && portalListen.length === 0 ? (req, res) => portal.handle(req, res) : null,
      portalPath: config.portalPath,
      health,
    }),
    logger,
    logRequests: config.logRequests,
    reusePort,
    // Announces for another worker's swarm go to it from C (the batched addon's relay).
    relay: links?.httpRelay ?? null,
  });
  if (config.http.length > 0 || config.https.length > 0) stats.http = () => http.stats();
  const udp = new UdpFrontend({
    service,
    listen: listens(config.udp, 'udp'),
    secret: config.udpSecret ? Buffer.from(config.udpSecret, 'hex') : null,
    logger,
    logRequests: config.logRequests,
    io: config.udpIo,
    reusePort,
    inherited: cluster?.udpFds,
  });
  let started = false;
  let stopped = false;
  const tracker: Tracker = {
    config,
    service,
    stats,
    logger,
    async start() {
      if (started) return;
      started = true;
      mkdirSync(config.dataDir, { recursive: true });
      try {
        db = await openDatabase(config.databaseUrl, config.dataDir);
        registry = new Registry(db, { maxBytes: config.maxTorrentBytes, maxFiles: config.maxTorrentFiles });
        stats.schema = db.schemaVersion;
        await policy.connect(registry);
        accountant?.connect(registry);
        // The other workers: the bus, member limits, WebTorrent shards.
        await links?.start();
        // Redis: start serving even if it is not reachable yet (announces are refused with a clear
        // reason and /health says degraded until it is), after a short wait for the connection.
        if (redis !== null)
          await redis.ready(5000).catch((err) =>
            logger.warn('redis store not reachable yet: announces are refused until it is', {
              err: String(err),
            }),
          );
        await rtcRedis?.start(redis?.client.status === 'ready' ? 5000 : 0);
        await http.start();
        await udp.start();
        await ws.start();
        for (const l of portalListen) {
          // http_idle_timeout for heads and idle connections, as on the tracker's own ports.
          const server = createServer(webTimeouts(config.httpIdleTimeout * 1000), (req, res) =>
            portal!.handle(req, res),
          );
          connectionLimit?.guard(server);
          portalServers.push(server);
          // Dual-stack on '[::]', as before: the portal has no separate IPv4 listener to make room for.
          await listenOn(server, 'http', 'portal_listen', l, { ipv6Only: false, reusePort });
        }
      } catch (err) {
        await tracker.stop();
        throw err;
      }
      serving = true;
      // Workers on a shared store: one sweeper is enough (worker 0; every instance has its own).
      if (sharded !== null || !workers || cluster?.index === 0) sweeper.start();
      stats.start();
      policy.start(config.policyRefresh);
      accountWriter?.start();
      connectableRecorder?.start(config.flushInterval);
      schedulers?.start();
      // The portal's periodic snapshot (site figures, earned invites, expired sessions) is the
      // tracker's, not a worker's: worker 0 takes it, as it runs the scheduler.
      if (deps.cluster === undefined || deps.cluster.index === 0) portal?.start();
      // The worst case of max_peers must fit the JavaScript heap: otherwise enough addresses (an
      // IPv6 prefix) could make the process run out of memory before the store refuses anyone.
      const heapLimit = getHeapStatistics().heap_size_limit;
      if (
        deps.store === undefined &&
        redis === null &&
        sharedFd === null &&
        maxPeers * MAX_HEAP_BYTES_PER_PEER > heapLimit * 0.75
      )
        logger.warn(
          'max_peers may not fit in the JavaScript heap: lower it, or raise node --max-old-space-size',
          {
            maxPeers,
            worstCaseMiB: Math.ceil((maxPeers * MAX_HEAP_BYTES_PER_PEER) / 2 ** 20),
            heapLimitMiB: Math.floor(heapLimit / 2 ** 20),
          },
        );
      if (portal !== null && config.publicUrls.length === 0)
        logger.warn(
          'portal: public_urls is not set; .torrent files get announce URLs from the listen addresses',
          {
            urls: publicUrls(),
          },
        );
      const a = tracker.addresses();
      logger.info('herald listening', {
        http: a.http.map(fmt),
        httpIo: http.io,
        udpIo: udp.io,
        https: a.https.map(fmt),
        udp: a.udp.map(fmt),
        ws: a.ws.map(fmt),
        portal:
          portal === null
            ? 'off'
            : portalListen.length === 0
              ? 'on the http(s) listeners'
              : portalAddresses().map(fmt),
        dataDir: config.dataDir,
        mode: config.mode,
        store: redis === null ? 'memory' : `redis (prefix ${config.redisPrefix})`,
        database: db?.describe,
        schema: db?.schemaVersion,
        version: VERSION,
      });
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      serving = false;
      // Together: a WebSocket that arrived on an HTTP listener is still that listener's connection,
      // so the HTTP server's close waits for the WebSocket frontend to close it.
      await Promise.all([http.stop(), udp.stop(), ws.stop()]);
      portal?.stop();
      for (const server of portalServers) {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
      sweeper.stop();
      stats.stop();
      policy.stop();
      // WebRTC peers this instance still holds in Redis leave before its connection closes.
      await rtcRedis?.close();
      await schedulers?.stop();
      mailer?.stop();
      // Every pending accounting delta is written before the database closes.
      if (registry !== null) await accountWriter?.stop();
      // No check is left running, then its last results are written before the database closes.
      connectable?.close();
      await connectableRecorder?.stop();
      await store.close();
      // A shared store's workers: their bus (a sharded store closes its own).
      await links?.stop();
      await db?.close();
      ownClock?.stop();
    },
    addresses() {
      const all = http.addresses();
      return {
        http: all.filter((a) => a.protocol === 'http').map(({ host, port }) => ({ host, port })),
        https: all.filter((a) => a.protocol === 'https').map(({ host, port }) => ({ host, port })),
        udp: udp.addresses(),
        ws: ws.addresses().map(({ host, port }) => ({ host, port })),
        portal: portalAddresses(),
      };
    },
    reloadTls() {
      http.reloadTls();
    },
    registry: getRegistry,
    policy,
    accountant,
    ratioWatch: schedulers?.ratioWatch ?? null,
    hnrWatch: schedulers?.hnrWatch ?? null,
    classWatch: schedulers?.classWatch ?? null,
    bonusWatch: schedulers?.bonusWatch ?? null,
    portal,
    mailer,
    mailNotices: schedulers?.mailNotices ?? null,
    publicUrls: () => publicUrls(),
    health,
  };
  function portalAddresses(): { host: string; port: number }[] {
    return portalServers.flatMap((s) => {
      const a = s.address();
      return a !== null && typeof a === 'object' ? [{ host: a.address, port: a.port }] : [];
    });
  }
  /** Announce base URLs: configured, or derived from the bound listeners. */
  function publicUrls(): string[] {
    return announceBases(config.publicUrls, tracker.addresses());
  }
  return tracker;
}

function fmt(a: { host: string; port: number }): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}
