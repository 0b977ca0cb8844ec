import type { ConnectionId } from './codec.ts';

/**
 * Stateless UDP connection ids (BEP 15).
 *
 * Threat model: a connection id proves that the sender received our connect reply at the address
 * and port it claims, so a host that spoofs a victim's source address cannot make Herald send
 * announce or scrape replies (bigger than the request) to the victim: it never saw an id for that
 * address. An id is `hi` = the issue time in Unix seconds, `lo` = the low 32 bits of
 * SipHash-2-4(secret, address || port || time). Without the 128-bit secret, forging the 32-bit
 * tag for a chosen address succeeds with probability 2^-32 per guess, and guessing needs the
 * replies it is trying to cause. Ids are valid for `lifetimeSeconds` (default 120, BEP 15 says
 * "about two minutes"); an id dated in the future (beyond 5 s of clock skew between instances)
 * is refused so that a leaked secret-less guess cannot be made to live forever. Instances that
 * share the secret (and roughly the time) accept each other's ids.
 *
 * SipHash is written here on 32-bit halves because node:crypto's HMAC allocates several objects
 * per call (microseconds per packet); this costs no allocation.
 */
export class ConnectionIds {
  #k = new Uint32Array(4); // k0 lo, k0 hi, k1 lo, k1 hi
  #lifetime: number;
  #msg = new Uint8Array(24);

  constructor(secret: Uint8Array, opts: { lifetimeSeconds?: number } = {}) {
    if (secret.length < 16) throw new Error('connection id secret must be at least 16 bytes');
    const v = new DataView(secret.buffer, secret.byteOffset, 16);
    this.#k[0] = v.getUint32(0, true);
    this.#k[1] = v.getUint32(4, true);
    this.#k[2] = v.getUint32(8, true);
    this.#k[3] = v.getUint32(12, true);
    this.#lifetime = opts.lifetimeSeconds ?? 120;
  }

  #tag(ip: Uint8Array, port: number, time: number): number {
    const m = this.#msg;
    m.set(ip, 0);
    let n = ip.length;
    m[n++] = port >>> 8;
    m[n++] = port & 0xff;
    m[n++] = time >>> 24;
    m[n++] = (time >>> 16) & 0xff;
    m[n++] = (time >>> 8) & 0xff;
    m[n++] = time & 0xff;
    return sipHash24(this.#k, m, n, OUT)[0];
  }

