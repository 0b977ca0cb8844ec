/**
 * Whole HTTP requests over raw sockets: request line, headers and body mutated together, from
 * templates of everything the HTTP port serves: the raw tracker path (announce, scrape, with and
 * without passkey, pipelined), and what moves to node:http (API with its token, portal pages and
 * forms with a session and CSRF token, /stats, /metrics, WebSocket upgrades).
 *
 * A request that looks complete and alone is answered on a kept-alive connection; anything else is
 * sent, followed by a half-close, and read to the close. Every byte that comes back is checked for
 * an HTTP 500 or "internal error"; a connection that neither answers nor closes within seconds of
 * the half-close is a stall.
 */
import { type AnnounceFields, announcePath, pct } from '../../test/helpers/clients.ts';
import type { Site } from '../harness/fixtures.ts';
import { Conn, frameResponse } from './conn.ts';
import { mutate, type Space, TEXT_NUMBERS } from './mutate.ts';
import type { Rng } from './rng.ts';
import { InputStream, type NetContext, Pacer, PLACEHOLDER, probeInterval, saysInternal } from './target.ts';

const CONCURRENCY = 32;
const ANSWER_MS = 3000;
const CLOSE_MS = 10_000;

const text = (s: string) => Buffer.from(s, 'latin1');

function request(method: string, target: string, headers: string[], body = ''): Buffer {
  let h = `${method} ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n`;
  for (const line of headers) h += `${line}\r\n`;
  if (body !== '' || method === 'POST' || method === 'PATCH' || method === 'PUT')
    h += `Content-Length: ${Buffer.byteLength(body, 'latin1')}\r\n`;
  return text(`${h}\r\n${body}`);
}

/** Requests as clients, browsers and scripts send them, with placeholders for the secrets. */
export function httpTemplates(site: Site): Buffer[] {
  const pk = PLACEHOLDER.passkey.toString('latin1');
  const token = PLACEHOLDER.token.toString('latin1');
  const session = `herald_session=${PLACEHOLDER.session.toString('latin1')}`;
  const csrf = PLACEHOLDER.csrf.toString('latin1');
  const fuzz = site.torrents.fuzz.infoHash;
  const victim = site.torrents.victim.infoHash;
  const a = (base: string, f: Partial<AnnounceFields> = {}) =>
    announcePath({
      infoHash: fuzz,
      peerId: Buffer.from('-FZ0001-httpfuzz0001'),
      port: 6881,
      uploaded: 1000,
      downloaded: 500,
      left: 1000,
      event: 'started',
      numwant: 50,
      compact: 1,
      base,
      ...f,
    });
  const ua = 'User-Agent: qBittorrent/4.6.0';
  const json = 'Content-Type: application/json';
  const form = 'Content-Type: application/x-www-form-urlencoded';
  const bearer = `Authorization: Bearer ${token}`;
  const chunkedBody = '{"username":"victim","role":"member"}';
  return [
    request('GET', a(`/announce/${pk}`), [ua, 'Accept-Encoding: gzip', 'Connection: keep-alive']),
    request('GET', a(`/${pk}/announce`, { compact: 0, noPeerId: true, extra: '&key=1a2b3c&trackerid=x' }), [
      ua,
    ]),
    request('GET', a(`/announce/${pk}`, { event: 'completed', ip: '127.0.0.3' }), [
      'X-Forwarded-For: 10.0.0.1, 127.0.0.9',
    ]),
    request('GET', `/scrape/${pk}?info_hash=${pct(fuzz)}&info_hash=${pct(victim)}`, [ua]),
    request('GET', a('/announce'), []),
    text(`GET /scrape?info_hash=${pct(fuzz)} HTTP/1.0\r\n\r\n`),
    request('HEAD', a(`/announce/${pk}`), []),
    text(`GET http://127.0.0.1${a(`/announce/${pk}`)} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`),
    Buffer.concat([
      request('GET', a(`/announce/${pk}`), []),
      request('GET', `/scrape/${pk}?info_hash=${pct(fuzz)}`, []),
      request('GET', '/health', []),
    ]),
    request('GET', '/stats', []),
    request('GET', '/metrics', ['Accept: text/plain']),
    request('GET', '/api/members/victim', [bearer]),
    request('GET', '/api/members?search=vic&limit=10&offset=0', [bearer]),
    request('POST', '/api/members', [bearer, json], '{"username":"victim","role":"member","invites":1}'),
    request(
      'PATCH',
      `/api/torrents/${victim.toString('hex')}`,
      [bearer, json],
      '{"name":"renamed","freeleech":true,"upload_factor":200}',
    ),
    text(
      `POST /api/members HTTP/1.1\r\nHost: 127.0.0.1\r\n${bearer}\r\n${json}\r\nTransfer-Encoding: chunked\r\n\r\n` +
        `${chunkedBody.length.toString(16)}\r\n${chunkedBody}\r\n0\r\n\r\n`,
    ),
    request('PUT', `/api/lists/deny/${victim.toString('hex')}`, [bearer, json, 'Expect: 100-continue'], '{}'),
    request('GET', '/login', ['Accept: text/html']),
    request(
      'POST',
      '/login',
      [`Cookie: herald_csrf=${csrf}`, form, 'Origin: http://127.0.0.1'],
      `_csrf=${csrf}&username=victim&password=wrong`,
    ),
    request('GET', '/torrents?q=fuzz&sort=size&dir=asc&page=2&cat=', [`Cookie: ${session}`]),
    request('GET', `/member/${site.members.victim.id}`, [`Cookie: ${session}`]),
    request('POST', '/invites', [`Cookie: ${session}`, form], `_csrf=${csrf}&email=friend%40example.org`),
    request('GET', '/static/portal.css', ['If-None-Match: "x"']),
    request('GET', `/announce/${pk}`, [
      'Upgrade: websocket',
      'Connection: Upgrade',
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
      'Sec-WebSocket-Version: 13',
    ]),
    text('OPTIONS * HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'),
  ];
}

