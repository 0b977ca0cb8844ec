import type { PeerAddress } from '../../core/address.ts';
import { httpResponse } from '../../protocol/http/response.ts';
import {
  ACT_CLOSE,
  ACT_HANDOFF,
  ACT_KEEP,
  ACT_PARK,
  BATCH,
  type HttpBatchAddon,
  IN_FRESH,
  IN_RELAYED,
  IN_SHORT_KEEP,
  IN_SLOT,
  META,
  type RelayCounts,
} from './batch.ts';
import { MAX_UNSENT, type RawHost, type ResponseSink, Stop } from './raw-path.ts';

/** Output arena per listener: every answer of one batch is packed here. */
const OUT_SIZE = 1 << 20;
const EMPTY = Buffer.alloc(0);
/** The answer to a connection over max_connections_per_ip (its request is already read). */
const TOO_MANY = httpResponse(503, Buffer.from('too many connections from your address\n', 'latin1'), {
  keepAlive: false,
});
/** A relayed request the owner cannot answer on the fast path (never expected: see `#decideRelayed`). */
const RELAY_UNSERVED = httpResponse(503, Buffer.from('service unavailable\n', 'latin1'), {
  keepAlive: false,
});

// The head `httpResponse` writes for a 200, split around its Content-Length value, so that an
// answer goes into the arena without an intermediate Buffer or string.
const SAMPLE = httpResponse(200, Buffer.alloc(0), { keepAlive: true }).toString('latin1');
const LENGTH_AT = SAMPLE.indexOf('Content-Length: ') + 'Content-Length: '.length;
const HEAD_PREFIX = Buffer.from(SAMPLE.slice(0, LENGTH_AT), 'latin1');
const CLOSE_LINE = Buffer.from('Connection: close\r\n', 'latin1');
const GZIP_LINE = Buffer.from('Content-Encoding: gzip\r\n', 'latin1');
/** The largest head: prefix, ten digits, CRLF, both optional lines, the blank line. */
const MAX_HEAD_BYTES = HEAD_PREFIX.length + 10 + 2 + CLOSE_LINE.length + GZIP_LINE.length + 2;

/**
 * Packs the responses of one batch entry into the shared arena. An entry whose responses do not
 * fit (a large full scrape late in a busy batch) keeps them in `overflow`, and the connection is
 * moved to a Node socket that writes them.
 */
export class ArenaSink implements ResponseSink {
  readonly arena: Buffer;
  start = 0;
  pos = 0;
  overflow: Buffer[] | null = null;
  /** Bytes in `overflow`. */
  #overflowBytes = 0;

  constructor(arena: Buffer) {
    this.arena = arena;
  }

  begin(pos: number): void {
    this.start = pos;
    this.pos = pos;
    this.overflow = null;
    this.#overflowBytes = 0;
  }

  /** This entry's answers exceed MAX_UNSENT (the client may not be reading: see `Stop.full`). */
  get full(): boolean {
    return this.pos - this.start + this.#overflowBytes > MAX_UNSENT;
  }

  answer(body: Buffer, keepAlive: boolean, gzip: boolean, more: boolean): void {
    const a = this.arena;
    if (this.overflow !== null || this.pos + MAX_HEAD_BYTES + body.length > a.length) {
      this.send(
        httpResponse(200, body, { keepAlive, extraHeaders: gzip ? GZIP_LINE.toString('latin1') : undefined }),
        more,
      );
      return;
    }
    let p = this.pos + HEAD_PREFIX.copy(a, this.pos);
    // Content-Length digits, most significant first.
    let n = body.length;
    let digits = 1;
    for (let x = n; x >= 10; x = Math.floor(x / 10)) digits++;
    for (let i = p + digits - 1; i >= p; i--) {
      a[i] = 48 + (n % 10);
      n = Math.floor(n / 10);
    }
    p += digits;
    a[p++] = 13;
    a[p++] = 10;
    if (!keepAlive) p += CLOSE_LINE.copy(a, p);
    if (gzip) p += GZIP_LINE.copy(a, p);
    a[p++] = 13;
    a[p++] = 10;
    this.pos = p + body.copy(a, p);
  }

  send(response: Buffer, _more: boolean): void {
    if (this.overflow === null && this.pos + response.length <= this.arena.length) {
      response.copy(this.arena, this.pos);
      this.pos += response.length;
    } else {
      this.overflow ??= [];
      this.overflow.push(response);
      this.#overflowBytes += response.length;
    }
  }
}

