import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import { announceUrls } from '../core/urls.ts';
import { type PublicMember, type Registry, RegistryError } from '../db/registry.ts';
import { HNR_STATUSES, type HnrStatus, MEMBER_STATUSES, ROLES } from '../db/schema.ts';
import type { ClassDef } from '../policy/classes.ts';
import type { Policy } from '../policy/policy.ts';
import type { StatsReporter } from '../tracker/stats.ts';

class ApiError extends Error {
  readonly status: number;
  readonly issues: unknown;
  constructor(status: number, message: string, issues?: unknown) {
    super(message);
    this.status = status;
    this.issues = issues;
  }
}

const MAX_BODY = 16 * 1024 * 1024;
const hex40 = z
  .string()
  .regex(/^[0-9a-fA-F]{40}$|^[0-9a-fA-F]{64}$/, 'an info hash: 40 hex digits (or 64 for v2)');
const factor = z.number().int().min(0).max(10000);
const ref = z.union([z.string().min(1).max(64), z.number().int().positive()]);

const schemas = {
  newMember: z.strictObject({
    username: z.string().min(2).max(32),
    role: z.enum(ROLES).optional(),
    email: z.string().email().max(254).nullable().optional(),
    invites: z.number().int().min(0).max(100000).optional(),
  }),
  patchMember: z.strictObject({
    role: z.enum(ROLES).optional(),
    invites: z.number().int().min(0).max(100000).optional(),
    email: z.string().email().max(254).nullable().optional(),
    status: z.enum(MEMBER_STATUSES).optional(),
    reason: z.string().max(500).nullable().optional(),
    can_leech: z.boolean().optional(),
    hnr_immune: z.boolean().optional(),
    class: z.string().min(1).max(32).nullable().optional(),
  }),
  bonus: z.strictObject({
    points: z
      .number()
      .int()
      .min(-1e12)
      .max(1e12)
      .refine((n) => n !== 0, 'not 0'),
    note: z.string().max(200).nullable().optional(),
  }),
  forgive: z.strictObject({
    note: z.string().max(500).nullable().optional(),
  }),
  newTorrent: z.union([
    z.strictObject({
      metainfo: z.string().base64().min(1),
      name: z.string().min(1).max(500).optional(),
      category: z.string().max(100).nullable().optional(),
      description: z.string().max(100000).nullable().optional(),
      restricted: z.boolean().optional(),
      download_factor: factor.optional(),
      upload_factor: factor.optional(),
    }),
    z.strictObject({
      info_hash: hex40.nullable().optional(),
      info_hash_v2: z
        .string()
        .regex(/^[0-9a-fA-F]{64}$/)
        .nullable()
        .optional(),
      name: z.string().min(1).max(500),
      size: z.number().int().min(0).optional(),
      category: z.string().max(100).nullable().optional(),
      description: z.string().max(100000).nullable().optional(),
      restricted: z.boolean().optional(),
      download_factor: factor.optional(),
      upload_factor: factor.optional(),
    }),
  ]),
  patchTorrent: z.strictObject({
    name: z.string().min(1).max(500).optional(),
    category: z.string().max(100).nullable().optional(),
    description: z.string().max(100000).nullable().optional(),
    restricted: z.boolean().optional(),
    freeleech: z.boolean().optional(),
    download_factor: factor.optional(),
    upload_factor: factor.optional(),
  }),
  note: z.strictObject({ note: z.string().max(500).nullable().optional() }),
  newGroup: z.strictObject({ name: z.string().min(1).max(64) }),
  newGrant: z.strictObject({
    torrent: ref,
    member: ref.optional(),
    group: ref.optional(),
    reference: z.string().max(200).nullable().optional(),
    expires_at: z.number().int().positive().nullable().optional(),
  }),
  newEvent: z.strictObject({
    name: z.string().min(1).max(100),
    starts_at: z.number().int().min(0),
    ends_at: z.number().int().min(0),
    freeleech: z.boolean().optional(),
    double_upload: z.boolean().optional(),
    upload_factor: z.number().int().min(100).max(1000).optional(),
  }),
  patchEvent: z.strictObject({
    name: z.string().min(1).max(100).optional(),
    starts_at: z.number().int().min(0).optional(),
    ends_at: z.number().int().min(0).optional(),
    freeleech: z.boolean().optional(),
    upload_factor: z.number().int().min(100).max(1000).optional(),
  }),
  feature: z.strictObject({
    torrent: ref,
    days: z.number().int().min(1).max(366).optional(),
    starts_at: z.number().int().min(0).optional(),
    ends_at: z.number().int().min(0).optional(),
    upload_factor: z.number().int().min(100).max(1000).optional(),
  }),
  freeleechWindow: z.strictObject({
    starts_at: z.number().int().min(0).optional(),
    ends_at: z.number().int().min(0),
    double_upload: z.boolean().optional(),
    upload_factor: z.number().int().min(100).max(1000).optional(),
    note: z.string().max(200).nullable().optional(),
  }),
  tokens: z.strictObject({
    count: z
      .number()
      .int()
      .min(-10000)
      .max(10000)
      .refine((n) => n !== 0, 'not 0'),
    note: z.string().max(200).nullable().optional(),
  }),
  spendToken: z.strictObject({ torrent: ref }),
  settings: z.strictObject({
    site_download_factor: factor.optional(),
    site_upload_factor: factor.optional(),
  }),
};

