import { randomBytes } from 'node:crypto';
import { Errors, TrackerError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { shardOf } from '../core/shard.ts';
import type { ScrapeEntry } from '../core/types.ts';
import {
  type RtcConnection,
  type RtcCounts,
  type RtcOutput,
  type RtcScrapeRow,
  type RtcShards,
  type WebRtcSwarms,
  WsSwarmErrors,
} from '../frontend/ws/webrtc-swarms.ts';
import type { WsAnnounce } from '../protocol/websocket/codec.ts';
import type { ClusterBus, RequestHandler } from './bus.ts';
import {
  bodyEnd,
  MessageType,
  readScrape,
  readScrapeAllOk,
  readScrapeOk,
  writeScrape,
  writeScrapeAllOk,
  writeScrapeOk,
  writeText,
} from './messages.ts';
import {
  type RtcSocketRef,
  readRtcAnnounce,
  readRtcAnnounceOk,
  readRtcAnswer,
  readRtcDeliver,
  readRtcRef,
  writeRtcAnnounce,
  writeRtcAnnounceOk,
  writeRtcAnswer,
  writeRtcDeliver,
  writeRtcDeliverText,
  writeRtcRef,
} from './rtc-messages.ts';

/**
 * Announces one socket may have forwarded and not yet answered: past it, the next gets the
 * retryable "tracker busy" at once. A browser sends one per torrent per interval (at most
 * `maxSwarmsPerSocket`, 100 by default); a socket that floods cannot fill the link to an owner for
 * everyone else (the bus sheds load past MAX_BACKLOG too).
 */
export const MAX_IN_FLIGHT = 256;

/**
 * WebTorrent across the workers of `herald serve --workers N` (issue #13): one swarm per torrent,
 * whichever worker each browser's WebSocket reached.
 *
 * WebRTC swarms are sharded like the TCP/UDP ones, by `shardOf(infoHash, N)`: the owner worker
 * keeps the swarm in its frontend's `WebRtcSwarms`, and that one object runs every rule as with
 * one worker (offer targets, seeders offer to leechers only, peer ids bound to their socket,
 * answers only from a peer that was sent the offer, counts, completions, expiry). A socket held by
 * another worker stands in the owner's swarms as a `RemoteSocket`: a connection whose messages
 * are sent over the cluster bus to the worker that holds the socket, which writes them out. So:
 *
 * - an announce for another worker's swarm is forwarded to the owner (`rtcAnnounce`), which
 *   answers with the counts; the offers it relays go to each target's worker (`rtcDeliver`, the
 *   finished text message), or straight to the socket when the owner holds it;
 * - an answer is forwarded to the owner (`rtcAnswer`), which checks it against the offers it
 *   relayed to that very socket and delivers it to the offering socket's worker, or drops it;
 * - a socket that closes tells every owner it announced to (`rtcClosed`): its peers leave there;
 * - a restarted worker says so (`rtcHello`, with its new epoch): the owners drop the peers of its
 *   previous process's sockets, which are gone.
 * Messages about one socket go from its worker to one owner over one link, in order: a close is
 * never handled before the announces sent ahead of it.
 *
 * The per-socket limit on torrents holds across workers: each socket's worker keeps what each
 * owner last reported it holds there (and counts announces still in flight), and passes the
 * total held elsewhere with each announce. A count is refreshed by the next reply from that
 * owner: until then a swarm that expired on its owner still counts, and an announce in flight
 * counts as a swarm joined, so near the limit a socket may be refused a torrent that one worker
 * would have taken. It never holds more than the limit, unless an owner took an announce whose
 * reply came too late (after the bus's timeout, the announce is no longer counted).
 */
export class WebRtcShard implements RtcShards {
  readonly #bus: ClusterBus;
  readonly #index: number;
  readonly #count: number;
  readonly #logger: Logger;
  /** This process's epoch (RtcSocketRef.epoch): random, never 0. */
  readonly #epoch: number;
  #local: WebRtcSwarms | null = null;
  #nextSocket = 1;
  /** This worker's sockets that announced to another worker's swarms: by id, and by connection. */
  readonly #sockets = new Map<number, LocalSocket>();
  readonly #byConn = new Map<RtcConnection, LocalSocket>();
  /** Per other worker: its current epoch, and its sockets that hold peers in this shard. */
  readonly #remote: { epoch: number; byId: Map<number, RemoteSocket> }[];

  constructor(opts: { bus: ClusterBus; logger: Logger }) {
    this.#bus = opts.bus;
    this.#index = opts.bus.index;
    this.#count = opts.bus.count;
    this.#logger = opts.logger;
    this.#epoch = randomBytes(4).readUInt32BE(0) || 1;
    this.#remote = Array.from({ length: this.#count }, () => ({ epoch: 0, byId: new Map() }));
    opts.bus.route(
      [
        MessageType.rtcAnnounce,
        MessageType.rtcAnswer,
        MessageType.rtcDeliver,
        MessageType.rtcClosed,
        MessageType.rtcHello,
        MessageType.rtcScrape,
        MessageType.rtcScrapeAll,
      ],
      this.#serve,
    );
  }

  attach(local: WebRtcSwarms): void {
    this.#local = local;
  }

  /** Tells the other workers this process started: their peers of its previous one are dropped. */
  start(): void {
    const ref = { worker: this.#index, epoch: this.#epoch, socket: 0 };
    for (let to = 0; to < this.#count; to++)
      if (to !== this.#index) this.#bus.notify(to, (w) => writeRtcRef(w, MessageType.rtcHello, ref));
  }

  owns(infoHash: Uint8Array): boolean {
    return shardOf(infoHash, this.#count) === this.#index;
  }

  announce(
    conn: RtcConnection,
    msg: WsAnnounce,
    numWant: number,
    now: number,
  ): Promise<RtcCounts | TrackerError> {
    const owner = shardOf(msg.infoHash, this.#count);
    const s = this.#socketOf(conn);
    if (s.inFlight >= MAX_IN_FLIGHT) return Promise.resolve(Errors.shardUnavailable);
    // Everything the socket may hold outside the owner's shard, announces in flight included.
    let elsewhere = conn.joined.length / 2 + s.inFlight;
    for (let i = 0; i < this.#count; i++) if (i !== owner) elsewhere += s.joins[i];
    s.sent[owner] = 1;
    s.inFlight++;
    this.#total(s);
    return this.#bus
      .request(
        owner,
        (w, id) => writeRtcAnnounce(w, id, s.ref, msg, numWant, elsewhere, now),
        (body, at, type) => {
          if (type === MessageType.rtcAnnounceOk) return readRtcAnnounceOk(body, at);
          if (type === MessageType.rtcRefused) return refusalOf(textOf(body, at));
          if (type === MessageType.failure) return Errors.internal;
          throw new Error(`cluster: rtc announce answered with ${type}`);
        },
      )
      .then(
        (r) => {
          s.inFlight--;
          if (r instanceof TrackerError) {
            this.#total(s);
            return r;
          }
          s.joins[owner] = r.joined;
          this.#total(s);
          return { complete: r.complete, incomplete: r.incomplete };
        },
        () => {
          s.inFlight--;
          this.#total(s);
          return Errors.shardUnavailable;
        },
      );
  }

  answer(conn: RtcConnection, msg: WsAnnounce, now: number): void {
    const owner = shardOf(msg.infoHash, this.#count);
    const s = this.#byConn.get(conn);
    // A socket that never announced to the owner has no peer there to answer from: dropped here
    // (and counted as dropped, as the owner would).
    if (s === undefined || s.sent[owner] === 0) {
      this.#local?.answer(NOBODY, msg, now);
      return;
    }
    this.#bus.notify(owner, (w) => writeRtcAnswer(w, s.ref, msg, now));
  }

  closed(conn: RtcConnection): void {
    const s = this.#byConn.get(conn);
    if (s === undefined) return;
    this.#byConn.delete(conn);
    this.#sockets.delete(s.ref.socket);
    for (let to = 0; to < this.#count; to++)
      if (s.sent[to] === 1) this.#bus.notify(to, (w) => writeRtcRef(w, MessageType.rtcClosed, s.ref));
  }

  scrape(infoHashes: readonly Uint8Array[]): ScrapeEntry[] | Promise<ScrapeEntry[]> {
    const local = this.#swarms();
    const owners = infoHashes.map((h) => shardOf(h, this.#count));
    if (owners.every((o) => o === this.#index)) return local.scrape(infoHashes);
    const out: ScrapeEntry[] = new Array(infoHashes.length);
    const waits: Promise<void>[] = [];
    for (let owner = 0; owner < this.#count; owner++) {
      const at: number[] = [];
      for (let i = 0; i < owners.length; i++) if (owners[i] === owner) at.push(i);
      if (at.length === 0) continue;
      const hashes = at.map((i) => infoHashes[i]);
      const fill = (entries: ScrapeEntry[]) => {
        for (let k = 0; k < at.length; k++) out[at[k]] = entries[k];
      };
      if (owner === this.#index) fill(local.scrape(hashes));
      else
        waits.push(
          this.#bus
            .request(
              owner,
              (w, id) => writeScrape(w, id, hashes, 0, MessageType.rtcScrape),
              (body, at, type) => {
                if (type === MessageType.rtcScrapeOk) return readScrapeOk(body, at);
                throw new Error(`cluster: rtc scrape answered with ${type}`);
              },
            )
            .then(fill),
        );
    }
    return Promise.all(waits).then(() => out, unavailable);
  }

  async scrapeAll(): Promise<RtcScrapeRow[]> {
    const rows: RtcScrapeRow[] = this.#swarms().scrapeAll();
    const parts = await Promise.all(
      this.#others().map((to) =>
        this.#bus.request(
          to,
          (w, id) => writeText(w, MessageType.rtcScrapeAll, id, ''),
          (body, at, type) => {
            if (type === MessageType.rtcScrapeAllOk) return readScrapeAllOk(body, at);
            throw new Error(`cluster: rtc full scrape answered with ${type}`);
          },
        ),
      ),
    ).catch(unavailable);
    for (const part of parts) for (const [infoHash, e] of part) rows.push({ infoHash, ...e });
    return rows;
  }

  /** After expiry: the other workers' sockets left with no peer here are forgotten. */
  swept(): void {
    for (const r of this.#remote) for (const [id, p] of r.byId) if (p.joined.length === 0) r.byId.delete(id);
  }

  /** Sockets of other workers that hold peers here (for tests and figures). */
  remoteSockets(): number {
    let n = 0;
    for (const r of this.#remote) n += r.byId.size;
    return n;
  }

  #swarms(): WebRtcSwarms {
    if (this.#local === null) throw new Error('WebRtcShard: no local swarms attached');
    return this.#local;
  }

  #others(): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.#count; i++) if (i !== this.#index) out.push(i);
    return out;
  }

  #socketOf(conn: RtcConnection): LocalSocket {
    let s = this.#byConn.get(conn);
    if (s === undefined) {
      const socket = this.#nextSocket;
      this.#nextSocket = (socket + 1) >>> 0 || 1;
      s = {
        ref: { worker: this.#index, epoch: this.#epoch, socket },
        conn,
        joins: new Uint16Array(this.#count),
        sent: new Uint8Array(this.#count),
        inFlight: 0,
      };
      this.#byConn.set(conn, s);
      this.#sockets.set(socket, s);
    }
    return s;
  }

  /** The swarms `s` holds on other workers, as its own swarms count them against the limit. */
  #total(s: LocalSocket): void {
    let n = s.inFlight;
    for (let i = 0; i < this.#count; i++) n += s.joins[i];
    s.conn.elsewhere = n;
  }

  /**
   * The stand-in for another worker's socket. A message from a new process of that worker
   * (another epoch) first drops every stand-in of the process before: its sockets are gone.
   */
  #remoteSocket(ref: RtcSocketRef, create: boolean): RemoteSocket | undefined {
    if (ref.worker >= this.#count || ref.worker === this.#index) throw new Error('cluster: bad rtc worker');
    const r = this.#remote[ref.worker];
    if (r.epoch !== ref.epoch) this.#renew(ref.worker, ref.epoch);
    let p = r.byId.get(ref.socket);
    if (p === undefined && create) {
      p = new RemoteSocket(ref, this.#bus);
      r.byId.set(ref.socket, p);
    }
    return p;
  }

  #renew(worker: number, epoch: number): void {
    const r = this.#remote[worker];
    const local = this.#swarms();
    for (const p of r.byId.values()) local.disconnect(p);
    r.byId.clear();
    r.epoch = epoch;
  }

  /** The owner's side, and the delivery of messages to this worker's sockets. */
  readonly #serve: RequestHandler = (type, id, body, at, reply, done) => {
    try {
      const local = this.#swarms();
      switch (type) {
        case MessageType.rtcAnnounce: {
          const a = readRtcAnnounce(body, at);
          const p = this.#remoteSocket(a.from, true)!;
          p.elsewhere = a.elsewhere;
          const r = local.announce(p, a.msg, a.numWant, a.now);
          const joined = p.joined.length / 2;
          if (joined === 0) this.#remote[a.from.worker].byId.delete(a.from.socket);
          if (r instanceof TrackerError) writeText(reply, MessageType.rtcRefused, id, r.code);
          else writeRtcAnnounceOk(reply, id, { complete: r.complete, incomplete: r.incomplete, joined });
          break;
        }
        case MessageType.rtcAnswer: {
          const a = readRtcAnswer(body, at);
          local.answer(this.#remoteSocket(a.from, false) ?? NOBODY, a.msg, a.now);
          return;
        }
        case MessageType.rtcDeliver: {
          const d = readRtcDeliver(body, at);
          if (d.to.epoch !== this.#epoch) return; // for a socket of this worker's previous process
          this.#sockets.get(d.to.socket)?.conn.ws.sendParts([d.bytes], 1);
          return;
        }
        case MessageType.rtcClosed: {
          const ref = readRtcRef(body, at);
          const p = this.#remoteSocket(ref, false);
          if (p !== undefined) {
            local.disconnect(p);
            this.#remote[ref.worker].byId.delete(ref.socket);
          }
          return;
        }
        case MessageType.rtcHello: {
          const ref = readRtcRef(body, at);
          this.#remoteSocket(ref, false);
          return;
        }
        case MessageType.rtcScrape: {
          const { hashes } = readScrape(body, at);
          writeScrapeOk(reply, id, local.scrape(hashes), MessageType.rtcScrapeOk);
          break;
        }
        case MessageType.rtcScrapeAll:
          writeScrapeAllOk(
            reply,
            id,
            local.scrapeAll().map((e) => [e.infoHash, e] as [Uint8Array, ScrapeEntry]),
            MessageType.rtcScrapeAllOk,
          );
          break;
        default:
          throw new Error(`unknown rtc message ${type}`);
      }
    } catch (err) {
      this.#logger.error('cluster: cannot handle a WebRTC message', { err: String(err), type });
      if (id === 0) return; // one-way: nobody waits for a reply
      writeText(reply, MessageType.failure, id, 'internal error');
    }
    done();
  };
}

/** One of this worker's sockets, as the other workers know it. */
interface LocalSocket {
  ref: RtcSocketRef;
  conn: RtcConnection;
  /** Swarms it holds on each worker, as that owner last said. */
  joins: Uint16Array;
  /** 1 for each owner it ever announced to (they are told when it closes). */
  sent: Uint8Array;
  /** Forwarded announces not answered yet. */
  inFlight: number;
}

/** Another worker's socket in this worker's swarms: what is sent to it goes to that worker. */
class RemoteSocket implements RtcConnection, RtcOutput {
  readonly ws: RtcOutput = this;
  readonly joined: string[] = [];
  elsewhere = 0;
  readonly ref: RtcSocketRef;
  readonly #bus: ClusterBus;

  constructor(ref: RtcSocketRef, bus: ClusterBus) {
    this.ref = ref;
    this.#bus = bus;
  }

  send(text: string): void {
    this.#bus.notify(this.ref.worker, (w) => writeRtcDeliverText(w, this.ref, text));
  }

  sendParts(parts: readonly Uint8Array[], n: number): void {
    this.#bus.notify(this.ref.worker, (w) => writeRtcDeliver(w, this.ref, parts, n));
  }
}

/** No socket: an answer from it is dropped (and counted). */
const NOBODY: RtcConnection = { ws: { send() {}, sendParts() {} }, joined: [] };

function textOf(body: Buffer, at: number): string {
  return body.toString('utf8', at, bodyEnd(body, at));
}

/** The refusal an owner named by its code (every one the WebRTC swarms or the service can give). */
function refusalOf(code: string): TrackerError {
  for (const e of Object.values(WsSwarmErrors)) if (e.code === code) return e;
  for (const e of Object.values(Errors)) if (e.code === code) return e;
  return Errors.internal;
}

function unavailable(err: unknown): never {
  throw err instanceof TrackerError ? err : Errors.shardUnavailable;
}
