import { announceUrls } from '../../core/urls.ts';
import type { TorrentNow } from '../../db/connectable.ts';
import type { PublicMember } from '../../db/registry.ts';
import { RegistryError } from '../../db/registry.ts';
import { ROLES } from '../../db/schema.ts';
import {
  bytes,
  type Ctx,
  csrfField,
  date,
  duration,
  errorPage,
  field,
  origin,
  page,
  ratio,
  redirect,
  staffPowers,
} from './context.ts';
import { html, jsonAttr } from './html.ts';
import { accountStaffForm, CurrentPassword, mailInvitation } from './routes-account.ts';
import type { Route } from './routes-auth.ts';
import { bonusForm } from './routes-bonus.ts';
import { classForm, className, classSection } from './routes-classes.ts';
import { hnrImmunityForm, hnrSection } from './routes-hnr.ts';
import { windowForm, windowsSection } from './routes-promotions.ts';
import { hashPassword } from './security.ts';

export function inviteLink(ctx: Ctx, code: string): string {
  return `${origin(ctx)}/register?invite=${code}`;
}

/** A line chart drawn by Chart.js from a data attribute (static/portal.js); a table is the text alternative. */
export function chart(opts: {
  id: string;
  label: string;
  labels: number[];
  series: { label: string; data: number[] }[];
  unit?: string;
}) {
  return html`<div class="chart"><canvas id="${opts.id}" role="img" aria-label="${opts.label}" data-chart="${jsonAttr({ labels: opts.labels, series: opts.series, unit: opts.unit })}"></canvas></div>`;
}

/** Download rights in words (issue #16). */
function rightsText(m: PublicMember): string {
  if (m.can_leech === 1) return 'allowed';
  if (m.leech_reason === 'hnr') return 'suspended for hit-and-runs';
  return m.leech_reason === 'ratio' ? 'suspended by ratio watch' : 'suspended by staff';
}

/**
 * What the member reads about ratio watch and download rights on their own profile (staff see it
 * too): why, since when, and how to recover.
 */
function rightsNotice(ctx: Ctx, m: PublicMember) {
  const days = ctx.deps.config.ratioWatchDays;
  const min = (ctx.deps.config.ratioWatchMinPercent / 100).toFixed(2);
  if (m.can_leech === 0)
    return html`<p class="notice" role="status" id="rights-notice">Download rights are <strong>${rightsText(m)}</strong>${m.leech_changed_at !== null ? html` since ${date(m.leech_changed_at)}` : ''}: clients are refused on torrents not yet complete. Seeding still works.${m.leech_reason === 'ratio' ? html` They come back by themselves once the ratio is at least ${min}: seed to raise it.` : m.leech_reason === 'hnr' ? html` They come back by themselves once ${ctx.deps.config.hnrMax <= 1 ? 'no hit-and-run is' : `fewer than ${ctx.deps.config.hnrMax} hit-and-runs are`} active: seed the torrents listed under Hit-and-runs to ${ctx.deps.config.hnrSeedHours} hours each, or ask staff.` : html` Ask staff to restore them.`}</p>`;
  if (m.ratio_warned_at !== null)
    return html`<p class="notice" role="status" id="rights-notice">Ratio warning since ${date(m.ratio_warned_at)}: the ratio is below the site minimum of ${min}. Raise it by seeding before ${date(m.ratio_warned_at + days * 86400)}, or download rights are suspended until it is back.</p>`;
  return '';
}

