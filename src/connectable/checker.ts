import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { formatIp } from '../core/address.ts';
import { binaryString } from '../core/bytes.ts';
import type { Clock } from '../core/clock.ts';
import type { Logger } from '../core/log.ts';
import { AnnounceEvent, type AnnounceRequest, type AnnounceResult } from '../core/types.ts';
import { readHandshake, writeHandshake } from '../protocol/peer-wire/handshake.ts';

/**
 * The connectable check (issue #16): is a peer reachable at the endpoint it announced? Herald
 * connects to it over TCP and sends a BitTorrent handshake (BEP 3) for the torrent it announced;
 * the peer is connectable when it answers with a handshake for the same info hash. Anything else
 * (refused, reset, closed, garbage, a handshake for another torrent, nothing within the timeout)
 * is "not connectable".
 *
 * Bounded: at most `concurrency` sockets at once and `queue` endpoints waiting (beyond: skipped
 * and counted, the next announce tries again); one result per endpoint (address and port, the
 * compact record's bytes) for `interval` seconds; never the same endpoint twice at once; at most
 * `maxEndpoints` endpoints remembered (the oldest result is forgotten first).
 *
 * It runs where the swarm's announces arrive (with workers, in the worker that owns the swarm):
 * `ConnectableStore` calls `note` after each accepted announce and filters peer lists.
 */
export interface ConnectableOptions {
  /** Most checks (sockets) at once. */
  concurrency: number;
  /** Most endpoints waiting for a free socket; a new one beyond is skipped (and counted). */
  queue: number;
  /** Milliseconds a check may take, connect and answer together. */
  timeoutMs: number;
  /** Seconds a result is kept before the endpoint is checked again. */
  interval: number;
  /** Check private, loopback and link-local addresses too (tests, LAN trackers). */
  allowPrivate: boolean;
  /** Most endpoints remembered (results and waiting ones). */
  maxEndpoints: number;
  clock: Clock;
  logger: Logger;
  /**
   * A result for a member on a torrent (private mode): called once per result and member ×
   * torrent (again when the endpoint is checked again).
   */
  record?: (r: ConnectableResult) => void;
  /** Herald's peer id in the handshakes (20 bytes); a random `-HD0001-…` one by default. */
  peerId?: Uint8Array;
}

export interface ConnectableResult {
  memberId: number;
  torrentId: number;
  connectable: boolean;
  ip: string;
  port: number;
  /** Clock seconds of the check. */
  at: number;
}

/** What `/stats` and `/metrics` show. */
export interface ConnectableStats {
  /** Checks finished, and of them connectable, not connectable, and timed out (also not connectable). */
  checks: number;
  connectable: number;
  unconnectable: number;
  timeouts: number;
  /** Endpoints not checked: the queue was full, or the address is private/loopback (not allowed). */
  skippedQueueFull: number;
  skippedAddress: number;
  /** Sockets open now, and the most ever open at once (never above `concurrency`). */
  active: number;
  peakActive: number;
  queued: number;
  endpoints: number;
}

const QUEUED = 0;
const CHECKING = 1;
const DONE = 2;
/** A private address, not checked: remembered so that it is counted once per interval. */
const SKIPPED = 3;

interface Entry {
  key: string;
  state: number;
  ip: Uint8Array;
  port: number;
  infoHash: Uint8Array;
  /** The last result (null before the first); it stands while the endpoint is checked again. */
  connectable: boolean | null;
  /** Clock seconds of the result (or of the skip). */
  at: number;
  /** `memberId:torrentId` pairs this result belongs to (recorded, or waiting for the result). */
  who: Set<string> | null;
}

/** The key of an endpoint: its compact record (4- or 16-byte address, 2-byte port) as a binary string. */
export function endpointKey(ip: Uint8Array, port: number): string {
  return binaryString(ip) + String.fromCharCode(port >>> 8, port & 0xff);
}

/**
 * Addresses a tracker on the public Internet should never connect to for a peer: loopback,
 * private (RFC 1918, RFC 4193), carrier-grade NAT, link-local, unspecified, multicast and
 * reserved ranges. A peer announcing one could otherwise make Herald probe its own network.
 */
