import type { Generated, Insertable, Selectable } from 'kysely';

/**
 * The database, as Kysely sees it: one schema for SQLite and PostgreSQL. Portable types only:
 * integers (unix seconds for times, 0/1 for flags, bytes as 64-bit integers read as JS numbers,
 * exact to 9 PB), text (info hashes as lowercase hex), and the .torrent file as a blob/bytea.
 * Percentages instead of floats: a download factor of 0 is freeleech, 50 half-leech; an upload
 * factor of 200 counts uploads double.
 */
export interface Database {
  members: MembersTable;
  invitations: InvitationsTable;
  applications: ApplicationsTable;
  torrents: TorrentsTable;
  torrent_file_pages: TorrentFilePagesTable;
  groups: GroupsTable;
  group_members: GroupMembersTable;
  grants: GrantsTable;
  member_torrents: MemberTorrentsTable;
  hash_lists: HashListsTable;
  client_prefixes: ClientPrefixesTable;
  accounting_flags: AccountingFlagsTable;
  settings: SettingsTable;
  sessions: SessionsTable;
  traffic_history: TrafficHistoryTable;
  site_history: SiteHistoryTable;
  login_addresses: LoginAddressesTable;
  hit_and_runs: HitAndRunsTable;
  class_history: ClassHistoryTable;
  bonus_ledger: BonusLedgerTable;
  personal_freeleech: PersonalFreeleechTable;
  site_events: SiteEventsTable;
  featured_torrents: FeaturedTorrentsTable;
  connectable: ConnectableTable;
  scheduler_leases: SchedulerLeasesTable;
  password_resets: PasswordResetsTable;
  recovery_codes: RecoveryCodesTable;
  auth_attempts: AuthAttemptsTable;
}

export const ROLES = ['member', 'uploader', 'moderator', 'admin'] as const;
export type Role = (typeof ROLES)[number];
export const MEMBER_STATUSES = ['active', 'disabled', 'banned'] as const;
export type MemberStatus = (typeof MEMBER_STATUSES)[number];

export interface MembersTable {
  id: Generated<number>;
  username: string;
  email: string | null;
  password_hash: string | null;
  role: Role;
  status: MemberStatus;
  status_reason: string | null;
  /** 32 hex characters; in every announce URL of the member. */
  passkey: string;
  /** Key of the personal RSS feed, distinct from the passkey (resettable on its own). */
  feed_key: string;
  /** Credited figures (after freeleech and multipliers): what the ratio is made of. */
  uploaded: number;
  downloaded: number;
  /** What clients reported, before freeleech and multipliers. */
  raw_uploaded: number;
  raw_downloaded: number;
  seed_time: number;
  invites: number;
  invited_by: number | null;
  created_at: number;
  last_announce_at: number | null;
  /** When the member last earned invites by the operator's rules (0002_portal). */
  invites_earned_at: number | null;
  last_login_at: number | null;
  /** Download rights (0006_rules): 0 = announces with something left are refused. */
  can_leech: Generated<number>;
  /** Who took them: 'ratio' (ratio watch; given back when the ratio is) or 'staff'. */
  leech_reason: string | null;
  /** When download rights last changed. */
  leech_changed_at: number | null;
  /** Ratio watch: when the member was warned (null = not warned now). */
  ratio_warned_at: number | null;
  /** Ratio watch: warnings given so far. */
  ratio_warnings: Generated<number>;
  /** Hit-and-run (0007): 1 = never marked (set by staff). */
  hnr_immune: Generated<number>;
  /** Member class by name (0008); null = the first configured class. */
  class: string | null;
  /** 1: staff set the class by hand; the scheduler leaves it. */
  class_locked: Generated<number>;
  /** Freeleech tokens held (0009), bought in the bonus shop. */
  freeleech_tokens: Generated<number>;
  /** TOTP secret (0012): `plain:BASE32` or `gcm:…` (encrypted with `totp_encryption_key`); null = none. */
  totp_secret: string | null;
  /** When two-factor authentication was turned on (null = off; a secret may wait for confirmation). */
  totp_enabled_at: number | null;
  /** The last TOTP time step a code was accepted in: a code is good once (replay protection). */
  totp_last_step: number | null;
}
export type Member = Selectable<MembersTable>;
export type NewMember = Insertable<MembersTable>;

export interface InvitationsTable {
  id: Generated<number>;
  code: string;
  inviter_id: number | null;
  email: string | null;
  created_at: number;
  expires_at: number;
  used_by: number | null;
  used_at: number | null;
}

export interface ApplicationsTable {
  id: Generated<number>;
  username: string;
  email: string;
  body: string;
  status: 'pending' | 'approved' | 'rejected';
  reason: string | null;
  created_at: number;
  decided_by: number | null;
  decided_at: number | null;
  invitation_id: number | null;
  /** Secret in the applicant's status link (0002_portal). */
  token: string | null;
}

