/**
 * BatchedListener and the addon with a stand-in frontend: short writes (a response the kernel
 * does not take in full) reach the client whole and in order, for kept and closing connections
 * (on loopback the kernel's send buffer grows to a few MB at once, so the arena here is larger);
 * asynchronous answers park their connection in the addon: pipelined requests mixing synchronous
 * and asynchronous answers come back in request order, a client that closes while parked is
 * released once, a rejected answer becomes a failure and the connection goes on, and the idle
 * sweep and close() deal with parked connections.
 */
import assert from 'node:assert/strict';
import { connect, Socket } from 'node:net';
import { test } from 'node:test';
import { type PeerAddress, parseIp } from '../../core/address.ts';
import { ConnectionLimit } from '../../core/connection-limit.ts';
import { TrackerCounters } from '../../core/metrics.ts';
import { httpResponse } from '../../protocol/http/response.ts';
import { loadHttpBatchAddon } from './batch.ts';
import { ArenaSink, BatchedListener } from './batched-listener.ts';
import { type RawHost, type ResponseSink, type Served, Stop } from './raw-path.ts';

const addon = loadHttpBatchAddon();
const EMPTY = Buffer.alloc(0);
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

/** `GET /a<size>[c]`: the same <size> pattern bytes as a body, answered later (a promise). */
function asyncBody(path: string): { body: Buffer; keepAlive: boolean } {
  const size = Number.parseInt(path.slice(2), 10);
  const body = Buffer.alloc(size);
  for (let i = 0; i < size; i++) body[i] = i % 251;
  return { body, keepAlive: !path.endsWith('c') };
}

/** The response a parked request gets once its promise resolves with `body`. */
const asyncResponse = (body: Buffer, keepAlive = true) => httpResponse(200, body, { keepAlive });

/** The body the stand-in gives for an internal error (a rejected answer). */
const INTERNAL = Buffer.from('d14:failure reason14:internal errore', 'latin1');

class StandIn implements RawHost {
  readonly served: Served = { at: 0, answer: null, keepAlive: false };
  connectionLimit: ConnectionLimit | null = null;
  adopted: Stop[] = [];
  /** Asynchronous answers not yet settled, in request order: settle(i) resolves the i-th. */
  pending: { resolve: () => void; reject: (err: Error) => void; path: string }[] = [];
  errors: unknown[] = [];
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
      const path = buf.toString('latin1', off, end).split(' ')[1];
      off = end + 4;
      if (path.startsWith('/a') || path === '/reject') {
        // An asynchronous answer (another worker's swarm, a Redis store): settled by the test.
        const { body, keepAlive } = path === '/reject' ? { body: EMPTY, keepAlive: true } : asyncBody(path);
        this.served.answer = new Promise<Buffer>((resolve, reject) =>
          this.pending.push({ resolve: () => resolve(body), reject, path }),
        );
        this.served.keepAlive = keepAlive;
        this.served.at = off;
        return Stop.async;
      }
      const r = responseFor(path);
      sink.send(r.bytes, false);
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
    this.errors.push(err);
    return INTERNAL;
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

/** A client connection that collects everything it receives. */
interface Client {
  socket: Socket;
  /** Resolves once `n` bytes have arrived (rejects if the connection closes first, or after 10 s). */
  bytes(n: number): Promise<Buffer>;
  closed: Promise<void>;
}

function client(port: number): Promise<Client> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let got = 0;
    let waiter: (() => void) | null = null;
    const socket = connect({ port, host: '127.0.0.1' });
    const closed = new Promise<void>((r) => socket.on('close', () => r()));
    socket.on('error', () => {});
    socket.on('data', (d) => {
      chunks.push(d);
      got += d.length;
      waiter?.();
    });
    socket.on('close', () => waiter?.());
    const bytes = (n: number) =>
      new Promise<Buffer>((res, rej) => {
        const timer = setTimeout(() => rej(new Error(`${got} of ${n} bytes after 10 s`)), 10_000);
        const check = () => {
          if (got >= n) {
            clearTimeout(timer);
            waiter = null;
            res(Buffer.concat(chunks));
          } else if (socket.destroyed) {
            clearTimeout(timer);
            rej(new Error(`closed after ${got} of ${n} bytes`));
          } else waiter = check;
        };
        check();
      });
    socket.once('connect', () => resolve({ socket, bytes, closed }));
    socket.once('error', reject);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until `cond()` holds (polling), or fails after 10 s. */
async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!cond()) {
    assert.ok(Date.now() < deadline, `timed out waiting: ${what}`);
    await sleep(5);
  }
}

const get = (path: string) => `GET ${path} HTTP/1.1\r\n\r\n`;

/** A test with the stand-in frontend and a listener on an ephemeral port (closed afterwards). */
function listenerTest(name: string, fn: (host: StandIn, listener: BatchedListener) => Promise<void>): void {
  test(name, { skip }, async () => {
    const host = new StandIn();
    const listener = new BatchedListener(addon!, host, '127.0.0.1', 0);
    try {
      await fn(host, listener);
    } finally {
      listener.close();
    }
  });
}

