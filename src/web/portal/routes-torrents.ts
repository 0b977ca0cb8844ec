import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { announceUrls } from '../../core/urls.ts';
import type { BrowseFilter } from '../../db/accounts.ts';
import type { PublicMember, TorrentSummary } from '../../db/registry.ts';
import { RegistryError, TorrentClash } from '../../db/registry.ts';
import { magnetLink, personalise, withAnnounce } from '../../protocol/metainfo/index.ts';
import {
  ago,
  bytes,
  type Ctx,
  csrfField,
  date,
  errorPage,
  field,
  type PortalDeps,
  page,
  redirect,
  send,
  staffPowers,
  staffPowersOf,
  staffRefusal,
} from './context.ts';
import { escapeHtml, html } from './html.ts';
import type { Route } from './routes-auth.ts';
import { tokenBox } from './routes-bonus.ts';
import {
  featuredBadge,
  featuredList,
  featuredNotice,
  featuredNow,
  featureForm,
} from './routes-promotions.ts';

/** BEP 12 tiers: this tracker's HTTP URLs, then HTTPS, then UDP (WebSocket URLs are for browsers). */
export function announceTiers(urls: string[]): string[][] {
  const tier = (scheme: string) => urls.filter((u) => u.startsWith(`${scheme}://`));
  return [tier('http'), tier('https'), tier('udp')].filter((t) => t.length > 0);
}

const SORTS = ['seeders', 'leechers', 'snatches', 'size', 'age', 'name'] as const;
type Sort = (typeof SORTS)[number];
const PAGE = 50;

type Live = TorrentSummary & { seeders: number; leechers: number };

/** Live counts from the swarm store; a hybrid's peers may announce under either hash. */
async function withLive<T extends { info_hash: string | null; info_hash_v2: string | null }>(
  ctx: Ctx,
  list: T[],
): Promise<(T & { seeders: number; leechers: number })[]> {
  const hashes: Uint8Array[] = [];
  const index: number[][] = [];
  for (const t of list) {
    const mine: number[] = [];
    for (const h of [t.info_hash, t.info_hash_v2?.slice(0, 40)]) {
      if (!h) continue;
      mine.push(hashes.length);
      hashes.push(Buffer.from(h, 'hex'));
    }
    index.push(mine);
  }
  let entries = hashes.length > 0 ? ctx.deps.scrape(hashes) : [];
  if (entries instanceof Promise) entries = await entries;
  const e = entries;
  return list.map((t, i) => ({
    ...t,
    seeders: index[i].reduce((s, j) => s + (e[j]?.complete ?? 0), 0),
    leechers: index[i].reduce((s, j) => s + (e[j]?.incomplete ?? 0), 0),
  }));
}

/** Torrents whose live counts are read per step of a sort by them (`byLive`). */
const LIVE_STEP = 1000;

/**
 * A page of the torrent list sorted by live seeders or leechers: the counts of every match come
 * from the swarm store (ids and hashes read `LIVE_STEP` at a time, with a turn of the event loop
 * between), are sorted, and only that page's torrents are read whole. The counts live in the
 * store, not the database, so no query can sort by them; the list once sorted only the newest
 * 5,000 torrents, and a well-seeded older one never showed.
 */
async function byLive(
  ctx: Ctx,
  filter: BrowseFilter,
  sort: 'seeders' | 'leechers',
  dir: 'asc' | 'desc',
  pageNo: number,
): Promise<Live[]> {
  const counts: { id: number; seeders: number; leechers: number }[] = [];
  for (let after = 0; ; ) {
    const keys = await ctx.reg.accounts.browseKeys(filter, after, LIVE_STEP);
    for (const t of await withLive(ctx, keys))
      counts.push({ id: t.id, seeders: t.seeders, leechers: t.leechers });
    if (keys.length < LIVE_STEP) break;
    after = keys[keys.length - 1].id;
    await yieldToLoop();
  }
  counts.sort((a, b) => {
    const c = a[sort] - b[sort] || b.id - a.id;
    return dir === 'asc' ? c : -c;
  });
  const shown = counts.slice((pageNo - 1) * PAGE, pageNo * PAGE);
  const rows = new Map((await ctx.reg.accounts.torrentsById(shown.map((t) => t.id))).map((t) => [t.id, t]));
  return shown.flatMap((k) => {
    const t = rows.get(k.id);
    return t === undefined ? [] : [{ ...t, seeders: k.seeders, leechers: k.leechers }];
  });
}

