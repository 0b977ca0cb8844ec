import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { createLogger } from '../core/log.ts';
import type { SwarmStats } from '../core/types.ts';
import { MemorySwarmStore } from '../store/memory/memory-store.ts';
import { ANNOUNCE_BYTES, type FrameWriter, MessageType, writeText } from './messages.ts';
import { ShardedSwarmStore } from './sharded-store.ts';

const logger = createLogger('silent');

test('an announce frame shorter than an announce is refused by its owner, not read on into the next frame', async () => {
  const clusterId = randomBytes(4).toString('hex');
  const token = randomBytes(32);
  const stores = [0, 1].map(
    (index) =>
      new ShardedSwarmStore({
        local: new MemorySwarmStore({ peerTimeout: 1800 }),
        clusterId,
        token,
        index,
        count: 2,
        logger,
      }),
  );
  for (const s of stores) await s.start();
  try {
    // Worker 0 sends worker 1 a 10-byte announce body, and in the same write a long one-way
    // frame after it: reading an announce's 90 bytes from the first frame reads the second's.
    const answer = await stores[0].bus.request(
      1,
      (w: FrameWriter, id: number) => {
        const start = w.begin(MessageType.announce, id, 10);
        w.buf.fill(0, w.len, w.len + 10);
        w.len += 10;
        w.end(start);
        writeText(w, MessageType.rtcDeliver, 0, 'x'.repeat(ANNOUNCE_BYTES * 2));
      },
      (_body: Buffer, _at: number, type: MessageType) => type,
    );
    assert.equal(answer, MessageType.failure, 'the short frame got a failure, not an announce answer');
    // The owner's swarms are untouched.
    assert.equal((stores[1].local.stats() as SwarmStats).peers, 0);
    // A scrape frame that counts more hashes than it carries.
    const scrape = await stores[0].bus.request(
      1,
      (w: FrameWriter, id: number) => {
        const start = w.begin(MessageType.scrape, id, 6 + 20);
        w.buf.writeUInt32BE(0, w.len);
        w.buf.writeUInt16BE(3, w.len + 4);
        w.buf.fill(1, w.len + 6, w.len + 26);
        w.len += 26;
        w.end(start);
        writeText(w, MessageType.rtcDeliver, 0, 'x'.repeat(100));
      },
      (_body: Buffer, _at: number, type: MessageType) => type,
    );
    assert.equal(scrape, MessageType.failure, 'the short scrape frame got a failure');
  } finally {
    for (const s of stores) await s.close();
  }
});
