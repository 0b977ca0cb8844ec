import type { ShopItem, ShopPrices } from '../../db/bonus.ts';
import { RegistryError } from '../../db/registry.ts';
import {
  bytes,
  type Ctx,
  csrfField,
  date,
  errorPage,
  field,
  page,
  redirect,
  staffPowers,
} from './context.ts';
import { html } from './html.ts';
import type { Route } from './routes-auth.ts';

/** Hundredths of a point as points, e.g. 1250 → "12.50". */
export function points(cents: number): string {
  return (cents / 100).toFixed(2);
}

export function shopPrices(ctx: Ctx): ShopPrices {
  const c = ctx.deps.config;
  return { upload: c.bonusUploadPrice, invite: c.bonusInvitePrice, token: c.bonusTokenPrice };
}

/** Staff: give or take a member's points, with a note (on the member's page). */
export function bonusForm(ctx: Ctx, memberId: number, balance: number) {
  return html`<p>Bonus points: <strong>${points(balance)}</strong></p>
<form method="post" action="/staff/members/${memberId}" class="inline">
${csrfField(ctx)}<input type="hidden" name="action" value="bonus">
<label>Points to give (negative: take) <input name="points" inputmode="decimal" pattern="-?[0-9]{1,9}([.][0-9]{1,2})?" required></label>
<label>Note <input name="note" maxlength="200" aria-label="Note for the bonus points"></label>
<button type="submit">Give points</button>
</form>`;
}

function formula(ctx: Ctx): string {
  const c = ctx.deps.config;
  if (c.bonusBase === 0) return 'Seeding earns no points on this site for now.';
  const parts = [`${points(c.bonusBase)} points`];
  if (c.bonusPerGib > 0)
    parts.push(`${points(c.bonusPerGib)} per GiB of the torrent (up to ${c.bonusGibCap} GiB)`);
  if (c.bonusFewSeeders > 0 && c.bonusFewPoints > 0)
    parts.push(`${points(c.bonusFewPoints)} when ${c.bonusFewSeeders} or fewer members seed it`);
  if (c.bonusOldDays > 0 && c.bonusOldPoints > 0)
    parts.push(`${points(c.bonusOldPoints)} when it is ${c.bonusOldDays} days old or more`);
  return `Every hour you seed a torrent earns ${parts.join(', plus ')}.`;
}

const ITEMS: { item: ShopItem; label: string; unit: string }[] = [
  { item: 'upload', label: 'Upload credit', unit: 'GiB' },
  { item: 'invite', label: 'Invites', unit: 'invites' },
  { item: 'token', label: 'Freeleech tokens', unit: 'tokens' },
];

/**
 * On a torrent's page: until when it is freeleech for the member, or a button that spends a
 * freeleech token on it (when the member holds one, and the torrent is not free for everyone).
 */
export async function tokenBox(ctx: Ctx, torrentId: number, freeForAll: boolean) {
  const m = ctx.member!;
  const open = (await ctx.reg.freeleech.windows(ctx.now, m.id)).find(
    (w) => (w.torrent_id === torrentId || w.torrent_id === null) && w.starts_at <= ctx.now,
  );
  if (open !== undefined)
    return html`<p class="notice" role="status" id="personal-freeleech">Freeleech for you until ${date(open.ends_at)}: your download is not counted.</p>`;
  if (m.freeleech_tokens === 0 || freeForAll) return '';
  const days = ctx.deps.config.freeleechTokenDays;
  return html`<form method="post" action="/torrent/${torrentId}/token" class="inline mt">${csrfField(ctx)}
<button class="secondary" type="submit">Use a freeleech token (${m.freeleech_tokens} left): free for you for ${days} day${days === 1 ? '' : 's'}</button></form>`;
}

