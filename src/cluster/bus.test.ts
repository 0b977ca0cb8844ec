import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect, createServer, type Socket } from 'node:net';
import { test } from 'node:test';
import { createLogger } from '../core/log.ts';
import { ClusterBus, MAX_BACKLOG, workerSocketPath } from './bus.ts';
import { FrameWriter, MessageType, writeText } from './messages.ts';

const logger = createLogger('silent');

test('a worker that does not read costs its sender at most MAX_BACKLOG: then requests fail at once and one-way frames are dropped', async () => {
  const clusterId = randomBytes(4).toString('hex');
  // Worker 1 accepts the link and never reads from it (a stopped or flooded process).
  const held: Socket[] = [];
  const stuck = createServer((s) => {
    s.pause();
    held.push(s);
  });
  await new Promise<void>((r) => stuck.listen(workerSocketPath(clusterId, 1), () => r()));
  const bus = new ClusterBus({ clusterId, index: 0, count: 2, logger, handler: () => {} });
  await bus.start();
  try {
    const chunk = 'x'.repeat(1024 * 1024);
    const frames = Math.ceil(MAX_BACKLOG / chunk.length) + 8;
    let refused: Error | null = null;
    for (let i = 0; i < frames * 2 && refused === null; i++) {
      bus.notify(1, (w) => writeText(w, MessageType.rtcDeliver, 0, chunk));
      // One frame a turn: the link flushes it to its socket, where it waits unread.
      await new Promise((r) => setImmediate(r));
      const r = bus.request(
        1,
        (w, id) => writeText(w, MessageType.stats, id, ''),
        () => 0,
      );
      r.catch(() => {});
      refused = await Promise.race([
        r.then(
          () => null,
          (err: Error) => err,
        ),
        new Promise<null>((res) => setImmediate(() => res(null))),
      ]);
    }
    assert.ok(refused, 'a request was refused once the backlog was full');
    assert.match(refused.message, /backlog/);
  } finally {
    for (const s of held) s.destroy();
    await bus.stop();
    await new Promise<void>((r) => stuck.close(() => r()));
  }
});

test('with a token, a connection that does not start with it is refused before any frame is read; workers that share it talk', async () => {
  const clusterId = randomBytes(4).toString('hex');
  const token = randomBytes(32);
  let served = 0;
  const handler = (_t: number, id: number, _b: Buffer, _at: number, reply: FrameWriter, done: () => void) => {
    served++;
    writeText(reply, MessageType.statsOk, id, '{"ok":1}');
    done();
  };
  const a = new ClusterBus({ clusterId, index: 0, count: 2, logger, handler, token });
  const b = new ClusterBus({ clusterId, index: 1, count: 2, logger, handler, token });
  await a.start();
  await b.start();
  try {
    // A local process that knows the socket's name (it is listed in /proc/net/unix) but not the token.
    const intruder = connect(workerSocketPath(clusterId, 1));
    const closed = new Promise<void>((r) => intruder.on('close', () => r()));
    intruder.on('error', () => {});
    const w = new FrameWriter();
    writeText(w, MessageType.stats, 7, '');
    const frame = w.take();
    intruder.write(Buffer.concat([randomBytes(32), frame, frame]));
    await closed;
    assert.equal(served, 0, 'no frame from the intruder was served');
    // The workers themselves (both hold the token).
    const r = await a.request(
      1,
      (wr, id) => writeText(wr, MessageType.stats, id, ''),
      (body, at) => body.toString('utf8', at),
    );
    assert.equal(r, '{"ok":1}');
    assert.equal(served, 1);
  } finally {
    await a.stop();
    await b.stop();
  }
});
