/**
 * Strict HTTP/1.x request-head parser for the raw tracker path. Works on indices into the
 * connection's buffer (no strings for the path or query), supports pipelining (the caller
 * passes the remaining range) and partial reads (`incomplete`).
 */
export type RequestHead =
  | { kind: 'incomplete' }
  | { kind: 'error'; status: 400 | 414 | 431 | 505; reason: string }
  | {
      kind: 'ok';
      method: 'GET' | 'HEAD' | 'OTHER';
      pathStart: number;
      pathEnd: number;
      /** queryStart === queryEnd when there is no query string. */
      queryStart: number;
      queryEnd: number;
      /** Index just after the blank line that ends the head. */
      headEnd: number;
      httpMinor: 0 | 1;
      keepAlive: boolean;
      hasBody: boolean;
      /**
       * The X-Forwarded-For value as sent (several header lines joined with ',', in order); null
       * when absent. Which entry to believe is the frontend's business (core/forwarded.ts).
       */
      xForwardedFor: string | null;
      upgrade: boolean;
    };

const INCOMPLETE: RequestHead = { kind: 'incomplete' };
const E400: RequestHead = { kind: 'error', status: 400, reason: 'Bad Request' };
const E414: RequestHead = { kind: 'error', status: 414, reason: 'URI Too Long' };
const E431: RequestHead = { kind: 'error', status: 431, reason: 'Request Header Fields Too Large' };
const E505: RequestHead = { kind: 'error', status: 505, reason: 'HTTP Version Not Supported' };

function lower(c: number): number {
  return c >= 65 && c <= 90 ? c + 32 : c;
}

/** Case-insensitive compare of buf[s, e) with a lowercase ASCII name. */
function nameIs(buf: Uint8Array, s: number, e: number, name: string): boolean {
  if (e - s !== name.length) return false;
  for (let i = 0; i < name.length; i++) if (lower(buf[s + i]) !== name.charCodeAt(i)) return false;
  return true;
}

/** Case-insensitive search for a lowercase token in buf[s, e). */
function contains(buf: Uint8Array, s: number, e: number, token: string): boolean {
  outer: for (let i = s; i + token.length <= e; i++) {
    for (let j = 0; j < token.length; j++) if (lower(buf[i + j]) !== token.charCodeAt(j)) continue outer;
    return true;
  }
  return false;
}

function latin1(buf: Uint8Array, s: number, e: number): string {
  return Buffer.from(buf.buffer, buf.byteOffset + s, e - s).toString('latin1');
}