const HTTP_TOKENS = [
  'GET ',
  'POST ',
  'HEAD ',
  'PUT ',
  'DELETE ',
  'CONNECT ',
  ' HTTP/1.1',
  ' HTTP/1.0',
  ' HTTP/2.0',
  '\r\n',
  '\n',
  '\r',
  '\r\n\r\n',
  ': ',
  ' ',
  '\t',
  'Content-Length: ',
  'Content-Length: 0\r\n',
  'Content-Length: 99999999999\r\n',
  'Content-Length: -1\r\n',
  'Transfer-Encoding: chunked\r\n',
  'Transfer-Encoding: gzip, chunked\r\n',
  'Connection: close\r\n',
  'Connection: keep-alive\r\n',
  'Connection: Upgrade\r\n',
  'Upgrade: websocket\r\n',
  'Expect: 100-continue\r\n',
  'Host: \r\n',
  'X-Forwarded-For: ',
  'X-Forwarded-Proto: https\r\n',
  '::ffff:1.2.3.4',
  '[::1]',
  '?',
  '&',
  '=',
  '%',
  '%00',
  '%zz',
  '%ff',
  '%2F',
  '+',
  '/',
  '//',
  '/../',
  'info_hash=',
  'peer_id=',
  'port=',
  'left=',
  'uploaded=',
  'downloaded=',
  'event=',
  'numwant=',
  'compact=',
  'no_peer_id=',
  'ip=',
  'key=',
  '/announce',
  '/scrape',
  '/api/',
  'Bearer ',
  'Cookie: ',
  'herald_session=',
  '_csrf=',
  '{',
  '}',
  '"',
  ',',
  '[',
  ']',
  'null',
  '\\u0000',
  '0\r\n\r\n',
  'ffffffff\r\n',
].map(text);

export function httpSpace(site: Site): Space {
  return {
    templates: httpTemplates(site),
    tokens: [...HTTP_TOKENS, PLACEHOLDER.passkey, PLACEHOLDER.token, ...TEXT_NUMBERS],
    separators: [text('&'), text('\r\n'), text('/'), text(','), text(';')],
    numbers: 'text',
    maxLength: 1 << 16,
  };
}

/** Half the time, Content-Length is made to match the body again, so bodies reach their parsers. */
function fixLength(rng: Rng, b: Buffer): Buffer {
  if (!rng.chance(0.5)) return b;
  const e = b.indexOf('\r\n\r\n');
  if (e < 0) return b;
  const head = b.toString('latin1', 0, e);
  const m = /\r\ncontent-length:[ \t]*[^\r]*/i.exec(head);
  if (m === null) return b;
  const fixed = `${m[0].slice(0, m[0].indexOf(':') + 1)} ${b.length - e - 4}`;
  return Buffer.concat([
    text(head.slice(0, m.index) + fixed + head.slice(m.index + m[0].length)),
    b.subarray(e),
  ]);
}

/**
 * Whether the server should answer exactly one response and keep the connection: one complete
 * HTTP/1.1 request, its body exactly as long as Content-Length says, no upgrade, no chunking.
 */
function aloneAndComplete(b: Buffer): boolean {
  const e = b.indexOf('\r\n\r\n');
  if (e < 0) return false;
  const head = b.toString('latin1', 0, e).toLowerCase();
  const lines = head.split('\r\n');
  if (!/^(get|post|put|patch|delete|options) \S+ http\/1\.1$/.test(lines[0])) return false;
  if (/[^\x20-\x7e\t]/.test(head.replace(/\r\n/g, ''))) return false;
  if (/\r\n(transfer-encoding|upgrade|expect):/.test(head) || /\r\nconnection:\s*close/.test(head))
    return false;
  const cls = lines.filter((l) => l.startsWith('content-length:'));
  if (cls.length > 1) return false;
  const bodyLength = b.length - e - 4;
  if (cls.length === 0) return bodyLength === 0;
  const v = cls[0].slice(15).trim();
  return /^\d{1,9}$/.test(v) && Number(v) === bodyLength;
}