/**
 * A connection parked in the addon while its answer is a promise (a swarm another worker owns, an
 * asynchronous store): the addon reads nothing more from it until `complete`.
 */
interface Parked {
  /** The connection's descriptor; for a relayed request, its link's. */
  readonly fd: number;
  /** A relayed request (another worker's client): its relay id and link generation (meta [32, 44)). */
  readonly relay: Uint8Array | null;
  readonly peer: PeerAddress;
  readonly trusted: boolean;
  /** Whether the request being answered keeps the connection open. */
  readonly keepAlive: boolean;
  /** Bytes read after that request and not yet consumed (pipelined requests): ours, not a view. */
  readonly rest: Buffer;
  readonly answer: Promise<Buffer>;
  /** The answer's body, once settled. */
  body: Buffer | null;
}

/**
 * One plain-HTTP listener served by the batched addon (DESIGN.md "Where Node's own I/O is the
 * ceiling"). The addon accepts and reads connections itself and calls `#onBatch` once per batch
 * of connections with bytes; each is answered by the frontend's raw path straight into the output
 * arena, and the addon writes, then keeps or closes the connection.
 *
 * An answer that is a promise (a swarm another worker owns, an asynchronous store) parks its
 * connection in the addon (PARK: the answers before it are written, nothing more is read); the
 * bytes of that read not yet consumed wait here (`Parked.rest`). Answers that settle in one turn
 * of the event loop are completed together (`#completeSettled`: one call into the addon), each
 * followed by the answers of its pipelined requests; the connection is then read again, or parks
 * again on its next asynchronous answer.
 *
 * Anything else the raw path does not finish (a hand-over to node:http, a WebSocket upgrade, a
 * partial head, responses too large for the arena, a short write) moves the connection to a Node
 * socket (`RawHost.adopt`), where it continues exactly as on a `node:net` listener.
 */
export class BatchedListener {
  readonly host: string;
  #addon: HttpBatchAddon;
  #handle: object;
  #raw: RawHost;
  #im: Uint8Array;
  #imView: DataView;
  #in: Buffer;
  #om: Uint8Array;
  #omView: DataView;
  #sink: ArenaSink;
  /** Completions: their meta entries (as out meta, plus the descriptor at 16) and arena. */
  #cm: Uint8Array;
  #cmView: DataView;
  #csink: ArenaSink;
  /**
   * ctl[0] is 1 while the addon is acting on a batch (`complete` would be refused); ctl[4, 8): how
   * many completion entries `complete` acts on.
   */
  #ctl: Uint8Array;
  #ctlView: DataView;
  #closed = false;
  #peers: (PeerAddress | undefined)[] = [];
  /**
   * Connections the addon holds that count against max_connections_per_ip, by descriptor: set
   * when a fresh connection is admitted, cleared when JavaScript closes it, when the addon reports
   * it gone (an empty entry, a failed write, the idle sweep) or when it moves to a Node socket
   * (which then holds the slot).
   */
  #held: (PeerAddress | undefined)[] = [];
  /** Parked connections by descriptor (cleared when completed, swept, closed or moved to Node). */
  #parked: (Parked | undefined)[] = [];
  /** Relayed requests (another worker's clients) whose answer is a promise. */
  #relayParked = new Set<Parked>();
  /** Parked connections whose answer has settled, to complete in one call. */
  #settled: Parked[] = [];
  #completing = false;
  /** The connection of each completion entry (scratch, by entry). */
  #completed: Parked[] = [];

