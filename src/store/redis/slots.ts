import { createHash } from 'node:crypto';
import { Errors, type TrackerError } from '../../core/errors.ts';
import type { PeerPlace, SlotClaim } from '../../core/types.ts';
import { bucketOf } from './records.ts';
import type { RedisSwarmStore } from './redis-store.ts';
import { timeWithin } from './scripts.ts';

/**
 * Claim: one leeching announce of a member whose class has download slots (issue #16).
 * KEYS[1] the member's slot set. ARGV: the torrent's entry ('<bucket>:<torrent id>'), slots, key
 * expiry (seconds), '1' to add the entry beyond the slots (the member holds the torrent already),
 * the call's deadline (ms by the server's clock, '0': none; past it the call answers LATE and
 * changes nothing: `timeWithin`), then pairs of entry and score to remove first, each only if its
 * score is still that one (no announce claimed it since it was judged). Scores are the Redis
 * server's time in milliseconds (one clock for every instance; a new claim almost always writes a
 * new score). Returns 1 when the entry is claimed (or refreshed), else {the server's time (ms),
 * entry, score, ...} to judge.
 */
export const CLAIM = `#!lua
local key, entry = KEYS[1], ARGV[1]
${timeWithin(5)}
for i = 6, #ARGV, 2 do
  if redis.call('ZSCORE', key, ARGV[i]) == ARGV[i + 1] then redis.call('ZREM', key, ARGV[i]) end
end
if ARGV[4] == '1' or redis.call('ZSCORE', key, entry) or redis.call('ZCARD', key) < tonumber(ARGV[2]) then
  redis.call('ZADD', key, ms, entry)
  redis.call('EXPIRE', key, ARGV[3])
  return 1
end
local out = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
table.insert(out, 1, ms)
return out
`;

/**
 * Claim: one announce of a member's peer when `peers_per_member` is set (issue #16).
 * KEYS[1] the member's peer set. ARGV: the peer's entry ('<bucket>:<torrent id>:<peer id, hex>'),
 * the limit, `peer_timeout` in milliseconds, '1' to add the entry whatever the count (a peer this
 * instance holds already refreshes its place), the call's deadline (as CLAIM's). Entries not
 * claimed for `peer_timeout` (silent peers) are removed first. Scores are the Redis server's time
 * in milliseconds (one clock for every instance). Returns 1 when the entry is added, 2 when it was
 * there (refreshed), 0 when the set is full.
 */
export const PEER_CLAIM = `#!lua
local key, entry, ttl = KEYS[1], ARGV[1], tonumber(ARGV[3])
${timeWithin(5)}
redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. (ms - ttl))
local had = redis.call('ZSCORE', key, entry)
if had or ARGV[4] == '1' or redis.call('ZCARD', key) < tonumber(ARGV[2]) then
  redis.call('ZADD', key, ms, entry)
  redis.call('PEXPIRE', key, ttl)
  if had then return 2 end
  return 1
end
return 0
`;

/** The claims' SHA1s (EVALSHA), sent alone through `RedisSwarmStore.script`. */
const CLAIM_SHA = createHash('sha1').update(CLAIM).digest('hex');
const PEER_CLAIM_SHA = createHash('sha1').update(PEER_CLAIM).digest('hex');

/**
 * `peers_per_member` across instances (issue #16): the member's live peers, counted in Redis, so
 * that a member runs at most that many peers over every instance (and every worker process on
 * it).
 *
 * Key (docs/redis.md): `<prefix>:{m<member id>}:p`, a ZSET of the member's peers, member
 * '<bucket>:<torrent id>:<peer id, hex>', score the Redis server's time (ms) of the peer's last
 * announce; its own hash tag, like the slot set. A new peer (one this instance holds no live
 * baseline of) waits for its claim (one EVALSHA); a peer this instance holds refreshes its place
 * without waiting. A peer's place is freed by its `stopped`, by the store refusing the announce
 * that claimed it, by its removal for access withdrawn (`Accountant.revoke`), or by `peer_timeout`
 * without a claim (the script removes those first, with the
 * same cutoff the baselines use), so the set holds exactly the peers the baselines hold live.
 */
export class RedisPeers {
  #store: RedisSwarmStore;
  #ttlMs: number;

  constructor(store: RedisSwarmStore, peerTimeout: number) {
    this.#store = store;
    this.#ttlMs = peerTimeout * 1000;
  }

