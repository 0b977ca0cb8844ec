import { copyBytes, copyWords, release } from '../core/bytes.ts';

/**
 * The peers of every swarm of one address family, in wire form (opentracker's layout, in pooled
 * typed arrays). A swarm is an integer id handed out by the store; a swarm's peers of this
 * family are its "table", and a table is not an object: it is three numbers in per-swarm typed
 * arrays (size class, block, counts), so a million tiny swarms cost no JavaScript objects.
 *
 * Memory layout. A typed array costs about a hundred bytes of headers and allocator slack on its
 * own, more than ten peers' data, and public trackers hold mostly tiny swarms, so peers live in
 * size classes (capacity 2, 3, 4, 6, 8, 12, 16, 24, ... peers, each about 1.4× the last). A class
 * cuts fixed chunks of about CHUNK_SLOTS slots (one ArrayBuffer each) into blocks of its
 * capacity, and a block keeps its slots' fields side by side (one short run of memory for an
 * announce to touch, instead of three far apart):
 *   lastSeen[i]   (word)  clock seconds of the peer's last announce (expiry);
 *   records[i]   (bytes)  the compact peer: 4-byte IPv4 or 16-byte IPv6 address, then the port,
 *                         big-endian (stride 6 or 18). A response is a copy of these bytes;
 *   flags[i]      (byte)  SEEDER | COUNTED (its completion was counted) | ID_KNOWN;
 * padded to 4 bytes; after the blocks, owner[block]: the swarm that owns it. A table owns one
 * block; it moves to the next class up when full and down when a quarter full. A class keeps its
 * blocks dense: a freed block
 * is filled by the class's last block (whose owner is found in `owner` and told its new block
 * number), so a class holds exactly its live blocks plus at most one spare chunk, and gives
 * chunks back as soon as it shrinks. A peer costs its 11 (IPv4) or 23 (IPv6) bytes plus class
 * slack under 1.5×; a swarm costs 16 bytes of per-swarm words in each family it has peers in.
 *
 * Per swarm (row = swarm id; the rows grow by doubling, a family's only once it has a table),
 * four Int32 words side by side in `meta`, read together by every announce: class (class number
 * | INDEXED | HAS_IDS), block (-1 = no table), count and leechers.
 *
 * Slots are partitioned: leechers in [0, leechers), seeders in [leechers, count). A seeder is
 * sent leechers only, so its candidates are one contiguous range, and a leecher's are all
 * slots: selection is always range copies. Removal swaps the last slot of the partition into
 * the hole (swap-remove keeps the table dense: no tombstones, no compaction pass).
 *
 * Identity is the endpoint, never the peer id. Up to INDEX_AT peers are found by a linear scan
 * of the records (cheaper than a Map for tiny swarms and free in memory); above that a Map
 * from endpoint key (IPv4: ip * 65536 + port, a number; IPv6: the 18 bytes as a latin1 string)
 * to slot is built, kept in a sparse Map by swarm id (big swarms amortise it). Peer ids (20 bytes
 * a peer, slot-indexed) are kept likewise only for swarms that served a compact=0 request.
 *
 * The operations work on a current table, chosen with `open(swarm)` (or `create`), so that none
 * of them allocates or looks the table up twice: `find`, `insert`, `remove`, `setSeeder`,
 * `select` and the slot accessors act on it. Every method that moves blocks keeps the current
 * table's view valid.
 */

export const SEEDER = 1;
export const COUNTED = 2;
export const ID_KNOWN = 4;

/** A table with more peers than this gets an endpoint index; one shrinking to half of it drops it. */
export const INDEX_AT = 16;

/**
 * Most peers one table can hold: its endpoint index is a V8 Map, which throws past 2^24 entries.
 * The store refuses a new peer of a full table (one swarm, one family) instead.
 */
export const MAX_TABLE_PEERS = 1 << 24;

/** Slots per chunk of a size class (a class whose blocks are bigger uses one block a chunk). */
const CHUNK_SLOTS = 4096;

/** Words of a swarm's row in `PeerPool#meta`. */
const M_CLS = 0;
const M_BLOCK = 1;
const M_COUNT = 2;
const M_LEECHERS = 3;

/** Bits of a swarm's `cls` byte: the class number, and two flags of the table. */
const CLASS = 0x3f;
const INDEXED = 0x40;
const HAS_IDS = 0x80;

