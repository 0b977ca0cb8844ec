/**
 * RawWebSocket's frame layer over real loopback sockets: a raw TCP client writes frames byte by
 * byte exactly as RFC 6455 lays them out (masked, fragmented, split anywhere) and reads what the
 * server sends back.
 */
import assert from 'node:assert/strict';
import { connect, createServer, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { closeCode, frame, readFrames } from '../../../test/helpers/ws-frames.ts';
import {
  handshakeResponse,
  MAX_FRAGMENTS,
  RawWebSocket,
  READ_PAUSE_BYTES,
  upgradeRequestOf,
  upgradeRequestOfHead,
} from './raw-websocket.ts';

const MAX = 1024;
let port = 0;
/** The server side of every connection, newest last. */
const served: { ws: RawWebSocket; sock: Socket }[] = [];
const server = createServer((sock) => {
  const ws = new RawWebSocket(sock, Buffer.alloc(0), MAX);
  served.push({ ws, sock });
  // Echo: text back as text, binary as "bin:<length>".
  ws.onMessage = (data, binary) => ws.send(binary ? `bin:${data.length}` : data.toString('utf8'));
});
before(() =>
  new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r())).then(() => {
    port = (server.address() as { port: number }).port;
  }),
);
after(() => {
  // A failed test may leave a connection open: close would wait for it.
  for (const s of served) s.sock.destroy();
  return new Promise<void>((r) => server.close(() => r()));
});

/** Sends `parts` one write at a time, then collects everything until the server closes or 500 ms pass. */
async function exchange(parts: Buffer[]): Promise<{ opcode: number; payload: Buffer }[]> {
  const sock: Socket = connect(port, '127.0.0.1');
  sock.setNoDelay(true);
  const chunks: Buffer[] = [];
  sock.on('data', (d) => chunks.push(d));
  await new Promise((r) => sock.once('connect', r));
  for (const p of parts) {
    sock.write(p);
    await new Promise((r) => setImmediate(r));
  }
  await new Promise<void>((r) => {
    const t = setTimeout(() => {
      sock.destroy();
      r();
    }, 500);
    sock.once('close', () => {
      clearTimeout(t);
      r();
    });
  });
  return readFrames(Buffer.concat(chunks));
}

const text = (s: string) => Buffer.from(s, 'utf8');

test('text and binary messages, fragmented messages, ping answered with pong', async () => {
  const got = await exchange([
    frame(1, text('héllo')),
    frame(2, Buffer.alloc(300)),
    frame(1, text('frag'), false),
    frame(9, text('are you there')),
    frame(0, text('mented'), false),
    frame(0, text('!'), true),
    frame(8, Buffer.from([0x03, 0xe8])),
  ]);
  assert.deepEqual(
    got.map((f) => [f.opcode, f.opcode === 8 ? closeCode(f) : f.payload.toString()]),
    [
      [1, 'héllo'],
      [1, 'bin:300'],
      [10, 'are you there'],
      [1, 'fragmented!'],
      [8, 1000],
    ],
  );
});

test('protocol errors close with the right code', async () => {
  const cases: [Buffer[], number][] = [
    [[frame(1, text('x'), true, false)], 1002], // unmasked client frame
    [[frame(1, text('x'), true, true, 0x40)], 1002], // reserved bit
    [[frame(9, Buffer.alloc(126))], 1002], // control frame too long
    [[frame(9, text('x'), false)], 1002], // fragmented control frame
    [[frame(1, text('a'), false), frame(9, text('x'), false)], 1002], // ... inside a fragmented message
    [[frame(0xb, text('x'))], 1002], // reserved control opcode
    [[frame(1, text('x'), true, true, 0x20)], 1002], // RSV2
    [[frame(1, text('x'), true, true, 0x10)], 1002], // RSV3
    [[frame(0, text('x'))], 1002], // continuation with nothing to continue
    [[frame(1, text('a'), false), frame(1, text('b'))], 1002], // new message inside a fragmented one
    [[frame(3, text('x'))], 1002], // unknown opcode
    [[frame(1, Buffer.from([0xc3, 0x28]))], 1007], // invalid UTF-8
    [[frame(1, Buffer.alloc(MAX + 1, 0x61))], 1009], // over the limit
    [[frame(1, Buffer.alloc(600, 0x61), false), frame(0, Buffer.alloc(600, 0x61))], 1009], // over it in pieces
  ];
  for (const [parts, code] of cases) {
    const got = await exchange(parts);
    const close = got.find((f) => f.opcode === 8);
    assert.ok(close, `a close frame for case ${code}`);
    assert.equal(closeCode(close), code);
  }
});

