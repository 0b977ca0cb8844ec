import { loadNativeAddon } from '../../core/native.ts';

/**
 * The batched UDP addon (native/src/udp_batch.c), when it was built at install. Null when it is
 * absent or fails to load: the frontend then uses `node:dgram`.
 */
export interface UdpBatchAddon {
  open(family: 4 | 6, host: string, port: number, reusePort: boolean): object;
  port(handle: object): number;
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
