/**
 * WebSocket (WebTorrent) over real upgraded connections as a member: mutated messages in correct
 * frames (announce with offers, answers, scrape, stop), and mutated frame sequences (fragments,
 * control frames between fragments, extended lengths, close, binary). Messages share a connection
 * and are followed by a ping whose pong says the server has read them all; a mutated frame
 * sequence gets a connection of its own, a half-close, and must be answered with a close.
 * Every frame the server sends is read: a text saying "internal error" or a close with code 1011
 * (internal error) and a reason is a finding.
 */
import { readServerFrames, WsOp, wsFrame } from '../harness/clients.ts';
import type { Site } from '../harness/fixtures.ts';
import type { Address } from '../harness/herald-child.ts';
import { Conn } from './conn.ts';
import { mutate, type Space } from './mutate.ts';
import type { Rng } from './rng.ts';
import { InputStream, type NetContext, Pacer, probeInterval } from './target.ts';
import { mutateWsText, wsMessages } from './ws-messages.ts';

const CONCURRENCY = 16;
const PER_PING = 8;
const ANSWER_MS = 3000;
const CLOSE_MS = 10_000;

/**
 * One input is one byte saying what it is and then its bytes: 'M' a text message (framed by the
 * sender), 'B' the same as a binary message, 'F' raw frames sent as they are.
 */
