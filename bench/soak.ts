/**
 * `npm run soak -- --minutes 30`: a private tracker under mixed UDP, HTTP and WebSocket load with
 * churn, for as long as asked, on loopback. Peers of many members join (`started`), report
 * progress, complete, and then either stop (`stopped`) or go silent and expire; new ones keep
 * coming. The load generator keeps its own tally of the upload and download it reported per
 * member; at the end Herald is stopped gracefully (SIGTERM) and the database totals must equal the
 * tally. Meanwhile Herald's RSS is sampled (slope after warm-up, by linear regression) and the
 * announce latency is kept per minute (p50, p99), so that a leak or a creep shows.
 *
 *   npm run soak -- --minutes 30              30 minutes (default 3)
 *   npm run soak -- --peers 1500 --every 5    peers online at once; seconds between a peer's announces
 *   npm run soak -- --sample 5                seconds between RSS samples
 *   npm run soak -- --json FILE               the figures as JSON too
 *
 * Exits 1 when the totals differ, Herald crashed or logged an internal error, or announces failed.
 */
import { writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { parseArgs } from 'node:util';
import type { ConnectionId } from '../src/protocol/udp/codec.ts';
import { announcePath } from '../test/helpers/clients.ts';
import { Rng } from './fuzz/rng.ts';
import {
  bdecodeDict,
  binary,
  httpRequest,
  keepAlive,
  readServerFrames,
  UdpClient,
  WsOp,
  wsFrame,
  wsOpen,
} from './harness/clients.ts';
import { type Member, populate, privateArgs, type Torrent } from './harness/fixtures.ts';
import { type HeraldChild, RssSampler, startHerald } from './harness/herald-child.ts';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '3' },
    peers: { type: 'string', default: '1000' },
    every: { type: 'string', default: '5' },
    members: { type: 'string', default: '40' },
    torrents: { type: 'string', default: '25' },
    sample: { type: 'string', default: '5' },
    seed: { type: 'string', default: 'soak' },
    json: { type: 'string' },
  },
});
const MINUTES = Number(values.minutes);
const PEERS = Number(values.peers);
const EVERY_MS = Number(values.every) * 1000;
const SAMPLE_MS = Number(values.sample) * 1000;
const TIMEOUT_MS = 3000;
const ATTEMPTS = 5;
// Herald's own timing, scaled so that a short soak still sees expiry: a silent peer is gone after
// PEER_TIMEOUT seconds (and swept), well within a run of a few minutes.
const INTERVAL = Math.max(2, Math.round(EVERY_MS / 1000));
const PEER_TIMEOUT = Math.max(30, INTERVAL * 4);
const log = (m: string) => process.stderr.write(`soak: ${m}\n`);

type Transport = 'udp' | 'http' | 'ws';

interface Session {
  member: Member;
  torrent: Torrent;
  transport: Transport;
  peerId: Buffer;
  port: number;
  left: number;
  uploaded: number;
  downloaded: number;
  /** What Herald has acknowledged: the counters of the last answered announce. */
  acked: { uploaded: number; downloaded: number } | null;
  /** Announces before the end of this peer's life, and how it ends. */
  remaining: number;
  end: 'stop' | 'expire';
  nextAt: number;
  busy: boolean;
  done: boolean;
  ws: WsLink | null;
}

/** One member's bytes as the load generator reported them, counted once Herald answered. */
interface Tally {
  uploaded: number;
  downloaded: number;
  /** Deltas whose announce never got an answer (credited or not: Herald cannot say). */
  uncertain: number;
}

/** A WebSocket as one WebTorrent peer uses it: one announce in flight, its answer next. */
class WsLink {
  socket: Socket;
  #buf: Buffer;
  #waiter: ((text: string | null) => void) | null = null;
  closed = false;

