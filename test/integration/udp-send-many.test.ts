/**
 * Replies sent after their batch (an asynchronous store: Redis answers ~70 announces in one call)
 * leave together: the batched UDP addon's sendMany sends staged replies in one sendmmsg, each to
 * its own address (native/src/udp_batch.c), and deferredSender (src/frontend/udp/batch.ts) stages
 * them until the event loop next checks. Over real loopback sockets, IPv4 and IPv6.
 */
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { describe, test } from 'node:test';
import {
  BATCH,
  deferredSender,
  loadUdpBatchAddon,
  META,
  type UdpBatchAddon,
} from '../../src/frontend/udp/batch.ts';

const addon = loadUdpBatchAddon();
const skip =
  addon === null ? 'SKIPPED: the udp_batch addon is not built (run `bash scripts/build-native.sh`)' : false;
if (skip) console.warn(`udp-send-many.test.ts: ${skip}`);

const HOST = { 4: '127.0.0.1', 6: '::1' } as const;

async function receiver(family: 4 | 6): Promise<{ socket: Socket; port: number; got: string[] }> {
  const socket = createSocket(family === 4 ? 'udp4' : 'udp6');
  await new Promise<void>((resolve) => socket.bind(0, HOST[family], resolve));
  const got: string[] = [];
  socket.on('message', (m) => got.push(m.toString('latin1')));
  return { socket, port: socket.address().port, got };
}

/** A 32-byte meta slot for `port` on loopback (address, family, port; the length is the sender's). */
function metaFor(family: 4 | 6, port: number): Uint8Array {
  const m = new Uint8Array(META);
  if (family === 4) m.set([127, 0, 0, 1]);
  else m[15] = 1;
  m[16] = family;
  m[18] = port >> 8;
  m[19] = port & 0xff;
  return m;
}

type Receiver = Awaited<ReturnType<typeof receiver>>;

/** A sending handle of the addon and two receiving sockets, closed after `fn`. */
async function withSockets(
  a: UdpBatchAddon,
  family: 4 | 6,
  fn: (handle: object, r1: Receiver, r2: Receiver) => Promise<void>,
): Promise<void> {
  const handle = a.open(family, HOST[family], 0, false);
  const [r1, r2] = [await receiver(family), await receiver(family)];
  try {
    await fn(handle, r1, r2);
  } finally {
    a.close(handle);
    r1.socket.close();
    r2.socket.close();
  }
}

async function until(done: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !done(); i++) await new Promise((r) => setTimeout(r, 10));
}

for (const family of [4, 6] as const)
  describe(`deferred UDP replies over IPv${family}`, { skip }, () => {
    const a = addon as UdpBatchAddon;

    test('sendMany sends each staged reply, with its own length, to its own address', async () => {
      assert.equal(typeof a.sendMany, 'function', 'the addon has sendMany');
      await withSockets(a, family, async (handle, r1, r2) => {
        const slot = 100;
        const metas = new Uint8Array(BATCH * META);
        const datas = new Uint8Array(BATCH * slot);
        const want: [string[], string[]] = [[], []];
        for (let i = 0; i < 10; i++) {
          const text = `reply ${i}${'.'.repeat(i)}`;
          const to = i % 2 === 0 ? r1 : r2;
          const m = metaFor(family, to.port);
          m[20] = text.length;
          metas.set(m, i * META);
          datas.set(Buffer.from(text, 'latin1'), i * slot);
          want[i % 2].push(text);
        }
        assert.equal(a.sendMany?.(handle, metas.buffer, datas.buffer, slot, 10), 10);
        await until(() => r1.got.length + r2.got.length === 10);
        assert.deepEqual(r1.got, want[0]);
        assert.deepEqual(r2.got, want[1]);
      });
    });

    // Both senders: sendMany (staged), and sendTo one by one for an addon built before sendMany.
    for (const kind of ['sendMany', 'sendTo'] as const)
      test(`deferredSender (${kind}): more replies than a batch, each once, in order, to its sender`, async () => {
        await withSockets(a, family, async (handle, r1, r2) => {
          const used = kind === 'sendMany' ? a : { ...a, sendMany: undefined, sendTo: a.sendTo };
          const send = deferredSender(used, handle, 64);
          const out = Buffer.alloc(64);
          const want: [string[], string[]] = [[], []];
          const n = BATCH + 6;
          for (let i = 0; i < n; i++) {
            const text = `answer ${i}`;
            // The reply is written into the (reused) output slot, as the frontend does.
            out.write(text, 'latin1');
            send(metaFor(family, (i % 3 === 0 ? r1 : r2).port), out, text.length);
            want[i % 3 === 0 ? 0 : 1].push(text);
          }
          await until(() => r1.got.length + r2.got.length === n);
          assert.deepEqual(r1.got, want[0]);
          assert.deepEqual(r2.got, want[1]);
        });
      });
  });
