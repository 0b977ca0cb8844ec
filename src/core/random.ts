/**
 * xorshift32: a small, fast pseudo-random generator returning numbers in [0, 1). Not for
 * secrets: peer selection (where `Math.random` per call costs more) and seeded test inputs.
 */
export function xorshift(seed: number): () => number {
  let x = seed >>> 0 || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x100000000;
  };
}
