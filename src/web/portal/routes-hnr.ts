import type { HitAndRunView, PendingSnatch } from '../../db/hit-and-runs.ts';
import { type PublicMember, RegistryError } from '../../db/registry.ts';
import { HNR_STATUSES, type HnrStatus } from '../../db/schema.ts';
import { hnrRules, hnrThreshold } from '../../policy/hit-and-run.ts';
import {
  type Ctx,
  csrfField,
  date,
  duration,
  errorPage,
  field,
  redirect,
  staffPage,
  staffPowers,
  staffRefusal,
} from './context.ts';
import { html } from './html.ts';
import type { Route } from './routes-auth.ts';

/** The rule in one sentence, from the configuration (empty when hit-and-run is off). */
function ruleText(ctx: Ctx): string {
  const c = ctx.deps.config;
  if (c.hnrSeedHours === 0) return '';
  const ratio =
    c.hnrRatioPercent > 0 ? ` (or reach a ratio of ${(c.hnrRatioPercent / 100).toFixed(2)} on it)` : '';
  const max = hnrThreshold(hnrRules(c));
  return `After completing a torrent, seed it at least ${c.hnrSeedHours} hours within ${c.hnrDays} days${ratio}; otherwise it is a hit-and-run.${max > 0 ? ` ${max === 1 ? 'An active hit-and-run suspends' : `${max} active hit-and-runs suspend`} download rights until ${max === 1 ? 'it ends' : 'fewer are active'}.` : ''} Seeding it to ${c.hnrSeedHours} hours later ends a hit-and-run${c.hnrExpireDays > 0 ? `; so do ${c.hnrExpireDays} days` : ''}.`;
}

function forgiveForm(ctx: Ctx, h: HitAndRunView, back: string) {
  return html`<form method="post" action="/staff/hit-and-runs/${h.id}/forgive" class="inline">${csrfField(ctx)}<input type="hidden" name="back" value="${back}">
<label>Note <input name="note" maxlength="500" aria-label="Note for hit-and-run ${h.id}"></label><button class="secondary" type="submit">Forgive</button></form>`;
}

function statusText(h: HitAndRunView): string {
  if (h.status === 'active') return 'active';
  if (h.status === 'seeded') return 'ended: seeded after all';
  if (h.status === 'expired') return 'ended: expired';
  return `forgiven${h.note ? ` (${h.note})` : ''}`;
}

/**
 * A member's hit-and-runs on their profile (the member and staff see it): the rule, snatches
 * whose deadline is still to come (what to seed by when), and the hit-and-runs, active and ended;
 * staff get a forgive button on each active one.
 */
export function hnrSection(
  ctx: Ctx,
  m: PublicMember,
  list: HitAndRunView[],
  pending: PendingSnatch[],
): ReturnType<typeof html> | '' {
  const c = ctx.deps.config;
  const rule = ruleText(ctx);
  if (rule === '' && list.length === 0) return '';
  const staff = staffPowers(ctx) && staffRefusal(ctx, m) === null;
  const need = c.hnrSeedHours * 3600;
  const open = pending.filter((p) => p.seed_time < need);
  return html`<section class="card mt" aria-labelledby="hnr"><h2 id="hnr">Hit-and-runs</h2>
${rule !== '' ? html`<p class="muted">${rule}</p>` : ''}
${m.hnr_immune === 1 ? html`<p class="notice" role="status">This account is immune to hit-and-runs.</p>` : ''}
${
  open.length > 0
    ? html`<h3>To seed</h3><div class="table-wrap"><table id="hnr-pending"><thead><tr><th>Torrent</th><th class="hide-small">Completed</th><th class="num">Seeded</th><th class="num">Still to seed</th><th>By</th></tr></thead><tbody>
${open.map((p) => html`<tr><td><a href="/torrent/${p.torrent_id}">${p.torrent_name}</a></td><td class="hide-small">${date(p.completed_at)}</td><td class="num">${duration(p.seed_time)}</td><td class="num">${duration(need - p.seed_time)}</td><td>${date(p.completed_at + c.hnrDays * 86400)}</td></tr>`)}
</tbody></table></div>`
    : ''
}
${
  list.length > 0
    ? html`<div class="table-wrap"><table id="hnr-list"><thead><tr><th>Torrent</th><th class="hide-small">Completed</th><th class="hide-small">Marked</th><th class="num">Seeded</th><th>Status</th>${staff ? html`<th>Staff</th>` : ''}</tr></thead><tbody>
${list.map((h) => html`<tr><td><a href="/torrent/${h.torrent_id}">${h.torrent_name}</a></td><td class="hide-small">${date(h.snatched_at)}</td><td class="hide-small">${date(h.marked_at)}</td><td class="num">${duration(h.seed_time_now)}</td><td>${statusText(h)}</td>${staff ? html`<td>${h.status === 'active' ? forgiveForm(ctx, h, `/member/${m.id}`) : ''}</td>` : ''}</tr>`)}
</tbody></table></div>`
    : html`<p class="muted">No hit-and-runs.</p>`
}
</section>`;
}