/** `featured`: the torrent's featured window, when it is featured now (issue #16). */
function badges(t: TorrentSummary, featured?: { ends: number; upload: number }) {
  return html`${featuredBadge(featured)}${t.download_factor === 0 ? html` <span class="badge free">freeleech</span>` : ''}${t.restricted ? html` <span class="badge restricted">restricted</span>` : ''}`;
}

/**
 * The stored .torrent with `passkey` in every announce URL, or null when none is stored. Cut and
 * joined from the stored bytes at the announce slots saved with them, never parsed: a download
 * costs a copy of the file, however many files it lists. The stored file is already private:
 * only the announce keys change, so the info hash stays.
 */
export async function personalTorrent(ctx: Ctx, torrentId: number, passkey: string): Promise<Buffer | null> {
  const stored = await ctx.reg.files.template(torrentId);
  if (stored === null) return null;
  const urls = announceUrls(ctx.deps.urls(), passkey);
  const tiers = announceTiers(urls);
  return withAnnounce(stored.bytes, stored.slots, tiers[0]?.[0] ?? urls[0], tiers);
}

/**
 * Whether a member may have a torrent's metadata (the .torrent, its magnet link, info hashes and
 * file list): exactly what announcing it takes (not restricted, or a live grant of their own or
 * of a group of theirs), and staff always, since they manage the grants. Handing the file to
 * someone the tracker refuses would give them the info hash to find peers by other means.
 */
async function mayDownload(ctx: Ctx, t: TorrentSummary, member: PublicMember): Promise<boolean> {
  if (t.restricted === 0 || (await staffPowersOf(ctx, member))) return true;
  return ctx.reg.grantedTo(t.id, member.id, ctx.now);
}

/** Browse and feeds: whose restricted torrents to leave out (none for staff). */
const hiddenFor = async (ctx: Ctx, member: PublicMember) =>
  (await staffPowersOf(ctx, member)) ? undefined : { memberId: member.id, at: ctx.now };

function torrentFilename(name: string): string {
  const safe = name.replace(/[^A-Za-z0-9 ._()[\]-]/g, '_').slice(0, 150) || 'torrent';
  return `${safe}.torrent`;
}

/** The personal .torrent, or `refuse` with a status and a reason (a page, or plain text for RSS clients). */
async function sendTorrent(
  ctx: Ctx,
  t: TorrentSummary | undefined,
  member: PublicMember,
  refuse: (status: number, message: string) => void,
) {
  if (!t) return refuse(404, 'No such torrent.');
  if (!(await mayDownload(ctx, t, member)))
    return ctx.deps.config.hideRestricted
      ? refuse(404, 'No such torrent.')
      : refuse(403, 'This torrent is restricted: downloading it takes a grant (ask the staff).');
  const file = await personalTorrent(ctx, t.id, member.passkey);
  if (file === null) return refuse(404, 'No .torrent file is stored for this torrent.');
  send(ctx, 200, 'application/x-bittorrent', file, {
    'content-disposition': `attachment; filename="${torrentFilename(t.name)}"`,
    'cache-control': 'no-store',
  });
}