export function isPrivateAddress(ip: Uint8Array): boolean {
  if (ip.length === 4) {
    const [a, b] = ip;
    return (
      a === 0 ||
      a === 10 ||
      a === 127 ||
      a >= 224 ||
      (a === 100 && b >= 64 && b < 128) ||
      (a === 169 && b === 254) ||
      (a === 172 && b >= 16 && b < 32) ||
      (a === 192 && b === 168) ||
      (a === 192 && b === 0 && ip[2] === 0) ||
      (a === 198 && (b === 18 || b === 19))
    );
  }
  let zeros = 0;
  for (let i = 0; i < 15; i++) if (ip[i] === 0) zeros++;
  if (zeros === 15 && ip[15] <= 1) return true; // :: and ::1
  if ((ip[0] & 0xfe) === 0xfc) return true; // fc00::/7 unique local
  if (ip[0] === 0xfe && (ip[1] & 0xc0) === 0x80) return true; // fe80::/10 link-local
  if (ip[0] === 0xff) return true; // multicast
  // ::ffff:0:0/96 (mapped; frontends make these family 4) and other embeddings of IPv4.
  if (zeros >= 10 && ip[0] === 0 && ip[1] === 0) return true;
  return false;
}

export class ConnectableChecker {
  readonly #o: ConnectableOptions;
  readonly #peerId: Uint8Array;
  /** Every endpoint remembered, oldest result first (an entry moves to the end when it changes). */
  readonly #entries = new Map<string, Entry>();
  readonly #queue: Entry[] = [];
  #queueHead = 0;
  readonly #sockets = new Set<Socket>();
  #closed = false;
  readonly counts = {
    checks: 0,
    connectable: 0,
    unconnectable: 0,
    timeouts: 0,
    skippedQueueFull: 0,
    skippedAddress: 0,
    peakActive: 0,
  };

  constructor(opts: ConnectableOptions) {
    this.#o = opts;
    this.#peerId = opts.peerId ?? Buffer.concat([Buffer.from('-HD0001-'), randomBytes(12)]);
  }

  /**
   * An announce the store accepted: a new endpoint (or one whose result is older than `interval`)
   * is queued for a check. O(1); nothing is awaited. In private mode, `memberId` and `torrentId`
   * say whose announce it is: the endpoint's result is recorded for them.
   */
  note(req: AnnounceRequest, now: number, memberId?: number, torrentId?: number): void {
    const who = memberId === undefined || torrentId === undefined ? null : `${memberId}:${torrentId}`;
    if (req.event === AnnounceEvent.stopped || this.#closed) return;
    const key = endpointKey(req.ip, req.port);
    let e = this.#entries.get(key);
    if (e !== undefined) {
      if (who !== null) this.#attribute(e, who);
      if (e.state === QUEUED || e.state === CHECKING || now - e.at < this.#o.interval) return;
      if (e.state === SKIPPED) {
        e.at = now;
        this.counts.skippedAddress++;
        return;
      }
      // A result too old: checked again, with this announce's torrent.
      e.infoHash = Uint8Array.from(req.infoHash);
      this.#enqueue(e);
      return;
    }
    const priv = !this.#o.allowPrivate && isPrivateAddress(req.ip);
    if (priv) this.counts.skippedAddress++;
    else if (this.#queue.length - this.#queueHead >= this.#o.queue) {
      this.counts.skippedQueueFull++;
      return;
    }
    if (this.#entries.size >= this.#o.maxEndpoints && !this.#evictOldest()) {
      this.counts.skippedQueueFull++;
      return;
    }
    e = {
      key,
      state: priv ? SKIPPED : QUEUED,
      ip: Uint8Array.from(req.ip),
      port: req.port,
      infoHash: Uint8Array.from(req.infoHash),
      connectable: null,
      at: now,
      who: who === null ? null : new Set([who]),
    };
    this.#entries.set(key, e);
    if (!priv) {
      this.#queue.push(e);
      this.#pump();
    }
  }

  /** The endpoint's result: true or false, or null when it has none (not checked yet, or skipped). */
  verdict(ip: Uint8Array, port: number): boolean | null {
    return this.#verdictOf(endpointKey(ip, port));
  }

  #verdictOf(key: string): boolean | null {
    return this.#entries.get(key)?.connectable ?? null;
  }

  /**
   * `connectable_only_for_unconnectable`: when the requester is known not to be connectable, its
   * peer list keeps only peers known to be connectable (it could reach no other: neither side
   * could open the connection). Filters `r` in place (records, and peer ids when present).
   */
  filterPeers(req: AnnounceRequest, r: AnnounceResult): void {
    if (r.peerCount === 0 || this.verdict(req.ip, req.port) !== false) return;
    const size = req.family === 4 ? 6 : 18;
    const peers = r.peers;
    const ids = r.peerIds;
    const known = r.peerIdKnown;
    let kept = 0;
    for (let i = 0; i < r.peerCount; i++) {
      const rec = peers.subarray(i * size, i * size + size);
      if (this.#verdictOf(binaryString(rec)) !== true) continue;
      if (kept !== i) {
        peers.copyWithin(kept * size, i * size, i * size + size);
        if (ids !== null) ids.copyWithin(kept * 20, i * 20, i * 20 + 20);
        if (known !== null) known[kept] = known[i];
      }
      kept++;
    }
    r.peerCount = kept;
  }

  stats(): ConnectableStats {
    return {
      checks: this.counts.checks,
      connectable: this.counts.connectable,
      unconnectable: this.counts.unconnectable,
      timeouts: this.counts.timeouts,
      skippedQueueFull: this.counts.skippedQueueFull,
      skippedAddress: this.counts.skippedAddress,
      active: this.#sockets.size,
      peakActive: this.counts.peakActive,
      queued: this.#queue.length - this.#queueHead,
      endpoints: this.#entries.size,
    };
  }

  /** Ends every check (their endpoints stay without a result) and takes no more. */
  close(): void {
    this.#closed = true;
    this.#queue.length = 0;
    this.#queueHead = 0;
    for (const s of this.#sockets) s.destroy();
    this.#sockets.clear();
  }

  #attribute(e: Entry, who: string): void {
    if (e.who === null) e.who = new Set();
    if (e.who.has(who)) return;
    e.who.add(who);
    if (e.state === DONE) this.#record(e, who);
  }

  #record(e: Entry, who: string): void {
    const record = this.#o.record;
    if (record === undefined || e.connectable === null) return;
    const colon = who.indexOf(':');
    record({
      memberId: Number(who.slice(0, colon)),
      torrentId: Number(who.slice(colon + 1)),
      connectable: e.connectable,
      ip: formatIp(e.ip),
      port: e.port,
      at: e.at,
    });
  }

  /** Queues a known endpoint for a new check (skipped, and counted, when the queue is full). */
  #enqueue(e: Entry): void {
    if (this.#queue.length - this.#queueHead >= this.#o.queue) {
      this.counts.skippedQueueFull++;
      return;
    }
    e.state = QUEUED;
    this.#queue.push(e);
    this.#pump();
  }