/** Staff: the immunity switch on a member's page. */
export function hnrImmunityForm(ctx: Ctx, m: PublicMember) {
  return html`<form method="post" action="/staff/members/${m.id}" class="inline mt">
${csrfField(ctx)}<input type="hidden" name="action" value="hnr_immune">
<label>Hit-and-run immunity <select name="hnr_immune"><option value="no"${m.hnr_immune === 0 ? html` selected` : ''}>no</option><option value="yes"${m.hnr_immune === 1 ? html` selected` : ''}>yes</option></select></label>
<button type="submit">Set immunity</button>
</form>`;
}

export function hnrRoutes(): Route[] {
  return [
    {
      method: 'GET',
      pattern: /^\/staff\/hit-and-runs$/,
      access: 'staff',
      async handle(ctx) {
        const st = ctx.query.get('status') ?? 'active';
        const status = (HNR_STATUSES as readonly string[]).includes(st) ? (st as HnrStatus) : undefined;
        const list = await ctx.reg.hnr.list({ status, limit: 500 });
        const back = `/staff/hit-and-runs${status === undefined ? '?status=all' : status === 'active' ? '' : `?status=${status}`}`;
        staffPage(
          ctx,
          'Hit-and-runs',
          html`${ruleText(ctx) !== '' ? html`<p class="muted">${ruleText(ctx)}</p>` : html`<p class="flash error">Hit-and-run is off (config key <code>hnr_seed_hours</code>).</p>`}
<form method="get" class="inline card">
<label>Status <select name="status">${[...HNR_STATUSES, 'all'].map((s) => html`<option${s === (status ?? 'all') ? html` selected` : ''}>${s}</option>`)}</select></label>
<button type="submit">Show</button></form>
<div class="table-wrap"><table id="staff-hnr"><thead><tr><th>Member</th><th>Torrent</th><th class="hide-small">Completed</th><th class="hide-small">Marked</th><th class="num">Seeded</th><th>Status</th><th>Staff</th></tr></thead><tbody>
${list.map((h) => html`<tr><td><a href="/member/${h.member_id}">${h.username}</a></td><td><a href="/torrent/${h.torrent_id}">${h.torrent_name}</a></td><td class="hide-small">${date(h.snatched_at)}</td><td class="hide-small">${date(h.marked_at)}</td><td class="num">${duration(h.seed_time_now)}</td><td>${statusText(h)}</td><td>${h.status === 'active' && staffRefusal(ctx, { id: h.member_id, role: h.role }) === null ? forgiveForm(ctx, h, back) : ''}</td></tr>`)}
</tbody></table></div>
${list.length === 0 ? html`<p class="muted">None.</p>` : ''}`,
        );
      },
    },
    {
      method: 'POST',
      pattern: /^\/staff\/hit-and-runs\/([0-9]{1,12})\/forgive$/,
      access: 'staff',
      async handle(ctx) {
        const id = Number(ctx.params[0]);
        const back = field(ctx, 'back');
        const to = /^\/(member\/[0-9]{1,12}|staff\/hit-and-runs(\?status=[a-z]+)?)$/.test(back)
          ? back
          : '/staff/hit-and-runs';
        try {
          const h = await ctx.reg.hnr.one(id);
          // Not their own, and a moderator not another staff member's (rights back as a favour).
          const refused = staffRefusal(ctx, { id: h.member_id, role: h.role });
          if (refused !== null) return errorPage(ctx, 403, 'Hit-and-run', refused);
          await ctx.reg.hnr.forgive(id, {
            by: ctx.member!.id,
            note: field(ctx, 'note').slice(0, 500) || null,
            max: hnrThreshold(hnrRules(ctx.deps.config)),
            at: ctx.now,
          });
          await ctx.deps.refreshPolicy();
        } catch (err) {
          if (err instanceof RegistryError) return errorPage(ctx, err.status, 'Not done', err.message);
          throw err;
        }
        redirect(ctx, `${to}${to.includes('?') ? '&' : '?'}msg=forgiven`);
      },
    },
  ];
}