type Handler = (params: string[], body: () => Promise<unknown>, query: URLSearchParams) => Promise<unknown>;

/**
 * One page of a list: the answer is its rows (an array, as before pages had cursors), and, when
 * more follow, `Link: <this request with after=NEXT>; rel="next"` (RFC 8288) names the next page.
 */
class Page {
  readonly rows: unknown[];
  readonly next: string | null;
  constructor(rows: unknown[], next: string | null) {
    this.rows = rows;
    this.next = next;
  }
}

/**
 * The JSON API under /api (docs/openapi.json) for staff tools, shops and licensing systems:
 * members, torrents, info-hash lists, client prefixes, groups, grants, site settings, stats.
 * Every request needs `Authorization: Bearer <api_token>`; bodies are validated (zod) and a bad
 * one gets 400 with the issues listed. Changes reach the running tracker(s) through the database
 * revision within `policy_refresh` seconds (`POST /api/reload` applies them to this one at once).
 */
export function createApiHandler(deps: {
  token: string;
  registry: () => Registry;
  policy: Policy;
  stats: StatsReporter;
  onError: (err: unknown) => void;
  urls: () => string[];
  /** Private mode: torrents seeding and leeching now, from the tracker's memory (as the profile). */
  activity?: (
    memberId: number,
  ) => { seeding: number; leeching: number } | Promise<{ seeding: number; leeching: number }>;
  /** For "now" from the database when `activity` is absent. */
  peerTimeout?: number;
  /** Seconds a connectable result is shown (connectable_interval + peer_timeout); older ones are "unknown". */
  connectableMaxAge?: number;
  /** Hit-and-run: active ones at which download rights go (0 = never); forgiveness below it gives them back. */
  hnrThreshold?: number;
  /** Member classes as configured, lowest first (issue #16). */
  classes?: readonly ClassDef[];
  /**
   * Promotions and tokens (issue #16): `promotion_upload_factor` (what `double_upload` means),
   * `featured_days`, `freeleech_token_days`. Defaults: 200, 7, 3.
   */
  promotions?: { uploadFactor: number; featuredDays: number; tokenDays: number };
  /** `require_2fa_for_staff`: staff without 2FA have no staff powers (restricted torrents) here either. */
  require2faForStaff?: boolean;
}) {
  const tokenHash = createHash('sha256').update(deps.token).digest();
  const promo = deps.promotions ?? { uploadFactor: 200, featuredDays: 7, tokenDays: 3 };
  const nowS = () => Math.floor(Date.now() / 1000);

  /**
   * Whether a member may have a restricted torrent: a live grant, or staff powers (staff, with
   * 2FA on when `require_2fa_for_staff`), the portal's `mayDownload` for a member not logged in.
   */
  const mayDownloadRestricted = async (m: PublicMember, torrentId: number): Promise<boolean> => {
    if (m.role === 'moderator' || m.role === 'admin') {
      if (deps.require2faForStaff !== true) return true;
      if ((await reg().accounts.twoFactor(m.id)).enabledAt !== null) return true;
    }
    return reg().grantedTo(torrentId, m.id, nowS());
  };
  /** What the API reports of a member's freeleech tokens: held, spent (the windows), given by staff. */
  const tokensOut = async (m: PublicMember) => ({
    freeleech_tokens: m.freeleech_tokens,
    spent: await reg().freeleech.list({ member: m.id, source: 'token', limit: 500 }),
    ledger: (await reg().bonus.ledger(m.id, 500)).filter((r) => r.reason.endsWith(':token')),
  });
  const reg = () => deps.registry();
  const memberOut = (m: PublicMember) => ({ ...m, announce_urls: announceUrls(deps.urls(), m.passkey) });
  /** One member as the profile shows it: the row, snatches and torrents seeding and leeching now. */
  const profileOut = async (m: PublicMember) => {
    const figures = await reg().memberFigures(m.id, deps.peerTimeout ?? 2700);
    if (deps.activity !== undefined) {
      const a = await deps.activity(m.id);
      figures.seeding_now = a.seeding;
      figures.leeching_now = a.leeching;
    }
    const classes = deps.classes ?? [];
    const torrentsNow = await reg().connectable.torrentsNow(
      m.id,
      deps.peerTimeout ?? 2700,
      deps.connectableMaxAge ?? 0,
      Math.floor(Date.now() / 1000),
    );
    return {
      ...memberOut(m),
      class_name: classes.length > 0 ? (m.class ?? classes[0].name) : null,
      ...figures,
      torrents_now: torrentsNow,
    };
  };
  const parse = async <T>(schema: z.ZodType<T>, body: () => Promise<unknown>): Promise<T> => {
    const r = schema.safeParse(await body());
    if (!r.success)
      throw new ApiError(
        400,
        'invalid request body',
        r.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
      );
    return r.data;
  };
  const list = (p: string) => {
    if (p !== 'allow' && p !== 'deny') throw new ApiError(404, 'lists are "allow" and "deny"');
    return p;
  };
  const idOf = (v: string, what: string) => {
    const n = Number(v);
    if (!/^[0-9]{1,12}$/.test(v) || n <= 0) throw new ApiError(404, `no ${what} ${v}`);
    return n;
  };
  const int = (q: URLSearchParams, k: string, d: number, max: number) => {
    const v = q.get(k);
    if (v === null) return d;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0 || n > max) throw new ApiError(400, `${k}: an integer 0..${max}`);
    return n;
  };

  /** A row id given as `after` (1..2³¹-1), or undefined. */
  const afterId = (q: URLSearchParams) => (q.has('after') ? int(q, 'after', 0, 2_147_483_647) : undefined);
  /**
   * A page by key: `read` is asked for one row more than `limit` (at most 1,000, 100 by default),
   * which tells whether a next page exists; its cursor is `key` of the page's last row. `offset`
   * (the old pages of members, torrents and hit-and-runs: `withOffset`) is passed on when given,
   * and refused with `after`, or by a list that never had it.
   */
  const paged = async <R, A>(
    q: URLSearchParams,
    after: A | undefined,
    key: (row: R) => string | number,
    read: (o: { after: A | undefined; limit: number; offset: number | undefined }) => Promise<R[]>,
    withOffset = false,
  ): Promise<Page> => {
    const limit = int(q, 'limit', 100, 1000);
    if (q.has('offset') && !withOffset) throw new ApiError(400, 'offset: this list pages by `after`');
    if (after !== undefined && q.has('offset')) throw new ApiError(400, 'give `after` or `offset`, not both');
    const offset = q.has('offset') ? int(q, 'offset', 0, 1e9) : undefined;
    const rows = await read({ after, limit: limit + 1, offset });
    const more = rows.length > limit && limit > 0;
    if (rows.length > limit) rows.length = limit;
    return new Page(rows, more ? String(key(rows[limit - 1])) : null);
  };

  const routes: [string, string, Handler][] = [
    ['GET', 'stats', async () => ({ ...(await deps.stats.snapshot()), ...(await reg().counts()) })],
    ['POST', 'reload', async () => ({ reloaded: await deps.policy.refresh() })],
    [
      'GET',
      'members',
      async (_p, _b, q) => {
        const page = await paged(
          q,
          afterId(q),
          (m: PublicMember) => m.id,
          (o) =>
            reg().listMembers({
              search: q.get('search') ?? undefined,
              status: (MEMBER_STATUSES as readonly string[]).includes(q.get('status') ?? '')
                ? (q.get('status') as (typeof MEMBER_STATUSES)[number])
                : undefined,
              ...o,
            }),
          true,
        );
        return new Page((page.rows as PublicMember[]).map(memberOut), page.next);
      },
    ],
    [
      'POST',
      'members',
      async (_p, body) => {
        const b = await parse(schemas.newMember, body);
        return memberOut(
          await reg().addMember({ username: b.username, role: b.role, email: b.email, invites: b.invites }),
        );
      },
    ],
    ['GET', 'members/*', async ([m]) => profileOut(await reg().member(m))],
    [
      'PATCH',
      'members/*',
      async ([m], body) => {
        const b = await parse(schemas.patchMember, body);
        let out = await reg().updateMember(m, { role: b.role, invites: b.invites, email: b.email });
        if (b.status !== undefined) out = await reg().setMemberStatus(m, b.status, b.reason ?? null);
        if (b.can_leech !== undefined) out = await reg().setCanLeech(m, b.can_leech);
        if (b.hnr_immune !== undefined) {
          await reg().hnr.setImmune(out, b.hnr_immune);
          out = await reg().member(out.id);
        }
        if (b.class !== undefined) {
          await reg().classes.set(out, b.class, {
            by: null,
            at: Math.floor(Date.now() / 1000),
            classes: (deps.classes ?? []).map((c) => c.name),
          });
          out = await reg().member(out.id);
        }
        return memberOut(out);
      },
    ],
    [
      'GET',
      'hit-and-runs',
      async (_p, _b, q) => {
        const status = q.get('status');
        if (status !== null && !(HNR_STATUSES as readonly string[]).includes(status))
          throw new ApiError(400, `status: one of ${HNR_STATUSES.join(', ')}`);
        const member = q.has('member') ? (await reg().member(q.get('member') ?? '')).id : undefined;
        return paged(
          q,
          afterId(q),
          (h: { id: number }) => h.id,
          (o) => reg().hnr.list({ member, status: (status ?? undefined) as HnrStatus | undefined, ...o }),
          true,
        );
      },
    ],
    [
      'POST',
      'hit-and-runs/*/forgive',
      async ([id], body) => {
        const b = await parse(schemas.forgive, body);
        const n = Number(id);
        if (!Number.isInteger(n) || n <= 0) throw new ApiError(404, `no hit-and-run ${id}`);
        return reg().hnr.forgive(n, {
          by: null,
          note: b.note ?? null,
          max: deps.hnrThreshold ?? 0,
          at: Math.floor(Date.now() / 1000),
        });
      },
    ],
    [
      'GET',
      'members/*/bonus',
      async ([m]) => {
        const mm = await reg().member(m);
        return {
          balance: await reg().bonus.balance(mm.id),
          freeleech_tokens: mm.freeleech_tokens,
          ledger: await reg().bonus.ledger(mm.id, 100),
        };
      },
    ],
    [
      'POST',
      'members/*/bonus',
      async ([m], body) => {
        const b = await parse(schemas.bonus, body);
        const mm = await reg().member(m);
        const balance = await reg().bonus.give(mm, b.points, {
          note: b.note ?? null,
          by: null,
          at: Math.floor(Date.now() / 1000),
        });
        return { balance };
      },
    ],
    ['GET', 'members/*/tokens', async ([m]) => tokensOut(await reg().member(m))],
    [
      'POST',
      'members/*/tokens',
      async ([m], body) => {
        const b = await parse(schemas.tokens, body);
        const mm = await reg().member(m);
        await reg().freeleech.giveTokens(mm, b.count, { note: b.note ?? null, by: null, at: nowS() });
        return tokensOut(await reg().member(mm.id));
      },
    ],
    [
      'POST',
      'members/*/tokens/spend',
      async ([m], body) => {
        const b = await parse(schemas.spendToken, body);
        const mm = await reg().member(m);
        const t = await reg().torrent(b.torrent);
        // As the portal: only on a torrent the member may download (a token on a restricted
        // torrent without a grant is wasted, and would tell the member it exists).
        if (t.restricted === 1 && !(await mayDownloadRestricted(mm, t.id)))
          throw new ApiError(403, 'this torrent is restricted: the member holds no grant on it');
        const ends = await reg().freeleech.spendToken(mm, t.id, promo.tokenDays, nowS());
        await deps.policy.refresh();
        return {
          torrent: t.id,
          ends_at: ends,
          freeleech_tokens: (await reg().member(mm.id)).freeleech_tokens,
        };
      },
    ],
    [
      'GET',
      'members/*/freeleech',
      async ([m], _b, q) =>
        reg().freeleech.list({
          member: (await reg().member(m)).id,
          after: q.get('all') === '1' ? undefined : nowS(),
        }),
    ],
    [
      'POST',
      'members/*/freeleech',
      async ([m], body) => {
        const b = await parse(schemas.freeleechWindow, body);
        const mm = await reg().member(m);
        const at = nowS();
        const w = await reg().freeleech.give(mm, {
          startsAt: b.starts_at ?? at,
          endsAt: b.ends_at,
          uploadFactor: b.upload_factor ?? (b.double_upload === true ? promo.uploadFactor : 100),
          note: b.note ?? null,
          by: null,
          at,
        });
        await deps.policy.refresh();
        return w;
      },
    ],
    [
      'DELETE',
      'freeleech/*',
      async ([id]) => {
        const w = await reg().freeleech.revoke(idOf(id, 'freeleech window'), nowS());
        await deps.policy.refresh();
        return w;
      },
    ],
    [
      'GET',
      'events',
      async (_p, _b, q) =>
        q.get('all') === '1'
          ? reg().promotions.events({ all: true })
          : reg().promotions.events({ after: nowS() }),
    ],
    [
      'POST',
      'events',
      async (_p, body) => {
        const b = await parse(schemas.newEvent, body);
        const e = await reg().promotions.addEvent(
          {
            name: b.name,
            startsAt: b.starts_at,
            endsAt: b.ends_at,
            freeleech: b.freeleech ?? false,
            uploadFactor: b.upload_factor ?? (b.double_upload === true ? promo.uploadFactor : 100),
          },
          null,
          nowS(),
        );
        await deps.policy.refresh();
        return e;
      },
    ],
    ['GET', 'events/*', async ([id]) => reg().promotions.event(idOf(id, 'event'))],
    [
      'PATCH',
      'events/*',
      async ([id], body) => {
        const b = await parse(schemas.patchEvent, body);
        const e = await reg().promotions.updateEvent(idOf(id, 'event'), {
          name: b.name,
          startsAt: b.starts_at,
          endsAt: b.ends_at,
          freeleech: b.freeleech,
          uploadFactor: b.upload_factor,
        });
        await deps.policy.refresh();
        return e;
      },
    ],
    [
      'DELETE',
      'events/*',
      async ([id]) => {
        const e = await reg().promotions.cancelEvent(idOf(id, 'event'), nowS());
        await deps.policy.refresh();
        return e;
      },
    ],
    [
      'GET',
      'featured',
      async (_p, _b, q) => reg().promotions.featured(q.get('all') === '1' ? {} : { after: nowS() }),
    ],
    [
      'POST',
      'featured',
      async (_p, body) => {
        const b = await parse(schemas.feature, body);
        const t = await reg().torrent(b.torrent);
        const at = nowS();
        const startsAt = b.starts_at ?? at;
        const f = await reg().promotions.feature(
          t.id,
          {
            startsAt,
            endsAt: b.ends_at ?? startsAt + (b.days ?? promo.featuredDays) * 86400,
            uploadFactor: b.upload_factor ?? promo.uploadFactor,
          },
          null,
          at,
        );
        await deps.policy.refresh();
        return f;
      },
    ],
    [
      'DELETE',
      'featured/*',
      async ([id]) => {
        const f = await reg().promotions.unfeature(idOf(id, 'featured torrent'), nowS());
        await deps.policy.refresh();
        return f;
      },
    ],
    ['GET', 'members/*/class-history', async ([m]) => reg().classes.history((await reg().member(m)).id)],
    [
      'GET',
      'classes',
      async () => {
        const counts = await reg().classes.counts();
        return (deps.classes ?? []).map((c, i) => ({
          ...c,
          members: (counts.get(c.name) ?? 0) + (i === 0 ? (counts.get(null) ?? 0) : 0),
        }));
      },
    ],
    ['POST', 'members/*/reset-passkey', async ([m]) => memberOut(await reg().resetPasskey(m))],
    [
      'GET',
      'members/*/torrents',
      async ([m], _b, q) => {
        const id = (await reg().member(m)).id;
        return paged(
          q,
          afterId(q),
          (t: { torrent_id: number }) => t.torrent_id,
          (o) => reg().memberTorrentsPage(id, { after: o.after, limit: o.limit }),
        );
      },
    ],
    [
      'GET',
      'torrents',
      async (_p, _b, q) =>
        paged(
          q,
          afterId(q),
          (t: { id: number }) => t.id,
          (o) => reg().listTorrents({ search: q.get('search') ?? undefined, ...o }),
          true,
        ),
    ],
    [
      'POST',
      'torrents',
      async (_p, body) => {
        const b = await parse(schemas.newTorrent, body);
        const common = {
          category: b.category,
          description: b.description,
          restricted: b.restricted,
          downloadFactor: b.download_factor,
          uploadFactor: b.upload_factor,
        };
        if ('metainfo' in b)
          return reg().addTorrentFile(Buffer.from(b.metainfo, 'base64'), { ...common, name: b.name });
        return reg().addTorrent({
          ...common,
          infoHash: b.info_hash ?? null,
          infoHashV2: b.info_hash_v2 ?? null,
          name: b.name,
          size: b.size ?? 0,
          fileCount: 1,
        });
      },
    ],
    ['GET', 'torrents/*', async ([t]) => reg().torrent(t)],
    [
      'PATCH',
      'torrents/*',
      async ([t], body) => {
        const b = await parse(schemas.patchTorrent, body);
        return reg().updateTorrent(t, {
          name: b.name,
          category: b.category,
          description: b.description,
          restricted: b.restricted,
          downloadFactor: b.freeleech !== undefined ? (b.freeleech ? 0 : 100) : b.download_factor,
          uploadFactor: b.upload_factor,
        });
      },
    ],
    ['DELETE', 'torrents/*', async ([t]) => reg().removeTorrent(t)],
    [
      'GET',
      'lists/*',
      async ([l], _b, q) => {
        const after = q.get('after');
        if (after !== null && !/^[0-9a-f]{40}$/.test(after))
          throw new ApiError(400, 'after: an info hash (40 lowercase hex digits)');
        return paged(
          q,
          after ?? undefined,
          (e: { info_hash: string }) => e.info_hash,
          (o) => reg().listHashes(list(l), { after: o.after, limit: o.limit }),
        );
      },
    ],
    [
      'PUT',
      'lists/*/*',
      async ([l, h], body) => {
        const b = await parse(schemas.note, body);
        return { list: l, info_hash: await reg().addToList(list(l), h, b.note ?? null) };
      },
    ],
    ['DELETE', 'lists/*/*', async ([l, h]) => ({ removed: await reg().removeFromList(list(l), h) })],
    ['GET', 'clients', async () => reg().listClientPrefixes()],
    [
      'PUT',
      'clients/*',
      async ([p], body) => {
        const b = await parse(schemas.note, body);
        await reg().addClientPrefix(p, b.note ?? null);
        return { prefix: p };
      },
    ],
    ['DELETE', 'clients/*', async ([p]) => ({ removed: await reg().removeClientPrefix(p) })],
    ['GET', 'groups', async () => reg().listGroups()],
    ['POST', 'groups', async (_p, body) => reg().addGroup((await parse(schemas.newGroup, body)).name)],
    [
      'PUT',
      'groups/*/members/*',
      async ([g, m]) => {
        await reg().addToGroup(g, m);
        return { group: g, member: m };
      },
    ],
    ['DELETE', 'groups/*/members/*', async ([g, m]) => ({ removed: await reg().removeFromGroup(g, m) })],
    [
      'GET',
      'grants',
      async (_p, _b, q) => {
        const torrent = q.has('torrent') ? (await reg().torrent(q.get('torrent') ?? '')).id : undefined;
        const member = q.has('member') ? (await reg().member(q.get('member') ?? '')).id : undefined;
        return paged(
          q,
          afterId(q),
          (g: { id: number }) => g.id,
          (o) => reg().listGrants({ torrent, member, after: o.after, limit: o.limit }),
        );
      },
    ],
    [
      'POST',
      'grants',
      async (_p, body) => {
        const b = await parse(schemas.newGrant, body);
        return reg().grant({
          torrent: b.torrent,
          member: b.member ?? null,
          group: b.group ?? null,
          reference: b.reference ?? null,
          expiresAt: b.expires_at ?? null,
        });
      },
    ],
    // Not Number(id): NaN reached PostgreSQL as an integer and failed there (a 500).
    ['DELETE', 'grants/*', async ([id]) => ({ revoked: await reg().revoke({ id: idOf(id, 'grant') }) })],
    [
      'DELETE',
      'grants',
      async (_p, _b, q) => {
        const torrent = q.get('torrent');
        const member = q.get('member');
        const group = q.get('group');
        if (torrent === null) throw new ApiError(400, 'give ?torrent= and ?member= or ?group=');
        return {
          revoked: await reg().revoke({ torrent, member: member ?? undefined, group: group ?? undefined }),
        };
      },
    ],
    [
      'GET',
      'settings',
      async () => ({
        site_download_factor: Number((await reg().setting('site_download_factor')) ?? 100),
        site_upload_factor: Number((await reg().setting('site_upload_factor')) ?? 100),
      }),
    ],
    [
      'PUT',
      'settings',
      async (_p, body) => {
        const b = await parse(schemas.settings, body);
        if (b.site_download_factor !== undefined)
          await reg().setSetting('site_download_factor', String(b.site_download_factor));
        if (b.site_upload_factor !== undefined)
          await reg().setSetting('site_upload_factor', String(b.site_upload_factor));
        return b;
      },
    ],
  ];

  /** The route for this method and path; else the methods the path takes (none: no such path). */
  const match = (method: string, segs: string[]): { h: Handler; params: string[] } | { allow: string[] } => {
    const allow: string[] = [];
    for (const [m, pattern, h] of routes) {
      const ps = pattern.split('/');
      if (ps.length !== segs.length) continue;
      const params: string[] = [];
      let ok = true;
      for (let i = 0; i < ps.length && ok; i++) {
        if (ps[i] === '*') params.push(segs[i]);
        else ok = ps[i] === segs[i];
      }
      if (!ok) continue;
      if (m === method) return { h, params };
      allow.push(m);
    }
    return { allow };
  };

  const send = (res: ServerResponse, status: number, value: unknown) => {
    const body = `${JSON.stringify(value, (_k, v) => (v instanceof Uint8Array ? undefined : v), 2)}\n`;
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };

  return function apiHandler(req: IncomingMessage, res: ServerResponse): void {
    // The scheme is case-insensitive (RFC 9110 11.1): `bearer` is `Bearer`.
    const auth = req.headers.authorization ?? '';
    const given = /^bearer /i.test(auth) ? createHash('sha256').update(auth.slice(7).trim()).digest() : null;
    if (given === null || !timingSafeEqual(given, tokenHash)) {
      res.setHeader('www-authenticate', 'Bearer realm="herald"');
      send(res, 401, { error: 'missing or wrong bearer token' });
      req.resume();
      return;
    }
    const url = new URL(req.url ?? '/', 'http://x');
    let segs: string[];
    try {
      segs = url.pathname
        .split('/')
        .filter((s) => s.length > 0)
        .slice(1)
        .map(decodeURIComponent);
    } catch {
      send(res, 400, { error: 'malformed path' });
      return;
    }
    const found = match(req.method ?? 'GET', segs);
    if ('allow' in found) {
      // A known path with another method: 405 names the methods it takes (RFC 9110 15.5.6).
      if (found.allow.length > 0) res.setHeader('allow', [...new Set(found.allow)].join(', '));
      send(res, found.allow.length === 0 ? 404 : 405, {
        error: found.allow.length === 0 ? 'no such endpoint' : 'method not allowed',
      });
      req.resume();
      return;
    }
    const body = () => readJson(req);
    found.h(found.params, body, url.searchParams).then(
      (out) => {
        if (!(out instanceof Page)) return send(res, req.method === 'POST' ? 201 : 200, out);
        if (out.next !== null) {
          const q = new URLSearchParams(url.searchParams);
          q.delete('offset');
          q.set('after', out.next);
          res.setHeader('link', `<${url.pathname}?${q}>; rel="next"`);
        }
        send(res, 200, out.rows);
      },
      (err) => {
        if (err instanceof ApiError) send(res, err.status, { error: err.message, issues: err.issues });
        else if (err instanceof RegistryError) send(res, err.status, { error: err.message });
        else {
          deps.onError(err);
          send(res, 500, { error: 'internal error' });
        }
      },
    );
  };
}

