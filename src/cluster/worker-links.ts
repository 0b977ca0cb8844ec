import type { Accountant } from '../accounting/accountant.ts';
import type { Logger } from '../core/log.ts';
import type { TrackerCounters } from '../core/metrics.ts';
import type { SwarmStore } from '../swarm/types.ts';
import type { AccountStep } from '../tracker/service.ts';
import { StatsReporter, type StatsSnapshot } from '../tracker/stats.ts';
import { ClusterBus } from './bus.ts';
import { SharedFullScrapeGates } from './full-scrape-gate.ts';
import { MemberLimits } from './member-limits.ts';
import { MessageType, writeText } from './messages.ts';
import { SharedPeerLists } from './peer-list-gate.ts';
import { ShardedSwarmStore } from './sharded-store.ts';
import { answerStats, gatherStats } from './stats-gather.ts';
import { WebRtcShard } from './webrtc-shard.ts';

/** `createTracker`'s `deps.cluster`: this process is worker `index` of `count` (src/cluster/primary.ts). */
export interface WorkerCluster {
  clusterId: string;
  index: number;
  count: number;
  workersDown?: () => number[];
  /** UDP sockets inherited from the primary's steering groups, by UDP listener. */
  udpFds?: (number | null)[];
  /** The host's table of connections per address, inherited (src/cluster/connection-table.ts). */
  connTableFd?: number | null;
  /** The swarms every worker maps (worker_swarms = shared, src/store/shared/), inherited. */
  sharedSwarmsFd?: number | null;
  /** The secret connections between workers start with (hex). */
  busToken?: string;
  /** The directory of the workers' bus sockets (mode 0700; see ClusterBus). */
  busDir?: string | null;
  /** The primary collects and writes this worker's accounting (src/cluster/accounting-link.ts). */
  primaryWritesAccounting?: boolean;
}

/**
 * What a worker of `herald serve --workers N` sets up to talk to the other workers: the bus
 * between them (src/cluster/bus.ts) and what runs over it. The composition root builds its pieces
 * (store, service, frontends), then hooks each one that needs the other workers here:
 *
 * - `open`: the bus, and with the memory store the sharded store over it (swarms sharded by info
 *   hash, issue #13). A shared store (Redis) needs no sharding: every worker talks to it
 *   directly, as several instances do (issue #14), and the bus carries the rest (below).
 * - `stats`: `/stats` and `/metrics` for the whole tracker (each worker answers with its own figures).
 * - `privateMode`: accounting in the worker that owns the torrent, and `peers_per_member` and
 *   download slots counted by each member's home worker (src/cluster/member-limits.ts).
 * - `webRtcShard`: WebTorrent swarms sharded over the workers (on a store without WebTorrent swarms
 *   of its own).
 * - `fullScrapeGates`: one address's full scrapes counted for the whole tracker.
 * - `peerLists`: a member's peer lists (`peer_list_limit`) counted by its home worker.
 * - `httpRelay`: the HTTP listeners' relay of another worker's announces (sharded only).
 * - `start` / `stop`: in the tracker's start and stop.
 *
 * One process (no `deps.cluster`, or one worker) has no links: `open` returns null.
 */
export class WorkerLinks {
  readonly bus: ClusterBus;
  /** The swarm store sharded over the workers (memory store), or null (shared store). */
  readonly sharded: ShardedSwarmStore | null;
  /**
   * Sharded, with the bus's secret: the HTTP listeners' relay of announces for another worker's
   * swarm, straight from C (the batched addon, `HttpFrontend`'s `relay`); null otherwise.
   */
  readonly httpRelay: { clusterId: string; index: number; count: number; secret: Buffer } | null;
  readonly #local: SwarmStore;
  readonly #owned: SwarmStore;
  readonly #logger: Logger;
  #memberLimits: MemberLimits | null = null;
  #rtcShards: WebRtcShard | null = null;

  private constructor(
    bus: ClusterBus,
    sharded: ShardedSwarmStore | null,
    stores: { local: SwarmStore; owned: SwarmStore },
    cluster: WorkerCluster,
    logger: Logger,
  ) {
    this.bus = bus;
    this.sharded = sharded;
    this.httpRelay =
      sharded !== null && cluster.busToken
        ? {
            clusterId: cluster.clusterId,
            index: cluster.index,
            count: cluster.count,
            secret: Buffer.from(cluster.busToken, 'hex'),
          }
        : null;
    this.#local = stores.local;
    this.#owned = stores.owned;
    this.#logger = logger;
  }

