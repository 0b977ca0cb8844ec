import { formatIp } from '../../core/address.ts';
import { copyBytes } from '../../core/bytes.ts';
import type { AnnounceResult, Family, ScrapeEntry } from '../../core/types.ts';

/**
 * Hand-written bencode writers for tracker responses: each builds one exactly sized Buffer, with
 * dictionary keys written in sorted byte order by hand (no generic encoder, no intermediate
 * objects). `response.test.ts` checks them against the general encoder in `protocol/bencode`.
 */

export interface AnnounceEncodeOptions {
  family: Family;
  compact: boolean;
  noPeerId: boolean;
  interval: number;
  minInterval: number;
  /** BEP 24: the requester's address as the tracker sees it (4 or 16 bytes), or null. */
  externalIp: Uint8Array | null;
  warning?: string | null;
}

function digits(n: number): number {
  let d = n < 0 ? 2 : 1;
  let v = Math.abs(n);
  while (v >= 10) {
    v = Math.floor(v / 10);
    d++;
  }
  return d;
}

/**
 * Writes a body into one exactly sized Buffer, byte by byte: no string is built per number and
 * no call into C++ per piece (`Buffer#write` was a dozen binding calls per announce).
 */
class Writer {
  buf: Buffer;
  pos = 0;
  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }
  /** ASCII text (keys and fixed pieces, all below U+0080). */
  ascii(s: string): void {
    const b = this.buf;
    let p = this.pos;
    for (let i = 0; i < s.length; i++) b[p++] = s.charCodeAt(i);
    this.pos = p;
  }
  /** An integer in decimal digits. */
  number(n: number): void {
    const b = this.buf;
    if (n < 0) {
      b[this.pos++] = 45; // '-'
      n = -n;
    }
    let p = this.pos + digits(n);
    this.pos = p;
    do {
      b[--p] = 48 + (n % 10);
      n = Math.floor(n / 10);
    } while (n > 0);
  }
  int(n: number): void {
    this.buf[this.pos++] = 105; // 'i'
    this.number(n);
    this.buf[this.pos++] = 101; // 'e'
  }
  bytes(b: Uint8Array, start = 0, end = b.length): void {
    this.number(end - start);
    this.buf[this.pos++] = 58; // ':'
    copyBytes(this.buf, this.pos, b, start, end - start);
    this.pos += end - start;
  }
}

const intSize = (n: number) => 2 + digits(n);
const strSize = (len: number) => digits(len) + 1 + len;
const keySize = (k: string) => strSize(k.length);

export function encodeAnnounce(r: AnnounceResult, o: AnnounceEncodeOptions): Buffer {
  const stride = o.family === 4 ? 6 : 18;
  const peerBytes = r.peerCount * stride;
  const warning = o.warning ? Buffer.from(o.warning, 'utf8') : null;
  let size = 2;
  size += keySize('complete') + intSize(r.complete);
  size += keySize('downloaded') + intSize(r.downloaded);
  if (o.externalIp) size += keySize('external ip') + strSize(o.externalIp.length);
  size += keySize('incomplete') + intSize(r.incomplete);
  size += keySize('interval') + intSize(o.interval);
  size += keySize('min interval') + intSize(o.minInterval);
  let dictPeers: Buffer[] | null = null;
  if (o.compact) {
    if (o.family === 4) size += keySize('peers') + strSize(peerBytes);
    else size += keySize('peers') + strSize(0) + keySize('peers6') + strSize(peerBytes);
  } else {
    // Dictionary model (compact=0): rarely asked for, so built plainly.
    dictPeers = [];
    for (let i = 0; i < r.peerCount; i++) {
      const off = i * stride;
      const ip = Buffer.from(formatIp(r.peers.subarray(off, off + stride - 2)), 'latin1');
      const port = (r.peers[off + stride - 2] << 8) | r.peers[off + stride - 1];
      const parts: Buffer[] = [Buffer.from(`d2:ip${ip.length}:`, 'latin1'), ip];
      const known = r.peerIds !== null && r.peerIdKnown !== null && r.peerIdKnown[i] === 1;
      if (!o.noPeerId && known) {
        parts.push(
          Buffer.from('7:peer id20:', 'latin1'),
          Buffer.from(r.peerIds!.subarray(i * 20, i * 20 + 20)),
        );
      }
      parts.push(Buffer.from(`4:porti${port}ee`, 'latin1'));
      dictPeers.push(Buffer.concat(parts));
    }
    size += keySize('peers') + 2;
    for (const p of dictPeers) size += p.length;
  }
  if (warning) size += keySize('warning message') + strSize(warning.length);

  const w = new Writer(size);
  w.ascii('d8:complete');
  w.int(r.complete);
  w.ascii('10:downloaded');
  w.int(r.downloaded);
  if (o.externalIp) {
    w.ascii('11:external ip');
    w.bytes(o.externalIp);
  }
  w.ascii('10:incomplete');
  w.int(r.incomplete);
  w.ascii('8:interval');
  w.int(o.interval);
  w.ascii('12:min interval');
  w.int(o.minInterval);
  if (dictPeers !== null) {
    w.ascii('5:peersl');
    for (const p of dictPeers) {
      p.copy(w.buf, w.pos);
      w.pos += p.length;
    }
    w.ascii('e');
  } else if (o.family === 4) {
    w.ascii('5:peers');
    w.bytes(r.peers, 0, peerBytes);
  } else {
    // Some clients insist on a `peers` key even when all their peers come in `peers6`.
    w.ascii('5:peers0:6:peers6');
    w.bytes(r.peers, 0, peerBytes);
  }
  if (warning) {
    w.ascii('15:warning message');
    w.bytes(warning);
  }
  w.ascii('e');
  if (w.pos !== size) throw new Error(`encodeAnnounce size mismatch ${w.pos} != ${size}`);
  return w.buf;
}