listenerTest(
  'pipelined synchronous and asynchronous answers come back in request order, parked in the addon',
  async (host, listener) => {
    const c = await client(listener.port);
    c.socket.write(get('/10') + get('/a20') + get('/30') + get('/a40') + get('/50'));
    await until(() => host.pending.length === 1, 'the first asynchronous answer');
    const r10 = responseFor('/10').bytes;
    assert.ok((await c.bytes(r10.length)).equals(r10), 'the answer before the parked one is written');
    assert.equal(listener.parked, 1, 'parked while its answer is a promise');
    assert.equal(listener.waiting, 1);
    host.pending[0].resolve();
    // Completed with the pipelined request behind it, then parked again on the next promise.
    await until(() => host.pending.length === 2, 'the second asynchronous answer');
    host.pending[1].resolve();
    const want = Buffer.concat([
      r10,
      asyncResponse(asyncBody('/a20').body),
      responseFor('/30').bytes,
      asyncResponse(asyncBody('/a40').body),
      responseFor('/50').bytes,
    ]);
    const got = await c.bytes(want.length);
    assert.ok(got.equals(want), 'every answer, in request order');
    await until(() => listener.parked === 0, 'not parked once completed');
    // Read again after its completion: a later request (asynchronous too) is answered.
    c.socket.write(get('/a7'));
    await until(() => host.pending.length === 3, 'the request after completion');
    host.pending[2].resolve();
    const more = asyncResponse(asyncBody('/a7').body);
    assert.ok((await c.bytes(want.length + more.length)).subarray(want.length).equals(more));
    assert.deepEqual(host.adopted, [], 'nothing moved to a Node socket');
    assert.equal(listener.waiting, 1);
    c.socket.destroy();
  },
);

listenerTest(
  'a client that closes while parked is released once; a rejected answer is a failure and the connection goes on',
  async (host, listener) => {
    const limit = new ConnectionLimit(10, new TrackerCounters());
    host.connectionLimit = limit;
    const local = parseIp('127.0.0.1')!;
    // A: kept alive, then parked (it waited in the epoll set); B: parked on its first request.
    const a = await client(listener.port);
    a.socket.write(get('/10'));
    await a.bytes(responseFor('/10').bytes.length);
    a.socket.write(get('/a10'));
    const b = await client(listener.port);
    b.socket.write(get('/a20'));
    await until(() => host.pending.length === 2, 'both parked');
    const c = await client(listener.port);
    c.socket.write(get('/reject') + get('/10'));
    await until(() => host.pending.length === 3, 'the third parked');
    assert.equal(listener.parked, 3);
    assert.equal(limit.count(local), 3);
    // A and B go away while parked; their answers come later, to nobody.
    a.socket.destroy();
    b.socket.destroy();
    await sleep(50);
    host.pending[0].resolve();
    host.pending[1].resolve();
    await until(() => listener.waiting === 1, 'A and B closed');
    assert.equal(limit.count(local), 1, "A's and B's slots released, once each (C's is held)");
    // C's answer fails: it gets the failure body, then its pipelined request's answer.
    host.pending[2].reject(new Error('store down'));
    const want = Buffer.concat([asyncResponse(INTERNAL), responseFor('/10').bytes]);
    assert.ok((await c.bytes(want.length)).equals(want));
    assert.equal(host.errors.length, 1, 'the rejection is reported as an internal error');
    c.socket.write(get('/20'));
    const r20 = responseFor('/20').bytes;
    assert.ok((await c.bytes(want.length + r20.length)).subarray(want.length).equals(r20), 'C goes on');
    c.socket.destroy();
    await until(() => listener.waiting === 0, 'C closed');
    assert.equal(limit.count(local), 0);
    assert.deepEqual(host.adopted, []);
  },
);

listenerTest(
  'the idle sweep closes a connection parked too long, close() every parked one; late answers go nowhere',
  async (host, listener) => {
    const a = await client(listener.port);
    a.socket.write(get('/a10'));
    await until(() => listener.parked === 1, 'parked');
    listener.sweep(60_000);
    assert.equal(listener.parked, 1, 'not idle yet: kept');
    await sleep(30);
    listener.sweep(10); // an answer that never comes: the connection is not held forever
    await a.closed;
    assert.equal(listener.parked, 0);
    assert.equal(listener.waiting, 0);
    host.pending[0].resolve(); // too late: nothing is written, nothing breaks
    const b = await client(listener.port);
    b.socket.write(get('/a10'));
    const c = await client(listener.port);
    c.socket.write(get('/a20'));
    await until(() => listener.parked === 2, 'both parked');
    listener.close();
    await b.closed;
    await c.closed;
    host.pending[1].resolve();
    host.pending[2].resolve();
    await sleep(20);
    assert.deepEqual(host.errors, []);
  },
);
