/**
 * One swarm's peers of one address family, in wire form (opentracker's layout in typed arrays).
 *
 * Layout, per slot i (capacity grows by doubling, starting at 2: most swarms are tiny):
 *   records[i*stride .. +stride)  the compact peer: 4-byte IPv4 or 16-byte IPv6 address, then
 *                                 the port, big-endian. stride = 6 or 18. A response is a copy.
 *   lastSeen[i]                   clock seconds of the peer's last announce (expiry).
 *   flags[i]                      SEEDER | COUNTED (its completion was counted) | ID_KNOWN.
 *   peerIds[i*20 .. +20)          only once the swarm has served a compact=0 request (lazy).
 *
 * Slots are partitioned: leechers in [0, leechers), seeders in [leechers, count). A seeder is
 * sent leechers only, so its candidates are one contiguous range, and a leecher's are all
 * slots: selection is always range copies. Removal swaps the last slot of the partition into
 * the hole (swap-remove keeps the table dense, so no tombstones and no compaction pass).
 *
 * Identity is the endpoint, never the peer id. Up to INDEX_AT peers are found by a linear scan
 * of the records (cheaper than a Map for tiny swarms and costs no memory); above that a Map
 * from endpoint key (IPv4: ip * 65536 + port, a number; IPv6: the 18 bytes as a latin1 string)
 * to slot is built.
 */

export const SEEDER = 1;
export const COUNTED = 2;
export const ID_KNOWN = 4;

const INDEX_AT = 16;

export class PeerTable {
  readonly stride: 6 | 18;
  records: Uint8Array;
  lastSeen: Uint32Array;
  flags: Uint8Array;
  peerIds: Uint8Array | null = null;
  count = 0;
  leechers = 0;
  #index: Map<number | string, number> | null = null;

  constructor(family: 4 | 6, capacity = 2) {
    this.stride = family === 4 ? 6 : 18;
    this.records = new Uint8Array(capacity * this.stride);
    this.lastSeen = new Uint32Array(capacity);
    this.flags = new Uint8Array(capacity);
  }

  get seeders(): number {
    return this.count - this.leechers;
  }