async function profileStaffForm(ctx: Ctx, m: PublicMember) {
  const admin = ctx.member!.role === 'admin';
  return html`<section class="card" aria-labelledby="staff-member"><h2 id="staff-member">Staff</h2>
<p>Status: <strong>${m.status}</strong>${m.status_reason ? html` — ${m.status_reason}` : ''}</p>
<form method="post" action="/staff/members/${m.id}" class="inline">
${csrfField(ctx)}<input type="hidden" name="action" value="status">
<label>Status <select name="status">${['active', 'disabled', 'banned'].map((s) => html`<option${s === m.status ? html` selected` : ''}>${s}</option>`)}</select></label>
<label>Reason <input name="reason" maxlength="500" value="${m.status_reason ?? ''}"></label>
<button type="submit">Set status</button>
</form>
<p>Download rights: <strong>${rightsText(m)}</strong>${m.ratio_warned_at !== null ? html` · ratio warning since ${date(m.ratio_warned_at)}` : ''}</p>
<form method="post" action="/staff/members/${m.id}" class="inline">
${csrfField(ctx)}<input type="hidden" name="action" value="leech">
<label>Download rights <select name="can_leech"><option value="yes"${m.can_leech === 1 ? html` selected` : ''}>allowed</option><option value="no"${m.can_leech === 0 ? html` selected` : ''}>suspended</option></select></label>
<button type="submit">Set download rights</button>
</form>
${hnrImmunityForm(ctx, m)}
${bonusForm(ctx, m.id, await ctx.reg.bonus.balance(m.id))}
${windowForm(ctx, m)}
${classForm(ctx, m)}
<form method="post" action="/staff/members/${m.id}" class="inline mt">
${csrfField(ctx)}<input type="hidden" name="action" value="invites">
<label>Invites <input name="invites" type="number" min="0" max="100000" value="${m.invites}"></label>
<button type="submit">Set invites</button>
</form>
${
  admin
    ? html`<form method="post" action="/staff/members/${m.id}" class="inline mt">
${csrfField(ctx)}<input type="hidden" name="action" value="role">
<label>Role <select name="role">${ROLES.map((r) => html`<option${r === m.role ? html` selected` : ''}>${r}</option>`)}</select></label>
<button type="submit">Set role</button>
</form>`
    : ''
}
${await accountStaffForm(ctx, m)}</section>`;
}

/** Torrents a profile page lists at once (older ones on the next pages). */
const PROFILE_TORRENTS = 100;

