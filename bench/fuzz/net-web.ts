/**
 * The web side with valid credentials, so that mutations reach the handlers rather than the door:
 * JSON API bodies (and GET paths and queries) with the bearer token, and portal forms and pages
 * as a logged-in member, a logged-in staff member (administrator) and an anonymous visitor with
 * a CSRF cookie. Requests go through node:http's client on kept-alive connections; the request
 * line and headers stay valid (the `http` target mutates those) and only the path (GET) or the
 * body (POST, PUT, PATCH) is mutated. Every template names the "victim" member and torrent, never
 * the ones the probes use.
 */
import type { Agent } from 'node:http';
import { httpRequest, keepAlive } from '../harness/clients.ts';
import { login, PASSWORD, type Site, setPassword, torrentFile } from '../harness/fixtures.ts';
import type { HeraldChild } from '../harness/herald-child.ts';
import { JSON_TOKENS, mutate, mutateJson, type Space, TEXT_NUMBERS } from './mutate.ts';
import type { Rng } from './rng.ts';
import { InputStream, type NetContext, Pacer, PLACEHOLDER, probeInterval, saysInternal } from './target.ts';

const CONCURRENCY = 8;

type Who = 'api' | 'member' | 'staff' | 'anon';

interface Template {
  who: Who;
  method: 'GET' | 'POST' | 'PUT' | 'PATCH';
  path: string;
  /** JSON value (API), urlencoded fields (forms) or raw bytes (multipart). */
  body?: unknown;
  contentType?: string;
  weight: number;
}

const text = (s: string) => Buffer.from(s, 'latin1');

/** Percent-escapes the bytes node:http refuses in a path (controls, space, non-ASCII, '#'). */
function safePath(b: Buffer): string {
  let s = '';
  for (const c of b)
    s +=
      c <= 0x20 || c >= 0x7f || c === 0x23
        ? `%${c < 16 ? '0' : ''}${c.toString(16)}`
        : String.fromCharCode(c);
  return s.startsWith('/') ? s : `/${s}`;
}

export function apiTemplates(site: Site): Template[] {
  const victim = site.torrents.victim.infoHash.toString('hex');
  const other = Buffer.alloc(20, 0x5a).toString('hex');
  const t = (method: Template['method'], path: string, body?: unknown, weight = 1): Template => ({
    who: 'api',
    method,
    path: `/api/${path}`,
    body,
    contentType: 'application/json',
    weight,
  });
  return [
    t('POST', 'members', { username: 'victim', role: 'member', email: 'victim@example.org', invites: 1 }, 3),
    t(
      'PATCH',
      'members/victim',
      { role: 'member', invites: 2, email: null, status: 'active', reason: null },
      3,
    ),
    t(
      'POST',
      'torrents',
      { metainfo: torrentFile('victim').toString('base64'), name: 'v', restricted: false },
      2,
    ),
    t(
      'POST',
      'torrents',
      { info_hash: victim, name: 'victim', size: 1, category: null, restricted: false },
      2,
    ),
    t(
      'PATCH',
      `torrents/${victim}`,
      {
        name: 'victim',
        category: 'Other',
        description: 'd',
        restricted: false,
        freeleech: false,
        download_factor: 100,
        upload_factor: 100,
      },
      3,
    ),
    t('PUT', `lists/deny/${other}`, { note: 'fuzz' }),
    t('PUT', 'clients/-PR', { note: 'the probes' }),
    t('POST', 'groups', { name: 'fuzzers' }),
    t('POST', 'grants', { torrent: victim, member: 'victim', reference: 'r', expires_at: 2_000_000_000 }, 2),
    t('PUT', 'settings', { site_download_factor: 100, site_upload_factor: 100 }),
    t('GET', 'members?search=vic&status=active&limit=10&offset=0', undefined, 2),
    t('GET', 'torrents?search=v&limit=5&offset=1'),
    t('GET', `grants?torrent=${victim}&member=victim`),
    t('GET', 'members/victim/torrents'),
    t('GET', `torrents/${victim}`),
    t('GET', 'lists/deny'),
    t('GET', 'stats'),
    t('GET', 'settings'),
  ];
}

