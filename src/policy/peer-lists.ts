/**
 * Who counts a member's peer lists for `peer_list_limit`: `take` counts one list given to the
 * member now, or answers false (the list is withheld) when the member's window is full.
 * Synchronous: the step runs on every private announce that wants peers.
 */
export interface PeerListGate {
  take(memberId: number, now: number): boolean;
}

/**
 * Peer lists per member in fixed windows (`peer_list_window` seconds from the member's first
 * list in each): one entry per member who was given a list. One process's count (`take`), and a
 * home worker's count over every worker (`windowOf`, src/cluster/peer-list-gate.ts).
 */
export class PeerListWindows implements PeerListGate {
  readonly limit: number;
  readonly window: number;
  readonly #windows = new Map<number, { start: number; count: number }>();

  constructor(limit: number, window: number) {
    this.limit = limit;
    this.window = window;
  }

  take(memberId: number, now: number): boolean {
    const w = this.windowOf(memberId, now);
    if (w.count >= this.limit) return false;
    w.count++;
    return true;
  }

  /** The member's window now (a new one when the last has ended): its start and lists counted. */
  windowOf(memberId: number, now: number): { start: number; count: number } {
    let w = this.#windows.get(memberId);
    if (w === undefined) {
      w = { start: now, count: 0 };
      this.#windows.set(memberId, w);
    } else if (now - w.start >= this.window) {
      w.start = now;
      w.count = 0;
    }
    return w;
  }
}
