import { loadNativeAddon } from '../../core/native.ts';

/**
 * The batched UDP addon (native/src/udp_batch.c), when it was built at install. Null when it is
 * absent or fails to load: the frontend then uses `node:dgram`.
 */
export interface UdpBatchAddon {
  open(family: 4 | 6, host: string, port: number, reusePort: boolean): object;
  /**
   * A SO_REUSEPORT group of `n` (1..1024) sockets on one address (port 0: the first picks one)
   * whose BPF program delivers a BEP 15 announce or scrape to socket `shardOf(infoHash, n)`
   * (src/core/shard.ts) and leaves anything else (connect, short or odd datagrams) to the kernel's
   * hash of the sender. Returns the descriptors, socket i at index i: close-on-exec, handed to a
   * worker through `child_process.spawn`'s stdio array (the child's copy survives exec) and kept
   * open here for as long as the group serves (closing one renumbers the others in the kernel).
   */
  openGroup(family: 4 | 6, host: string, port: number, n: number): number[];
  /** A handle serving a UDP socket this process inherited (`adopt(3)`); it owns the descriptor. */
  adopt(fd: number): object;
  port(handle: object): number;
  /**
   * Sends one reply outside a batch (an answer that came after its batch: another worker's
   * swarm). `meta` is a 32-byte slot (address, family, port, length) as in the batch buffers.
   * Returns the bytes sent (0 = dropped: the kernel could not take it now).
   */
  sendTo(handle: object, meta: ArrayBuffer, data: ArrayBuffer): number;
  /**
   * Sends `count` (at most BATCH) replies outside a batch in one sendmmsg: reply i is the first
   * `length` bytes of `data` slot i (`slot` bytes each), to the address of `meta` slot i. Returns
   * how many the kernel took. Absent from addons built before it (then `sendTo`, one by one).
   */
  sendMany?(handle: object, meta: ArrayBuffer, data: ArrayBuffer, slot: number, count: number): number;
  start(
    handle: object,
    inMeta: ArrayBuffer,
    inData: ArrayBuffer,
    inSlot: number,
    outMeta: ArrayBuffer,
    outData: ArrayBuffer,
    outSlot: number,
    onBatch: (n: number) => number,
  ): void;
  close(handle: object): void;
}

/** Datagrams per batch (must match BATCH in the addon). */
export const BATCH = 64;
/** Bytes of metadata per slot (must match META in the addon). */
export const META = 32;

export function loadUdpBatchAddon(): UdpBatchAddon | null {
  return loadNativeAddon<UdpBatchAddon>('udp_batch');
}

/**
 * Sends the replies an asynchronous store answers after their batch (issue #14: a Redis call
 * answers ~70 announces at once). `send(meta, out, n)` copies the first `n` bytes of `out` and
 * the address of `meta` (a 32-byte slot, its first 20 bytes) into a staging slot; the staged
 * replies leave in one `sendMany` once the event loop next checks (`setImmediate`), or at once
 * when BATCH are staged. With an addon that has no `sendMany`, each is sent alone (`sendTo`).
 */
export function deferredSender(
  addon: UdpBatchAddon,
  handle: object,
  slot: number,
): (meta: Uint8Array, out: Uint8Array, n: number) => void {
  if (addon.sendMany === undefined)
    return (meta, out, n) => {
      meta[20] = n & 0xff;
      meta[21] = (n >> 8) & 0xff;
      meta[22] = (n >> 16) & 0xff;
      addon.sendTo(handle, meta.buffer as ArrayBuffer, new Uint8Array(out.subarray(0, n)).buffer);
    };
  const sendMany = addon.sendMany.bind(addon);
  const metas = new ArrayBuffer(BATCH * META);
  const datas = new ArrayBuffer(BATCH * slot);
  const m = new Uint8Array(metas);
  const d = new Uint8Array(datas);
  let staged = 0;
  let scheduled = false;
  const flush = (): void => {
    scheduled = false;
    if (staged > 0) sendMany(handle, metas, datas, slot, staged);
    staged = 0;
  };
  return (meta, out, n) => {
    const mo = staged * META;
    m.set(meta.subarray(0, 20), mo);
    m[mo + 20] = n & 0xff;
    m[mo + 21] = (n >> 8) & 0xff;
    m[mo + 22] = (n >> 16) & 0xff;
    m[mo + 23] = 0;
    d.set(out.subarray(0, n), staged * slot);
    if (++staged === BATCH) flush();
    else if (!scheduled) {
      scheduled = true;
      setImmediate(flush);
    }
  };
}