export function memberRoutes(current = new CurrentPassword()): Route[] {
  return [
    {
      method: 'GET',
      pattern: /^\/me$/,
      access: 'member',
      handle(ctx) {
        redirect(ctx, `/member/${ctx.member!.id}`);
      },
    },
    {
      method: 'GET',
      pattern: /^\/member\/([0-9]{1,12})$/,
      access: 'member',
      async handle(ctx) {
        const m = await ctx.reg.findMember(Number(ctx.params[0]));
        if (!m) return errorPage(ctx, 404, 'Member', 'No such member.');
        const me = ctx.member!;
        const self = me.id === m.id;
        const staff = staffPowers(ctx);
        // The member's torrents a page at a time, last announced first (`torrents_before`: the last
        // announce and torrent id of the previous page's last row): reading every one for each view
        // held the loop for a member with tens of thousands.
        const before = /^([0-9]{1,15})\.([0-9]{1,12})$/.exec(ctx.query.get('torrents_before') ?? '');
        const torrentPage = await ctx.reg.memberTorrents(m.id, {
          limit: PROFILE_TORRENTS + 1,
          before: before ? { at: Number(before[1]), torrentId: Number(before[2]) } : undefined,
        });
        const torrents = torrentPage.slice(0, PROFILE_TORRENTS);
        const lastShown = torrentPage.length > PROFILE_TORRENTS ? torrents.at(-1) : undefined;
        const snatches = await ctx.reg.snatchCount(m.id);
        const act = (await ctx.deps.activity?.(m.id)) ?? { seeding: 0, leeching: 0 };
        // The connectable check (issue #16): its result for each torrent seeding or leeching now.
        const cfg = ctx.deps.config;
        const connectable =
          cfg.connectableCheck !== 'off' && (self || staff)
            ? new Map(
                (
                  await ctx.reg.connectable.torrentsNow(
                    m.id,
                    cfg.peerTimeout,
                    cfg.connectableInterval + cfg.peerTimeout,
                    ctx.now,
                  )
                ).map((t) => [t.torrent_id, t]),
              )
            : null;
        const history = await ctx.reg.accounts.trafficHistory(m.id);
        // The chart ends with the figures of now, so it is never empty.
        const points = [...history, { at: ctx.now, uploaded: m.uploaded, downloaded: m.downloaded }];
        const sent = await ctx.reg.accounts.listInvitations({ inviterId: m.id });
        const inviter = m.invited_by !== null ? await ctx.reg.findMember(m.invited_by) : undefined;
        const hnrList = self || staff ? await ctx.reg.hnr.list({ member: m.id, limit: 200 }) : [];
        const GiB = 1024 ** 3;
        const stat = (label: string, value: unknown) =>
          html`<div class="stat"><div class="label">${label}</div><div class="value">${value}</div></div>`;
        page(ctx, {
          title: m.username,
          nav: self ? `/member/${m.id}` : '/staff',
          body: html`<h1>${m.username} <span class="muted">${m.role}</span>${m.status !== 'active' ? html` <span class="badge banned">${m.status}</span>` : ''}</h1>
<p class="muted">Joined ${date(m.created_at)}${inviter ? html` · invited by <a href="/member/${inviter.id}">${inviter.username}</a>` : ''}</p>
<div class="grid">
${stat('Uploaded', bytes(m.uploaded))}${stat('Downloaded', bytes(m.downloaded))}${stat('Ratio', ratio(m.uploaded, m.downloaded))}
${stat('Torrents seeding now', act.seeding)}${stat('Torrents leeching now', act.leeching)}${stat('Snatches', snatches)}
${stat('Seeding time', duration(m.seed_time))}${stat('Invites left', m.invites)}${stat('Invites sent', sent.length)}
${className(ctx, m) !== '' ? stat('Class', className(ctx, m)) : ''}${stat('Download rights', rightsText(m))}${stat('Ratio warnings', m.ratio_warnings)}${stat('Hit-and-runs', hnrList.filter((h) => h.status === 'active').length)}
</div>
${self || staff ? rightsNotice(ctx, m) : ''}
<section class="card mt" aria-labelledby="traffic"><h2 id="traffic">Traffic over time</h2>
${chart({
  id: 'traffic-chart',
  label: `Uploaded and downloaded by ${m.username} over time, in GiB`,
  labels: points.map((p) => p.at),
  series: [
    { label: 'Uploaded (GiB)', data: points.map((p) => Number((p.uploaded / GiB).toFixed(3))) },
    { label: 'Downloaded (GiB)', data: points.map((p) => Number((p.downloaded / GiB).toFixed(3))) },
  ],
  unit: 'GiB',
})}
</section>
${
  (self || staff) && (torrents.length > 0 || before)
    ? html`<h2 id="torrents">Torrents</h2><div class="table-wrap"><table><thead><tr><th>Torrent</th><th class="num">Up</th><th class="num">Down</th><th class="num hide-small">Seed time</th><th class="hide-small">Completed</th>${connectable ? html`<th>Now</th><th>Connectable</th>` : ''}</tr></thead><tbody>
${torrents.map((t) => html`<tr><td><a href="/torrent/${t.torrent_id}">${t.name}</a></td><td class="num">${bytes(t.uploaded)}</td><td class="num">${bytes(t.downloaded)}</td><td class="num hide-small">${duration(t.seed_time)}</td><td class="hide-small">${t.completed_at ? date(t.completed_at) : '—'}</td>${connectable ? nowCells(connectable.get(t.torrent_id)) : ''}</tr>`)}
${torrents.length === 0 ? html`<tr><td colspan="5" class="muted">No more.</td></tr>` : ''}</tbody></table></div>
<nav class="pager" aria-label="Torrent pages">
${before ? html`<a href="/member/${m.id}#torrents">← Most recent</a>` : ''}
${lastShown ? html`<a href="/member/${m.id}?torrents_before=${lastShown.last_announce_at}.${lastShown.torrent_id}#torrents">Older →</a>` : ''}
</nav>`
    : ''
}
${self || staff ? classSection(ctx, m, await ctx.reg.classes.history(m.id, 20)) : ''}
${self || staff ? hnrSection(ctx, m, hnrList, await ctx.reg.hnr.pending(m.id)) : ''}
${self || staff ? await windowsSection(ctx, m) : ''}
${self ? selfSettings(ctx, m) : ''}
${staff && !self ? await profileStaffForm(ctx, m) : ''}`,
        });
      },
    },
    {
      method: 'POST',
      pattern: /^\/me\/passkey$/,
      access: 'member',
      async handle(ctx) {
        await ctx.reg.resetPasskey(ctx.member!.id);
        await ctx.deps.refreshPolicy();
        redirect(ctx, `/member/${ctx.member!.id}?msg=passkey`);
      },
    },
    {
      method: 'POST',
      pattern: /^\/me\/feedkey$/,
      access: 'member',
      async handle(ctx) {
        await ctx.reg.accounts.resetFeedKey(ctx.member!.id);
        redirect(ctx, `/member/${ctx.member!.id}?msg=feedkey`);
      },
    },
    {
      method: 'POST',
      pattern: /^\/me\/password$/,
      access: 'member',
      async handle(ctx) {
        const me = ctx.member!;
        const next = ctx.form.fields.get('password') ?? '';
        const fail = (msg: string) => errorPage(ctx, 400, 'Change password', msg);
        const check = await current.check(ctx);
        if (check === 'limited')
          return errorPage(ctx, 429, 'Change password', 'Too many wrong passwords. Try again in 15 minutes.');
        if (check === 'wrong') return fail('The current password is wrong.');
        if (next.length < 10 || next.length > 1024)
          return fail('The new password needs at least 10 characters.');
        if (next !== (ctx.form.fields.get('password2') ?? '')) return fail('The two new passwords differ.');
        await ctx.reg.accounts.setPasswordHash(me.id, await hashPassword(next));
        // Every session ends (a stolen one too); log this browser in again.
        await ctx.reg.accounts.deleteMemberSessions(me.id);
        redirect(ctx, '/login?msg=password');
      },
    },
    {
      method: 'GET',
      pattern: /^\/invites$/,
      access: 'member',
      async handle(ctx) {
        await invitesPage(ctx);
      },
    },
    {
      method: 'POST',
      pattern: /^\/invites$/,
      access: 'member',
      async handle(ctx) {
        const me = ctx.member!;
        const email = field(ctx, 'email').slice(0, 254);
        if (email !== '' && !/^[^\s@]+@[^\s@]+$/.test(email))
          return invitesPage(ctx, 'That e-mail address does not look right.');
        try {
          const inv = await ctx.reg.accounts.createInvitation({
            inviterId: me.id,
            email: email || null,
            ttlSeconds: ctx.deps.config.inviteExpiryDays * 86400,
            spend: !staffPowers(ctx),
          });
          ctx.member = (await ctx.reg.findMember(me.id)) ?? me;
          const mailed = email !== '' && mailInvitation(ctx, email, inv.code, inv.expires_at);
          await invitesPage(ctx, null, inv.code, mailed ? email : null);
        } catch (err) {
          if (err instanceof RegistryError) return invitesPage(ctx, err.message);
          throw err;
        }
      },
    },
  ];
}

