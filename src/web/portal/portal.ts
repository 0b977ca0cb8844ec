import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { parseClasses } from '../../config/classes.ts';
import { formatIp, parseIp } from '../../core/address.ts';
import { bundledFile } from '../../core/bundled.ts';
import { isShardUnavailable } from '../../core/errors.ts';
import { TrustedProxies } from '../../core/forwarded.ts';
import { AttemptLimit } from './attempts.ts';
import { type Ctx, errorPage, isStaff, type PortalDeps, redirect, send, staffPowers } from './context.ts';
import { BodyGate, isFormError, parseForm, readBody } from './forms.ts';
import { accountRoutes, CurrentPassword } from './routes-account.ts';
import { authRoutes, type LoginLimits, type Route, SESSION_COOKIE } from './routes-auth.ts';
import { bonusRoutes } from './routes-bonus.ts';
import { hnrRoutes } from './routes-hnr.ts';
import { memberRoutes } from './routes-members.ts';
import { promotionRoutes } from './routes-promotions.ts';
import { staffRoutes } from './routes-staff.ts';
import { torrentRoutes } from './routes-torrents.ts';
import { cookie, newToken, PasswordBusyError, parseCookies, sameToken, tokenId } from './security.ts';

export type { PortalDeps } from './context.ts';

const CSRF_COOKIE = 'herald_csrf';
/** Form bodies are small; a route that takes more says so (`Route.maxBody`, the upload). */
const FORM_LIMIT = 256 * 1024;
/**
 * Uploads (bodies over the form limit) read at once in this process, one per member at most
 * (`BodyGate`): what unfinished uploads can hold is about this many times `max_torrent_bytes`.
 */
export const UPLOADS_AT_ONCE = 8;

/** A static file: embedded in the single-file build (under its name), else read from `path()`. */
function asset(name: string, path: () => string, type: string) {
  const body = bundledFile(name) ?? readFileSync(path());
  return { body, type };
}

function loadAssets() {
  const here = () => new URL('.', import.meta.url).pathname;
  const chartDir = () => dirname(createRequire(import.meta.url).resolve('chart.js'));
  const css = 'text/css; charset=utf-8';
  const js = 'text/javascript; charset=utf-8';
  return new Map([
    ['/static/portal.css', asset('portal.css', () => join(here(), 'static/portal.css'), css)],
    ['/static/portal.js', asset('portal.js', () => join(here(), 'static/portal.js'), js)],
    ['/static/chart.umd.min.js', asset('chart.umd.min.js', () => join(chartDir(), 'chart.umd.min.js'), js)],
  ]);
}

export interface Portal {
  handle(req: IncomingMessage, res: ServerResponse): void;
  /** Background jobs: traffic and site history snapshots, invite earning, session cleanup. */
  start(): void;
  stop(): void;
  /** Runs the background jobs once now (tests). */
  tick(): Promise<void>;
}

/**
 * The community portal (issue 6): server-rendered pages over the Registry, no client framework.
 * Every request: static assets; else the session (cookie → SHA-256 → sessions row, and the
 * member must still be active); every POST is read under a size limit, parsed strictly (400 on
 * a malformed body) and must carry the session's CSRF token (403 otherwise) before any handler
 * runs. Routes declare who may use them (public, member, staff, admin).
 */