  /** Key of the endpoint in `rec[off, off+stride)`. */
  #keyAt(rec: Uint8Array, off: number): number | string {
    if (this.stride === 6)
      return (
        (((rec[off] << 24) | (rec[off + 1] << 16) | (rec[off + 2] << 8) | rec[off + 3]) >>> 0) * 65536 +
        ((rec[off + 4] << 8) | rec[off + 5])
      );
    let s = '';
    for (let i = 0; i < 18; i++) s += String.fromCharCode(rec[off + i]);
    return s;
  }

  /** Slot of the endpoint written in `ep` (stride bytes), or -1. */
  find(ep: Uint8Array): number {
    if (this.#index !== null) return this.#index.get(this.#keyAt(ep, 0)) ?? -1;
    const s = this.stride;
    const r = this.records;
    outer: for (let i = 0; i < this.count; i++) {
      const off = i * s;
      for (let j = s - 1; j >= 0; j--) if (r[off + j] !== ep[j]) continue outer;
      return i;
    }
    return -1;
  }

  /** Turns on per-peer id storage (first compact=0 request in this swarm). */
  enablePeerIds(): void {
    if (this.peerIds === null) this.peerIds = new Uint8Array(this.lastSeen.length * 20);
  }

  #grow(): void {
    const cap = this.lastSeen.length * 2;
    const records = new Uint8Array(cap * this.stride);
    records.set(this.records);
    this.records = records;
    const lastSeen = new Uint32Array(cap);
    lastSeen.set(this.lastSeen);
    this.lastSeen = lastSeen;
    const flags = new Uint8Array(cap);
    flags.set(this.flags);
    this.flags = flags;
    if (this.peerIds !== null) {
      const ids = new Uint8Array(cap * 20);
      ids.set(this.peerIds);
      this.peerIds = ids;
    }
  }

  /** Shrinks when a quarter full, so that a swarm that was big once gives its memory back. */
  #maybeShrink(): void {
    const cap = this.lastSeen.length;
    if (cap <= 8 || this.count > cap / 4) return;
    const n = cap / 2;
    this.records = this.records.slice(0, n * this.stride);
    this.lastSeen = this.lastSeen.slice(0, n);
    this.flags = this.flags.slice(0, n);
    if (this.peerIds !== null) this.peerIds = this.peerIds.slice(0, n * 20);
    if (this.#index !== null && this.count < INDEX_AT / 2) this.#index = null;
  }

  #move(from: number, to: number): void {
    if (from === to) return;
    const s = this.stride;
    this.records.copyWithin(to * s, from * s, from * s + s);
    this.lastSeen[to] = this.lastSeen[from];
    this.flags[to] = this.flags[from];
    if (this.peerIds !== null) this.peerIds.copyWithin(to * 20, from * 20, from * 20 + 20);
    if (this.#index !== null) this.#index.set(this.#keyAt(this.records, to * s), to);
  }

  /** Inserts a new endpoint; returns its slot. */
  insert(ep: Uint8Array, seeder: boolean, now: number): number {
    if (this.count === this.lastSeen.length) this.#grow();
    let slot: number;
    if (seeder) {
      slot = this.count;
    } else {
      // Make room at the end of the leecher partition by moving the first seeder to the end.
      this.#move(this.leechers, this.count);
      slot = this.leechers++;
    }
    this.count++;
    this.records.set(ep.subarray(0, this.stride), slot * this.stride);
    this.lastSeen[slot] = now;
    this.flags[slot] = seeder ? SEEDER : 0;
    if (this.#index !== null) this.#index.set(this.#keyAt(ep, 0), slot);
    else if (this.count > INDEX_AT) this.#buildIndex();
    return slot;
  }

  #buildIndex(): void {
    const index = new Map<number | string, number>();
    for (let i = 0; i < this.count; i++) index.set(this.#keyAt(this.records, i * this.stride), i);
    this.#index = index;
  }

  /** Removes the peer in `slot`, keeping the partition dense. */
  remove(slot: number): void {
    if (this.#index !== null) this.#index.delete(this.#keyAt(this.records, slot * this.stride));
    const last = this.count - 1;
    if (slot < this.leechers) {
      const lastLeecher = this.leechers - 1;
      this.#move(lastLeecher, slot);
      this.#move(last, lastLeecher);
      this.leechers--;
    } else {
      this.#move(last, slot);
    }
    this.count--;
    this.#maybeShrink();
  }

  /** Moves a peer across the partition when it becomes a seeder or a leecher; returns its slot. */
  setSeeder(slot: number, seeder: boolean): number {
    const is = (this.flags[slot] & SEEDER) !== 0;
    if (is === seeder) return slot;
    let to: number;
    if (seeder) {
      // Swap with the last leecher, then shrink the leecher partition by one.
      to = this.leechers - 1;
      this.#swap(slot, to);
      this.leechers--;
      this.flags[to] |= SEEDER;
    } else {
      to = this.leechers;
      this.#swap(slot, to);
      this.leechers++;
      this.flags[to] &= ~SEEDER;
    }
    return to;
  }

  #swap(a: number, b: number): void {
    if (a === b) return;
    const s = this.stride;
    const tmp = this.records.slice(a * s, a * s + s);
    const ls = this.lastSeen[a];
    const fl = this.flags[a];
    const id = this.peerIds !== null ? this.peerIds.slice(a * 20, a * 20 + 20) : null;
    this.#move(b, a);
    this.records.set(tmp, b * s);
    this.lastSeen[b] = ls;
    this.flags[b] = fl;
    if (id !== null) this.peerIds!.set(id, b * 20);
    if (this.#index !== null) this.#index.set(this.#keyAt(this.records, b * s), b);
  }

  /**
   * Copies up to `want` peers from slots [from, to) except `exclude` into `out` (records) and,
   * when asked, `ids`/`known`. Picks two contiguous runs starting at random offsets in the
   * circular candidate sequence (aquatic's idea): no duplicates, no per-peer random calls.
   * Returns the number of peers written.
   */
  select(
    from: number,
    to: number,
    exclude: number,
    want: number,
    random: () => number,
    out: Uint8Array,
    ids: Uint8Array | null,
    known: Uint8Array | null,
  ): number {
    const excluded = exclude >= from && exclude < to ? 1 : 0;
    const n = to - from - excluded;
    if (n <= 0 || want <= 0) return 0;
    const take = Math.min(want, n);
    const s = this.stride;
    let written = 0;
    // Virtual index v in [0, n) maps to a slot, skipping `exclude`.
    const slotOf = (v: number) => {
      const slot = from + v;
      return excluded && slot >= exclude ? slot + 1 : slot;
    };
    const copyRun = (start: number, len: number) => {
      for (let k = 0; k < len; k++) {
        const slot = slotOf((start + k) % n);
        out.set(this.records.subarray(slot * s, slot * s + s), written * s);
        if (ids !== null && known !== null) {
          if (this.peerIds !== null && (this.flags[slot] & ID_KNOWN) !== 0) {
            ids.set(this.peerIds.subarray(slot * 20, slot * 20 + 20), written * 20);
            known[written] = 1;
          } else {
            ids.fill(0, written * 20, written * 20 + 20);
            known[written] = 0;
          }
        }
        written++;
      }
    };
    if (take === n) {
      copyRun(0, n);
      return written;
    }
    const first = Math.ceil(take / 2);
    const second = take - first;
    const start1 = Math.floor(random() * n);
    // The second run starts after the first, with a random gap that keeps it clear of the first.
    const gap = Math.floor(random() * (n - take + 1));
    copyRun(start1, first);
    copyRun((start1 + first + gap) % n, second);
    return written;
  }
}