  /**
   * One announce (not `stopped`) of a member's peer: for a peer this instance knows, null (its
   * place is refreshed without waiting); else whether the place was taken ('new'), was held
   * already ('held'), or the refusal.
   */
  claim(p: PeerPlace, limit: number, known: boolean): Promise<'new' | 'held' | TrackerError> | null {
    const call = this.#claim(p, limit, known);
    if (known) {
      call.catch(() => {});
      return null;
    }
    return call.then(
      (r) => (r === 1 ? 'new' : r === 2 ? 'held' : Errors.peerLimitMember),
      () => Errors.storeUnavailable,
    );
  }

  /** Frees a peer's place (its `stopped`, its claim's announce refused, its access withdrawn): best effort. */
  release(p: PeerPlace): void {
    this.#store.call(this.#store.client.zrem(this.#key(p), this.#entry(p))).catch(() => {});
  }

  /** One claim (PEER_CLAIM) with its deadline, sent alone as RedisSlots' are. */
  #claim(p: PeerPlace, limit: number, force: boolean): Promise<0 | 1 | 2> {
    const deadline = this.#store.deadlineFor(`m${p.memberId}`);
    const args = [this.#key(p), this.#entry(p), limit, this.#ttlMs, force ? '1' : '0', deadline];
    return this.#store.script(PEER_CLAIM, PEER_CLAIM_SHA, args) as Promise<0 | 1 | 2>;
  }

  #key(p: PeerPlace): string {
    return `${this.#store.prefix}:{m${p.memberId}}:p`;
  }

  #entry(p: PeerPlace): string {
    const id = Buffer.from(p.peerId.buffer, p.peerId.byteOffset, p.peerId.byteLength);
    return `${bucketOf(p.route)}:${p.torrentId}:${id.toString('hex')}`;
  }
}

/** What a member has on one torrent, from the baselines in Redis: nothing live, leeching, seeding. */
type Holding = 'none' | 'leeching' | 'seeding';

/**
 * Download slots across instances (issue #16): the torrents a member leeches, counted in Redis,
 * so that a member with N slots leeches at most N torrents over every instance.
 *
 * Key (docs/redis.md): `<prefix>:{m<member id>}:l`, a ZSET of the torrents the member may be
 * leeching, member '<bucket>:<torrent id>', score the Redis server's time (ms) of the last leeching
 * announce that claimed it; its own hash tag (a member's torrents are in many buckets). It is touched only by leeching
 * announces of members with slots: a new leeching peer waits for its claim (one EVALSHA); a peer
 * this instance already holds refreshes its claim without waiting (the key expires after twice
 * `peer_timeout` without any, as the baselines do).
 *
 * The set may hold torrents the member no longer leeches (stopped, finished, or silent: no
 * announce says so to this key). They are judged only when the set is full: each one's baselines
 * (`<prefix>:{<bucket>}:a:<torrent id>:<member id>`, scripts.ts ANNOUNCE_BATCH) say whether a live peer
 * of the member still leeches it, with the same `peer_timeout` cutoff the baselines use; those
 * that do not are removed (each only if no announce claimed it meanwhile), and the claim is tried
 * again; one claimed in the last two `redis_timeout`s whose announce may not have landed yet is
 * waited for first (a rare wait: a full set, and a torrent started a moment ago). So a slot is exactly what the accountant counts on one instance: a torrent on which the
 * member has a live peer and none seeding.
 */
export class RedisSlots {
  #store: RedisSwarmStore;
  #peerTimeout: number;
  #inFlightMs: number;

  /** `timeoutMs`: the store's deadline per call (`redis_timeout`). */
  constructor(store: RedisSwarmStore, peerTimeout: number, timeoutMs: number) {
    this.#store = store;
    this.#peerTimeout = peerTimeout;
    // A claim is followed by its announce within two calls' deadlines (or the announce failed).
    this.#inFlightMs = 2 * timeoutMs;
  }

  /**
   * A leeching announce of a member with slots on a torrent: null when it may leech it, or the
   * refusal. A peer this instance knows (it leeches the torrent already) refreshes its claim
   * without waiting for it.
   */
  claim({
    memberId,
    route,
    torrentId,
    slots,
    now,
    known,
    peerId,
  }: SlotClaim): Promise<TrackerError | null> | null {
    const entry = `${bucketOf(route)}:${torrentId}`;
    if (known) {
      this.#claim(memberId, entry, slots, false, []).catch(() => {});
      return null;
    }
    return this.#decide(memberId, entry, slots, now, peerId).catch(() => Errors.storeUnavailable);
  }

