import { SwarmIndex } from '../store/memory/swarm-index.ts';
import type { PolicyTorrent } from './types.ts';

/**
 * Registered torrents by info hash (the raw 20 bytes; a v2 hash by its first 20, as requests
 * carry it), for the policy snapshot: the memory store's open-addressing index (keyed
 * HalfSipHash-1-3, no string and no object per lookup) and the torrents in an array by its ids.
 * A private announce looked its torrent up in a Map of latin1 key strings before: a 20-byte
 * string made and hashed per announce, then a probe of a table of 10⁵ entries (issue #16).
 */
export class TorrentTable {
  #index = new SwarmIndex();
  #byId: PolicyTorrent[] = [];

  /** Info hashes held (a hybrid torrent's two count twice). */
  get size(): number {
    return this.#index.size;
  }

  /** Maps `hash` (20 bytes; anything else is never asked for, and ignored) to `t`. */
  set(hash: Uint8Array, t: PolicyTorrent): void {
    if (hash.length !== 20) return;
    let id = this.#index.find(hash);
    if (id < 0) id = this.#index.add(hash);
    this.#byId[id] = t;
  }

  /** Every info hash held (views of the index: read each before the table changes). */
  *hashes(): Iterable<Uint8Array> {
    for (let id = 0; id < this.#index.top; id++)
      if (this.#byId[id] !== undefined) yield this.#index.hashOf(id);
  }

  /** The torrent of a 20-byte info hash, or undefined. */
  get(hash: Uint8Array): PolicyTorrent | undefined {
    if (hash.length !== 20) return undefined;
    const id = this.#index.find(hash);
    return id < 0 ? undefined : this.#byId[id];
  }
}