export interface TorrentsTable {
  id: Generated<number>;
  /** v1 info hash (SHA-1), 40 hex; null for a v2-only torrent. */
  info_hash: string | null;
  /** v2 info hash (SHA-256), 64 hex; trackers see its first 20 bytes (BEP 52). */
  info_hash_v2: string | null;
  name: string;
  size: number;
  file_count: number;
  category: string | null;
  description: string | null;
  uploader_id: number | null;
  created_at: number;
  /** Percent of downloads counted (0 = freeleech). */
  download_factor: number;
  /** Percent of uploads counted. */
  upload_factor: number;
  /** 1: only members holding a grant may announce it. */
  restricted: number;
  snatches: number;
  metainfo: Uint8Array | null;
  /**
   * Where a personal copy differs from `metainfo` (0003): "a,b,c,d", the byte ranges of the
   * `announce` and `announce-list` entries (`AnnounceSlots`). Null until computed (rows stored
   * before 0003, or no file).
   */
  announce_slots: string | null;
  /** From the file (0003), for the page and the magnet link: info.name, v1|v2|hybrid, piece length. */
  meta_name: string | null;
  meta_version: string | null;
  piece_length: number | null;
}
export type Torrent = Selectable<TorrentsTable>;

/**
 * A torrent's file list (0003), `FILES_PER_PAGE` files per row as a JSON array of
 * [path, length]: the torrent page reads one row, whatever the size of the torrent.
 */
export interface TorrentFilePagesTable {
  torrent_id: number;
  /** From 1. */
  page: number;
  files: string;
}

export interface GroupsTable {
  id: Generated<number>;
  name: string;
}

export interface GroupMembersTable {
  group_id: number;
  member_id: number;
}

export interface GrantsTable {
  id: Generated<number>;
  torrent_id: number;
  member_id: number | null;
  group_id: number | null;
  /** Free text for the caller, e.g. a shop's order number. */
  reference: string | null;
  created_at: number;
  /** Unix seconds; null = never. */
  expires_at: number | null;
}

export interface MemberTorrentsTable {
  member_id: number;
  torrent_id: number;
  uploaded: number;
  downloaded: number;
  raw_uploaded: number;
  raw_downloaded: number;
  seed_time: number;
  announces: number;
  /** Set once when the member completes the torrent (a snatch). */
  completed_at: number | null;
  first_announce_at: number;
  last_announce_at: number;
  /** At the last announce (0006_rules): 0 stopped, 1 leeching, 2 seeding. */
  state: Generated<number>;
  /** Hit-and-run (0007): the snatch is 0 not judged yet, 1 fulfilled or exempt, 2 a hit-and-run. */
  hnr_state: Generated<number>;
  /** Bonus points (0009): the seeding time already paid for. */
  bonus_seed_time: Generated<number>;
}

export interface HashListsTable {
  list: 'allow' | 'deny';
  /** 40 hex: a v1 hash or a truncated v2 hash, as trackers see them. */
  info_hash: string;
  note: string | null;
  created_at: number;
}

export interface ClientPrefixesTable {
  /** Peer id prefix, e.g. "-qB4", "-TR4". */
  prefix: string;
  note: string | null;
}

export interface AccountingFlagsTable {
  id: Generated<number>;
  member_id: number;
  torrent_id: number;
  peer_id: string;
  kind: string;
  uploaded: number;
  downloaded: number;
  seconds: number;
  created_at: number;
}

export interface SettingsTable {
  key: string;
  value: string;
}

/** Portal sessions (0002_portal). `id` is the SHA-256 of the cookie's token, never the token. */
export interface SessionsTable {
  id: string;
  member_id: number;
  /** Per-session CSRF token, in every form of the session. */
  csrf: string;
  created_at: number;
  expires_at: number;
  ip: string | null;
  /** 1: the password was right, the second factor is still owed (0012); such a session is no login. */
  pending_2fa: Generated<number>;
}

/** A member's credited totals over time, for the profile chart (0002_portal). */
export interface TrafficHistoryTable {
  member_id: number;
  at: number;
  uploaded: number;
  downloaded: number;
}

/** Site figures over time, for the staff statistics page (0002_portal). */
export interface SiteHistoryTable {
  at: number;
  members: number;
  torrents: number;
  peers: number;
  seeders: number;
  leechers: number;
  /** Announces per second (all transports) × 100. */
  announce_rate: number;
}

/** The database engine: embedded SQLite or PostgreSQL (one schema, one query layer). */
export type Dialect = 'sqlite' | 'postgres';

/**
 * Where each member has logged in from (0004_login_addresses): the address as the login limits
 * key it (an IPv4 address or an IPv6 /64), the member's most recent few only. The per-username
 * login limit does not apply from these, so a stranger's guessing cannot lock the owner out.
 */
export interface LoginAddressesTable {
  member_id: number;
  address: string;
  last_at: number;
}

export const HNR_STATUSES = ['active', 'seeded', 'expired', 'forgiven'] as const;
export type HnrStatus = (typeof HNR_STATUSES)[number];

