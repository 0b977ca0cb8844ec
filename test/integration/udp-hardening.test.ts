/**
 * UDP hardening (issue #15), over real loopback sockets on both transports: BEP 41 options that
 * are malformed do not refuse an announce outside private mode; private mode says what to do when
 * no passkey arrives; forged and expired connection ids are never accepted; a source that has not
 * proved its address never gets a reply larger than its request; odd but valid fields never cause
 * an internal error.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { HeraldConfig } from '../../src/config/schema.ts';
import { ManualClock } from '../../src/core/clock.ts';
import { Errors } from '../../src/core/errors.ts';
import { xorshift } from '../../src/core/random.ts';
import {
  type AnnounceFields,
  type ConnectionId,
  parseResponse,
  type UdpResponse,
  writeAnnounceRequest,
  writeConnectRequest,
  writeScrapeRequest,
} from '../../src/protocol/udp/codec.ts';
import { hashOf, udpClient } from '../helpers/clients.ts';
import { type UdpTestTracker, udpTracker } from '../helpers/udp-tracker.ts';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
type Client = Awaited<ReturnType<typeof udpClient>>;

/**
 * A tracker for one describe block: started before its tests (then `setup`), stopped after them.
 * `get()` is the running tracker.
 */
function trackerFor(
  io: 'batched' | 'dgram',
  extra: Partial<HeraldConfig> = {},
  setup?: (t: UdpTestTracker) => Promise<void>,
): { clock: ManualClock; get: () => UdpTestTracker } {
  const clock = new ManualClock(1_800_000_000);
  let t: UdpTestTracker | null = null;
  before(async () => {
    t = await udpTracker(io, clock, extra);
    await setup?.(t);
  });
  after(() => t?.tracker.stop());
  return { clock, get: () => t! };
}

const buf = Buffer.alloc(4096);
let tid = 1;

async function connect(c: Client, port: number): Promise<ConnectionId> {
  const t = tid++;
  const reply = await c.request(buf.subarray(0, writeConnectRequest(buf, t)), port);
  assert.ok(reply, 'connect answered');
  const r = parseResponse(reply, reply.length);
  assert.ok(r.action === 0 && r.transactionId === t);
  return r.connectionId;
}

/** An announce packet (a copy), with `options` appended after byte 98 as the client sent them. */
function announcePacket(
  id: ConnectionId,
  f: Partial<AnnounceFields> & { infoHash: Uint8Array; port: number },
  options: number[] = [],
): Buffer {
  const n = writeAnnounceRequest(buf, {
    connectionId: id,
    transactionId: tid++,
    peerId: Buffer.from(`-XX0001-${String(f.port).padStart(12, '0')}`),
    downloaded: 0,
    left: 100,
    uploaded: 0,
    event: 2,
    numWant: 50,
    ...f,
  });
  return Buffer.concat([buf.subarray(0, n), Buffer.from(options)]);
}

async function ask(c: Client, packet: Uint8Array, port: number, family: 4 | 6 = 4): Promise<UdpResponse> {
  const reply = await c.request(packet, port);
  assert.ok(reply, 'answered');
  return parseResponse(reply, reply.length, family);
}

const ascii = (s: string) => [...Buffer.from(s, 'latin1')];

/**
 * What real clients put after the 98 bytes, and what a broken or hostile one might: none of it
 * may refuse an announce where no passkey is needed (opentracker ignores these bytes; aquatic
 * refused qBittorrent 5's two trailing bytes until it ignored them too).
 */
const TRAILERS: [string, number[]][] = [
  ['qBittorrent 5: two zero bytes (aquatic #251)', [0, 0]],
  ['libtorrent: URL data then EndOfOptions', [2, 9, ...ascii('/announce'), 0]],
  ['URL data without EndOfOptions', [2, 9, ...ascii('/announce')]],
  ['NOPs only', [1, 1, 1, 1]],
  ['an unknown option type', [7, 3, 1, 2, 3]],
  ['URL data type with no length byte', [2]],
  ['URL data longer than the packet', [2, 40, ...ascii('/announce')]],
  ['URL data, then a truncated second part', [2, 9, ...ascii('/announce'), 2, 200, 1]],
  [
    'URL data over 1024 bytes in total',
    Array.from({ length: 5 }, () => [2, 255, ...Array(255).fill(0x61)]).flat(),
  ],
  ['a single zero byte', [0]],
  ['garbage', [0xff, 0xfe, 0xfd, 0x02]],
];

