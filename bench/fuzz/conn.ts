import { connect, type Socket } from 'node:net';
import type { Address } from '../harness/herald-child.ts';

/**
 * A client TCP connection that collects what the server sends and lets the caller wait for the
 * next bytes or the close, with a deadline. Errors (resets) count as a close.
 */
export class Conn {
  readonly socket: Socket;
  buf: Buffer = Buffer.alloc(0);
  closed = false;
  connected: Promise<boolean>;
  #wake: (() => void) | null = null;

  constructor(addr: Address) {
    this.socket = connect({ host: addr.host, port: addr.port });
    this.socket.setNoDelay(true);
    this.connected = new Promise((resolve) => {
      this.socket.once('connect', () => resolve(true));
      this.socket.once('close', () => resolve(false));
    });
    this.socket.on('data', (d: Buffer) => {
      this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
      this.#poke();
    });
    this.socket.on('error', () => {});
    this.socket.on('close', () => {
      this.closed = true;
      this.#poke();
    });
  }

  #poke(): void {
    const w = this.#wake;
    this.#wake = null;
    w?.();
  }

  /** Resolves when more bytes arrive or the connection closes (true), or after `ms` (false). */
  wait(ms: number): Promise<boolean> {
    if (this.closed) return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.#wake = null;
        resolve(false);
      }, ms);
      this.#wake = () => {
        clearTimeout(t);
        resolve(true);
      };
    });
  }

  /** Waits for the close until `deadline` (performance.now()); false when it did not come. */
  async closedBy(deadline: number): Promise<boolean> {
    while (!this.closed) {
      const left = deadline - performance.now();
      if (left <= 0) return false;
      await this.wait(left);
    }
    return true;
  }

  write(b: Uint8Array): void {
    if (!this.closed) this.socket.write(b);
  }

  /** Half-close: "I have sent everything". */
  end(): void {
    if (!this.closed) this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
    this.closed = true;
  }
}

export type ResponseFrame =
  | { kind: 'done'; next: number; status: number; close: boolean }
  | { kind: 'incomplete' }
  | { kind: 'until-close'; status: number }
  | { kind: 'garbage' };

/** Frames one HTTP/1.x response at `start` of `buf` (Content-Length, chunked, or to the close). */
export function frameResponse(buf: Buffer, start: number, headRequest: boolean): ResponseFrame {
  const e = buf.indexOf('\r\n\r\n', start);
  if (e < 0) return buf.length - start > 65536 ? { kind: 'garbage' } : { kind: 'incomplete' };
  const head = buf.toString('latin1', start, e);
  const m = /^HTTP\/1\.([01]) (\d{3})/.exec(head);
  if (m === null) return { kind: 'garbage' };
  const status = Number(m[2]);
  const lower = head.toLowerCase();
  const close =
    /\r\nconnection:\s*close/.test(lower) || (m[1] === '0' && !/\r\nconnection:\s*keep-alive/.test(lower));
  if (status === 101) return { kind: 'done', next: e + 4, status, close: true };
  if ((status >= 100 && status < 200) || status === 204 || status === 304 || headRequest)
    return { kind: 'done', next: e + 4, status, close };
  if (/\r\ntransfer-encoding:[^\r]*chunked/.test(lower)) {
    let p = e + 4;
    for (;;) {
      const le = buf.indexOf('\r\n', p);
      if (le < 0) return { kind: 'incomplete' };
      const size = Number.parseInt(buf.toString('latin1', p, le), 16);
      if (!Number.isFinite(size) || size < 0) return { kind: 'garbage' };
      p = le + 2;
      if (size === 0) {
        const te = buf.indexOf('\r\n', p);
        if (te < 0) return { kind: 'incomplete' };
        // Trailers (none expected) end with an empty line.
        if (te === p) return { kind: 'done', next: p + 2, status, close };
        const end = buf.indexOf('\r\n\r\n', p);
        return end < 0 ? { kind: 'incomplete' } : { kind: 'done', next: end + 4, status, close };
      }
      if (buf.length < p + size + 2) return { kind: 'incomplete' };
      p += size + 2;
    }
  }
  const cl = /\r\ncontent-length:\s*(\d+)/.exec(lower);
  if (cl === null) return { kind: 'until-close', status };
  const next = e + 4 + Number(cl[1]);
  return buf.length < next ? { kind: 'incomplete' } : { kind: 'done', next, status, close };
}
