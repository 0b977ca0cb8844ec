import { parsePoints } from '../../db/bonus.ts';
import { RegistryError } from '../../db/registry.ts';
import { MEMBER_STATUSES, type MemberStatus, ROLES, type Role } from '../../db/schema.ts';
import {
  ago,
  bytes,
  csrfField,
  date,
  errorPage,
  field,
  guard,
  ratio,
  redirect,
  staffPage,
  staffRefusal,
} from './context.ts';
import { type Html, html } from './html.ts';
import { mailDecision } from './routes-account.ts';
import type { Route } from './routes-auth.ts';
import { portalClasses } from './routes-classes.ts';
import { chart, inviteLink } from './routes-members.ts';

/** Entries of a hash list per page of the staff's Lists page. */
const LIST_PAGE = 100;

export function staffRoutes(): Route[] {
  return [
    {
      method: 'GET',
      pattern: /^\/staff$/,
      access: 'staff',
      handle(ctx) {
        redirect(ctx, '/staff/stats');
      },
    },
    {
      method: 'GET',
      pattern: /^\/staff\/stats$/,
      access: 'staff',
      async handle(ctx) {
        const c = await ctx.reg.accounts.siteCounts();
        const s = await ctx.deps.stats();
        const h = await ctx.reg.accounts.siteHistory();
        const perSec = s.perSecond.announces.http + s.perSecond.announces.udp + s.perSecond.announces.ws;
        const total = s.total ?? {
          torrents: s.swarm.torrents,
          peers: s.swarm.seeders + s.swarm.leechers,
          seeders: s.swarm.seeders,
          leechers: s.swarm.leechers,
        };
        const points = [
          ...h,
          {
            at: ctx.now,
            members: c.members,
            torrents: c.torrents,
            peers: total.peers,
            seeders: total.seeders,
            leechers: total.leechers,
            announce_rate: Math.round(perSec * 100),
          },
        ];
        const stat = (label: string, value: unknown) =>
          html`<div class="stat"><div class="label">${label}</div><div class="value">${value}</div></div>`;
        staffPage(
          ctx,
          'Site statistics',
          html`<div class="grid">
${stat('Members', c.members)}${stat('Banned', c.banned)}${stat('Torrents', c.torrents)}${stat('Pending applications', c.pendingApplications)}
${stat('Peers', total.peers)}${stat('Seeders', total.seeders)}${stat('Leechers', total.leechers)}${stat('Announces/s', perSec.toFixed(1))}
${stat('Uploaded (all)', bytes(c.uploaded))}${stat('Downloaded (all)', bytes(c.downloaded))}${stat('Uptime', `${Math.floor(s.uptimeSeconds / 3600)} h`)}
</div>
<section class="card mt"><h2>Peers over time</h2>
${chart({
  id: 'peers-chart',
  label: 'Seeders and leechers over time',
  labels: points.map((p) => p.at),
  series: [
    { label: 'Seeders', data: points.map((p) => p.seeders) },
    { label: 'Leechers', data: points.map((p) => p.leechers) },
  ],
})}</section>
<section class="card"><h2>Announces per second</h2>
${chart({
  id: 'announce-chart',
  label: 'Announces per second over time',
  labels: points.map((p) => p.at),
  series: [{ label: 'Announces/s', data: points.map((p) => p.announce_rate / 100) }],
})}</section>
<section class="card"><h2>Members and torrents</h2>
${chart({
  id: 'growth-chart',
  label: 'Members and torrents over time',
  labels: points.map((p) => p.at),
  series: [
    { label: 'Members', data: points.map((p) => p.members) },
    { label: 'Torrents', data: points.map((p) => p.torrents) },
  ],
})}</section>`,
        );
      },
    },
    {
      method: 'GET',
      pattern: /^\/staff\/members$/,
      access: 'staff',
      async handle(ctx) {
        const q = (ctx.query.get('q') ?? '').slice(0, 64);
        const st = ctx.query.get('status') ?? '';
        const status = (MEMBER_STATUSES as readonly string[]).includes(st) ? (st as MemberStatus) : undefined;
        const list = await ctx.reg.listMembers({ search: q, status, limit: 500 });
        staffPage(
          ctx,
          'Members',
          html`<form method="get" class="inline card" role="search">
<label>Name <input name="q" type="search" value="${q}"></label>
<label>Status <select name="status"><option value="">Any</option>${MEMBER_STATUSES.map((s) => html`<option${s === status ? html` selected` : ''}>${s}</option>`)}</select></label>
<button type="submit">Search</button></form>
<div class="table-wrap"><table><thead><tr><th>Member</th><th>Role</th><th>Status</th><th class="num">Up</th><th class="num">Down</th><th class="num hide-small">Ratio</th><th class="num hide-small">Invites</th><th class="hide-small">Download</th><th class="hide-small">Joined</th></tr></thead><tbody>
${list.map(
  (
    m,
  ) => html`<tr><td><a href="/member/${m.id}">${m.username}</a></td><td>${m.role}</td><td>${m.status}${m.status_reason ? html` <span class="muted">(${m.status_reason})</span>` : ''}</td>
<td class="num">${bytes(m.uploaded)}</td><td class="num">${bytes(m.downloaded)}</td><td class="num hide-small">${ratio(m.uploaded, m.downloaded)}</td><td class="num hide-small">${m.invites}</td><td class="hide-small">${m.can_leech === 1 ? (m.ratio_warned_at !== null ? 'ratio warning' : 'allowed') : `suspended (${m.leech_reason === 'hnr' ? 'hit-and-runs' : (m.leech_reason ?? 'staff')})`}</td><td class="hide-small">${date(m.created_at)}</td></tr>`,
)}
</tbody></table></div>`,
        );
      },
    },
    {
      method: 'POST',
      pattern: /^\/staff\/members\/([0-9]{1,12})$/,
      access: 'staff',
      async handle(ctx) {
        const id = Number(ctx.params[0]);
        const me = ctx.member!;
        const target = await ctx.reg.findMember(id);
        if (!target) return errorPage(ctx, 404, 'Member', 'No such member.');
        // Moderators manage members; only administrators change roles or touch other staff.
        const refused = staffRefusal(ctx, target);
        if (refused !== null) return errorPage(ctx, 403, 'Member', refused);
        const action = field(ctx, 'action');
        let msg = 'saved';
        await guard(
          ctx,
          async () => {
            if (action === 'status') {
              const status = field(ctx, 'status');
              if (!(MEMBER_STATUSES as readonly string[]).includes(status))
                throw new RegistryError('unknown status');
              const reason = field(ctx, 'reason').slice(0, 500) || null;
              if (status !== 'active' && reason === null)
                throw new RegistryError('give a reason (the member sees it)');
              await ctx.reg.setMemberStatus(id, status as MemberStatus, reason);
              if (status !== 'active') {
                await ctx.reg.accounts.deleteMemberSessions(id);
                if (status === 'banned') msg = 'banned';
              }
            } else if (action === 'invites') {
              const n = Number(field(ctx, 'invites'));
              if (!Number.isInteger(n) || n < 0 || n > 100000)
                throw new RegistryError('invites: 0 to 100000');
              await ctx.reg.updateMember(id, { invites: n });
            } else if (action === 'leech') {
              const v = field(ctx, 'can_leech');
              if (v !== 'yes' && v !== 'no') throw new RegistryError('download rights: yes or no');
              await ctx.reg.setCanLeech(id, v === 'yes');
            } else if (action === 'bonus') {
              const n = parsePoints(field(ctx, 'points'));
              if (Number.isNaN(n)) throw new RegistryError('points: a number with at most two decimals');
              await ctx.reg.bonus.give(target, n, {
                note: field(ctx, 'note').slice(0, 200) || null,
                by: me.id,
                at: ctx.now,
              });
            } else if (action === 'class') {
              const v = field(ctx, 'class');
              await ctx.reg.classes.set(target, v === 'auto' ? null : v, {
                by: me.id,
                at: ctx.now,
                classes: portalClasses(ctx).map((c) => c.name),
              });
            } else if (action === 'hnr_immune') {
              const v = field(ctx, 'hnr_immune');
              if (v !== 'yes' && v !== 'no') throw new RegistryError('hit-and-run immunity: yes or no');
              await ctx.reg.hnr.setImmune(target, v === 'yes');
            } else if (action === 'role') {
              if (me.role !== 'admin') throw new RegistryError('only an administrator changes roles', 403);
              const role = field(ctx, 'role');
              if (!(ROLES as readonly string[]).includes(role)) throw new RegistryError('unknown role');
              await ctx.reg.updateMember(id, { role: role as Role });
            } else throw new RegistryError('unknown action');
          },
          `/member/${id}?msg=${msg}`,
        );
      },
    },
    {
      method: 'GET',
      pattern: /^\/staff\/applications$/,
      access: 'staff',
      async handle(ctx) {
        const pending = await ctx.reg.accounts.listApplications('pending');
        const decided = (await ctx.reg.accounts.listApplications('all'))
          .filter((a) => a.status !== 'pending')
          .slice(0, 50);
        staffPage(
          ctx,
          'Applications',
          html`${ctx.deps.config.applications ? '' : html`<p class="flash error">Applications are switched off (config key <code>applications</code>).</p>`}
<h2>Waiting (${pending.length})</h2>
${pending.map(
  (
    a,
  ) => html`<article class="card" aria-labelledby="app-${a.id}"><h3 id="app-${a.id}">${a.username} <span class="muted">&lt;${a.email}&gt; · ${ago(a.created_at, ctx.now)}</span></h3>
<p class="prewrap">${a.body}</p>
<div class="actions">
<form method="post" action="/staff/applications/${a.id}" class="inline">${csrfField(ctx)}<input type="hidden" name="action" value="approve"><button type="submit">Approve</button></form>
<form method="post" action="/staff/applications/${a.id}" class="inline">${csrfField(ctx)}<input type="hidden" name="action" value="reject">
<label>Reason <input name="reason" required maxlength="500"></label><button class="danger" type="submit">Reject</button></form>
</div></article>`,
)}
${pending.length === 0 ? html`<p class="muted">No applications are waiting.</p>` : ''}
<h2>Decided</h2>
<div class="table-wrap"><table><thead><tr><th>Applicant</th><th>Decision</th><th>When</th></tr></thead><tbody>
${decided.map((a) => html`<tr><td>${a.username} <span class="muted">${a.email}</span></td><td>${a.status}${a.reason ? html`: ${a.reason}` : ''}</td><td>${a.decided_at ? date(a.decided_at) : ''}</td></tr>`)}
${decided.length === 0 ? html`<tr><td colspan="3" class="muted">None yet.</td></tr>` : ''}
</tbody></table></div>`,
        );
      },
    },
    {
      method: 'POST',
      pattern: /^\/staff\/applications\/([0-9]{1,12})$/,
      access: 'staff',
      async handle(ctx) {
        const approve = field(ctx, 'action') === 'approve';
        const reason = field(ctx, 'reason').slice(0, 500) || null;
        if (!approve && reason === null)
          return errorPage(ctx, 400, 'Applications', 'A rejection needs a reason.');
        try {
          const r = await ctx.reg.accounts.decideApplication({
            id: Number(ctx.params[0]),
            staffId: ctx.member!.id,
            approve,
            reason,
            ttlSeconds: ctx.deps.config.inviteExpiryDays * 86400,
          });
          await mailDecision(ctx, Number(ctx.params[0]));
          if (r.code === null) return redirect(ctx, '/staff/applications?msg=rejected');
          staffPage(
            ctx,
            'Application approved',
            html`<div class="card" role="status"><p>An invitation was issued. The applicant sees it on their status page; you can also send the link yourself:</p>
<p><code id="invite-link">${inviteLink(ctx, r.code)}</code></p><p><a href="/staff/applications">Back to applications</a></p></div>`,
          );
        } catch (err) {
          if (err instanceof RegistryError) return errorPage(ctx, err.status, 'Applications', err.message);
          throw err;
        }
      },
    },
    {
      method: 'GET',
      pattern: /^\/staff\/invites$/,
      access: 'staff',
      async handle(ctx) {
        const all = await ctx.reg.accounts.inviteTree();
        const children = new Map<number | null, typeof all>();
        const ids = new Set(all.map((m) => m.id));
        for (const m of all) {
          const parent = m.invited_by !== null && ids.has(m.invited_by) ? m.invited_by : null;
          const list = children.get(parent) ?? [];
          list.push(m);
          children.set(parent, list);
        }
        // Depth-first, capped at 200 levels: a long chain of invitations cannot exhaust the stack.
        const render = (parent: number | null, depth: number): Html =>
          depth > 200
            ? html``
            : html`<ul class="tree${parent === null ? ' root' : ''}">${(children.get(parent) ?? []).map(
                (m) =>
                  html`<li><a href="/member/${m.id}">${m.username}</a> <span class="muted">${m.role} · ${date(m.created_at)}</span>${m.status !== 'active' ? html` <span class="badge banned">${m.status}</span>` : ''}${children.has(m.id) ? render(m.id, depth + 1) : ''}</li>`,
              )}</ul>`;
        const invitations = await ctx.reg.accounts.listInvitations({ limit: 100 });
        staffPage(
          ctx,
          'Invite tree',
          html`<div class="card">${render(null, 0)}</div>
<h2>Recent invitations</h2>
<div class="table-wrap"><table><thead><tr><th>By</th><th>For</th><th>Created</th><th>Status</th></tr></thead><tbody>
${invitations.map((i) => html`<tr><td>${i.inviter_name ?? '—'}</td><td>${i.email ?? '—'}</td><td>${date(i.created_at)}</td><td>${i.used_by !== null ? html`used by ${i.used_by_name}` : i.expires_at <= ctx.now ? 'expired' : 'open'}</td></tr>`)}
</tbody></table></div>`,
        );
      },
    },
    {
      method: 'GET',
      pattern: /^\/staff\/torrents$/,
      access: 'staff',
      async handle(ctx) {
        const q = (ctx.query.get('q') ?? '').slice(0, 100);
        const list = await ctx.reg.accounts.browseTorrents({ search: q, limit: 500 });
        staffPage(
          ctx,
          'Torrents',
          html`<form method="get" class="inline card" role="search"><label>Name <input name="q" type="search" value="${q}"></label><button type="submit">Search</button></form>
<div class="table-wrap"><table><thead><tr><th>Torrent</th><th class="num hide-small">Size</th><th class="num hide-small">Snatches</th><th class="hide-small">Flags</th><th>Actions</th></tr></thead><tbody>
${list.map(
  (
    t,
  ) => html`<tr><td><a href="/torrent/${t.id}">${t.name}</a></td><td class="num hide-small">${bytes(t.size)}</td><td class="num hide-small">${t.snatches}</td>
<td class="hide-small">${t.download_factor === 0 ? html`<span class="badge free">freeleech</span> ` : ''}${t.restricted ? html`<span class="badge restricted">restricted</span>` : ''}</td>
<td><div class="actions">
<form method="post" action="/staff/torrents/${t.id}">${csrfField(ctx)}<input type="hidden" name="action" value="${t.download_factor === 0 ? 'unfree' : 'free'}"><button class="secondary" type="submit">${t.download_factor === 0 ? 'End freeleech' : 'Freeleech'}</button></form>
<form method="post" action="/staff/torrents/${t.id}">${csrfField(ctx)}<input type="hidden" name="action" value="${t.restricted ? 'unrestrict' : 'restrict'}"><button class="secondary" type="submit">${t.restricted ? 'Unrestrict' : 'Restrict'}</button></form>
<form method="post" action="/staff/torrents/${t.id}">${csrfField(ctx)}<input type="hidden" name="action" value="delete"><button class="danger" type="submit" aria-label="Delete ${t.name}">Delete</button></form>
</div></td></tr>`,
)}
</tbody></table></div>`,
        );
      },
    },
    {
      method: 'POST',
      pattern: /^\/staff\/torrents\/([0-9]{1,12})$/,
      access: 'staff',
      async handle(ctx) {
        const id = Number(ctx.params[0]);
        const action = field(ctx, 'action');
        const back = (ctx.req.headers.referer ?? '').includes('/staff/torrents')
          ? '/staff/torrents?msg=saved'
          : `/torrent/${id}?msg=saved`;
        await guard(
          ctx,
          async () => {
            if (action === 'free') await ctx.reg.updateTorrent(id, { downloadFactor: 0 });
            else if (action === 'unfree') await ctx.reg.updateTorrent(id, { downloadFactor: 100 });
            else if (action === 'restrict') await ctx.reg.updateTorrent(id, { restricted: true });
            else if (action === 'unrestrict') await ctx.reg.updateTorrent(id, { restricted: false });
            else if (action === 'edit') {
              const name = field(ctx, 'name').slice(0, 300);
              if (name === '') throw new RegistryError('a torrent needs a name');
              const category = field(ctx, 'category');
              await ctx.reg.updateTorrent(id, {
                name,
                category: ctx.deps.config.categories.includes(category) ? category : null,
                description: field(ctx, 'description').slice(0, 20000) || null,
                downloadFactor: ctx.form.fields.has('freeleech') ? 0 : 100,
                restricted: ctx.form.fields.has('restricted'),
              });
            } else if (action === 'grant') {
              const who = field(ctx, 'who');
              const days = field(ctx, 'days');
              const n = days === '' ? null : Number(days);
              if (n !== null && (!Number.isInteger(n) || n < 1 || n > 36500))
                throw new RegistryError('days: 1 to 36500, or empty for a grant without end');
              if (!who.startsWith('group:')) {
                // Not to themselves (the grant would outlast their staff role), and a moderator
                // not to other staff.
                const to = await ctx.reg.findMember(who);
                const refused = to === undefined ? null : staffRefusal(ctx, to);
                if (refused !== null) throw new RegistryError(refused, 403);
              } else if (await ctx.reg.inGroup(who.slice(6), ctx.member!.id))
                // Nor to a group of their own: the same grant, through the group.
                throw new RegistryError('Staff cannot grant a group of their own.', 403);
              await ctx.reg.grant({
                torrent: id,
                ...(who.startsWith('group:') ? { group: who.slice(6) } : { member: who }),
                reference: field(ctx, 'reference').slice(0, 200) || null,
                expiresAt: n === null ? null : ctx.now + n * 86400,
              });
            } else if (action === 'revoke') {
              const grant = Number(field(ctx, 'grant'));
              if (!Number.isInteger(grant)) throw new RegistryError('which grant?');
              const g = await ctx.reg.grantOf(id, grant);
              if (!g) throw new RegistryError('no such grant on this torrent', 404);
              // As for granting: not their own, and a moderator not another staff member's.
              const holder = g.member_id === null ? undefined : await ctx.reg.findMember(g.member_id);
              const refused = holder === undefined ? null : staffRefusal(ctx, holder);
              if (refused !== null) throw new RegistryError(refused, 403);
              await ctx.reg.revoke({ id: grant });
            } else if (action === 'delete') await ctx.reg.removeTorrent(id);
            else throw new RegistryError('unknown action');
          },
          action === 'delete' ? '/staff/torrents?msg=deleted' : back,
        );
      },
    },
    {
      method: 'GET',
      pattern: /^\/staff\/lists$/,
      access: 'staff',
      async handle(ctx) {
        // The hash lists a page of LIST_PAGE at a time, by hash, from `deny_after` / `allow_after`
        // on: a deny list grows with every takedown (10⁵-10⁶ entries), too many to read and
        // render in one page.
        const from = (l: 'allow' | 'deny') => {
          const v = ctx.query.get(`${l}_after`) ?? '';
          return /^[0-9a-f]{40}$/.test(v) ? v : undefined;
        };
        const listPage = async (l: 'allow' | 'deny') => ({
          rows: await ctx.reg.listHashes(l, { after: from(l), limit: LIST_PAGE }),
          total: await ctx.reg.countHashes(l),
          after: from(l),
        });
        const allow = await listPage('allow');
        const deny = await listPage('deny');
        const clients = await ctx.reg.listClientPrefixes();
        const remove = (list: string, value: string) =>
          html`<form method="post" action="/staff/lists">${csrfField(ctx)}<input type="hidden" name="action" value="remove"><input type="hidden" name="list" value="${list}"><input type="hidden" name="value" value="${value}"><button class="secondary" type="submit" aria-label="Remove ${value}">Remove</button></form>`;
        const addForm = (list: string, label: string, placeholder: string) =>
          html`<form method="post" action="/staff/lists" class="inline">${csrfField(ctx)}<input type="hidden" name="action" value="add"><input type="hidden" name="list" value="${list}">
<label>${label} <input name="value" required maxlength="64" placeholder="${placeholder}"></label><label>Note <input name="note" maxlength="200"></label><button type="submit">Add</button></form>`;
        const hashTable = (list: 'allow' | 'deny', p: Awaited<ReturnType<typeof listPage>>) => {
          const { rows, total } = p;
          const last = rows.at(-1)?.info_hash;
          return html`<p class="muted">${total.toLocaleString('en')} entr${total === 1 ? 'y' : 'ies'}, by info hash${p.after !== undefined ? html` (after ${p.after})` : ''}.</p>
<div class="table-wrap"><table><thead><tr><th>Info hash</th><th>Note</th><th></th></tr></thead><tbody>
${rows.map((r) => html`<tr><td class="mono">${r.info_hash}</td><td>${r.note ?? ''}</td><td>${remove(list, r.info_hash)}</td></tr>`)}
${rows.length === 0 ? html`<tr><td colspan="3" class="muted">${p.after !== undefined ? 'No more.' : 'Empty.'}</td></tr>` : ''}</tbody></table></div>
<nav class="pager" aria-label="${list} list pages">
${p.after !== undefined ? html`<a href="/staff/lists">← First</a>` : ''}
${rows.length === LIST_PAGE && last !== undefined ? html`<a href="/staff/lists?${list}_after=${last}">Next →</a>` : ''}
</nav>`;
        };
        staffPage(
          ctx,
          'Lists',
          html`<section class="card"><h2>Client whitelist</h2>
<p class="muted">Peer id prefixes of the clients allowed to announce (empty: any client).</p>
${addForm('client', 'Prefix', '-qB4')}
<div class="table-wrap mt"><table><thead><tr><th>Prefix</th><th>Note</th><th></th></tr></thead><tbody>
${clients.map((c) => html`<tr><td class="mono">${c.prefix}</td><td>${c.note ?? ''}</td><td>${remove('client', c.prefix)}</td></tr>`)}
${clients.length === 0 ? html`<tr><td colspan="3" class="muted">Any client may announce.</td></tr>` : ''}</tbody></table></div></section>
<section class="card"><h2>Deny list</h2>${addForm('deny', 'Info hash', '40 hex digits')}<div class="mt">${hashTable('deny', deny)}</div></section>
<section class="card"><h2>Allow list</h2>${addForm('allow', 'Info hash', '40 hex digits')}<div class="mt">${hashTable('allow', allow)}</div></section>`,
        );
      },
    },
    {
      method: 'POST',
      pattern: /^\/staff\/lists$/,
      access: 'staff',
      async handle(ctx) {
        const action = field(ctx, 'action');
        const list = field(ctx, 'list');
        const value = field(ctx, 'value');
        const note = field(ctx, 'note').slice(0, 200) || null;
        await guard(
          ctx,
          async () => {
            if (list === 'client') {
              if (action === 'add') await ctx.reg.addClientPrefix(value, note);
              else await ctx.reg.removeClientPrefix(value);
            } else if (list === 'allow' || list === 'deny') {
              if (action === 'add') await ctx.reg.addToList(list, value, note);
              else await ctx.reg.removeFromList(list, value);
            } else throw new RegistryError('unknown list');
          },
          '/staff/lists?msg=saved',
        );
      },
    },
  ];
}
