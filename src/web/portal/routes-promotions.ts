import type { FreeleechWindow } from '../../db/freeleech.ts';
import type { PublicMember } from '../../db/registry.ts';
import { RegistryError } from '../../db/registry.ts';
import {
  type Ctx,
  csrfField,
  date,
  dealText,
  errorPage,
  field,
  guard,
  staffPage,
  staffPowers,
  staffRefusal,
} from './context.ts';
import { type Html, html } from './html.ts';
import type { Route } from './routes-auth.ts';

/*
 * Promotions in the portal (issue #16): (the site-wide event banner on every page is in
 * context.ts' `page`), staff's
 * Promotions page (events, featured torrents, personal freeleech windows), a member's windows on
 * their profile with staff's grant form, and featured torrents on the torrent list and pages.
 * Times are UTC, in the forms as in the pages.
 */

/**
 * A `datetime-local` field (UTC) or unix seconds, as unix seconds; a RegistryError otherwise. A
 * date and time that does not exist (31 February, 24:00) is refused: `Date.parse` would roll it
 * over into the next month or day without a word.
 */
function timeField(ctx: Ctx, name: string, label: string): number {
  const v = field(ctx, name);
  if (/^[0-9]{1,11}$/.test(v)) return Number(v);
  const ms = /^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2})?$/.test(v)
    ? Date.parse(`${v}Z`)
    : Number.NaN;
  if (Number.isNaN(ms) || new Date(ms).toISOString().slice(0, v.length) !== v)
    throw new RegistryError(`${label}: a date and time (UTC) that exists`);
  return Math.floor(ms / 1000);
}

/** Unix seconds as a `datetime-local` value (UTC). */
const local = (t: number) => new Date(t * 1000).toISOString().slice(0, 16);

/** The upload factor a form asks for: `double` checked → promotion_upload_factor; else 100. */
const uploadOf = (ctx: Ctx) => (field(ctx, 'double') === '1' ? ctx.deps.config.promotionUploadFactor : 100);

/** Where a revoke form returns: the member's page or the Promotions page, nothing else. */
function backOf(ctx: Ctx): string {
  const back = field(ctx, 'back');
  return /^\/member\/[0-9]{1,12}$/.test(back) ? back : '/staff/promotions';
}

/**
 * The members (of `list`'s windows) whose windows the logged-in staff member may revoke: as the
 * revoke POST judges it (`staffRefusal`), so that no button is offered for what it refuses.
 */
async function revocable(ctx: Ctx, list: FreeleechWindow[]): Promise<Set<number>> {
  const ids = new Set(list.map((w) => w.member_id));
  const may = new Set<number>();
  for (const id of ids) if (staffRefusal(ctx, await ctx.reg.member(id)) === null) may.add(id);
  return may;
}

function windowRows(ctx: Ctx, list: FreeleechWindow[], back: string, who: boolean, may: Set<number>) {
  const staff = staffPowers(ctx);
  return html`<div class="table-wrap"><table id="freeleech-windows"><thead><tr>${who ? html`<th>Member</th>` : ''}<th>On</th><th>From</th><th>Until</th><th>What</th><th class="hide-small">Given by</th>${staff ? html`<th>Staff</th>` : ''}</tr></thead><tbody>
${list.map(
  (w) =>
    html`<tr>${who ? html`<td><a href="/member/${w.member_id}">${w.username}</a></td>` : ''}<td>${w.torrent_id === null ? 'every torrent' : html`<a href="/torrent/${w.torrent_id}">${w.torrent_name}</a>`}</td><td>${date(w.starts_at)}</td><td>${date(w.ends_at)}${w.revoked_at !== null ? html` <span class="muted">(revoked)</span>` : ''}</td><td>${dealText(true, w.upload_factor)}${w.note ? html` <span class="muted">— ${w.note}</span>` : ''}</td><td class="hide-small">${w.source === 'token' ? 'a token' : (w.by_username ?? 'staff')}</td>${
      staff
        ? html`<td>${
            w.revoked_at === null && w.ends_at > ctx.now && may.has(w.member_id)
              ? html`<form method="post" action="/staff/promotions/windows/${w.id}/revoke" class="inline">${csrfField(ctx)}<input type="hidden" name="back" value="${back}"><button class="secondary" type="submit" aria-label="Revoke freeleech window ${w.id}">Revoke</button></form>`
              : ''
          }</td>`
        : ''
    }</tr>`,
)}
</tbody></table></div>`;
}