/** The server side of the `n`th connection (0-based), once the server has accepted it. */
async function serverSide(n: number): Promise<{ ws: RawWebSocket; sock: Socket }> {
  while (served.length <= n) await new Promise((r) => setTimeout(r, 5));
  return served[n];
}

/** Resolves true once `ws` is closed, false if it still is not after `ms`. */
function closedWithin(ws: RawWebSocket, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    ws.addCloseListener(() => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

const empty = Buffer.alloc(0);
/** A text message in `1 + middle + 1` frames: 'a', `middle` continuations of `each`, then 'b'. */
function fragmented(middle: number, each: Buffer = empty): Buffer {
  const parts = [frame(1, text('a'), false)];
  for (let i = 0; i < middle; i++) parts.push(frame(0, each, false));
  parts.push(frame(0, text('b')));
  return Buffer.concat(parts);
}

test('a fragmented message may have MAX_FRAGMENTS frames; one more closes 1008; headers count toward the size limit', async () => {
  const ok = await exchange([fragmented(MAX_FRAGMENTS - 2)]);
  assert.deepEqual(
    ok.map((f) => f.payload.toString()),
    ['ab'],
  );
  const over = await exchange([fragmented(MAX_FRAGMENTS - 1)]);
  assert.deepEqual(
    over.map((f) => f.opcode),
    [8],
  );
  assert.equal(closeCode(over[0]), 1008);
  // 100 frames of 8 bytes: 800 payload bytes fit in MAX (1024), the 1400 bytes on the wire do not.
  const small = await exchange([fragmented(98, Buffer.alloc(8, 0x61))]);
  assert.deepEqual(
    small.map((f) => f.opcode),
    [8],
  );
  assert.equal(closeCode(small[0]), 1009);
});

test('an empty-continuation flood is cut off at the cap, and the fragments held are copies, not the chunks they came in', async () => {
  const n = served.length;
  const pings = 480;
  const sock = connect(port, '127.0.0.1');
  sock.setNoDelay(true);
  let received = 0;
  const after: Buffer[] = [];
  sock.on('data', (d: Buffer) => {
    received += d.length;
    if (received > (MAX_FRAGMENTS - 2) * pings * 127) after.push(d);
  });
  const closed = new Promise((r) => sock.once('close', r));
  const { ws } = await serverSide(n);
  sock.write(frame(1, text('x'.repeat(100)), false));
  // Each empty fragment arrives in a chunk of its own that is ~60 KiB long (padded with pings),
  // as a flood's fragments would: a fragment kept as a view would hold its whole chunk.
  const padding = Buffer.concat(Array.from({ length: pings }, () => frame(9, Buffer.alloc(125))));
  for (let i = 0; i < MAX_FRAGMENTS - 2; i++) {
    sock.write(Buffer.concat([frame(0, empty, false), padding]));
    // Every pong is 127 bytes: the chunk has been read once all of its pongs are back.
    while (received < (i + 1) * pings * 127) await new Promise((r) => setTimeout(r, 1));
    assert.equal(ws.readyState, RawWebSocket.OPEN);
    assert.ok(ws.heldBytes <= MAX, `held ${ws.heldBytes} bytes after ${i + 1} fragments`);
  }
  const flood = Buffer.concat(Array.from({ length: 300_000 }, () => frame(0, empty, false)));
  sock.write(flood);
  await closed;
  const got = readFrames(Buffer.concat(after));
  assert.deepEqual(
    got.map((f) => f.opcode),
    [8],
  );
  assert.equal(closeCode(got[0]), 1008);
  assert.equal(ws.heldBytes, 0);
});

test('a close frame is checked: a 1-byte body or a code that may not be sent is 1002, a reason that is not UTF-8 is 1007', async () => {
  const closeWith = (code: number, reason = empty) => {
    const b = Buffer.alloc(2 + reason.length);
    b.writeUInt16BE(code, 0);
    reason.copy(b, 2);
    return frame(8, b);
  };
  const cases: [Buffer, number][] = [
    [frame(8, Buffer.from([0x03])), 1002],
    [closeWith(999), 1002],
    [closeWith(1004), 1002],
    [closeWith(1005), 1002],
    [closeWith(1006), 1002],
    [closeWith(1015), 1002],
    [closeWith(1016), 1002],
    [closeWith(2999), 1002],
    [closeWith(5000), 1002],
    [closeWith(1000, Buffer.from([0xc3, 0x28])), 1007],
    [closeWith(1001, text('bye')), 1001],
    [closeWith(1011), 1011],
    [closeWith(3000), 3000],
    [closeWith(4999), 4999],
    [frame(8, empty), 1000],
  ];
  for (const [f, code] of cases) {
    const got = await exchange([f]);
    assert.equal(got.length, 1);
    assert.equal(closeCode(got[0]), code, `answer to ${f.subarray(6).toString('hex') || 'an empty close'}`);
  }
});

test('a peer that answers the close handshake but never closes its TCP side is cut off', async () => {
  for (const serverCloses of [false, true]) {
    const n = served.length;
    const sock = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    sock.on('error', () => {});
    sock.on('data', () => {});
    const { ws } = await serverSide(n);
    if (serverCloses) {
      ws.close(1000);
      await new Promise((r) => sock.once('end', r));
    }
    // The client's close frame (first, or as the answer): then it never sends its FIN.
    sock.write(frame(8, Buffer.from([0x03, 0xe8])));
    assert.ok(await closedWithin(ws, 5000), `closed (server closed first: ${serverCloses})`);
    sock.destroy();
  }
});

test('a client that sends pings and reads nothing is no longer read once its pongs back up', async () => {
  const n = served.length;
  const sock = connect(port, '127.0.0.1');
  sock.on('error', () => {});
  await new Promise((r) => sock.once('connect', r));
  sock.pause(); // reads nothing
  const { ws, sock: serverSock } = await serverSide(n);
  const burst = Buffer.concat(Array.from({ length: 8192 }, () => frame(9, Buffer.alloc(125, 0x70))));
  for (let i = 0; i < 32; i++) sock.write(burst);
  // Until the server takes no more bytes: all of them read, or reading stopped.
  let last = -1;
  while (serverSock.bytesRead !== last) {
    last = serverSock.bytesRead;
    await new Promise((r) => setTimeout(r, 300));
  }
  assert.ok(serverSock.bytesRead < 32 * burst.length, 'the server stopped reading');
  assert.ok(
    ws.bufferedAmount <= READ_PAUSE_BYTES + 256 * 1024,
    `${ws.bufferedAmount} bytes of pongs are waiting to be sent`,
  );
  // Once the client reads again, so does the server: every ping is answered.
  const pings = 32 * 8192;
  let pongs = 0;
  let tail = Buffer.alloc(0);
  sock.on('data', (d: Buffer) => {
    tail = Buffer.concat([tail, d]);
    const frames = readFrames(tail);
    pongs += frames.length;
    let used = 0;
    for (const f of frames) used += 2 + f.payload.length;
    tail = tail.subarray(used);
  });
  sock.resume();
  while (pongs < pings) await new Promise((r) => setTimeout(r, 20));
  assert.equal(pongs, pings);
  sock.destroy();
});

test('a stream split at any byte gives the same messages (property)', async () => {
  const messages = ['a', 'ünïcødé', 'x'.repeat(200), '{"action":"announce"}', 'y'.repeat(1000)];
  const stream = Buffer.concat(messages.map((m) => frame(1, text(m))));
  await fc.assert(
    fc.asyncProperty(
      fc.uniqueArray(fc.integer({ min: 1, max: stream.length - 1 }), { maxLength: 12 }),
      async (cuts) => {
        const points = [0, ...cuts.sort((x, y) => x - y), stream.length];
        const parts = points.slice(1).map((p, i) => stream.subarray(points[i], p));
        const got = await exchange(parts);
        assert.deepEqual(
          got.map((f) => f.payload.toString()),
          messages,
        );
      },
    ),
    { numRuns: 15 },
  );
});

test('handshake: a valid request gets 101 with the RFC 6455 accept key; others are refused', () => {
  const req = (h: Record<string, string>, method = 'GET') => upgradeRequestOf({ method, headers: h });
  const ok = handshakeResponse(
    req({
      upgrade: 'websocket',
      'sec-websocket-version': '13',
      'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
    }),
  );
  assert.equal(ok.ok, true);
  // The example from RFC 6455 §1.3.
  assert.match(ok.response, /Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=\r\n/);
  assert.match(
    handshakeResponse(req({ upgrade: 'websocket', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' }))
      .response,
    /^HTTP\/1.1 426/,
  );
  assert.match(
    handshakeResponse(req({ upgrade: 'h2c', 'sec-websocket-version': '13' })).response,
    /^HTTP\/1.1 400/,
  );
  assert.match(
    handshakeResponse(
      req({ upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'short' }),
    ).response,
    /^HTTP\/1.1 400/,
  );
  assert.match(handshakeResponse(req({}, 'POST')).response, /^HTTP\/1.1 405/);
});

test('handshake fields from a raw request head', () => {
  const h = upgradeRequestOfHead(
    'GET',
    'GET /announce HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
  );
  assert.deepEqual(h, {
    method: 'GET',
    upgrade: 'websocket',
    version: '13',
    key: 'dGhlIHNhbXBsZSBub25jZQ==',
  });
  assert.equal(handshakeResponse(h).ok, true);
});

// ---- Output staged per event-loop turn ----

/** A hub: "fan R" sends every socket R rounds of messages, interleaved, all in one turn. */
const hubSockets: RawWebSocket[] = [];
/** Payload sizes across the header forms (7-bit, 16-bit, 64-bit lengths) and the staging cap. */
const SIZES = [0, 1, 125, 126, 127, 65535, 65536, 70000, 1_300_000, 3];
const payload = (sock: number, round: number) => {
  const size = SIZES[round % SIZES.length];
  const tag = `${sock}:${round}:`;
  return (tag + 'x'.repeat(Math.max(0, size - tag.length))).slice(0, Math.max(size, tag.length));
};
const hub = createServer((sock) => {
  const ws = new RawWebSocket(sock, Buffer.alloc(0), MAX);
  const me = hubSockets.push(ws) - 1;
  ws.onMessage = (data) => {
    const [cmd, arg] = data.toString().split(' ');
    if (cmd === 'fan') {
      for (let r = 0; r < Number(arg); r++)
        for (let s = 0; s < hubSockets.length; s++) {
          const p = payload(s, r);
          // Alternately as a string and as parts (a split anywhere gives the same frame).
          if ((r + s) % 2 === 0) hubSockets[s].send(p);
          else {
            const b = Buffer.from(p);
            const cut = Math.floor(b.length / 3);
            hubSockets[s].sendParts([b.subarray(0, cut), Buffer.alloc(0), b.subarray(cut)], 3);
          }
        }
    } else if (cmd === 'bye') {
      // Staged messages go out before the close frame.
      for (let i = 0; i < 3; i++) ws.send(`last ${i}`);
      ws.close(1000, 'bye');
    } else if (cmd === 'die') {
      ws.send('never sent');
      ws.terminate();
    } else ws.send(`${me}`);
  };
});
before(() => new Promise<void>((r) => hub.listen(0, '127.0.0.1', () => r())));
after(() => new Promise<void>((r) => hub.close(() => r())));

/** A raw client of the hub: its index there, and everything it reads. */
async function hubClient(): Promise<{
  sock: Socket;
  index: number;
  read: () => Buffer;
  closed: Promise<void>;
}> {
  const sock = connect((hub.address() as { port: number }).port, '127.0.0.1');
  const chunks: Buffer[] = [];
  sock.on('data', (d) => chunks.push(d));
  const closed = new Promise<void>((r) => sock.once('close', () => r()));
  await new Promise((r) => sock.once('connect', r));
  sock.write(frame(1, text('who')));
  while (readFrames(Buffer.concat(chunks)).length === 0) await new Promise((r) => setTimeout(r, 5));
  const index = Number(readFrames(Buffer.concat(chunks))[0].payload.toString());
  chunks.length = 0;
  return { sock, index, read: () => Buffer.concat(chunks), closed };
}

test('frames for many sockets in one turn arrive whole and in order, across header sizes and the staging cap', async () => {
  const clients = [];
  for (let i = 0; i < 4; i++) clients.push(await hubClient());
  const rounds = 2 * SIZES.length;
  clients[0].sock.write(frame(1, text(`fan ${rounds}`)));
  for (const c of clients) {
    const deadline = Date.now() + 10_000;
    while (readFrames(c.read()).length < rounds && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 10));
    const got = readFrames(c.read());
    assert.equal(got.length, rounds);
    for (let r = 0; r < rounds; r++) {
      assert.equal(got[r].opcode, 1);
      assert.ok(got[r].payload.equals(Buffer.from(payload(c.index, r))), `socket ${c.index} round ${r}`);
    }
  }
  for (const c of clients) c.sock.destroy();
});

test('a close goes out after the messages staged before it; a terminated socket sends nothing more', async () => {
  const a = await hubClient();
  a.sock.write(frame(1, text('bye')));
  await a.closed;
  const got = readFrames(a.read());
  assert.deepEqual(
    got.map((f) => (f.opcode === 8 ? `close ${closeCode(f)}` : f.payload.toString())),
    ['last 0', 'last 1', 'last 2', 'close 1000'],
  );
  const b = await hubClient();
  b.sock.write(frame(1, text('die')));
  await b.closed;
  assert.equal(b.read().length, 0);
});

test('hold() delays the messages after one until release(), in order; the socket is not read meanwhile', async () => {
  const conns: { ws: RawWebSocket; sock: Socket }[] = [];
  const release: (() => void)[] = [];
  const srv = createServer((sock) => {
    const ws = new RawWebSocket(sock, Buffer.alloc(0), MAX);
    conns.push({ ws, sock });
    // "wait…" is answered later (a verdict from elsewhere); everything else at once.
    ws.onMessage = (data) => {
      const m = data.toString('utf8');
      if (!m.startsWith('wait')) {
        ws.send(m);
        return;
      }
      ws.hold();
      release.push(() => {
        ws.send(`done:${m}`);
        ws.release();
      });
    };
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const sock = connect((srv.address() as { port: number }).port, '127.0.0.1');
  const chunks: Buffer[] = [];
  sock.on('data', (d) => chunks.push(d));
  try {
    await new Promise((r) => sock.once('connect', r));
    // One write: the frames after a held one arrive in the same chunk.
    sock.write(
      Buffer.concat([
        frame(1, text('wait1')),
        frame(1, text('a')),
        frame(1, text('wait2')),
        frame(1, text('b')),
      ]),
    );
    while (release.length === 0) await new Promise((r) => setTimeout(r, 5));
    // Held: a client that keeps sending is not read (TCP holds it back), and little is kept here.
    const flood = Buffer.concat(Array.from({ length: 4096 }, () => frame(1, text('x'.repeat(500)))));
    sock.write(flood);
    await new Promise((r) => setTimeout(r, 100));
    const h = conns[0];
    assert.ok(h.sock.bytesRead < 256 * 1024, `read while held: ${h.sock.bytesRead}`);
    assert.ok(h.ws.heldBytes <= 64 * 1024, `kept while held: ${h.ws.heldBytes}`);
    assert.equal(readFrames(Buffer.concat(chunks)).length, 0, 'nothing answered before the verdict');
    release.shift()!();
    while (release.length === 0) await new Promise((r) => setTimeout(r, 5));
    release.shift()!();
    const deadline = Date.now() + 10_000;
    while (readFrames(Buffer.concat(chunks)).length < 4 + 4096 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    const got = readFrames(Buffer.concat(chunks)).map((f) => f.payload.toString());
    assert.deepEqual(got.slice(0, 4), ['done:wait1', 'a', 'done:wait2', 'b']);
    assert.equal(got.length, 4 + 4096, 'the flood is read and answered after the release');
  } finally {
    sock.destroy();
    for (const c of conns) c.sock.destroy();
    await new Promise<void>((r) => srv.close(() => r()));
  }
});
