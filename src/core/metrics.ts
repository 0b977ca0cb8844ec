/**
 * Request counters, plain numbers bumped on the hot path (no labels, no maps). `/stats` and
 * `/metrics` read them; per-second rates are computed by `RateWindow` from periodic samples.
 */
export const Protocols = ['http', 'udp', 'ws'] as const;
export type Protocol = (typeof Protocols)[number];

export class TrackerCounters {
  announces = { http: 0, udp: 0, ws: 0 };
  scrapes = { http: 0, udp: 0, ws: 0 };
  /** Requests answered with a `TrackerError`, per protocol. */
  failures = { http: 0, udp: 0, ws: 0 };
  udpConnects = 0;
  /** UDP packets dropped without a reply (malformed, bad connection id, amplification guard). */
  udpDropped = 0;
  fullScrapes = 0;
  internalErrors = 0;
  expiredPeers = 0;
  /** Announces refused because the swarm store was full (max_peers, max_torrents). */
  refusedFull = 0;
  /** HTTP(S) and WebSocket connections closed at once: their address had max_connections_per_ip. */
  connectionsRefused = 0;
}

/** Keeps the last samples of a set of counters and reports the rate over the window. */
export class RateWindow {
  #samples: { t: number; values: number[] }[] = [];
  #windowMs: number;
  constructor(windowMs = 10_000) {
    this.#windowMs = windowMs;
  }
  /** Record current totals at time `t` (ms). */
  sample(t: number, values: number[]): void {
    this.#samples.push({ t, values });
    while (this.#samples.length > 2 && t - this.#samples[0].t > this.#windowMs) this.#samples.shift();
  }
  /** Per-second rate of each value over the window, or zeros before two samples exist. */
  rates(): number[] {
    const n = this.#samples.length;
    if (n < 2) return this.#samples[0]?.values.map(() => 0) ?? [];
    const a = this.#samples[0];
    const b = this.#samples[n - 1];
    const dt = (b.t - a.t) / 1000;
    return b.values.map((v, i) => (dt > 0 ? (v - a.values[i]) / dt : 0));
  }
}