/** The member's personal freeleech windows in force or to come (their profile; staff see it too). */
export async function windowsSection(ctx: Ctx, m: PublicMember) {
  const list = await ctx.reg.freeleech.list({ member: m.id, after: ctx.now });
  const may = new Set(staffPowers(ctx) && staffRefusal(ctx, m) === null ? [m.id] : []);
  return html`<section class="card mt" aria-labelledby="freeleech"><h2 id="freeleech">Personal freeleech</h2>
${list.length === 0 ? html`<p class="muted">None now.${m.freeleech_tokens > 0 ? html` ${m.freeleech_tokens} freeleech token${m.freeleech_tokens === 1 ? '' : 's'} to spend on a torrent's page.` : ''}</p>` : windowRows(ctx, list, `/member/${m.id}`, false, may)}
</section>`;
}

/** Staff: give the member personal freeleech on every torrent (the member's page). */
export function windowForm(ctx: Ctx, m: PublicMember) {
  return html`<form method="post" action="/staff/promotions/windows" class="inline mt" id="freeleech-form">
${csrfField(ctx)}<input type="hidden" name="member" value="${m.id}">
<label>Personal freeleech from (UTC) <input name="starts_at" type="datetime-local" value="${local(ctx.now)}" required></label>
<label>until (UTC) <input name="ends_at" type="datetime-local" value="${local(ctx.now + 7 * 86400)}" required></label>
<label class="check"><input type="checkbox" name="double" value="1"> Double upload</label>
<label>Note <input name="note" maxlength="200" aria-label="Note for the freeleech window"></label>
<button type="submit">Give freeleech</button>
</form>
<form method="post" action="/staff/promotions/tokens" class="inline mt" id="tokens-form">
${csrfField(ctx)}<input type="hidden" name="member" value="${m.id}">
<p>Freeleech tokens held: <strong>${m.freeleech_tokens}</strong></p>
<label>Tokens to give (negative: take) <input name="count" type="number" min="-10000" max="10000" required></label>
<label>Note <input name="note" maxlength="200" aria-label="Note for the freeleech tokens"></label>
<button type="submit">Give tokens</button>
</form>`;
}

/** Staff: feature this torrent (its page). */
export function featureForm(ctx: Ctx, torrentId: number) {
  return html`<form method="post" action="/staff/promotions/featured" class="inline mt" id="feature-form">
${csrfField(ctx)}<input type="hidden" name="torrent" value="${torrentId}">
<label>Feature for <input name="days" type="number" min="1" max="366" value="${ctx.deps.config.featuredDays}" aria-label="Days featured"> days</label>
<button class="secondary" type="submit">Feature (free + double upload for everyone)</button>
</form>`;
}

/** Torrent id → its featured window in force now: when it ends, and its upload factor. */
export async function featuredNow(ctx: Ctx): Promise<Map<number, { ends: number; upload: number }>> {
  const out = new Map<number, { ends: number; upload: number }>();
  for (const f of await ctx.reg.promotions.featured({ after: ctx.now }))
    if (f.starts_at <= ctx.now) out.set(f.torrent_id, { ends: f.ends_at, upload: f.upload_factor });
  return out;
}

export const featuredBadge = (f: { ends: number; upload: number } | undefined) =>
  f === undefined
    ? ''
    : html` <span class="badge featured" title="${dealText(true, f.upload)} until ${date(f.ends)} UTC">featured</span>`;

/** On a featured torrent's page: what it gives, until when. */
export const featuredNotice = (f: { ends: number; upload: number }) =>
  html`<p class="notice" role="status" id="featured-notice">Featured: ${dealText(true, f.upload)} for everyone until ${date(f.ends)} UTC.</p>`;

