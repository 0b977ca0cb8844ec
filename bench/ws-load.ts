/**
 * WebSocket (WebTorrent) load generator for `npm run bench`, written against the protocol as the
 * webtorrent client speaks it. Loopback only, bounded in time and count; prints one JSON line.
 *
 *   node bench/ws-load.ts conns URL CONNECTIONS TORRENTS
 *     opens CONNECTIONS sockets (each announces one torrent as a leecher with one offer), waits
 *     for every answer, prints {"ready":N}, then holds them until stdin closes.
 *     --from=ADDR: connect from this local (loopback) address, e.g. 127.0.0.2, so that several
 *     load generators do not share one address's ephemeral ports.
 *   node bench/ws-load.ts relay URL CONNECTIONS TORRENTS OFFERS SECONDS [DEPTH]
 *     each socket announces in a closed loop with OFFERS offers; counts announce responses and
 *     offers delivered to other sockets. DEPTH announces are in flight per socket (default 1).
 */
import { randomBytes } from 'node:crypto';
import { WebSocket } from 'ws';

const FROM = process.argv.find((a) => a.startsWith('--from='))?.slice('--from='.length);
const [mode, url, connsArg, torrentsArg, offersArg, secondsArg, depthArg] = process.argv
  .slice(2)
  .filter((a) => !a.startsWith('--'));
/** Announces in flight per socket in the relay test (1 = strictly closed loop). */
const DEPTH = Number(depthArg ?? 1);
const CONNS = Number(connsArg);
const TORRENTS = Number(torrentsArg);
const bin = (b: Buffer) => b.toString('latin1');
const hashes = Array.from({ length: TORRENTS }, (_, i) => {
  const b = Buffer.alloc(20);
  b.writeUInt32BE(i + 1, 0);
  b.write('wsbench', 4);
  return bin(b);
});
// An SDP offer of realistic size (~600 bytes): the tracker relays it verbatim.
const SDP = `v=0\r\no=- ${'1'.repeat(19)} 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n${'a=candidate:1 1 udp 2122260223 192.0.2.1 5000 typ host\r\n'.repeat(8)}`;

function offers(n: number) {
  const out = [];
  for (let i = 0; i < n; i++)
    out.push({ offer: { type: 'offer', sdp: SDP }, offer_id: bin(randomBytes(20)) });
  return out;
}

type Sock = { ws: WebSocket; peerId: string; infoHash: string };

function open(i: number): Promise<Sock> {
  return new Promise((resolve, reject) => {
    // The load generator is the bottleneck long before Herald is (one core for it), so it spares
    // itself what a test client need not do: frames go out with an all-zero masking key (still
    // masked frames, per RFC 6455; ws then skips the XOR pass over every byte) and incoming text
    // is not UTF-8-validated (messages are only counted).
    const ws = new WebSocket(url, {
      perMessageDeflate: false,
      generateMask: (mask: Buffer) => {
        mask.fill(0);
      },
      skipUTF8Validation: true,
      localAddress: FROM,
    });
    const peerId = bin(Buffer.concat([Buffer.from('-WL0001-'), randomBytes(12)]));
    ws.once('open', () => resolve({ ws, peerId, infoHash: hashes[i % TORRENTS] }));
    ws.once('error', reject);
  });
}

/** Opens CONNS sockets, 200 at a time; `then` runs on each as soon as it is open (awaited). */
async function openAll(then?: (s: Sock) => Promise<unknown>): Promise<Sock[]> {
  const out: Sock[] = new Array(CONNS);
  let next = 0;
  const worker = async () => {
    while (next < CONNS) {
      const i = next++;
      out[i] = await open(i);
      if (then) await then(out[i]);
    }
  };
  await Promise.all(Array.from({ length: 200 }, worker));
  return out;
}

/**
 * The socket announces `started` (no offers); resolves with true on a tracker's answer, false on
 * a failure reason or when the socket closes first (never hangs on a socket the server closed).
 */