  /**
   * `outSize`: bytes of each output arena (tests make it larger than the kernel's send buffer);
   * `reusePort`: SO_REUSEPORT (every worker process binds the same address).
   */
  constructor(
    addon: HttpBatchAddon,
    raw: RawHost,
    host: string,
    port: number,
    opts: { outSize?: number; reusePort?: boolean } = {},
  ) {
    this.host = host;
    this.#addon = addon;
    this.#raw = raw;
    this.#handle = addon.open(host.includes(':') ? 6 : 4, host, port, opts.reusePort === true);
    const outSize = opts.outSize ?? OUT_SIZE;
    const inMeta = new ArrayBuffer(BATCH * META);
    const inData = new ArrayBuffer(BATCH * IN_SLOT);
    const outMeta = new ArrayBuffer(BATCH * META);
    const outData = new ArrayBuffer(outSize);
    const cMeta = new ArrayBuffer(BATCH * META);
    const cData = new ArrayBuffer(outSize);
    const ctl = new ArrayBuffer(8);
    this.#im = new Uint8Array(inMeta);
    this.#imView = new DataView(inMeta);
    this.#in = Buffer.from(inData);
    this.#om = new Uint8Array(outMeta);
    this.#omView = new DataView(outMeta);
    this.#sink = new ArenaSink(Buffer.from(outData));
    this.#cm = new Uint8Array(cMeta);
    this.#cmView = new DataView(cMeta);
    this.#csink = new ArenaSink(Buffer.from(cData));
    this.#ctl = new Uint8Array(ctl);
    this.#ctlView = new DataView(ctl);
    try {
      addon.start(
        this.#handle,
        inMeta,
        inData,
        outMeta,
        outData,
        cMeta,
        cData,
        ctl,
        (n) => this.#onBatch(n),
        (n) => this.#onShort(n),
      );
    } catch (err) {
      addon.close(this.#handle);
      throw err;
    }
  }

  get port(): number {
    return this.#addon.port(this.#handle);
  }

  /** Connections the addon holds: waiting for their next request, or parked. */
  get waiting(): number {
    return this.counts[0];
  }

  /** Connections parked while their answer is a promise. */
  get parked(): number {
    return this.counts[1];
  }

  /** Connections held, of which parked, of which on the relay; then the relay's counters. */
  get counts(): RelayCounts {
    return this.#closed ? [0, 0, 0, 0, 0, 0, 0] : this.#addon.count(this.#handle);
  }

  /**
   * Relays this listener's kept-alive announces for another worker's swarms to it in C, and
   * serves theirs (`HttpBatchAddon.relay`; `herald serve --workers N`, the sharded memory store).
   */
  relay(clusterId: string, index: number, count: number, secret: Buffer, busy: Buffer): void {
    const copy = (b: Buffer) => b.buffer.slice(b.byteOffset, b.byteOffset + b.length) as ArrayBuffer;
    this.#addon.relay(this.#handle, clusterId, index, count, copy(secret), copy(busy));
  }

  sweep(idleMs: number): void {
    if (this.#closed) return;
    for (const fd of this.#addon.sweep(this.#handle, idleMs)) this.#gone(fd);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#addon.close(this.#handle);
    for (let fd = 0; fd < this.#held.length; fd++) this.#drop(fd);
    this.#parked = [];
    this.#relayParked.clear();
    this.#settled = [];
  }

  /** Counts a fresh connection; false when its address is at max_connections_per_ip. */
  #admit(fd: number, peer: PeerAddress): boolean {
    const limit = this.#raw.connectionLimit;
    if (limit === null) return true;
    this.#drop(fd); // a descriptor number is reused only after its connection closed
    if (!limit.acquire(peer)) return false;
    this.#held[fd] = peer;
    return true;
  }

  /** The connection on `fd` is closed: its slot is free. */
  #drop(fd: number): void {
    const peer = this.#held[fd];
    if (peer === undefined) return;
    this.#held[fd] = undefined;
    this.#raw.connectionLimit?.release(peer);
  }

  /** The addon closed the connection on `fd` (swept, or a write failed): whatever waited is moot. */
  #gone(fd: number): void {
    this.#drop(fd);
    this.#parked[fd] = undefined;
  }

  /** The connection on `fd` moves to a Node socket: whether it holds a slot (the socket's now). */
  #take(fd: number): boolean {
    const counted = this.#held[fd] !== undefined;
    this.#held[fd] = undefined;
    this.#parked[fd] = undefined;
    return counted;
  }

