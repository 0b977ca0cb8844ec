import type { IncomingMessage } from 'node:http';

/**
 * Request bodies of the portal's forms: `application/x-www-form-urlencoded` and, for the torrent
 * upload, `multipart/form-data`. Both parsers are strict and bounded: they take bytes already
 * read under a size limit, never throw, and return a `FormError` (400 malformed, 413 too large)
 * for anything they do not accept, so hostile input costs at most one linear pass.
 */
export interface FormError {
  error: true;
  status: 400 | 408 | 413;
  message: string;
}

export interface UploadedFile {
  filename: string;
  type: string;
  data: Buffer;
}

export interface Form {
  fields: Map<string, string>;
  files: Map<string, UploadedFile>;
}

export interface FormLimits {
  /** Most fields (and parts) in one body. */
  maxFields: number;
  /** Longest field value, in bytes. */
  maxFieldBytes: number;
  /** Largest uploaded file, in bytes. */
  maxFileBytes: number;
}

export const DEFAULT_LIMITS: FormLimits = {
  maxFields: 64,
  maxFieldBytes: 128 * 1024,
  maxFileBytes: 10 * 1024 * 1024,
};

const fail = (status: FormError['status'], message: string): FormError => ({ error: true, status, message });

export function isFormError(v: unknown): v is FormError {
  return typeof v === 'object' && v !== null && (v as FormError).error === true;
}

/**
 * How long a body may take: `stallMs` at most without a byte (http_idle_timeout), and whole within
 * `wholeMs` (null: node:http's request timeout only).
 */
export interface BodyTimes {
  stallMs: number;
  wholeMs: number | null;
}

/**
 * Reads a body of at most `limit` bytes; larger bodies are refused without reading them all. With
 * `times`, a body that stops arriving, or takes too long, is a 408 (the caller closes the
 * connection): node:http alone gives a body 5 minutes, and holds what arrived all that time.
 */
export function readBody(
  req: IncomingMessage,
  limit: number,
  times?: BodyTimes,
): Promise<Buffer | FormError> {
  return new Promise((resolve) => {
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > limit) {
      req.resume();
      resolve(fail(413, 'request body too large'));
      return;
    }
    // The portal reads the body after looking the session up: the client may have gone (or
    // half-closed mid-body) by then, and an aborted request emits nothing more.
    if (req.readableAborted) {
      resolve(fail(400, 'request body could not be read'));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    let stall: NodeJS.Timeout | null = null;
    let whole: NodeJS.Timeout | null = null;
    const finish = (r: Buffer | FormError) => {
      if (done) return;
      done = true;
      if (stall !== null) clearTimeout(stall);
      if (whole !== null) clearTimeout(whole);
      resolve(r);
    };
    const tooSlow = () => {
      chunks.length = 0;
      finish(fail(408, 'request body too slow'));
    };
    if (times !== undefined) {
      stall = setTimeout(tooSlow, times.stallMs);
      if (times.wholeMs !== null) whole = setTimeout(tooSlow, times.wholeMs);
    }
    req.on('data', (c: Buffer) => {
      if (done) return;
      size += c.length;
      if (size > limit) {
        chunks.length = 0;
        finish(fail(413, 'request body too large'));
        return;
      }
      chunks.push(c);
      stall?.refresh();
    });
    req.on('end', () => finish(Buffer.concat(chunks)));
    req.on('error', () => finish(fail(400, 'request body could not be read')));
  });
}

function decodeComponent(s: string): string | null {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return null; // bad percent-encoding or invalid UTF-8
  }
}

/** `a=1&b=two+words`: the last value of a repeated name wins. */
export function parseUrlEncoded(body: Buffer, limits: FormLimits = DEFAULT_LIMITS): Form | FormError {
  const fields = new Map<string, string>();
  const text = body.toString('latin1');
  if (text.length === 0) return { fields, files: new Map() };
  const pairs = text.split('&');
  if (pairs.length > limits.maxFields) return fail(413, 'too many form fields');
  for (const pair of pairs) {
    if (pair.length === 0) continue;
    const eq = pair.indexOf('=');
    const rawName = eq >= 0 ? pair.slice(0, eq) : pair;
    const rawValue = eq >= 0 ? pair.slice(eq + 1) : '';
    if (rawValue.length > limits.maxFieldBytes * 3) return fail(413, 'form field too large');
    // Bytes went in as latin1 one-to-one; percent-encoded bytes are decoded as UTF-8 below, and
    // a raw non-ASCII byte (browsers never send one) is refused.
    if (/[^\x20-\x7e]/.test(pair)) return fail(400, 'malformed form body');
    const name = decodeComponent(rawName);
    const value = decodeComponent(rawValue);
    if (name === null || value === null) return fail(400, 'malformed form body');
    if (Buffer.byteLength(value) > limits.maxFieldBytes) return fail(413, 'form field too large');
    fields.set(name, value);
  }
  return { fields, files: new Map() };
}

/** The boundary parameter of a multipart Content-Type (RFC 2046: 1 to 70 characters). */
export function multipartBoundary(contentType: string): string | null {
  const m = /^multipart\/form-data\s*;(?:.*;)?\s*boundary=(?:"([^"]{1,70})"|([^\s;"]{1,70}))\s*(?:;|$)/i.exec(
    contentType,
  );
  if (!m) return null;
  return m[1] ?? m[2];
}

