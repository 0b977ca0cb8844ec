import { randomBytes } from 'node:crypto';
import { type Kysely, sql, type Transaction } from 'kysely';
import { parseMetainfo } from '../protocol/metainfo/index.ts';
import type { Db } from './connect.ts';
import type { Database, Member, MemberStatus, NewMember, Role, SiteHistoryTable, Torrent } from './schema.ts';

/** A mistake by the caller (unknown member, duplicate name...): safe to show as is. */
export class RegistryError extends Error {
  readonly status: number;
  constructor(message: string, status = 400) {
    super(message);
    this.name = 'RegistryError';
    this.status = status;
  }
}

const now = () => Math.floor(Date.now() / 1000);
export const newKey = () => randomBytes(16).toString('hex');
const HEX40 = /^[0-9a-f]{40}$/;
const HEX64 = /^[0-9a-f]{64}$/;

/** A trimmed username, or a RegistryError saying what a username may hold. */
function checkUsername(raw: string): string {
  const username = raw.trim();
  if (!/^[A-Za-z0-9_.-]{2,32}$/.test(username))
    throw new RegistryError('username: 2 to 32 letters, digits, ".", "_" or "-"');
  return username;
}

/** A new, active member with fresh keys and zero counters (CLI/API and portal registration). */
function memberRow(f: {
  username: string;
  email: string | null;
  passwordHash: string | null;
  role: Role;
  invites: number;
  invitedBy: number | null;
  createdAt: number;
}): NewMember {
  return {
    username: f.username,
    email: f.email,
    password_hash: f.passwordHash,
    role: f.role,
    status: 'active',
    status_reason: null,
    passkey: newKey(),
    feed_key: newKey(),
    uploaded: 0,
    downloaded: 0,
    raw_uploaded: 0,
    raw_downloaded: 0,
    seed_time: 0,
    invites: f.invites,
    invited_by: f.invitedBy,
    created_at: f.createdAt,
    last_announce_at: null,
  };
}

/** Normalises a 40-hex info hash (a v1 hash or a v2 hash as trackers see it) or throws. */
export function infoHashHex(s: string): string {
  const h = s.trim().toLowerCase();
  if (HEX64.test(h)) return h.slice(0, 40);
  if (!HEX40.test(h)) throw new RegistryError(`"${s}" is not an info hash (40 hex digits, or 64 for v2)`);
  return h;
}

export type PublicMember = Omit<Member, 'password_hash' | 'invites_earned_at' | 'last_login_at'>;

export interface NewTorrent {
  infoHash: string | null;
  infoHashV2: string | null;
  name: string;
  size: number;
  fileCount: number;
  metainfo?: Uint8Array | null;
  uploaderId?: number | null;
  category?: string | null;
  description?: string | null;
  restricted?: boolean;
  downloadFactor?: number;
  uploadFactor?: number;
}

export type TorrentSummary = Omit<Torrent, 'metainfo'>;

const TORRENT_COLUMNS = [
  'id',
  'info_hash',
  'info_hash_v2',
  'name',
  'size',
  'file_count',
  'category',
  'description',
  'uploader_id',
  'created_at',
  'download_factor',
  'upload_factor',
  'restricted',
  'snatches',
] as const;

const MEMBER_COLUMNS = [
  'id',
  'username',
  'email',
  'role',
  'status',
  'status_reason',
  'passkey',
  'feed_key',
  'uploaded',
  'downloaded',
  'raw_uploaded',
  'raw_downloaded',
  'seed_time',
  'invites',
  'invited_by',
  'created_at',
  'last_announce_at',
] as const;

/**
 * Everything staff tools change: members, torrents, info-hash lists, client prefixes, groups and
 * grants. Used by the CLI, the API and the portal, in this process or another one. Every change
 * bumps the `revision` setting in the same transaction; running trackers poll it and reload
 * their policy within seconds (`PolicyCache`).
 */
