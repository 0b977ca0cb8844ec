/**
 * RawWebSocket's frame layer over real loopback sockets: a raw TCP client writes frames byte by
 * byte exactly as RFC 6455 lays them out (masked, fragmented, split anywhere) and reads what the
 * server sends back.
 */
import assert from 'node:assert/strict';
import { connect, createServer, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { handshakeResponse, RawWebSocket, upgradeRequestOf, upgradeRequestOfHead } from './raw-websocket.ts';

const MAX = 1024;
let port = 0;
const server = createServer((sock) => {
  const ws = new RawWebSocket(sock, Buffer.alloc(0), MAX);
  // Echo: text back as text, binary as "bin:<length>".
  ws.onMessage = (data, binary) => ws.send(binary ? `bin:${data.length}` : data.toString('utf8'));
});
before(() =>
  new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r())).then(() => {
    port = (server.address() as { port: number }).port;
  }),
);
after(() => new Promise<void>((r) => server.close(() => r())));

function frame(opcode: number, payload: Buffer, fin = true, masked = true, rsv = 0): Buffer {
  const n = payload.length;
  const h = n < 126 ? 2 : n < 65536 ? 4 : 10;
  const out = Buffer.alloc(h + (masked ? 4 : 0) + n);
  out[0] = (fin ? 0x80 : 0) | rsv | opcode;
  if (n < 126) out[1] = n;
  else if (n < 65536) {
    out[1] = 126;
    out.writeUInt16BE(n, 2);
  } else {
    out[1] = 127;
    out.writeUInt32BE(n, 6);
  }
  if (masked) out[1] |= 0x80;
  const key = Buffer.from([0x12, 0x34, 0x56, 0x78]);
  if (masked) key.copy(out, h);
  for (let i = 0; i < n; i++) out[h + (masked ? 4 : 0) + i] = payload[i] ^ (masked ? key[i & 3] : 0);
  return out;
}

/** Parses the server's (unmasked) frames. */
function readFrames(buf: Buffer): { opcode: number; payload: Buffer }[] {
  const out = [];
  let off = 0;
  while (off + 2 <= buf.length) {
    let len = buf[off + 1] & 0x7f;
    let h = 2;
    if (len === 126) {
      len = buf.readUInt16BE(off + 2);
      h = 4;
    } else if (len === 127) {
      len = buf.readUInt32BE(off + 6);
      h = 10;
    }
    if (off + h + len > buf.length) break;
    out.push({ opcode: buf[off] & 0x0f, payload: buf.subarray(off + h, off + h + len) });
    off += h + len;
  }
  return out;
}

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
const closeCode = (f: { opcode: number; payload: Buffer }) =>
  f.opcode === 8 ? f.payload.readUInt16BE(0) : -1;

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