export function wsInputMaker(site: Site): (rng: Rng) => Buffer {
  const messages = wsMessages(site.torrents.fuzz.infoHash, site.torrents.victim.infoHash);
  const texts = messages.map((m) => Buffer.from(JSON.stringify(m), 'utf8'));
  const frameTemplates = (rng: Rng): Buffer[] => {
    const mask = () => rng.bytes(4);
    const t = rng.pick(texts);
    const cut = rng.int(t.length);
    return [
      wsFrame(WsOp.text, t, { mask: mask() }),
      Buffer.concat([
        wsFrame(WsOp.text, t.subarray(0, cut), { fin: false, mask: mask() }),
        wsFrame(WsOp.continuation, t.subarray(cut), { mask: mask() }),
      ]),
      Buffer.concat([
        wsFrame(WsOp.text, t.subarray(0, cut), { fin: false, mask: mask() }),
        wsFrame(WsOp.ping, Buffer.from('between'), { mask: mask() }),
        wsFrame(WsOp.continuation, t.subarray(cut), { mask: mask() }),
      ]),
      Buffer.concat([
        wsFrame(WsOp.ping, rng.bytes(rng.int(126)), { mask: mask() }),
        wsFrame(WsOp.text, t, { mask: mask() }),
      ]),
      wsFrame(WsOp.binary, t, { mask: mask() }),
      wsFrame(WsOp.pong, Buffer.from('unasked'), { mask: mask() }),
      wsFrame(WsOp.close, Buffer.from([0x03, 0xe8, 0x62, 0x79, 0x65]), { mask: mask() }),
      wsFrame(WsOp.text, Buffer.concat([t, Buffer.alloc(200, 0x20)]), { mask: mask() }),
      wsFrame(WsOp.text, Buffer.alloc(70_000, 0x20), { mask: mask() }),
    ];
  };
  const frameTokens = [
    [0x81],
    [0x01],
    [0x80],
    [0x00],
    [0x88],
    [0x89],
    [0x8a],
    [0x82],
    [0xfe],
    [0xff],
    [0x7e],
    [0x7f],
    [0xfe, 0xff, 0xff],
    [0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    [0, 0, 0, 0],
  ].map((a) => Buffer.from(a));
  return (rng: Rng) => {
    const r = rng.int(100);
    if (r < 75) {
      const text = mutateWsText(rng, messages);
      return Buffer.concat([Buffer.from(rng.chance(0.95) ? 'M' : 'B'), text]);
    }
    const templates = frameTemplates(rng);
    const space: Space = {
      templates,
      tokens: frameTokens,
      separators: [],
      numbers: 'binary',
      maxLength: 160 * 1024,
    };
    return Buffer.concat([Buffer.from('F'), mutate(rng, space)]);
  };
}

/** Opens a connection and upgrades it; null when the server refused or closed. */
async function upgrade(addr: Address, path: string): Promise<Conn | null> {
  const c = new Conn(addr);
  if (!(await c.connected)) return null;
  c.write(
    Buffer.from(
      `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    ),
  );
  const until = performance.now() + ANSWER_MS;
  for (;;) {
    const e = c.buf.indexOf('\r\n\r\n');
    if (e >= 0) {
      if (!c.buf.subarray(0, 12).toString('latin1').startsWith('HTTP/1.1 101')) {
        c.destroy();
        return null;
      }
      c.buf = c.buf.subarray(e + 4);
      return c;
    }
    if (c.closed || performance.now() > until) {
      c.destroy();
      return null;
    }
    await c.wait(until - performance.now());
  }
}

export async function runWs(ctx: NetContext): Promise<void> {
  const { child, site, result } = ctx;
  const path = `/announce/${site.members.fuzz.passkey}`;
  const inputs = InputStream.of(ctx, 'ws', wsInputMaker(site));
  const pace = new Pacer(ctx, inputs, 'ws', probeInterval(ctx.count, 500, 20_000));
  let pingNo = 0;

  /** Reads the server's frames in `c.buf`; true when the pong `want` was among them. */
  const readFrames = (c: Conn, want: Buffer | null, input: Buffer): { pong: boolean; bad: boolean } => {
    const { frames, rest, bad } = readServerFrames(c.buf);
    c.buf = rest;
    let pong = false;
    for (const f of frames) {
      result.answers++;
      if (f.opcode === WsOp.text && f.payload.includes('internal error')) {
        result.internal++;
        ctx.record.add('ws', 'internal-error-answer', f.payload.toString('utf8', 0, 300), input);
      }
      // 1011 is "internal error"; a close without a reason is the server echoing the client's own
      // close code (RFC 6455 5.5.1), which a mutated close frame may well have set to 1011.
      if (f.opcode === WsOp.close && f.payload.length > 2 && f.payload.readUInt16BE(0) === 1011) {
        result.internal++;
        ctx.record.add('ws', 'close-1011', f.payload.toString('utf8', 2), input);
      }
      if (f.opcode === WsOp.pong && want !== null && f.payload.equals(want)) pong = true;
    }
    return { pong, bad };
  };

  async function worker(): Promise<void> {
    let conn: Conn | null = null;
    let batch: Buffer[] = [];
    const flush = async () => {
      if (conn === null || batch.length === 0) return;
      const tag = Buffer.alloc(4);
      tag.writeUInt32BE(++pingNo);
      conn.write(wsFrame(WsOp.ping, tag));
      const until = performance.now() + ANSWER_MS;
      const last = batch[batch.length - 1];
      for (;;) {
        const { pong, bad } = readFrames(conn, tag, last);
        if (pong) break;
        if (bad || conn.closed) {
          conn.destroy();
          conn = null;
          break;
        }
        if (performance.now() >= until) {
          // No pong: the server is waiting for bytes or is stuck. Finish and expect the close.
          conn.end();
          const closed = await conn.closedBy(performance.now() + CLOSE_MS);
          readFrames(conn, null, last);
          if (!closed && child.exit() === null) {
            result.stalls++;
            ctx.record.add('ws', 'stall', 'no pong, and no close after the half-close', Buffer.concat(batch));
          }
          conn.destroy();
          conn = null;
          break;
        }
        await conn.wait(until - performance.now());
      }
      batch = [];
    };
    for (let input = await pace.next(); input !== null; input = await pace.next()) {
      const kind = input[0];
      const body = input.subarray(1);
      if (kind === 0x46 /* F */) {
        await flush();
        const c = await upgrade(child.http, path);
        if (c === null) {
          result.stalls++;
          ctx.record.add('ws', 'upgrade-refused', 'a valid upgrade was not answered with 101');
          continue;
        }
        c.write(body);
        c.end();
        const closed = await c.closedBy(performance.now() + CLOSE_MS);
        readFrames(c, null, input);
        if (!closed && child.exit() === null) {
          result.stalls++;
          ctx.record.add('ws', 'stall', 'raw frames, half-close, no close', input);
        }
        c.destroy();
        continue;
      }
      if (conn === null || conn.closed) {
        conn = await upgrade(child.http, path);
        if (conn === null) {
          result.stalls++;
          ctx.record.add('ws', 'upgrade-refused', 'a valid upgrade was not answered with 101');
          continue;
        }
      }
      const mask = Buffer.from([input.length & 0xff, 0x5a, 0xa5, 0x3c]);
      conn.write(wsFrame(kind === 0x42 /* B */ ? WsOp.binary : WsOp.text, body, { mask }));
      batch.push(input);
      if (batch.length >= PER_PING) await flush();
    }
    await flush();
    (conn as Conn | null)?.destroy();
  }

  await pace.run(CONCURRENCY, worker);
}