function uploadForm(ctx: Ctx, error?: string, status = 400) {
  const cats = ctx.deps.config.categories;
  page(ctx, {
    title: 'Upload',
    status: error ? status : 200,
    error,
    body: html`<div class="card narrow"><h1>Upload a torrent</h1>
<p class="muted">Create the torrent with any client (v1, v2 or hybrid). Herald sets the private flag and this
tracker's announce URLs, which changes the info hash: download your personal .torrent after the upload and seed from it.</p>
<form method="post" action="/upload" enctype="multipart/form-data" class="stack">
${csrfField(ctx)}
<label>.torrent file <input type="file" name="torrent" accept=".torrent,application/x-bittorrent" required></label>
<label>Name <span class="hint">optional; the torrent's own name by default</span><input name="name" maxlength="300" value="${field(ctx, 'name')}"></label>
<label>Category <select name="category" required>${cats.map((c) => html`<option${field(ctx, 'category') === c ? html` selected` : ''}>${c}</option>`)}</select></label>
<label>Description <textarea name="description" maxlength="20000">${field(ctx, 'description')}</textarea></label>
<button type="submit">Upload</button>
</form></div>`,
  });
}

export function torrentRoutes(config: PortalDeps['config']): Route[] {
  return [
    {
      method: 'GET',
      pattern: /^\/$/,
      access: 'public',
      handle(ctx) {
        redirect(ctx, ctx.member ? '/torrents' : '/login');
      },
    },
    {
      method: 'GET',
      pattern: /^\/torrents$/,
      access: 'member',
      async handle(ctx) {
        const q = (ctx.query.get('q') ?? '').slice(0, 100);
        const catParam = ctx.query.get('cat') ?? '';
        const cat = ctx.deps.config.categories.includes(catParam) ? catParam : '';
        const sortParam = ctx.query.get('sort') ?? 'age';
        const sort: Sort = (SORTS as readonly string[]).includes(sortParam) ? (sortParam as Sort) : 'age';
        const dir = ctx.query.get('dir') === 'asc' ? 'asc' : 'desc';
        const pageNo = Math.max(1, Math.min(1000, Number.parseInt(ctx.query.get('page') ?? '1', 10) || 1));
        // The database sorts and pages by the torrent's own columns; live counts are sorted here
        // over every match (`byLive`). The count is every match.
        const hide = config.hideRestricted ? await hiddenFor(ctx, ctx.member!) : undefined;
        const filter: BrowseFilter = { search: q, category: cat, grantedTo: hide };
        const total = await ctx.reg.accounts.countTorrents(filter);
        const shown =
          sort === 'seeders' || sort === 'leechers'
            ? await byLive(ctx, filter, sort, dir, pageNo)
            : await withLive(
                ctx,
                await ctx.reg.accounts.browseTorrents({
                  ...filter,
                  sort,
                  dir,
                  limit: PAGE,
                  offset: (pageNo - 1) * PAGE,
                }),
              );
        const featured = await featuredNow(ctx);
        const link = (over: Record<string, string>) => {
          const p = new URLSearchParams({ q, cat, sort, dir, page: String(pageNo), ...over });
          for (const [n, v] of [...p]) if (v === '' || (n === 'page' && v === '1')) p.delete(n);
          return `/torrents?${p}`;
        };
        const th = (s: Sort, label: string, cls = '') => {
          const active = sort === s;
          const next = active && dir === 'desc' ? 'asc' : 'desc';
          return html`<th class="${cls}" aria-sort="${active ? (dir === 'asc' ? 'ascending' : 'descending') : 'none'}"><a class="sort" href="${link({ sort: s, dir: next, page: '1' })}">${label}${active ? (dir === 'asc' ? ' ▲' : ' ▼') : ''}</a></th>`;
        };
        page(ctx, {
          title: 'Torrents',
          body: html`<h1>Torrents</h1>
<form method="get" action="/torrents" class="inline card" role="search">
<label>Search <input name="q" type="search" value="${q}" maxlength="100"></label>
<label>Category <select name="cat"><option value="">All</option>${ctx.deps.config.categories.map((c) => html`<option${c === cat ? html` selected` : ''}>${c}</option>`)}</select></label>
<input type="hidden" name="sort" value="${sort}"><input type="hidden" name="dir" value="${dir}">
<button type="submit">Search</button>
<a class="button secondary" href="/rss?key=${ctx.member!.feed_key}${cat ? `&cat=${encodeURIComponent(cat)}` : ''}">RSS</a>
</form>
${await featuredList(ctx, hide)}
<p class="muted">${total.toLocaleString('en')} torrent${total === 1 ? '' : 's'}</p>
<div class="table-wrap"><table>
<thead><tr>${th('name', 'Name')}<th class="hide-small">Category</th>${th('size', 'Size', 'num hide-small')}${th('seeders', 'Seeders', 'num')}${th('leechers', 'Leechers', 'num')}${th('snatches', 'Snatches', 'num hide-small')}${th('age', 'Added', 'hide-small')}</tr></thead>
<tbody>
${shown.map(
  (t) =>
    html`<tr><td><a href="/torrent/${t.id}">${t.name}</a>${badges(t, featured.get(t.id))}</td><td class="hide-small">${t.category ?? ''}</td><td class="num hide-small">${bytes(t.size)}</td><td class="num">${t.seeders}</td><td class="num">${t.leechers}</td><td class="num hide-small">${t.snatches}</td><td class="hide-small">${ago(t.created_at, ctx.now)}</td></tr>`,
)}
${shown.length === 0 ? html`<tr><td colspan="7" class="muted">Nothing here yet. <a href="/upload">Upload a torrent</a>.</td></tr>` : ''}
</tbody></table></div>
<nav class="pager" aria-label="Pages">
${pageNo > 1 ? html`<a href="${link({ page: String(pageNo - 1) })}">← Newer</a>` : ''}
${pageNo * PAGE < total ? html`<a href="${link({ page: String(pageNo + 1) })}">Older →</a>` : ''}
</nav>`,
        });
      },
    },
    {
      method: 'GET',
      pattern: /^\/upload$/,
      access: 'member',
      handle(ctx) {
        uploadForm(ctx);
      },
    },
    {
      method: 'POST',
      pattern: /^\/upload$/,
      access: 'member',
      // A .torrent up to max_torrent_bytes (refused with a clear message above it), plus the
      // multipart framing and the other fields.
      maxBody: config.maxTorrentBytes + 1024 * 1024,
      async handle(ctx) {
        const file = ctx.form.files.get('torrent');
        if (!file || file.data.length === 0) return uploadForm(ctx, 'Choose a .torrent file.');
        const category = field(ctx, 'category');
        if (!ctx.deps.config.categories.includes(category)) return uploadForm(ctx, 'Choose a category.');
        const urls = ctx.deps.urls().map((u) => `${u.replace(/\/+$/, '')}/announce`);
        const tiers = announceTiers(urls);
        if (tiers.length === 0)
          return uploadForm(ctx, 'This tracker has no announce URL to put in the torrent.', 500);
        try {
          // Parsed once, under the caps (max_torrent_bytes, max_torrent_files).
          const parsed = ctx.reg.parseTorrent(file.data);
          // Private flag (BEP 27) and this tracker's tiers: the info hash changes, and the new one
          // (both hashes of a hybrid) is what gets registered. The stored file carries no passkey.
          const personal = personalise(parsed, {
            announce: tiers[0][0],
            announceList: tiers,
            setPrivate: true,
          });
          const t = await ctx.reg.addMetainfo(personal.torrent, {
            name: field(ctx, 'name').slice(0, 300) || undefined,
            category,
            description: field(ctx, 'description').slice(0, 20000) || null,
            uploaderId: ctx.member!.id,
          });
          await ctx.deps.refreshPolicy();
          redirect(ctx, `/torrent/${t.id}?msg=uploaded`);
        } catch (err) {
          // The same torrent is here already: which one only to those who may see it (with
          // hide_restricted a restricted torrent's name and id are not told to a member without a
          // grant, who may hold the .torrent from elsewhere).
          if (err instanceof TorrentClash) {
            const t = await ctx.reg.findTorrent(err.torrentId);
            const hidden =
              config.hideRestricted && t !== undefined && !(await mayDownload(ctx, t, ctx.member!));
            return uploadForm(
              ctx,
              hidden ? 'This torrent is already registered here.' : err.message,
              err.status,
            );
          }
          if (err instanceof RegistryError) return uploadForm(ctx, err.message, err.status);
          throw err;
        }
      },
    },
    {
      method: 'GET',
      pattern: /^\/torrent\/([0-9]{1,12})$/,
      access: 'member',
      async handle(ctx) {
        const found = await ctx.reg.findTorrent(Number(ctx.params[0]));
        const me = ctx.member!;
        const staff = staffPowers(ctx);
        const granted = found?.restricted === 1 && (await ctx.reg.grantedTo(found.id, me.id, ctx.now));
        const may = found !== undefined && (found.restricted === 0 || granted || staff);
        // hide_restricted: without a grant, a restricted torrent does not exist, name included.
        if (!found || (!may && config.hideRestricted))
          return errorPage(ctx, 404, 'Torrent', 'No such torrent.');
        const [t] = await withLive(ctx, [found]);
        const featured = (await featuredNow(ctx)).get(t.id);
        const filesPage = Math.max(1, Math.min(1e6, Number.parseInt(ctx.query.get('files') ?? '1', 10) || 1));
        // Everything below comes from the summary stored at upload: the page never reads the file.
        const contents = may ? await ctx.reg.files.contents(t.id, filesPage) : null;
        const uploader = t.uploader_id !== null ? await ctx.reg.findMember(t.uploader_id) : undefined;
        const hex = (h: string | null) => (h ? Buffer.from(h, 'hex') : undefined);
        const magnet = contents
          ? magnetLink(
              {
                infoHashV1: hex(t.info_hash),
                infoHashV2: hex(t.info_hash_v2),
                name: contents.name,
                totalSize: t.size,
              },
              announceUrls(ctx.deps.urls(), me.passkey),
            )
          : null;
        const filesLink = (n: number, label: string) =>
          html`<a href="/torrent/${t.id}?files=${n}">${label}</a>`;
        page(ctx, {
          title: t.name,
          nav: '/torrents',
          body: html`<h1>${t.name}${badges(t, featured)}</h1>
${featured !== undefined ? featuredNotice(featured) : ''}
<div class="grid">
<div class="stat"><div class="label">Seeders</div><div class="value">${t.seeders}</div></div>
<div class="stat"><div class="label">Leechers</div><div class="value">${t.leechers}</div></div>
<div class="stat"><div class="label">Snatches</div><div class="value">${t.snatches}</div></div>
<div class="stat"><div class="label">Size</div><div class="value">${bytes(t.size)}</div></div>
</div>
${
  t.restricted
    ? html`<p class="flash ${granted ? 'ok' : 'error'} mt">${
        granted
          ? 'Restricted torrent: you hold a grant for it.'
          : may
            ? 'Restricted torrent: only members holding a grant (or in a granted group) may announce it.'
            : 'Restricted torrent: only members holding a grant (or in a granted group) may download and announce it.'
      }</p>`
    : ''
}
<div class="card mt">
${
  may
    ? html`<div class="actions">
<a class="button" href="/torrent/${t.id}/download" download>Download .torrent</a>
${magnet ? html`<a class="button secondary" href="${magnet}">Magnet link</a>` : ''}
</div>
${await tokenBox(ctx, t.id, t.download_factor === 0 || featured !== undefined)}${staff && featured === undefined ? featureForm(ctx, t.id) : ''}`
    : ''
}
<dl>
<dt>Category</dt><dd>${t.category ?? '—'}</dd>
<dt>Uploaded by</dt><dd>${uploader ? html`<a href="/member/${uploader.id}">${uploader.username}</a>` : '—'} · ${date(t.created_at)}</dd>
${may && t.info_hash ? html`<dt>Info hash (v1)</dt><dd class="mono">${t.info_hash}</dd>` : ''}
${may && t.info_hash_v2 ? html`<dt>Info hash (v2)</dt><dd class="mono">${t.info_hash_v2}</dd>` : ''}
${contents ? html`<dt>Version</dt><dd>${contents.version} · piece size ${bytes(contents.pieceLength)}</dd>` : ''}
</dl>
${t.description ? html`<h2>Description</h2><p class="prewrap">${t.description}</p>` : ''}
</div>
${
  contents
    ? html`<h2 id="files">Files (${t.file_count})</h2><div class="table-wrap"><table><thead><tr><th>Path</th><th class="num">Size</th></tr></thead><tbody>
${contents.files.map((f) => html`<tr><td class="mono">${f.path}</td><td class="num">${bytes(f.length)}</td></tr>`)}
${contents.files.length === 0 ? html`<tr><td colspan="2" class="muted">No files on this page.</td></tr>` : ''}
</tbody></table></div>
${
  contents.pages > 1
    ? html`<nav class="pager" aria-label="File pages">
${filesPage > 1 ? filesLink(Math.min(filesPage - 1, contents.pages), '← Previous files') : ''}
<span class="muted">page ${filesPage} of ${contents.pages}</span>
${filesPage < contents.pages ? filesLink(filesPage + 1, 'Next files →') : ''}
</nav>`
    : ''
}`
    : ''
}
${staff ? staffTorrentForm(ctx, t) : ''}
${staff && t.restricted ? await grantsSection(ctx, t) : ''}`,
        });
      },
    },
    {
      method: 'GET',
      pattern: /^\/torrent\/([0-9]{1,12})\/download$/,
      access: 'member',
      async handle(ctx) {
        const t = await ctx.reg.findTorrent(Number(ctx.params[0]));
        await sendTorrent(ctx, t, ctx.member!, (status, message) =>
          errorPage(ctx, status, 'Download', message),
        );
      },
    },
    {
      method: 'GET',
      pattern: /^\/rss$/,
      access: 'public',
      async handle(ctx) {
        const member = await ctx.reg.accounts.memberByFeedKey(ctx.query.get('key') ?? '');
        if (member?.status !== 'active')
          return send(ctx, 403, 'text/plain; charset=utf-8', 'unknown or disabled feed key\n');
        const catParam = ctx.query.get('cat') ?? '';
        const cat = ctx.deps.config.categories.includes(catParam) ? catParam : '';
        // A feed is for downloading: it lists only what this member may download, whatever
        // hide_restricted says about browsing.
        const list = await ctx.reg.accounts.browseTorrents({
          category: cat,
          limit: 50,
          grantedTo: await hiddenFor(ctx, member),
        });
        const origin = `http${ctx.secure ? 's' : ''}://${hostOf(ctx)}${ctx.base}`;
        const x = escapeHtml;
        const items = list
          .map(
            (t) =>
              `<item><title>${x(t.name)}</title><link>${x(`${origin}/rss/download/${t.id}?key=${member.feed_key}`)}</link>` +
              `<guid isPermaLink="false">herald-torrent-${t.id}</guid><pubDate>${new Date(t.created_at * 1000).toUTCString()}</pubDate>` +
              `${t.category ? `<category>${x(t.category)}</category>` : ''}` +
              `<enclosure url="${x(`${origin}/rss/download/${t.id}?key=${member.feed_key}`)}" length="${t.size}" type="application/x-bittorrent"/></item>`,
          )
          .join('\n');
        const title = `${ctx.deps.config.siteName}${cat ? ` · ${cat}` : ''}`;
        send(
          ctx,
          200,
          'application/rss+xml; charset=utf-8',
          `<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel><title>${x(title)}</title><link>${x(origin)}/torrents</link><description>New torrents</description>\n${items}\n</channel></rss>\n`,
          { 'cache-control': 'no-store' },
        );
      },
    },
    {
      method: 'GET',
      pattern: /^\/rss\/download\/([0-9]{1,12})$/,
      access: 'public',
      async handle(ctx) {
        const member = await ctx.reg.accounts.memberByFeedKey(ctx.query.get('key') ?? '');
        if (member?.status !== 'active')
          return send(ctx, 403, 'text/plain; charset=utf-8', 'unknown or disabled feed key\n');
        const t = await ctx.reg.findTorrent(Number(ctx.params[0]));
        await sendTorrent(ctx, t, member, (status, message) =>
          send(ctx, status, 'text/plain; charset=utf-8', `${message}\n`),
        );
      },
    },
  ];
}

