import type { Logger } from '../core/log.ts';
import { type PeerListGate, PeerListWindows } from '../policy/peer-lists.ts';
import type { ClusterBus } from './bus.ts';
import { readMemberFigures, writeMemberFigures } from './limit-messages.ts';
import { MessageType } from './messages.ts';

/** Most members in one report frame (the codec's count is 16 bits). */
const MAX_PAIRS = 0xffff;

/**
 * `peer_list_limit` for the whole host with `herald serve --workers N`: a member's peer lists
 * are counted by its home worker (member id mod N, as for `peers_per_member`), whichever worker
 * gives them. Counted per worker, a member got N times the limit per window: the peer scraping
 * the rule exists to stop.
 *
 * Not a round trip per announce: policy runs in the worker that received the announce, and
 * asking the home first would make (N-1)/N of all private announces that want peers wait for
 * another worker (and leave the HTTP batch). Instead:
 * - A worker gives the list at once (unless it was told the member's window is full) and counts
 *   it in a report to the member's home, sent at the end of the event-loop turn (one frame per
 *   home per turn, however many members).
 * - The home counts every worker's lists in the member's window (its own at once, exactly). When
 *   the count reaches the limit, it tells every other worker that the member's window is full
 *   until its end (`peerListsFull`); a report that still arrives after that (lists given before
 *   the news got there) is counted, and its sender told again.
 * - So the limit can be overshot, by the lists other workers give the member in about one bus
 *   round trip (the report on its way to the home, the news on its way back): none for a
 *   sequential client in practice. Each worker also counts its own lists and never gives one
 *   member more than the limit in a window: a burst of concurrent announces (a scraper opening
 *   many connections at a window's start: 44 lists for a limit of 3 over 2 workers, measured,
 *   before this bound) gets at most N × limit, the most that counting per worker ever gave. For a
 *   rule against scraping (a limit of tens or hundreds an hour), that beats a round trip on the
 *   hot path.
 * - A home that is down or restarting: reports to it are lost (the bus's best effort) and each
 *   other worker gives lists on its own count (at most the limit) until it is back; a restarted
 *   home starts each member's window afresh, as a restarted single process does. A worker that restarts forgets which
 *   members are full; its next report about one is answered with the news again.
 */
export class SharedPeerLists implements PeerListGate {
  readonly #bus: ClusterBus;
  readonly #index: number;
  readonly #count: number;
  readonly #logger: Logger;
  readonly #now: () => number;
  /** Home side: every worker's lists, per member of this home. */
  readonly #windows: PeerListWindows;
  /**
   * This worker's own lists per member of another home (the count every worker kept alone before):
   * never more than the limit per window before the home's news arrives, however many announces
   * reach this worker at once.
   */
  readonly #mine: PeerListWindows;
  /** Members whose home said their window is full, and until when (unix s). */
  readonly #full = new Map<number, number>();
  /** Lists given since the last report, per member of another home (flat: member, count). */
  readonly #pending = new Map<number, number>();
  #reporting = false;
  /** Home side: lists counted beyond the limit (given before the news reached a worker). */
  overshoot = 0;

  constructor(opts: { bus: ClusterBus; logger: Logger; limit: number; window: number; now: () => number }) {
    this.#bus = opts.bus;
    this.#index = opts.bus.index;
    this.#count = opts.bus.count;
    this.#logger = opts.logger;
    this.#now = opts.now;
    this.#windows = new PeerListWindows(opts.limit, opts.window);
    this.#mine = new PeerListWindows(opts.limit, opts.window);
    opts.bus.route(
      [MessageType.peerListsReport, MessageType.peerListsFull],
      (type, _id, body, at, _r, done) => {
        try {
          const { from, pairs } = readMemberFigures(body, at);
          if (type === MessageType.peerListsFull)
            for (let i = 0; i < pairs.length; i += 2) this.#full.set(pairs[i], pairs[i + 1]);
          else if (from < this.#count && from !== this.#index) {
            const now = this.#now();
            for (let i = 0; i < pairs.length; i += 2) this.#count1(pairs[i], pairs[i + 1], now, from);
          }
        } catch (err) {
          this.#logger.error('peer lists: cannot read a message', { err: String(err), type });
        }
        done();
      },
    );
  }

  take(memberId: number, now: number): boolean {
    const until = this.#full.get(memberId);
    if (until !== undefined) {
      if (now < until) return false;
      this.#full.delete(memberId);
    }
    const home = memberId % this.#count;
    if (home === this.#index) return this.#count1(memberId, 1, now, home);
    if (!this.#mine.take(memberId, now)) return false;
    this.#pending.set(memberId, (this.#pending.get(memberId) ?? 0) + 1);
    if (!this.#reporting) {
      this.#reporting = true;
      setImmediate(this.#report);
    }
    return true;
  }

  /** Home side: the lists counted in the member's current window (tests). */
  listsOf(memberId: number, now: number): number {
    return this.#windows.windowOf(memberId, now).count;
  }

  /** Members whose window this worker was told is full (tests). */
  get full(): number {
    return this.#full.size;
  }

  /**
   * Home side: `n` lists given to the member by worker `from` (this worker: one it is about to
   * give, refused when the window is full). Tells the other workers when the window fills.
   */
  #count1(memberId: number, n: number, now: number, from: number): boolean {
    const w = this.#windows.windowOf(memberId, now);
    const limit = this.#windows.limit;
    const was = w.count;
    if (from === this.#index && was >= limit) return false;
    w.count += n;
    if (w.count > limit) this.overshoot += w.count - Math.max(was, limit);
    if (w.count < limit) return true;
    const news = [memberId, w.start + this.#windows.window];
    if (was < limit) {
      for (let to = 0; to < this.#count; to++)
        if (to !== this.#index) this.#send(MessageType.peerListsFull, to, news);
    } else if (from !== this.#index) this.#send(MessageType.peerListsFull, from, news);
    return true;
  }

  /** Sends each home the lists given to its members this turn (one frame per home). */
  readonly #report = (): void => {
    this.#reporting = false;
    const byHome: number[][] = [];
    for (const [member, n] of this.#pending) {
      const home = member % this.#count;
      let pairs = byHome[home];
      if (pairs === undefined) {
        pairs = [];
        byHome[home] = pairs;
      }
      pairs.push(member, n);
      if (pairs.length >= MAX_PAIRS * 2) {
        this.#send(MessageType.peerListsReport, home, pairs);
        byHome[home] = [];
      }
    }
    this.#pending.clear();
    for (let home = 0; home < byHome.length; home++) {
      const pairs = byHome[home];
      if (pairs !== undefined && pairs.length > 0) this.#send(MessageType.peerListsReport, home, pairs);
    }
  };

  #send(type: MessageType, to: number, pairs: readonly number[]): void {
    this.#bus.notify(to, (f) => writeMemberFigures(f, type, this.#index, pairs));
  }
}