/**
 * The torrent list's "Featured" box: what is featured now, newest first; '' with none. `hide`
 * (hide_restricted, for a member without staff powers): a restricted torrent is named only when
 * the member holds a grant for it, as in browse.
 */
export async function featuredList(ctx: Ctx, hide?: { memberId: number; at: number }): Promise<Html | ''> {
  const list = [];
  for (const f of await ctx.reg.promotions.featured({ after: ctx.now })) {
    if (f.starts_at > ctx.now) continue;
    if (
      hide !== undefined &&
      f.restricted === 1 &&
      !(await ctx.reg.grantedTo(f.torrent_id, hide.memberId, hide.at))
    )
      continue;
    list.push(f);
  }
  if (list.length === 0) return '';
  return html`<section class="card" aria-labelledby="featured"><h2 id="featured">Featured</h2>
<ul id="featured-list">${list.map((f) => html`<li><a href="/torrent/${f.torrent_id}">${f.torrent_name}</a> — ${dealText(true, f.upload_factor)} for everyone until ${date(f.ends_at)} UTC</li>`)}</ul>
</section>`;
}

function eventForm(
  ctx: Ctx,
  e?: {
    id: number;
    name: string;
    starts_at: number;
    ends_at: number;
    freeleech: number;
    upload_factor: number;
  },
) {
  const up = e?.upload_factor ?? ctx.deps.config.promotionUploadFactor;
  return html`<form method="post" action="/staff/promotions/events${e ? html`/${e.id}` : ''}" class="stack" id="event-form">
${csrfField(ctx)}
<label>Name <input name="name" maxlength="100" required value="${e?.name ?? ''}"></label>
<label>Starts (UTC) <input name="starts_at" type="datetime-local" required value="${local(e?.starts_at ?? ctx.now)}"></label>
<label>Ends (UTC) <input name="ends_at" type="datetime-local" required value="${local(e?.ends_at ?? ctx.now + 2 * 86400)}"></label>
<label class="check"><input type="checkbox" name="freeleech" value="1"${e === undefined || e.freeleech === 1 ? html` checked` : ''}> Freeleech (downloads not counted)</label>
<label>Uploads counted (percent; 100 = as usual, ${ctx.deps.config.promotionUploadFactor} = double upload) <input name="upload_factor" type="number" min="100" max="1000" value="${e === undefined ? 100 : up}"></label>
<button type="submit">${e ? 'Save event' : 'Schedule event'}</button>
</form>`;
}

function eventInput(ctx: Ctx) {
  const up = Number(field(ctx, 'upload_factor') || '100');
  return {
    name: field(ctx, 'name'),
    startsAt: timeField(ctx, 'starts_at', 'start'),
    endsAt: timeField(ctx, 'ends_at', 'end'),
    freeleech: field(ctx, 'freeleech') === '1',
    uploadFactor: Number.isInteger(up) ? up : Number.NaN,
  };
}

function status(now: number, starts: number, ends: number, ended: number | null): string {
  if (ended !== null) return ends > starts ? 'ended early' : 'cancelled';
  if (ends <= now) return 'over';
  return starts <= now ? 'now' : 'coming';
}

/** The member a staff form names (`member`), or null with the error page sent: none, or staff themselves. */
async function staffTarget(ctx: Ctx): Promise<PublicMember | null> {
  const target = await ctx.reg.findMember(Number(field(ctx, 'member')) || 0);
  if (!target) {
    errorPage(ctx, 404, 'Member', 'No such member.');
    return null;
  }
  // As on the member's staff form: moderators manage members; only administrators touch staff
  // (else two moderators could give each other tokens and freeleech without end).
  const refused = staffRefusal(ctx, target);
  if (refused !== null) {
    errorPage(ctx, 403, 'Member', refused);
    return null;
  }
  return target;
}

/**
 * A staff POST that ends a promotion early (cancel an event, unfeature a torrent, revoke a
 * window): the row is kept, its end moved to now; then back to `back` (the promotions page).
 */
