import { type ELDHistogram, monitorEventLoopDelay } from 'node:perf_hooks';
import type { ConnectableStats } from '../connectable/checker.ts';
import { RateWindow, type TrackerCounters } from '../core/metrics.ts';
import type { SwarmStats } from '../core/types.ts';
import { VERSION } from '../core/version.ts';
import type { SwarmStore } from '../swarm/types.ts';

/** The figures `/stats` (JSON) and `/metrics` (Prometheus) both show. */
export interface StatsSnapshot {
  /** Herald's version (package.json). */
  version: string;
  /** The database's schema: its last migration (null before the database is open). */
  schema: string | null;
  uptimeSeconds: number;
  swarm: SwarmStats;
  announces: { http: number; udp: number; ws: number };
  scrapes: { http: number; udp: number; ws: number };
  failures: { http: number; udp: number; ws: number };
  perSecond: {
    announces: { http: number; udp: number; ws: number };
    scrapes: { http: number; udp: number; ws: number };
  };
  udp: { connects: number; dropped: number };
  fullScrapes: number;
  expiredPeers: number;
  internalErrors: number;
  /** Announces refused because the swarm store was full (max_peers, max_torrents). */
  refusedFull: number;
  /** HTTP(S) and WebSocket connections closed at once: their address had max_connections_per_ip. */
  connectionsRefused: number;
  /** WebTorrent peers (their own swarms; a browser cannot reach TCP peers), when WS is on. */
  webrtc?: { sockets: number; swarms: number; peers: number; seeders: number; leechers: number };
  /** TCP/UDP and WebRTC together. */
  total?: { torrents: number; peers: number; seeders: number; leechers: number };
  /** With `--workers N` (N > 1): how many workers these figures add up (issue #13). */
  workers?: number;
  /** With workers, in one worker's own figures: its index (`/metrics` labels its counters with it). */
  worker?: number;
  /** HTTP(S) connections on the tracker's own path, when HTTP(S) is on (see `HttpConnectionStats`). */
  http?: HttpConnectionStats;
  /** The process's memory and CPU (with workers: every worker's added up). */
  process: ProcessStats;
  /** Event-loop delay over the last 10 s, in seconds (with workers: the worst worker's). */
  eventLoopDelay: { p50: number; p99: number; max: number };
  /** Private mode: the accounting flush (with workers: the oldest flush age). */
  accounting?: AccountingStats;
  /** The connectable check, when it is on (with workers: every worker's added up). */
  connectable?: ConnectableStats;
}

export interface ProcessStats {
  residentBytes: number;
  heapUsedBytes: number;
  heapTotalBytes: number;
  /** Memory outside the JavaScript heap: array buffers (the peer store), addons. */
  externalBytes: number;
  cpuSeconds: number;
}

export interface AccountingStats {
  /** Seconds since the database last held every credit (`Accountant.flushAge`). */
  flushAgeSeconds: number;
  flushes: number;
  flushErrors: number;
  /** Wall-clock seconds spent writing flushes that committed. */
  flushSeconds: number;
  /** Member x torrent rows written. */
  rowsWritten: number;
  /** Baselines forgotten, and their peers taken out of the swarms, when their member lost access. */
  revoked: number;
}

/**
 * Figures of several workers added up (every number summed; uptime is the longest). `shared`:
 * the workers share one store (Redis, or swarms in memory every worker maps), whose swarm figures
 * each of them reports whole: those are taken once. `sharedRtc`: so are the WebTorrent swarms'
 * (on Redis; with the shared-memory store they are sharded over the workers and added up); the
 * WebTorrent sockets, each worker's own, are always added up.
 */
