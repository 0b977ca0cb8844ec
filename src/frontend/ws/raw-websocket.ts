import { isUtf8 } from 'node:buffer';
import { createHash } from 'node:crypto';
import type { Duplex } from 'node:stream';

/**
 * A server-side WebSocket (RFC 6455) on the raw connection, for the WebTorrent tracker: text and
 * binary messages, fragmentation, ping/pong, the close handshake, size limits; no extensions
 * (no permessage-deflate: offers are small and compression costs CPU and memory per socket).
 *
 * Why not `ws`: measured in `npm run bench`, a `ws` connection held ~13.8 KB of RSS (the same as
 * bittorrent-tracker's, which uses it), most of it the library's per-socket objects and streams;
 * a plain socket costs ~4 KB. This class is one small object and a few closures per socket.
 *
 * Output is batched per event-loop turn, for every socket at once: a frame is written straight
 * into one staging buffer shared by all sockets (no Buffer per frame), and at the end of the turn
 * (setImmediate, or sooner once `STAGE_CAP` bytes are staged) each socket's frames are copied
 * into one buffer of its own and leave in one write. A relay turn sends one socket several
 * offers, and a write per frame was the largest cost in the profile (docs/benchmarks.md,
 * WebSocket); `cork` gathered them into one writev but still cost a Buffer, a stream entry and
 * a callback per frame (issue #7: 70 → ~25 µs per relayed announce with the offer splicing in
 * protocol/websocket/scan.ts). A close or a pong goes out after the frames staged before it.
 *
 * Input from a hostile client stays bounded (issue #15): a partial frame and a fragmented
 * message are kept as copies in buffers of this socket's own (never as views that would pin the
 * chunks they arrived in), a fragmented message may have at most `MAX_FRAGMENTS` frames whose
 * bytes on the wire, headers included, fit in `maxPayload`, and while more than
 * `READ_PAUSE_BYTES` of output wait for a client that does not read (pongs to a ping flood), the
 * socket is not read either.
 */
export class RawWebSocket {
  static readonly CONNECTING = 0;
  static readonly OPEN = 1;
  static readonly CLOSING = 2;
  static readonly CLOSED = 3;
  /** As `ws` has it, on the prototype (no field per socket). */
  get OPEN(): 1 {
    return 1;
  }
  readyState = 1;
  /** A message (text or binary) of at most `maxPayload` bytes. */
  onMessage: ((data: Buffer, isBinary: boolean) => void) | null = null;
  /** A data message longer than `maxPayload` was announced; the caller answers and closes. */
  onTooBig: (() => void) | null = null;
  #onClose: (() => void) | null = null;
  #moreOnClose: (() => void)[] | null = null;
  /** Set on every chunk received (the frontend's heartbeat clears it to see whether more came). */
  received = false;
  #socket: Duplex;
  #maxPayload: number;
  /** Input not parsed yet (a partial frame): the first `#pendingLen` bytes, a copy of our own. */
  #pending: Buffer | null = null;
  #pendingLen = 0;
  /** The fragmented message being received (`#fragFrames` > 0): its payload so far, copied. */
  #frag: Buffer | null = null;
  #fragLen = 0;
  /** Its frames so far, and their bytes on the wire (headers included). */
  #fragFrames = 0;
  #fragWire = 0;
  #fragBinary = false;
  /** Date.now() when the message being received began (its first chunk), or 0. */
  #partialSince = 0;
  /** Not reading: too much output is waiting for this client (`READ_PAUSE_BYTES`). */
  #readPaused = false;
  /** No message delivered and nothing read until `release()` (`hold()`). */
  #held = false;
  #awaitingDrain = false;
  /** This socket's staged frames: first and last segment (indices into `Staging.segs`), or -1. */
  #head = -1;
  #tail = -1;
  /** Bytes staged for this socket. */
  #staged = 0;