export function parseRequestHead(buf: Uint8Array, start: number, end: number, maxHead = 8192): RequestHead {
  // Find the end of the head (CRLFCRLF) within the limit.
  const limit = Math.min(end, start + maxHead);
  let headEnd = -1;
  for (let i = start + 3; i < limit; i++) {
    if (buf[i] === 10 && buf[i - 1] === 13 && buf[i - 2] === 10 && buf[i - 3] === 13) {
      headEnd = i + 1;
      break;
    }
  }
  // Request line first: a URI that alone exceeds the limit is 414, otherwise headers are 431.
  let lineEnd = -1;
  for (let i = start; i < limit; i++) {
    if (buf[i] === 10) {
      lineEnd = i;
      break;
    }
  }
  if (headEnd < 0) {
    if (end - start < maxHead) {
      // Fail early on bytes that can never start a request line.
      for (let i = start; i < end && i < start + 8; i++) {
        const c = buf[i];
        if (c === 32) break;
        if (c < 65 || c > 90) return E400;
      }
      return INCOMPLETE;
    }
    return lineEnd < 0 ? E414 : E431;
  }
  if (lineEnd < 1 || buf[lineEnd - 1] !== 13) return E400;
  // METHOD SP TARGET SP HTTP/1.x CRLF
  let sp1 = start;
  while (sp1 < lineEnd && buf[sp1] !== 32) {
    const c = buf[sp1];
    if (c < 65 || c > 90) return E400;
    sp1++;
  }
  if (sp1 === start || sp1 >= lineEnd) return E400;
  const pathStart = sp1 + 1;
  let sp2 = pathStart;
  while (sp2 < lineEnd && buf[sp2] !== 32) {
    const c = buf[sp2];
    if (c <= 32 || c === 127) return E400;
    sp2++;
  }
  if (sp2 === pathStart || buf[pathStart] !== 47) return E400;
  const vs = sp2 + 1;
  if (lineEnd - 1 - vs !== 8) return E400;
  if (
    buf[vs] !== 72 ||
    buf[vs + 1] !== 84 ||
    buf[vs + 2] !== 84 ||
    buf[vs + 3] !== 80 ||
    buf[vs + 4] !== 47 ||
    buf[vs + 6] !== 46
  )
    return E400;
  if (buf[vs + 5] !== 49) return E505;
  const minor = buf[vs + 7];
  if (minor !== 48 && minor !== 49) return E505;
  const httpMinor = minor === 49 ? 1 : 0;
  const methodLen = sp1 - start;
  const method =
    methodLen === 3 && buf[start] === 71 && buf[start + 1] === 69 && buf[start + 2] === 84
      ? 'GET'
      : methodLen === 4 && nameIs(buf, start, sp1, 'head')
        ? 'HEAD'
        : 'OTHER';
  let q = pathStart;
  while (q < sp2 && buf[q] !== 63) q++;
  const pathEnd = q;
  const queryStart = q < sp2 ? q + 1 : sp2;
  const queryEnd = sp2;

  // Headers.
  let keepAlive = httpMinor === 1;
  let hasBody = false;
  let upgrade = false;
  let xForwardedFor: string | null = null;
  let i = lineEnd + 1;
  const blank = headEnd - 2;
  while (i < blank) {
    let le = i;
    while (le < blank && buf[le] !== 10) le++;
    if (le >= headEnd || buf[le - 1] !== 13) return E400;
    const lineStop = le - 1;
    let colon = i;
    while (colon < lineStop && buf[colon] !== 58) colon++;
    if (colon === i || colon >= lineStop) return E400;
    for (let k = i; k < colon; k++) if (buf[k] <= 32 || buf[k] >= 127) return E400; // no space before ':'
    let vs2 = colon + 1;
    while (vs2 < lineStop && (buf[vs2] === 32 || buf[vs2] === 9)) vs2++;
    let ve = lineStop;
    while (ve > vs2 && (buf[ve - 1] === 32 || buf[ve - 1] === 9)) ve--;
    const nlen = colon - i;
    if (nlen === 10 && nameIs(buf, i, colon, 'connection')) {
      if (contains(buf, vs2, ve, 'close')) keepAlive = false;
      else if (contains(buf, vs2, ve, 'keep-alive')) keepAlive = true;
      if (contains(buf, vs2, ve, 'upgrade')) upgrade = true;
    } else if (nlen === 14 && nameIs(buf, i, colon, 'content-length')) {
      for (let k = vs2; k < ve; k++) {
        const c = buf[k];
        if (c < 48 || c > 57) return E400;
        if (c !== 48) hasBody = true;
      }
      if (vs2 === ve) return E400;
    } else if (nlen === 17 && nameIs(buf, i, colon, 'transfer-encoding')) {
      hasBody = true;
    } else if (nlen === 7 && nameIs(buf, i, colon, 'upgrade')) {
      upgrade = true;
    } else if (nlen === 15 && nameIs(buf, i, colon, 'x-forwarded-for')) {
      const s = latin1(buf, vs2, ve);
      xForwardedFor = xForwardedFor === null ? s : `${xForwardedFor},${s}`;
    }
    i = le + 1;
  }
  return {
    kind: 'ok',
    method,
    pathStart,
    pathEnd,
    queryStart,
    queryEnd,
    headEnd,
    httpMinor,
    keepAlive,
    hasBody,
    xForwardedFor,
    upgrade,
  };
}