/** Capacities of the size classes: 2, 3, 4, 6, 8, 12, 16, 24, ... (class k < 64). */
const CAPS: number[] = [];
for (let k = 0; k < 64; k++) CAPS.push(k < 2 ? k + 2 : 2 * CAPS[k - 2]);

/** Smallest class that holds n slots. */
export function classFor(n: number): number {
  let k = 0;
  while (CAPS[k] < n) k++;
  return k;
}

/**
 * One size class: dense blocks [0, used) of `cap` slots, carved from fixed chunks. A block keeps
 * its slots' fields side by side, so that an announce touches one short run of memory: lastSeen
 * (cap words), then records (cap * stride bytes), then flags (cap bytes), padded to 4 bytes.
 */
class SizeClass {
  readonly cap: number;
  readonly stride: number;
  /** Blocks per chunk. */
  readonly bpc: number;
  /** Bytes per block, and where its records and flags start within it (lastSeen at 0). */
  readonly blockBytes: number;
  readonly recOff: number;
  readonly flOff: number;
  // Per chunk: one ArrayBuffer, as bytes (records, flags), as words (lastSeen) and block owners.
  readonly bytes: Uint8Array[] = [];
  readonly words: Uint32Array[] = [];
  readonly owner: Int32Array[] = [];
  used = 0;

  constructor(cap: number, stride: number) {
    this.cap = cap;
    this.stride = stride;
    this.bpc = Math.max(1, Math.floor(CHUNK_SLOTS / cap));
    this.recOff = cap * 4;
    this.flOff = cap * (4 + stride);
    this.blockBytes = Math.ceil((cap * (5 + stride)) / 4) * 4;
  }

  /** A new block at the end of the class, owned by `swarm`. */
  alloc(swarm: number): number {
    const b = this.used++;
    const c = Math.floor(b / this.bpc);
    if (c === this.bytes.length) {
      const size = this.bpc * this.blockBytes;
      const buf = new ArrayBuffer(size + this.bpc * 4);
      this.bytes.push(new Uint8Array(buf, 0, size));
      this.words.push(new Uint32Array(buf, 0, size / 4));
      this.owner.push(new Int32Array(buf, size, this.bpc));
    }
    this.owner[c][b - c * this.bpc] = swarm;
    return b;
  }

  /** Byte offset of a block within its chunk (its chunk is Math.floor(block / bpc)). */
  offsetOf(block: number): number {
    return (block - Math.floor(block / this.bpc) * this.bpc) * this.blockBytes;
  }

  ownerOf(block: number): number {
    const c = Math.floor(block / this.bpc);
    return this.owner[c][block - c * this.bpc];
  }

  /**
   * Drops the last block (the caller has moved its contents away). Chunks past the one in use
   * are given back, but one spare is kept so that a class hovering at a chunk boundary does not
   * allocate and free a chunk on every move.
   */
  pop(): void {
    this.used--;
    const need = Math.ceil(this.used / this.bpc);
    while (this.bytes.length > need + 1) {
      this.words.pop();
      this.owner.pop();
      release(this.bytes.pop()!);
    }
  }
}

const EMPTY_U8 = new Uint8Array(0);
const EMPTY_U32 = new Uint32Array(0);

/** All peer storage of one address family. */
export class PeerPool {
  readonly family: 4 | 6;
  readonly stride: 6 | 18;
  readonly #classes: SizeClass[] = [];

  // Per swarm id.
  /**
   * Per swarm id, four words side by side (one cache line holds four swarms): class byte with
   * its flags (M_CLS), block (M_BLOCK, -1 = no table), count (M_COUNT), leechers (M_LEECHERS).
   * An announce reads all four: apart, they were four cache misses.
   */
  #meta = new Int32Array(0);
  /** Swarm ids `#meta` has room for. */
  #rows = 0;
  /** Endpoint indexes of tables above INDEX_AT peers, by swarm id. */
  #indexes = new Map<number, Map<number | string, number>>();
  /** Peer ids, 20 bytes a slot, of swarms that served a compact=0 request, by swarm id. */
  #ids = new Map<number, Uint8Array>();
  /** Live tables. */
  tables = 0;

  // The current table: its swarm id, its chunk's arrays (`#rec` and `#fl` are the same bytes) and
  // where its records (byte), lastSeen (word) and flags (byte) start in them (see `open`).
  #cur = -1;
  #rec: Uint8Array = EMPTY_U8;
  #ls: Uint32Array = EMPTY_U32;
  #fl: Uint8Array = EMPTY_U8;
  #rb = 0;
  #lb = 0;
  #fb = 0;
  #cap = 0;
  #index: Map<number | string, number> | null = null;
  #curIds: Uint8Array | null = null;