function endEarly(
  pattern: RegExp,
  end: (ctx: Ctx, id: number) => Promise<unknown>,
  back: (ctx: Ctx) => string = () => '/staff/promotions',
): Route {
  return {
    method: 'POST',
    pattern,
    access: 'staff',
    async handle(ctx) {
      const to = back(ctx);
      await guard(
        ctx,
        async () => {
          await end(ctx, Number(ctx.params[0]));
        },
        `${to}?msg=saved`,
      );
    },
  };
}

export function promotionRoutes(): Route[] {
  return [
    {
      method: 'GET',
      pattern: /^\/staff\/promotions$/,
      access: 'staff',
      async handle(ctx) {
        const since = ctx.now - 30 * 86400;
        const events = (await ctx.reg.promotions.events({ all: true })).filter((e) => e.ends_at > since);
        const featured = await ctx.reg.promotions.featured({ after: ctx.now });
        const windows = await ctx.reg.freeleech.list({ after: ctx.now, source: 'staff' });
        const may = await revocable(ctx, windows);
        staffPage(
          ctx,
          'Promotions',
          html`<p class="muted">Site-wide events, featured torrents and personal freeleech reach the tracker at once and start and end to the second. Freeleech from any of them wins over every download factor; upload factors do not add up: the largest applies. Times are UTC.</p>
<section class="card" aria-labelledby="events"><h2 id="events">Site-wide events</h2>
<div class="table-wrap"><table id="staff-events"><thead><tr><th>Name</th><th>From</th><th>Until</th><th>What</th><th>Status</th><th>Staff</th></tr></thead><tbody>
${events.map((e) => {
  const st = status(ctx.now, e.starts_at, e.ends_at, e.cancelled_at);
  return html`<tr><td>${e.name}</td><td>${date(e.starts_at)}</td><td>${date(e.ends_at)}</td><td>${dealText(e.freeleech === 1, e.upload_factor)}</td><td>${st}</td><td>${
    st === 'now' || st === 'coming'
      ? html`<a href="/staff/promotions/events/${e.id}">Edit</a> <form method="post" action="/staff/promotions/events/${e.id}/cancel" class="inline">${csrfField(ctx)}<button class="secondary" type="submit" aria-label="Cancel event ${e.name}">Cancel</button></form>`
      : ''
  }</td></tr>`;
})}
${events.length === 0 ? html`<tr><td colspan="6" class="muted">No events in the last 30 days or to come.</td></tr>` : ''}
</tbody></table></div>
<h3 class="mt">Schedule an event</h3>
${eventForm(ctx)}
</section>
<section class="card mt" aria-labelledby="featured-staff"><h2 id="featured-staff">Featured torrents</h2>
<div class="table-wrap"><table id="staff-featured"><thead><tr><th>Torrent</th><th>From</th><th>Until</th><th>What</th><th class="hide-small">By</th><th>Staff</th></tr></thead><tbody>
${featured.map((f) => html`<tr><td><a href="/torrent/${f.torrent_id}">${f.torrent_name}</a></td><td>${date(f.starts_at)}</td><td>${date(f.ends_at)}</td><td>${dealText(true, f.upload_factor)}</td><td class="hide-small">${f.by_username ?? '—'}</td><td><form method="post" action="/staff/promotions/featured/${f.id}/end" class="inline">${csrfField(ctx)}<button class="secondary" type="submit" aria-label="End featuring ${f.torrent_name}">End</button></form></td></tr>`)}
${featured.length === 0 ? html`<tr><td colspan="6" class="muted">Nothing featured. Feature a torrent from its page.</td></tr>` : ''}
</tbody></table></div>
</section>
<section class="card mt" aria-labelledby="windows-staff"><h2 id="windows-staff">Personal freeleech given by staff</h2>
${windows.length === 0 ? html`<p class="muted">None in force or to come. Give it from a member's page.</p>` : windowRows(ctx, windows, '/staff/promotions', true, may)}
</section>`,
        );
      },
    },
    {
      method: 'POST',
      pattern: /^\/staff\/promotions\/events$/,
      access: 'staff',
      async handle(ctx) {
        await guard(
          ctx,
          async () => {
            await ctx.reg.promotions.addEvent(eventInput(ctx), ctx.member!.id, ctx.now);
          },
          '/staff/promotions?msg=saved',
        );
      },
    },
    {
      method: 'GET',
      pattern: /^\/staff\/promotions\/events\/([0-9]{1,12})$/,
      access: 'staff',
      async handle(ctx) {
        try {
          const e = await ctx.reg.promotions.event(Number(ctx.params[0]));
          staffPage(ctx, `Event: ${e.name}`, html`<div class="card narrow">${eventForm(ctx, e)}</div>`);
        } catch (err) {
          if (err instanceof RegistryError) return errorPage(ctx, err.status, 'Event', err.message);
          throw err;
        }
      },
    },
    {
      method: 'POST',
      pattern: /^\/staff\/promotions\/events\/([0-9]{1,12})$/,
      access: 'staff',
      async handle(ctx) {
        await guard(
          ctx,
          async () => {
            await ctx.reg.promotions.updateEvent(Number(ctx.params[0]), eventInput(ctx));
          },
          '/staff/promotions?msg=saved',
        );
      },
    },
    endEarly(/^\/staff\/promotions\/events\/([0-9]{1,12})\/cancel$/, (ctx, id) =>
      ctx.reg.promotions.cancelEvent(id, ctx.now),
    ),
    {
      method: 'POST',
      pattern: /^\/staff\/promotions\/featured$/,
      access: 'staff',
      async handle(ctx) {
        const id = Number(field(ctx, 'torrent'));
        const days = Number(field(ctx, 'days') || ctx.deps.config.featuredDays);
        await guard(
          ctx,
          async () => {
            if (!Number.isInteger(days) || days < 1 || days > 366) throw new RegistryError('days: 1 to 366');
            await ctx.reg.promotions.feature(
              id,
              {
                startsAt: ctx.now,
                endsAt: ctx.now + days * 86400,
                uploadFactor: ctx.deps.config.promotionUploadFactor,
              },
              ctx.member!.id,
              ctx.now,
            );
          },
          `/torrent/${Number.isInteger(id) ? id : 0}?msg=saved`,
        );
      },
    },
    endEarly(/^\/staff\/promotions\/featured\/([0-9]{1,12})\/end$/, (ctx, id) =>
      ctx.reg.promotions.unfeature(id, ctx.now),
    ),
    {
      method: 'POST',
      pattern: /^\/staff\/promotions\/tokens$/,
      access: 'staff',
      async handle(ctx) {
        const target = await staffTarget(ctx);
        if (target === null) return;
        await guard(
          ctx,
          async () => {
            await ctx.reg.freeleech.giveTokens(target, Number(field(ctx, 'count')), {
              note: field(ctx, 'note').slice(0, 200) || null,
              by: ctx.member!.id,
              at: ctx.now,
            });
          },
          `/member/${target.id}?msg=saved`,
        );
      },
    },
    {
      method: 'POST',
      pattern: /^\/staff\/promotions\/windows$/,
      access: 'staff',
      async handle(ctx) {
        const target = await staffTarget(ctx);
        if (target === null) return;
        await guard(
          ctx,
          async () => {
            await ctx.reg.freeleech.give(target, {
              startsAt: timeField(ctx, 'starts_at', 'start'),
              endsAt: timeField(ctx, 'ends_at', 'end'),
              uploadFactor: uploadOf(ctx),
              note: field(ctx, 'note').slice(0, 200) || null,
              by: ctx.member!.id,
              at: ctx.now,
            });
          },
          `/member/${target.id}?msg=saved`,
        );
      },
    },
    endEarly(
      /^\/staff\/promotions\/windows\/([0-9]{1,12})\/revoke$/,
      async (ctx, id) => {
        // As giving one: not their own, and a moderator not another staff member's.
        const w = await ctx.reg.freeleech.one(id);
        const refused = staffRefusal(ctx, await ctx.reg.member(w.member_id));
        if (refused !== null) throw new RegistryError(refused, 403);
        return ctx.reg.freeleech.revoke(id, ctx.now);
      },
      backOf,
    ),
  ];
}
