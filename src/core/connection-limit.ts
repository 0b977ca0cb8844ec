import type { Server, Socket } from 'node:net';
import { type PeerAddress, parseIp } from './address.ts';
import type { TrustedProxies } from './forwarded.ts';
import type { TrackerCounters } from './metrics.ts';

/** The counted address of a Node socket (see `ConnectionLimit.admit`). */
const COUNTED = Symbol('herald.counted');
type CountedSocket = Socket & { [COUNTED]?: PeerAddress };

/**
 * The connections of every worker of `herald serve --workers N` per address, in memory they all
 * map (src/cluster/connection-table.ts). An address is `family` and two 32-bit halves (IPv4: 0
 * and the address; IPv6: its /64). `acquire` answers 1 (counted), 0 (the address holds `max`
 * over every worker) or -1 (not counted: the table is full).
 */
export interface HostConnections {
  acquire(family: 4 | 6, hi: number, lo: number, max: number): number;
  release(family: 4 | 6, hi: number, lo: number): void;
}

/**
 * `max_connections_per_ip`: how many HTTP(S) and WebSocket connections one address holds open,
 * over every listener together (one instance per tracker, shared by the HTTP frontend, the
 * batched addon's connections, the WebSocket and the portal listeners).
 *
 * Threat model: one host opening connections without end (idle ones, slow heads, pipelines that
 * never read) would hold a descriptor, buffers and a timer slot each until the process runs out.
 * Over the cap a new connection is closed at once, before any work is done for it. An IPv6 host
 * usually has a whole /64 to pick addresses from, so a /64 counts as one address. Behind a
 * reverse proxy every connection comes from the proxy: trusted proxies are not counted (the
 * proxy is where such limits belong then).
 *
 * With workers (`host`), the cap holds over every worker: each connection is also counted in the
 * host's table, whose answer decides; this process's own count stays for what it releases. A full
 * host table (a flood of addresses) falls back to this process's count, so it refuses nobody.
 */
export class ConnectionLimit {
  readonly max: number;
  #counters: TrackerCounters;
  #proxies: TrustedProxies | null;
  /** Open connections by address key (IPv4: the address as a number; IPv6: its /64 as text). */
  #open = new Map<number | string, number>();
  #host: HostConnections | null;
  /** Of `#open`, the connections the host's table did not count (it was full), by address key. */
  #uncounted = new Map<number | string, number>();
  /** Releases a Node socket's slot when it closes (one function for all: no closure each). */
  readonly #onClose: (this: CountedSocket) => void;

  constructor(
    max: number,
    counters: TrackerCounters,
    proxies: TrustedProxies | null = null,
    host: HostConnections | null = null,
  ) {
    this.max = max;
    this.#host = host;
    this.#counters = counters;
    this.#proxies = proxies;
    const limit = this;
    this.#onClose = function (this: CountedSocket) {
      const peer = this[COUNTED];
      if (peer === undefined) return;
      this[COUNTED] = undefined;
      limit.release(peer);
    };
  }

  /** Counts a new connection from `peer`; false (nothing counted) when its address is at the cap. */
  acquire(peer: PeerAddress): boolean {
    if (this.#proxies?.trusts(peer)) return true;
    const key = keyOf(peer);
    const n = this.#open.get(key) ?? 0;
    const host = this.#host === null ? -1 : this.#host.acquire(peer.family, hiOf(peer), loOf(peer), this.max);
    if (host === 0 || (host < 0 && n >= this.max)) {
      this.#counters.connectionsRefused++;
      return false;
    }
    if (host < 0 && this.#host !== null) this.#uncounted.set(key, (this.#uncounted.get(key) ?? 0) + 1);
    this.#open.set(key, n + 1);
    return true;
  }

  /** A counted connection from `peer` has closed. */
  release(peer: PeerAddress): void {
    if (this.#proxies?.trusts(peer)) return;
    const key = keyOf(peer);
    const n = this.#open.get(key);
    if (n === undefined) return;
    if (n <= 1) this.#open.delete(key);
    else this.#open.set(key, n - 1);
    if (this.#host === null) return;
    const u = this.#uncounted.get(key);
    if (u === undefined) this.#host.release(peer.family, hiOf(peer), loOf(peer));
    else if (u <= 1) this.#uncounted.delete(key);
    else this.#uncounted.set(key, u - 1);
  }

  /** Open connections of this process counted for the address of `peer`. */
  count(peer: PeerAddress): number {
    return this.#open.get(keyOf(peer)) ?? 0;
  }

  /** Counts a Node socket (false when refused); its slot is released when it closes. */
  admit(socket: Socket, peer: PeerAddress): boolean {
    if (!this.acquire(peer)) return false;
    this.adopt(socket, peer);
    return true;
  }

  /** A socket for a connection already counted (one the batched addon held): released on close. */
  adopt(socket: Socket, peer: PeerAddress): void {
    (socket as CountedSocket)[COUNTED] = peer;
    socket.on('close', this.#onClose);
  }

  /**
   * Counts every connection `server` accepts (before any other listener of its sees it: a TLS
   * server's handshake, node:http's parser); one over the cap is destroyed at once.
   */
  guard(server: Server): void {
    server.prependListener('connection', (socket: Socket) => {
      const peer = parseIp(socket.remoteAddress ?? '');
      if (peer === null || !this.admit(socket, peer)) socket.destroy();
    });
  }
}

/** The counting key: an IPv4 address as a number, an IPv6 address's first 64 bits as text. */
function keyOf(peer: PeerAddress): number | string {
  const b = peer.bytes;
  if (peer.family === 4) return ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0;
  return String.fromCharCode(b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]);
}

/** The host table's key: IPv4, 0 and the address; IPv6, the /64's two halves. */
function hiOf(peer: PeerAddress): number {
  const b = peer.bytes;
  return peer.family === 4 ? 0 : ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0;
}

function loOf(peer: PeerAddress): number {
  const b = peer.bytes;
  const o = peer.family === 4 ? 0 : 4;
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}
