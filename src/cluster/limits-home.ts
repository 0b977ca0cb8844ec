import { CLAIM_PEER, CLAIM_SLOT } from '../accounting/rules.ts';
import type { Logger } from '../core/log.ts';
import type { ClusterBus } from './bus.ts';
import { type Claim, type Held, readHeld, Verdict, writeMember } from './limit-messages.ts';
import { MessageType } from './messages.ts';

/** Figures per owner in a home's entry: peers, leeching torrents, the owner's sequence number. */
const STRIDE = 3;

/**
 * The home side of `peers_per_member` and download `slots` over every worker (issue #16 with
 * issue #13; the protocol and the owner side, the worker that asks for places, are in
 * src/cluster/member-limits.ts). A member's home worker (member id mod N) keeps, per member, the
 * last figures of each owner worker: peers and leeching torrents, with the owner's sequence
 * number (the highest wins: reports, claims and refreshes may cross).
 *
 * - A claim is granted when the figures of all owners, the claim's included, stay within the
 *   limit. Before refusing, the home asks every other owner that holds places for fresh figures
 *   (`limitsRefresh`: each forgets its silent peers first), so a place held by a silent peer is
 *   freed after `peer_timeout` as with one worker.
 * - Claims are judged one at a time, and every owner's figures count its claims in flight, so two
 *   new peers of one member on two workers at once cannot both take the last place.
 * - Each owner process has an epoch: the first figures of a new epoch (a restarted owner) drop
 *   every place of the process before it, whose swarms died with it; figures of a retired epoch
 *   count no more.
 * - Until the start's sync (`ready`) has been answered, claims and reports wait for it.
 */
export class LimitsHome {
  readonly #bus: ClusterBus;
  readonly #index: number;
  readonly #count: number;
  readonly #logger: Logger;
  /** This worker's own figures of a member with silent peers forgotten (its owner side). */
  readonly #fresh: (memberId: number) => Held;

  /** Per member, each owner's figures (STRIDE numbers per owner). */
  readonly #home = new Map<number, Float64Array>();
  /** Each owner's current epoch (0 = none seen), and the one before it. */
  readonly #epochs: number[];
  readonly #retired: number[];
  /** Until the start's sync has been answered, claims and reports wait for it. */
  #ready: Promise<void> | null = null;

  constructor(opts: { bus: ClusterBus; logger: Logger; fresh: (memberId: number) => Held }) {
    this.#bus = opts.bus;
    this.#index = opts.bus.index;
    this.#count = opts.bus.count;
    this.#logger = opts.logger;
    this.#fresh = opts.fresh;
    this.#epochs = new Array(this.#count).fill(0);
    this.#retired = new Array(this.#count).fill(0);
  }