function hostOf(ctx: Ctx): string {
  const h = ctx.req.headers.host ?? 'localhost';
  return /^[A-Za-z0-9.:[\]-]{1,300}$/.test(h) ? h : 'localhost';
}

/** Grants listed on a restricted torrent's page. */
const GRANTS_SHOWN = 500;

/** Restricted torrents: who holds a grant (members or groups), add one, revoke one. */
async function grantsSection(ctx: Ctx, t: TorrentSummary) {
  // The first GRANTS_SHOWN with their members' names in one query (it was a query per grant).
  const grants = await ctx.reg.torrentGrants(t.id, GRANTS_SHOWN);
  const groups = new Map((await ctx.reg.listGroups()).map((g) => [g.id, g.name]));
  const rows = [];
  for (const g of grants.rows) {
    const who =
      g.member_id !== null
        ? html`member <a href="/member/${g.member_id}">${g.username ?? g.member_id}</a>`
        : html`group ${groups.get(g.group_id ?? -1) ?? g.group_id}`;
    // No button for what the revoke form refuses (staffRefusal: their own, or other staff's).
    const may =
      g.member_id === null ||
      g.role === null ||
      staffRefusal(ctx, { id: g.member_id, role: g.role }) === null;
    rows.push(
      html`<tr><td>${who}</td><td>${g.reference ?? ''}</td><td>${g.expires_at ? date(g.expires_at) : 'never'}</td>
<td>${may ? html`<form method="post" action="/staff/torrents/${t.id}">${csrfField(ctx)}<input type="hidden" name="action" value="revoke"><input type="hidden" name="grant" value="${g.id}"><button class="secondary" type="submit">Revoke</button></form>` : ''}</td></tr>`,
    );
  }
  return html`<section class="card" aria-labelledby="grants"><h2 id="grants">Grants</h2>
<p class="muted">Only these members and groups may announce this restricted torrent.${grants.total > grants.rows.length ? html` ${grants.total.toLocaleString('en')} grants; the first ${grants.rows.length} are shown (all: <code>GET /api/grants?torrent=${t.id}</code>, a page at a time).` : ''}</p>
<form method="post" action="/staff/torrents/${t.id}" class="inline">${csrfField(ctx)}<input type="hidden" name="action" value="grant">
<label>Member or group <input name="who" required maxlength="64" placeholder="username or group:name"></label>
<label>Reference <input name="reference" maxlength="200"></label>
<label>Days <span class="hint">empty: forever</span><input name="days" type="number" min="1" max="36500"></label>
<button type="submit">Grant</button></form>
<div class="table-wrap mt"><table><thead><tr><th>Who</th><th>Reference</th><th>Expires</th><th></th></tr></thead><tbody>
${rows}${rows.length === 0 ? html`<tr><td colspan="4" class="muted">Nobody yet.</td></tr>` : ''}
</tbody></table></div></section>`;
}