  constructor(family: 4 | 6) {
    this.family = family;
    this.stride = family === 4 ? 6 : 18;
  }

  #class(k: number): SizeClass {
    while (this.#classes.length <= k)
      this.#classes.push(new SizeClass(CAPS[this.#classes.length], this.stride));
    return this.#classes[k];
  }

  /** Whether the swarm has a table in this family. */
  has(swarm: number): boolean {
    return swarm < this.#rows && this.#meta[swarm * 4 + M_BLOCK] >= 0;
  }
  countOf(swarm: number): number {
    return swarm < this.#rows ? this.#meta[swarm * 4 + M_COUNT] : 0;
  }
  leechersOf(swarm: number): number {
    return swarm < this.#rows ? this.#meta[swarm * 4 + M_LEECHERS] : 0;
  }
  seedersOf(swarm: number): number {
    return swarm < this.#rows ? this.#meta[swarm * 4 + M_COUNT] - this.#meta[swarm * 4 + M_LEECHERS] : 0;
  }

  /** Makes the swarm's table the current one (it must exist). */
  open(swarm: number): void {
    const cls = this.#classes[this.#meta[swarm * 4 + M_CLS] & CLASS];
    const b = this.#meta[swarm * 4 + M_BLOCK];
    const c = Math.floor(b / cls.bpc);
    const at = cls.offsetOf(b);
    this.#cur = swarm;
    this.#rec = cls.bytes[c];
    this.#ls = cls.words[c];
    this.#fl = cls.bytes[c];
    this.#cap = cls.cap;
    this.#rb = at + cls.recOff;
    this.#lb = at >> 2;
    this.#fb = at + cls.flOff;
    const bits = this.#meta[swarm * 4 + M_CLS];
    this.#index = (bits & INDEXED) !== 0 ? this.#indexes.get(swarm)! : null;
    this.#curIds = (bits & HAS_IDS) !== 0 ? this.#ids.get(swarm)! : null;
  }

