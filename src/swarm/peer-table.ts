/**
 * One swarm's peers of one address family, in wire form (opentracker's layout, in pooled typed
 * arrays).
 *
 * Memory layout. Peers do not live in per-swarm arrays: a JavaScript typed array costs about a
 * hundred bytes of headers and allocator slack on its own, more than ten peers' data, and public
 * trackers hold mostly tiny swarms. Instead each address family has a `PeerPool` of size classes
 * (capacity 2, 3, 4, 6, 8, 12, ... peers); a class keeps parallel arrays in fixed-size chunks, cut into blocks
 * of its capacity:
 *   records[(base+i)*stride ..+stride)  the compact peer: 4-byte IPv4 or 16-byte IPv6 address,
 *                                       then the port, big-endian (stride 6 or 18). A response
 *                                       is a copy of these bytes.
 *   lastSeen[base+i]                    clock seconds of the peer's last announce (expiry).
 *   flags[base+i]                       SEEDER | COUNTED (its completion was counted) | ID_KNOWN.
 * where base = block * capacity. A table owns one block; it moves to the next class up when full
 * and down when a quarter full, returning its block to the class's free list. So a peer costs
 * its 11 (IPv4) or 23 (IPv6) bytes plus slack below 2×, and a swarm one small object.
 * Peer ids (20 bytes a peer) are kept in a per-table array allocated only once the swarm has
 * served a compact=0 request.
 *
 * Slots are partitioned: leechers in [0, leechers), seeders in [leechers, count). A seeder is
 * sent leechers only, so its candidates are one contiguous range, and a leecher's are all
 * slots: selection is always range copies. Removal swaps the last slot of the partition into
 * the hole (swap-remove keeps the table dense: no tombstones, no compaction pass).
 *
 * Identity is the endpoint, never the peer id. Up to INDEX_AT peers are found by a linear scan
 * of the records (cheaper than a Map for tiny swarms and free in memory); above that a Map
 * from endpoint key (IPv4: ip * 65536 + port, a number; IPv6: the 18 bytes as a latin1 string)
 * to slot is built.
 */

export const SEEDER = 1;
export const COUNTED = 2;
export const ID_KNOWN = 4;

const INDEX_AT = 16;

/** Slots per chunk of a size class (a class whose blocks are bigger uses one block a chunk). */
const CHUNK_SLOTS = 4096;

/** One chunk of a size class: parallel arrays that never move once allocated. */
interface Chunk {
  records: Uint8Array;
  lastSeen: Uint32Array;
  flags: Uint8Array;
}

/**
 * One size class: blocks of `cap` slots, carved from fixed-size chunks. Chunks are never
 * reallocated (no copy, no doubling slack, and a table may keep references to its chunk's
 * arrays); freed blocks go to a free list for reuse.
 */
class SizeClass {
  readonly cap: number;
  readonly stride: number;
  readonly blocksPerChunk: number;
  readonly chunks: Chunk[] = [];
  #blocks = 0;
  #free: number[] = [];

  constructor(cap: number, stride: number) {
    this.cap = cap;
    this.stride = stride;
    this.blocksPerChunk = Math.max(1, Math.floor(CHUNK_SLOTS / cap));
  }

  alloc(): number {
    const f = this.#free.pop();
    if (f !== undefined) return f;
    const b = this.#blocks++;
    if (Math.floor(b / this.blocksPerChunk) >= this.chunks.length) {
      const slots = this.blocksPerChunk * this.cap;
      this.chunks.push({
        records: new Uint8Array(slots * this.stride),
        lastSeen: new Uint32Array(slots),
        flags: new Uint8Array(slots),
      });
    }
    return b;
  }

  chunkOf(block: number): Chunk {
    return this.chunks[Math.floor(block / this.blocksPerChunk)];
  }

  /** First slot of `block` within its chunk. */
  baseOf(block: number): number {
    return (block % this.blocksPerChunk) * this.cap;
  }

  release(block: number): void {
    this.#free.push(block);
    // A class with no live block gives its chunks back. Swarms that grow together (a busy start,
    // the benchmark's fill) leave every smaller class empty behind them: without this, their
    // chunks would stay allocated for blocks nobody will ask for.
    if (this.#free.length === this.#blocks) {
      this.chunks.length = 0;
      this.#free = [];
      this.#blocks = 0;
    }
  }

  /** Blocks in use (for tests and stats). */
  get used(): number {
    return this.#blocks - this.#free.length;
  }
}