/**
 * A hit-and-run (0007): a snatch not seeded `hnr_seed_hours` within `hnr_days`. Active until the
 * member seeds it to the hours after all ('seeded'), it is older than `hnr_expire_days`
 * ('expired'), or staff forgive it ('forgiven', `ended_by`, `note`). One per member and torrent.
 */
export interface HitAndRunsTable {
  id: Generated<number>;
  member_id: number;
  torrent_id: number;
  snatched_at: number;
  marked_at: number;
  /** The member's seeding time on the torrent when it was marked. */
  seed_time: number;
  status: HnrStatus;
  ended_at: number | null;
  ended_by: number | null;
  note: string | null;
}
export type HitAndRun = Selectable<HitAndRunsTable>;

/** Every change of a member's class (0008): by the scheduler ('promoted', 'demoted') or by staff ('staff'). */
export interface ClassHistoryTable {
  id: Generated<number>;
  member_id: number;
  from_class: string | null;
  to_class: string;
  reason: 'promoted' | 'demoted' | 'staff';
  at: number;
  /** The staff member who set it (null: the scheduler, or the CLI/API). */
  by_member: number | null;
}

/**
 * Bonus points (0009): every change of a member's points is a row; the balance is the sum of
 * `delta` (hundredths of a point). Reasons: 'seeding' (the scheduler), 'shop:upload',
 * 'shop:invite', 'shop:token' (spent), 'staff' (given or taken by staff).
 */
export interface BonusLedgerTable {
  id: Generated<number>;
  member_id: number;
  delta: number;
  reason: string;
  note: string | null;
  at: number;
  by_member: number | null;
}

/**
 * Personal freeleech (0010): from `starts_at` to `ends_at`, the member's download on the torrent
 * (null: on every torrent) is not counted. `source`: 'token' (spent by the member) or 'staff'.
 */
export interface PersonalFreeleechTable {
  id: Generated<number>;
  member_id: number;
  torrent_id: number | null;
  starts_at: number;
  ends_at: number;
  source: string;
  created_at: number;
  by_member: number | null;
  /** Percent of uploads counted inside the window (0011; 100 for a token's). */
  upload_factor: Generated<number>;
  /** When staff revoked it (0011); its end was moved to then. */
  revoked_at: number | null;
  note: string | null;
}

/** A site-wide event (0011): freeleech and/or uploads counted by `upload_factor`, [starts, ends). */
export interface SiteEventsTable {
  id: Generated<number>;
  name: string;
  starts_at: number;
  ends_at: number;
  /** 1: downloads are not counted. */
  freeleech: number;
  /** Percent of uploads counted (100: as usual). */
  upload_factor: number;
  created_at: number;
  by_member: number | null;
  /** When staff cancelled it; its end was moved to then (or to its start, before it began). */
  cancelled_at: number | null;
}

/** A featured torrent (0011): free, and uploads counted by `upload_factor`, in [starts, ends). */
export interface FeaturedTorrentsTable {
  id: Generated<number>;
  torrent_id: number;
  starts_at: number;
  ends_at: number;
  upload_factor: number;
  created_at: number;
  by_member: number | null;
  /** When staff unfeatured it early; its end was moved to then. */
  ended_at: number | null;
}

/**
 * The connectable check (0013): the last result for a member's peer on a torrent (1: Herald's
 * BitTorrent handshake to `ip`:`port` was answered for the torrent; 0: it was not).
 */
export interface ConnectableTable {
  member_id: number;
  torrent_id: number;
  connectable: number;
  ip: string;
  port: number;
  checked_at: number;
}

/**
 * Scheduler leases (0014): the instance (`holder`, an id drawn at its start) that runs the passes
 * of scheduler `name` until `expires_at` (clock seconds); src/db/leases.ts.
 */
export interface SchedulerLeasesTable {
  name: string;
  holder: string;
  expires_at: number;
}

/**
 * A password reset link (0012): only the SHA-256 of its token, good until `expires_at`, once
 * (`used_at`). `by_member`: the staff member who made it (null: asked for by mail, or the CLI).
 */
export interface PasswordResetsTable {
  id: Generated<number>;
  token_hash: string;
  member_id: number;
  created_at: number;
  expires_at: number;
  used_at: number | null;
  by_member: number | null;
}

/** A two-factor recovery code (0012): only its SHA-256; each is good once (`used_at`). */
export interface RecoveryCodesTable {
  id: Generated<number>;
  member_id: number;
  code_hash: string;
  used_at: number | null;
}

/**
 * The portal's guessing limits (failed logins, 2FA codes, password re-checks, reset mails), in
 * the database so that every process on it counts one total: a sliding window per throttle
 * (`scope`) and key (a client address, a username, a member id), as the attempt times in ms,
 * oldest first, comma-separated. `expires_at` (ms): when the newest attempt leaves the window
 * (the row is then worth nothing and is deleted).
 */
export interface AuthAttemptsTable {
  scope: string;
  key: string;
  times: string;
  expires_at: number;
}