export function sumSnapshots(list: StatsSnapshot[], shared = false, sharedRtc = shared): StatsSnapshot {
  const add = (a: unknown, b: unknown): unknown => {
    if (typeof a === 'number' && typeof b === 'number') return a + b;
    if (a !== null && typeof a === 'object' && b !== null && typeof b === 'object') {
      const out: Record<string, unknown> = { ...(a as Record<string, unknown>) };
      for (const [k, v] of Object.entries(b as Record<string, unknown>))
        out[k] = k in out ? add(out[k], v) : v;
      return out;
    }
    return a ?? b;
  };
  let sum = list[0];
  for (let i = 1; i < list.length; i++) sum = add(sum, list[i]) as StatsSnapshot;
  sum.uptimeSeconds = Math.max(...list.map((s) => s.uptimeSeconds));
  delete sum.worker;
  if (shared) {
    sum.swarm = { ...list[0].swarm };
    const rtc = list[0].webrtc;
    if (sharedRtc && sum.webrtc && rtc) sum.webrtc = { ...rtc, sockets: sum.webrtc.sockets };
    const w = sum.webrtc;
    if (sum.total && w)
      sum.total = {
        torrents: sum.swarm.torrents + w.swarms,
        peers: sum.swarm.peers + w.peers,
        seeders: sum.swarm.seeders + w.seeders,
        leechers: sum.swarm.leechers + w.leechers,
      };
  }
  // Delays and ages are not added up: the worst process is the one to look at.
  for (const k of ['p50', 'p99', 'max'] as const)
    sum.eventLoopDelay[k] = Math.max(...list.map((s) => s.eventLoopDelay[k]));
  if (sum.accounting)
    sum.accounting.flushAgeSeconds = Math.max(...list.map((s) => s.accounting?.flushAgeSeconds ?? 0));
  for (const o of [sum.perSecond.announces, sum.perSecond.scrapes])
    for (const k of ['http', 'udp', 'ws'] as const) o[k] = Math.round(o[k] * 10) / 10;
  return sum;
}

/** Connections of the HTTP(S) listeners that the tracker path holds (not handed to node:http). */
export interface HttpConnectionStats {
  /** Open connections: on Node sockets and waiting in the batched addon. */
  connections: number;
  /** Connections not read because their answers wait to be sent (a client that does not read). */
  paused: number;
  /**
   * Connections parked in the batched addon while their answer comes from another worker or an
   * asynchronous store (not read meanwhile).
   */
  parked: number;
  /** Answer bytes written to those connections and not yet taken by the kernel. */
  unsentBytes: number;
  /**
   * `--workers N` (issue #13): kept-alive announces the batched addon relayed to the worker that
   * owns their swarm, since start: sent to it, served for another worker, answered "busy" (the
   * owner's link went down). Present when the relay runs.
   */
  relayed?: { out: number; in: number; busy: number };
}

/** WebTorrent figures: this process's sockets, and the WebRTC swarms it serves. */
export interface WebRtcFigures {
  sockets: number;
  swarms: number;
  peers: number;
  seeders: number;
  leechers: number;
}

/** Samples the counters once a second so that rates are over a sliding 10 s window. */
export class StatsReporter {
  #counters: TrackerCounters;
  #store: SwarmStore;
  #window = new RateWindow(10_000);
  #timer: NodeJS.Timeout | null = null;
  #started = Date.now();

  /** Set by the composition root when the WebSocket frontend runs (a promise with a shared store). */
  webrtc: (() => WebRtcFigures | Promise<WebRtcFigures>) | null = null;

  /**
   * With workers: the other workers' `localSnapshot()`s, added to this one's by `snapshot()`
   * (`store` is then this worker's own shard).
   */
  #others: (() => Promise<StatsSnapshot[]>) | null;

  /** Set by the composition root when HTTP(S) listeners run. */
  http: (() => HttpConnectionStats) | null = null;

  /** Set by the composition root once the database is open and migrated. */
  schema: string | null = null;

  /** Set by the composition root in private mode. */
  accounting: (() => AccountingStats) | null = null;

  /** Set by the composition root when the connectable check is on. */
  connectable: (() => ConnectableStats) | null = null;

  /** Event-loop delay: a libuv timer every 10 ms (nothing on the request path); windows of 10 s. */
  #loop: ELDHistogram = monitorEventLoopDelay({ resolution: 10 });
  #loopWindow: { p50: number; p99: number; max: number } | null = null;
  #ticks = 0;

  /**
   * With workers: this worker's index, whether the workers share one store (Redis, or the
   * shared-memory swarms), and whether they share the WebTorrent swarms too (Redis).
   */
  #worker: { index: number; shared: boolean; sharedRtc?: boolean } | null;

