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
