import { Accountant, type RemovePeer } from '../accounting/accountant.ts';
import type { PeerRules } from '../accounting/rules.ts';
import { sharedAccounting, sharedWebRtcAccounting } from '../accounting/shared.ts';
import type { ShardedSwarmStore } from '../cluster/sharded-store.ts';
import type { HeraldConfig } from '../config/schema.ts';
import type { ConnectableChecker } from '../connectable/checker.ts';
import type { Clock } from '../core/clock.ts';
import type { Logger } from '../core/log.ts';
import { AnnounceEvent } from '../core/types.ts';
import type { ClassDef } from '../policy/classes.ts';
import type { AccessChange, Policy } from '../policy/policy.ts';
import type { RedisSwarmStore } from '../store/redis/redis-store.ts';
import { RedisPeers, RedisSlots } from '../store/redis/slots.ts';
import type { SwarmStore } from '../swarm/types.ts';
import type { AccountStep, Dispatch, RemoteAccountStep } from '../tracker/service.ts';
import type { AccountingStats } from '../tracker/stats.ts';

/** The peer id of the `stopped` that takes a peer out of a store (which keys peers by endpoint). */
const NO_PEER_ID = new Uint8Array(20);

/** Private mode's accounting, as the composition root hands it to the announce service and the rest. */
export interface PrivateWiring {
  accountant: Accountant;
  rules: PeerRules;
  /** The owner's accounting step (TrackerService `account`). */
  account: AccountStep;
  /**
   * WebTorrent peers' accounting where a limit counts them beyond this process (TrackerService
   * `wsAccount`): with workers, in the torrent's owner; on Redis, against the shared baselines.
   */
  wsAccount: RemoteAccountStep | undefined;
  /** On Redis: the announce accounted from the baselines the store's script returns. */
  shared: Dispatch | undefined;
  /** The hash that routes a torrent: both hashes of a hybrid go to one owner (workers) or bucket (Redis). */
  routeOf: (infoHash: Uint8Array) => Uint8Array;
  /** Whether a limit counts a member's peers or leeching torrents beyond one socket's process. */
  peerLimits: boolean;
  /** The accounting figures of /stats. */
  stats(): AccountingStats;
  /** Takes the peers of members who lost access out of the swarms (at a policy reload). */
  revoke(change: AccessChange): void;
}

/**
 * Private mode's accounting (issue #5, the rules of #16): the accountant over the policy snapshot,
 * its peer rules, and where it runs with workers (the owner of the torrent) and on Redis (the shared
 * baselines, download slots and member places in Redis). `local`: this process's swarms (its
 * shard, or Redis), from which peers whose baselines accounting forgets are taken out.
 */
export function privateWiring(o: {
  config: HeraldConfig;
  classes: readonly ClassDef[];
  policy: Policy;
  local: SwarmStore;
  redis: RedisSwarmStore | null;
  sharded: ShardedSwarmStore | null;
  connectable: ConnectableChecker | null;
  clock: Clock;
  logger: Logger;
}): PrivateWiring {
  const { config, policy, redis, sharded, connectable, clock, logger } = o;
  const rules: PeerRules = {
    peersPerTorrent: config.peersPerTorrent,
    peersPerMember: config.peersPerMember,
    minGap: config.earlyAnnounce === 'off' ? 0 : Math.max(0, config.minInterval - config.announceGrace),
    early: config.earlyAnnounce === 'refuse' ? 'refuse' : 'warn',
  };
  // Takes a peer out of this process's swarms (its shard, or Redis), as a `stopped` from its endpoint
  // would: for peers whose baselines accounting forgets (access lost, or accounting_max_peers full).
  const removePeer: RemovePeer = (infoHash, family, addr, port) => {
    const r = o.local.announce(
      {
        infoHash: Buffer.from(infoHash, 'latin1'),
        peerId: NO_PEER_ID,
        family,
        ip: Buffer.from(addr, 'latin1'),
        port,
        uploaded: 0,
        downloaded: 0,
        left: 0,
        event: AnnounceEvent.stopped,
        numWant: 0,
        wantPeerIds: false,
      },
      clock.now(),
    );
    if (r instanceof Promise)
      r.catch((err) => logger.warn('peer not removed from the store', { err: String(err) }));
  };
  const accountant = new Accountant({
    logger,
    clock,
    snapshot: () => policy.snapshot,
    flushInterval: config.flushInterval,
    maxRate: config.maxRate,
    peerTimeout: config.peerTimeout,
    maxPeers: config.accountingMaxPeers,
    rules,
    evict: removePeer,
  });
  // On Redis: baselines live with the peers in Redis, shared by every instance, and a torrent's
  // swarms (both hashes of a hybrid) in the bucket of its route hash (issue #14).
  const routeOf = (h: Uint8Array): Uint8Array => policy.snapshot.torrents.get(h)?.route ?? h;
  if (redis !== null) redis.routeOf = routeOf;
  // The owner's accounting step; with the connectable check on, the request carries whose announce
  // it is on to the store (ConnectableStore).
  const account: AccountStep = (req, member, torrent, now) => {
    if (connectable !== null) {
      req.memberId = member.id;
      req.torrentId = torrent.id;
    }
    return accountant.account(req, member, torrent, now);
  };
  // On Redis: accounting from the baselines the announce script returns, download slots and
  // member places counted in Redis (issue #16).
  const redisPeers = redis !== null ? new RedisPeers(redis, config.peerTimeout) : null;
  const redisSlots = redis !== null ? new RedisSlots(redis, config.peerTimeout, config.redisTimeout) : null;
  const shared =
    redis !== null
      ? sharedAccounting(redis, accountant, rules, redisSlots ?? undefined, redisPeers ?? undefined)
      : undefined;
  // The private-community limits that count a member's peers (or leeching torrents) beyond one
  // socket's process: where they apply, WebTorrent peers are accounted where those counts are (the
  // owner of the torrent with workers; on Redis, their baselines in Redis with the member's other
  // peers', and their places and slots there), and a closed socket frees its peers' places at once.
  const peerLimits =
    rules.peersPerTorrent > 0 || rules.peersPerMember > 0 || o.classes.some((k) => k.slots > 0);
  const wsAccount: RemoteAccountStep | undefined = !peerLimits
    ? undefined
    : sharded
      ? (req, member, torrent, now) => sharded.account(req, member, torrent, now)
      : redis !== null
        ? sharedWebRtcAccounting(redis, accountant, rules, redisSlots ?? undefined, redisPeers ?? undefined)
        : undefined;
  return {
    accountant,
    rules,
    routeOf,
    account,
    wsAccount,
    shared,
    peerLimits,
    stats: () => ({
      flushAgeSeconds: accountant.flushAge(),
      flushes: accountant.counts.flushes,
      flushErrors: accountant.counts.flushErrors,
      flushSeconds: accountant.counts.flushSeconds,
      rowsWritten: accountant.counts.rowsWritten,
      revoked: accountant.counts.revoked,
    }),
    // HTTP/UDP peers of members who lost access leave the swarms at once (not at peer_timeout): the
    // process holding their baselines (the owner of the torrent, with workers) takes them out of the
    // swarms where they are (its shard, or Redis), as a `stopped` from their endpoint would.
    revoke: (change) => {
      accountant.revoke(
        change,
        removePeer,
        // peers_per_member counted in Redis: the peer's place goes with it (RedisPeers.release).
        redisPeers !== null && rules.peersPerMember > 0 ? (place) => redisPeers.release(place) : undefined,
      );
    },
  };
}