  constructor(
    counters: TrackerCounters,
    store: SwarmStore,
    others?: () => Promise<StatsSnapshot[]>,
    worker?: { index: number; shared: boolean; sharedRtc?: boolean },
  ) {
    this.#counters = counters;
    this.#store = store;
    this.#others = others ?? null;
    this.#worker = worker ?? null;
  }

  start(): void {
    this.#loop.enable();
    this.#sample();
    this.#timer = setInterval(() => this.#sample(), 1000);
    this.#timer.unref();
  }

  stop(): void {
    this.#loop.disable();
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  #values(): number[] {
    const c = this.#counters;
    return [c.announces.http, c.announces.udp, c.announces.ws, c.scrapes.http, c.scrapes.udp, c.scrapes.ws];
  }

  #sample(): void {
    this.#window.sample(Date.now(), this.#values());
    if (++this.#ticks % 10 === 0) {
      this.#loopWindow = this.#loopFigures();
      this.#loop.reset();
    }
  }

  /** The histogram's figures in seconds (nanoseconds recorded; zeros before the first sample). */
  #loopFigures(): { p50: number; p99: number; max: number } {
    const h = this.#loop;
    if (h.count === 0) return { p50: 0, p99: 0, max: 0 };
    return { p50: h.percentile(50) / 1e9, p99: h.percentile(99) / 1e9, max: h.max / 1e9 };
  }

  /** The whole tracker's figures (every worker's, added up). */
  async snapshot(): Promise<StatsSnapshot> {
    return (await this.snapshots()).sum;
  }

  /**
   * The whole tracker's figures and, with workers, each worker's own (`/metrics` gives counters
   * per worker: a restarted worker's start from zero, which Prometheus reads as that series'
   * reset, where a sum going down would look like every worker's).
   */
  async snapshots(): Promise<{ sum: StatsSnapshot; each: StatsSnapshot[] | null }> {
    const own = await this.localSnapshot();
    if (this.#others === null) return { sum: own, each: null };
    const each = [own, ...(await this.#others())].sort((a, b) => (a.worker ?? 0) - (b.worker ?? 0));
    return {
      sum: {
        ...sumSnapshots(each, this.#worker?.shared, this.#worker?.sharedRtc ?? this.#worker?.shared),
        workers: each.length,
      },
      each,
    };
  }

  /** This process's own figures. */
  async localSnapshot(): Promise<StatsSnapshot> {
    const c = this.#counters;
    const swarm = await this.#store.stats();
    const r = this.#window.rates();
    const round = (x: number | undefined) => Math.round((x ?? 0) * 10) / 10;
    const rtc = await this.webrtc?.();
    const http = this.http?.();
    return {
      ...(http ? { http } : {}),
      ...(rtc
        ? {
            webrtc: rtc,
            total: {
              torrents: swarm.torrents + rtc.swarms,
              peers: swarm.peers + rtc.peers,
              seeders: swarm.seeders + rtc.seeders,
              leechers: swarm.leechers + rtc.leechers,
            },
          }
        : {}),
      version: VERSION,
      schema: this.schema,
      uptimeSeconds: Math.floor((Date.now() - this.#started) / 1000),
      swarm,
      announces: { ...c.announces },
      scrapes: { ...c.scrapes },
      failures: { ...c.failures },
      perSecond: {
        announces: { http: round(r[0]), udp: round(r[1]), ws: round(r[2]) },
        scrapes: { http: round(r[3]), udp: round(r[4]), ws: round(r[5]) },
      },
      udp: { connects: c.udpConnects, dropped: c.udpDropped },
      process: processStats(),
      eventLoopDelay: this.#loopWindow ?? this.#loopFigures(),
      ...(this.accounting ? { accounting: this.accounting() } : {}),
      ...(this.connectable ? { connectable: this.connectable() } : {}),
      fullScrapes: c.fullScrapes,
      expiredPeers: c.expiredPeers,
      internalErrors: c.internalErrors,
      refusedFull: c.refusedFull,
      connectionsRefused: c.connectionsRefused,
      ...(this.#worker !== null ? { worker: this.#worker.index } : {}),
    };
  }
}

function processStats(): ProcessStats {
  const m = process.memoryUsage();
  const cpu = process.cpuUsage();
  return {
    residentBytes: m.rss,
    heapUsedBytes: m.heapUsed,
    heapTotalBytes: m.heapTotal,
    externalBytes: m.external,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
  };
}

/**
 * Prometheus text exposition (format 0.0.4) of a snapshot. With `each` (workers: every worker's
 * own figures), counters are one series per worker, labelled `worker`: Prometheus handles a
 * restarted worker's counters starting again from zero per series, where the sum going down
 * would read as a reset of the whole tracker's count. Gauges stay whole-tracker figures.
 */
export function renderPrometheus(s: StatsSnapshot, each: StatsSnapshot[] | null = null): string {
  const lines: string[] = [];
  const metric = (name: string, type: 'gauge' | 'counter', help: string, rows: [string, number][]) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of rows) lines.push(`${name}${labels} ${value}`);
  };
  /** A counter: the rows `rowsOf` reads from a snapshot, the whole tracker's or each worker's. */
  const counter = (name: string, help: string, rowsOf: (x: StatsSnapshot) => [string, number][]) =>
    metric(
      name,
      'counter',
      help,
      each === null
        ? rowsOf(s)
        : each.flatMap((w) => rowsOf(w).map(([l, v]): [string, number] => [withWorker(l, w.worker ?? 0), v])),
    );
  const byProto = (o: { http: number; udp: number; ws: number }): [string, number][] => [
    ['{protocol="http"}', o.http],
    ['{protocol="udp"}', o.udp],
    ['{protocol="ws"}', o.ws],
  ];
  // build_info style: the figures are labels, the value is always 1.
  metric('herald_build_info', 'gauge', 'Herald version, database schema and Node version (value 1).', [
    [
      `{version="${promLabel(s.version)}",schema="${promLabel(s.schema ?? '')}",node="${promLabel(process.version)}"}`,
      1,
    ],
  ]);
  metric('herald_torrents', 'gauge', 'Swarms with at least one peer.', [['', s.swarm.torrents]]);
  metric('herald_peers', 'gauge', 'Peers held, by kind.', [
    ['{kind="seeder"}', s.swarm.seeders],
    ['{kind="leecher"}', s.swarm.leechers],
  ]);
  metric('herald_peers_by_family', 'gauge', 'Peers held, by address family.', [
    ['{family="ipv4"}', s.swarm.peers4],
    ['{family="ipv6"}', s.swarm.peers6],
  ]);
  if (s.webrtc)
    metric('herald_webrtc_peers', 'gauge', 'WebTorrent peers held, by kind.', [
      ['{kind="seeder"}', s.webrtc.seeders],
      ['{kind="leecher"}', s.webrtc.leechers],
    ]);
  if (s.http) {
    metric('herald_http_connections', 'gauge', 'HTTP(S) connections on the tracker path.', [
      ['', s.http.connections],
    ]);
    metric(
      'herald_http_paused_connections',
      'gauge',
      'HTTP(S) connections not read until their answers are sent.',
      [['', s.http.paused]],
    );
    metric(
      'herald_http_parked_connections',
      'gauge',
      'HTTP connections waiting for an answer from another worker or an asynchronous store.',
      [['', s.http.parked]],
    );
    metric('herald_http_unsent_bytes', 'gauge', 'Answer bytes waiting for slow HTTP(S) readers.', [
      ['', s.http.unsentBytes],
    ]);
  }
  counter('herald_announces_total', 'Announces answered, by protocol.', (x) => byProto(x.announces));
  counter('herald_scrapes_total', 'Scrapes answered, by protocol.', (x) => byProto(x.scrapes));
  counter('herald_failures_total', 'Requests refused with a failure reason.', (x) => byProto(x.failures));
  metric('herald_announces_per_second', 'gauge', 'Announce rate over 10 s.', byProto(s.perSecond.announces));
  metric('herald_scrapes_per_second', 'gauge', 'Scrape rate over 10 s.', byProto(s.perSecond.scrapes));
  /** A counter without labels. */
  const total = (name: string, help: string, read: (x: StatsSnapshot) => number) =>
    counter(name, help, (x) => [['', read(x)]]);
  total('herald_udp_connects_total', 'UDP connect requests answered.', (x) => x.udp.connects);
  total('herald_udp_dropped_total', 'UDP packets dropped without a reply.', (x) => x.udp.dropped);
  total('herald_full_scrapes_total', 'Full scrapes served.', (x) => x.fullScrapes);
  total('herald_expired_peers_total', 'Peers removed by expiry.', (x) => x.expiredPeers);
  total('herald_internal_errors_total', 'Internal errors (logged).', (x) => x.internalErrors);
  total(
    'herald_refused_full_total',
    'Announces refused: max_peers or max_torrents reached.',
    (x) => x.refusedFull,
  );
  total(
    'herald_connections_refused_total',
    'HTTP(S) and WebSocket connections closed at once: max_connections_per_ip.',
    (x) => x.connectionsRefused,
  );
  /** A gauge without labels. */
  const one = (name: string, help: string, value: number) => metric(name, 'gauge', help, [['', value]]);
  one('herald_uptime_seconds', 'Seconds since start.', s.uptimeSeconds);
  const p = s.process;
  one('herald_process_resident_memory_bytes', 'Resident memory (RSS).', p.residentBytes);
  metric('herald_process_heap_bytes', 'gauge', 'JavaScript heap, used and allocated.', [
    ['{kind="used"}', p.heapUsedBytes],
    ['{kind="total"}', p.heapTotalBytes],
  ]);
  one('herald_process_external_memory_bytes', 'Array buffers and addons.', p.externalBytes);
  total('herald_process_cpu_seconds_total', 'CPU time, user and system.', (x) => x.process.cpuSeconds);
  metric('herald_event_loop_delay_seconds', 'gauge', 'Event-loop delay over the last 10 s.', [
    ['{quantile="0.5"}', s.eventLoopDelay.p50],
    ['{quantile="0.99"}', s.eventLoopDelay.p99],
    ['{quantile="1"}', s.eventLoopDelay.max],
  ]);
  const a = s.accounting;
  if (a) {
    one('herald_accounting_flush_age_seconds', 'Since the database held every credit.', a.flushAgeSeconds);
    total(
      'herald_accounting_flushes_total',
      'Accounting flushes written.',
      (x) => x.accounting?.flushes ?? 0,
    );
    total(
      'herald_accounting_flush_errors_total',
      'Accounting writes that failed.',
      (x) => x.accounting?.flushErrors ?? 0,
    );
    total(
      'herald_accounting_flush_seconds_total',
      'Time spent writing accounting flushes that committed (wall clock).',
      (x) => x.accounting?.flushSeconds ?? 0,
    );
    total(
      'herald_accounting_rows_written_total',
      'Member x torrent rows written by accounting flushes.',
      (x) => x.accounting?.rowsWritten ?? 0,
    );
    total(
      'herald_accounting_revoked_total',
      'Peers taken out of the swarms (their baselines forgotten) when their member lost access.',
      (x) => x.accounting?.revoked ?? 0,
    );
  }
  const cc = s.connectable;
  if (cc) {
    counter('herald_connectable_checks_total', 'Connectable checks finished, by result.', (x) => [
      ['{result="connectable"}', x.connectable?.connectable ?? 0],
      ['{result="unconnectable"}', x.connectable?.unconnectable ?? 0],
    ]);
    total(
      'herald_connectable_timeouts_total',
      'Connectable checks with no answer in time (counted as unconnectable too).',
      (x) => x.connectable?.timeouts ?? 0,
    );
    counter('herald_connectable_skipped_total', 'Endpoints not checked, by reason.', (x) => [
      ['{reason="queue_full"}', x.connectable?.skippedQueueFull ?? 0],
      ['{reason="address"}', x.connectable?.skippedAddress ?? 0],
    ]);
    one('herald_connectable_active', 'Connectable checks (sockets) open now.', cc.active);
    one('herald_connectable_queued', 'Endpoints waiting for a connectable check.', cc.queued);
  }
  return `${lines.join('\n')}\n`;
}

/** Labels (`{a="b"}` or none) with `worker="i"` added. */
function withWorker(labels: string, worker: number): string {
  return labels === '' ? `{worker="${worker}"}` : `${labels.slice(0, -1)},worker="${worker}"}`;
}

/** A Prometheus label value: backslash, double quote and newline escaped. */
function promLabel(v: string): string {
  return v.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`));
}
