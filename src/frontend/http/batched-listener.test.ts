/**
 * BatchedListener and the addon with a stand-in frontend: short writes (a response the kernel
 * does not take in full) reach the client whole and in order, for kept and closing connections.
 * On loopback the kernel's send buffer grows to a few MB at once, so the arena here is larger.
 */
import assert from 'node:assert/strict';
import { connect, Socket } from 'node:net';
import { test } from 'node:test';
import type { PeerAddress } from '../../core/address.ts';
import { httpResponse } from '../../protocol/http/response.ts';
import { loadHttpBatchAddon } from './batch.ts';
import { ArenaSink, BatchedListener } from './batched-listener.ts';
import { type RawHost, type ResponseSink, type Served, Stop } from './raw-path.ts';

const addon = loadHttpBatchAddon();
const skip = addon === null ? 'the http_batch addon is not built (npm rebuild)' : false;

/** `GET /<size>[c]`: a response of <size> pattern bytes; a trailing `c` closes the connection. */
function responseFor(path: string): { bytes: Buffer; close: boolean } {
  const close = path.endsWith('c');
  const size = Number.parseInt(path.slice(1), 10);
  const head = `HTTP/1.1 200 OK\r\nContent-Length: ${size}\r\n${close ? 'Connection: close\r\n' : ''}\r\n`;
  const body = Buffer.alloc(size);
  for (let i = 0; i < size; i++) body[i] = i % 251;
  return { bytes: Buffer.concat([Buffer.from(head, 'latin1'), body]), close };
}

class StandIn implements RawHost {
  readonly served: Served = { at: 0, answer: null, keepAlive: false };
  readonly connectionLimit = null;
  adopted: Stop[] = [];
  serve(
    buf: Buffer,
    off: number,
    stop: number,
    _peer: PeerAddress,
    _trusted: boolean,
    sink: ResponseSink,
  ): Stop {
    while (off < stop) {
      const end = buf.subarray(0, stop).indexOf('\r\n\r\n', off);
      if (end < 0) {
        this.served.at = off;
        return Stop.partial;
      }
      const r = responseFor(buf.toString('latin1', off, end).split(' ')[1]);
      sink.send(r.bytes, false);
      off = end + 4;
      if (r.close) {
        this.served.at = off;
        return Stop.close;
      }
    }
    this.served.at = off;
    return Stop.drained;
  }
  isTrusted(): boolean {
    return false;
  }
  adopt(
    fd: number,
    peer: PeerAddress,
    _t: boolean,
    _idle: number,
    written: readonly Buffer[],
    stop: Stop,
    rest: Buffer,
  ): void {
    this.adopted.push(stop);
    const socket = new Socket({ fd, readable: true, writable: true });
    for (const w of written) socket.write(w);
    if (stop === Stop.close) {
      socket.end();
      return;
    }
    // Further requests on a Node socket, as the frontend's RawConnection would serve them.
    let pending = rest;
    const sink: ResponseSink = {
      send: (b) => socket.write(b),
      answer: () => {
        throw new Error('not used');
      },
      full: false,
    };
    socket.on('data', (d) => {
      pending = Buffer.concat([pending, d]);
      const stop2 = this.serve(pending, 0, pending.length, peer, false, sink);
      pending = pending.subarray(this.served.at);
      if (stop2 === Stop.close) socket.end();
    });
  }
  internalError(err: unknown): Buffer {
    throw err;
  }
}

/** Sends `request`, reads nothing for `pauseMs`, then everything until `expect` bytes or close. */
function exchange(port: number, request: string, expect: number, pauseMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let got = 0;
    const s = connect({ port, host: '127.0.0.1' }, () => {
      s.pause();
      s.write(request);
      setTimeout(() => s.resume(), pauseMs);
    });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`${got} of ${expect} bytes`));
    }, 15_000);
    s.on('data', (d) => {
      chunks.push(d);
      got += d.length;
      if (got >= expect) {
        clearTimeout(timer);
        s.destroy();
        resolve(Buffer.concat(chunks));
      }
    });
    s.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
    s.on('error', reject);
  });
}

test('short writes: the rest follows from a Node socket, whole and in order', { skip }, async () => {
  const host = new StandIn();
  const listener = new BatchedListener(addon!, host, '127.0.0.1', 0, { outSize: 32 << 20 });
  try {
    const big = 12 << 20; // more than a loopback send buffer takes at once
    // Kept alive: a big answer, a small one pipelined behind it, then one more request later.
    const req = `GET /${big} HTTP/1.1\r\n\r\nGET /10 HTTP/1.1\r\n\r\n`;
    const want = Buffer.concat([responseFor(`/${big}`).bytes, responseFor('/10').bytes]);
    const got = await exchange(listener.port, req, want.length, 200);
    assert.equal(got.length, want.length);
    assert.ok(got.equals(want), 'byte for byte');
    // Closing: the client reads late, and the connection ends after the whole answer.
    const closing = responseFor(`/${big}c`).bytes;
    const got2 = await exchange(listener.port, `GET /${big}c HTTP/1.1\r\n\r\n`, closing.length + 1, 200);
    assert.ok(got2.equals(closing));
    assert.deepEqual(host.adopted, [Stop.drained, Stop.close], 'both short writes moved to Node sockets');
  } finally {
    listener.close();
  }
});

test('a small answer is written by the addon; close() ends waiting connections', { skip }, async () => {
  const host = new StandIn();
  const listener = new BatchedListener(addon!, host, '127.0.0.1', 0);
  try {
    const one = responseFor('/100').bytes;
    const got = await exchange(listener.port, 'GET /100 HTTP/1.1\r\n\r\n', one.length, 0);
    assert.ok(got.equals(one));
    assert.deepEqual(host.adopted, []);
    // A kept-alive connection waits in the addon's epoll set; close() ends it.
    const s = connect({ port: listener.port, host: '127.0.0.1' });
    s.on('error', () => {});
    const closed = new Promise<void>((resolve) => s.on('close', () => resolve()));
    const answered = new Promise<void>((resolve) => s.once('data', () => resolve()));
    s.write('GET /10 HTTP/1.1\r\n\r\n');
    await answered;
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(listener.waiting, 1);
    listener.close();
    await closed;
  } finally {
    listener.close();
  }
});

test('ArenaSink writes exactly the bytes httpResponse builds, and overflows in order', () => {
  const bodies = [Buffer.alloc(0), Buffer.from('d8:intervali1800ee'), Buffer.alloc(123_456, 7)];
  for (const body of bodies)
    for (const keepAlive of [true, false])
      for (const gzip of [false, true]) {
        const sink = new ArenaSink(Buffer.alloc(1 << 20));
        sink.begin(10);
        sink.answer(body, keepAlive, gzip, false);
        const want = httpResponse(200, body, {
          keepAlive,
          extraHeaders: gzip ? 'Content-Encoding: gzip\r\n' : undefined,
        });
        assert.ok(sink.arena.subarray(10, sink.pos).equals(want), `${body.length} ${keepAlive} ${gzip}`);
      }
  // A small arena: the second answer does not fit, so it and every later one overflow.
  const sink = new ArenaSink(Buffer.alloc(300));
  sink.begin(0);
  sink.answer(Buffer.alloc(100, 1), true, false, true);
  sink.answer(Buffer.alloc(200, 2), true, false, true);
  sink.send(Buffer.from('x'), false);
  assert.equal(sink.overflow?.length, 2);
  assert.equal(sink.overflow![1].toString(), 'x');
});