export function createPortal(
  deps: PortalDeps,
  opts: { loginLimits?: LoginLimits; snapshotSeconds?: number } = {},
): Portal {
  const assets = loadAssets();
  // Classes that earn another number of invites (issue #16); the first class is also a null class.
  const invitesPerClass = new Map<string | null, number>();
  parseClasses(deps.config.memberClasses).forEach((k, i) => {
    if (k.invites === null) return;
    invitesPerClass.set(k.name, k.invites);
    if (i === 0) invitesPerClass.set(null, k.invites);
  });
  // The current password retyped on /me/password, /me/email and /me/2fa/confirm: one limit for all.
  const current = new CurrentPassword();
  const routes: Route[] = [
    ...authRoutes(opts.loginLimits),
    ...accountRoutes(current),
    ...torrentRoutes(deps.config),
    ...memberRoutes(current),
    ...staffRoutes(),
    ...hnrRoutes(),
    ...bonusRoutes(),
    ...promotionRoutes(),
  ];
  // Behind a reverse proxy (trusted_proxies) the client is the address the proxies appended to
  // X-Forwarded-For (core/forwarded.ts, the rule the tracker uses too; earlier entries are whatever
  // the client sent), and X-Forwarded-Proto says whether the browser used HTTPS (so the cookies
  // get Secure).
  const proxies = new TrustedProxies(deps.config.trustedProxies);
  const behindProxy = (req: IncomingMessage) => proxies.trusts(parseIp(req.socket.remoteAddress ?? ''));
  const client = (req: IncomingMessage): { ip: string; secure: boolean } => {
    const remote = req.socket.remoteAddress ?? '';
    const encrypted = (req.socket as TLSSocket).encrypted === true;
    const r = parseIp(remote);
    if (r === null || !proxies.trusts(r)) return { ip: r ? formatIp(r.bytes) : remote, secure: encrypted };
    const xff = req.headers['x-forwarded-for'];
    return {
      ip: formatIp(proxies.client(r, typeof xff === 'string' ? xff : null).bytes),
      secure: encrypted || req.headers['x-forwarded-proto'] === 'https',
    };
  };
  let timer: NodeJS.Timeout | null = null;
  let first: NodeJS.Timeout | null = null;
  const uploads = new BodyGate(UPLOADS_AT_ONCE);
  // uploads_per_hour (0: none), per member, in the database: one count for every process.
  const perHour = deps.config.uploadsPerHour;
  const uploadLimit = new AttemptLimit('uploads', { limit: Math.max(1, perHour), windowMs: 3600_000 });

  async function dispatch(req: IncomingMessage, res: ServerResponse) {
    const url = URL.parse(req.url ?? '/', 'http://portal.invalid');
    if (url === null) {
      // A target no URL parser accepts (`//a:99999/`, an absolute form with a broken host): the
      // client's mistake, answered before any page code runs.
      res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8' });
      res.end('bad request target\n');
      return;
    }
    const base = deps.config.portalPath;
    // Under a prefix, pages see their paths without it (the web app only sends prefixed ones).
    const path =
      base !== '' && url.pathname.startsWith(base) ? url.pathname.slice(base.length) || '/' : url.pathname;
    const method = req.method === 'HEAD' ? 'GET' : (req.method ?? 'GET');
    const { ip, secure } = client(req);
    const ctx: Ctx = {
      req,
      res,
      deps,
      reg: deps.registry(),
      path,
      query: url.searchParams,
      params: [],
      member: null,
      csrf: '',
      secure,
      ip,
      form: { fields: new Map(), files: new Map() },
      now: Math.floor(Date.now() / 1000),
      setCookies: [],
      base,
      pending: null,
      twoFactor: false,
    };
    const file = assets.get(path);
    if (file && method === 'GET') {
      send(ctx, 200, file.type, file.body, { 'cache-control': 'public, max-age=3600' });
      return;
    }
    const cookies = parseCookies(req.headers.cookie);
    const token = cookies.get(SESSION_COOKIE);
    if (token) {
      const s = await ctx.reg.accounts.session(tokenId(token), ctx.now);
      if (s && s.member.status === 'active') {
        // A session that still owes the second factor is no login: only /login/2fa reads it.
        if (s.pending) ctx.pending = s.member;
        else ctx.member = s.member;
        ctx.csrf = s.csrf;
        ctx.twoFactor = s.twoFactor;
      } else {
        // A banned or disabled member's sessions end at once.
        if (s) await ctx.reg.accounts.deleteMemberSessions(s.member.id);
        ctx.setCookies.push(cookie(SESSION_COOKIE, '', { maxAge: 0, secure }));
      }
    }
    if (ctx.csrf === '') {
      // Before login, forms (login, register, apply) carry a per-browser token from a cookie.
      const anon = cookies.get(CSRF_COOKIE);
      if (anon && anon.length >= 32) ctx.csrf = anon;
      else {
        ctx.csrf = newToken();
        ctx.setCookies.push(cookie(CSRF_COOKIE, ctx.csrf, { maxAge: 86400, secure }));
      }
    }

    let route: Route | undefined;
    const allow = new Set<string>();
    for (const r of routes) {
      const m = r.pattern.exec(path);
      if (!m) continue;
      if (r.method !== method) {
        allow.add(r.method);
        if (r.method === 'GET') allow.add('HEAD');
        continue;
      }
      route = r;
      ctx.params = m.slice(1);
      break;
    }
    if (!route) {
      // 405 names the methods the path takes (RFC 9110 15.5.6); HEAD wherever GET is.
      if (allow.size > 0)
        return send(ctx, 405, 'text/plain; charset=utf-8', 'method not allowed\n', {
          allow: [...allow].join(', '),
        });
      return errorPage(ctx, 404, 'Not found', 'There is no page here.');
    }

    // Access before the body: an anonymous client cannot make Herald read an upload-sized body.
    if (route.access !== 'public') {
      if (!ctx.member) return redirect(ctx, `/login`);
      if (route.access === 'staff' && !isStaff(ctx.member))
        return errorPage(ctx, 403, 'Forbidden', 'This page is for staff.');
      if (route.access === 'admin' && ctx.member.role !== 'admin')
        return errorPage(ctx, 403, 'Forbidden', 'This page is for administrators.');
      // require_2fa_for_staff: staff without 2FA are sent to turn it on before any staff page.
      if (
        (route.access === 'staff' || route.access === 'admin') &&
        deps.config.require2faForStaff &&
        !ctx.twoFactor
      )
        return redirect(ctx, '/me/security?msg=staff2fa');
    }
    let release: (() => void) | null = null;
    if (method === 'POST' && (route.maxBody ?? FORM_LIMIT) > FORM_LIMIT) {
      // An upload is held in memory while it arrives (for minutes on a slow link): one per member
      // and UPLOADS_AT_ONCE in all, refused before the body is read (node:http discards it).
      const gate = uploads.enter(ctx.member?.id ?? ctx.ip);
      if (gate === 'mine') {
        req.resume();
        return errorPage(
          ctx,
          429,
          'Upload',
          'An upload of yours is still being received: wait until it is done, then try again.',
        );
      }
      if (gate === 'full') {
        req.resume();
        ctx.res.setHeader('retry-after', '5');
        return errorPage(ctx, 503, 'Upload', 'The server is busy receiving uploads. Try again in a moment.');
      }
      release = gate;
    }
    try {
      // Each upload is parsed on the event loop the tracker shares (up to about a second at the
      // caps), a refused one too: uploads_per_hour per member, counted in the database (every
      // process), before the body is read; staff are not limited.
      if (release !== null && perHour > 0 && ctx.member !== null && !staffPowers(ctx)) {
        const wait = await uploadLimit.take(ctx.reg.accounts, String(ctx.member.id));
        if (wait > 0) {
          req.resume();
          ctx.res.setHeader('retry-after', String(Math.ceil(wait / 1000)));
          return errorPage(
            ctx,
            429,
            'Upload',
            `This site takes ${perHour} uploads per hour from a member: try again in ${Math.ceil(wait / 60_000)} min.`,
          );
        }
      }
      await readAndHandle(ctx, route, method);
    } finally {
      release?.();
    }
  }

  /** The body of a POST (read, parsed, its CSRF token checked), then the route's handler. */
  async function readAndHandle(ctx: Ctx, route: Route, method: string) {
    const req = ctx.req;
    if (method === 'POST') {
      // A browser always sends Origin on a cross-site POST: refuse a foreign one outright.
      const origin = req.headers.origin;
      if (origin !== undefined && origin !== 'null') {
        let host = '';
        try {
          host = new URL(origin).host;
        } catch {}
        const forwardedHost = behindProxy(req) ? req.headers['x-forwarded-host'] : undefined;
        if (host !== req.headers.host && host !== forwardedHost)
          return errorPage(ctx, 403, 'Forbidden', 'Cross-site form posts are refused.');
      }
      // A body that stops arriving is given up after http_idle_timeout, and a form (not an
      // upload, which a slow link may take minutes to send) must arrive whole within it.
      const idleMs = deps.config.httpIdleTimeout * 1000;
      const limit = route.maxBody ?? FORM_LIMIT;
      const body = await readBody(req, limit, {
        stallMs: idleMs,
        wholeMs: limit > FORM_LIMIT ? null : idleMs,
      });
      if (isFormError(body)) {
        if (body.status === 408) {
          // The rest of the body is not waited for: the connection ends with the answer.
          ctx.res.setHeader('connection', 'close');
          ctx.res.on('finish', () => req.socket.destroy());
        }
        return errorPage(ctx, body.status, 'Bad request', body.message);
      }
      const form = parseForm(body, req.headers['content-type'] ?? '');
      if (isFormError(form)) return errorPage(ctx, form.status, 'Bad request', form.message);
      ctx.form = form;
      if (!sameToken(form.fields.get('_csrf') ?? '', ctx.csrf))
        return errorPage(
          ctx,
          403,
          'Forbidden',
          'This form has expired or did not come from this site. Go back, reload and try again.',
        );
    }

    await route.handle(ctx);
  }

  async function tick() {
    const reg = deps.registry();
    const now = Math.floor(Date.now() / 1000);
    const c = deps.config;
    await reg.accounts.snapshotTraffic(now);
    const counts = await reg.counts();
    // With workers, one that is starting or restarting cannot give its figures: this period's
    // site row is left out (a gap in the history, not a row with half the peers); the rest runs.
    const s = await deps.stats().catch((err: unknown) => {
      if (isShardUnavailable(err)) return null;
      throw err;
    });
    if (s !== null) {
      const total = s.total ?? {
        peers: s.swarm.seeders + s.swarm.leechers,
        seeders: s.swarm.seeders,
        leechers: s.swarm.leechers,
      };
      const a = s.perSecond.announces;
      await reg.accounts.snapshotSite({
        at: now,
        members: counts.members,
        torrents: counts.torrents,
        peers: total.peers,
        seeders: total.seeders,
        leechers: total.leechers,
        announce_rate: Math.round((a.http + a.udp + a.ws) * 100),
      });
    }
    await reg.accounts.grantEarnedInvites({
      minRatio: c.inviteMinRatioPercent / 100,
      minAgeSeconds: c.inviteMinAgeDays * 86400,
      minUploaded: c.inviteMinUploaded,
      perPeriod: c.invitesPerPeriod,
      periodSeconds: c.invitePeriodDays * 86400,
      at: now,
      perClass: invitesPerClass,
    });
    await reg.accounts.deleteExpiredSessions(now);
  }

  return {
    handle(req, res) {
      dispatch(req, res).catch((err) => {
        if (err instanceof PasswordBusyError && !res.headersSent) {
          res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', 'retry-after': '5' });
          res.end('The server is busy checking passwords. Try again in a moment.\n');
          return;
        }
        deps.onError(err);
        if (!res.headersSent) {
          res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
          res.end('internal error\n');
        } else res.destroy();
      });
    },
    start() {
      if (timer) return;
      const every = (opts.snapshotSeconds ?? 600) * 1000;
      const run = () => void tick().catch(deps.onError);
      first = setTimeout(run, 1000);
      first.unref();
      timer = setInterval(run, every);
      timer.unref();
    },
    stop() {
      if (timer) clearInterval(timer);
      if (first) clearTimeout(first);
      timer = null;
      first = null;
    },
    tick,
  };
}