/**
 * Capacities of the size classes: 2, 3, 4, 6, 8, 12, 16, 24, ... (each about 1.4× the last), so
 * a table wastes under a third of its block on average.
 */
function capOf(k: number): number {
  return k < 2 ? k + 2 : 2 * capOf(k - 2);
}

/** All peer storage of one address family. */
export class PeerPool {
  readonly stride: 6 | 18;
  readonly family: 4 | 6;
  readonly classes: SizeClass[] = [];
  constructor(family: 4 | 6) {
    this.family = family;
    this.stride = family === 4 ? 6 : 18;
  }
  cls(k: number): SizeClass {
    while (this.classes.length <= k)
      this.classes.push(new SizeClass(capOf(this.classes.length), this.stride));
    return this.classes[k];
  }
  /** Smallest class that holds n slots. */
  classFor(n: number): number {
    let k = 0;
    while (capOf(k) < n) k++;
    return k;
  }
}

export class PeerTable {
  readonly stride: 6 | 18;
  readonly pool: PeerPool;
  count = 0;
  leechers = 0;
  #k = 0;
  #cls: SizeClass;
  #block: number;
  // The table's chunk arrays and first slot in them (chunks never move, so these stay valid).
  #rec: Uint8Array;
  #ls: Uint32Array;
  #fl: Uint8Array;
  #base: number;
  #index: Map<number | string, number> | null = null;
  peerIds: Uint8Array | null = null;

  constructor(pool: PeerPool) {
    this.pool = pool;
    this.stride = pool.stride;
    this.#cls = pool.cls(0);
    this.#block = this.#cls.alloc();
    const c = this.#cls.chunkOf(this.#block);
    this.#rec = c.records;
    this.#ls = c.lastSeen;
    this.#fl = c.flags;
    this.#base = this.#cls.baseOf(this.#block);
  }

  get seeders(): number {
    return this.count - this.leechers;
  }
  get capacity(): number {
    return this.#cls.cap;
  }