  constructor(socket: Socket, rest: Buffer) {
    this.socket = socket;
    this.#buf = rest;
    socket.on('data', (d: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, d]);
      const { frames, rest: r } = readServerFrames(this.#buf);
      this.#buf = r;
      for (const f of frames) if (f.opcode === WsOp.text) this.#deliver(f.payload.toString('utf8'));
    });
    socket.on('close', () => {
      this.closed = true;
      this.#deliver(null);
    });
    socket.on('error', () => {});
  }

  #deliver(text: string | null): void {
    const w = this.#waiter;
    this.#waiter = null;
    w?.(text);
  }

  request(msg: string, timeoutMs: number): Promise<string | null> {
    return new Promise((resolve) => {
      const t = setTimeout(() => this.#deliver(null), timeoutMs);
      this.#waiter = (text) => {
        clearTimeout(t);
        resolve(text);
      };
      this.socket.write(wsFrame(WsOp.text, Buffer.from(msg)));
    });
  }

  close(): void {
    this.socket.destroy();
    this.closed = true;
  }
}

/** p-th percentile of a sorted list. */
function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** Least-squares slope of y over x. */
export function slope(points: { x: number; y: number }[]): number {
  const n = points.length;
  if (n < 2) return 0;
  let sx = 0;
  let sy = 0;
  for (const p of points) {
    sx += p.x;
    sy += p.y;
  }
  const mx = sx / n;
  const my = sy / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.x - mx) * (p.y - my);
    den += (p.x - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

async function main(): Promise<number> {
  const rng = Rng.from(values.seed, 'soak');
  const token = rng.bytes(20).toString('hex');
  const child: HeraldChild = await startHerald(
    privateArgs(token, [
      '--interval',
      String(INTERVAL),
      '--min-interval',
      '1',
      '--peer-timeout',
      String(PEER_TIMEOUT),
      '--flush-interval',
      '2',
    ]),
  );
  const memberNames = Array.from({ length: Number(values.members) }, (_, i) => `member${i}`);
  // Torrents of 4 to 64 MiB: a leecher reports at most the torrent's size as downloaded.
  const torrentSpecs = Array.from({ length: Number(values.torrents) }, (_, i) => ({
    name: `soak${i}`,
    length: rng.range(4, 64) * 1024 * 1024,
  }));
  const torrentNames = torrentSpecs.map((t) => t.name);
  const site = await populate(child, token, { members: memberNames, torrents: torrentSpecs });
  const members = memberNames.map((n) => site.members[n]);
  const torrents = torrentNames.map((n) => site.torrents[n]);
  const tally = new Map<string, Tally>(
    memberNames.map((n) => [n, { uploaded: 0, downloaded: 0, uncertain: 0 }]),
  );
  log(
    `herald pid ${child.pid} (HTTP I/O ${child.httpIo}); ${members.length} members, ${torrents.length} torrents`,
  );
  log(
    `${PEERS} peers online, an announce each ${EVERY_MS / 1000} s, for ${MINUTES} min; peer timeout ${PEER_TIMEOUT} s`,
  );

  const udp = await UdpClient.open(child.udp!);
  let cid: { id: ConnectionId; at: number } | null = null;
  const agent = keepAlive(64);
  const sampler = new RssSampler(child, SAMPLE_MS);
  const t0 = performance.now();
  const minuteOf = () => Math.floor((performance.now() - t0) / 60_000);
  const perMinute: { latencies: number[]; ok: number; failed: number; retries: number }[] = [];
  const minute = () => {
    const m = minuteOf();
    while (perMinute.length <= m) perMinute.push({ latencies: [], ok: 0, failed: 0, retries: 0 });
    return perMinute[m];
  };
  const counts = { started: 0, completed: 0, stopped: 0, expired: 0, announces: 0, refusals: [] as string[] };
  const sessions = new Set<Session>();
  let peerNo = 0;

  const newSession = (now: number): Session => {
    peerNo++;
    const peerId = Buffer.alloc(20);
    peerId.write('-SK0001-', 0, 'latin1');
    peerId.write(String(peerNo).padStart(12, '0'), 8, 'latin1');
    const seeder = rng.chance(0.2);
    const torrent = rng.pick(torrents);
    return {
      member: rng.pick(members),
      torrent,
      transport: rng.weighted([
        [50, 'udp'],
        [35, 'http'],
        [15, 'ws'],
      ] as const),
      peerId,
      port: 10_000 + (peerNo % 50_000),
      left: seeder ? 0 : torrent.length,
      uploaded: 0,
      downloaded: 0,
      acked: null,
      remaining: rng.range(3, 20),
      end: rng.chance(0.7) ? 'stop' : 'expire',
      nextAt: now + rng.int(EVERY_MS),
      busy: false,
      done: false,
      ws: null,
    };
  };

  /** One announce over the session's transport; the answer's failure reason, or null when valid. */
  async function send(
    s: Session,
    event: 'started' | 'completed' | 'stopped' | undefined,
  ): Promise<string | null> {
    if (s.transport === 'udp') {
      if (cid === null || performance.now() - cid.at > 60_000) {
        const id = await udp.connectId(TIMEOUT_MS);
        if (id === null) throw new Error('no connect reply');
        cid = { id, at: performance.now() };
      }
      const r = await udp.announce({
        connectionId: cid.id,
        infoHash: s.torrent.infoHash,
        peerId: s.peerId,
        port: s.port,
        uploaded: s.uploaded,
        downloaded: s.downloaded,
        left: s.left,
        event: event === 'completed' ? 1 : event === 'started' ? 2 : event === 'stopped' ? 3 : 0,
        numWant: 10,
        urlData: `/announce/${s.member.passkey}`,
      });
      if (r === null) throw new Error('no announce reply');
      if (r.action === 3) {
        if (r.message.includes('connection id')) cid = null;
        throw new Error(`udp error: ${r.message}`);
      }
      return r.action === 1 ? null : `udp answer ${r.action}`;
    }
    if (s.transport === 'http') {
      const path = announcePath({
        infoHash: s.torrent.infoHash,
        peerId: s.peerId,
        port: s.port,
        uploaded: s.uploaded,
        downloaded: s.downloaded,
        left: s.left,
        event,
        numwant: 10,
        compact: 1,
        base: `/announce/${s.member.passkey}`,
      });
      const r = await httpRequest(child.http, 'GET', path, { agent, timeoutMs: TIMEOUT_MS });
      const d = bdecodeDict(r.body);
      if (r.status !== 200 || d === null) return `http status ${r.status}`;
      const failure = d.get('failure reason');
      return failure === undefined ? null : String(failure);
    }
    if (s.ws === null || s.ws.closed) {
      const { socket, rest } = await wsOpen(child.http, `/announce/${s.member.passkey}`, TIMEOUT_MS);
      s.ws = new WsLink(socket, rest);
    }
    const msg: Record<string, unknown> = {
      action: 'announce',
      info_hash: binary(s.torrent.infoHash),
      peer_id: binary(s.peerId),
      uploaded: s.uploaded,
      downloaded: s.downloaded,
      left: s.left,
      numwant: 0,
      offers: [],
    };
    if (event) msg.event = event;
    const text = await s.ws.request(JSON.stringify(msg), TIMEOUT_MS);
    if (text === null) {
      s.ws.close();
      throw new Error('no ws answer');
    }
    const j = JSON.parse(text) as Record<string, unknown>;
    return 'failure reason' in j ? String(j['failure reason']) : null;
  }

  /**
   * One announce with its retries. A retry repeats the same counters, so Herald credits the delta
   * once whether or not it saw the lost attempt; the tally counts it when an answer arrives.
   */
  async function announce(
    s: Session,
    event: 'started' | 'completed' | 'stopped' | undefined,
  ): Promise<boolean> {
    for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
      const start = performance.now();
      let failure: string | null;
      try {
        failure = await send(s, event);
      } catch {
        minute().retries++;
        continue;
      }
      const m = minute();
      m.latencies.push(performance.now() - start);
      counts.announces++;
      if (failure !== null) {
        m.failed++;
        if (counts.refusals.length < 10) counts.refusals.push(failure);
        return false;
      }
      m.ok++;
      const t = tally.get(s.member.username)!;
      if (event !== 'started' && s.acked !== null) {
        t.uploaded += s.uploaded - s.acked.uploaded;
        t.downloaded += s.downloaded - s.acked.downloaded;
      }
      s.acked = { uploaded: s.uploaded, downloaded: s.downloaded };
      return true;
    }
    minute().failed++;
    if (s.acked !== null) {
      tally.get(s.member.username)!.uncertain +=
        s.uploaded - s.acked.uploaded + (s.downloaded - s.acked.downloaded);
    }
    return false;
  }

  /** The next step of a peer's life. */
  async function step(s: Session, draining: boolean): Promise<void> {
    s.busy = true;
    try {
      if (s.acked === null) {
        if (await announce(s, 'started')) counts.started++;
        else s.done = true;
        return;
      }
      if (s.remaining <= 0 || draining) {
        if (s.end === 'stop' || draining) {
          s.uploaded += rng.int(1 << 20);
          await announce(s, 'stopped');
          counts.stopped++;
        } else counts.expired++; // silent from now on: Herald drops it after peer_timeout
        s.ws?.close();
        s.done = true;
        return;
      }
      s.remaining--;
      s.uploaded += rng.int(2 << 20);
      let event: 'completed' | undefined;
      if (s.left > 0) {
        const got = Math.min(s.left, rng.range(256 << 10, 4 << 20));
        s.left -= got;
        s.downloaded += got;
        if (s.left === 0) event = 'completed';
      }
      if (await announce(s, event)) {
        if (event === 'completed') counts.completed++;
      } else s.done = true;
    } finally {
      s.busy = false;
      s.nextAt = performance.now() + EVERY_MS * (0.8 + rng.int(400) / 1000);
      if (s.done) sessions.delete(s);
    }
  }

  const endAt = t0 + MINUTES * 60_000;
  let inFlight = 0;
  const running = new Set<Promise<void>>();
  const run = (s: Session, draining: boolean) => {
    inFlight++;
    const p = step(s, draining).finally(() => {
      inFlight--;
      running.delete(p);
    });
    running.add(p);
  };
  let lastReport = t0;
  while (performance.now() < endAt && child.exit() === null) {
    const now = performance.now();
    while (sessions.size < PEERS) sessions.add(newSession(now));
    for (const s of sessions) {
      if (inFlight >= 512) break;
      if (!s.busy && !s.done && s.nextAt <= now) run(s, false);
    }
    if (now - lastReport >= 60_000) {
      lastReport = now;
      const m = perMinute[perMinute.length - 2] ?? perMinute[perMinute.length - 1];
      const l = [...(m?.latencies ?? [])].sort((a, b) => a - b);
      log(
        `minute ${minuteOf()}: ${m?.ok ?? 0} ok, ${m?.failed ?? 0} failed, p50 ${pct(l, 50).toFixed(1)} ms, ` +
          `p99 ${pct(l, 99).toFixed(1)} ms, RSS ${(child.rss() / 2 ** 20).toFixed(0)} MiB, peers ${sessions.size}`,
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  // Drain: every peer still online says stopped (or goes silent), then nothing is in flight.
  await Promise.all(running);
  log(`drain: ${sessions.size} peers stop`);
  for (const s of sessions) if (!s.busy && !s.done && s.acked !== null) run(s, true);
  await Promise.all(running);
  for (const s of sessions) s.ws?.close();
  agent.destroy();
  udp.close();
  sampler.stop();
  const stats = child.exit() === null ? await statsOf(child) : null;
  const crashed = child.exit();
  const stop = await child.stop();
  log(`herald stopped (${stop.code ?? stop.signal})`);

  // The database after the graceful stop, through the admin CLI, against the tally.
  const { runHerald } = await import('../test/e2e/tracker-process.ts');
  const list = runHerald(['member', 'list', '--json', '--data-dir', child.dataDir]);
  const db = new Map<string, { uploaded: number; downloaded: number }>(
    (JSON.parse(list.stdout) as { username: string; uploaded: number; downloaded: number }[]).map((m) => [
      m.username,
      m,
    ]),
  );
  const mismatches: string[] = [];
  let tallyUp = 0;
  let tallyDown = 0;
  let dbUp = 0;
  let dbDown = 0;
  let uncertain = 0;
  for (const [name, t] of tally) {
    const d = db.get(name) ?? { uploaded: -1, downloaded: -1 };
    tallyUp += t.uploaded;
    tallyDown += t.downloaded;
    dbUp += d.uploaded;
    dbDown += d.downloaded;
    uncertain += t.uncertain;
    const diff = d.uploaded - t.uploaded + (d.downloaded - t.downloaded);
    const exact = d.uploaded === t.uploaded && d.downloaded === t.downloaded;
    if (!exact && !(t.uncertain > 0 && diff >= 0 && diff <= t.uncertain))
      mismatches.push(`${name}: db ${d.uploaded}/${d.downloaded}, tally ${t.uploaded}/${t.downloaded}`);
  }
  child.cleanup();

  // Figures.
  const warmS = Math.min(120, (MINUTES * 60) / 4);
  const after = sampler.samples.filter((p) => p.at >= warmS).map((p) => ({ x: p.at / 60, y: p.rss }));
  const rssSlope = slope(after);
  const rows = perMinute.map((m, i) => {
    const l = [...m.latencies].sort((a, b) => a - b);
    return { minute: i, ok: m.ok, failed: m.failed, retries: m.retries, p50: pct(l, 50), p99: pct(l, 99) };
  });
  const mib = (n: number) => (n / 2 ** 20).toFixed(1);
  const out: string[] = [];
  out.push(
    `soak: ${MINUTES} min, ${PEERS} peers online, an announce each ~${EVERY_MS / 1000} s (UDP 50 %, HTTP 35 %, WS 15 %)`,
  );
  out.push('| minute | announces ok | failed | retries | p50 ms | p99 ms |');
  out.push('|---|---|---|---|---|---|');
  for (const r of rows)
    out.push(
      `| ${r.minute} | ${r.ok} | ${r.failed} | ${r.retries} | ${r.p50.toFixed(1)} | ${r.p99.toFixed(1)} |`,
    );
  const first = sampler.samples[0]?.rss ?? 0;
  const last = sampler.samples[sampler.samples.length - 1]?.rss ?? 0;
  out.push(
    `RSS: start ${mib(first)} MiB, end ${mib(last)} MiB, max ${mib(sampler.max)} MiB; slope after ${warmS.toFixed(0)} s of warm-up: ` +
      `${(rssSlope / 1024).toFixed(1)} KiB/min over ${after.length} samples`,
  );
  out.push(
    `peers: ${counts.started} started, ${counts.completed} completed, ${counts.stopped} stopped, ${counts.expired} left to expire; ` +
      `${counts.announces} announces answered`,
  );
  if (stats)
    out.push(
      `herald at the end: ${JSON.stringify({ swarm: stats.swarm, expiredPeers: stats.expiredPeers, internalErrors: stats.internalErrors })}`,
    );
  out.push(
    `accounting: tally ${tallyUp} up / ${tallyDown} down; database ${dbUp} up / ${dbDown} down; ` +
      `${mismatches.length} members differ; ${uncertain} bytes in unanswered announces`,
  );
  for (const m of mismatches.slice(0, 10)) out.push(`  ${m}`);
  if (counts.refusals.length > 0) out.push(`refusals: ${counts.refusals.join('; ')}`);
  const failed = rows.reduce((n, r) => n + r.failed, 0);
  const internal = (stats?.internalErrors ?? 0) + child.log.internal + child.log.errors;
  const ok = mismatches.length === 0 && crashed === null && stop.code === 0 && internal === 0 && failed === 0;
  if (internal > 0) out.push(`herald logged errors: ${child.log.samples.slice(0, 3).join('\n')}`);
  out.push(ok ? 'result: PASS' : 'result: FAIL');
  process.stdout.write(`${out.join('\n')}\n`);
  if (values.json)
    writeFileSync(
      values.json,
      JSON.stringify(
        {
          minutes: MINUTES,
          peers: PEERS,
          everyMs: EVERY_MS,
          rows,
          rss: sampler.samples,
          rssSlopeBytesPerMin: rssSlope,
          counts,
          tallyUp,
          tallyDown,
          dbUp,
          dbDown,
          mismatches,
          ok,
        },
        null,
        2,
      ),
    );
  return ok ? 0 : 1;
}

async function statsOf(child: HeraldChild) {
  const r = await httpRequest(child.http, 'GET', '/stats', { timeoutMs: 10_000 });
  return JSON.parse(r.body.toString()) as {
    swarm: Record<string, number>;
    expiredPeers: number;
    internalErrors: number;
  };
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`soak: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
