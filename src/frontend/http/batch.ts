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
  count(handle: object): RelayCounts;
  /**
   * Acts on completion entries [0, n), n in ctl[4, 8) (parked connections whose answers are in the
   * completion arena); returns how many it reported back (completion meta [1] set), or -1 when
   * refused (a batch is being answered: ctl[0] is 1; or the handle is closed).
   */
  complete(handle: object): number;
  /**
   * Starts the relay (`herald serve --workers N` with the sharded memory store; issue #13): this
   * listener's kept-alive announces for another worker's swarms go, in C, to that worker's addon
   * (abstract SOCK_SEQPACKET socket named from `clusterId` and its index, opened with `secret`),
   * and the other workers' come into this listener's batches as relayed entries. `busy`: the
   * whole response (Connection: close) a relayed request gets when its owner's link goes down.
   */
  relay(
    handle: object,
    clusterId: string,
    index: number,
    count: number,
    secret: ArrayBuffer,
    busy: ArrayBuffer,
  ): boolean;
  close(handle: object): void;
  /**
   * `max_connections_per_ip` over every worker (native/src/conn_table.h): a table of open
   * connections per address in a memfd made by the primary (its descriptor, handed to each
   * worker), opened by worker `index` (what a predecessor of that index held is taken out).
   * Absent from builds before it (checked with `typeof`).
   */
  connTableCreate?(workers: number, slots: number): number;
  connTableOpen?(fd: number, index: number): object;
  /** 1 counted, 0 refused (the address holds `max` over every worker), -1 not counted (table full). */
  connAcquire?(table: object, family: 4 | 6, hi: number, lo: number, max: number): number;
  connRelease?(table: object, family: 4 | 6, hi: number, lo: number): void;
  connCount?(table: object, family: 4 | 6, hi: number, lo: number): number;
  /**
   * Test hooks, present only when the addon was loaded with HERALD_TEST_HOOKS=1
   * (src/cluster/connection-table.test.ts): `connRelease` that kills the process after `dieAfter`
   * points inside the delete it makes (returns the points passed when it does not die), and the
   * raw table: used, then per entry slot, home slot, family, hi, lo, total, each worker's count.
   */
  connReleaseDying?(table: object, family: 4 | 6, hi: number, lo: number, dieAfter: number): number;
  connTableDump?(table: object): number[];
}

/**
 * What `count` reports: connections held, of which parked, of which parked on the relay; then,
 * since start, requests relayed to other workers, requests served for them, answers sent back
 * to them, and relayed requests answered "busy" (their owner's link went down).
 */
export type RelayCounts = [
  held: number,
  parked: number,
  relayParked: number,
  relayedOut: number,
  relayedIn: number,
  relayAnswered: number,
  relayBusy: number,
];

/** Connections per batch (must match BATCH in the addon). */
export const BATCH = 64;
/** Bytes of metadata per entry (must match META in the addon). */
export const META = 48;
/** Bytes read per connection per wake-up (must match IN_SLOT in the addon). */
export const IN_SLOT = 16384;

/** In-meta [9] (must match IN_* in the addon): 1 accepted in this batch, else one of these. */
export const IN_FRESH = 1;
/** Another worker's request (the descriptor is its link; [32, 44) its relay id and link generation). */
export const IN_RELAYED = 2;
/** A relayed answer the kernel did not take in full: its rest is the entry's bytes; then keep. */
export const IN_SHORT_KEEP = 3;
/** The same, then close. */
export const IN_SHORT_CLOSE = 4;

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
 * buffers and ctl in `start`); `open` takes `reusePort`. 4: the relay (`relay`, 48-byte meta
 * entries, relayed and short entries, relayed completions, `count` gives the relay's figures).
 */
export const ABI = 4;

export function loadHttpBatchAddon(): HttpBatchAddon | null {
  const addon = loadNativeAddon<HttpBatchAddon>('http_batch');
  // A build left from older sources (not rebuilt after an update) would miscount connections.
  return addon !== null && addon.abi === ABI ? addon : null;
}
