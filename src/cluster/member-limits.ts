import { randomBytes } from 'node:crypto';
import { CLAIM_PEER, CLAIM_SLOT } from '../accounting/rules.ts';
import { Errors, TrackerError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { ClusterBus, RequestHandler } from './bus.ts';
import {
  type Claim,
  type Held,
  readClaim,
  readHeld,
  readMember,
  readSyncOk,
  readVerdict,
  Verdict,
  writeClaim,
  writeHeld,
  writeSyncOk,
  writeVerdict,
} from './limit-messages.ts';
import { LimitsHome } from './limits-home.ts';
import { MessageType, writeText } from './messages.ts';

/** What the limits read of this worker's accountant (its `rules`, over its baselines). */
export interface LimitCounts {
  /** `peers_per_member` (0 = no limit). */
  readonly peerLimit: number;
  /** The member's download slots (its class's; 0 = no limit). */
  slotsOf(memberId: number): number;
  /** What the member holds here (`Rules.held`); with `expire`, silent peers forgotten first. */
  held(memberId: number, expire?: boolean): { peers: number; leeching: number };
  /** Counts a refusal (`Rules.note`: /stats, /metrics). */
  note(refusal: TrackerError): void;
}

/**
 * `peers_per_member` and download `slots` over every worker of `herald serve --workers N`
 * (issue #16 with issue #13). A torrent's peers live in the worker that owns its swarm, so each
 * worker sees only the member's peers and leeching torrents on its own torrents; the member's
 * figures over every worker are kept by its home worker (member id mod N).
 *
 * This class is the owner side (the worker that asks for places) and each worker's one entry
 * point for the limits: it answers the bus's limit messages, and holds this worker's home side
 * (`LimitsHome`, src/cluster/limits-home.ts) for the members whose home it is.
 *
 * - Owner side: before it admits a new peer of a member with a limit (`CLAIM_PEER`), or a
 *   torrent the member starts leeching when its class has slots (`CLAIM_SLOT`), the worker that
 *   owns the torrent claims the place from the home (`limitsClaim`, one round trip over the bus,
 *   none when the home is itself). The claim carries what this owner holds of the member with the
 *   new place counted in (its baselines, and its claims still in flight); the home answers with
 *   a verdict, and only then is the announce accounted and the swarm updated. A stop, a leecher
 *   turning seeder, a refused or failed claim: the owner reports its new figures (one-way
 *   `limitsReport`). Peers that go silent are not reported: their places are freed when they would
 *   refuse someone (below).
 * - Home side (src/cluster/limits-home.ts, `LimitsHome`): per member, the last figures of each
 *   owner (the one with the highest sequence number wins: reports, claims and refreshes may
 *   cross). A claim is granted when the figures of all owners, the claim's included, stay within
 *   the limit. Before refusing, the home asks every other owner that holds places for fresh
 *   figures (`limitsRefresh`: each forgets its silent peers first), and the owner that claimed
 *   forgets its own silent peers and claims once more, so a place held by a silent peer is freed
 *   after `peer_timeout` as with one worker.
 * - A worker that dies loses its swarms (and baselines): when it is back, its first message (the
 *   `limitsSync` it sends every other worker at start, with its new epoch) makes every home drop
 *   the places of its previous process. Meanwhile (the restart, about a second) they still count.
 * - A home that starts (or restarts) asks every other worker for what it holds of its members
 *   (`limitsSync`) and answers claims only once they have answered (or failed).
 * - A home that does not answer (down, restarting): the claim fails with the retryable
 *   `Errors.shardUnavailable`, as an announce for a swarm of a worker that is down does.
 *
 * Exact: a home judges claims one at a time, and every owner's figures count its claims in
 * flight, so two new peers of one member on two workers at once cannot both take the last place.
 * Only announces that claim pay anything: one round trip to the home, or, when this worker is
 * the home, a judgement on the spot (answered at once unless it would refuse). `--workers 1` has
 * no home and pays nothing.
 */
export class MemberLimits {
  readonly #bus: ClusterBus;
  readonly #index: number;
  readonly #count: number;
  readonly #logger: Logger;
  readonly #counts: LimitCounts;
  /** This process's epoch (random, never 0): a restarted worker's places are told apart. */
  readonly #epoch: number;

  /** Owner side: a counter for this process's figures (a home keeps the highest). */
  #seq = 0;
  /** Owner side: places claimed and not yet settled, per member (peers, leeching). */
  readonly #inFlight = new Map<number, { peers: number; leeching: number }>();
  /** Owner side: the figures each member's home has (or will have) of this worker; absent = 0. */
  readonly #sent = new Map<number, { peers: number; leeching: number }>();
  /** Owner side: members whose figures may have changed, reported at the end of this turn. */
  readonly #dirty = new Set<number>();
  #reporting = false;

  /** Home side: the figures of the members whose home this worker is. */
  readonly #home: LimitsHome;

  constructor(opts: { bus: ClusterBus; logger: Logger; counts: LimitCounts }) {
    this.#bus = opts.bus;
    this.#index = opts.bus.index;
    this.#count = opts.bus.count;
    this.#logger = opts.logger;
    this.#counts = opts.counts;
    this.#epoch = randomBytes(4).readUInt32BE(0) || 1;
    this.#home = new LimitsHome({ bus: opts.bus, logger: opts.logger, fresh: (m) => this.#fresh(m) });
    opts.bus.route(
      [MessageType.limitsClaim, MessageType.limitsReport, MessageType.limitsRefresh, MessageType.limitsSync],
      this.#serve,
    );
  }

  /**
   * Asks every other worker for what it holds of this worker's members (and so tells it that
   * this process started: it drops the places of this worker's previous process). Claims wait
   * until every worker has answered or failed (at most the bus's request timeout).
   */
  start(): void {
    const others: Promise<void>[] = [];
    for (let to = 0; to < this.#count; to++) {
      if (to === this.#index) continue;
      others.push(
        this.#bus
          .request(
            to,
            (w, id) => writeHeld(w, MessageType.limitsSync, id, this.#mine(0)),
            (body, at, type) => {
              if (type !== MessageType.limitsSyncOk) throw new Error(`cluster: unexpected reply ${type}`);
              return readSyncOk(body, at);
            },
          )
          .then(
            (all) => {
              for (const h of all) this.#home.apply(h);
            },
            () => {},
          ),
      );
    }
    this.#home.waitFor(Promise.all(others));
  }

  /**
   * Owner side: claims `need` (CLAIM_PEER, CLAIM_SLOT) for the member from its home, then runs
   * `admit` (accounting and the swarm update) when granted. A refusal is the limit's
   * `failure reason`; a home that cannot be reached, `Errors.shardUnavailable`.
   */
  run<R>(
    memberId: number,
    need: number,
    admit: () => R | TrackerError,
  ): R | TrackerError | Promise<R | TrackerError> {
    // This worker is the member's home, and the place is free: decided at once (no promise, so
    // the frontend answers in its batch). A refusal takes the path below (fresh figures first).
    if (this.#homeOf(memberId) === this.#index && this.#home.ready) {
      const c = this.#claimOf(memberId, need);
      if (this.#home.decide(c) === Verdict.granted) {
        this.#remember(memberId, { peers: c.peers, leeching: c.leeching });
        return this.#admit(memberId, need, admit);
      }
      this.#take(memberId, need, -1);
    }
    return this.#claim(memberId, need).then(
      (v) => {
        if (v !== Verdict.granted) {
          const refusal = v === Verdict.peers ? Errors.peerLimitMember : Errors.downloadSlots;
          this.#counts.note(refusal);
          this.touch(memberId);
          return refusal;
        }
        return this.#admit(memberId, need, admit);
      },
      (err) => {
        this.touch(memberId);
        return err instanceof TrackerError ? err : Errors.shardUnavailable;
      },
    );
  }

  /** A granted place stays in flight until the announce is accounted (or refused there). */
  #admit<R>(memberId: number, need: number, admit: () => R | TrackerError): R | TrackerError {
    try {
      return admit();
    } finally {
      this.#take(memberId, need, -1);
      this.touch(memberId);
    }
  }

  /**
   * Owner side: whether the member's home holds figures of this worker (an announce that may
   * lower them, a stop or a leecher turning seeder, should `touch` the member).
   */
  holds(memberId: number): boolean {
    return this.#sent.has(memberId);
  }

  /** Owner side: the member's figures here may have changed; reported to its home if they did. */
  touch(memberId: number): void {
    this.#dirty.add(memberId);
    if (this.#reporting) return;
    this.#reporting = true;
    setImmediate(() => {
      this.#reporting = false;
      for (const m of this.#dirty) this.#report(m);
      this.#dirty.clear();
    });
  }

  /** Members whose figures a home keeps (tests, /stats): on this worker as a home. */
  get members(): number {
    return this.#home.members;
  }

  #homeOf(memberId: number): number {
    return memberId % this.#count;
  }

  /** One claim; when refused, once more after this worker's silent peers are forgotten. */
  async #claim(memberId: number, need: number): Promise<Verdict> {
    const v = await this.#ask(memberId, need);
    if (v === Verdict.granted) return v;
    const before = this.#counts.held(memberId);
    const now = this.#counts.held(memberId, true);
    if (now.peers >= before.peers && now.leeching >= before.leeching) return v;
    return this.#ask(memberId, need);
  }

  /**
   * Sends one claim (or judges it here when this worker is the member's home). A granted place
   * stays in flight (`run` settles it).
   */
  async #ask(memberId: number, need: number): Promise<Verdict> {
    const c = this.#claimOf(memberId, need);
    const home = this.#homeOf(memberId);
    try {
      const v =
        home === this.#index
          ? await this.#home.judge(c)
          : await this.#bus.request(
              home,
              (w, id) => writeClaim(w, id, c),
              (body, at, type) => {
                if (type !== MessageType.limitsClaimOk) throw new Error(`cluster: unexpected reply ${type}`);
                return readVerdict(body, at);
              },
            );
      // The home keeps the claim's figures, with the place (when refused, it took the place out
      // unless it had newer figures of this worker: `run` reports the figures without it then).
      this.#remember(memberId, { peers: c.peers, leeching: c.leeching });
      if (v !== Verdict.granted) this.#take(memberId, need, -1);
      return v;
    } catch (err) {
      this.#take(memberId, need, -1);
      throw err;
    }
  }

  /** A claim of `need` for the member: its place is in flight from now on. */
  #claimOf(memberId: number, need: number): Claim {
    this.#take(memberId, need, 1);
    return {
      ...this.#figures(memberId),
      need,
      peerLimit: this.#counts.peerLimit,
      slotLimit: this.#counts.slotsOf(memberId),
    };
  }

  /** Adds (`sign` 1) or removes (-1) places in flight. */
  #take(memberId: number, need: number, sign: 1 | -1): void {
    let f = this.#inFlight.get(memberId);
    if (f === undefined) {
      f = { peers: 0, leeching: 0 };
      this.#inFlight.set(memberId, f);
    }
    if (need & CLAIM_PEER) f.peers += sign;
    if (need & CLAIM_SLOT) f.leeching += sign;
    if (f.peers === 0 && f.leeching === 0) this.#inFlight.delete(memberId);
  }

  /** This worker's figures of the member now (baselines and claims in flight), numbered. */
  #figures(memberId: number, expire = false): Held {
    const h = this.#counts.held(memberId, expire);
    const f = this.#inFlight.get(memberId);
    return {
      ...this.#mine(memberId),
      peers: h.peers + (f?.peers ?? 0),
      leeching: h.leeching + (f?.leeching ?? 0),
    };
  }

  /** A figure of this worker with no counts yet, numbered. */
  #mine(memberId: number): Held {
    return {
      owner: this.#index,
      epoch: this.#epoch,
      seq: ++this.#seq,
      member: memberId,
      peers: 0,
      leeching: 0,
    };
  }

  #remember(memberId: number, f: { peers: number; leeching: number }): void {
    if (f.peers <= 0 && f.leeching <= 0) this.#sent.delete(memberId);
    else this.#sent.set(memberId, f);
  }

  /** Sends the member's figures to its home when they differ from what it has. */
  #report(memberId: number): void {
    const h = this.#figures(memberId);
    const sent = this.#sent.get(memberId);
    if ((sent?.peers ?? 0) === h.peers && (sent?.leeching ?? 0) === h.leeching) return;
    this.#remember(memberId, h);
    const home = this.#homeOf(memberId);
    if (home === this.#index) this.#home.apply(h);
    else this.#bus.notify(home, (w) => writeHeld(w, MessageType.limitsReport, 0, h));
  }

  /** Owner side: the member's figures here with silent peers forgotten (a home's refresh). */
  #fresh(memberId: number): Held {
    const h = this.#figures(memberId, true);
    this.#remember(memberId, h);
    return h;
  }

  readonly #serve: RequestHandler = (type, id, body, at, reply, done) => {
    try {
      switch (type) {
        case MessageType.limitsClaim: {
          const c = readClaim(body, at);
          this.#home.judge(c).then(
            (v) => {
              writeVerdict(reply, id, v);
              done();
            },
            (err) => {
              this.#logger.error('member limits: cannot judge a claim', { err: String(err) });
              writeText(reply, MessageType.failure, id, 'internal error');
              done();
            },
          );
          return;
        }
        case MessageType.limitsReport: {
          this.#home.report(readHeld(body, at));
          return;
        }
        case MessageType.limitsRefresh:
          writeHeld(reply, MessageType.limitsRefreshOk, id, this.#fresh(readMember(body, at)));
          break;
        case MessageType.limitsSync: {
          // A worker (re)started: its previous process's places are dropped here, and it is sent
          // what this worker holds of its members.
          const from = readHeld(body, at);
          this.#home.current(from.owner, from.epoch);
          const all: Held[] = [];
          const seen = new Set<number>([...this.#sent.keys(), ...this.#inFlight.keys()]);
          for (const m of seen) {
            if (this.#homeOf(m) !== from.owner) continue;
            const h = this.#figures(m);
            this.#remember(m, h);
            if (h.peers > 0 || h.leeching > 0) all.push(h);
          }
          writeSyncOk(reply, id, all);
          break;
        }
        default:
          throw new Error(`unknown limits message ${type}`);
      }
    } catch (err) {
      this.#logger.error('member limits: cannot answer a message', { err: String(err), type });
      if (id === 0) return;
      writeText(reply, MessageType.failure, id, 'internal error');
    }
    done();
  };
}