export class Registry {
  readonly db: Db;
  constructor(db: Db) {
    this.db = db;
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

  /** Runs `fn` in a transaction that also bumps the revision. */
  async change<T>(fn: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
    return this.#k.transaction().execute(async (trx) => {
      const out = await fn(trx);
      await sql`UPDATE settings SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE key = 'revision'`.execute(
        trx,
      );
      return out;
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
    const exists = await this.#k
      .selectFrom('members')
      .select('id')
      .where('username', '=', username)
      .executeTakeFirst();
    if (exists) throw new RegistryError(`member "${username}" already exists`, 409);
    const id = await this.change(async (trx) => {
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

  /** By id, username or passkey. */
  async findMember(ref: string | number): Promise<PublicMember | undefined> {
    let q = this.#k.selectFrom('members').select(MEMBER_COLUMNS);
    if (typeof ref === 'number') q = q.where('id', '=', ref);
    else if (/^[0-9]+$/.test(ref)) q = q.where('id', '=', Number(ref));
    else if (/^[0-9a-f]{32}$/.test(ref))
      q = q.where((eb) => eb.or([eb('passkey', '=', ref), eb('username', '=', ref)]));
    else q = q.where('username', '=', ref);
    return q.executeTakeFirst();
  }

  async member(ref: string | number): Promise<PublicMember> {
    const m = await this.findMember(ref);
    if (!m) throw new RegistryError(`no member "${ref}"`, 404);
    return m;
  }

  async listMembers(opts: { search?: string; status?: MemberStatus; limit?: number; offset?: number } = {}) {
    let q = this.#k.selectFrom('members').select(MEMBER_COLUMNS).orderBy('id');
    if (opts.search) q = q.where('username', 'like', `%${opts.search.replace(/[%_]/g, '')}%`);
    if (opts.status) q = q.where('status', '=', opts.status);
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
    await this.change((trx) =>
      trx
        .updateTable('members')
        .set({ status, status_reason: status === 'active' ? null : reason })
        .where('id', '=', m.id)
        .execute(),
    );
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
    if (Object.keys(set).length > 0)
      await this.change((trx) => trx.updateTable('members').set(set).where('id', '=', m.id).execute());
    return this.member(m.id);
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
    const v1 = t.infoHash === null ? null : infoHashHex(t.infoHash);
    const v2 = t.infoHashV2 === null ? null : t.infoHashV2.toLowerCase();
    if (v1 === null && v2 === null) throw new RegistryError('a torrent needs a v1 or a v2 info hash');
    if (v2 !== null && !HEX64.test(v2)) throw new RegistryError('info_hash_v2 must be 64 hex digits');
    const clash = await this.#k
      .selectFrom('torrents')
      .select(['id', 'name'])
      .where((eb) =>
        eb.or([
          ...(v1 ? [eb('info_hash', '=', v1), eb(sql`substr(info_hash_v2, 1, 40)`, '=', v1)] : []),
          ...(v2 ? [eb('info_hash_v2', '=', v2), eb('info_hash', '=', v2.slice(0, 40))] : []),
        ]),
      )
      .executeTakeFirst();
    if (clash) throw new RegistryError(`torrent already registered (#${clash.id} ${clash.name})`, 409);
    const id = await this.change(async (trx) => {
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
          metainfo: t.metainfo ?? null,
        })
        .returning('id')
        .executeTakeFirstOrThrow();
      return r.id;
    });
    return this.torrent(id);
  }

  /** Registers a .torrent file (both hashes of a hybrid torrent), keeping the file. */
  async addTorrentFile(
    bytes: Uint8Array,
    extra: Omit<NewTorrent, 'infoHash' | 'infoHashV2' | 'name' | 'size' | 'fileCount' | 'metainfo'> & {
      name?: string;
    } = {},
  ): Promise<TorrentSummary & { private: boolean }> {
    const parsed = parseMetainfo(bytes);
    if (!parsed.ok) throw new RegistryError(`not a valid .torrent file: ${parsed.error}`);
    const m = parsed.torrent;
    const t = await this.addTorrent({
      ...extra,
      infoHash: m.infoHashV1 ? m.infoHashV1.toString('hex') : null,
      infoHashV2: m.infoHashV2 ? m.infoHashV2.toString('hex') : null,
      name: extra.name ?? m.name,
      size: m.totalSize,
      fileCount: m.files.length,
      metainfo: Buffer.from(bytes),
    });
    return { ...t, private: m.private };
  }

  /** By id or info hash (v1, v2 or truncated v2). */
  async findTorrent(ref: string | number): Promise<TorrentSummary | undefined> {
    let q = this.#k.selectFrom('torrents').select(TORRENT_COLUMNS);
    if (typeof ref === 'number' || /^[0-9]{1,12}$/.test(ref)) q = q.where('id', '=', Number(ref));
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

  async torrentFile(id: number): Promise<Uint8Array | null> {
    const r = await this.#k.selectFrom('torrents').select('metainfo').where('id', '=', id).executeTakeFirst();
    return r?.metainfo ?? null;
  }

  async listTorrents(opts: { search?: string; limit?: number; offset?: number } = {}) {
    let q = this.#k.selectFrom('torrents').select(TORRENT_COLUMNS).orderBy('id', 'desc');
    if (opts.search) q = q.where('name', 'like', `%${opts.search.replace(/[%_]/g, '')}%`);
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
    if (patch.name !== undefined) set.name = patch.name;
    if (patch.category !== undefined) set.category = patch.category;
    if (patch.description !== undefined) set.description = patch.description;
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

  listHashes(list: 'allow' | 'deny') {
    return this.#k
      .selectFrom('hash_lists')
      .select(['info_hash', 'note', 'created_at'])
      .where('list', '=', list)
      .orderBy('created_at')
      .execute();
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
        ? q.where('id', '=', Number(ref))
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
    if (opts.id !== undefined) q = q.where('id', '=', opts.id);
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

  listGrants(opts: { torrent?: number; member?: number } = {}) {
    let q = this.#k.selectFrom('grants').selectAll().orderBy('id');
    if (opts.torrent !== undefined) q = q.where('torrent_id', '=', opts.torrent);
    if (opts.member !== undefined) q = q.where('member_id', '=', opts.member);
    return q.execute();
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

  async memberTorrents(memberId: number) {
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
      .where('member_torrents.member_id', '=', memberId)
      .orderBy('member_torrents.last_announce_at', 'desc')
      .execute();
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

  // ---- portal: passwords, sessions (no revision bump: the tracker's policy does not read them) ----

  /** The stored password hash and status of a member, by username (login). */
  async credentials(username: string) {
    return this.#k
      .selectFrom('members')
      .select(['id', 'username', 'password_hash', 'status', 'status_reason'])
      .where('username', '=', username)
      .executeTakeFirst();
  }

  async setPasswordHash(memberId: number, hash: string): Promise<void> {
    await this.#k.updateTable('members').set({ password_hash: hash }).where('id', '=', memberId).execute();
  }

  async resetFeedKey(memberId: number): Promise<string> {
    const key = newKey();
    await this.#k.updateTable('members').set({ feed_key: key }).where('id', '=', memberId).execute();
    return key;
  }

  async memberByFeedKey(key: string): Promise<PublicMember | undefined> {
    if (!/^[0-9a-f]{32}$/.test(key)) return undefined;
    return this.#k
      .selectFrom('members')
      .select(MEMBER_COLUMNS)
      .where('feed_key', '=', key)
      .executeTakeFirst();
  }

  async createSession(s: {
    id: string;
    memberId: number;
    csrf: string;
    expiresAt: number;
    ip: string | null;
  }) {
    await this.#k
      .insertInto('sessions')
      .values({
        id: s.id,
        member_id: s.memberId,
        csrf: s.csrf,
        created_at: now(),
        expires_at: s.expiresAt,
        ip: s.ip,
      })
      .execute();
    await this.#k.updateTable('members').set({ last_login_at: now() }).where('id', '=', s.memberId).execute();
  }

  /** The session's member and CSRF token, if the session exists and has not expired. */
  async session(id: string, at: number): Promise<{ member: PublicMember; csrf: string } | undefined> {
    const s = await this.#k
      .selectFrom('sessions')
      .select(['member_id', 'csrf', 'expires_at'])
      .where('id', '=', id)
      .executeTakeFirst();
    if (!s) return undefined;
    if (s.expires_at <= at) {
      await this.deleteSession(id);
      return undefined;
    }
    const member = await this.findMember(s.member_id);
    return member ? { member, csrf: s.csrf } : undefined;
  }

  async deleteSession(id: string): Promise<void> {
    await this.#k.deleteFrom('sessions').where('id', '=', id).execute();
  }

  /** Ends every session of a member (ban, password change). */
  async deleteMemberSessions(memberId: number): Promise<void> {
    await this.#k.deleteFrom('sessions').where('member_id', '=', memberId).execute();
  }

  async deleteExpiredSessions(at: number): Promise<void> {
    await this.#k.deleteFrom('sessions').where('expires_at', '<=', at).execute();
  }

  // ---- portal: registration and invitations ----

  /**
   * Creates an account from the registration form. With `code`, the invitation is claimed in the
   * same transaction (one use only, before it expires) and becomes `invited_by`. The first account
   * of an installation is the administrator.
   */
  async register(opts: {
    username: string;
    passwordHash: string;
    email: string | null;
    code: string | null;
    /** Registration without an invitation is allowed (open registration). */
    open: boolean;
  }): Promise<PublicMember> {
    const username = checkUsername(opts.username);
    const first = (await this.counts()).members === 0;
    if (!first && opts.code === null && !opts.open)
      throw new RegistryError('registration needs an invitation', 403);
    const exists = await this.#k
      .selectFrom('members')
      .select('id')
      .where('username', '=', username)
      .executeTakeFirst();
    if (exists) throw new RegistryError(`the name "${username}" is taken`, 409);
    const at = now();
    const id = await this.change(async (trx) => {
      let invitedBy: number | null = null;
      let invitationId: number | null = null;
      if (opts.code !== null) {
        const inv = await trx
          .selectFrom('invitations')
          .select(['id', 'inviter_id', 'used_by', 'expires_at'])
          .where('code', '=', opts.code)
          .executeTakeFirst();
        if (!inv || inv.used_by !== null || inv.expires_at <= at)
          throw new RegistryError('this invitation is unknown, used or expired', 403);
        invitedBy = inv.inviter_id;
        invitationId = inv.id;
      }
      const r = await trx
        .insertInto('members')
        .values(
          memberRow({
            username,
            email: opts.email,
            passwordHash: opts.passwordHash,
            role: first ? 'admin' : 'member',
            invites: 0,
            invitedBy,
            createdAt: at,
          }),
        )
        .returning('id')
        .executeTakeFirstOrThrow();
      if (invitationId !== null) {
        // Claimed only if still unused: two registrations racing on one code cannot both win.
        const u = await trx
          .updateTable('invitations')
          .set({ used_by: r.id, used_at: at })
          .where('id', '=', invitationId)
          .where('used_by', 'is', null)
          .executeTakeFirst();
        if (Number(u.numUpdatedRows) !== 1) throw new RegistryError('this invitation was just used', 409);
      }
      return r.id;
    });
    return this.member(id);
  }

  /**
   * Issues an invitation. `spend` takes one of the inviter's invites (members); staff invite
   * without spending. Returns the code (the secret in the link).
   */
  async createInvitation(opts: {
    inviterId: number | null;
    email: string | null;
    ttlSeconds: number;
    spend: boolean;
  }): Promise<{ id: number; code: string; expires_at: number }> {
    const code = randomBytes(18).toString('base64url');
    const at = now();
    return this.#k.transaction().execute(async (trx) => {
      if (opts.spend && opts.inviterId !== null) {
        const u = await trx
          .updateTable('members')
          .set((eb) => ({ invites: eb('invites', '-', 1) }))
          .where('id', '=', opts.inviterId)
          .where('invites', '>', 0)
          .executeTakeFirst();
        if (Number(u.numUpdatedRows) !== 1) throw new RegistryError('you have no invites left', 403);
      }
      const r = await trx
        .insertInto('invitations')
        .values({
          code,
          inviter_id: opts.inviterId,
          email: opts.email,
          created_at: at,
          expires_at: at + opts.ttlSeconds,
          used_by: null,
          used_at: null,
        })
        .returning('id')
        .executeTakeFirstOrThrow();
      return { id: r.id, code, expires_at: at + opts.ttlSeconds };
    });
  }

  async invitation(code: string) {
    return this.#k.selectFrom('invitations').selectAll().where('code', '=', code).executeTakeFirst();
  }

  listInvitations(opts: { inviterId?: number; limit?: number } = {}) {
    let q = this.#k
      .selectFrom('invitations')
      .leftJoin('members as used', 'used.id', 'invitations.used_by')
      .leftJoin('members as inviter', 'inviter.id', 'invitations.inviter_id')
      .select([
        'invitations.id',
        'invitations.code',
        'invitations.email',
        'invitations.created_at',
        'invitations.expires_at',
        'invitations.used_at',
        'invitations.used_by',
        'used.username as used_by_name',
        'inviter.username as inviter_name',
      ])
      .orderBy('invitations.id', 'desc');
    if (opts.inviterId !== undefined) q = q.where('invitations.inviter_id', '=', opts.inviterId);
    return q.limit(opts.limit ?? 200).execute();
  }

  /** Who invited whom: every member's id, name, inviter and status (the staff invite tree). */
  inviteTree() {
    return this.#k
      .selectFrom('members')
      .select(['id', 'username', 'invited_by', 'status', 'role', 'created_at'])
      .orderBy('id')
      .execute();
  }

  /**
   * Gives `perPeriod` invites to every active member who meets the operator's rules and has not
   * earned any in the last `periodSeconds`. Returns how many members earned invites.
   */
  async grantEarnedInvites(rules: {
    minRatio: number;
    minAgeSeconds: number;
    minUploaded: number;
    perPeriod: number;
    periodSeconds: number;
    at: number;
  }): Promise<number> {
    if (rules.perPeriod <= 0 || rules.periodSeconds <= 0) return 0;
    const candidates = await this.#k
      .selectFrom('members')
      .select(['id', 'uploaded', 'downloaded'])
      .where('status', '=', 'active')
      .where('created_at', '<=', rules.at - rules.minAgeSeconds)
      .where('uploaded', '>=', rules.minUploaded)
      .where((eb) =>
        eb.or([
          eb('invites_earned_at', 'is', null),
          eb('invites_earned_at', '<=', rules.at - rules.periodSeconds),
        ]),
      )
      .execute();
    const ids = candidates
      .filter((m) => m.downloaded === 0 || m.uploaded / m.downloaded >= rules.minRatio)
      .map((m) => m.id);
    if (ids.length === 0) return 0;
    await this.#k
      .updateTable('members')
      .set((eb) => ({ invites: eb('invites', '+', rules.perPeriod), invites_earned_at: rules.at }))
      .where('id', 'in', ids)
      .execute();
    return ids.length;
  }

  // ---- portal: applications ----

  async addApplication(a: {
    username: string;
    email: string;
    body: string;
  }): Promise<{ id: number; token: string }> {
    const token = randomBytes(18).toString('base64url');
    const r = await this.#k
      .insertInto('applications')
      .values({
        username: a.username,
        email: a.email,
        body: a.body,
        status: 'pending',
        reason: null,
        created_at: now(),
        decided_by: null,
        decided_at: null,
        invitation_id: null,
        token,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    return { id: r.id, token };
  }

  listApplications(status: 'pending' | 'approved' | 'rejected' | 'all' = 'pending') {
    let q = this.#k.selectFrom('applications').selectAll().orderBy('id', 'desc').limit(500);
    if (status !== 'all') q = q.where('status', '=', status);
    return q.execute();
  }

  /** An application and, once approved, its invitation code (the applicant's status page). */
  async applicationByToken(token: string) {
    const a = await this.#k
      .selectFrom('applications')
      .selectAll()
      .where('token', '=', token)
      .executeTakeFirst();
    if (!a) return undefined;
    const inv =
      a.invitation_id === null
        ? undefined
        : await this.#k
            .selectFrom('invitations')
            .select(['code', 'expires_at', 'used_by'])
            .where('id', '=', a.invitation_id)
            .executeTakeFirst();
    return { ...a, invitation: inv ?? null };
  }

  /** Approve (issues an invitation for the applicant's e-mail) or reject (with a reason). */
  async decideApplication(opts: {
    id: number;
    staffId: number;
    approve: boolean;
    reason: string | null;
    ttlSeconds: number;
  }): Promise<{ code: string | null }> {
    const a = await this.#k
      .selectFrom('applications')
      .selectAll()
      .where('id', '=', opts.id)
      .executeTakeFirst();
    if (!a) throw new RegistryError(`no application #${opts.id}`, 404);
    if (a.status !== 'pending')
      throw new RegistryError(`application #${opts.id} is already ${a.status}`, 409);
    let code: string | null = null;
    let invitationId: number | null = null;
    if (opts.approve) {
      const inv = await this.createInvitation({
        inviterId: opts.staffId,
        email: a.email,
        ttlSeconds: opts.ttlSeconds,
        spend: false,
      });
      code = inv.code;
      invitationId = inv.id;
    }
    await this.#k
      .updateTable('applications')
      .set({
        status: opts.approve ? 'approved' : 'rejected',
        reason: opts.reason,
        decided_by: opts.staffId,
        decided_at: now(),
        invitation_id: invitationId,
      })
      .where('id', '=', opts.id)
      .execute();
    return { code };
  }

  // ---- portal: browsing and history ----

  /** Torrents matching a name search and a category, newest first (the portal sorts further). */
  browseTorrents(opts: { search?: string; category?: string; limit?: number }) {
    let q = this.#k.selectFrom('torrents').select(TORRENT_COLUMNS).orderBy('id', 'desc');
    if (opts.search) {
      for (const word of opts.search
        .split(/\s+/)
        .filter((w) => w.length > 0)
        .slice(0, 8))
        q = q.where(sql`lower(name)`, 'like', `%${word.toLowerCase().replace(/[%_\\]/g, '')}%`);
    }
    if (opts.category) q = q.where('category', '=', opts.category);
    return q.limit(opts.limit ?? 5000).execute();
  }

  /**
   * Records every member's credited totals that changed since their last record, at most one
   * record per member per `minGap` seconds (an active site would otherwise add a row per member
   * per tick); records older than `keepSeconds` are dropped.
   */
  async snapshotTraffic(at: number, minGap = 3600, keepSeconds = 400 * 86400): Promise<number> {
    const last = await sql<{ member_id: number; uploaded: number; downloaded: number; at: number }>`
      SELECT t.member_id, t.uploaded, t.downloaded, t.at FROM traffic_history t
      JOIN (SELECT member_id, MAX(at) AS at FROM traffic_history GROUP BY member_id) l
        ON l.member_id = t.member_id AND l.at = t.at`.execute(this.#k);
    const prev = new Map(last.rows.map((r) => [Number(r.member_id), r]));
    const members = await this.#k.selectFrom('members').select(['id', 'uploaded', 'downloaded']).execute();
    const rows = members
      .filter((m) => {
        const p = prev.get(m.id);
        if (p === undefined) return true;
        if (Number(p.at) > at - minGap) return false;
        return Number(p.uploaded) !== m.uploaded || Number(p.downloaded) !== m.downloaded;
      })
      .map((m) => ({ member_id: m.id, at, uploaded: m.uploaded, downloaded: m.downloaded }));
    for (let i = 0; i < rows.length; i += 500)
      await this.#k
        .insertInto('traffic_history')
        .values(rows.slice(i, i + 500))
        .onConflict((oc) => oc.columns(['member_id', 'at']).doNothing())
        .execute();
    await this.#k
      .deleteFrom('traffic_history')
      .where('at', '<', at - keepSeconds)
      .execute();
    await this.#k
      .deleteFrom('site_history')
      .where('at', '<', at - keepSeconds)
      .execute();
    return rows.length;
  }

  trafficHistory(memberId: number, limit = 500) {
    return this.#k
      .selectFrom('traffic_history')
      .select(['at', 'uploaded', 'downloaded'])
      .where('member_id', '=', memberId)
      .orderBy('at', 'desc')
      .limit(limit)
      .execute()
      .then((r) => r.reverse());
  }

  async snapshotSite(row: SiteHistoryTable): Promise<void> {
    await this.#k
      .insertInto('site_history')
      .values(row)
      .onConflict((oc) => oc.column('at').doNothing())
      .execute();
  }

  siteHistory(limit = 500) {
    return this.#k
      .selectFrom('site_history')
      .selectAll()
      .orderBy('at', 'desc')
      .limit(limit)
      .execute()
      .then((r) => r.reverse());
  }

  /** Counts for the staff statistics page. */
  async siteCounts() {
    const c = await this.counts();
    const by = async (status: MemberStatus) =>
      Number(
        (
          await this.#k
            .selectFrom('members')
            .select((eb) => eb.fn.countAll().as('n'))
            .where('status', '=', status)
            .executeTakeFirstOrThrow()
        ).n,
      );
    const pending = Number(
      (
        await this.#k
          .selectFrom('applications')
          .select((eb) => eb.fn.countAll().as('n'))
          .where('status', '=', 'pending')
          .executeTakeFirstOrThrow()
      ).n,
    );
    const traffic = await this.#k
      .selectFrom('members')
      .select((eb) => [eb.fn.sum<number>('uploaded').as('up'), eb.fn.sum<number>('downloaded').as('down')])
      .executeTakeFirstOrThrow();
    return {
      ...c,
      banned: await by('banned'),
      disabled: await by('disabled'),
      pendingApplications: pending,
      uploaded: Number(traffic.up ?? 0),
      downloaded: Number(traffic.down ?? 0),
    };
  }
}