  /** Creates an empty table for the swarm (which has none) and makes it current. */
  create(swarm: number, withIds: boolean): void {
    if (swarm >= this.#rows) this.#grow(swarm);
    this.#meta[swarm * 4 + M_CLS] = withIds ? HAS_IDS : 0;
    this.#meta[swarm * 4 + M_BLOCK] = this.#class(0).alloc(swarm);
    this.#meta[swarm * 4 + M_COUNT] = 0;
    this.#meta[swarm * 4 + M_LEECHERS] = 0;
    if (withIds) this.#ids.set(swarm, new Uint8Array(CAPS[0] * 20));
    this.tables++;
    this.open(swarm);
  }

  #grow(swarm: number): void {
    let n = Math.max(64, this.#rows * 2);
    while (n <= swarm) n *= 2;
    const meta = new Int32Array(n * 4);
    meta.set(this.#meta);
    release(this.#meta);
    for (let i = this.#rows; i < n; i++) meta[i * 4 + M_BLOCK] = -1;
    this.#meta = meta;
    this.#rows = n;
  }

  /** Turns on peer id storage for the swarm's table, if it has one (first compact=0 request). */
  enableIds(swarm: number): void {
    if (!this.has(swarm) || (this.#meta[swarm * 4 + M_CLS] & HAS_IDS) !== 0) return;
    this.#meta[swarm * 4 + M_CLS] |= HAS_IDS;
    const ids = new Uint8Array(CAPS[this.#meta[swarm * 4 + M_CLS] & CLASS] * 20);
    this.#ids.set(swarm, ids);
    if (swarm === this.#cur) this.#curIds = ids;
  }

  // ---- the current table ----

  get count(): number {
    return this.#meta[this.#cur * 4 + M_COUNT];
  }
  get leechers(): number {
    return this.#meta[this.#cur * 4 + M_LEECHERS];
  }
  get capacity(): number {
    return this.#cap;
  }
  /** Whether the current table records peer ids. */
  get hasIds(): boolean {
    return this.#curIds !== null;
  }
  /** Whether the current table has an endpoint index (for tests). */
  get indexed(): boolean {
    return this.#index !== null;
  }

  flagsAt(slot: number): number {
    return this.#fl[this.#fb + slot];
  }
  setFlags(slot: number, value: number): void {
    this.#fl[this.#fb + slot] = value;
  }
  lastSeenAt(slot: number): number {
    return this.#ls[this.#lb + slot];
  }
  touch(slot: number, now: number): void {
    this.#ls[this.#lb + slot] = now;
  }
  setPeerId(slot: number, id: Uint8Array): void {
    const ids = this.#curIds;
    if (ids === null) return;
    const o = slot * 20;
    for (let i = 0; i < 20; i++) ids[o + i] = id[i];
    this.#fl[this.#fb + slot] |= ID_KNOWN;
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
    const base = this.#rb;
    const n = this.#meta[this.#cur * 4 + M_COUNT];
    // The port (last two bytes) differs first among peers behind one address.
    outer: for (let i = 0; i < n; i++) {
      const off = base + i * s;
      for (let j = s - 1; j >= 0; j--) if (r[off + j] !== ep[j]) continue outer;
      return i;
    }
    return -1;
  }

  /** Copies slot `from` over slot `to` of the current table. */
  #move(from: number, to: number): void {
    if (from === to) return;
    const s = this.stride;
    const r = this.#rec;
    const src = this.#rb + from * s;
    const dst = this.#rb + to * s;
    for (let i = 0; i < s; i++) r[dst + i] = r[src + i];
    this.#ls[this.#lb + to] = this.#ls[this.#lb + from];
    this.#fl[this.#fb + to] = this.#fl[this.#fb + from];
    const ids = this.#curIds;
    if (ids !== null) ids.copyWithin(to * 20, from * 20, from * 20 + 20);
    if (this.#index !== null) this.#index.set(this.#keyAt(r, dst), to);
  }

  /** Exchanges two slots of the current table. */
  #swap(a: number, b: number): void {
    if (a === b) return;
    const s = this.stride;
    const r = this.#rec;
    const oa = this.#rb + a * s;
    const ob = this.#rb + b * s;
    for (let i = 0; i < s; i++) {
      const t = r[oa + i];
      r[oa + i] = r[ob + i];
      r[ob + i] = t;
    }
    const ls = this.#ls[this.#lb + a];
    this.#ls[this.#lb + a] = this.#ls[this.#lb + b];
    this.#ls[this.#lb + b] = ls;
    const fl = this.#fl[this.#fb + a];
    this.#fl[this.#fb + a] = this.#fl[this.#fb + b];
    this.#fl[this.#fb + b] = fl;
    const ids = this.#curIds;
    if (ids !== null)
      for (let i = 0; i < 20; i++) {
        const t = ids[a * 20 + i];
        ids[a * 20 + i] = ids[b * 20 + i];
        ids[b * 20 + i] = t;
      }
    if (this.#index !== null) {
      this.#index.set(this.#keyAt(r, oa), a);
      this.#index.set(this.#keyAt(r, ob), b);
    }
  }

  /**
   * Moves the current table's block to class k (bigger or smaller), copying the live slots, and
   * frees the old block.
   */
  #moveTo(k: number): void {
    const swarm = this.#cur;
    const bits = this.#meta[swarm * 4 + M_CLS];
    const from = this.#classes[bits & CLASS];
    const oldBlock = this.#meta[swarm * 4 + M_BLOCK];
    const to = this.#class(k);
    const block = to.alloc(swarm);
    const c = Math.floor(block / to.bpc);
    const at = to.offsetOf(block);
    const n = this.#meta[swarm * 4 + M_COUNT];
    const s = this.stride;
    copyBytes(to.bytes[c], at + to.recOff, this.#rec, this.#rb, n * s);
    copyWords(to.words[c], at >> 2, this.#ls, this.#lb, n);
    copyBytes(to.bytes[c], at + to.flOff, this.#fl, this.#fb, n);
    this.#meta[swarm * 4 + M_CLS] = (bits & ~CLASS) | k;
    this.#meta[swarm * 4 + M_BLOCK] = block;
    if (this.#curIds !== null) {
      const ids = new Uint8Array(to.cap * 20);
      copyBytes(ids, 0, this.#curIds, 0, Math.min(n, to.cap) * 20);
      this.#ids.set(swarm, ids);
    }
    this.#freeBlock(from, oldBlock);
    this.open(swarm);
  }

  /**
   * Frees a block: the class's last block moves into it (its owner learns its new block
   * number), so every class stays dense.
   */
  #freeBlock(cls: SizeClass, block: number): void {
    const last = cls.used - 1;
    if (block !== last) {
      const owner = cls.ownerOf(last);
      const n = this.#meta[owner * 4 + M_COUNT];
      const s = this.stride;
      const cf = Math.floor(last / cls.bpc);
      const ct = Math.floor(block / cls.bpc);
      const af = cls.offsetOf(last);
      const at = cls.offsetOf(block);
      copyBytes(cls.bytes[ct], at + cls.recOff, cls.bytes[cf], af + cls.recOff, n * s);
      copyWords(cls.words[ct], at >> 2, cls.words[cf], af >> 2, n);
      copyBytes(cls.bytes[ct], at + cls.flOff, cls.bytes[cf], af + cls.flOff, n);
      cls.owner[ct][block - ct * cls.bpc] = owner;
      this.#meta[owner * 4 + M_BLOCK] = block;
      // The current table's view must follow its block (not reached today: the current table is
      // the one freeing, but cheap to keep right).
      if (owner === this.#cur) this.open(owner);
    }
    cls.pop();
  }

  /** Inserts a new endpoint into the current table; returns its slot. */
  insert(ep: Uint8Array, seeder: boolean, now: number): number {
    const swarm = this.#cur;
    if (this.#meta[swarm * 4 + M_COUNT] === this.#cap)
      this.#moveTo((this.#meta[swarm * 4 + M_CLS] & CLASS) + 1);
    let slot: number;
    if (seeder) {
      slot = this.#meta[swarm * 4 + M_COUNT];
    } else {
      // Make room at the end of the leecher partition by moving the first seeder to the end.
      slot = this.#meta[swarm * 4 + M_LEECHERS];
      this.#move(slot, this.#meta[swarm * 4 + M_COUNT]);
      this.#meta[swarm * 4 + M_LEECHERS] = slot + 1;
    }
    const n = ++this.#meta[swarm * 4 + M_COUNT];
    const s = this.stride;
    const r = this.#rec;
    const off = this.#rb + slot * s;
    for (let i = 0; i < s; i++) r[off + i] = ep[i];
    this.#ls[this.#lb + slot] = now;
    this.#fl[this.#fb + slot] = seeder ? SEEDER : 0;
    if (this.#index !== null) this.#index.set(this.#keyAt(ep, 0), slot);
    else if (n > INDEX_AT) this.#buildIndex();
    return slot;
  }

  #buildIndex(): void {
    const index = new Map<number | string, number>();
    const r = this.#rec;
    const s = this.stride;
    const base = this.#rb;
    const n = this.#meta[this.#cur * 4 + M_COUNT];
    for (let i = 0; i < n; i++) index.set(this.#keyAt(r, base + i * s), i);
    this.#indexes.set(this.#cur, index);
    this.#meta[this.#cur * 4 + M_CLS] |= INDEXED;
    this.#index = index;
  }

  /**
   * Removes the peer in `slot` of the current table, keeping the partition dense. Returns true
   * when that was the last peer: the table is then released (no current table).
   */
  remove(slot: number): boolean {
    const swarm = this.#cur;
    if (this.#index !== null) this.#index.delete(this.#keyAt(this.#rec, this.#rb + slot * this.stride));
    const last = this.#meta[swarm * 4 + M_COUNT] - 1;
    const leechers = this.#meta[swarm * 4 + M_LEECHERS];
    if (slot < leechers) {
      this.#move(leechers - 1, slot);
      this.#move(last, leechers - 1);
      this.#meta[swarm * 4 + M_LEECHERS] = leechers - 1;
    } else {
      this.#move(last, slot);
    }
    this.#meta[swarm * 4 + M_COUNT] = last;
    if (last === 0) {
      this.#release(swarm);
      return true;
    }
    // Shrink to a smaller class when a quarter full, so a swarm that was big gives memory back.
    const k = this.#meta[swarm * 4 + M_CLS] & CLASS;
    if (k > 0 && last <= this.#cap / 4) {
      this.#moveTo(classFor(Math.max(2, last * 2)));
      if (this.#index !== null && last <= INDEX_AT / 2) {
        this.#indexes.delete(swarm);
        this.#meta[swarm * 4 + M_CLS] &= ~INDEXED;
        this.#index = null;
      }
    }
    return false;
  }

  #release(swarm: number): void {
    this.#freeBlock(this.#classes[this.#meta[swarm * 4 + M_CLS] & CLASS], this.#meta[swarm * 4 + M_BLOCK]);
    if ((this.#meta[swarm * 4 + M_CLS] & INDEXED) !== 0) this.#indexes.delete(swarm);
    if ((this.#meta[swarm * 4 + M_CLS] & HAS_IDS) !== 0) this.#ids.delete(swarm);
    this.#meta[swarm * 4 + M_CLS] = 0;
    this.#meta[swarm * 4 + M_BLOCK] = -1;
    this.#meta[swarm * 4 + M_COUNT] = 0;
    this.#meta[swarm * 4 + M_LEECHERS] = 0;
    this.tables--;
    this.#cur = -1;
    this.#index = null;
    this.#curIds = null;
  }

  /** Moves a peer across the partition when it becomes a seeder or a leecher; returns its slot. */
  setSeeder(slot: number, seeder: boolean): number {
    const is = (this.#fl[this.#fb + slot] & SEEDER) !== 0;
    if (is === seeder) return slot;
    const swarm = this.#cur;
    let to: number;
    if (seeder) {
      to = this.#meta[swarm * 4 + M_LEECHERS] - 1;
      this.#swap(slot, to);
      this.#meta[swarm * 4 + M_LEECHERS] = to;
      this.#fl[this.#fb + to] |= SEEDER;
    } else {
      to = this.#meta[swarm * 4 + M_LEECHERS];
      this.#swap(slot, to);
      this.#meta[swarm * 4 + M_LEECHERS] = to + 1;
      this.#fl[this.#fb + to] &= ~SEEDER;
    }
    return to;
  }

  /**
   * Copies up to `want` peers of the current table from slots [from, to) except `exclude` into
   * `out` (records) and, when asked, `ids`/`known`. Picks two contiguous runs starting at random
   * offsets in the circular candidate sequence (aquatic's idea): no duplicates, no per-peer
   * random calls. Returns the number of peers written.
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
    const excluded = exclude >= from && exclude < to;
    const n = to - from - (excluded ? 1 : 0);
    if (n <= 0 || want <= 0) return 0;
    // Slots at or above `skip` shift up by one (past the excluded requester).
    const skip = excluded ? exclude : 0x7fffffff;
    const take = Math.min(want, n);
    if (take === n) return this.#copyRun(from, n, skip, 0, n, out, ids, known, 0);
    const first = Math.ceil(take / 2);
    const start1 = Math.floor(random() * n);
    // The second run starts after the first, with a random gap that keeps it clear of the first.
    const gap = Math.floor(random() * (n - take + 1));
    const written = this.#copyRun(from, n, skip, start1, first, out, ids, known, 0);
    return this.#copyRun(from, n, skip, (start1 + first + gap) % n, take - first, out, ids, known, written);
  }

  /** Copies candidates start .. start+len-1 (circular over n) after `written` peers of output. */
  #copyRun(
    from: number,
    n: number,
    skip: number,
    start: number,
    len: number,
    out: Uint8Array,
    ids: Uint8Array | null,
    known: Uint8Array | null,
    written: number,
  ): number {
    const s = this.stride;
    const rec = this.#rec;
    let o = written * s;
    for (let k = 0; k < len; k++) {
      let v = start + k;
      if (v >= n) v -= n;
      let slot = from + v;
      if (slot >= skip) slot++;
      const off = this.#rb + slot * s;
      for (let j = 0; j < s; j++) out[o + j] = rec[off + j];
      o += s;
      if (ids !== null && known !== null) this.#copyId(slot, ids, known, written + k);
    }
    return written + len;
  }

  #copyId(slot: number, ids: Uint8Array, known: Uint8Array, i: number): void {
    const from = this.#curIds;
    if (from !== null && (this.#fl[this.#fb + slot] & ID_KNOWN) !== 0) {
      for (let j = 0; j < 20; j++) ids[i * 20 + j] = from[slot * 20 + j];
      known[i] = 1;
    } else {
      ids.fill(0, i * 20, i * 20 + 20);
      known[i] = 0;
    }
  }

  /** Blocks in use and chunks held per class (for tests and diagnostics). */
  classUsage(): { cap: number; blocks: number; chunks: number }[] {
    return this.#classes.map((c) => ({ cap: c.cap, blocks: c.used, chunks: c.bytes.length }));
  }
}
