import { loadNativeAddon } from '../../core/native.ts';

/**
 * The batched HTTP addon (native/src/http_batch.c), when it was built at install. Null when it is
 * absent or fails to load: plain HTTP listeners then use `node:net`.
 */
export interface HttpBatchAddon {
  /** The interface version (must equal ABI): a build from older sources is not used. */
  readonly abi?: number;
  /**
   * A bound, listening socket (IPv6-only for family 6; SO_REUSEPORT when `reusePort`, so that
   * every worker process binds the same address). Throws with `code` EADDRINUSE etc.
   */
  open(family: 4 | 6, host: string, port: number, reusePort: boolean): object;
  port(handle: object): number;
  start(
    handle: object,
    inMeta: ArrayBuffer,
    inData: ArrayBuffer,
    outMeta: ArrayBuffer,
    outData: ArrayBuffer,
    completionMeta: ArrayBuffer,
    completionData: ArrayBuffer,
    ctl: ArrayBuffer,
    onBatch: (n: number) => void,
    onShort: (n: number) => void,
  ): void;
  /**
   * Closes the connections waiting (or parked) longer than `idleMs`; returns their descriptors.
   */
  sweep(handle: object, idleMs: number): number[];
  /**
   * Connections the addon holds (waiting in its epoll set for a request, or parked), and of those
   * the parked ones (an asynchronous answer in flight; not read meanwhile).
   */
  count(handle: object): [held: number, parked: number];
  /**
   * Acts on completion entries [0, n), n in ctl[4, 8) (parked connections whose answers are in the
   * completion arena); returns how many it reported back (completion meta [1] set), or -1 when
   * refused (a batch is being answered: ctl[0] is 1; or the handle is closed).
   */
  complete(handle: object): number;
  close(handle: object): void;
}

/** Connections per batch (must match BATCH in the addon). */
export const BATCH = 64;
/** Bytes of metadata per entry (must match META in the addon). */
export const META = 32;
/** Bytes read per connection per wake-up (must match IN_SLOT in the addon). */
export const IN_SLOT = 16384;

/** Actions per entry (must match ACT_* in the addon). */
export const ACT_CLOSE = 1;
export const ACT_KEEP = 2;
export const ACT_HANDOFF = 3;
/** Write, then park the connection (not read) until `complete` (an asynchronous answer). */
export const ACT_PARK = 4;

/**
 * The addon interface this code speaks (must match ABI in the addon). 2: connections accepted
 * without bytes and connections that end while waiting come as empty entries, failed writes are
 * reported, sweep() returns the descriptors it closed (max_connections_per_ip counts them all).
 * 3: asynchronous answers park their connection (ACT_PARK, `complete`, `count` gives the parked too, the completion
 * buffers and ctl in `start`); `open` takes `reusePort`.
 */
export const ABI = 3;

export function loadHttpBatchAddon(): HttpBatchAddon | null {
  const addon = loadNativeAddon<HttpBatchAddon>('http_batch');
  // A build left from older sources (not rebuilt after an update) would miscount connections.
  return addon !== null && addon.abi === ABI ? addon : null;
}
