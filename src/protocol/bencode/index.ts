/**
 * Strict bencode (BEP 3), both ways.
 *
 * Hand-written rather than taken from npm because the tracker needs three things the common
 * packages do not give together: it never throws on hostile input (it returns a typed error with
 * the offset), it enforces limits (depth, item count; a claimed string length is checked against
 * the bytes present before anything is allocated), and it can report the exact byte span of a
 * top-level key's value (the raw `info` dictionary of a .torrent, whose SHA-1 is the info hash).
 */

export type BValue = Buffer | number | bigint | BValue[] | Map<string, BValue>;
/** What `encode` accepts: byte strings as Uint8Array or (UTF-8) string; dictionaries as Map or object. */
export type BEncodable =
  | Uint8Array
  | string
  | number
  | bigint
  | BEncodable[]
  | Map<string, BEncodable>
  | { [key: string]: BEncodable };

export interface DecodeOptions {
  maxDepth?: number;
  maxItems?: number;
  /** Reject unsorted or duplicate dictionary keys (default true). */
  strict?: boolean;
  /** Record the byte span of the value of this top-level dictionary key. */
  spanOf?: string;
}

export type DecodeResult =
  | { ok: true; value: BValue; span: [number, number] | null }
  | { ok: false; error: string; offset: number };

class DecodeError {
  message: string;
  offset: number;
  constructor(message: string, offset: number) {
    this.message = message;
    this.offset = offset;
  }
}

/** Decodes one complete bencoded value; trailing bytes are an error. Never throws. */
export function decode(input: Uint8Array, opts: DecodeOptions = {}): DecodeResult {
  const buf = Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  const maxDepth = opts.maxDepth ?? 64;
  const maxItems = opts.maxItems ?? 1_000_000;
  const strict = opts.strict ?? true;
  let pos = 0;
  let items = 0;
  let span: [number, number] | null = null;

  const fail = (msg: string, at = pos): never => {
    throw new DecodeError(msg, at);
  };

  const readInt = (terminator: number): number | bigint => {
    const start = pos;
    let neg = false;
    if (buf[pos] === 45) {
      neg = true;
      pos++;
    }
    const digitsStart = pos;
    while (pos < buf.length && buf[pos] >= 48 && buf[pos] <= 57) pos++;
    const digits = pos - digitsStart;
    if (digits === 0) fail('expected digits');
    if (pos >= buf.length) fail('truncated');
    if (buf[pos] !== terminator) fail('unexpected byte in integer');
    if (digits > 1 && buf[digitsStart] === 48) fail('leading zero', digitsStart);
    if (neg && buf[digitsStart] === 48) fail('negative zero', start);
    const text = buf.toString('latin1', start, pos);
    pos++; // terminator
    if (digits <= 15) return Number(text);
    const big = BigInt(text);
    return big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(big)
      : big;
  };

  const readString = (): Buffer => {
    if (buf[pos] === 45) fail('negative string length');
    const len = readInt(58);
    if (typeof len !== 'number' || len > buf.length - pos) fail('string length beyond input');
    const s = buf.subarray(pos, pos + (len as number));
    pos += len as number;
    return s;
  };

  const readValue = (depth: number, top: boolean): BValue => {
    if (pos >= buf.length) fail('truncated');
    if (++items > maxItems) fail('too many items');
    const c = buf[pos];
    if (c === 105) {
      pos++;
      return readInt(101);
    }
    if (c >= 48 && c <= 57) return readString();
    if (c === 108) {
      if (depth >= maxDepth) fail('nested too deeply');
      pos++;
      const list: BValue[] = [];
      while (true) {
        if (pos >= buf.length) fail('truncated list');
        if (buf[pos] === 101) {
          pos++;
          return list;
        }
        list.push(readValue(depth + 1, false));
      }
    }
    if (c === 100) {
      if (depth >= maxDepth) fail('nested too deeply');
      pos++;
      const dict = new Map<string, BValue>();
      let prev: Buffer | null = null;
      while (true) {
        if (pos >= buf.length) fail('truncated dictionary');
        if (buf[pos] === 101) {
          pos++;
          return dict;
        }
        if (buf[pos] < 48 || buf[pos] > 57) fail('dictionary key must be a string');
        const keyAt = pos;
        const keyBytes = readString();
        if (prev !== null && strict) {
          const cmp = Buffer.compare(prev, keyBytes);
          if (cmp === 0) fail('duplicate dictionary key', keyAt);
          if (cmp > 0) fail('dictionary keys not sorted', keyAt);
        }
        prev = keyBytes;
        const key = keyBytes.toString('latin1');
        const valueStart = pos;
        const value = readValue(depth + 1, false);
        if (top && opts.spanOf !== undefined && key === opts.spanOf) span = [valueStart, pos];
        if (!strict && dict.has(key)) fail('duplicate dictionary key', keyAt);
        dict.set(key, value);
      }
    }
    return fail('unexpected byte');
  };

  try {
    const value = readValue(0, true);
    if (pos !== buf.length) return { ok: false, error: 'trailing data', offset: pos };
    return { ok: true, value, span };
  } catch (err) {
    if (err instanceof DecodeError) return { ok: false, error: err.message, offset: err.offset };
    return { ok: false, error: 'malformed', offset: pos };
  }
}