  /**
   * Claims the entry; when the set is full, judges what it lists and removes what no live peer
   * leeches, then tries again. An entry claimed within `#inFlightMs` whose announce has not
   * landed yet (no baseline) is not judged until its announce has had the time to: otherwise two
   * torrents started at once through two instances could each judge the other's claim empty.
   */
  async #decide(memberId: number, entry: string, slots: number, now: number, peerId: Uint8Array) {
    let prune: string[] = [];
    for (let attempt = 0; attempt < 4; attempt++) {
      const r = await this.#claim(memberId, entry, slots, false, prune);
      if (r === 1) return null;
      if (attempt === 0 && (await this.#judge(memberId, [entry], now, peerId))[0] !== 'none') {
        // The member has a live peer on this torrent already (seeding, or leeching it without a
        // claim), other than the announcing one seeding it: no new slot is taken, as on one
        // instance. (The announcing peer's own seeding baseline does not hold the torrent: a
        // client announcing as a seeder first would otherwise leech without a slot.)
        await this.#claim(memberId, entry, slots, true, []);
        return null;
      }
      const ms = Number(r[0]);
      const listed: string[] = [];
      for (let i = 1; i < r.length; i += 2) listed.push(String(r[i]));
      const states = await this.#judge(memberId, listed, now);
      prune = [];
      let wait = 0;
      for (let i = 0; i < listed.length; i++) {
        if (states[i] === 'leeching') continue;
        const score = String(r[2 * i + 2]);
        const age = ms - Number(score);
        if (age >= this.#inFlightMs) prune.push(listed[i], score);
        else wait = Math.max(wait, this.#inFlightMs - age);
      }
      if (prune.length > 0) continue;
      if (wait === 0) return Errors.downloadSlots;
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
    return Errors.downloadSlots;
  }

  /**
   * One claim of the member's slot set (CLAIM), with its deadline: a claim Herald gave up on (the
   * announce answered "try again later") takes no slot when Redis runs it later. Sent alone
   * (`RedisSwarmStore.script`): an answer that waited in the socket while Herald's event loop
   * stalled is used, not thrown away with the slot it took.
   */
  #claim(
    memberId: number,
    entry: string,
    slots: number,
    force: boolean,
    prune: string[],
  ): Promise<1 | [number, ...Buffer[]]> {
    const key = `${this.#store.prefix}:{m${memberId}}:l`;
    const ttl = 2 * this.#peerTimeout;
    const deadline = this.#store.deadlineFor(`m${memberId}`);
    const args = [key, entry, slots, ttl, force ? '1' : '0', deadline, ...prune];
    return this.#store.script(CLAIM, CLAIM_SHA, args) as Promise<1 | [number, ...Buffer[]]>;
  }

  /**
   * What the member has on each torrent entry ('<bucket>:<torrent id>'), from its baselines;
   * without the baseline of peer `except` when it is seeding.
   */
  async #judge(memberId: number, entries: string[], now: number, except?: Uint8Array): Promise<Holding[]> {
    const cutoff = now - this.#peerTimeout;
    const prefix = this.#store.prefix;
    const client = this.#store.client;
    return Promise.all(
      entries.map(async (e) => {
        const at = e.indexOf(':');
        const key = `${prefix}:{${e.slice(0, at)}}:a:${e.slice(at + 1)}:${memberId}`;
        const [values, own] = await Promise.all([
          this.#store.call(client.hvals(key)),
          except === undefined ? null : this.#store.call(client.hget(key, Buffer.from(except))),
        ]);
        let state: Holding = 'none';
        let skip = own?.endsWith(':1') === true;
        // Each baseline is 'uploaded:downloaded:at:seeding'; field '~' (seeding time) is a number.
        for (const v of values) {
          if (skip && v === own) {
            skip = false;
            continue;
          }
          const parts = v.split(':');
          if (parts.length !== 4 || Number(parts[2]) < cutoff) continue;
          if (parts[3] === '1') return 'seeding';
          state = 'leeching';
        }
        return state;
      }),
    );
  }
}
