import { createHash } from 'node:crypto';

/**
 * A small seeded generator (sfc32: 128 bits of state, passes PractRand to 2^60 bytes), so that a
 * fuzz campaign is a function of its seed: `Rng.from('42', 'udp')` gives every run the same
 * stream for that target, whatever the other targets did.
 */
export class Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  constructor(a: number, b: number, c: number, d: number) {
    this.#a = a | 0;
    this.#b = b | 0;
    this.#c = c | 0;
    this.#d = d | 0;
    for (let i = 0; i < 16; i++) this.u32();
  }

  /** The stream for one seed and one name (SHA-256 of both makes the four state words). */
  static from(seed: string, name: string): Rng {
    const h = createHash('sha256').update(`${seed}\0${name}`).digest();
    return new Rng(h.readUInt32LE(0), h.readUInt32LE(4), h.readUInt32LE(8), h.readUInt32LE(12));
  }

  u32(): number {
    const a = this.#a;
    const b = this.#b;
    const c = this.#c;
    const d = this.#d;
    const t = (((a + b) | 0) + d) | 0;
    this.#d = (d + 1) | 0;
    this.#a = b ^ (b >>> 9);
    this.#b = (c + (c << 3)) | 0;
    this.#c = (((c << 21) | (c >>> 11)) + t) | 0;
    return t >>> 0;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return n <= 1 ? 0 : Math.floor((this.u32() / 0x100000000) * n);
  }

  /** An integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  chance(p: number): boolean {
    return this.u32() / 0x100000000 < p;
  }

  pick<T>(list: readonly T[]): T {
    return list[this.int(list.length)];
  }

  /** Picks by weight: `[[weight, value], ...]`. */
  weighted<T>(list: readonly (readonly [number, T])[]): T {
    let total = 0;
    for (const [w] of list) total += w;
    let r = (this.u32() / 0x100000000) * total;
    for (const [w, v] of list) {
      r -= w;
      if (r < 0) return v;
    }
    return list[list.length - 1][1];
  }

  bytes(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) out[i] = this.u32() & 0xff;
    return out;
  }

  /** A small count, more often small than large: 1, 2, 3 ... (geometric with p = 1/2), at most `max`. */
  small(max: number): number {
    let n = 1;
    while (n < max && this.chance(0.5)) n++;
    return n;
  }
}
