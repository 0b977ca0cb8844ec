import type { IncomingMessage, ServerResponse } from 'node:http';
import type { HeraldConfig } from '../../config/schema.ts';
import type { ScrapeEntry } from '../../core/types.ts';
import { type PublicMember, type Registry, RegistryError } from '../../db/registry.ts';
import type { Role } from '../../db/schema.ts';
import type { Mailer } from '../../mail/mailer.ts';
import type { BonusConfigKey } from '../../policy/bonus.ts';
import type { HnrConfigKey } from '../../policy/hit-and-run.ts';
import type { Promotions } from '../../policy/promotions.ts';
import type { StatsSnapshot } from '../../tracker/stats.ts';
import type { Form } from './forms.ts';
import { type Html, html } from './html.ts';

/** What the portal needs from the rest of Herald (wired by cli/compose.ts). */
export interface PortalDeps {
  config: Pick<
    HeraldConfig,
    | 'siteName'
    | 'registration'
    | 'applications'
    | 'categories'
    | 'maxTorrentBytes'
    | 'hideRestricted'
    | 'inviteExpiryDays'
    | 'inviteMinRatioPercent'
    | 'inviteMinAgeDays'
    | 'inviteMinUploaded'
    | 'invitesPerPeriod'
    | 'invitePeriodDays'
    | 'peerTimeout'
    | 'trustedProxies'
    | 'portalPath'
    | 'ratioWatchDays'
    | 'ratioWatchMinPercent'
    | HnrConfigKey
    | 'memberClasses'
    | BonusConfigKey
    | 'bonusUploadPrice'
    | 'bonusInvitePrice'
    | 'bonusTokenPrice'
    | 'freeleechTokenDays'
    | 'promotionUploadFactor'
    | 'featuredDays'
    | 'connectableCheck'
    | 'connectableInterval'
    | 'siteUrl'
    | 'resetLinkMinutes'
    | 'require2faForStaff'
    | 'totpEncryptionKey'
    | 'httpIdleTimeout'
    | 'uploadsPerHour'
  >;
  /** Account mail (null or absent: no SMTP server configured). */
  mailer?: Mailer | null;
  registry: () => Registry;
  /** Applies a change made here to this tracker at once (other instances follow the revision). */
  refreshPolicy: () => Promise<unknown>;
  /** The promotions of the tracker's policy snapshot (issue #16): the site-wide event banner. */
  promotions?: () => Promotions;
  /** Live swarm counts through the SwarmStore read API (may be asynchronous). */
  scrape: (infoHashes: Uint8Array[]) => ScrapeEntry[] | Promise<ScrapeEntry[]>;
  stats: () => Promise<StatsSnapshot>;
  /** Announce base URLs of this tracker (http, https, udp). */
  urls: () => string[];
  /**
   * Torrents a member seeds and leeches now, each counted once however many peer ids it uses,
   * from the accounting baselines (private mode).
   */
  activity?: (
    memberId: number,
  ) => { seeding: number; leeching: number } | Promise<{ seeding: number; leeching: number }>;
  onError: (err: unknown) => void;
}

export interface Ctx {
  req: IncomingMessage;
  res: ServerResponse;
  deps: PortalDeps;
  reg: Registry;
  path: string;
  query: URLSearchParams;
  /** Captures of the route's pattern. */
  params: string[];
  member: PublicMember | null;
  csrf: string;
  secure: boolean;
  ip: string;
  form: Form;
  now: number;
  setCookies: string[];
  /** Path prefix of the portal (`portal_path`), '' at the root. */
  base: string;
  /** A session whose password was right and whose second factor is still owed (not logged in). */
  pending: PublicMember | null;
  /** The logged-in member has two-factor authentication on. */
  twoFactor: boolean;
}

export const STAFF: readonly Role[] = ['moderator', 'admin'];
export const isStaff = (m: PublicMember | null) => m !== null && STAFF.includes(m.role);

/**
 * Whether the logged-in member may use staff powers outside the staff pages (restricted torrents
 * without a grant, invitations without spending one, a profile's staff view): staff, and with
 * `require_2fa_for_staff` only with two-factor authentication on. Otherwise the password alone
 * would give on member pages what the rule keeps behind the second factor on staff pages.
 */
export const staffPowers = (ctx: Ctx) =>
  isStaff(ctx.member) && (ctx.twoFactor || !ctx.deps.config.require2faForStaff);

/**
 * Why the logged-in staff member may not change `target`'s account from a staff page, or null
 * when they may: staff never change their own (no bonus, rights, forgiveness, freeleech or grants
 * for themselves), and only administrators change other staff's (two moderators cannot do each
 * other favours, nor a moderator act against an administrator).
 */
export function staffRefusal(ctx: Ctx, target: { id: number; role: Role }): string | null {
  const me = ctx.member!;
  if (target.id === me.id) return 'Staff cannot change their own account here.';
  if (STAFF.includes(target.role) && me.role !== 'admin')
    return 'Only an administrator can change staff accounts.';
  return null;
}