const BOUNDARY = '----heraldfuzzboundary';

function multipart(fields: [string, string][], file: Buffer): Buffer {
  const parts: Buffer[] = [];
  for (const [k, v] of fields)
    parts.push(text(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`));
  parts.push(
    text(
      `--${BOUNDARY}\r\nContent-Disposition: form-data; name="torrent"; filename="victim.torrent"\r\n` +
        'Content-Type: application/x-bittorrent\r\n\r\n',
    ),
    file,
    text(`\r\n--${BOUNDARY}--\r\n`),
  );
  return Buffer.concat(parts);
}

export function portalTemplates(site: Site): Template[] {
  const csrf = PLACEHOLDER.csrf.toString('latin1');
  const vm = site.members.victim.id;
  const vt = site.torrents.victim.id;
  const hex = Buffer.alloc(20, 0x6b).toString('hex');
  const form = (who: Who, path: string, fields: string, weight = 1): Template => ({
    who,
    method: 'POST',
    path,
    body: `_csrf=${csrf}&${fields}`,
    contentType: 'application/x-www-form-urlencoded',
    weight,
  });
  const get = (who: Who, path: string, weight = 1): Template => ({ who, method: 'GET', path, weight });
  return [
    form('member', '/invites', 'email=friend%40example.org', 2),
    form('member', '/me/feedkey', 'x=1'),
    form('member', '/me/passkey', 'x=1'),
    // Checks the current password first (scrypt, tens of ms): rare, as people do it.
    form(
      'member',
      '/me/password',
      `current=${encodeURIComponent(PASSWORD)}&password=another+password+1&password2=another+password+1`,
      0.2,
    ),
    {
      who: 'member',
      method: 'POST',
      path: '/upload',
      body: multipart(
        [
          ['_csrf', csrf],
          ['name', 'victim upload'],
          ['category', 'Other'],
          ['description', 'a description'],
        ],
        torrentFile('upload'),
      ),
      contentType: `multipart/form-data; boundary=${BOUNDARY}`,
      weight: 2,
    },
    get('member', '/torrents?q=fuzz&sort=seeders&dir=asc&page=1&cat=Other', 2),
    get('member', `/torrent/${vt}`),
    get('member', `/member/${vm}`),
    get('member', '/invites'),
    get('member', `/torrent/${vt}/download`),
    form('staff', `/staff/members/${vm}`, 'action=status&status=disabled&reason=fuzzing', 2),
    form('staff', `/staff/members/${vm}`, 'action=status&status=active&reason=', 2),
    form('staff', `/staff/members/${vm}`, 'action=invites&invites=5'),
    form('staff', `/staff/members/${vm}`, 'action=role&role=uploader'),
    form(
      'staff',
      `/staff/torrents/${vt}`,
      'action=edit&name=victim&category=Other&description=d&freeleech=on',
      2,
    ),
    form('staff', `/staff/torrents/${vt}`, 'action=grant&who=victim&days=30&reference=x'),
    form('staff', `/staff/torrents/${vt}`, 'action=grant&who=group%3Afuzzers&days='),
    form('staff', `/staff/torrents/${vt}`, 'action=revoke&grant=1'),
    form('staff', `/staff/torrents/${vt}`, 'action=free'),
    form('staff', '/staff/lists', `action=add&list=deny&value=${hex}&note=x`),
    form('staff', '/staff/lists', `action=remove&list=allow&value=${hex}`),
    form('staff', '/staff/applications/1', 'action=reject&reason=no'),
    get('staff', '/staff/members?q=vic&status=active'),
    get('staff', '/staff/torrents?q=v'),
    get('staff', '/staff/stats'),
    get('staff', '/staff/invites'),
    get('staff', '/staff/applications'),
    get('staff', '/staff/lists'),
    form(
      'anon',
      '/register',
      'invite=abcdefghijkl&username=newbie&email=n%40example.org&password=longpassword1&password2=longpassword1',
    ),
    form(
      'anon',
      '/apply',
      'username=applicant&email=a%40example.org&body=I+would+like+to+join+because+I+seed+a+lot',
    ),
    form('anon', '/login', 'username=victim&password=wrong'),
    get('anon', `/rss?key=${'0'.repeat(32)}`),
    // Account mail and two-factor authentication (issue #16).
    form('anon', '/forgot', 'who=victim'),
    form('anon', '/forgot', 'who=victim%40example.org'),
    form('anon', `/reset/${'A'.repeat(43)}`, 'password=longpassword1&password2=longpassword1'),
    get('anon', `/reset/${'A'.repeat(43)}`),
    form('anon', '/login/2fa', 'code=123456'),
    form('member', '/me/email', 'email=victim%40example.org'),
    form('member', '/me/2fa/setup', 'x=1'),
    form('member', '/me/2fa/confirm', 'code=123456'),
    form('member', '/me/2fa/disable', 'code=abcd-efgh-jkmn-pqrs'),
    get('member', '/me/security'),
    form('staff', `/staff/members/${vm}/reset-link`, 'x=1'),
    form('staff', `/staff/members/${vm}/2fa-reset`, 'x=1'),
  ];
}

const FORM_TOKENS = [
  '&',
  '=',
  '%',
  '%00',
  '%zz',
  '%C3%A9',
  '%ff',
  '+',
  '_csrf=',
  'action=',
  'status=',
  'role=',
  'admin',
  'banned',
  'list=',
  'value=',
  'who=',
  'group:',
  'days=',
  'invites=',
  'email=',
  'password=',
  'password2=',
  'username=',
  'q=',
  'page=',
  'sort=',
  'dir=',
  'cat=',
  '\r\n',
  '--',
  BOUNDARY,
  'Content-Disposition: form-data; name="',
  '"; filename="',
  'Content-Type: ',
  'x'.repeat(300),
].map(text);

export interface WebInput {
  template: Template;
  path: string;
  body: Buffer | undefined;
}

/** Inputs are "<template index>\n<path>\n<body>" so that a saved one can be replayed. */
function makeWebInput(list: Template[], space: Space, json: boolean) {
  const weighted = list.map((t, i) => [t.weight, i] as const);
  return (rng: Rng): Buffer => {
    const i = rng.weighted(weighted);
    const t = list[i];
    let path = t.path;
    let body: Buffer = Buffer.alloc(0);
    if (t.method === 'GET') path = safePath(mutate(rng, space, text(t.path)));
    else if (Buffer.isBuffer(t.body)) body = mutate(rng, space, t.body);
    else if (json && rng.chance(0.5)) {
      body = Buffer.from(mutateJson(rng, t.body), 'utf8');
      if (rng.chance(0.3)) body = mutate(rng, space, body);
    } else body = mutate(rng, space, json ? Buffer.from(JSON.stringify(t.body)) : text(String(t.body)));
    return Buffer.concat([text(`${i}\n${path}\n`), body]);
  };
}

function splitInput(list: Template[], b: Buffer): WebInput {
  const a = b.indexOf(0x0a);
  const c = b.indexOf(0x0a, a + 1);
  const template = list[Number(b.toString('latin1', 0, a))];
  return {
    template,
    path: b.toString('latin1', a + 1, c),
    body: template.method === 'GET' ? undefined : b.subarray(c + 1),
  };
}

async function runWeb(
  ctx: NetContext,
  name: 'api' | 'portal',
  list: Template[],
  space: Space,
): Promise<void> {
  const { child, site, result } = ctx;
  const agents: Record<Who, Agent> = {
    api: keepAlive(CONCURRENCY),
    member: keepAlive(CONCURRENCY),
    staff: keepAlive(CONCURRENCY),
    anon: keepAlive(CONCURRENCY),
  };
  const anonCsrf = Buffer.from(site.sessions.member.csrf);
  const inputs = InputStream.of(ctx, name, makeWebInput(list, space, name === 'api'));
  const pace = new Pacer(ctx, inputs, name, probeInterval(ctx.count, 200, 10_000));
  let relogging: Promise<unknown> | null = null;
  let resets = 0;

  const headersFor = (t: Template): Record<string, string> => {
    const h: Record<string, string> = {};
    if (t.contentType) h['content-type'] = t.contentType;
    if (t.who === 'api') h.authorization = `Bearer ${site.token}`;
    else if (t.who === 'anon') h.cookie = `herald_csrf=${anonCsrf.toString()}`;
    else h.cookie = site.sessions[t.who].cookie;
    return h;
  };
  const csrfFor = (t: Template) =>
    t.who === 'member' || t.who === 'staff' ? site.sessions[t.who].csrf : anonCsrf.toString();

  async function worker(): Promise<void> {
    for (let raw = await pace.next(); raw !== null; raw = await pace.next()) {
      if (relogging) await relogging;
      const inp = splitInput(list, raw);
      const t = inp.template;
      const body =
        inp.body === undefined
          ? undefined
          : Buffer.from(
              inp.body.toString('latin1').split(PLACEHOLDER.csrf.toString('latin1')).join(csrfFor(t)),
              'latin1',
            );
      let r: Awaited<ReturnType<typeof httpRequest>>;
      try {
        r = await httpRequest(child.http, t.method, inp.path, {
          headers: headersFor(t),
          body,
          agent: agents[t.who],
          timeoutMs: 30_000,
        });
      } catch (err) {
        // A reset is how the server ends a request it refuses to read (413); a timeout is not.
        if (String(err).includes('timeout')) {
          result.stalls++;
          ctx.record.add(name, 'stall', `${t.method} ${inp.path}: no answer in 30 s`, raw);
        } else resets++;
        continue;
      }
      result.answers++;
      if (r.status === 500 || saysInternal(r.body)) {
        result.internal++;
        ctx.record.add(
          name,
          'internal-error-answer',
          `${t.method} ${inp.path} -> ${r.status}: ${r.body.toString('utf8', 0, 200)}`,
          raw,
        );
      }
      // A session can end (a staff form disabling... the victim only; a password changed by a
      // mutated form): log in again, as the person would, and go on.
      if (
        (t.who === 'member' || t.who === 'staff') &&
        r.status === 303 &&
        r.headers.location === '/login' &&
        relogging === null
      ) {
        relogging = relogin(child, site, t.who).finally(() => {
          relogging = null;
        });
      }
    }
  }

  try {
    await pace.run(CONCURRENCY, worker);
    if (relogging) await relogging;
  } finally {
    for (const a of Object.values(agents)) a.destroy();
    if (resets > 0) ctx.progress(`${name}: ${resets} connections reset by the server (refused bodies)`);
  }
}

/** A new session for `who` (after resetting the password with the admin CLI, in case it changed). */
async function relogin(child: HeraldChild, site: Site, who: 'member' | 'staff'): Promise<void> {
  await setPassword(child.dataDir, who);
  site.sessions[who] = await login(child.http, who);
}

export function runApi(ctx: NetContext): Promise<void> {
  const space: Space = {
    templates: apiTemplates(ctx.site).map((t) => Buffer.from(JSON.stringify(t.body ?? {}))),
    tokens: [
      ...JSON_TOKENS,
      ...TEXT_NUMBERS,
      text('/'),
      text('?'),
      text('&'),
      text('%'),
      text('%2F'),
      text('..'),
    ],
    separators: [text(','), text('&'), text('/')],
    numbers: 'text',
    maxLength: 1 << 16,
  };
  return runWeb(ctx, 'api', apiTemplates(ctx.site), space);
}

export function runPortal(ctx: NetContext): Promise<void> {
  const list = portalTemplates(ctx.site);
  const space: Space = {
    templates: list.map((t) => (Buffer.isBuffer(t.body) ? t.body : text(String(t.body ?? t.path)))),
    tokens: [...FORM_TOKENS, ...TEXT_NUMBERS],
    separators: [text('&'), text('\r\n'), text('/')],
    numbers: 'text',
    maxLength: 1 << 17,
  };
  return runWeb(ctx, 'portal', list, space);
}
