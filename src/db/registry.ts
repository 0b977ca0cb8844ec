import { type Kysely, sql, type Transaction } from 'kysely';
import { controlCharacters, formatBytes, stripControls } from '../core/text.ts';
import { type Metainfo, parseMetainfo } from '../protocol/metainfo/index.ts';
import { Accounts, voidResetLinks } from './accounts.ts';
import { byKind, inIds } from './batch.ts';
import { Bonus } from './bonus.ts';
import { MemberClasses } from './classes.ts';
import type { Db } from './connect.ts';
import { Connectability } from './connectable.ts';
import { PersonalFreeleech } from './freeleech.ts';
import { HitAndRuns } from './hit-and-runs.ts';
import { SitePromotions } from './promotions.ts';
import type { PublicMember } from './rows.ts';
import {
  checkUsername,
  HEX64,
  infoHashHex,
  liveGrants,
  MEMBER_COLUMNS,
  memberRow,
  newKey,
  now,
  RegistryError,
  rowId,
  sameName,
  TORRENT_COLUMNS,
  TorrentClash,
} from './rows.ts';
import type { Database, MemberStatus, Role, Torrent } from './schema.ts';
import { insertFilePages, StoredTorrentFiles, summaryOf } from './torrent-files.ts';

// The row helpers moved to rows.ts (no import cycle with accounts.ts); callers import them from here.
export * from './rows.ts';
export { FILES_PER_PAGE, type TorrentContents } from './torrent-files.ts';

/** Torrent text a person typed: refused when it holds control characters (core/text.ts). */
function checkText(field: string, value: string, multiline = false): string {
  if (controlCharacters(value, multiline))
    throw new RegistryError(
      `${field}: control characters are not allowed${multiline ? ' (line breaks and tabs are)' : ''}`,
    );
  return value;
}
const checkOptionalText = (field: string, value: string | null | undefined, multiline = false) =>
  value == null ? value : checkText(field, value, multiline);

/** Caps on an uploaded .torrent (config `max_torrent_bytes`, `max_torrent_files`). */
export interface TorrentLimits {
  maxBytes: number;
  maxFiles: number;
}

/** The configuration's defaults (`max_torrent_bytes` 4 MiB, `max_torrent_files` 50,000). */
export const DEFAULT_TORRENT_LIMITS: TorrentLimits = { maxBytes: 4 * 1024 * 1024, maxFiles: 50_000 };

export interface NewTorrent {
  infoHash: string | null;
  infoHashV2: string | null;
  name: string;
  size: number;
  fileCount: number;
  /** The .torrent, parsed: stored with its announce slots, summary and file list. */
  file?: Metainfo;
  uploaderId?: number | null;
  category?: string | null;
  description?: string | null;
  restricted?: boolean;
  downloadFactor?: number;
  uploadFactor?: number;
}

/** What a caller adds to a .torrent file it registers (the rest is read from the file). */
export type FileExtra = Omit<
  NewTorrent,
  'infoHash' | 'infoHashV2' | 'name' | 'size' | 'fileCount' | 'file'
> & {
  name?: string;
};

export type TorrentSummary = Omit<
  Torrent,
  'metainfo' | 'announce_slots' | 'meta_name' | 'meta_version' | 'piece_length'
>;

/**
 * Everything staff tools change: members, torrents, info-hash lists, client prefixes, groups and
 * grants. Used by the CLI, the API and the portal, in this process or another one. Every change
 * bumps the `revision` setting in the same transaction; running trackers poll it and reload
 * their policy within seconds (`PolicyCache`).
 */
export class Registry {
  readonly db: Db;
  /** The portal's accounts: passwords, sessions, registration, invitations, applications, history. */
  readonly accounts: Accounts;
  /** Hit-and-run (issue #16): the scheduler's reads and writes, forgiveness, immunity, lists. */
  readonly hnr: HitAndRuns;
  /** Member classes (issue #16): the scheduler's reads and writes, staff's hand-set class, history. */
  readonly classes: MemberClasses;
  /** Bonus points (issue #16): the ledger, the scheduler's payments, the shop, staff's grants. */
  readonly bonus: Bonus;
  /** Personal freeleech (issue #16): tokens spent on torrents; the windows the snapshot loads. */
  readonly freeleech: PersonalFreeleech;
  /** Promotions (issue #16): site-wide events and featured torrents. */
  readonly promotions: SitePromotions;
  /** The connectable check (issue #16): the last result per member and torrent. */
  readonly connectable: Connectability;
  readonly limits: TorrentLimits;
  /** The stored .torrent files: downloads' templates and the torrent page's file list. */
  readonly files: StoredTorrentFiles;
  constructor(db: Db, limits: TorrentLimits = DEFAULT_TORRENT_LIMITS) {
    this.db = db;
    this.accounts = new Accounts(this);
    this.hnr = new HitAndRuns(this);
    this.classes = new MemberClasses(this);
    this.bonus = new Bonus(this);
    this.freeleech = new PersonalFreeleech(this);
    this.promotions = new SitePromotions(this);
    this.connectable = new Connectability(this);
    this.files = new StoredTorrentFiles(db);
    this.limits = limits;
  }