/** `staffPowers` for any member: the logged-in one, or the owner of a feed key. */
export async function staffPowersOf(ctx: Ctx, m: PublicMember): Promise<boolean> {
  if (m === ctx.member) return staffPowers(ctx);
  if (!isStaff(m)) return false;
  return !ctx.deps.config.require2faForStaff || (await ctx.reg.accounts.twoFactor(m.id)).enabledAt !== null;
}

/** Messages shown after a redirect, by key: never text from the query string. */
export const MESSAGES: Record<string, string> = {
  registered: 'Your account is ready. Log in to continue.',
  loggedout: 'You are logged out.',
  uploaded: 'Torrent uploaded. Download your personal .torrent below and start seeding.',
  passkey: 'Your passkey was reset: download your .torrent files again.',
  feedkey: 'Your feed key was reset: update your RSS client.',
  password: 'Password changed. Other sessions were logged out.',
  saved: 'Saved.',
  deleted: 'Deleted.',
  banned: 'Member banned; their sessions ended and the tracker refuses their passkey.',
  approved: 'Application approved: an invitation was issued.',
  rejected: 'Application rejected.',
  invited: 'Invitation created.',
  forgiven: 'Hit-and-run forgiven.',
  bought: 'Bought: it is yours now.',
  token: 'Freeleech token spent: this torrent is free for you.',
  reset: 'Your password was changed and every session logged out. Log in with the new one.',
  twofactor: 'Two-factor authentication is off.',
  email: 'E-mail address saved.',
  staff2fa: 'Staff pages need two-factor authentication: turn it on below.',
};