/** A torrent's "now" and "connectable" cells on the profile: seeding/leeching, yes/no/unknown. */
function nowCells(t: TorrentNow | undefined) {
  if (t === undefined) return html`<td class="muted">—</td><td class="muted">—</td>`;
  return html`<td>${t.state}</td><td class="connectable-${t.connectable}" title="${t.checked_at !== null ? `checked ${date(t.checked_at)}` : 'not checked'}">${t.connectable}</td>`;
}

function selfSettings(ctx: Ctx, m: PublicMember) {
  const urls = announceUrls(ctx.deps.urls(), m.passkey);
  const feed = `${origin(ctx)}/rss?key=${m.feed_key}`;
  return html`<section class="card" aria-labelledby="settings"><h2 id="settings">Your keys</h2>
<p>Your announce URLs (already inside every .torrent you download here; keep them secret):</p>
<ul>${urls.map((u) => html`<li class="mono">${u}</li>`)}</ul>
<form method="post" action="/me/passkey" class="actions">${csrfField(ctx)}<button class="secondary" type="submit">Reset passkey</button>
<span class="hint">Old .torrent files stop working.</span></form>
<p class="mt">Personal RSS feed (for auto-downloading clients): <a class="mono" href="${feed}">${feed}</a></p>
<form method="post" action="/me/feedkey" class="actions">${csrfField(ctx)}<button class="secondary" type="submit">Reset feed key</button></form>
</section>
<section class="card narrow" aria-labelledby="security"><h2 id="security">Account security</h2>
<p>E-mail address: <strong>${m.email ?? 'none'}</strong> · two-factor authentication and recovery codes: <a href="/me/security">Account security</a></p></section>
<section class="card narrow" aria-labelledby="password"><h2 id="password">Change password</h2>
<form method="post" action="/me/password" class="stack">${csrfField(ctx)}
<input type="text" name="username" autocomplete="username" value="${m.username}" hidden>
<label>Current password <input type="password" name="current" autocomplete="current-password" required maxlength="1024"></label>
<label>New password <input type="password" name="password" autocomplete="new-password" required minlength="10" maxlength="1024"></label>
<label>Repeat new password <input type="password" name="password2" autocomplete="new-password" required minlength="10" maxlength="1024"></label>
<button type="submit">Change password</button></form></section>`;
}