  /**
   * The links of worker `cluster.index`, or null for one process. `local` is this process's own
   * store (memory or Redis); `owned` is what holds its swarms (`local`, or the connectable check
   * around it), which a sharded store serves to the other workers.
   */
  static open(opts: {
    cluster: WorkerCluster | undefined;
    local: SwarmStore;
    owned: SwarmStore;
    logger: Logger;
  }): WorkerLinks | null {
    const { cluster, local, owned, logger } = opts;
    if (cluster === undefined || cluster.count <= 1) return null;
    const token = cluster.busToken ? Buffer.from(cluster.busToken, 'hex') : null;
    // Swarms every worker maps (SharedMemorySwarmStore) are served like a shared store's.
    const sharded =
      local.synchronous === true && local.sharedByProcesses !== true
        ? new ShardedSwarmStore({
            local: owned,
            logger,
            clusterId: cluster.clusterId,
            token,
            dir: cluster.busDir ?? null,
            index: cluster.index,
            count: cluster.count,
          })
        : null;
    // Workers on a shared store (Redis): every worker talks to the store as an instance of its own;
    // the bus between them carries the figures of /stats and /metrics, the full scrape's limits and,
    // on a store without WebTorrent swarms of its own, WebTorrent (sharded over the workers as with
    // the memory store; on Redis, WebTorrent swarms are in Redis too).
    const bus =
      sharded?.bus ??
      new ClusterBus({
        clusterId: cluster.clusterId,
        token,
        dir: cluster.busDir ?? null,
        index: cluster.index,
        count: cluster.count,
        logger,
        handler: (type, id, _body, _at, reply, done) => {
          logger.error('cluster: unexpected message on a shared store', { type });
          writeText(reply, MessageType.failure, id, 'internal error');
          done();
        },
      });
    return new WorkerLinks(bus, sharded, { local, owned }, cluster, logger);
  }

  /**
   * The stats reporter of this worker: its `snapshot()` adds up every worker's figures (asked over
   * the bus), and this worker answers the others' requests with its own (`localSnapshot`).
   * Sharded, the swarm figures are each worker's own shard's; on a shared store, the store's.
   */
  stats(counters: TrackerCounters): StatsReporter {
    const { bus, sharded } = this;
    const stats = sharded
      ? new StatsReporter(counters, this.#local, () => sharded.gather<StatsSnapshot>(), {
          index: bus.index,
          shared: false,
        })
      : new StatsReporter(counters, this.#owned, () => gatherStats(bus), {
          index: bus.index,
          shared: true,
          // Redis holds the WebTorrent swarms too; with swarms in shared memory they are sharded.
          sharedRtc: this.#local.sharedByProcesses !== true,
        });
    if (sharded) sharded.localStats = () => stats.localSnapshot();
    else answerStats(bus, () => stats.localSnapshot());
    return stats;
  }

  /**
   * Private mode on the sharded store: accounting runs in the worker that owns the torrent
   * (`ShardedSwarmStore.privateMode`); peers per member and download slots are counted by each
   * member's home worker, over every worker (MemberLimits). Nothing on a shared store (its
   * accounting is in Redis).
   */
  privateMode(opts: {
    accountant: Accountant;
    account: AccountStep;
    /** `peers_per_member` (0 = no limit). */
    peerLimit: number;
    /** The hash that routes a torrent (both hashes of a hybrid go to one owner). */
    routeOf: (infoHash: Uint8Array) => Uint8Array;
  }): void {
    const { sharded } = this;
    if (sharded === null) return;
    const { accountant } = opts;
    this.#memberLimits = new MemberLimits({
      bus: sharded.bus,
      logger: this.#logger,
      counts: {
        peerLimit: opts.peerLimit,
        slotsOf: (id) => accountant.rules.slotsOf(id),
        held: (id, expire) => accountant.rules.held(id, expire),
        note: (refusal) => accountant.rules.note(refusal),
      },
    });
    sharded.privateMode({
      account: opts.account,
      routeOf: opts.routeOf,
      activity: (id) => accountant.activity(id),
      limits: this.#memberLimits,
      claims: (req, member, torrent) => accountant.claims(req, member, torrent),
    });
  }

  /** WebTorrent swarms sharded over the workers, like the TCP/UDP swarms, over the same bus. */
  webRtcShard(): WebRtcShard {
    this.#rtcShards ??= new WebRtcShard({ bus: this.bus, logger: this.#logger });
    return this.#rtcShards;
  }

  /**
   * A member's peer lists counted by its home worker over every worker
   * (src/cluster/peer-list-gate.ts), on the memory store and on Redis alike.
   */
  peerLists(opts: { limit: number; window: number; now: () => number }): SharedPeerLists {
    return new SharedPeerLists({ bus: this.bus, logger: this.#logger, ...opts });
  }

  /** One address's full scrapes counted for the whole tracker (worker 0 keeps the limits). */
  fullScrapeGates(intervalSeconds: number): SharedFullScrapeGates {
    return new SharedFullScrapeGates(this.bus, intervalSeconds);
  }

  /**
   * Connects to the other workers, then syncs the member limits and tells the other workers'
   * WebTorrent shards this process started (their peers of its previous process are dropped).
   */
  async start(): Promise<void> {
    await this.bus.start();
    this.#memberLimits?.start();
    this.#rtcShards?.start();
  }

  /** After the store has closed: the bus of a shared store's workers (a sharded store closes its own). */
  async stop(): Promise<void> {
    if (this.sharded === null) await this.bus.stop();
  }
}