/** BEP 48 scrape body. Hashes are dictionary keys: sorted by bytes, duplicates once. */
export function encodeScrape(entries: readonly (readonly [Uint8Array, ScrapeEntry])[]): Buffer {
  const sorted = entries.length > 1 ? [...entries].sort((a, b) => Buffer.compare(a[0], b[0])) : entries;
  let size = 2 + keySize('files') + 2;
  let prev: Uint8Array | null = null;
  const keep: (readonly [Uint8Array, ScrapeEntry])[] = [];
  for (const e of sorted) {
    if (prev !== null && Buffer.compare(prev, e[0]) === 0) continue;
    prev = e[0];
    keep.push(e);
    const s = e[1];
    size += strSize(e[0].length) + 2;
    size += keySize('complete') + intSize(s.complete);
    size += keySize('downloaded') + intSize(s.downloaded);
    size += keySize('incomplete') + intSize(s.incomplete);
  }
  const w = new Writer(size);
  w.ascii('d5:filesd');
  for (const [h, s] of keep) {
    w.bytes(h);
    w.ascii('d8:complete');
    w.int(s.complete);
    w.ascii('10:downloaded');
    w.int(s.downloaded);
    w.ascii('10:incomplete');
    w.int(s.incomplete);
    w.ascii('e');
  }
  w.ascii('ee');
  return w.buf;
}

/** `failure reason`, optionally with BEP 31 `retry in` (given in seconds, sent in minutes). */
export function encodeFailure(message: string, retryInSeconds?: number): Buffer {
  const m = Buffer.from(message, 'utf8');
  let s = `d14:failure reason${m.length}:`;
  const head = Buffer.from(s, 'latin1');
  // BEP 31 `retry in` is in minutes (or the string "never").
  s = retryInSeconds !== undefined ? `8:retry ini${Math.max(1, Math.ceil(retryInSeconds / 60))}ee` : 'e';
  return Buffer.concat([head, m, Buffer.from(s, 'latin1')]);
}

const STATUS_TEXT: Record<number, string> = {
  200: 'OK',
  400: 'Bad Request',
  404: 'Not Found',
  414: 'URI Too Long',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
  505: 'HTTP Version Not Supported',
};

/** The whole HTTP/1.1 response (head + body) in one Buffer. */
export function httpResponse(
  status: number,
  body: Uint8Array,
  opts: { keepAlive: boolean; contentType?: string; extraHeaders?: string },
): Buffer {
  const head =
    `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'OK'}\r\n` +
    `Content-Type: ${opts.contentType ?? 'text/plain'}\r\n` +
    `Content-Length: ${body.length}\r\n` +
    (opts.keepAlive ? '' : 'Connection: close\r\n') +
    (opts.extraHeaders ?? '') +
    '\r\n';
  const out = Buffer.allocUnsafe(head.length + body.length);
  const n = out.write(head, 0, 'latin1');
  out.set(body, n);
  return out;
}