export function bonusRoutes(): Route[] {
  return [
    {
      method: 'POST',
      pattern: /^\/torrent\/([0-9]{1,12})\/token$/,
      access: 'member',
      async handle(ctx) {
        const id = Number(ctx.params[0]);
        // Only on a torrent the member may download (the torrent page offers it on no other):
        // a token on a restricted torrent without a grant is wasted, and hide_restricted hides it.
        const t = await ctx.reg.findTorrent(id);
        if (
          t?.restricted === 1 &&
          !staffPowers(ctx) &&
          !(await ctx.reg.grantedTo(t.id, ctx.member!.id, ctx.now))
        )
          return ctx.deps.config.hideRestricted
            ? errorPage(ctx, 404, 'Freeleech token', `no torrent ${id}`)
            : errorPage(
                ctx,
                403,
                'Freeleech token',
                'This torrent is restricted: it takes a grant (ask the staff).',
              );
        try {
          await ctx.reg.freeleech.spendToken(ctx.member!, id, ctx.deps.config.freeleechTokenDays, ctx.now);
          await ctx.deps.refreshPolicy();
        } catch (err) {
          if (err instanceof RegistryError) return errorPage(ctx, err.status, 'Freeleech token', err.message);
          throw err;
        }
        redirect(ctx, `/torrent/${id}?msg=token`);
      },
    },
    {
      method: 'GET',
      pattern: /^\/bonus$/,
      access: 'member',
      async handle(ctx) {
        const m = ctx.member!;
        const balance = await ctx.reg.bonus.balance(m.id);
        const ledger = await ctx.reg.bonus.ledger(m.id, 50);
        const prices = shopPrices(ctx);
        const sold = ITEMS.filter((i) => prices[i.item] > 0);
        page(ctx, {
          title: 'Bonus points',
          nav: '/bonus',
          body: html`<h1>Bonus points</h1>
<div class="grid">
<div class="stat"><div class="label">Balance</div><div class="value" id="bonus-balance">${points(balance)}</div></div>
<div class="stat"><div class="label">Freeleech tokens</div><div class="value">${m.freeleech_tokens}</div></div>
<div class="stat"><div class="label">Invites left</div><div class="value">${m.invites}</div></div>
<div class="stat"><div class="label">Uploaded</div><div class="value">${bytes(m.uploaded)}</div></div>
</div>
<p class="muted">${formula(ctx)} Points are credited about once an hour.</p>
<section class="card mt" aria-labelledby="shop"><h2 id="shop">Shop</h2>
${
  sold.length === 0
    ? html`<p class="muted">The shop sells nothing for now.</p>`
    : sold.map(
        (
          i,
        ) => html`<form method="post" action="/bonus/buy" class="inline mt">${csrfField(ctx)}<input type="hidden" name="item" value="${i.item}">
<label>${i.label} (${points(prices[i.item])} points each) <input name="count" type="number" min="1" max="1000" value="1" aria-label="How many ${i.unit}"></label>
<button type="submit">Buy ${i.label.toLowerCase()}</button></form>`,
      )
}
</section>
<section class="card mt" aria-labelledby="ledger"><h2 id="ledger">History</h2>
${
  ledger.length === 0
    ? html`<p class="muted">No points yet: seed to earn them.</p>`
    : html`<div class="table-wrap"><table id="bonus-ledger"><thead><tr><th>When</th><th>What</th><th class="num">Points</th></tr></thead><tbody>
${ledger.map((r) => html`<tr><td>${date(r.at)}</td><td>${r.reason}${r.note ? html` <span class="muted">(${r.note})</span>` : ''}</td><td class="num">${r.delta > 0 ? '+' : ''}${points(r.delta)}</td></tr>`)}
</tbody></table></div>`
}
</section>`,
        });
      },
    },
    {
      method: 'POST',
      pattern: /^\/bonus\/buy$/,
      access: 'member',
      async handle(ctx) {
        const item = field(ctx, 'item');
        if (item !== 'upload' && item !== 'invite' && item !== 'token')
          return errorPage(ctx, 400, 'Bonus points', 'Unknown item.');
        try {
          await ctx.reg.bonus.buy(ctx.member!, item, Number(field(ctx, 'count')), shopPrices(ctx), ctx.now);
        } catch (err) {
          if (err instanceof RegistryError) return errorPage(ctx, err.status, 'Not bought', err.message);
          throw err;
        }
        redirect(ctx, '/bonus?msg=bought');
      },
    },
  ];
}