/** Encodes a value; dictionary keys are sorted as raw bytes (latin1 keys keep their bytes). */
export function encode(value: BEncodable): Buffer {
  const parts: Buffer[] = [];
  write(value, parts);
  return Buffer.concat(parts);
}

function write(v: BEncodable, out: Buffer[]): void {
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw new TypeError('bencode integers must be integers');
    out.push(Buffer.from(`i${v}e`, 'latin1'));
  } else if (typeof v === 'bigint') {
    out.push(Buffer.from(`i${v}e`, 'latin1'));
  } else if (typeof v === 'string') {
    const b = Buffer.from(v, 'utf8');
    out.push(Buffer.from(`${b.length}:`, 'latin1'), b);
  } else if (v instanceof Uint8Array) {
    out.push(Buffer.from(`${v.length}:`, 'latin1'), Buffer.from(v.buffer, v.byteOffset, v.byteLength));
  } else if (Array.isArray(v)) {
    out.push(Buffer.from('l'));
    for (const x of v) write(x, out);
    out.push(Buffer.from('e'));
  } else {
    const entries: [Buffer, BEncodable][] =
      v instanceof Map
        ? [...v.entries()].map(([k, x]) => [Buffer.from(k, 'latin1'), x])
        : Object.entries(v).map(([k, x]) => [Buffer.from(k, 'utf8'), x]);
    entries.sort((a, b) => Buffer.compare(a[0], b[0]));
    out.push(Buffer.from('d'));
    for (const [k, x] of entries) {
      out.push(Buffer.from(`${k.length}:`, 'latin1'), k);
      write(x, out);
    }
    out.push(Buffer.from('e'));
  }
}

/** One entry of a dictionary, as byte offsets into the buffer it was read from. */
export interface DictEntry {
  /** The key's bytes as latin1, as `decode` keys its maps. */
  key: string;
  /** Where the entry starts (the key's length prefix). */
  start: number;
  /** Where its value starts. */
  valueStart: number;
  /** One past the value's last byte. */
  end: number;
}

/**
 * The entries of the dictionary that starts at `at`, and the offset of its closing `e`, without
 * building any value: a value is skipped by its length prefixes. Meant for input `decode` has
 * already accepted (so the keys are sorted and the lengths honest), to cut and splice an encoded
 * dictionary without encoding it again; still bounds-checked, it returns null rather than read
 * past the buffer when the input is not a well-formed dictionary.
 */
export function dictEntries(buf: Uint8Array, at = 0): { entries: DictEntry[]; close: number } | null {
  const end = buf.length;
  let pos = at;
  let depth = 0;
  // Digits up to `terminator` (a string length, or an integer with its sign); -1 when malformed.
  const number = (terminator: number): number => {
    const from = pos;
    if (terminator === 101 && buf[pos] === 45) pos++;
    let n = 0;
    while (pos < end && buf[pos] >= 48 && buf[pos] <= 57) n = n * 10 + (buf[pos++] - 48);
    if (pos >= end || buf[pos] !== terminator || pos === from) return -1;
    pos++;
    return n;
  };
  // Moves `pos` past one value; false when malformed.
  const skip = (): boolean => {
    if (pos >= end) return false;
    const c = buf[pos];
    if (c === 105) {
      pos++;
      return number(101) >= 0;
    }
    if (c >= 48 && c <= 57) {
      const len = number(58);
      if (len < 0 || len > end - pos) return false;
      pos += len;
      return true;
    }
    if ((c !== 108 && c !== 100) || depth >= 512) return false;
    depth++;
    pos++;
    while (pos < end && buf[pos] !== 101) {
      // In a dictionary, first the key: a string.
      if (c === 100 && !(buf[pos] >= 48 && buf[pos] <= 57 && skip())) return false;
      if (!skip()) return false;
    }
    depth--;
    if (pos >= end) return false;
    pos++;
    return true;
  };
  if (buf[at] !== 100) return null;
  const entries: DictEntry[] = [];
  pos = at + 1;
  while (pos < end && buf[pos] !== 101) {
    const start = pos;
    const len = number(58);
    if (len < 0 || len > end - pos) return null;
    const keyAt = pos;
    pos += len;
    const valueStart = pos;
    if (!skip()) return null;
    const key = Buffer.from(buf.buffer, buf.byteOffset + keyAt, len).toString('latin1');
    entries.push({ key, start, valueStart, end: pos });
  }
  return pos < end ? { entries, close: pos } : null;
}