function readJson(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    // The media type without its parameters, in any case (RFC 9110 8.3.1): not `application/jsonx`.
    const type = String(req.headers['content-type'] ?? '')
      .split(';')[0]
      .trim()
      .toLowerCase();
    if (type !== 'application/json') {
      req.resume();
      reject(new ApiError(415, 'send the body as application/json'));
      return;
    }
    // Too large: 413 at once when the length says so, else once past it. The rest is read and
    // dropped, not kept: a connection reset under a client still sending would lose the answer.
    const tooLarge = () => new ApiError(413, `body larger than ${MAX_BODY} bytes`);
    if (Number(req.headers['content-length'] ?? 0) > MAX_BODY) {
      req.resume();
      reject(tooLarge());
      return;
    }
    // A client that stops sending before the body is complete (and goes away, or half-closes) is a
    // client error: 400, not an internal error. It may have happened before this point already.
    const unread = () => new ApiError(400, 'the request body was not sent in full');
    if (req.readableAborted) {
      reject(unread());
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      if (size > MAX_BODY) return;
      size += c.length;
      if (size > MAX_BODY) {
        chunks.length = 0;
        reject(tooLarge());
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (size > MAX_BODY) return;
      try {
        resolve(chunks.length === 0 ? {} : JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch {
        reject(new ApiError(400, 'body is not valid JSON'));
      }
    });
    req.on('error', () => reject(unread()));
  });
}