  flagsAt(slot: number): number {
    return this.#fl[this.#base + slot];
  }
  setFlags(slot: number, value: number): void {
    this.#fl[this.#base + slot] = value;
  }
  lastSeenAt(slot: number): number {
    return this.#ls[this.#base + slot];
  }
  touch(slot: number, now: number): void {
    this.#ls[this.#base + slot] = now;
  }
  /** The slot's compact record (a view: copy it to keep it). */
  recordAt(slot: number): Uint8Array {
    const off = (this.#base + slot) * this.stride;
    return this.#rec.subarray(off, off + this.stride);
  }
  setPeerId(slot: number, id: Uint8Array): void {
    if (this.peerIds === null) return;
    this.peerIds.set(id.subarray(0, 20), slot * 20);
    this.#fl[this.#base + slot] |= ID_KNOWN;
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
    const r = this.#rec;
    const base = this.#base * s;
    outer: for (let i = 0; i < this.count; i++) {
      const off = base + i * s;
      for (let j = s - 1; j >= 0; j--) if (r[off + j] !== ep[j]) continue outer;
      return i;
    }
    return -1;
  }

  /** Turns on per-peer id storage (first compact=0 request in this swarm). */
  enablePeerIds(): void {
    if (this.peerIds === null) this.peerIds = new Uint8Array(this.#cls.cap * 20);
  }

  /** Moves the table's block to size class k (bigger or smaller), copying the live slots. */
  #moveTo(k: number): void {
    const from = this.#base;
    const to = this.pool.cls(k);
    const block = to.alloc();
    const chunk = to.chunkOf(block);
    const base = to.baseOf(block);
    const n = this.count;
    const s = this.stride;
    chunk.records.set(this.#rec.subarray(from * s, (from + n) * s), base * s);
    chunk.lastSeen.set(this.#ls.subarray(from, from + n), base);
    chunk.flags.set(this.#fl.subarray(from, from + n), base);
    this.#cls.release(this.#block);
    this.#cls = to;
    this.#block = block;
    this.#k = k;
    this.#rec = chunk.records;
    this.#ls = chunk.lastSeen;
    this.#fl = chunk.flags;
    this.#base = base;
    if (this.peerIds !== null) {
      const ids = new Uint8Array(to.cap * 20);
      ids.set(this.peerIds.subarray(0, Math.min(n, to.cap) * 20));
      this.peerIds = ids;
    }
  }

  #move(from: number, to: number): void {
    if (from === to) return;
    const base = this.#base;
    const s = this.stride;
    this.#rec.copyWithin((base + to) * s, (base + from) * s, (base + from) * s + s);
    this.#ls[base + to] = this.#ls[base + from];
    this.#fl[base + to] = this.#fl[base + from];
    if (this.peerIds !== null) this.peerIds.copyWithin(to * 20, from * 20, from * 20 + 20);
    if (this.#index !== null) this.#index.set(this.#keyAt(this.#rec, (base + to) * s), to);
  }

  /** Inserts a new endpoint; returns its slot. */
  insert(ep: Uint8Array, seeder: boolean, now: number): number {
    if (this.count === this.#cls.cap) this.#moveTo(this.#k + 1);
    let slot: number;
    if (seeder) {
      slot = this.count;
    } else {
      // Make room at the end of the leecher partition by moving the first seeder to the end.
      this.#move(this.leechers, this.count);
      slot = this.leechers++;
    }
    this.count++;
    const base = this.#base;
    this.#rec.set(ep.subarray(0, this.stride), (base + slot) * this.stride);
    this.#ls[base + slot] = now;
    this.#fl[base + slot] = seeder ? SEEDER : 0;
    if (this.#index !== null) this.#index.set(this.#keyAt(ep, 0), slot);
    else if (this.count > INDEX_AT) this.#buildIndex();
    return slot;
  }

  #buildIndex(): void {
    const index = new Map<number | string, number>();
    const r = this.#rec;
    const base = this.#base * this.stride;
    for (let i = 0; i < this.count; i++) index.set(this.#keyAt(r, base + i * this.stride), i);
    this.#index = index;
  }

  /** Removes the peer in `slot`, keeping the partition dense. */
  remove(slot: number): void {
    if (this.#index !== null) this.#index.delete(this.#keyAt(this.#rec, (this.#base + slot) * this.stride));
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
    // Shrink to the class below when a quarter full, so a swarm that was big gives memory back.
    if (this.#k > 0 && this.count <= this.#cls.cap / 4) {
      this.#moveTo(this.pool.classFor(Math.max(2, this.count * 2)));
      if (this.#index !== null && this.count <= INDEX_AT / 2) this.#index = null;
    }
  }

  /** Returns the table's block to the pool; the table must not be used afterwards. */
  release(): void {
    this.#cls.release(this.#block);
    this.#block = -1;
    this.count = 0;
    this.leechers = 0;
    this.#index = null;
    this.peerIds = null;
  }

  /** Moves a peer across the partition when it becomes a seeder or a leecher; returns its slot. */
  setSeeder(slot: number, seeder: boolean): number {
    const is = (this.flagsAt(slot) & SEEDER) !== 0;
    if (is === seeder) return slot;
    let to: number;
    if (seeder) {
      to = this.leechers - 1;
      this.#swap(slot, to);
      this.leechers--;
      this.#fl[this.#base + to] |= SEEDER;
    } else {
      to = this.leechers;
      this.#swap(slot, to);
      this.leechers++;
      this.#fl[this.#base + to] &= ~SEEDER;
    }
    return to;
  }

  #swap(a: number, b: number): void {
    if (a === b) return;
    const base = this.#base;
    const s = this.stride;
    const tmp = this.#rec.slice((base + a) * s, (base + a) * s + s);
    const ls = this.#ls[base + a];
    const fl = this.#fl[base + a];
    const id = this.peerIds !== null ? this.peerIds.slice(a * 20, a * 20 + 20) : null;
    this.#move(b, a);
    this.#rec.set(tmp, (base + b) * s);
    this.#ls[base + b] = ls;
    this.#fl[base + b] = fl;
    if (id !== null) this.peerIds!.set(id, b * 20);
    if (this.#index !== null) this.#index.set(this.#keyAt(this.#rec, (base + b) * s), b);
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
    const rec = this.#rec;
    const fl = this.#fl;
    const base = this.#base;
    let written = 0;
    const copyRun = (start: number, len: number) => {
      for (let k = 0; k < len; k++) {
        // Virtual index -> slot, skipping `exclude`.
        let slot = from + ((start + k) % n);
        if (excluded && slot >= exclude) slot++;
        const off = (base + slot) * s;
        out.set(rec.subarray(off, off + s), written * s);
        if (ids !== null && known !== null) {
          if (this.peerIds !== null && (fl[base + slot] & ID_KNOWN) !== 0) {
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
