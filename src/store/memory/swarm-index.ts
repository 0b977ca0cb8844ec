import { release } from '../../core/bytes.ts';

/**
 * Info hash → swarm id, for the memory store: no object and no string per swarm or per lookup.
 *
 * Swarm ids are small integers that index the store's per-swarm typed arrays. Each id has a
 * 24-byte record in one buffer (`records`, id * REC): the 20-byte info hash, then a 32-bit value
 * the store keeps there (its completion count) because a lookup has just brought that cache line
 * in. Freed ids go on a stack and are reused first. Lookup is an open-addressing table (`Int32Array`, a power of two long, holding id + 1,
 * 0 = empty) with linear probing, kept at most LOAD full, and backward-shift deletion, so no
 * tombstones ever lengthen a probe.
 *
 * Threat model: in open mode anyone chooses the info hashes. With a fixed hash function a client
 * could send hashes that all land in one cluster and make every lookup walk it (hash flooding).
 * Slots are chosen by HalfSipHash-1-3 under a random 64-bit key drawn per store (the keyed hash
 * Linux uses for its hash tables, `hsiphash`): without the key, which never leaves the process,
 * a client cannot tell which hashes collide. The key is not secret from anyone who can read the
 * process's memory, and 32 bits of output are not a MAC; neither matters for a probe chain.
 */

/** Largest share of slots in use before the table doubles. */
const LOAD = 0.7;
/** Below this share (and above MIN_SLOTS) the table halves. */
const SHRINK = 0.15;
const MIN_SLOTS = 1024;
/** Bytes per id in `records`: the info hash, then the value word. */
const REC = 24;

/** HalfSipHash-1-3, 32-bit output, of the 20 bytes at `b[off]` under the key (k0, k1). */
export function halfSipHash13(b: Uint8Array, off: number, k0: number, k1: number): number {
  let v0 = k0 | 0;
  let v1 = k1 | 0;
  let v2 = 0x6c796765 ^ k0;
  let v3 = 0x74656462 ^ k1;
  // Steps 0-4: the five little-endian message words; 5: the length block (20 << 24); one
  // round each. Steps 6-8: finalisation (v2 ^= 0xff, then three rounds). One round body serves
  // all; a finalisation step's m is 0, so its `v0 ^= m` changes nothing.
  for (let step = 0; step < 9; step++) {
    let m = 0;
    if (step < 5) {
      const i = off + 4 * step;
      m = b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24);
    } else if (step === 5) m = 20 << 24;
    else if (step === 6) v2 ^= 0xff;
    v3 ^= m;
    v0 = (v0 + v1) | 0;
    v1 = (v1 << 5) | (v1 >>> 27);
    v1 ^= v0;
    v0 = (v0 << 16) | (v0 >>> 16);
    v2 = (v2 + v3) | 0;
    v3 = (v3 << 8) | (v3 >>> 24);
    v3 ^= v2;
    v0 = (v0 + v3) | 0;
    v3 = (v3 << 7) | (v3 >>> 25);
    v3 ^= v0;
    v2 = (v2 + v1) | 0;
    v1 = (v1 << 13) | (v1 >>> 19);
    v1 ^= v2;
    v2 = (v2 << 16) | (v2 >>> 16);
    v0 ^= m;
  }
  return (v1 ^ v3) >>> 0;
}

export class SwarmIndex {
  /** Per id: info hash at [id*REC, id*REC+20), then the value word (u32); grows by doubling. */
  records = new Uint8Array(0);
  /** `records` as 32-bit words: id's value is word id*6+5. */
  #words = new Uint32Array(0);
  /** Ids handed out so far: every live id is below it. */
  top = 0;
  /** Live swarms. */
  size = 0;
  #slots = new Int32Array(MIN_SLOTS);
  #mask = MIN_SLOTS - 1;
  #free = new Int32Array(0);
  #nfree = 0;
  readonly #k0: number;
  readonly #k1: number;
  /** Where the last unsuccessful `find` stopped: the empty slot an `add` fills. */
  #at = 0;
  #atHash = 0;

  /** `key`: two 32-bit words; random unless given (tests). */
  constructor(key?: readonly [number, number]) {
    const k = key ?? crypto.getRandomValues(new Uint32Array(2));
    this.#k0 = k[0] | 0;
    this.#k1 = k[1] | 0;
  }

