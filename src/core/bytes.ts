/**
 * Bytes as a binary string (one UTF-16 code unit per byte, latin1), read in place without
 * copying: the form info hashes and peer ids take as Map and Set keys and in WebTorrent messages.
 */
export function binaryString(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');
}

/**
 * Copies `n` bytes from `src[from]` to `dst[to]`: a byte loop for short runs (a peer, a typical
 * peer list), one `set` for long ones. A whole array goes in one `set`; otherwise `set` needs
 * `src.subarray`, a view object per call that, for a small typed array V8 keeps inside its heap,
 * first moves the array to a malloc'd backing store.
 */
export function copyBytes(dst: Uint8Array, to: number, src: Uint8Array, from: number, n: number): void {
  if (from === 0 && n === src.length) dst.set(src, to);
  else if (n <= 64) for (let i = 0; i < n; i++) dst[to + i] = src[from + i];
  else dst.set(src.subarray(from, from + n), to);
}

/** `copyBytes` for 32-bit words (a separate function, so that each call site stays monomorphic). */
export function copyWords(dst: Uint32Array, to: number, src: Uint32Array, from: number, n: number): void {
  if (n > 64) dst.set(src.subarray(from, from + n), to);
  else for (let i = 0; i < n; i++) dst[to + i] = src[from + i];
}

/**
 * Gives a typed array's memory back to the allocator now, not at the next full GC: its
 * ArrayBuffer is detached (every view of it reads as empty from then on), for arrays a store
 * has replaced or dropped. An old-generation buffer waits for a mark-compact, which a process
 * whose heap barely grows (a worker filling its swarms) runs rarely, so malloc could not reuse
 * it for the next chunk and kept it resident: 2-4 MB per process after a 1M-peer fill.
 */
export function release(a: Uint8Array | Uint32Array | Int32Array): void {
  (a.buffer as ArrayBuffer & { transfer(length: number): ArrayBuffer }).transfer(0);
}
