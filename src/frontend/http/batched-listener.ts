import type { PeerAddress } from '../../core/address.ts';
import { httpResponse } from '../../protocol/http/response.ts';
import { ACT_CLOSE, ACT_HANDOFF, ACT_KEEP, BATCH, type HttpBatchAddon, IN_SLOT, META } from './batch.ts';
import { MAX_UNSENT, type RawHost, type ResponseSink, Stop } from './raw-path.ts';

/** Output arena per listener: every answer of one batch is packed here. */
const OUT_SIZE = 1 << 20;
const EMPTY = Buffer.alloc(0);
/** The answer to a connection over max_connections_per_ip (its request is already read). */
const TOO_MANY = httpResponse(503, Buffer.from('too many connections from your address\n', 'latin1'), {
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
 * One plain-HTTP listener served by the batched addon (DESIGN.md "Where Node's own I/O is the
 * ceiling"). The addon accepts and reads connections itself and calls `#onBatch` once per batch
 * of connections with bytes; each is answered by the frontend's raw path straight into the output
 * arena, and the addon writes, then keeps or closes the connection. Anything the raw path does
 * not finish synchronously (a hand-over to node:http, a WebSocket upgrade, an asynchronous
 * answer, a partial head, responses too large for the arena, a short write) moves the connection
 * to a Node socket (`RawHost.adopt`), where it continues exactly as on a `node:net` listener.
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
  #closed = false;
  #peers: (PeerAddress | undefined)[] = [];
  /**
   * Connections the addon holds that count against max_connections_per_ip, by descriptor: set
   * when a fresh connection is admitted, cleared when JavaScript closes it, when the addon reports
   * it gone (an empty entry, a failed write, the idle sweep) or when it moves to a Node socket
   * (which then holds the slot).
   */
  #held: (PeerAddress | undefined)[] = [];

  /** `outSize`: bytes of the output arena (tests make it larger than the kernel's send buffer). */
  constructor(addon: HttpBatchAddon, raw: RawHost, host: string, port: number, outSize = OUT_SIZE) {
    this.host = host;
    this.#addon = addon;
    this.#raw = raw;
    this.#handle = addon.open(host.includes(':') ? 6 : 4, host, port);
    const inMeta = new ArrayBuffer(BATCH * META);
    const inData = new ArrayBuffer(BATCH * IN_SLOT);
    const outMeta = new ArrayBuffer(BATCH * META);
    const outData = new ArrayBuffer(outSize);
    this.#im = new Uint8Array(inMeta);
    this.#imView = new DataView(inMeta);
    this.#in = Buffer.from(inData);
    this.#om = new Uint8Array(outMeta);
    this.#omView = new DataView(outMeta);
    this.#sink = new ArenaSink(Buffer.from(outData));
    try {
      addon.start(
        this.#handle,
        inMeta,
        inData,
        outMeta,
        outData,
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

  /** Connections waiting in the addon for their next request. */
  get waiting(): number {
    return this.#closed ? 0 : this.#addon.count(this.#handle);
  }

  sweep(idleMs: number): void {
    if (this.#closed) return;
    for (const fd of this.#addon.sweep(this.#handle, idleMs)) this.#drop(fd);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#addon.close(this.#handle);
    for (let fd = 0; fd < this.#held.length; fd++) this.#drop(fd);
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

  /** The connection on `fd` moves to a Node socket: whether it holds a slot (the socket's now). */
  #take(fd: number): boolean {
    const counted = this.#held[fd] !== undefined;
    this.#held[fd] = undefined;
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
      const fresh = im[mo + 9] === 1;
      sink.begin(pos);
      let action = ACT_CLOSE;
      try {
        // No bytes: accepted before its first request (counted, then it waits), or ended while
        // waiting (CLOSE). A fresh connection over max_connections_per_ip gets a 503 (CLOSE).
        if (len === 0) action = fresh && this.#admit(fd, peer) ? ACT_KEEP : ACT_CLOSE;
        else if (fresh && !this.#admit(fd, peer)) sink.send(TOO_MANY, false);
        else action = this.#serve(fd, peer, mo, i * IN_SLOT, i * IN_SLOT + len);
      } catch (err) {
        raw.internalError(err);
        sink.pos = sink.start; // the entry is closed, unanswered
      }
      if (action === ACT_CLOSE) this.#drop(fd);
      ov.setUint32(mo + 4, sink.start, true);
      ov.setUint32(mo + 8, sink.pos - sink.start, true);
      om[mo] = action; // last: the addon closes entries a failed callback left without one
      pos = sink.pos;
    }
  }

  /**
   * Answers the requests of one entry (`this.#in[start, end)`) into the arena; returns the action.
   * Anything the addon cannot finish moves the connection to a Node socket (HANDOFF).
   */
  #serve(fd: number, peer: PeerAddress, mo: number, start: number, end: number): number {
    const raw = this.#raw;
    const sink = this.#sink;
    const trusted = raw.isTrusted(peer);
    let stop = raw.serve(this.#in, start, end, peer, trusted, sink);
    // Every byte read is answered: the addon writes the answers and reads this connection again
    // only once the kernel has taken them all (a short write moves it to a Node socket).
    if (stop === Stop.full && raw.served.at === end) stop = Stop.drained;
    if (sink.overflow === null && stop === Stop.drained) return ACT_KEEP;
    if (sink.overflow === null && (stop === Stop.close || stop === Stop.error)) return ACT_CLOSE;
    const s = raw.served;
    const written: Buffer[] = [Buffer.from(sink.arena.subarray(sink.start, sink.pos))];
    if (sink.overflow !== null) written.push(...sink.overflow);
    sink.pos = sink.start; // nothing for the addon to write
    const rest = s.at < end ? Buffer.from(this.#in.subarray(s.at, end)) : EMPTY;
    // From here on the descriptor belongs to a Node socket, whatever happens next.
    const age = this.#imView.getUint32(mo + 28, true);
    try {
      raw.adopt(fd, peer, trusted, age, written, stop, rest, s.answer, s.keepAlive, this.#take(fd));
    } catch (err) {
      raw.internalError(err);
    }
    return ACT_HANDOFF;
  }

  /** Responses the kernel did not take in full: their connections move to Node sockets. */
  #onShort(n: number): void {
    const iv = this.#imView;
    const ov = this.#omView;
    const om = this.#om;
    const arena = this.#sink.arena;
    for (let i = 0; i < n; i++) {
      const mo = i * META;
      if (om[mo + 1] === 2) this.#drop(iv.getInt32(mo, true)); // the write failed: closed
      if (om[mo + 1] !== 1) continue;
      const fd = iv.getInt32(mo, true);
      const off = ov.getUint32(mo + 4, true);
      const len = ov.getUint32(mo + 8, true);
      const written = ov.getUint32(mo + 12, true);
      const peer = this.#peer(fd, mo);
      try {
        this.#raw.adopt(
          fd,
          peer,
          this.#raw.isTrusted(peer),
          0,
          [Buffer.from(arena.subarray(off + written, off + len))],
          om[mo] === ACT_KEEP ? Stop.drained : Stop.close,
          EMPTY,
          null,
          false,
          this.#take(fd),
        );
      } catch (err) {
        this.#raw.internalError(err);
      }
    }
  }
}