function staffTorrentForm(ctx: Ctx, t: TorrentSummary) {
  return html`<section class="card" aria-labelledby="staff-torrent"><h2 id="staff-torrent">Staff</h2>
<form method="post" action="/staff/torrents/${t.id}" class="stack">
${csrfField(ctx)}<input type="hidden" name="action" value="edit">
<label>Name <input name="name" value="${t.name}" maxlength="300" required></label>
<label>Category <select name="category">${ctx.deps.config.categories.map((c) => html`<option${c === t.category ? html` selected` : ''}>${c}</option>`)}</select></label>
<label>Description <textarea name="description" maxlength="20000">${t.description ?? ''}</textarea></label>
<label class="check"><input type="checkbox" name="freeleech" value="1"${t.download_factor === 0 ? html` checked` : ''}> Freeleech (downloads not counted)</label>
<label class="check"><input type="checkbox" name="restricted" value="1"${t.restricted ? html` checked` : ''}> Restricted (only members with a grant may announce)</label>
<div class="actions"><button type="submit">Save</button></div>
</form>
<form method="post" action="/staff/torrents/${t.id}" class="actions mt">
${csrfField(ctx)}<input type="hidden" name="action" value="delete">
<button class="danger" type="submit">Delete torrent</button>
</form></section>`;
}