  /** Hash of the 20 bytes at `b[off]` (a method so that a test can force collisions). */
  hash(b: Uint8Array, off: number): number {
    return halfSipHash13(b, off, this.#k0, this.#k1);
  }

  /** The info hash of a live id (a view). */
  hashOf(id: number): Uint8Array {
    return this.records.subarray(id * REC, id * REC + 20);
  }

  /** The value word kept with a live id (0 when added). */
  value(id: number): number {
    return this.#words[id * 6 + 5];
  }
  setValue(id: number, v: number): void {
    this.#words[id * 6 + 5] = v;
  }

  /** Swarm id of the info hash, or -1. */
  find(h: Uint8Array): number {
    const x = this.hash(h, 0);
    const slots = this.#slots;
    const mask = this.#mask;
    const hashes = this.records;
    let i = x & mask;
    for (;;) {
      const e = slots[i];
      if (e === 0) {
        this.#at = i;
        this.#atHash = x;
        return -1;
      }
      const o = (e - 1) * REC;
      let j = 0;
      while (j < 20 && hashes[o + j] === h[j]) j++;
      if (j === 20) return e - 1;
      i = (i + 1) & mask;
    }
  }

  /** Adds an info hash that `find` has just reported missing (nothing in between); returns its id. */
  add(h: Uint8Array): number {
    if (this.size + 1 > (this.#mask + 1) * LOAD) {
      this.#rehash((this.#mask + 1) * 2);
      this.#at = this.#emptySlot(this.#atHash);
    }
    let id: number;
    if (this.#nfree > 0) id = this.#free[--this.#nfree];
    else {
      id = this.top++;
      if (id * REC >= this.records.length) {
        const records = new Uint8Array(Math.max(1024, (this.records.length / REC) * 2) * REC);
        records.set(this.records);
        release(this.records);
        this.records = records;
        this.#words = new Uint32Array(records.buffer);
      }
    }
    const o = id * REC;
    for (let j = 0; j < 20; j++) this.records[o + j] = h[j];
    this.#words[id * 6 + 5] = 0;
    this.#slots[this.#at] = id + 1;
    this.size++;
    return id;
  }

  /** Removes a live swarm id; the id is reused by a later `add`. */
  delete(id: number): void {
    const slots = this.#slots;
    const mask = this.#mask;
    let hole = this.hash(this.records, id * REC) & mask;
    while (slots[hole] !== id + 1) hole = (hole + 1) & mask;
    // Backward shift: pull later entries of the cluster into the hole when the hole lies
    // between their home slot and where they are, so that every entry stays reachable from its
    // home without tombstones.
    let j = (hole + 1) & mask;
    while (slots[j] !== 0) {
      const home = this.hash(this.records, (slots[j] - 1) * REC) & mask;
      if (((j - home) & mask) >= ((j - hole) & mask)) {
        slots[hole] = slots[j];
        hole = j;
      }
      j = (j + 1) & mask;
    }
    slots[hole] = 0;
    this.records.fill(0, id * REC, id * REC + REC);
    this.size--;
    if (this.size === 0) {
      // Everything is gone: start ids from 0 again (keeps `top`, and so sweeps, short).
      this.top = 0;
      this.#nfree = 0;
    } else {
      if (this.#nfree === this.#free.length) {
        const free = new Int32Array(Math.max(256, this.#free.length * 2));
        free.set(this.#free);
        this.#free = free;
      }
      this.#free[this.#nfree++] = id;
    }
    if (mask + 1 > MIN_SLOTS && this.size < (mask + 1) * SHRINK) this.#rehash((mask + 1) / 2);
  }

  /** Slot count of the lookup table (for tests). */
  get slotCount(): number {
    return this.#mask + 1;
  }

  #emptySlot(x: number): number {
    let i = x & this.#mask;
    while (this.#slots[i] !== 0) i = (i + 1) & this.#mask;
    return i;
  }

  #rehash(n: number): void {
    const old = this.#slots;
    this.#slots = new Int32Array(n);
    this.#mask = n - 1;
    for (let i = 0; i < old.length; i++) {
      const e = old[i];
      if (e !== 0) this.#slots[this.#emptySlot(this.hash(this.records, (e - 1) * REC))] = e;
    }
    release(old);
  }
}