for (const io of ['batched', 'dgram'] as const)
  describe(`UDP hardening over ${io}`, () => {
    for (const mode of ['open', 'whitelist'] as const)
      describe(`${mode} mode: malformed BEP 41 options never refuse an announce`, () => {
        const { clock, get } = trackerFor(io, { mode }, async (t) => {
          if (mode !== 'whitelist') return;
          for (let i = 0; i < TRAILERS.length; i++)
            await t.tracker.registry().addToList('allow', hex(hashOf(i, 41)));
          await t.tracker.policy.refresh();
        });

        for (const [i, [name, options]] of TRAILERS.entries())
          test(name, async () => {
            const t = get();
            const c = await udpClient(4);
            try {
              const id = await connect(c, t.port4);
              const h = hashOf(i, 41);
              const r = await ask(c, announcePacket(id, { infoHash: h, port: 7000 + i }, options), t.port4);
              assert.equal(r.action, 1, `announced (${r.action === 3 ? r.message : r.action})`);
              const s = t.tracker.service.store.scrape([h], clock.now()) as { incomplete: number }[];
              assert.equal(s[0].incomplete, 1, 'the peer is in the swarm');
            } finally {
              c.close();
            }
          });
      });

    describe('private mode: the passkey over UDP', () => {
      let passkey: string;
      const h = hashOf(1, 42);
      const { get } = trackerFor(io, { mode: 'private', flushInterval: 3600 }, async (t) => {
        const reg = t.tracker.registry();
        passkey = (await reg.addMember({ username: 'carol' })).passkey;
        await reg.addTorrent({ infoHash: hex(h), infoHashV2: null, name: 't', size: 1, fileCount: 1 });
        await t.tracker.policy.refresh();
      });

      test('a client that sends no URL data (Transmission, aria2, rTorrent) is told to use the https:// URL', async () => {
        const t = get();
        const c = await udpClient(4);
        try {
          const id = await connect(c, t.port4);
          const r = await ask(c, announcePacket(id, { infoHash: h, port: 7100 }), t.port4);
          assert.ok(r.action === 3, 'a BEP 15 error');
          assert.equal(r.message, Errors.udpPasskeyMissing.message);
          assert.match(r.message, /https:\/\//);
          assert.match(r.message, /BEP 41/);
          // Scrape carries no URL data in any client: the same advice.
          const n = writeScrapeRequest(buf, id, tid++, [h]);
          const s = await ask(c, buf.subarray(0, n), t.port4);
          assert.ok(s.action === 3 && s.message === Errors.udpPasskeyMissing.message);
        } finally {
          c.close();
        }
      });

      test('truncated URL data is not read as a (partial) passkey, and gets the same advice', async () => {
        const t = get();
        const c = await udpClient(4);
        try {
          const id = await connect(c, t.port4);
          const url = ascii(`/announce/${passkey}`);
          const r = await ask(
            c,
            announcePacket(id, { infoHash: h, port: 7101 }, [2, url.length + 10, ...url]),
            t.port4,
          );
          assert.ok(r.action === 3 && r.message === Errors.udpPasskeyMissing.message);
        } finally {
          c.close();
        }
      });

      test('a libtorrent client (BEP 41 URL data) announces with its passkey, on IPv4 and IPv6', async () => {
        const t = get();
        for (const family of [4, 6] as const) {
          const c = await udpClient(family);
          try {
            const port = family === 4 ? t.port4 : t.port6;
            const id = await connect(c, port);
            const r = await ask(
              c,
              announcePacket(id, { infoHash: h, port: 7102, urlData: `/announce/${passkey}` }),
              port,
              family,
            );
            assert.equal(r.action, 1);
          } finally {
            c.close();
          }
        }
      });
    });

    describe('connection ids and amplification', () => {
      const { clock, get } = trackerFor(io);

      /**
       * Sends `packets`, each run of 100 followed by a connect (the sentinel), and returns every
       * reply received before the sentinels' replies: one socket, processed and answered in
       * order, so whatever a run caused has arrived by then (and no more than a run's replies
       * wait in the client's socket buffer at a time). The client's own reply queue is bypassed.
       */
      async function burst(c: Client, port: number, packets: Buffer[]): Promise<Buffer[]> {
        const replies: Buffer[] = [];
        const sentinel = 0x5e5e5e5e;
        const own = c.socket.listeners('message') as ((m: Buffer) => void)[];
        c.socket.removeAllListeners('message');
        try {
          for (let at = 0; at < packets.length; at += 100) {
            const done = new Promise<void>((resolve) => {
              c.socket.on('message', function onMessage(m: Buffer) {
                if (m.length === 16 && m.readUInt32BE(0) === 0 && m.readUInt32BE(4) === sentinel) {
                  c.socket.off('message', onMessage);
                  resolve();
                } else replies.push(m);
              });
            });
            for (const p of packets.slice(at, at + 100)) c.socket.send(p, port, '127.0.0.1');
            c.socket.send(buf.subarray(0, writeConnectRequest(buf, sentinel)), port, '127.0.0.1');
            await done;
          }
        } finally {
          for (const l of own) c.socket.on('message', l);
        }
        return replies;
      }

      test('forged connection ids: random, another port, another address, expired, future: none accepted', async () => {
        const t = get();
        const a = await udpClient(4);
        const b = await udpClient(4);
        const c6 = await udpClient(6);
        const counters = t.tracker.service.counters;
        const h = hashOf(1, 43);
        try {
          const packets: Buffer[] = [];
          const forged = (id: ConnectionId, i: number) => {
            packets.push(announcePacket(id, { infoHash: h, port: 8000 + (i % 1000) }));
            packets.push(Buffer.from(buf.subarray(0, writeScrapeRequest(buf, id, tid++, [h]))));
          };
          const rand = xorshift(12345);
          const now = clock.now();
          // 1. Random ids, about the current time and anywhere.
          for (let i = 0; i < 500; i++)
            forged(
              { hi: i % 2 === 0 ? now - (i % 100) : (rand() * 2 ** 32) >>> 0, lo: (rand() * 2 ** 32) >>> 0 },
              i,
            );
          // 2. An id issued to another port of the same address, and to another address (::1).
          const other = await connect(b, t.port4);
          const v6 = await connect(c6, t.port6);
          for (let i = 0; i < 250; i++) forged(other, i);
          for (let i = 0; i < 250; i++) forged(v6, i);
          // 3. Its own id, once expired (issued 121 s ago), and an honest-looking id from the
          // future (its tag is right for that time, but the time is 60 s ahead).
          clock.advance(-121);
          const old = await connect(a, t.port4);
          clock.advance(121 + 60);
          const future = await connect(a, t.port4);
          clock.advance(-60);
          for (let i = 0; i < 250; i++) forged(old, i);
          for (let i = 0; i < 250; i++) forged(future, i);
          const before = { dropped: counters.udpDropped, announces: counters.announces.udp };
          const replies = await burst(a, t.port4, packets);
          assert.equal(replies.length, 0, 'no reply to any forged id');
          assert.equal(
            counters.udpDropped - before.dropped,
            packets.length,
            'every one received and dropped',
          );
          assert.equal(counters.announces.udp, before.announces, 'none accepted');
          const s = t.tracker.service.store.scrape([h], clock.now()) as { incomplete: number }[];
          assert.equal(s[0].incomplete, 0, 'the swarm never saw them');
          // Reported in docs/security.md.
          console.log(`# forged connection ids sent: ${packets.length}, accepted: 0, replies: 0`);
          // And the owner's fresh id still works.
          const id = await connect(a, t.port4);
          assert.equal((await ask(a, announcePacket(id, { infoHash: h, port: 8999 }), t.port4)).action, 1);
        } finally {
          a.close();
          b.close();
          c6.close();
        }
      });

      test('an unconnected source never gets a reply larger than its request', async () => {
        const t = get();
        const c = await udpClient(4);
        const rand = xorshift(777);
        const byte = () => (rand() * 256) | 0;
        try {
          // Every shape an unconnected source can send: connect requests (valid, with a wrong
          // protocol id, with trailing bytes), announces and scrapes with made-up ids, error and
          // unknown actions, runts and random bytes of every length up to 1500.
          const packets: Buffer[] = [];
          const sent = new Map<number, number>(); // transaction id -> request length
          let connects = 0;
          for (let i = 0; i < 3000; i++) {
            const kind = i % 6;
            const len = kind === 0 ? 16 : kind === 1 ? 16 + (i % 200) : (rand() * 1500) | 0;
            const p = Buffer.alloc(len);
            for (let k = 0; k < len; k++) p[k] = byte();
            if (kind <= 1 && len >= 16) {
              // A connect request (valid protocol id) of 16 or more bytes.
              p.writeUInt32BE(0x417, 0);
              p.writeUInt32BE(0x27101980, 4);
              p.writeUInt32BE(0, 8);
              connects++;
            } else if (kind <= 4 && len >= 16) p.writeUInt32BE(kind - 1, 8); // announce, scrape, error
            if (len >= 16) p.writeUInt32BE(100_000 + i, 12);
            if (len >= 16) sent.set(100_000 + i, len);
            packets.push(p);
          }
          const counters = t.tracker.service.counters;
          const before = counters.udpDropped + counters.udpConnects;
          const replies = await burst(c, t.port4, packets);
          const sentinels = Math.ceil(packets.length / 100);
          assert.equal(
            counters.udpDropped + counters.udpConnects - before,
            packets.length + sentinels,
            'all received',
          );
          let largest = 0;
          for (const r of replies) {
            const req = sent.get(r.readUInt32BE(4));
            assert.ok(req !== undefined, 'every reply answers a request that carried its transaction id');
            assert.ok(r.length <= req, `reply ${r.length} bytes to a request of ${req}`);
            assert.equal(r.readUInt32BE(0), 0, 'only connect is answered');
            largest = Math.max(largest, r.length / req);
          }
          assert.equal(replies.length, connects, 'each connect answered once, nothing else');
          console.log(
            `# unconnected packets: ${packets.length}, replies: ${replies.length}, largest reply/request: ${largest}`,
          );
        } finally {
          c.close();
        }
      });
    });

    describe('odd but valid announces never cause an internal error', () => {
      const { get } = trackerFor(io, { maxNumWant: 1000 });

      test('numwant, port, key, 64-bit counters, events, and the v4 ip field on IPv6', async () => {
        const t = get();
        const h = hashOf(1, 44);
        const counters = t.tracker.service.counters;
        const internal = counters.internalErrors;
        const MAX64 = 2 ** 64 - 1;
        const cases: [string, Partial<AnnounceFields>, 4 | 6][] = [
          ['numwant -1 (default)', { numWant: -1 }, 4],
          ['numwant 0', { numWant: 0 }, 4],
          ['numwant 2^31 - 1', { numWant: 0x7fffffff }, 4],
          ['numwant -2^31', { numWant: -0x80000000 }, 4],
          ['numwant huge on IPv6', { numWant: 0x7fffffff }, 6],
          ['key 0', { key: 0 }, 4],
          ['key 2^32 - 1', { key: 0xffffffff }, 4],
          ['downloaded, left, uploaded 2^64 - 1', { downloaded: MAX64, left: MAX64, uploaded: MAX64 }, 4],
          ['downloaded 2^53 + 2', { downloaded: 2 ** 53 + 2 }, 6],
          ['left 0 (a seeder) with event completed', { left: 0, event: 1 }, 4],
          ['IPv6 packet with the v4 ip field set', { ip: 0x7f000001 }, 6],
          ['IPv4 packet with another ip in the v4 field', { ip: 0x01020304 }, 4],
          ['port 65535', { port: 65535 }, 4],
          ['event stopped for a peer never seen', { event: 3 }, 4],
        ];
        for (const family of [4, 6] as const) {
          const c = await udpClient(family);
          const port = family === 4 ? t.port4 : t.port6;
          try {
            const id = await connect(c, port);
            // A crowd to be selected from, so that huge numwant values have peers to copy.
            for (let p = 0; p < 30; p++)
              await ask(c, announcePacket(id, { infoHash: h, port: 9000 + p, left: p % 2 }), port, family);
            for (const [name, f, fam] of cases) {
              if (fam !== family) continue;
              const r = await ask(c, announcePacket(id, { infoHash: h, port: 9100, ...f }), port, family);
              assert.equal(r.action, 1, `${name}: announced (${r.action === 3 ? r.message : r.action})`);
              if (r.action === 1 && f.ip !== undefined && family === 6)
                assert.ok(r.peers.length % 18 === 0, `${name}: IPv6 peers`);
            }
            // Port 0: refused with the catalogue's message, not an internal error.
            const z = await ask(c, announcePacket(id, { infoHash: h, port: 0 }), port, family);
            assert.ok(z.action === 3 && z.message === Errors.invalidPort.message, 'port 0 refused');
            // Scrape: the most hashes that fit, all zero bytes, and the same hash repeated.
            const hashes = Array.from({ length: 74 }, () => new Uint8Array(20));
            const n = writeScrapeRequest(buf, id, tid++, hashes);
            const s = await ask(c, buf.subarray(0, n), port, family);
            assert.ok(s.action === 2 && s.entries.length === 74);
          } finally {
            c.close();
          }
        }
        assert.equal(counters.internalErrors, internal, 'no internal error');
        // Peers stored from an IPv6 packet are IPv6 peers at the packet's address, whatever the
        // ip field said.
        const st = t.tracker.service.store.stats() as { peers6: number };
        assert.ok(st.peers6 > 0);
      });
    });
  });