async function invitesPage(
  ctx: Ctx,
  error: string | null = null,
  created: string | null = null,
  mailedTo: string | null = null,
) {
  const me = ctx.member!;
  const list = await ctx.reg.accounts.listInvitations({ inviterId: me.id });
  const c = ctx.deps.config;
  const staff = staffPowers(ctx);
  page(ctx, {
    title: 'Invites',
    status: error ? 400 : 200,
    error,
    body: html`<h1>Invites</h1>
${created && mailedTo ? html`<div class="card" role="status" id="invite-mailed"><p><strong>Invitation mailed</strong> to ${mailedTo}.</p></div>` : ''}
${created ? html`<div class="card" role="status"><p><strong>Invitation created.</strong> Send this link to the person you invite; it works once, for ${c.inviteExpiryDays} days:</p><p><code id="invite-link">${inviteLink(ctx, created)}</code></p></div>` : ''}
<div class="card">
<p>${staff ? 'As staff you can invite without limit.' : html`You have <strong>${me.invites}</strong> invite${me.invites === 1 ? '' : 's'} left.`}</p>
${
  c.invitesPerPeriod > 0
    ? html`<p class="muted">Members earn ${c.invitesPerPeriod} invite${c.invitesPerPeriod === 1 ? '' : 's'} every ${c.invitePeriodDays} days while their ratio is at least ${(c.inviteMinRatioPercent / 100).toFixed(2)}, their account is ${c.inviteMinAgeDays} days old and they have uploaded ${bytes(c.inviteMinUploaded)}.</p>`
    : ''
}
${
  staff || me.invites > 0
    ? html`<form method="post" action="/invites" class="inline">${csrfField(ctx)}
<label>E-mail of the invitee <span class="hint">${c.siteUrl !== '' && ctx.deps.mailer ? 'optional: the invitation is mailed there' : 'optional, for your records'}</span><input name="email" type="email" maxlength="254"></label>
<button type="submit">Create invitation</button></form>`
    : ''
}
</div>
<h2>Sent</h2>
<div class="table-wrap"><table><thead><tr><th>Created</th><th>For</th><th>Status</th></tr></thead><tbody>
${list.map(
  (i) =>
    html`<tr><td>${date(i.created_at)}</td><td>${i.email ?? '—'}</td><td>${
      i.used_by !== null
        ? html`joined as <a href="/member/${i.used_by}">${i.used_by_name}</a>`
        : i.expires_at <= ctx.now
          ? 'expired'
          : html`open until ${date(i.expires_at)} · <code>${inviteLink(ctx, i.code)}</code>`
    }</td></tr>`,
)}
${list.length === 0 ? html`<tr><td colspan="3" class="muted">No invitations yet.</td></tr>` : ''}
</tbody></table></div>`,
  });
}