  /** Claims and reports wait for `sync` (the start's answers from every other worker). */
  waitFor(sync: Promise<unknown>): void {
    this.#ready = sync.then(() => {
      this.#ready = null;
    });
  }

  /** Whether claims are judged now (the start's sync is over). */
  get ready(): boolean {
    return this.#ready === null;
  }

  /** Members whose figures this home keeps (tests, /stats). */
  get members(): number {
    return this.#home.size;
  }

  /**
   * One claim. The claiming owner's figures (with the place) replace what the home has of it,
   * unless the home has newer ones (which count the claim in already); granted while every
   * owner's figures together stay within the limits. Before a refusal, the other owners holding
   * places are asked for fresh figures once.
   */
  async judge(c: Claim): Promise<Verdict> {
    if (this.#ready !== null) await this.#ready;
    if (!this.current(c.owner, c.epoch)) return Verdict.peers; // a process that is gone
    const v = this.decide(c);
    if (v === Verdict.granted) return v;
    await this.#refresh(c.member, c.owner);
    return this.decide(c);
  }

  /**
   * The claim's figures (unless newer ones of its owner are here), judged. Refused, the place is
   * taken out again, and the figures kept are marked just older than the claim's, so that the same
   * claim judged again (after a refresh) counts its place once more while any newer figure of the
   * owner still wins.
   */
  decide(c: Claim): Verdict {
    const e = this.#apply(c);
    const v = this.#verdict(e, c);
    const o = c.owner * STRIDE;
    if (v !== Verdict.granted && e[o + 2] === c.seq) {
      if (c.need & CLAIM_PEER) e[o]--;
      if (c.need & CLAIM_SLOT) e[o + 1]--;
      e[o + 2] = c.seq - 0.5;
      this.#tidy(c.member, e);
    }
    return v;
  }

  /** One owner's figures of one member, kept unless older than those held. */
  apply(h: Held): void {
    this.#apply(h);
  }

  /** An owner's report (`limitsReport`): applied now, or once the start's sync is over. */
  report(h: Held): void {
    if (this.#ready === null) this.#apply(h);
    else this.#ready.then(() => this.#apply(h));
  }

  /**
   * Whether figures of `owner`'s process `epoch` count. A new epoch (the owner was restarted)
   * drops every place of the process before it, whose swarms died with it.
   */
  current(owner: number, epoch: number): boolean {
    if (owner >= this.#count || epoch === this.#retired[owner]) return false;
    const was = this.#epochs[owner];
    if (was === epoch) return true;
    if (was !== 0) {
      this.#retired[owner] = was;
      this.#logger.info('member limits: the places of a restarted worker are freed', { worker: owner });
      for (const [member, e] of this.#home) {
        e.fill(0, owner * STRIDE, owner * STRIDE + STRIDE);
        this.#tidy(member, e);
      }
    }
    this.#epochs[owner] = epoch;
    return true;
  }

  #verdict(e: Float64Array, c: Claim): Verdict {
    let peers = 0;
    let leeching = 0;
    for (let o = 0; o < e.length; o += STRIDE) {
      peers += e[o];
      leeching += e[o + 1];
    }
    if (c.need & CLAIM_SLOT && c.slotLimit > 0 && leeching > c.slotLimit) return Verdict.slots;
    if (c.need & CLAIM_PEER && c.peerLimit > 0 && peers > c.peerLimit) return Verdict.peers;
    return Verdict.granted;
  }

  /** Fresh figures of the member from every owner but `except` that holds places of it. */
  async #refresh(memberId: number, except: number): Promise<void> {
    const e = this.#home.get(memberId);
    if (e === undefined) return;
    const asks: Promise<void>[] = [];
    for (let owner = 0; owner < this.#count; owner++) {
      if (owner === except || (e[owner * STRIDE] <= 0 && e[owner * STRIDE + 1] <= 0)) continue;
      if (owner === this.#index) {
        this.#apply(this.#fresh(memberId));
        continue;
      }
      asks.push(
        this.#bus
          .request(
            owner,
            (w, id) => writeMember(w, MessageType.limitsRefresh, id, memberId),
            (body, at, type) => {
              if (type !== MessageType.limitsRefreshOk) throw new Error(`cluster: unexpected reply ${type}`);
              return readHeld(body, at);
            },
          )
          .then(
            (h) => {
              this.#apply(h);
            },
            () => {},
          ),
      );
    }
    await Promise.all(asks);
  }

  #apply(h: Held): Float64Array {
    const e = this.#entry(h.member);
    if (!this.current(h.owner, h.epoch)) return e;
    const o = h.owner * STRIDE;
    if (h.seq > e[o + 2]) {
      e[o] = h.peers;
      e[o + 1] = h.leeching;
      e[o + 2] = h.seq;
    }
    this.#tidy(h.member, e);
    return e;
  }

  #entry(memberId: number): Float64Array {
    let e = this.#home.get(memberId);
    if (e === undefined) {
      e = new Float64Array(this.#count * STRIDE);
      this.#home.set(memberId, e);
    }
    return e;
  }

  /** Forgets a member no owner holds a place of. */
  #tidy(memberId: number, e: Float64Array): void {
    for (let o = 0; o < e.length; o += STRIDE) if (e[o] > 0 || e[o + 1] > 0) return;
    this.#home.delete(memberId);
  }
}