const CRLF = Buffer.from('\r\n');
const HEADER_END = Buffer.from('\r\n\r\n');
const MAX_PART_HEADER = 8 * 1024;

function dispositionParam(value: string, key: string): string | null {
  // name="x" (browsers percent-encode '"' and line breaks inside the quotes) or name=x.
  const re = new RegExp(`;\\s*${key}=(?:"([^"]*)"|([^;\\s]*))`, 'i');
  const m = re.exec(value);
  if (!m) return null;
  return m[1] ?? m[2];
}

/**
 * multipart/form-data (RFC 7578) as browsers send it: the body starts with the first delimiter,
 * each part has a `Content-Disposition: form-data; name=...` header, and the closing delimiter
 * ends it. Parts with a `filename` are files; the others are UTF-8 text fields.
 */
export function parseMultipart(
  body: Buffer,
  contentType: string,
  limits: FormLimits = DEFAULT_LIMITS,
): Form | FormError {
  const boundary = multipartBoundary(contentType);
  if (boundary === null) return fail(400, 'multipart body without a valid boundary');
  const delimiter = Buffer.from(`--${boundary}`, 'latin1');
  const next = Buffer.from(`\r\n--${boundary}`, 'latin1');
  const fields = new Map<string, string>();
  const files = new Map<string, UploadedFile>();
  if (body.length < delimiter.length || !body.subarray(0, delimiter.length).equals(delimiter))
    return fail(400, 'multipart body does not start with its boundary');
  let pos = delimiter.length;
  let parts = 0;
  for (;;) {
    // After a delimiter: "--" closes the body, CRLF starts a part.
    if (body.length >= pos + 2 && body[pos] === 0x2d && body[pos + 1] === 0x2d) break;
    if (!(body.length >= pos + 2 && body[pos] === 0x0d && body[pos + 1] === 0x0a))
      return fail(400, 'malformed multipart delimiter');
    pos += 2;
    if (++parts > limits.maxFields) return fail(413, 'too many form parts');
    const headEnd = body.indexOf(HEADER_END, pos);
    if (headEnd < 0 || headEnd - pos > MAX_PART_HEADER) return fail(400, 'malformed multipart part header');
    const headers = new Map<string, string>();
    for (const line of body.subarray(pos, headEnd).toString('utf8').split('\r\n')) {
      const colon = line.indexOf(':');
      if (colon <= 0) return fail(400, 'malformed multipart part header');
      headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
    pos = headEnd + HEADER_END.length;
    const end = body.indexOf(next, pos);
    if (end < 0) return fail(400, 'multipart body is not closed');
    const data = body.subarray(pos, end);
    pos = end + next.length;
    const disposition = headers.get('content-disposition') ?? '';
    if (!/^form-data\s*(;|$)/i.test(disposition)) return fail(400, 'multipart part is not form-data');
    const name = dispositionParam(disposition, 'name');
    if (name === null || name.length === 0) return fail(400, 'multipart part without a name');
    const filename = dispositionParam(disposition, 'filename');
    if (filename !== null) {
      if (data.length > limits.maxFileBytes) return fail(413, 'uploaded file too large');
      files.set(name, {
        filename,
        type: headers.get('content-type') ?? 'application/octet-stream',
        data: Buffer.from(data),
      });
    } else {
      if (data.length > limits.maxFieldBytes) return fail(413, 'form field too large');
      const text = new TextDecoder('utf-8', { fatal: false }).decode(data);
      fields.set(name, text);
    }
  }
  // Only an optional CRLF (and nothing else of substance) may follow the closing delimiter.
  const rest = body.subarray(pos + 2);
  if (rest.length > 0 && !(rest.length <= 2 && rest.equals(CRLF.subarray(0, rest.length))))
    return fail(400, 'data after the closing multipart boundary');
  return { fields, files };
}

/** Parses a body by its Content-Type (urlencoded or multipart); anything else is refused. */
export function parseForm(
  body: Buffer,
  contentType: string,
  limits: FormLimits = DEFAULT_LIMITS,
): Form | FormError {
  const type = contentType.toLowerCase();
  if (type.startsWith('application/x-www-form-urlencoded')) return parseUrlEncoded(body, limits);
  if (type.startsWith('multipart/form-data')) return parseMultipart(body, contentType, limits);
  return fail(400, 'unsupported form encoding');
}

/**
 * Large bodies (uploads) read at once: at most one per member (or other key) and `atOnce` in all.
 * A body is held in memory while it arrives, and node:http gives it 5 minutes, so without a gate a
 * member who starts uploads and never finishes them holds `max_torrent_bytes` per connection
 * (128 connections per address, more from more addresses). `enter` says why not, or gives the
 * release to call once the request is done.
 */
export class BodyGate {
  readonly #atOnce: number;
  readonly #keys = new Set<string | number>();

  constructor(atOnce: number) {
    this.#atOnce = atOnce;
  }

  enter(key: string | number): 'mine' | 'full' | (() => void) {
    if (this.#keys.has(key)) return 'mine';
    if (this.#keys.size >= this.#atOnce) return 'full';
    this.#keys.add(key);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.#keys.delete(key);
    };
  }
}
