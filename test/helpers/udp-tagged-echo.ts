/**
 * A stand-in UDP server over the batched addon, for tests of where datagrams arrive: every
 * datagram is answered with `[tag, ...the datagram]`, so the sender learns which socket (and which
 * process) received it without waiting for anything that may never come.
 */
import { BATCH, META, type UdpBatchAddon } from '../../src/frontend/udp/batch.ts';

const SLOT = 2048;

/** Starts `handle` (from `open` or `adopt`) answering each datagram with `[tag, ...datagram]`. */
export function serveTagged(addon: UdpBatchAddon, handle: object, tag: number): void {
  const inMeta = new ArrayBuffer(BATCH * META);
  const inData = new ArrayBuffer(BATCH * SLOT);
  const outMeta = new ArrayBuffer(BATCH * META);
  const outData = new ArrayBuffer(BATCH * SLOT);
  const im = new Uint8Array(inMeta);
  const id = new Uint8Array(inData);
  const om = new Uint8Array(outMeta);
  const od = new Uint8Array(outData);
  addon.start(handle, inMeta, inData, SLOT, outMeta, outData, SLOT, (n) => {
    let m = 0;
    for (let i = 0; i < n; i++) {
      const mo = i * META;
      const len = im[mo + 20] | (im[mo + 21] << 8) | (im[mo + 22] << 16);
      if (len >= SLOT) continue; // truncated: not ours
      const oo = m * META;
      om.set(im.subarray(mo, mo + 20), oo); // back to the sender's address and port
      const reply = len + 1;
      om[oo + 20] = reply & 0xff;
      om[oo + 21] = reply >> 8;
      om[oo + 22] = 0;
      om[oo + 23] = 0;
      od[m * SLOT] = tag;
      od.set(id.subarray(i * SLOT, i * SLOT + len), m * SLOT + 1);
      m++;
    }
    return m;
  });
}
