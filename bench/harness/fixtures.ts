/**
 * A private tracker with people and torrents in it, made the way an operator makes one: members
 * and torrents through the JSON API, portal passwords through the admin CLI, logins through the
 * portal's own form. The harness's own requests come from 127.0.0.2 so that login limits earned
 * by fuzzed requests from 127.0.0.1 never lock it out.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { encode } from '../../src/protocol/bencode/index.ts';
import { httpRequest } from './clients.ts';
import type { Address, HeraldChild } from './herald-child.ts';

const ROOT = new URL('../../', import.meta.url).pathname;
export const HARNESS_ADDRESS = '127.0.0.2';
export const PASSWORD = 'correct horse battery staple';

export interface Member {
  id: number;
  username: string;
  passkey: string;
}

export interface Torrent {
  id: number;
  infoHash: Buffer;
  name: string;
  /** Bytes of content (what a leecher has left at first). */
  length: number;
}

export interface Session {
  cookie: string;
  csrf: string;
}

export interface Site {
  token: string;
  members: Record<string, Member>;
  torrents: Record<string, Torrent>;
  /** A logged-in portal session per member with a password, by username. */
  sessions: Record<string, Session>;
}

/** A private single-file v1 torrent of `length` bytes whose hash depends only on `name` and `length`. */
export function torrentFile(name: string, length = 40_000): Buffer {
  let pieceLength = 16384;
  while (Math.ceil(length / pieceLength) > 256) pieceLength *= 2;
  const digest = createHash('sha256').update(name).digest();
  const pieces = Buffer.alloc(Math.ceil(length / pieceLength) * 20);
  for (let i = 0; i < pieces.length; i++) pieces[i] = digest[i % 32];
  return encode(
    new Map<string, unknown>([
      ['announce', Buffer.from('http://127.0.0.1/announce')],
      [
        'info',
        new Map<string, unknown>([
          ['length', length],
          ['name', Buffer.from(`${name}.bin`)],
          ['piece length', pieceLength],
          ['pieces', pieces],
          ['private', 1],
        ]),
      ],
    ]) as never,
  );
}

async function api(addr: Address, token: string, method: string, path: string, body?: unknown) {
  const r = await httpRequest(addr, method, `/api/${path}`, {
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    localAddress: HARNESS_ADDRESS,
  });
  if (r.status >= 300) throw new Error(`API ${method} ${path}: ${r.status} ${r.body.toString()}`);
  return JSON.parse(r.body.toString()) as Record<string, unknown>;
}

/** Sets a member's portal password (PASSWORD) with the admin CLI, on the running tracker's database. */
export function setPassword(dataDir: string, username: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const c = spawn(
      join(ROOT, 'node_modules/.bin/node'),
      [join(ROOT, 'bin/herald.js'), 'member', 'password', username, '--data-dir', dataDir],
      { stdio: ['pipe', 'ignore', 'pipe'] },
    );
    let err = '';
    c.stderr!.on('data', (d) => {
      err += d;
    });
    c.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`member password: ${err}`))));
    c.stdin!.end(`${PASSWORD}\n`);
  });
}

const cookiesOf = (h: string | string[] | undefined) =>
  (Array.isArray(h) ? h : h ? [h] : []).map((c) => c.split(';')[0]);

/** Logs in through the portal's form; the session cookie and the session's CSRF token. */
export async function login(addr: Address, username: string): Promise<Session> {
  const form = await httpRequest(addr, 'GET', '/login', { localAddress: HARNESS_ADDRESS });
  const anon = cookiesOf(form.headers['set-cookie']).join('; ');
  const token = /name="_csrf" value="([^"]+)"/.exec(form.body.toString())?.[1] ?? '';
  const body = new URLSearchParams({ _csrf: token, username, password: PASSWORD }).toString();
  const r = await httpRequest(addr, 'POST', '/login', {
    headers: { cookie: anon, 'content-type': 'application/x-www-form-urlencoded' },
    body,
    localAddress: HARNESS_ADDRESS,
  });
  const session = cookiesOf(r.headers['set-cookie']).find((c) => c.startsWith('herald_session='));
  if (r.status !== 303 && r.status !== 302) throw new Error(`login ${username}: ${r.status}`);
  if (session === undefined) throw new Error(`login ${username}: no session cookie`);
  // /me redirects to the member's own page, which carries the session's CSRF token in its forms.
  const me = await httpRequest(addr, 'GET', '/me', {
    headers: { cookie: session },
    localAddress: HARNESS_ADDRESS,
  });
  const own = String(me.headers.location ?? '/me');
  const page = await httpRequest(addr, 'GET', own, {
    headers: { cookie: session },
    localAddress: HARNESS_ADDRESS,
  });
  const csrf = /name="_csrf" value="([^"]+)"/.exec(page.body.toString())?.[1];
  if (page.status !== 200 || csrf === undefined)
    throw new Error(`after login ${username}: ${own} ${page.status}`);
  return { cookie: session, csrf };
}

/** The serve flags of a private tracker with the API and the portal, on ephemeral loopback ports. */
export function privateArgs(token: string, extra: string[] = []): string[] {
  const flags = '--mode private --http 127.0.0.1:0 --udp 127.0.0.1:0 --flush-interval 1 --policy-refresh 1';
  return [
    ...flags.split(' '),
    '--api-token',
    token,
    '--portal',
    'on',
    '--public-urls',
    'http://127.0.0.1',
    ...extra,
  ];
}

/**
 * Members `names` (the ones in `staff` with role admin; `withPassword` get a portal password),
 * torrents `torrentNames`, a portal session for each member with a password.
 */
export async function populate(
  child: HeraldChild,
  token: string,
  opts: {
    members: string[];
    staff?: string[];
    withPassword?: string[];
    /** Names (40,000-byte torrents) or names with a length. */
    torrents: (string | { name: string; length: number })[];
  },
): Promise<Site> {
  const members: Record<string, Member> = {};
  for (const username of opts.members) {
    const m = await api(child.http, token, 'POST', 'members', {
      username,
      role: opts.staff?.includes(username) ? 'admin' : 'member',
    });
    members[username] = { id: Number(m.id), username, passkey: String(m.passkey) };
  }
  const torrents: Record<string, Torrent> = {};
  for (const spec of opts.torrents) {
    const { name, length } = typeof spec === 'string' ? { name: spec, length: 40_000 } : spec;
    const t = await api(child.http, token, 'POST', 'torrents', {
      metainfo: torrentFile(name, length).toString('base64'),
    });
    torrents[name] = { id: Number(t.id), infoHash: Buffer.from(String(t.info_hash), 'hex'), name, length };
  }
  await Promise.all((opts.withPassword ?? []).map((u) => setPassword(child.dataDir, u)));
  await api(child.http, token, 'POST', 'reload');
  const sessions: Record<string, Session> = {};
  for (const u of opts.withPassword ?? []) sessions[u] = await login(child.http, u);
  return { token, members, torrents, sessions };
}

export { api };
