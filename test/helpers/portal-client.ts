/**
 * A tiny browser for portal tests over real HTTP: keeps cookies, follows nothing by itself
 * (redirects are asserted), and reads each form's CSRF token from the page like a browser would.
 */
import { createHash, randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { encode } from '../../src/protocol/bencode/index.ts';

export interface Page {
  status: number;
  location: string | null;
  body: string;
  bytes: Buffer;
  headers: Headers;
}

export class PortalClient {
  readonly base: string;
  cookies = new Map<string, string>();
  csrf = '';

  /** The local address this browser connects from (another loopback address is another client). */
  readonly localAddress: string | null;

  constructor(base: string, opts: { localAddress?: string } = {}) {
    this.base = base;
    this.localAddress = opts.localAddress ?? null;
  }

  #absorb(r: Response) {
    for (const c of r.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      if (/Max-Age=0/.test(c)) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }

  #cookieHeader(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  async request(
    method: string,
    path: string,
    body?: string | FormData,
    headers: Record<string, string> = {},
  ): Promise<Page> {
    const init = {
      method,
      body,
      redirect: 'manual' as const,
      headers: { cookie: this.#cookieHeader(), ...headers },
    };
    const r = this.localAddress === null ? await fetch(this.base + path, init) : await this.#from(path, init);
    this.#absorb(r);
    const bytes = Buffer.from(await r.arrayBuffer());
    const text = bytes.toString('utf8');
    const m = /name="_csrf" value="([^"]+)"/.exec(text);
    if (m) this.csrf = m[1];
    return { status: r.status, location: r.headers.get('location'), body: text, bytes, headers: r.headers };
  }

  /** `fetch` cannot choose the local address; node:http can. */
  async #from(
    path: string,
    init: { method: string; body?: string | FormData; headers: Record<string, string> },
  ): Promise<Response> {
    const req = new Request(this.base + path, init);
    const body = Buffer.from(await req.arrayBuffer());
    const headers: Record<string, string> = { ...init.headers, 'content-length': String(body.length) };
    const type = req.headers.get('content-type');
    if (type !== null) headers['content-type'] = type;
    return new Promise((resolve, reject) => {
      const r = httpRequest(
        this.base + path,
        { method: init.method, headers, localAddress: this.localAddress ?? undefined },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const h = new Headers();
            for (const [k, v] of Object.entries(res.headers))
              for (const one of Array.isArray(v) ? v : [v ?? '']) h.append(k, one);
            const status = res.statusCode ?? 0;
            const payload = status === 204 || status === 304 ? null : Buffer.concat(chunks);
            resolve(new Response(payload, { status, headers: h }));
          });
        },
      );
      r.on('error', reject);
      r.end(body);
    });
  }

  get(path: string): Promise<Page> {
    return this.request('GET', path);
  }

  /** Posts a urlencoded form with the current CSRF token (unless `_csrf` is given, or null to omit it). */
  post(path: string, fields: Record<string, string | null>): Promise<Page> {
    const p = new URLSearchParams();
    const withToken = { _csrf: this.csrf, ...fields };
    for (const [k, v] of Object.entries(withToken)) if (v !== null) p.set(k, v);
    return this.request('POST', path, p.toString(), { 'content-type': 'application/x-www-form-urlencoded' });
  }

  postMultipart(
    path: string,
    fields: Record<string, string>,
    file: { name: string; filename: string; data: Buffer },
  ) {
    const form = new FormData();
    form.set('_csrf', this.csrf);
    for (const [k, v] of Object.entries(fields)) form.set(k, v);
    form.set(
      file.name,
      new Blob([new Uint8Array(file.data)], { type: 'application/x-bittorrent' }),
      file.filename,
    );
    return this.request('POST', path, form);
  }

  async login(username: string, password: string): Promise<Page> {
    await this.get('/login');
    return this.post('/login', { username, password });
  }
}

/** A small single-file v1 .torrent (not private, foreign announce URL) as a client would make. */
export function makeTorrent(name = `test-${randomBytes(4).toString('hex')}`): Buffer {
  const data = randomBytes(40_000);
  const pieceLength = 16384;
  const pieces: Buffer[] = [];
  for (let i = 0; i < data.length; i += pieceLength)
    pieces.push(
      createHash('sha1')
        .update(data.subarray(i, i + pieceLength))
        .digest(),
    );
  return encode(
    new Map<string, unknown>([
      ['announce', Buffer.from('http://elsewhere.example/announce')],
      ['created by', Buffer.from('herald tests')],
      [
        'info',
        new Map<string, unknown>([
          ['length', data.length],
          ['name', Buffer.from(name)],
          ['piece length', pieceLength],
          ['pieces', Buffer.concat(pieces)],
        ]),
      ],
    ]) as never,
  );
}
