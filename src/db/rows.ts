import { randomBytes } from 'node:crypto';
import { type Kysely, sql } from 'kysely';
import type { Database, Member, NewMember, Role } from './schema.ts';

/*
 * Row-level pieces the Registry and Accounts both use (column lists, new-row defaults, checks,
 * errors), in a module of their own so that neither imports the other (issue #15: no import
 * cycles). registry.ts re-exports them.
 */

/** A mistake by the caller (unknown member, duplicate name...): safe to show as is. */
export class RegistryError extends Error {
  readonly status: number;
  constructor(message: string, status = 400) {
    super(message);
    this.name = 'RegistryError';
    this.status = status;
  }
}

/** A torrent whose info hash is registered already (409); which one, for those who may know. */
export class TorrentClash extends RegistryError {
  readonly torrentId: number;
  constructor(torrent: { id: number; name: string }) {
    super(`torrent already registered (#${torrent.id} ${torrent.name})`, 409);
    this.torrentId = torrent.id;
  }
}

export const now = () => Math.floor(Date.now() / 1000);

/**
 * A row id as a query parameter: ids are 32-bit on PostgreSQL (`serial`), which refuses a larger
 * number as a parameter ("out of range for type integer"), an internal error for what is only an
 * id that names no row. Ids from outside (pages, the API, the CLI) go through this: out of range,
 * they become 0, which no row has, so the lookup finds nothing, as on SQLite.
 */
export const rowId = (n: number): number => (Number.isInteger(n) && n > 0 && n <= 2_147_483_647 ? n : 0);
export const newKey = () => randomBytes(16).toString('hex');
const HEX40 = /^[0-9a-f]{40}$/;
export const HEX64 = /^[0-9a-f]{64}$/;

/**
 * A trimmed username, or a RegistryError saying what a username may hold. Usernames are unique
 * regardless of case (a unique index on `lower(username)`, 0005_usernames), and never look like
 * the other ways of naming a member (`findMember`): not only digits (an id), not 32 hex digits
 * (a passkey). So `herald member show 12` is member #12, never a member named "12".
 */
export function checkUsername(raw: string): string {
  const username = raw.trim();
  if (!/^[A-Za-z0-9_.-]{2,32}$/.test(username))
    throw new RegistryError('username: 2 to 32 letters, digits, ".", "_" or "-"');
  if (/^[0-9]+$/.test(username)) throw new RegistryError('username: not only digits (that is a member id)');
  if (/^[0-9a-fA-F]{32}$/.test(username))
    throw new RegistryError('username: not 32 hex digits (that is how a passkey looks)');
  return username;
}

/** The condition "this row's username is `name`, ignoring case" (served by the lower(username) index). */
export const sameName = (name: string) => sql<boolean>`lower(username) = ${name.toLowerCase()}`;

/**
 * A new, active member with fresh keys and zero counters (CLI/API and portal registration); by
 * default a plain member with no e-mail, password or invites, created now.
 */
export function memberRow(f: {
  username: string;
  email?: string | null;
  passwordHash?: string | null;
  role?: Role;
  invites?: number;
  invitedBy?: number | null;
  createdAt?: number;
}): NewMember {
  return {
    username: f.username,
    email: f.email ?? null,
    password_hash: f.passwordHash ?? null,
    role: f.role ?? 'member',
    status: 'active',
    status_reason: null,
    passkey: newKey(),
    feed_key: newKey(),
    uploaded: 0,
    downloaded: 0,
    raw_uploaded: 0,
    raw_downloaded: 0,
    seed_time: 0,
    invites: f.invites ?? 0,
    invited_by: f.invitedBy ?? null,
    created_at: f.createdAt ?? now(),
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

export type PublicMember = Omit<
  Member,
  | 'password_hash'
  | 'invites_earned_at'
  | 'last_login_at'
  | 'totp_secret'
  | 'totp_enabled_at'
  | 'totp_last_step'
>;

export const TORRENT_COLUMNS = [
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

export const MEMBER_COLUMNS = [
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
  'can_leech',
  'leech_reason',
  'leech_changed_at',
  'ratio_warned_at',
  'ratio_warnings',
  'hnr_immune',
  'class',
  'class_locked',
  'freeleech_tokens',
] as const;

/** The grants a member holds at `at`, their own or a group's, unexpired: `torrent_id` of each. */
export function liveGrants(k: Kysely<Database>, memberId: number, at: number) {
  return k
    .selectFrom('grants')
    .select('torrent_id')
    .where((eb) =>
      eb.or([
        eb('member_id', '=', memberId),
        eb(
          'group_id',
          'in',
          eb.selectFrom('group_members').select('group_id').where('member_id', '=', memberId),
        ),
      ]),
    )
    .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', at)]));
}