  make(ip: Uint8Array, port: number, now: number): ConnectionId {
    const time = now >>> 0;
    return { hi: time, lo: this.#tag(ip, port, time) };
  }

  check(id: ConnectionId, ip: Uint8Array, port: number, now: number): boolean {
    const age = now - id.hi;
    if (age > this.#lifetime || age < -5) return false;
    return this.#tag(ip, port, id.hi) === id.lo;
  }
}

const OUT = new Uint32Array(2);

/**
 * SipHash-2-4 of m[0, len) under key k (four little-endian 32-bit words: k0 lo, k0 hi, k1 lo,
 * k1 hi). Writes the 64-bit result into out as [lo, hi] and returns out.
 */
export function sipHash24(k: Uint32Array, m: Uint8Array, len: number, out: Uint32Array): Uint32Array {
  // State words as (hi, lo) pairs of uint32, in locals: no closure, so V8 keeps them in
  // registers instead of a heap context (a round per closure call cost ~3x as much).
  let v0h = 0x736f6d65 ^ k[1];
  let v0l = 0x70736575 ^ k[0];
  let v1h = 0x646f7261 ^ k[3];
  let v1l = 0x6e646f6d ^ k[2];
  let v2h = 0x6c796765 ^ k[1];
  let v2l = 0x6e657261 ^ k[0];
  let v3h = 0x74656462 ^ k[3];
  let v3l = 0x79746573 ^ k[2];
  const full = len - (len % 8);
  // Blocks: every full 8 bytes, then the last one (remaining bytes, length in the top byte);
  // then finalisation. Each pass runs its rounds through the one round body below.
  const blocks = full / 8 + 1;
  let ml = 0;
  let mh = 0;
  for (let b = 0; ; b++) {
    let rounds: number;
    if (b < blocks) {
      const i = b * 8;
      if (i < full) {
        ml = (m[i] | (m[i + 1] << 8) | (m[i + 2] << 16) | (m[i + 3] << 24)) >>> 0;
        mh = (m[i + 4] | (m[i + 5] << 8) | (m[i + 6] << 16) | (m[i + 7] << 24)) >>> 0;
      } else {
        ml = 0;
        mh = ((len & 0xff) << 24) >>> 0;
        for (let j = 0; j < len - full; j++) {
          const x = m[full + j];
          if (j < 4) ml = (ml | (x << (8 * j))) >>> 0;
          else mh = (mh | (x << (8 * (j - 4)))) >>> 0;
        }
      }
      v3l = (v3l ^ ml) >>> 0;
      v3h = (v3h ^ mh) >>> 0;
      rounds = 2;
    } else {
      v2l = (v2l ^ 0xff) >>> 0;
      rounds = 4;
    }
    for (let r = 0; r < rounds; r++) {
      // v0 += v1; v1 = rotl(v1,13); v1 ^= v0; v0 = rotl(v0,32)
      let lo = (v0l + v1l) >>> 0;
      v0h = (v0h + v1h + (lo < v0l ? 1 : 0)) >>> 0;
      v0l = lo;
      let th = ((v1h << 13) | (v1l >>> 19)) >>> 0;
      let tl = ((v1l << 13) | (v1h >>> 19)) >>> 0;
      v1h = (th ^ v0h) >>> 0;
      v1l = (tl ^ v0l) >>> 0;
      let t = v0h;
      v0h = v0l;
      v0l = t;
      // v2 += v3; v3 = rotl(v3,16); v3 ^= v2
      lo = (v2l + v3l) >>> 0;
      v2h = (v2h + v3h + (lo < v2l ? 1 : 0)) >>> 0;
      v2l = lo;
      th = ((v3h << 16) | (v3l >>> 16)) >>> 0;
      tl = ((v3l << 16) | (v3h >>> 16)) >>> 0;
      v3h = (th ^ v2h) >>> 0;
      v3l = (tl ^ v2l) >>> 0;
      // v0 += v3; v3 = rotl(v3,21); v3 ^= v0
      lo = (v0l + v3l) >>> 0;
      v0h = (v0h + v3h + (lo < v0l ? 1 : 0)) >>> 0;
      v0l = lo;
      th = ((v3h << 21) | (v3l >>> 11)) >>> 0;
      tl = ((v3l << 21) | (v3h >>> 11)) >>> 0;
      v3h = (th ^ v0h) >>> 0;
      v3l = (tl ^ v0l) >>> 0;
      // v2 += v1; v1 = rotl(v1,17); v1 ^= v2; v2 = rotl(v2,32)
      lo = (v2l + v1l) >>> 0;
      v2h = (v2h + v1h + (lo < v2l ? 1 : 0)) >>> 0;
      v2l = lo;
      th = ((v1h << 17) | (v1l >>> 15)) >>> 0;
      tl = ((v1l << 17) | (v1h >>> 15)) >>> 0;
      v1h = (th ^ v2h) >>> 0;
      v1l = (tl ^ v2l) >>> 0;
      t = v2h;
      v2h = v2l;
      v2l = t;
    }
    if (b >= blocks) break;
    v0l = (v0l ^ ml) >>> 0;
    v0h = (v0h ^ mh) >>> 0;
  }
  out[0] = (v0l ^ v1l ^ v2l ^ v3l) >>> 0;
  out[1] = (v0h ^ v1h ^ v2h ^ v3h) >>> 0;
  return out;
}
