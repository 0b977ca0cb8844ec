/**
 * RFC 6455 frames as bytes, for tests that speak WebSocket by hand over a raw TCP socket: what a
 * hostile or broken client can send (any opcode, flags, fragmentation, unmasked frames), and a
 * reader for what the server sends back.
 */
import { connect, type Socket } from 'node:net';

/** One client frame (masked unless told otherwise). `rsv` is or-ed into the first byte. */
export function frame(opcode: number, payload: Buffer, fin = true, masked = true, rsv = 0): Buffer {
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

export interface Frame {
  opcode: number;
  payload: Buffer;
}

/** Parses the server's (unmasked) frames; an incomplete last frame is left out. */
export function readFrames(buf: Buffer): Frame[] {
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

/** The status code of a close frame, or -1 for another frame. */
export const closeCode = (f: Frame) => (f.opcode === 8 ? f.payload.readUInt16BE(0) : -1);

export interface RawWsClient {
  sock: Socket;
  /** The frames received since the 101 response. */
  frames: () => Frame[];
  /** Resolves when the TCP connection is closed. */
  closed: Promise<void>;
}

/**
 * Connects to `port` on 127.0.0.1 and performs the upgrade on `path` by hand; resolves once the
 * 101 response has arrived (rejects on any other answer).
 */
export async function rawWsClient(port: number, path = '/announce'): Promise<RawWsClient> {
  const sock = connect(port, '127.0.0.1');
  sock.setNoDelay(true);
  sock.on('error', () => {});
  let received = Buffer.alloc(0);
  let headEnd = -1;
  const closed = new Promise<void>((r) => sock.once('close', () => r()));
  await new Promise<void>((resolve, reject) => {
    sock.on('data', (d: Buffer) => {
      received = Buffer.concat([received, d]);
      if (headEnd >= 0) return;
      const end = received.indexOf('\r\n\r\n');
      if (end < 0) return;
      headEnd = end + 4;
      const status = received.toString('latin1', 0, end).split('\r\n')[0];
      if (status.startsWith('HTTP/1.1 101 ')) resolve();
      else reject(new Error(`upgrade refused: ${status}`));
    });
    closed.then(() => reject(new Error('closed before the upgrade')));
    sock.write(
      `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
  });
  return { sock, frames: () => readFrames(received.subarray(headEnd)), closed };
}