  /** Forgets the oldest endpoint that has a result; false when every one is waiting or checking. */
  #evictOldest(): boolean {
    // Oldest first; entries waiting or being checked are at most `queue + concurrency`.
    let looked = 0;
    for (const e of this.#entries.values()) {
      if (e.state === DONE || e.state === SKIPPED) {
        this.#entries.delete(e.key);
        return true;
      }
      if (++looked > this.#o.queue + this.#o.concurrency) break;
    }
    return false;
  }

  #pump(): void {
    while (this.#sockets.size < this.#o.concurrency && this.#queueHead < this.#queue.length) {
      const e = this.#queue[this.#queueHead++];
      if (this.#queueHead === this.#queue.length) {
        this.#queue.length = 0;
        this.#queueHead = 0;
      } else if (this.#queueHead > 1024 && this.#queueHead * 2 > this.#queue.length) {
        this.#queue.splice(0, this.#queueHead);
        this.#queueHead = 0;
      }
      // Forgotten while waiting (evicted): nothing to check for.
      if (this.#entries.get(e.key) !== e) continue;
      this.#check(e);
    }
  }

  #check(e: Entry): void {
    e.state = CHECKING;
    const socket = connect({ host: formatIp(e.ip), port: e.port, family: e.ip.length === 4 ? 4 : 6 });
    this.#sockets.add(socket);
    if (this.#sockets.size > this.counts.peakActive) this.counts.peakActive = this.#sockets.size;
    let got: Buffer = Buffer.alloc(0);
    let finished = false;
    const finish = (connectable: boolean, timedOut: boolean) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      socket.destroy();
      this.#sockets.delete(socket);
      if (this.#closed) return;
      this.counts.checks++;
      if (connectable) this.counts.connectable++;
      else this.counts.unconnectable++;
      if (timedOut) this.counts.timeouts++;
      e.state = DONE;
      e.connectable = connectable;
      e.at = this.#o.clock.now();
      // Newest result last: the oldest is forgotten first when the map is full.
      if (this.#entries.get(e.key) === e) {
        this.#entries.delete(e.key);
        this.#entries.set(e.key, e);
        if (e.who !== null) for (const who of e.who) this.#record(e, who);
      }
      this.#pump();
    };
    const timer = setTimeout(() => finish(false, true), this.#o.timeoutMs);
    socket.setNoDelay(true);
    socket.on('connect', () => socket.write(writeHandshake(e.infoHash, this.#peerId)));
    socket.on('data', (chunk: Buffer) => {
      got = got.length === 0 ? chunk : Buffer.concat([got, chunk]);
      const v = readHandshake(got, e.infoHash);
      if (v !== 'more') finish(v === 'yes', false);
    });
    // Refused, reset, unreachable, or closed before a whole answer: not connectable.
    socket.on('error', () => finish(false, false));
    socket.on('close', () => finish(false, false));
  }
}