function join(s: Sock): Promise<boolean> {
  return new Promise((resolve) => {
    const closed = () => resolve(false);
    s.ws.once('close', closed);
    s.ws.once('message', (d) => {
      s.ws.off('close', closed);
      resolve(!String(d).includes('failure reason'));
    });
    s.ws.send(
      JSON.stringify({
        action: 'announce',
        info_hash: s.infoHash,
        peer_id: s.peerId,
        event: 'started',
        uploaded: 0,
        downloaded: 0,
        left: 1000,
        numwant: 0,
        offers: [],
      }),
    );
  });
}

/** Every socket announces `started`; resolves once each has its answer (or has closed). */
async function joinAll(socks: Sock[]): Promise<{ answered: number; failures: number }> {
  const ok = (await Promise.all(socks.map(join))).filter(Boolean).length;
  return { answered: ok, failures: socks.length - ok };
}

async function conns(): Promise<void> {
  // Each socket announces as soon as it is open, as a client does (a tracker may close a socket
  // that stays silent: Herald's ws_first_announce_timeout), and waits for its answer.
  const answered: Sock[] = [];
  const socks = await openAll(async (s) => {
    if (await join(s)) answered.push(s);
  });
  // Held: answered and still open now.
  const ready = answered.filter((s) => s.ws.readyState === WebSocket.OPEN).length;
  const failures = socks.length - answered.length;
  process.stdout.write(`${JSON.stringify({ ready, failures })}\n`);
  // Hold the connections until the parent has read the server's memory.
  await new Promise<void>((r) => {
    process.stdin.on('data', () => r());
    process.stdin.on('end', () => r());
  });
  for (const s of socks) s.ws.terminate();
}

async function relay(): Promise<void> {
  const OFFERS = Number(offersArg);
  const SECONDS = Number(secondsArg);
  const socks = await openAll();
  // Join every swarm first so that offers have somewhere to go.
  await joinAll(socks);
  let responses = 0;
  let delivered = 0;
  let failures = 0;
  let running = true;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (const s of socks) {
    // The client must cost less than the server it loads (one core each): each socket's message
    // is serialised once (the server cannot tell: it parses and relays every offer anew), and
    // replies are told apart by size (a relayed offer carries an SDP; an announce answer is
    // ~150 bytes) without decoding them.
    const message = Buffer.from(
      JSON.stringify({
        action: 'announce',
        info_hash: s.infoHash,
        peer_id: s.peerId,
        uploaded: 0,
        downloaded: 0,
        left: 1000,
        numwant: OFFERS,
        offers: offers(OFFERS),
      }),
    );
    const send = () => s.ws.send(message, { binary: false });
    s.ws.on('message', (d: Buffer) => {
      if (d.length > 400) {
        delivered++;
        return;
      }
      if (d.includes('failure reason')) failures++;
      responses++;
      if (running) send();
    });
    for (let i = 0; i < DEPTH; i++) send();
  }
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  running = false;
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  process.stdout.write(
    `${JSON.stringify({
      seconds,
      announces: responses,
      announcesPerSecond: responses / seconds,
      offersDelivered: delivered,
      offersPerSecond: delivered / seconds,
      failures,
      clientCpu: (cpu.user + cpu.system) / 1e6 / seconds,
    })}\n`,
  );
  for (const s of socks) s.ws.terminate();
}

const run = mode === 'conns' ? conns : mode === 'relay' ? relay : null;
if (run === null) {
  process.stderr.write(
    'usage: ws-load.ts conns|relay URL CONNECTIONS TORRENTS [OFFERS SECONDS] [--from=ADDR]\n',
  );
  process.exit(2);
}
const guard = setTimeout(() => {
  process.stderr.write('ws-load: gave up after 300 s\n');
  process.exit(1);
}, 300_000);
guard.unref();
run().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`ws-load: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