/** Counts HTTP status lines in what came back (the answers to a pipelined or odd input). */
function statusLines(b: Buffer): number {
  let n = 0;
  let i = b.indexOf('HTTP/1.');
  while (i >= 0) {
    n++;
    i = b.indexOf('HTTP/1.', i + 7);
  }
  return n;
}

export async function runHttp(ctx: NetContext, name = 'http'): Promise<void> {
  const { child, site, result } = ctx;
  const space = httpSpace(site);
  const inputs = InputStream.of(
    ctx,
    'http',
    (rng) => {
      const r = rng.int(100);
      if (r < 3) return rng.bytes(rng.int(1 << rng.range(2, 12)));
      return fixLength(rng, mutate(rng, space));
    },
    [
      [PLACEHOLDER.passkey, Buffer.from(site.members.fuzz.passkey)],
      [PLACEHOLDER.token, Buffer.from(site.token)],
      [PLACEHOLDER.session, Buffer.from(site.sessions.member.cookie.split('=')[1])],
      [PLACEHOLDER.csrf, Buffer.from(site.sessions.member.csrf)],
    ],
  );
  const pace = new Pacer(ctx, inputs, name, probeInterval(ctx.count, 1000, 20_000));

  /** `sent`: what this connection carried, as generated (the previous request too, when kept alive). */
  const check = (got: Buffer, sent: Buffer[]) => {
    if (got.length === 0) return;
    if (saysInternal(got)) {
      result.internal++;
      ctx.record.add(name, 'internal-error-answer', got.toString('latin1', 0, 300), Buffer.concat(sent));
    }
  };

  /**
   * Reads the one answer to a lone request (skipping 1xx): 'keep' the connection, 'drop' it (the
   * server said close, or switched protocols), or 'unanswered' (nothing complete in time).
   */
  async function oneAnswer(c: Conn, head: boolean, sent: Buffer[]): Promise<'keep' | 'drop' | 'unanswered'> {
    let off = 0;
    const until = performance.now() + ANSWER_MS;
    for (;;) {
      const f = frameResponse(c.buf, off, head);
      if (f.kind === 'done' && f.status >= 100 && f.status < 200 && f.status !== 101) {
        off = f.next;
        continue;
      }
      if (f.kind === 'done') {
        result.answers++;
        check(c.buf.subarray(0, f.next), sent);
        c.buf = c.buf.subarray(f.next);
        return f.close || f.status === 101 ? 'drop' : 'keep';
      }
      if (f.kind !== 'incomplete' || c.closed) return 'unanswered';
      if (!(await c.wait(until - performance.now())) && performance.now() >= until) return 'unanswered';
    }
  }

  async function worker(): Promise<void> {
    let kept: Conn | null = null;
    let sent: Buffer[] = [];
    for (let generated = await pace.next(); generated !== null; generated = await pace.next()) {
      const input = inputs.fill(generated);
      const single = aloneAndComplete(input);
      const head = input.subarray(0, 5).toString('latin1') === 'HEAD ';
      let c: Conn;
      if (kept !== null && !kept.closed && single) c = kept;
      else {
        kept?.destroy();
        kept = null;
        sent = [];
        c = new Conn(child.http);
        if (!(await c.connected)) continue;
      }
      if (c.buf.length > 0) {
        // Bytes after the last answer: the server read the last request as more than one.
        check(c.buf, sent);
        result.answers += statusLines(c.buf);
      }
      c.buf = Buffer.alloc(0);
      sent = [...sent.slice(-1), generated];
      c.write(input);
      if (single) {
        const outcome = await oneAnswer(c, head, sent);
        if (outcome === 'keep') {
          kept = c;
          continue;
        }
        kept = null;
        if (outcome === 'drop') {
          c.destroy();
          continue;
        }
      }
      // Not one plain request (or no answer yet): say we are done and read to the close.
      c.end();
      const closed = await c.closedBy(performance.now() + CLOSE_MS);
      result.answers += statusLines(c.buf);
      check(c.buf, sent);
      if (!closed && child.exit() === null) {
        result.stalls++;
        ctx.record.add(name, 'stall', `no close ${CLOSE_MS} ms after the half-close`, Buffer.concat(sent));
      }
      c.destroy();
    }
    kept?.destroy();
  }

  await pace.run(CONCURRENCY, worker);
}