export function send(
  ctx: Ctx,
  status: number,
  type: string,
  body: string | Buffer,
  extra: Record<string, string> = {},
) {
  // Under a path prefix, the templates' root-relative links get it here: escaped user text can
  // never contain a literal `href="/` (quotes are escaped), so only Herald's own markup matches.
  if (ctx.base !== '' && typeof body === 'string' && type.startsWith('text/html'))
    body = body.replace(/ (href|action|src)="\//g, ` $1="${ctx.base}/`);
  const headers: Record<string, string | string[]> = {
    'content-type': type,
    'content-length': String(Buffer.byteLength(body)),
    'x-content-type-options': 'nosniff',
    // Passkeys and invitation codes live in URLs: never send them to another site.
    'referrer-policy': 'same-origin',
    ...extra,
  };
  if (ctx.setCookies.length > 0) headers['set-cookie'] = ctx.setCookies;
  ctx.res.writeHead(status, headers);
  ctx.res.end(ctx.req.method === 'HEAD' ? undefined : body);
}

export function redirect(ctx: Ctx, to: string) {
  const location = to.startsWith('/') ? ctx.base + to : to;
  send(ctx, 303, 'text/plain; charset=utf-8', `see ${location}\n`, { location });
}

const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

export function csrfField(ctx: Ctx): Html {
  return html`<input type="hidden" name="_csrf" value="${ctx.csrf}">`;
}

interface NavItem {
  href: string;
  label: string;
}

export function page(
  ctx: Ctx,
  opts: {
    title: string;
    body: Html;
    status?: number;
    nav?: string;
    error?: string | null;
    flash?: string | null;
  },
) {
  const m = ctx.member;
  const items: NavItem[] = m
    ? [
        { href: '/torrents', label: 'Torrents' },
        { href: '/upload', label: 'Upload' },
        { href: '/invites', label: 'Invites' },
        ...(ctx.deps.config.bonusBase > 0 ||
        ctx.deps.config.bonusUploadPrice > 0 ||
        ctx.deps.config.bonusInvitePrice > 0 ||
        ctx.deps.config.bonusTokenPrice > 0
          ? [{ href: '/bonus', label: 'Bonus' }]
          : []),
        { href: `/member/${m.id}`, label: 'Profile' },
        ...(isStaff(m) ? [{ href: '/staff', label: 'Staff' }] : []),
      ]
    : [
        { href: '/login', label: 'Log in' },
        { href: '/register', label: 'Register' },
        ...(ctx.deps.config.applications ? [{ href: '/apply', label: 'Apply' }] : []),
      ];
  const nav = opts.nav ?? ctx.path;
  const msgKey = ctx.query.get('msg');
  const flash = opts.flash ?? (msgKey && MESSAGES[msgKey]) ?? null;
  const site = ctx.deps.config.siteName;
  const doc = html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${opts.title} · ${site}</title>
<link rel="stylesheet" href="/static/portal.css">
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="site"><div class="bar">
<a class="brand" href="/">${site}</a>
<nav aria-label="Main"><ul>
${items.map((i) => html`<li><a href="${i.href}"${nav.startsWith(i.href) ? html` aria-current="page"` : ''}>${i.label}</a></li>`)}
</ul></nav>
${
  m
    ? html`<form method="post" action="/logout" class="inline"><span class="muted">${m.username}</span>${csrfField(ctx)}<button class="secondary" type="submit">Log out</button></form>`
    : ''
}
</div></header>
<main id="main">
${eventBanner(ctx)}
${opts.error ? html`<div class="flash error" role="alert">${opts.error}</div>` : ''}
${flash ? html`<div class="flash ok" role="status">${flash}</div>` : ''}
${opts.body}
</main>
<footer class="site">${site} · powered by Herald</footer>
<script src="/static/chart.umd.min.js" defer></script>
<script src="/static/portal.js" defer></script>
</body>
</html>
`;
  send(ctx, opts.status ?? 200, 'text/html; charset=utf-8', doc.value, {
    'content-security-policy': CSP,
    'cache-control': 'no-store',
  });
}

/** "freeleech + double upload", "uploads count 150%", ... */
export function dealText(free: boolean, uploadFactor: number): string {
  const up =
    uploadFactor === 200 ? 'double upload' : uploadFactor !== 100 ? `uploads count ${uploadFactor}%` : '';
  return [free ? 'freeleech' : '', up].filter((x) => x !== '').join(' + ');
}

/**
 * The site-wide event in force (or the next to come) above every member's page (issue #16), from
 * the tracker's policy snapshot: no query per page. '' without one.
 */
function eventBanner(ctx: Ctx): Html | '' {
  if (ctx.member === null || ctx.deps.promotions === undefined) return '';
  const e = ctx.deps.promotions().current(ctx.now);
  if (e === null) return '';
  const deal = dealText(e.freeleech, e.uploadFactor);
  return e.startsAt <= ctx.now
    ? html`<div class="banner" role="status" id="event-banner"><strong>${e.name}</strong>: ${deal} for everyone until ${date(e.endsAt)} UTC.</div>`
    : html`<div class="banner upcoming" role="status" id="event-banner">Coming: <strong>${e.name}</strong>, ${deal} for everyone from ${date(e.startsAt)} to ${date(e.endsAt)} UTC.</div>`;
}

/** Runs a staff change, reloads the policy (so it is live when the page answers), and goes back. */
export async function guard(ctx: Ctx, fn: () => Promise<void>, back: string) {
  try {
    await fn();
    await ctx.deps.refreshPolicy();
  } catch (err) {
    if (err instanceof RegistryError) return errorPage(ctx, err.status, 'Not done', err.message);
    throw err;
  }
  if (!ctx.res.headersSent) redirect(ctx, back);
}

export function errorPage(ctx: Ctx, status: number, title: string, message: string) {
  page(ctx, { title, status, body: html`<div class="card narrow"><h1>${title}</h1><p>${message}</p></div>` });
}

// ---- formatting ----

export { formatBytes as bytes } from '../../core/text.ts';

export function ratio(up: number, down: number): string {
  if (down === 0) return up > 0 ? '∞' : '—';
  return (up / down).toFixed(2);
}

export function ago(then: number, now: number): string {
  const s = Math.max(0, now - then);
  if (s < 60) return 'just now';
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

export function duration(s: number): string {
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86400).toFixed(1)} d`;
}

export const date = (t: number) => new Date(t * 1000).toISOString().slice(0, 16).replace('T', ' ');

/**
 * The portal's address as this request reached it (links shown to staff; mails use `site_url`).
 * A Host header that is not a plain host name becomes 'localhost'.
 */
export function origin(ctx: Ctx): string {
  const h = ctx.req.headers.host ?? 'localhost';
  return `http${ctx.secure ? 's' : ''}://${/^[A-Za-z0-9.:[\]-]{1,300}$/.test(h) ? h : 'localhost'}${ctx.base}`;
}

/** Form field as trimmed text ('' when absent). */
export const field = (ctx: Ctx, name: string) => (ctx.form.fields.get(name) ?? '').trim();

const STAFF_SECTIONS = [
  ['/staff/stats', 'Statistics'],
  ['/staff/members', 'Members'],
  ['/staff/applications', 'Applications'],
  ['/staff/invites', 'Invite tree'],
  ['/staff/torrents', 'Torrents'],
  ['/staff/lists', 'Lists'],
  ['/staff/hit-and-runs', 'Hit-and-runs'],
  ['/staff/promotions', 'Promotions'],
] as const;

/** A staff page: the staff sections' navigation, the title, the body. */
export function staffPage(ctx: Ctx, title: string, body: Html, error?: string) {
  page(ctx, {
    title,
    nav: '/staff',
    status: error ? 400 : 200,
    error,
    body: html`<nav aria-label="Staff" class="actions card subnav">${STAFF_SECTIONS.map(
      ([href, label]) =>
        html`<a href="${href}"${ctx.path.startsWith(href) ? html` aria-current="page"` : ''}>${label}</a>`,
    )}</nav>
<h1>${title}</h1>
${body}`,
  });
}