  constructor(socket: Duplex, head: Buffer, maxPayload: number) {
    this.#socket = socket;
    this.#maxPayload = maxPayload;
    socket.on('data', this.#onData);
    socket.on('end', this.#onEnd);
    socket.on('close', this.#onSocketClose);
    socket.on('error', () => {}); // followed by 'close'
    if (head.length > 0) this.#onData(head);
  }

  /** Bytes held for input not yet delivered (a partial frame, a fragmented message). */
  get heldBytes(): number {
    return (this.#pending?.length ?? 0) + (this.#frag?.length ?? 0);
  }

  /**
   * Date.now() when the first bytes of a message that has not arrived whole yet came (a partial
   * frame, or a fragmented message), or 0. A client that trickles a message holds its bytes
   * here: the frontend gives a message a deadline.
   */
  get partialSince(): number {
    return this.#partialSince;
  }

  /** Bytes sent and not yet handed to the kernel (staged this turn, or queued by the stream). */
  get bufferedAmount(): number {
    return this.#socket.writableLength + this.#staged;
  }

  /**
   * Delivers no more messages until `release()`: the frontend waits for a verdict on the last
   * one, and the socket's messages are answered in order. What was read past that message stays
   * in this socket's input buffer (at most one read's worth), and the socket is not read meanwhile,
   * so a client that keeps sending is held back by TCP, not buffered here.
   */
  hold(): void {
    if (this.#held || this.readyState !== RawWebSocket.OPEN) return;
    this.#held = true;
    this.#socket.pause();
  }

  /** Delivers the messages held back by `hold()`, then reads on. */
  release(): void {
    if (!this.#held) return;
    this.#held = false;
    if (this.readyState !== RawWebSocket.OPEN) return;
    const pending = this.#pending;
    if (pending !== null) {
      // The same buffer: nothing in it was delivered (a tail is copied when it is kept).
      this.#consume(pending, this.#pendingLen, null);
      if (this.readyState !== RawWebSocket.OPEN || this.#held) return;
    }
    if (!this.#readPaused) this.#socket.resume();
  }

  /** Called once when the connection is gone (either side, any reason). */
  addCloseListener(fn: () => void): void {
    if (this.readyState === RawWebSocket.CLOSED) fn();
    else if (this.#onClose === null) this.#onClose = fn;
    else {
      if (this.#moreOnClose === null) this.#moreOnClose = [];
      this.#moreOnClose.push(fn);
    }
  }

  /**
   * Sends one text message (one frame, staged until the end of this event-loop turn). Dropped when
   * the socket is closing; a reader that lets more than `MAX_BUFFERED` bytes pile up is cut off.
   */
  send(text: string): void {
    if (!this.#canSend()) return;
    const n = Buffer.byteLength(text);
    const h = headerLength(n);
    const at = this.#stage(h + n);
    const buf = Staging.buf;
    writeHeader(buf, at, 0x1, n);
    buf.write(text, at + h, n);
  }

  /** Sends one text message made of `parts[0..n)` (UTF-8 bytes), like `send` of their text. */
  sendParts(parts: readonly Uint8Array[], n: number): void {
    if (!this.#canSend()) return;
    let len = 0;
    for (let i = 0; i < n; i++) len += parts[i].length;
    const h = headerLength(len);
    let at = this.#stage(h + len);
    const buf = Staging.buf;
    writeHeader(buf, at, 0x1, len);
    at += h;
    for (let i = 0; i < n; i++) {
      buf.set(parts[i], at);
      at += parts[i].length;
    }
  }

  /** Sends a ping (the client's pong, or anything else it sends, sets `received`). */
  ping(): void {
    if (!this.#canSend()) return;
    writeHeader(Staging.buf, this.#stage(2), 0x9, 0);
  }

  /** Starts the close handshake: a close frame, then the TCP half-close. */
  close(code = 1000, reason = ''): void {
    if (this.readyState !== RawWebSocket.OPEN) return;
    this.readyState = RawWebSocket.CLOSING;
    this.#sendClose(code, reason);
    this.#end();
  }

  terminate(): void {
    this.readyState = RawWebSocket.CLOSING;
    this.#dropStaged();
    this.#socket.destroy();
  }

  /**
   * The TCP half-close, once our close frame is out (or the peer went without one). A peer that
   * keeps its side open after that (no FIN: it would hold the connection for good) is cut off.
   */
  #end(): void {
    this.#dropInput();
    this.#socket.end();
    setTimeout(() => this.#socket.destroy(), 1000).unref();
  }

  /** The peer closed its side without a close frame (abnormal closure, 1006): we close ours. */
  #onEnd = (): void => {
    if (this.readyState !== RawWebSocket.OPEN) return;
    this.readyState = RawWebSocket.CLOSING;
    this.#flushNow();
    this.#end();
  };

  #canSend(): boolean {
    if (this.readyState !== RawWebSocket.OPEN) return false;
    if (this.bufferedAmount > MAX_BUFFERED) {
      this.terminate();
      return false;
    }
    return true;
  }

  /** The close frame, after the frames staged before it (written now: `end` follows). */
  #sendClose(code: number, reason: string): void {
    const r = Buffer.from(reason.slice(0, 120), 'utf8').subarray(0, 123);
    const at = this.#stage(4 + r.length);
    const buf = Staging.buf;
    writeHeader(buf, at, 0x8, 2 + r.length);
    buf.writeUInt16BE(code, at + 2);
    buf.set(r, at + 4);
    this.#flushNow();
  }

  /**
   * Reserves `len` bytes for one frame of this socket in the staging buffer and returns their
   * offset in `Staging.buf` (read it after this call: the buffer may grow).
   */
  #stage(len: number): number {
    // A turn's output beyond the cap leaves now: staged memory stays bounded.
    if (Staging.used + len > STAGE_CAP && Staging.used > 0) RawWebSocket.#flushAll();
    const at = Staging.used;
    if (at + len > Staging.buf.length) Staging.grow(at + len);
    Staging.used = at + len;
    const segs = Staging.segs;
    const t = this.#tail;
    if (t >= 0 && segs[3 * t + 1] === at) segs[3 * t + 1] = at + len;
    else {
      const k = Staging.segment(at, at + len);
      if (t >= 0) Staging.segs[3 * t + 2] = k;
      else {
        this.#head = k;
        RawWebSocket.#queue.push(this);
        if (!RawWebSocket.#flushScheduled) {
          RawWebSocket.#flushScheduled = true;
          setImmediate(RawWebSocket.#flushAll);
        }
      }
      this.#tail = k;
    }
    this.#staged += len;
    return at;
  }

  /** Copies this socket's staged frames into `out` at `at`; returns their length. */
  #takeStaged(out: Buffer, at: number): number {
    const segs = Staging.segs;
    const buf = Staging.buf;
    const start = at;
    for (let k = this.#head; k >= 0; k = segs[3 * k + 2])
      at += buf.copy(out, at, segs[3 * k], segs[3 * k + 1]);
    this.#dropStaged();
    return at - start;
  }

  #dropStaged(): void {
    this.#head = -1;
    this.#tail = -1;
    this.#staged = 0;
  }

  /**
   * Writes this socket's staged frames, in one buffer of their own: a write that the kernel does
   * not take at once keeps its buffer until it does, and a slow reader must not hold on to more
   * than its own bytes (the staging buffer is reused at once).
   */
  #flushNow(): void {
    if (this.#head < 0) return;
    const out = Buffer.allocUnsafe(this.#staged);
    this.#takeStaged(out, 0);
    if (this.#socket.writable) this.#socket.write(out);
    if (this.#readPaused) this.#resumeWhenDrained();
  }

  /**
   * Reads again once this client's waiting output is back under `READ_PAUSE_BYTES`. Above it the
   * stream's last write returned false (the cap is over its high-water mark), so 'drain' follows.
   */
  #resumeWhenDrained(): void {
    if (this.#staged > 0 || this.#awaitingDrain) return; // the flush or the drain comes back here
    if (this.#socket.writableLength <= READ_PAUSE_BYTES) {
      this.#readPaused = false;
      if (!this.#held) this.#socket.resume();
    } else {
      this.#awaitingDrain = true;
      this.#socket.once('drain', this.#onDrain);
    }
  }

  #onDrain = (): void => {
    this.#awaitingDrain = false;
    this.#resumeWhenDrained();
  };

  static #queue: RawWebSocket[] = [];
  static #flushScheduled = false;

  /** The end of the turn: one write per socket of everything staged for it, then a clean stage. */
  static #flushAll = (): void => {
    RawWebSocket.#flushScheduled = false;
    const queue = RawWebSocket.#queue;
    for (let q = 0; q < queue.length; q++) {
      const ws = queue[q];
      // Flushed early (closed) or dropped (terminated): nothing staged any more.
      if (ws.#head >= 0) ws.#flushNow();
    }
    queue.length = 0;
    Staging.reset();
  };

  #fail(code: number, reason: string): void {
    this.#dropInput();
    this.close(code, reason);
  }

  #dropInput(): void {
    this.#pending = null;
    this.#pendingLen = 0;
    this.#frag = null;
    this.#fragLen = 0;
    this.#fragFrames = 0;
    this.#fragWire = 0;
    this.#partialSince = 0;
  }

  #onSocketClose = (): void => {
    this.readyState = RawWebSocket.CLOSED;
    this.#dropInput();
    this.#dropStaged();
    const first = this.#onClose;
    const more = this.#moreOnClose;
    this.#onClose = null;
    this.#moreOnClose = null;
    first?.();
    if (more !== null) for (let i = 0; i < more.length; i++) more[i]();
  };

  #onData = (chunk: Buffer): void => {
    this.received = true;
    if (this.readyState !== RawWebSocket.OPEN) return;
    // A partial frame is completed in place: each byte is copied once more at most (a frame that
    // arrives a byte at a time must not cost a copy of all it has so far per byte).
    let buf = chunk;
    let end = chunk.length;
    const pending = this.#pending;
    if (pending !== null) {
      end = this.#pendingLen + chunk.length;
      buf = pending;
      if (end > pending.length) {
        buf = Buffer.allocUnsafeSlow(Math.max(end, Math.min(2 * pending.length, this.#maxPayload + 14)));
        pending.copy(buf, 0, 0, this.#pendingLen);
      }
      chunk.copy(buf, this.#pendingLen);
    }
    this.#consume(buf, end, chunk);
  };

  /**
   * Delivers the complete messages of `buf[0, end)` (the chunk just read, or the input kept
   * before it) and keeps the rest: a partial frame, or what follows a message `hold()` stopped at.
   */
  #consume(buf: Buffer, end: number, chunk: Buffer | null): void {
    const off = this.#parse(buf, end);
    if (this.readyState !== RawWebSocket.OPEN) return;
    if (off === end) {
      this.#pending = null;
      this.#pendingLen = 0;
    } else if (off === 0 && buf !== chunk) {
      // Nothing delivered from it: the same buffer keeps collecting.
      this.#pending = buf;
      this.#pendingLen = end;
    } else {
      // The unread tail, copied (the chunk it came from can be freed, and a message delivered
      // from `buf` keeps its bytes).
      this.#pending = Buffer.allocUnsafeSlow(end - off);
      buf.copy(this.#pending, 0, off, end);
      this.#pendingLen = end - off;
    }
    // A message delivered set it to 0: a partial one left now is a new one.
    if (this.#pending === null && this.#fragFrames === 0) this.#partialSince = 0;
    // Whole messages held back (`hold()`) are not late: `release()` looks again.
    else if (this.#partialSince === 0 && !this.#held) this.#partialSince = Date.now();
    if (!this.#readPaused && this.bufferedAmount > READ_PAUSE_BYTES) {
      this.#readPaused = true;
      this.#socket.pause();
      this.#resumeWhenDrained();
    }
  }

  /** Handles the complete frames in `buf[0, end)`; returns where the first incomplete one starts. */
  #parse(buf: Buffer, end: number): number {
    let off = 0;
    while (off < end && this.readyState === RawWebSocket.OPEN && !this.#held) {
      const avail = end - off;
      if (avail < 2) break;
      const b0 = buf[off];
      const b1 = buf[off + 1];
      const fin = (b0 & 0x80) !== 0;
      const opcode = b0 & 0x0f;
      if ((b0 & 0x70) !== 0) {
        this.#fail(1002, 'reserved bits set (no extension was agreed)');
        return off;
      }
      if ((b1 & 0x80) === 0) {
        this.#fail(1002, 'client frames must be masked');
        return off;
      }
      let len = b1 & 0x7f;
      let h = 2;
      if (len === 126) {
        if (avail < 4) break;
        len = buf.readUInt16BE(off + 2);
        h = 4;
      } else if (len === 127) {
        if (avail < 10) break;
        // Anything needing more than 32 bits is far over every limit.
        if (buf.readUInt32BE(off + 2) !== 0) {
          this.#tooBig();
          return off;
        }
        len = buf.readUInt32BE(off + 6);
        h = 10;
      }
      // Everything is checked from the header, before waiting for (and holding) the payload.
      if (this.#refuse(opcode, fin, h, len)) return off;
      if (avail < h + 4 + len) break;
      const mask = off + h;
      const start = mask + 4;
      const payload = buf.subarray(start, start + len);
      unmask(payload, buf[mask], buf[mask + 1], buf[mask + 2], buf[mask + 3]);
      off = start + len;
      if (opcode === 0x0 || opcode === 0x1 || opcode === 0x2)
        this.#onDataFrame(opcode, fin, payload, h + 4 + len);
      else if (opcode === 0x8) {
        this.#onCloseFrame(payload);
        return off;
      } else if (opcode === 0x9) {
        const at = this.#stage(2 + len);
        writeHeader(Staging.buf, at, 0xa, len);
        Staging.buf.set(payload, at + 2);
      }
      // 0xa: unsolicited pongs are allowed
    }
    return off;
  }

  /**
   * Whether a frame with this header (`h` bytes before the mask, `len` payload bytes) fails the
   * connection, which it then has done: a protocol error, or a data frame over the limits.
   */
  #refuse(opcode: number, fin: boolean, h: number, len: number): boolean {
    if (opcode >= 0x8) {
      if (opcode > 0xa) this.#fail(1002, 'unknown opcode');
      else if (!fin || len > 125) this.#fail(1002, 'invalid control frame');
      else return false;
    } else if (opcode > 0x2) this.#fail(1002, 'unknown opcode');
    else if (opcode === 0x0 && this.#fragFrames === 0) this.#fail(1002, 'continuation without a message');
    else if (opcode !== 0x0 && this.#fragFrames > 0) this.#fail(1002, 'new message inside a fragmented one');
    else if (fin && opcode !== 0x0) {
      // A message in one frame: its payload is what the limit is about.
      if (len <= this.#maxPayload) return false;
      this.#tooBig();
    } else if (this.#fragFrames >= MAX_FRAGMENTS) this.#fail(1008, 'too many fragments');
    else if (this.#fragWire + h + 4 + len <= this.#maxPayload) return false;
    else this.#tooBig();
    return true;
  }

  /** A text, binary or continuation frame that passed `#refuse`; `wire` is its length on the wire. */
  #onDataFrame(opcode: number, fin: boolean, payload: Buffer, wire: number): void {
    if (opcode !== 0x0) {
      if (fin) {
        this.#deliver(payload, opcode === 0x2);
        return;
      }
      this.#fragBinary = opcode === 0x2;
    }
    this.#fragFrames++;
    this.#fragWire += wire;
    const need = this.#fragLen + payload.length;
    if (payload.length > 0) {
      let f = this.#frag;
      if (f === null || need > f.length) {
        // Grows to at most maxPayload: the wire budget in #refuse bounds the payload.
        const bigger = Buffer.allocUnsafeSlow(
          Math.max(need, Math.min(f === null ? 1024 : 2 * f.length, this.#maxPayload)),
        );
        if (f !== null) f.copy(bigger, 0, 0, this.#fragLen);
        this.#frag = f = bigger;
      }
      f.set(payload, this.#fragLen);
    }
    this.#fragLen = need;
    if (!fin) return;
    const whole = this.#frag === null ? Buffer.alloc(0) : this.#frag.subarray(0, need);
    const binary = this.#fragBinary;
    this.#frag = null;
    this.#fragLen = 0;
    this.#fragFrames = 0;
    this.#fragWire = 0;
    this.#deliver(whole, binary);
  }

  /**
   * The peer closes: we answer with its code, or 1000 when it gave none; a malformed close frame
   * (a 1-byte body, a code no endpoint may send, a reason that is not UTF-8) gets 1002 or 1007.
   * Then the TCP close.
   */
  #onCloseFrame(p: Buffer): void {
    let code = p.length >= 2 ? p.readUInt16BE(0) : 1000;
    let reason = '';
    if (p.length === 1 || !isValidCloseCode(code)) {
      code = 1002;
      reason = 'invalid close frame';
    } else if (p.length > 2 && !isUtf8(p.subarray(2))) {
      code = 1007;
      reason = 'close reason is not valid UTF-8';
    }
    this.readyState = RawWebSocket.CLOSING;
    this.#sendClose(code, reason);
    this.#end();
  }

  #deliver(data: Buffer, binary: boolean): void {
    this.#partialSince = 0;
    if (!binary && !isUtf8(data)) {
      this.#fail(1007, 'text frame is not valid UTF-8');
      return;
    }
    this.onMessage?.(data, binary);
  }

  #tooBig(): void {
    this.#dropInput();
    if (this.onTooBig !== null) this.onTooBig();
    else this.#fail(1009, 'message too big');
  }
}

/**
 * The codes a close frame may carry (RFC 6455 §7.4, and 1012-1014 from the IANA registry): 1004,
 * 1005, 1006 and 1015 are reserved and never sent, below 1000 and 1016-2999 are unassigned.
 */
function isValidCloseCode(code: number): boolean {
  return (
    (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) ||
    (code >= 3000 && code <= 4999)
  );
}

/**
 * XORs the client's masking key over a payload in place: 32 bits at a time over the aligned
 * middle (7 → 1 µs for a 3.4 KB announce, measured), bytes at the ends.
 */
const KEY_BYTES = new Uint8Array(4);
const KEY_WORD = new Int32Array(KEY_BYTES.buffer);

function unmask(p: Buffer, m0: number, m1: number, m2: number, m3: number): void {
  const n = p.length;
  const key = [m0, m1, m2, m3];
  let i = 0;
  const pre = Math.min(n, (4 - (p.byteOffset & 3)) & 3);
  for (; i < pre; i++) p[i] ^= key[i & 3];
  const words = (n - i) >>> 2;
  if (words > 0) {
    // The key as it lines up from byte i, read as a native-endian word (any byte order).
    for (let k = 0; k < 4; k++) KEY_BYTES[k] = key[(i + k) & 3];
    const w = KEY_WORD[0];
    const view = new Int32Array(p.buffer, p.byteOffset + i, words);
    for (let k = 0; k < words; k++) view[k] ^= w;
    i += words * 4;
  }
  for (; i < n; i++) p[i] ^= key[i & 3];
}

/** A socket whose unsent output exceeds this is a reader too slow to keep: it is dropped. */
const MAX_BUFFERED = 4 * 1024 * 1024;

/**
 * While more than this is waiting to be sent to a client, its socket is not read: what it sends
 * can only add output (pongs to its pings, answers to its requests), so a client that writes
 * and never reads is held up by TCP flow control instead of growing Herald's buffers. Above the
 * stream's high-water mark (64 KiB), so 'drain' always follows.
 */
export const READ_PAUSE_BYTES = 256 * 1024;

/**
 * Most frames in one fragmented message. Browsers send a message in one frame (Chromium may
 * split a long one where its send pipe splits it: a few pieces of KiBs each), and messages here
 * are at most 64 KiB: a client that needs more frames than this is not a browser. Without a cap,
 * empty continuation frames cost nothing against the size limit and could go on for ever.
 */
export const MAX_FRAGMENTS = 128;

function headerLength(len: number): number {
  return len < 126 ? 2 : len < 65536 ? 4 : 10;
}

/** Server frames are never masked. `buf` has room at `at` for the header and `len` payload bytes. */
function writeHeader(buf: Buffer, at: number, opcode: number, len: number): void {
  buf[at] = 0x80 | opcode;
  if (len < 126) buf[at + 1] = len;
  else if (len < 65536) {
    buf[at + 1] = 126;
    buf[at + 2] = len >>> 8;
    buf[at + 3] = len & 0xff;
  } else {
    buf[at + 1] = 127;
    buf.writeUInt32BE(0, at + 2);
    buf.writeUInt32BE(len, at + 6);
  }
}

/**
 * Most bytes staged before they are written out: a turn with more output (a relay turn under
 * load stages several MB) writes it out in several rounds. Measured: a 16 MiB cap was no faster
 * than 1 MiB, and 256 KiB no slower; the buffer keeps its size up to this between turns.
 */
const STAGE_CAP = 1024 * 1024;

/**
 * The staging buffer of this event-loop turn, shared by every socket (one event loop, one turn at
 * a time), and its segments: (start, end, next segment of the same socket or -1) triples. A
 * socket's consecutive frames extend one segment.
 */
const Staging = {
  buf: Buffer.allocUnsafeSlow(64 * 1024),
  used: 0,
  segs: new Int32Array(3 * 1024),
  count: 0,
  segment(start: number, end: number): number {
    if (3 * (this.count + 1) > this.segs.length) {
      const bigger = new Int32Array(this.segs.length * 2);
      bigger.set(this.segs);
      this.segs = bigger;
    }
    const k = this.count++;
    this.segs[3 * k] = start;
    this.segs[3 * k + 1] = end;
    this.segs[3 * k + 2] = -1;
    return k;
  },
  grow(need: number): void {
    const bigger = Buffer.allocUnsafeSlow(Math.max(need, Math.min(2 * this.buf.length, STAGE_CAP)));
    this.buf.copy(bigger, 0, 0, this.used);
    this.buf = bigger;
  },
  /** The staged frames have all been written out. */
  reset(): void {
    this.used = 0;
    this.count = 0;
    // A frame over the cap (a full scrape of many swarms) does not keep its buffer.
    if (this.buf.length > STAGE_CAP) this.buf = Buffer.allocUnsafeSlow(64 * 1024);
    if (this.segs.length > 3 * 65536) this.segs = new Int32Array(3 * 1024);
  },
};

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** The parts of an upgrade request the handshake needs (header values as sent, or ''). */
export interface UpgradeRequest {
  method: string;
  upgrade: string;
  version: string;
  key: string;
}

/**
 * Checks an upgrade request (RFC 6455 §4.2.1) and returns the 101 response to write, or an HTTP
 * error response for a request that is not a valid WebSocket handshake.
 */
export function handshakeResponse(req: UpgradeRequest): { ok: boolean; response: string } {
  const bad = (status: string, extra = '') => ({
    ok: false,
    response: `HTTP/1.1 ${status}\r\nConnection: close\r\n${extra}Content-Length: 0\r\n\r\n`,
  });
  if (req.method !== 'GET') return bad('405 Method Not Allowed');
  if (!/\bwebsocket\b/i.test(req.upgrade)) return bad('400 Bad Request');
  if (req.version.trim() !== '13') return bad('426 Upgrade Required', 'Sec-WebSocket-Version: 13\r\n');
  const key = req.key;
  if (!/^[A-Za-z0-9+/]{22}==$/.test(key.trim())) return bad('400 Bad Request');
  const accept = createHash('sha1')
    .update(key.trim() + GUID)
    .digest('base64');
  return {
    ok: true,
    response: `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
  };
}

/** The handshake fields of an IncomingMessage. */
export function upgradeRequestOf(req: {
  method?: string;
  headers: Record<string, string | string[] | undefined>;
}): UpgradeRequest {
  const h = (k: string) => {
    const v = req.headers[k];
    return typeof v === 'string' ? v : '';
  };
  return {
    method: req.method ?? '',
    upgrade: h('upgrade'),
    version: h('sec-websocket-version'),
    key: h('sec-websocket-key'),
  };
}

/** The handshake fields of a raw request head (latin1 text of the header lines). */
export function upgradeRequestOfHead(method: string, head: string): UpgradeRequest {
  const out: UpgradeRequest = { method, upgrade: '', version: '', key: '' };
  for (const line of head.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === 'upgrade') out.upgrade = value;
    else if (name === 'sec-websocket-version') out.version = value;
    else if (name === 'sec-websocket-key') out.key = value;
  }
  return out;
}
