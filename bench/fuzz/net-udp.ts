/**
 * UDP (BEP 15 + BEP 41) against the running Herald: mutated connect, announce and scrape packets
 * with a live connection id filled in, in batches; after each batch a valid connect must be
 * answered (flow control and liveness at once), and every `probeEvery` inputs a full
 * connect + announce as a member must get an announce reply.
 */
import { PROTOCOL_ID_HI, PROTOCOL_ID_LO } from '../../src/protocol/udp/codec.ts';
import { UdpClient } from '../harness/clients.ts';
import { generate, type Space } from './mutate.ts';
import { InputStream, type NetContext, PLACEHOLDER, probeInterval } from './target.ts';

function packet(parts: (Buffer | number[] | [number, number][])[]): Buffer {
  return Buffer.concat(parts.map((p) => (Buffer.isBuffer(p) ? p : Buffer.from(p as number[]))));
}

const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};
const u64 = (n: bigint) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(n);
  return b;
};
const u16 = (n: number) => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
};

/** BEP 41 URL data: option 2 in chunks of at most 255 bytes, then end of options. */
function urlData(path: string, chunk = 255, nops = 0): Buffer {
  const data = Buffer.from(path, 'latin1');
  const parts: Buffer[] = [];
  for (let i = 0; i < nops; i++) parts.push(Buffer.from([1]));
  for (let i = 0; i < data.length; i += chunk) {
    const c = data.subarray(i, i + chunk);
    parts.push(Buffer.from([2, c.length]), c);
  }
  parts.push(Buffer.from([0]));
  return Buffer.concat(parts);
}

export function udpSpace(infoHash: Buffer, otherHash: Buffer): Space {
  const cid = PLACEHOLDER.connectionId;
  const pk = PLACEHOLDER.passkey.toString('latin1');
  const peer = Buffer.from('-FZ0001-udpfuzz00001');
  const announce = (event: number, left: bigint, url: Buffer, hash = infoHash, numWant = 50) =>
    packet([
      cid,
      u32(1),
      u32(0x12345678),
      hash,
      peer,
      u64(1000n),
      u64(left),
      u64(5000n),
      u32(event),
      u32(0),
      u32(0xdeadbeef),
      u32(numWant),
      u16(6881),
      url,
    ]);
  const templates = [
    packet([u32(PROTOCOL_ID_HI), u32(PROTOCOL_ID_LO), u32(0), u32(0x01020304)]),
    announce(2, 1000n, urlData(`/announce/${pk}`)),
    announce(0, 0n, urlData(`/${pk}/announce`, 7, 2)),
    announce(1, 0n, urlData(`/announce/${pk}?x=1`)),
    announce(3, 500n, urlData(`/announce/${pk}`), infoHash, -1 >>> 0),
    announce(2, 1000n, Buffer.alloc(0), otherHash),
    packet([cid, u32(2), u32(0x55667788), infoHash, otherHash, infoHash]),
    packet([cid, u32(2), u32(0x55667789), urlData(`/announce/${pk}`)]),
  ];
  const tokens: Buffer[] = [
    [0],
    [1],
    [2],
    [2, 255],
    [2, 0],
    [0, 0, 0, 0],
    [0, 0, 0, 1],
    [0, 0, 0, 2],
    [0, 0, 0, 3],
    [0, 0, 0, 4],
    [255, 255, 255, 255],
    [0x00, 0x00, 0x04, 0x17, 0x27, 0x10, 0x19, 0x80],
  ].map((a) => Buffer.from(a));
  for (const s of ['/announce/', '/announce', '/', '?', '%', pk, '/scrape/']) tokens.push(Buffer.from(s));
  tokens.push(cid, infoHash, otherHash);
  return { templates, tokens, separators: [Buffer.from([2])], numbers: 'binary', maxLength: 2048 };
}

const BATCH = 256;

export async function runUdp(ctx: NetContext): Promise<void> {
  const { child, site, result } = ctx;
  if (child.udp === null) throw new Error('herald has no UDP listener');
  const fuzzHash = site.torrents.fuzz.infoHash;
  const space = udpSpace(fuzzHash, site.torrents.victim.infoHash);
  const inputs = InputStream.of(ctx, 'udp', (rng) => generate(rng, space), [
    [PLACEHOLDER.passkey, Buffer.from(site.members.fuzz.passkey)],
  ]);
  const c = await UdpClient.open(child.udp);
  c.onReply = (m) => {
    result.answers++;
    // An error reply (action 3) carries a message; only a catalogue message may appear there.
    if (m.length >= 8 && m.readUInt32BE(0) === 3 && m.includes('internal error')) {
      result.internal++;
      ctx.record.add('udp', 'internal-error-reply', m.toString('latin1', 8));
    }
  };
  let cid = await c.connectId();
  let cidAt = performance.now();
  if (cid === null) throw new Error('udp: no connect reply before fuzzing');
  const setCid = () => {
    const b = Buffer.alloc(8);
    b.writeUInt32BE(cid!.hi, 0);
    b.writeUInt32BE(cid!.lo, 4);
    inputs.setSecret(PLACEHOLDER.connectionId, b);
  };
  setCid();
  let sinceProbe = 0;
  const probeEvery = probeInterval(ctx.count, BATCH, 20_000);
  try {
    while (inputs.count < ctx.count && performance.now() < ctx.deadline && child.exit() === null) {
      const n = Math.min(BATCH, ctx.count - inputs.count);
      for (let i = 0; i < n; i++) c.send(inputs.fill(inputs.next()));
      // A connection id lives about two minutes: take a fresh one every 30 s.
      const fresh = await c.connectId(3000);
      if (fresh === null) {
        if (child.exit() !== null) break;
        // Kernel buffers may have dropped it under load; a second miss is a finding.
        const again = await c.connectId(5000);
        if (again === null) {
          result.stalls++;
          ctx.record.add('udp', 'no-connect-reply', `after ${inputs.count} inputs`);
          continue;
        }
      } else if (performance.now() - cidAt > 30_000) {
        cid = fresh;
        cidAt = performance.now();
        setCid();
      }
      sinceProbe += n;
      if (sinceProbe >= probeEvery) {
        sinceProbe = 0;
        await ctx.probe();
        ctx.progress(`udp ${inputs.count}`);
      }
    }
  } finally {
    result.inputs = inputs.count;
    result.digest = inputs.digest();
    c.close();
  }
}