  /**
   * The peer of entry `mo` (copied out of the meta buffer, which the next batch reuses). The last
   * one per descriptor is kept and reused while the address matches: a kept-alive connection (and
   * every connection from one host) then allocates nothing. PeerAddress values are never mutated.
   */
  #peer(fd: number, mo: number): PeerAddress {
    const im = this.#im;
    const family = im[mo + 8] === 6 ? 6 : 4;
    const len = family === 6 ? 16 : 4;
    const cached = this.#peers[fd];
    if (cached !== undefined && cached.family === family) {
      const b = cached.bytes;
      let k = 0;
      while (k < len && b[k] === im[mo + 12 + k]) k++;
      if (k === len) return cached;
    }
    const peer: PeerAddress = { family, bytes: im.slice(mo + 12, mo + 12 + len) };
    this.#peers[fd] = peer;
    return peer;
  }

  #onBatch(n: number): void {
    const raw = this.#raw;
    const sink = this.#sink;
    const iv = this.#imView;
    const ov = this.#omView;
    const om = this.#om;
    const im = this.#im;
    let pos = 0;
    for (let i = 0; i < n; i++) {
      const mo = i * META;
      const fd = iv.getInt32(mo, true);
      const len = iv.getUint32(mo + 4, true);
      const peer = this.#peer(fd, mo);
      const kind = im[mo + 9];
      const fresh = kind === IN_FRESH;
      sink.begin(pos);
      let action = ACT_CLOSE;
      try {
        if (kind === IN_RELAYED) {
          // Another worker's client (fd is the link): answered here as if accepted here.
          const start = i * IN_SLOT;
          const trusted = raw.isTrusted(peer);
          const stop = raw.serve(this.#in, start, start + len, peer, trusted, sink);
          action = this.#decideRelayed(mo, peer, trusted, stop, sink);
        } else if (kind > IN_RELAYED) {
          // A relayed answer the kernel did not take in full: a Node socket writes the rest.
          const start = i * IN_SLOT;
          this.#shortWrite(
            fd,
            peer,
            this.#in.subarray(start, start + len),
            kind === IN_SHORT_KEEP ? ACT_KEEP : ACT_CLOSE,
          );
          action = ACT_HANDOFF;
        }
        // No bytes: accepted before its first request (counted, then it waits), or ended while
        // waiting (CLOSE). A fresh connection over max_connections_per_ip gets a 503 (CLOSE).
        else if (len === 0) action = fresh && this.#admit(fd, peer) ? ACT_KEEP : ACT_CLOSE;
        else if (fresh && !this.#admit(fd, peer)) sink.send(TOO_MANY, false);
        else {
          const start = i * IN_SLOT;
          const trusted = raw.isTrusted(peer);
          const stop = raw.serve(this.#in, start, start + len, peer, trusted, sink);
          const age = iv.getUint32(mo + 28, true);
          action = this.#decide(fd, peer, trusted, stop, raw.served.at, this.#in, start + len, sink, age);
        }
      } catch (err) {
        raw.internalError(err);
        sink.pos = sink.start; // the entry is closed, unanswered
      }
      if (action === ACT_CLOSE && kind !== IN_RELAYED) this.#drop(fd);
      ov.setUint32(mo + 4, sink.start, true);
      ov.setUint32(mo + 8, sink.pos - sink.start, true);
      om[mo] = action; // last: the addon closes entries a failed callback left without one
      pos = sink.pos;
    }
  }

  /**
   * What the addon does with a connection once the raw path stopped (`stop`) at `buf[at]` (the
   * bytes read end at `end`; an asynchronous answer is in `raw.served`), its answers in `sink`:
   * KEEP, CLOSE, PARK (the connection waits, parked, for its answer), or HANDOFF (the connection
   * has moved to a Node socket).
   */
  #decide(
    fd: number,
    peer: PeerAddress,
    trusted: boolean,
    stop: Stop,
    at: number,
    buf: Buffer,
    end: number,
    sink: ArenaSink,
    age: number,
  ): number {
    const raw = this.#raw;
    const s = raw.served;
    // Every byte read is answered: the addon writes the answers and reads this connection again
    // only once the kernel has taken them all (a short write moves it to a Node socket).
    if (stop === Stop.full && at === end) stop = Stop.drained;
    if (sink.overflow === null) {
      if (stop === Stop.drained) return ACT_KEEP;
      if (stop === Stop.close || stop === Stop.error) return ACT_CLOSE;
      if (stop === Stop.async) {
        // The batch's input slots are reused: what follows is copied (a completion's is its own).
        const rest =
          at === end ? EMPTY : buf === this.#in ? Buffer.from(buf.subarray(at, end)) : buf.subarray(at, end);
        this.#park(fd, peer, trusted, s.keepAlive, rest, s.answer!);
        return ACT_PARK;
      }
    }
    const written: Buffer[] = [Buffer.from(sink.arena.subarray(sink.start, sink.pos))];
    if (sink.overflow !== null) written.push(...sink.overflow);
    sink.pos = sink.start; // nothing for the addon to write
    const rest = at < end ? Buffer.from(buf.subarray(at, end)) : EMPTY;
    const answer = stop === Stop.async ? s.answer : null;
    // From here on the descriptor belongs to a Node socket, whatever happens next.
    try {
      raw.adopt(fd, peer, trusted, age, written, stop, rest, answer, s.keepAlive, this.#take(fd));
    } catch (err) {
      raw.internalError(err);
    }
    return ACT_HANDOFF;
  }

  /**
   * The action for another worker's relayed request (entry `mo`; the addon sends the answer back
   * on the link, never to a descriptor here). The addon relays only one complete `GET /announce`
   * a read, so the raw path answers it, parks it on a promise, or closes on a malformed head;
   * anything that would need a Node socket (never expected) gets a 503 and the connection closes.
   */
  #decideRelayed(mo: number, peer: PeerAddress, trusted: boolean, stop: Stop, sink: ArenaSink): number {
    const s = this.#raw.served;
    if (sink.overflow === null) {
      if (stop === Stop.drained || stop === Stop.full) return ACT_KEEP;
      if (stop === Stop.close || stop === Stop.error) return ACT_CLOSE;
      if (stop === Stop.async) {
        const relay = this.#im.slice(mo + 32, mo + 44);
        const fd = this.#imView.getInt32(mo, true);
        const p: Parked = {
          fd,
          relay,
          peer,
          trusted,
          keepAlive: s.keepAlive,
          rest: EMPTY,
          answer: s.answer!,
          body: null,
        };
        this.#relayParked.add(p);
        this.#wait(p);
        return ACT_PARK;
      }
    }
    sink.begin(sink.start);
    sink.send(RELAY_UNSERVED, false);
    return ACT_CLOSE;
  }

  /** The connection waits (parked in the addon) for `answer`. */
  #park(
    fd: number,
    peer: PeerAddress,
    trusted: boolean,
    keepAlive: boolean,
    rest: Buffer,
    answer: Promise<Buffer>,
  ): void {
    const p: Parked = { fd, relay: null, peer, trusted, keepAlive, rest, answer, body: null };
    this.#parked[fd] = p;
    this.#wait(p);
  }

  #wait(p: Parked): void {
    p.answer.then(
      (body) => this.#settle(p, body),
      (err) => this.#settle(p, this.#raw.internalError(err)),
    );
  }

  /** Whether `p` still waits for its answer (not closed, swept or moved to Node meanwhile). */
  #waiting(p: Parked): boolean {
    return p.relay === null ? this.#parked[p.fd] === p : this.#relayParked.has(p);
  }

  /**
   * A parked connection's answer is ready. Completions are gathered until the microtasks of this
   * turn have run (every reply of one read from another worker settles in them), then made in
   * one call into the addon.
   */
  #settle(p: Parked, body: Buffer): void {
    if (!this.#waiting(p)) return; // closed or moved to a Node socket meanwhile
    p.body = body;
    this.#settled.push(p);
    if (this.#completing) return;
    this.#completing = true;
    process.nextTick(() => this.#completeSettled());
  }

  #completeSettled(): void {
    this.#completing = false;
    if (this.#closed) return;
    if (this.#ctl[0] !== 0) {
      // The addon is acting on a batch (these settled in its callback's microtasks): its PARK
      // entries must be acted on first. After this turn's I/O, then.
      this.#completing = true;
      setImmediate(() => this.#completeSettled());
      return;
    }
    const list = this.#settled;
    this.#settled = [];
    for (let i = 0; i < list.length; i += BATCH) this.#complete(list, i, Math.min(list.length, i + BATCH));
  }

  /** Completes `list[from, to)` (at most BATCH) in one call into the addon. */
  #complete(list: Parked[], from: number, to: number): void {
    const raw = this.#raw;
    const sink = this.#csink;
    const cv = this.#cmView;
    const cm = this.#cm;
    let pos = 0;
    let n = 0;
    for (let i = from; i < to; i++) {
      const p = list[i];
      const fd = p.fd;
      if (!this.#waiting(p)) continue; // swept or closed since it settled
      const mo = n * META;
      sink.begin(pos);
      let action = ACT_CLOSE;
      cm[mo + 2] = p.relay === null ? 0 : 1;
      try {
        if (p.relay !== null) {
          // Another worker's client: the answer goes back on the link (relay id, link generation).
          this.#relayParked.delete(p);
          cm.set(p.relay, mo + 32);
          sink.answer(p.body!, p.keepAlive, false, false);
          action = p.keepAlive ? ACT_KEEP : ACT_CLOSE;
        } else {
          this.#parked[fd] = undefined;
          const rest = p.rest;
          sink.answer(p.body!, p.keepAlive, false, p.keepAlive && rest.length > 0);
          // Then the pipelined requests that followed, in order (they may park it again). After a
          // last answer (Connection: close) they are not read, as on the synchronous path.
          let stop: Stop = p.keepAlive ? Stop.drained : Stop.close;
          let at = rest.length;
          if (p.keepAlive && rest.length > 0) {
            stop = raw.serve(rest, 0, rest.length, p.peer, p.trusted, sink);
            at = raw.served.at;
          }
          action = this.#decide(fd, p.peer, p.trusted, stop, at, rest, rest.length, sink, 0);
        }
      } catch (err) {
        raw.internalError(err);
        sink.pos = sink.start; // closed, unanswered
      }
      if (action === ACT_CLOSE && p.relay === null) this.#drop(fd);
      cv.setUint32(mo + 16, fd, true);
      cv.setUint32(mo + 4, sink.start, true);
      cv.setUint32(mo + 8, sink.pos - sink.start, true);
      cm[mo] = action;
      this.#completed[n] = p;
      pos = sink.pos;
      n++;
    }
    if (n === 0) return;
    this.#ctlView.setUint32(4, n, true);
    const reported = this.#addon.complete(this.#handle);
    if (reported === -1) {
      // Refused (cannot happen: ctl[0] and #closed were checked): the connections are lost.
      raw.internalError(new Error('http_batch: complete() refused'));
      return;
    }
    if (reported === 0) return;
    for (let k = 0; k < n; k++) {
      const mo = k * META;
      const r = cm[mo + 1];
      if (r === 0) continue;
      const fd = cv.getInt32(mo + 16, true);
      if (r === 1) {
        const off = cv.getUint32(mo + 4, true);
        const written = cv.getUint32(mo + 12, true);
        const bytes = sink.arena.subarray(off + written, off + cv.getUint32(mo + 8, true));
        this.#shortWrite(fd, this.#completed[k].peer, bytes, cm[mo]);
      } else this.#gone(fd); // the write failed (closed), or it was not parked any more
    }
  }

  /**
   * A response the kernel did not take in full: the connection moves to a Node socket, which
   * writes the rest (`bytes`), then acts as `action` said (a parked one waits for its answer).
   */
  #shortWrite(fd: number, peer: PeerAddress, bytes: Uint8Array, action: number): void {
    const p = action === ACT_PARK ? this.#parked[fd] : undefined;
    const stop = p !== undefined ? Stop.async : action === ACT_KEEP ? Stop.drained : Stop.close;
    try {
      this.#raw.adopt(
        fd,
        peer,
        this.#raw.isTrusted(peer),
        0,
        [Buffer.from(bytes)],
        stop,
        p?.rest ?? EMPTY,
        p?.answer ?? null,
        p?.keepAlive ?? false,
        this.#take(fd),
      );
    } catch (err) {
      this.#raw.internalError(err);
    }
  }

  /** Responses the kernel did not take in full: their connections move to Node sockets. */
  #onShort(n: number): void {
    const iv = this.#imView;
    const ov = this.#omView;
    const om = this.#om;
    const arena = this.#sink.arena;
    for (let i = 0; i < n; i++) {
      const mo = i * META;
      if (om[mo + 1] === 2) this.#gone(iv.getInt32(mo, true)); // the write failed: closed
      if (om[mo + 1] !== 1) continue;
      const fd = iv.getInt32(mo, true);
      const off = ov.getUint32(mo + 4, true);
      const len = ov.getUint32(mo + 8, true);
      const written = ov.getUint32(mo + 12, true);
      this.#shortWrite(fd, this.#peer(fd, mo), arena.subarray(off + written, off + len), om[mo]);
    }
  }
}