  get #k(): Kysely<Database> {
    return this.db.kysely;
  }

  async revision(): Promise<number> {
    const r = await this.#k
      .selectFrom('settings')
      .select('value')
      .where('key', '=', 'revision')
      .executeTakeFirst();
    return r ? Number(r.value) : 0;
  }

  /**
   * Runs `fn` in a transaction that also bumps the revision. The bump comes first: it takes the
   * revision row (PostgreSQL: a row lock held to commit; SQLite: the database's write lock,
   * before any read), so changes run one after another and whatever `fn` reads (are there
   * members yet? is this name free?) already includes every change committed before it. Under
   * PostgreSQL's READ COMMITTED each statement after the wait sees those commits.
   */
  async change<T>(fn: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
    return this.#k.transaction().execute(async (trx) => {
      await sql`UPDATE settings SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE key = 'revision'`.execute(
        trx,
      );
      return fn(trx);
    });
  }

  // ---- members ----

  async addMember(opts: {
    username: string;
    role?: Role;
    email?: string | null;
    invites?: number;
    invitedBy?: number | null;
    passwordHash?: string | null;
  }): Promise<PublicMember> {
    const username = checkUsername(opts.username);
    const id = await this.change(async (trx) => {
      const exists = await trx
        .selectFrom('members')
        .select('id')
        .where(sameName(username))
        .executeTakeFirst();
      if (exists) throw new RegistryError(`member "${username}" already exists`, 409);
      const r = await trx
        .insertInto('members')
        .values(
          memberRow({
            username,
            email: opts.email ?? null,
            passwordHash: opts.passwordHash ?? null,
            role: opts.role ?? 'member',
            invites: opts.invites ?? 0,
            invitedBy: opts.invitedBy ?? null,
            createdAt: now(),
          }),
        )
        .returning('id')
        .executeTakeFirstOrThrow();
      return r.id;
    });
    return this.member(id);
  }

  /**
   * By id (digits), passkey (32 hex digits) or username (anything else, any case): one reading
   * per form, since no username looks like an id or a passkey (`checkUsername`).
   */
  async findMember(ref: string | number): Promise<PublicMember | undefined> {
    let q = this.#k.selectFrom('members').select(MEMBER_COLUMNS);
    if (typeof ref === 'number') q = q.where('id', '=', rowId(ref));
    else if (/^[0-9]{1,15}$/.test(ref)) q = q.where('id', '=', rowId(Number(ref)));
    else if (/^[0-9]+$/.test(ref)) return undefined;
    else if (/^[0-9a-fA-F]{32}$/.test(ref)) q = q.where('passkey', '=', ref.toLowerCase());
    else q = q.where(sameName(ref));
    return q.executeTakeFirst();
  }

  async member(ref: string | number): Promise<PublicMember> {
    const m = await this.findMember(ref);
    if (!m) throw new RegistryError(`no member "${ref}"`, 404);
    return m;
  }

  /**
   * Members by id, after the id `after` (the API's pages: a page costs the same at any depth, and
   * members who join meanwhile come at the end instead of shifting the pages) or from `offset` (the
   * API's old pages, still taken).
   */
  async listMembers(
    opts: { search?: string; status?: MemberStatus; after?: number; limit?: number; offset?: number } = {},
  ) {
    let q = this.#k.selectFrom('members').select(MEMBER_COLUMNS).orderBy('id');
    if (opts.search)
      q = q.where(sql`lower(username)`, 'like', `%${opts.search.toLowerCase().replace(/[%_\\]/g, '')}%`);
    if (opts.status) q = q.where('status', '=', opts.status);
    if (opts.after !== undefined) q = q.where('id', '>', rowId(opts.after));
    return q
      .limit(opts.limit ?? 100)
      .offset(opts.offset ?? 0)
      .execute();
  }

  async setMemberStatus(
    ref: string | number,
    status: MemberStatus,
    reason: string | null,
  ): Promise<PublicMember> {
    const m = await this.member(ref);
    await this.change(async (trx) => {
      if (status !== 'active') await keepAnAdministrator(trx, m.id);
      await trx
        .updateTable('members')
        .set({ status, status_reason: status === 'active' ? null : reason })
        .where('id', '=', m.id)
        .execute();
    });
    return this.member(m.id);
  }

  async updateMember(
    ref: string | number,
    patch: { role?: Role; invites?: number; email?: string | null },
  ): Promise<PublicMember> {
    const m = await this.member(ref);
    const set: Record<string, unknown> = {};
    if (patch.role !== undefined) set.role = patch.role;
    if (patch.invites !== undefined) set.invites = patch.invites;
    if (patch.email !== undefined) set.email = patch.email;
    // A new e-mail address voids the member's unused reset links: those mailed to the old one
    // (a mailbox given up, perhaps because someone else reads it) cannot take the account later.
    const moved = patch.email !== undefined && (patch.email ?? '') !== (m.email ?? '');
    if (Object.keys(set).length > 0)
      await this.change(async (trx) => {
        if (patch.role !== undefined && patch.role !== 'admin') await keepAnAdministrator(trx, m.id);
        await trx.updateTable('members').set(set).where('id', '=', m.id).execute();
        if (moved) await voidResetLinks(trx, m.id, now());
      });
    return this.member(m.id);
  }

  /**
   * Download rights by staff (issue #16): taken (`can_leech` 0, reason 'staff') or given back.
   * Giving them back also clears a ratio warning, so that ratio watch starts a new period rather
   * than taking them again at its next run.
   */
  async setCanLeech(ref: string | number, canLeech: boolean): Promise<PublicMember> {
    const m = await this.member(ref);
    await this.change((trx) =>
      trx
        .updateTable('members')
        .set(
          canLeech
            ? { can_leech: 1, leech_reason: null, leech_changed_at: now(), ratio_warned_at: null }
            : { can_leech: 0, leech_reason: 'staff', leech_changed_at: now() },
        )
        .where('id', '=', m.id)
        .execute(),
    );
    return this.member(m.id);
  }

  /**
   * Members ratio watch may act on, by id after `afterId`: past the grace (`graceBytes`; null =
   * ratio watch off, so only those it has to undo), warned, or suspended by it.
   */
  async ratioWatchCandidates(graceBytes: number | null, afterId: number, limit: number) {
    return this.#k
      .selectFrom('members')
      .select(['id', 'uploaded', 'downloaded', 'can_leech', 'leech_reason', 'ratio_warned_at'])
      .where('id', '>', afterId)
      .where((eb) =>
        eb.or([
          ...(graceBytes === null ? [] : [eb('downloaded', '>=', graceBytes)]),
          eb('ratio_warned_at', 'is not', null),
          eb.and([eb('can_leech', '=', 0), eb('leech_reason', '=', 'ratio')]),
        ]),
      )
      .orderBy('id')
      .limit(limit)
      .execute();
  }

  /**
   * Ratio watch's decisions, in one transaction that bumps the revision. Each update holds only
   * if the member is still as the decision saw it (staff may have acted since): returns the
   * actions that took effect.
   */
  async applyRatioWatch(
    changes: { id: number; action: 'warn' | 'revoke' | 'restore' | 'clear' }[],
    at: number,
  ): Promise<string[]> {
    return this.change(async (trx) => {
      const done: string[] = [];
      // One statement per action for the whole slice (a round trip each on PostgreSQL).
      for (const [action, group] of byKind(changes, (c) => c.action)) {
        const q = trx.updateTable('members').where(
          inIds(
            this.db.dialect,
            'id',
            group.map((c) => c.id),
          ),
        );
        const rows =
          action === 'warn'
            ? await q
                .set((eb) => ({ ratio_warned_at: at, ratio_warnings: eb('ratio_warnings', '+', 1) }))
                .where('ratio_warned_at', 'is', null)
                .where('can_leech', '=', 1)
                .returning('id')
                .execute()
            : action === 'revoke'
              ? await q
                  .set({ can_leech: 0, leech_reason: 'ratio', leech_changed_at: at })
                  .where('can_leech', '=', 1)
                  .where('ratio_warned_at', 'is not', null)
                  .returning('id')
                  .execute()
              : action === 'restore'
                ? await q
                    .set({ can_leech: 1, leech_reason: null, leech_changed_at: at, ratio_warned_at: null })
                    .where('can_leech', '=', 0)
                    .where('leech_reason', '=', 'ratio')
                    .returning('id')
                    .execute()
                : await q
                    .set({ ratio_warned_at: null })
                    .where('ratio_warned_at', 'is not', null)
                    .returning('id')
                    .execute();
        for (let i = 0; i < rows.length; i++) done.push(action);
      }
      return done;
    });
  }

  /**
   * A member's figures beyond the row (issue #16: what the profile shows): snatches, active
   * hit-and-runs, invitations sent, bonus points, personal freeleech windows now or to come, and torrents seeding and leeching now, as of the last accounting write (the tracker's memory may be up to
   * `flush_interval` seconds ahead). "Now": the last announce was not `stopped` and came within
   * `peerTimeout` seconds.
   */
  async memberFigures(memberId: number, peerTimeout: number, at = now()) {
    const rows = await this.#k
      .selectFrom('member_torrents')
      .select(['completed_at', 'state', 'last_announce_at'])
      .where('member_id', '=', memberId)
      .execute();
    let snatches = 0;
    let seeding = 0;
    let leeching = 0;
    for (const r of rows) {
      if (r.completed_at !== null) snatches++;
      if (r.last_announce_at < at - peerTimeout) continue;
      if (r.state === 2) seeding++;
      else if (r.state === 1) leeching++;
    }
    const invites = await this.#k
      .selectFrom('invitations')
      .select((e) => e.fn.countAll().as('n'))
      .where('inviter_id', '=', memberId)
      .executeTakeFirstOrThrow();
    const tf = await this.#k
      .selectFrom('members')
      .select('totp_enabled_at')
      .where('id', '=', memberId)
      .executeTakeFirst();
    return {
      snatches,
      seeding_now: seeding,
      leeching_now: leeching,
      hnr_active: await this.hnr.activeCount(memberId),
      invites_sent: Number(invites.n),
      /** Hundredths of a point (the sum of the ledger). */
      bonus_points: await this.bonus.balance(memberId),
      /** Personal freeleech windows in force or to come (tokens' and staff's). */
      freeleech_windows: await this.freeleech.list({ member: memberId, after: at }),
      /** Two-factor authentication (TOTP) on or off (issue #16). */
      two_factor: (tf?.totp_enabled_at ?? null) !== null ? ('on' as const) : ('off' as const),
    };
  }

  async resetPasskey(ref: string | number): Promise<PublicMember> {
    const m = await this.member(ref);
    await this.change((trx) =>
      trx.updateTable('members').set({ passkey: newKey() }).where('id', '=', m.id).execute(),
    );
    return this.member(m.id);
  }

  // ---- torrents ----

  async addTorrent(t: NewTorrent): Promise<TorrentSummary> {
    checkText('name', t.name);
    checkOptionalText('category', t.category);
    checkOptionalText('description', t.description, true);
    const v1 = t.infoHash === null ? null : infoHashHex(t.infoHash);
    const v2 = t.infoHashV2 === null ? null : t.infoHashV2.toLowerCase();
    if (v1 === null && v2 === null) throw new RegistryError('a torrent needs a v1 or a v2 info hash');
    if (v2 !== null && !HEX64.test(v2)) throw new RegistryError('info_hash_v2 must be 64 hex digits');
    const id = await this.change(async (trx) => {
      // Inside the change: two uploads of one .torrent at once run one after the other, and the
      // second is told so (409) rather than hitting the unique index (an internal error).
      const clash = await trx
        .selectFrom('torrents')
        .select(['id', 'name'])
        .where((eb) =>
          eb.or([
            ...(v1 ? [eb('info_hash', '=', v1), eb(sql`substr(info_hash_v2, 1, 40)`, '=', v1)] : []),
            ...(v2 ? [eb('info_hash_v2', '=', v2), eb('info_hash', '=', v2.slice(0, 40))] : []),
          ]),
        )
        .executeTakeFirst();
      if (clash) throw new TorrentClash(clash);
      // A hash on the deny list (a takedown) is refused here too: registered, the torrent would be
      // listed and its metadata handed out while every announce for it is refused.
      const hashes = [v1, v2?.slice(0, 40)].filter((h): h is string => h !== null && h !== undefined);
      const denied = await trx
        .selectFrom('hash_lists')
        .select('info_hash')
        .where('list', '=', 'deny')
        .where('info_hash', 'in', hashes)
        .executeTakeFirst();
      if (denied)
        throw new RegistryError(
          `info hash ${denied.info_hash} is on the deny list: take it off first to register this torrent`,
          409,
        );
      const r = await trx
        .insertInto('torrents')
        .values({
          info_hash: v1,
          info_hash_v2: v2,
          name: t.name,
          size: t.size,
          file_count: t.fileCount,
          category: t.category ?? null,
          description: t.description ?? null,
          uploader_id: t.uploaderId ?? null,
          created_at: now(),
          download_factor: t.downloadFactor ?? 100,
          upload_factor: t.uploadFactor ?? 100,
          restricted: t.restricted ? 1 : 0,
          snatches: 0,
          metainfo: t.file?.bytes ?? null,
          ...(t.file ? summaryOf(t.file) : {}),
        })
        .returning('id')
        .executeTakeFirstOrThrow();
      if (t.file) await insertFilePages(trx, r.id, t.file.files);
      return r.id;
    });
    return this.torrent(id);
  }

  /**
   * Parses an uploaded .torrent under this tracker's caps. A RegistryError says what is wrong:
   * 413 for a file over `max_torrent_bytes` or `max_torrent_files`, 400 for one that is not a
   * torrent. The caps bound what one upload costs (the parse is the only time Herald reads the
   * whole file: downloads and pages use what `addTorrent` stores with it).
   */
  parseTorrent(bytes: Uint8Array): Metainfo {
    const { maxBytes, maxFiles } = this.limits;
    if (bytes.byteLength > maxBytes)
      throw new RegistryError(
        `the .torrent file is ${formatBytes(bytes.byteLength)}; this tracker accepts at most ${formatBytes(maxBytes)} (max_torrent_bytes)`,
        413,
      );
    const parsed = parseMetainfo(bytes, { maxBytes, maxFiles });
    if (parsed.ok) return parsed.torrent;
    if (parsed.limit === 'files')
      throw new RegistryError(
        `the .torrent lists more than ${maxFiles} files; this tracker accepts at most ${maxFiles} (max_torrent_files)`,
        413,
      );
    throw new RegistryError(`not a valid .torrent file: ${parsed.error}`);
  }

  /** Registers a .torrent file (both hashes of a hybrid torrent), keeping the file. */
  async addTorrentFile(
    bytes: Uint8Array,
    extra: FileExtra = {},
  ): Promise<TorrentSummary & { private: boolean }> {
    return this.addMetainfo(this.parseTorrent(bytes), extra);
  }

  /** `addTorrentFile` for a torrent already parsed (`parseTorrent`, then perhaps `personalise`). */
  async addMetainfo(m: Metainfo, extra: FileExtra = {}): Promise<TorrentSummary & { private: boolean }> {
    const infoHash = m.infoHashV1 ? m.infoHashV1.toString('hex') : null;
    const infoHashV2 = m.infoHashV2 ? m.infoHashV2.toString('hex') : null;
    // A name typed by a person is checked (refused with control characters); one read from the
    // file is cleaned, since the uploader did not choose it.
    const name =
      extra.name ?? (stripControls(m.name) || `torrent ${(infoHash ?? infoHashV2 ?? '').slice(0, 8)}`);
    const t = await this.addTorrent({
      ...extra,
      infoHash,
      infoHashV2,
      name,
      size: m.totalSize,
      fileCount: m.files.length,
      file: m,
    });
    return { ...t, private: m.private };
  }

  /** By id or info hash (v1, v2 or truncated v2). */
  async findTorrent(ref: string | number): Promise<TorrentSummary | undefined> {
    let q = this.#k.selectFrom('torrents').select(TORRENT_COLUMNS);
    if (typeof ref === 'number' || /^[0-9]{1,12}$/.test(ref)) q = q.where('id', '=', rowId(Number(ref)));
    else {
      const h = ref.trim().toLowerCase();
      if (HEX64.test(h)) q = q.where('info_hash_v2', '=', h);
      else {
        const v = infoHashHex(h);
        q = q.where((eb) => eb.or([eb('info_hash', '=', v), eb(sql`substr(info_hash_v2, 1, 40)`, '=', v)]));
      }
    }
    return q.executeTakeFirst();
  }

  async torrent(ref: string | number): Promise<TorrentSummary> {
    const t = await this.findTorrent(ref);
    if (!t) throw new RegistryError(`no torrent "${ref}"`, 404);
    return t;
  }

  /**
   * Whether a member holds a live grant on a torrent, directly or through a group: what announcing
   * a restricted torrent takes (policy.ts `#granted`), and so downloading its metadata too.
   */
  async grantedTo(torrentId: number, memberId: number, at: number): Promise<boolean> {
    const g = await liveGrants(this.#k, memberId, at)
      .where('torrent_id', '=', torrentId)
      .limit(1)
      .executeTakeFirst();
    return g !== undefined;
  }

  /**
   * Torrents newest first (by id), after the torrent `after` in that order (older ones: the API's
   * pages, which uploads between two pages no longer shift) or from `offset`.
   */
  async listTorrents(opts: { search?: string; after?: number; limit?: number; offset?: number } = {}) {
    let q = this.#k.selectFrom('torrents').select(TORRENT_COLUMNS).orderBy('id', 'desc');
    if (opts.search) q = q.where('name', 'like', `%${opts.search.replace(/[%_]/g, '')}%`);
    if (opts.after !== undefined) q = q.where('id', '<', rowId(opts.after));
    return q
      .limit(opts.limit ?? 100)
      .offset(opts.offset ?? 0)
      .execute();
  }

  async updateTorrent(
    ref: string | number,
    patch: {
      name?: string;
      category?: string | null;
      description?: string | null;
      restricted?: boolean;
      downloadFactor?: number;
      uploadFactor?: number;
    },
  ): Promise<TorrentSummary> {
    const t = await this.torrent(ref);
    const set: Record<string, unknown> = {};
    if (patch.name !== undefined) set.name = checkText('name', patch.name);
    if (patch.category !== undefined) set.category = checkOptionalText('category', patch.category);
    if (patch.description !== undefined)
      set.description = checkOptionalText('description', patch.description, true);
    if (patch.restricted !== undefined) set.restricted = patch.restricted ? 1 : 0;
    if (patch.downloadFactor !== undefined) set.download_factor = patch.downloadFactor;
    if (patch.uploadFactor !== undefined) set.upload_factor = patch.uploadFactor;
    if (Object.keys(set).length > 0)
      await this.change((trx) => trx.updateTable('torrents').set(set).where('id', '=', t.id).execute());
    return this.torrent(t.id);
  }

  async removeTorrent(ref: string | number): Promise<TorrentSummary> {
    const t = await this.torrent(ref);
    await this.change(async (trx) => {
      await trx.deleteFrom('grants').where('torrent_id', '=', t.id).execute();
      await trx.deleteFrom('member_torrents').where('torrent_id', '=', t.id).execute();
      await trx.deleteFrom('accounting_flags').where('torrent_id', '=', t.id).execute();
      await trx.deleteFrom('torrent_file_pages').where('torrent_id', '=', t.id).execute();
      await trx.deleteFrom('torrents').where('id', '=', t.id).execute();
    });
    return t;
  }

  // ---- info-hash lists and client prefixes ----

  async addToList(list: 'allow' | 'deny', hash: string, note: string | null = null): Promise<string> {
    const h = infoHashHex(hash);
    await this.change(async (trx) => {
      await trx.deleteFrom('hash_lists').where('list', '=', list).where('info_hash', '=', h).execute();
      await trx.insertInto('hash_lists').values({ list, info_hash: h, note, created_at: now() }).execute();
    });
    return h;
  }

  async removeFromList(list: 'allow' | 'deny', hash: string): Promise<boolean> {
    const h = infoHashHex(hash);
    const r = await this.change((trx) =>
      trx.deleteFrom('hash_lists').where('list', '=', list).where('info_hash', '=', h).executeTakeFirst(),
    );
    return Number(r.numDeletedRows) > 0;
  }

  /**
   * A list's entries by hash (the list's key), after `after` (a hash; absent: from the first), at
   * most `limit` (absent: all, for the CLI). The API and the portal page through it: a deny list
   * grows with every takedown, and one read of all of it held the event loop.
   */
  listHashes(list: 'allow' | 'deny', opts: { after?: string; limit?: number } = {}) {
    let q = this.#k
      .selectFrom('hash_lists')
      .select(['info_hash', 'note', 'created_at'])
      .where('list', '=', list)
      .orderBy('info_hash');
    if (opts.after !== undefined) q = q.where('info_hash', '>', opts.after);
    if (opts.limit !== undefined) q = q.limit(opts.limit);
    return q.execute();
  }

  /** How many entries a list holds. */
  async countHashes(list: 'allow' | 'deny'): Promise<number> {
    const r = await this.#k
      .selectFrom('hash_lists')
      .select((eb) => eb.fn.countAll().as('n'))
      .where('list', '=', list)
      .executeTakeFirstOrThrow();
    return Number(r.n);
  }

  async addClientPrefix(prefix: string, note: string | null = null): Promise<void> {
    if (prefix.length < 1 || prefix.length > 20) throw new RegistryError('client prefix: 1 to 20 characters');
    await this.change(async (trx) => {
      await trx.deleteFrom('client_prefixes').where('prefix', '=', prefix).execute();
      await trx.insertInto('client_prefixes').values({ prefix, note }).execute();
    });
  }

  async removeClientPrefix(prefix: string): Promise<boolean> {
    const r = await this.change((trx) =>
      trx.deleteFrom('client_prefixes').where('prefix', '=', prefix).executeTakeFirst(),
    );
    return Number(r.numDeletedRows) > 0;
  }

  listClientPrefixes() {
    return this.#k.selectFrom('client_prefixes').selectAll().orderBy('prefix').execute();
  }

  // ---- groups and grants ----

  async addGroup(name: string): Promise<{ id: number; name: string }> {
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name))
      throw new RegistryError('group name: 1 to 64 letters, digits, ".", "_" or "-"');
    // As for members: a number names a group by id, so a group's name is never only digits.
    if (/^[0-9]+$/.test(name)) throw new RegistryError('group name: not only digits (that is a group id)');
    const exists = await this.#k
      .selectFrom('groups')
      .select('id')
      .where('name', '=', name)
      .executeTakeFirst();
    if (exists) throw new RegistryError(`group "${name}" already exists`, 409);
    return this.change((trx) =>
      trx.insertInto('groups').values({ name }).returning(['id', 'name']).executeTakeFirstOrThrow(),
    );
  }

  async group(ref: string | number): Promise<{ id: number; name: string }> {
    let q = this.#k.selectFrom('groups').select(['id', 'name']);
    q =
      typeof ref === 'number' || /^[0-9]+$/.test(ref)
        ? q.where('id', '=', rowId(Number(ref)))
        : q.where('name', '=', ref);
    const g = await q.executeTakeFirst();
    if (!g) throw new RegistryError(`no group "${ref}"`, 404);
    return g;
  }

  listGroups() {
    return this.#k.selectFrom('groups').select(['id', 'name']).orderBy('name').execute();
  }

  async addToGroup(groupRef: string | number, memberRef: string | number): Promise<void> {
    const g = await this.group(groupRef);
    const m = await this.member(memberRef);
    await this.change(async (trx) => {
      await trx
        .deleteFrom('group_members')
        .where('group_id', '=', g.id)
        .where('member_id', '=', m.id)
        .execute();
      await trx.insertInto('group_members').values({ group_id: g.id, member_id: m.id }).execute();
    });
  }

  /** Whether member `memberId` belongs to group `groupRef` (a name or an id). */
  async inGroup(groupRef: string | number, memberId: number): Promise<boolean> {
    const g = await this.group(groupRef);
    const row = await this.#k
      .selectFrom('group_members')
      .select('member_id')
      .where('group_id', '=', g.id)
      .where('member_id', '=', memberId)
      .executeTakeFirst();
    return row !== undefined;
  }

  async removeFromGroup(groupRef: string | number, memberRef: string | number): Promise<boolean> {
    const g = await this.group(groupRef);
    const m = await this.member(memberRef);
    const r = await this.change((trx) =>
      trx
        .deleteFrom('group_members')
        .where('group_id', '=', g.id)
        .where('member_id', '=', m.id)
        .executeTakeFirst(),
    );
    return Number(r.numDeletedRows) > 0;
  }

  /** Grants a member (or a group) access to a restricted torrent. Returns the grant. */
  async grant(opts: {
    torrent: string | number;
    member?: string | number | null;
    group?: string | number | null;
    reference?: string | null;
    expiresAt?: number | null;
  }) {
    if ((opts.member == null) === (opts.group == null))
      throw new RegistryError('a grant names one member or one group');
    const t = await this.torrent(opts.torrent);
    const memberId = opts.member != null ? (await this.member(opts.member)).id : null;
    const groupId = opts.group != null ? (await this.group(opts.group)).id : null;
    return this.change((trx) =>
      trx
        .insertInto('grants')
        .values({
          torrent_id: t.id,
          member_id: memberId,
          group_id: groupId,
          reference: opts.reference ?? null,
          created_at: now(),
          expires_at: opts.expiresAt ?? null,
        })
        .returningAll()
        .executeTakeFirstOrThrow(),
    );
  }

  /** Revokes one grant by id, or every grant of a member (or group) on a torrent. */
  async revoke(opts: {
    id?: number;
    torrent?: string | number;
    member?: string | number;
    group?: string | number;
  }): Promise<number> {
    let q = this.#k.deleteFrom('grants');
    if (opts.id !== undefined) q = q.where('id', '=', rowId(opts.id));
    else {
      if (opts.torrent === undefined || (opts.member === undefined) === (opts.group === undefined))
        throw new RegistryError('revoke: give a grant id, or a torrent and one member or group');
      q = q.where('torrent_id', '=', (await this.torrent(opts.torrent)).id);
      if (opts.member !== undefined) q = q.where('member_id', '=', (await this.member(opts.member)).id);
      if (opts.group !== undefined) q = q.where('group_id', '=', (await this.group(opts.group)).id);
    }
    const r = await this.change((trx) => trx.executeQuery(q.compile()));
    return Number(r.numAffectedRows ?? 0n);
  }

  /**
   * Grants by id, of a torrent and/or a member (not through groups), after the id `after`, at most
   * `limit` (absent: all, for the CLI): a restricted torrent sold per member gathers a grant per
   * buyer, too many for one answer.
   */
  listGrants(opts: { torrent?: number; member?: number; after?: number; limit?: number } = {}) {
    let q = this.#k.selectFrom('grants').selectAll().orderBy('id');
    if (opts.torrent !== undefined) q = q.where('torrent_id', '=', rowId(opts.torrent));
    if (opts.member !== undefined) q = q.where('member_id', '=', rowId(opts.member));
    if (opts.after !== undefined) q = q.where('id', '>', opts.after);
    if (opts.limit !== undefined) q = q.limit(opts.limit);
    return q.execute();
  }

  /**
   * A torrent's grants for its page: the first `limit` by id, each with its member's name (one
   * query, not one per grant), and how many there are.
   */
  async torrentGrants(torrentId: number, limit: number) {
    const rows = await this.#k
      .selectFrom('grants as g')
      .leftJoin('members as m', 'm.id', 'g.member_id')
      .select(['g.id', 'g.member_id', 'g.group_id', 'g.reference', 'g.expires_at', 'm.username', 'm.role'])
      .where('g.torrent_id', '=', rowId(torrentId))
      .orderBy('g.id')
      .limit(limit)
      .execute();
    const n = await this.#k
      .selectFrom('grants')
      .select((eb) => eb.fn.countAll().as('n'))
      .where('torrent_id', '=', rowId(torrentId))
      .executeTakeFirstOrThrow();
    return { rows, total: Number(n.n) };
  }

  /** One grant of a torrent, or undefined. */
  grantOf(torrentId: number, id: number) {
    return this.#k
      .selectFrom('grants')
      .selectAll()
      .where('torrent_id', '=', rowId(torrentId))
      .where('id', '=', rowId(id))
      .executeTakeFirst();
  }

  // ---- site settings ----

  async setting(key: string): Promise<string | null> {
    const r = await this.#k.selectFrom('settings').select('value').where('key', '=', key).executeTakeFirst();
    return r?.value ?? null;
  }

  async setSetting(key: string, value: string): Promise<void> {
    await this.change(async (trx) => {
      await trx.deleteFrom('settings').where('key', '=', key).execute();
      await trx.insertInto('settings').values({ key, value }).execute();
    });
  }

  // ---- statistics ----

  /** A member's torrents, last announced first (the profile page). */
  /**
   * A member's torrents, last announced first (the profile), `limit` of them from `before` on (the
   * last announce and torrent id of the previous page's last row): a member who snatched tens of
   * thousands of torrents is read a page at a time. Without `limit`, all of them (tests, tools).
   */
  memberTorrents(
    memberId: number,
    opts: { limit?: number; before?: { at: number; torrentId: number } } = {},
  ) {
    let q = this.#memberTorrentRows(memberId)
      .orderBy('member_torrents.last_announce_at', 'desc')
      .orderBy('member_torrents.torrent_id', 'desc');
    const b = opts.before;
    if (b !== undefined)
      q = q.where((e) =>
        e.or([
          e('member_torrents.last_announce_at', '<', b.at),
          e.and([
            e('member_torrents.last_announce_at', '=', b.at),
            e('member_torrents.torrent_id', '<', rowId(b.torrentId)),
          ]),
        ]),
      );
    return (opts.limit === undefined ? q : q.limit(opts.limit)).execute();
  }

  /** How many torrents the member has snatched (completed). */
  async snatchCount(memberId: number): Promise<number> {
    const r = await this.#k
      .selectFrom('member_torrents')
      .select((e) => e.fn.count('completed_at').as('n'))
      .where('member_id', '=', memberId)
      .executeTakeFirstOrThrow();
    return Number(r.n);
  }

  /**
   * A member's torrents by torrent id, after the id `after`, at most `limit` (the API's pages: a
   * member who snatched tens of thousands held the loop for one answer; by id, as announces move
   * the last-announce order between two pages).
   */
  memberTorrentsPage(memberId: number, opts: { after?: number; limit: number }) {
    let q = this.#memberTorrentRows(memberId).orderBy('member_torrents.torrent_id');
    if (opts.after !== undefined) q = q.where('member_torrents.torrent_id', '>', rowId(opts.after));
    return q.limit(opts.limit).execute();
  }

  #memberTorrentRows(memberId: number) {
    return this.#k
      .selectFrom('member_torrents')
      .innerJoin('torrents', 'torrents.id', 'member_torrents.torrent_id')
      .select([
        'member_torrents.torrent_id',
        'torrents.name',
        'member_torrents.uploaded',
        'member_torrents.downloaded',
        'member_torrents.raw_uploaded',
        'member_torrents.raw_downloaded',
        'member_torrents.seed_time',
        'member_torrents.announces',
        'member_torrents.completed_at',
        'member_torrents.last_announce_at',
      ])
      .where('member_torrents.member_id', '=', memberId);
  }

  async counts() {
    const one = async (table: 'members' | 'torrents') =>
      Number(
        (
          await this.#k
            .selectFrom(table)
            .select((eb) => eb.fn.countAll().as('n'))
            .executeTakeFirstOrThrow()
        ).n,
      );
    return { members: await one('members'), torrents: await one('torrents') };
  }
}

/**
 * Refuses (409) to take the role or the access of the last active administrator, `memberId`: the
 * site would be left without anyone to run the staff pages (two administrators demoting or banning
 * each other at once; an operator's slip). Runs inside `change()`, whose lock orders such changes.
 */
async function keepAnAdministrator(trx: Transaction<Database>, memberId: number): Promise<void> {
  const others = await trx
    .selectFrom('members')
    .select('id')
    .where('role', '=', 'admin')
    .where('status', '=', 'active')
    .where('id', '!=', memberId)
    .limit(1)
    .executeTakeFirst();
  if (others !== undefined) return;
  const self = await trx
    .selectFrom('members')
    .select('id')
    .where('id', '=', memberId)
    .where('role', '=', 'admin')
    .where('status', '=', 'active')
    .executeTakeFirst();
  if (self !== undefined)
    throw new RegistryError(
      'the last active administrator cannot lose the role or be disabled or banned: make another administrator first',
      409,
    );
}
