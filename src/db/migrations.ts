import { type Kysely, type Migration, type MigrationProvider, Migrator, sql } from 'kysely';
import type { Dialect } from './schema.ts';

/**
 * Schema migrations, in order, for both engines. Only portable column types are used; where the
 * engines differ (auto-increment ids, binary columns) `t` picks the right one. A migration, once
 * released, is never edited: a change is a new migration.
 */
function types(dialect: Dialect) {
  return {
    blob: dialect === 'postgres' ? ('bytea' as const) : ('blob' as const),
    id: dialect === 'postgres' ? ('serial' as const) : ('integer' as const),
  };
}

// biome-ignore lint/suspicious/noExplicitAny: migrations run against a schema that is still being built
type AnyDb = Kysely<any>;

function migrations(dialect: Dialect): Record<string, Migration> {
  const t = types(dialect);
  const id = (c: { primaryKey: () => unknown; autoIncrement: () => unknown }) => {
    // SQLite: INTEGER PRIMARY KEY AUTOINCREMENT; PostgreSQL: SERIAL PRIMARY KEY.
    const k = c.primaryKey() as typeof c;
    return dialect === 'sqlite' ? k.autoIncrement() : k;
  };
  return {
    '0001_initial': {
      async up(db: AnyDb) {
        await db.schema
          .createTable('members')
          .addColumn('id', t.id, (c) => id(c) as typeof c)
          .addColumn('username', 'text', (c) => c.notNull().unique())
          .addColumn('email', 'text')
          .addColumn('password_hash', 'text')
          .addColumn('role', 'text', (c) => c.notNull().defaultTo('member'))
          .addColumn('status', 'text', (c) => c.notNull().defaultTo('active'))
          .addColumn('status_reason', 'text')
          .addColumn('passkey', 'text', (c) => c.notNull().unique())
          .addColumn('feed_key', 'text', (c) => c.notNull().unique())
          .addColumn('uploaded', 'bigint', (c) => c.notNull().defaultTo(0))
          .addColumn('downloaded', 'bigint', (c) => c.notNull().defaultTo(0))
          .addColumn('raw_uploaded', 'bigint', (c) => c.notNull().defaultTo(0))
          .addColumn('raw_downloaded', 'bigint', (c) => c.notNull().defaultTo(0))
          .addColumn('seed_time', 'bigint', (c) => c.notNull().defaultTo(0))
          .addColumn('invites', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('invited_by', 'integer', (c) => c.references('members.id').onDelete('set null'))
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('last_announce_at', 'bigint')
          .execute();
        await db.schema
          .createTable('invitations')
          .addColumn('id', t.id, (c) => id(c) as typeof c)
          .addColumn('code', 'text', (c) => c.notNull().unique())
          .addColumn('inviter_id', 'integer', (c) => c.references('members.id').onDelete('set null'))
          .addColumn('email', 'text')
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('expires_at', 'bigint', (c) => c.notNull())
          .addColumn('used_by', 'integer', (c) => c.references('members.id').onDelete('set null'))
          .addColumn('used_at', 'bigint')
          .execute();
        await db.schema
          .createTable('applications')
          .addColumn('id', t.id, (c) => id(c) as typeof c)
          .addColumn('username', 'text', (c) => c.notNull())
          .addColumn('email', 'text', (c) => c.notNull())
          .addColumn('body', 'text', (c) => c.notNull())
          .addColumn('status', 'text', (c) => c.notNull().defaultTo('pending'))
          .addColumn('reason', 'text')
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('decided_by', 'integer', (c) => c.references('members.id').onDelete('set null'))
          .addColumn('decided_at', 'bigint')
          .addColumn('invitation_id', 'integer', (c) => c.references('invitations.id').onDelete('set null'))
          .execute();
        await db.schema
          .createTable('torrents')
          .addColumn('id', t.id, (c) => id(c) as typeof c)
          .addColumn('info_hash', 'text', (c) => c.unique())
          .addColumn('info_hash_v2', 'text', (c) => c.unique())
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('size', 'bigint', (c) => c.notNull().defaultTo(0))
          .addColumn('file_count', 'integer', (c) => c.notNull().defaultTo(1))
          .addColumn('category', 'text')
          .addColumn('description', 'text')
          .addColumn('uploader_id', 'integer', (c) => c.references('members.id').onDelete('set null'))
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('download_factor', 'integer', (c) => c.notNull().defaultTo(100))
          .addColumn('upload_factor', 'integer', (c) => c.notNull().defaultTo(100))
          .addColumn('restricted', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('snatches', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('metainfo', t.blob)
          .execute();
        await db.schema
          .createTable('groups')
          .addColumn('id', t.id, (c) => id(c) as typeof c)
          .addColumn('name', 'text', (c) => c.notNull().unique())
          .execute();
        await db.schema
          .createTable('group_members')
          .addColumn('group_id', 'integer', (c) => c.notNull().references('groups.id').onDelete('cascade'))
          .addColumn('member_id', 'integer', (c) => c.notNull().references('members.id').onDelete('cascade'))
          .addPrimaryKeyConstraint('group_members_pk', ['group_id', 'member_id'])
          .execute();
        await db.schema
          .createTable('grants')
          .addColumn('id', t.id, (c) => id(c) as typeof c)
          .addColumn('torrent_id', 'integer', (c) =>
            c.notNull().references('torrents.id').onDelete('cascade'),
          )
          .addColumn('member_id', 'integer', (c) => c.references('members.id').onDelete('cascade'))
          .addColumn('group_id', 'integer', (c) => c.references('groups.id').onDelete('cascade'))
          .addColumn('reference', 'text')
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('expires_at', 'bigint')
          .execute();
        await db.schema.createIndex('grants_torrent').on('grants').column('torrent_id').execute();
        await db.schema
          .createTable('member_torrents')
          .addColumn('member_id', 'integer', (c) => c.notNull().references('members.id').onDelete('cascade'))
          .addColumn('torrent_id', 'integer', (c) =>
            c.notNull().references('torrents.id').onDelete('cascade'),
          )
          .addColumn('uploaded', 'bigint', (c) => c.notNull().defaultTo(0))
          .addColumn('downloaded', 'bigint', (c) => c.notNull().defaultTo(0))
          .addColumn('raw_uploaded', 'bigint', (c) => c.notNull().defaultTo(0))
          .addColumn('raw_downloaded', 'bigint', (c) => c.notNull().defaultTo(0))
          .addColumn('seed_time', 'bigint', (c) => c.notNull().defaultTo(0))
          .addColumn('announces', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('completed_at', 'bigint')
          .addColumn('first_announce_at', 'bigint', (c) => c.notNull())
          .addColumn('last_announce_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('member_torrents_pk', ['member_id', 'torrent_id'])
          .execute();
        await db.schema
          .createIndex('member_torrents_torrent')
          .on('member_torrents')
          .column('torrent_id')
          .execute();
        await db.schema
          .createTable('hash_lists')
          .addColumn('list', 'text', (c) => c.notNull())
          .addColumn('info_hash', 'text', (c) => c.notNull())
          .addColumn('note', 'text')
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('hash_lists_pk', ['list', 'info_hash'])
          .execute();
        await db.schema
          .createTable('client_prefixes')
          .addColumn('prefix', 'text', (c) => c.primaryKey())
          .addColumn('note', 'text')
          .execute();
        await db.schema
          .createTable('accounting_flags')
          .addColumn('id', t.id, (c) => id(c) as typeof c)
          .addColumn('member_id', 'integer', (c) => c.notNull().references('members.id').onDelete('cascade'))
          .addColumn('torrent_id', 'integer', (c) =>
            c.notNull().references('torrents.id').onDelete('cascade'),
          )
          .addColumn('peer_id', 'text', (c) => c.notNull())
          .addColumn('kind', 'text', (c) => c.notNull())
          .addColumn('uploaded', 'bigint', (c) => c.notNull())
          .addColumn('downloaded', 'bigint', (c) => c.notNull())
          .addColumn('seconds', 'bigint', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('settings')
          .addColumn('key', 'text', (c) => c.primaryKey())
          .addColumn('value', 'text', (c) => c.notNull())
          .execute();
        await db.insertInto('settings').values({ key: 'revision', value: '1' }).execute();
      },
    },
    '0002_portal': {
      async up(db: AnyDb) {
        await db.schema
          .createTable('sessions')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('member_id', 'integer', (c) => c.notNull().references('members.id').onDelete('cascade'))
          .addColumn('csrf', 'text', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('expires_at', 'bigint', (c) => c.notNull())
          .addColumn('ip', 'text')
          .execute();
        await db.schema.createIndex('sessions_member').on('sessions').column('member_id').execute();
        await db.schema
          .createTable('traffic_history')
          .addColumn('member_id', 'integer', (c) => c.notNull().references('members.id').onDelete('cascade'))
          .addColumn('at', 'bigint', (c) => c.notNull())
          .addColumn('uploaded', 'bigint', (c) => c.notNull())
          .addColumn('downloaded', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('traffic_history_pk', ['member_id', 'at'])
          .execute();
        await db.schema
          .createTable('site_history')
          .addColumn('at', 'bigint', (c) => c.primaryKey())
          .addColumn('members', 'integer', (c) => c.notNull())
          .addColumn('torrents', 'integer', (c) => c.notNull())
          .addColumn('peers', 'integer', (c) => c.notNull())
          .addColumn('seeders', 'integer', (c) => c.notNull())
          .addColumn('leechers', 'integer', (c) => c.notNull())
          .addColumn('announce_rate', 'integer', (c) => c.notNull())
          .execute();
        // SQLite adds one column per ALTER TABLE.
        await db.schema.alterTable('members').addColumn('invites_earned_at', 'bigint').execute();
        await db.schema.alterTable('members').addColumn('last_login_at', 'bigint').execute();
        await db.schema.alterTable('applications').addColumn('token', 'text').execute();
        await db.schema.createIndex('invitations_inviter').on('invitations').column('inviter_id').execute();
      },
    },
    '0003_torrent_summaries': {
      async up(db: AnyDb) {
        // What the portal shows and serves without parsing the .torrent again (issue 15): the
        // byte ranges a personal copy replaces, the summary of the page, and the file list in
        // pages. Null on rows stored before: filled in on first use.
        await db.schema.alterTable('torrents').addColumn('announce_slots', 'text').execute();
        await db.schema.alterTable('torrents').addColumn('meta_name', 'text').execute();
        await db.schema.alterTable('torrents').addColumn('meta_version', 'text').execute();
        await db.schema.alterTable('torrents').addColumn('piece_length', 'bigint').execute();
        await db.schema
          .createTable('torrent_file_pages')
          .addColumn('torrent_id', 'integer', (c) =>
            c.notNull().references('torrents.id').onDelete('cascade'),
          )
          .addColumn('page', 'integer', (c) => c.notNull())
          .addColumn('files', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('torrent_file_pages_pk', ['torrent_id', 'page'])
          .execute();
      },
    },
    '0004_login_addresses': {
      async up(db: AnyDb) {
        await db.schema
          .createTable('login_addresses')
          .addColumn('member_id', 'integer', (c) => c.notNull().references('members.id').onDelete('cascade'))
          .addColumn('address', 'text', (c) => c.notNull())
          .addColumn('last_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('login_addresses_pk', ['member_id', 'address'])
          .execute();
      },
    },
    '0005_usernames': {
      // Usernames become unique regardless of case, and none may look like a member id (only
      // digits) or a passkey (32 hex digits). Names that break this are renamed, never refused:
      // the oldest account keeps a name, a later "Alice" beside "alice" becomes "Alice-<id>",
      // and "1234" becomes "1234-<id>". Renamed members log in with the new name (staff see it
      // on the profile and in `herald member list`); passkeys, sessions and history are kept.
      async up(db: AnyDb) {
        const rows: { id: number; username: string }[] = await db
          .selectFrom('members')
          .select(['id', 'username'])
          .orderBy('id')
          .execute();
        const looksLikeKey = (name: string) => /^[0-9]+$/.test(name) || /^[0-9a-fA-F]{32}$/.test(name);
        const taken = new Set<string>();
        const renames: { id: number; name: string }[] = [];
        for (const r of rows) {
          const key = r.username.toLowerCase();
          if (!looksLikeKey(r.username) && !taken.has(key)) taken.add(key);
          else renames.push({ id: r.id, name: r.username });
        }
        for (const r of renames) {
          let name = '';
          for (let n = 0; name === '' || taken.has(name.toLowerCase()); n++) {
            const suffix = n === 0 ? `-${r.id}` : `-${r.id}-${n}`;
            name = `${r.name.slice(0, 32 - suffix.length)}${suffix}`;
          }
          taken.add(name.toLowerCase());
          await db.updateTable('members').set({ username: name }).where('id', '=', r.id).execute();
        }
        await db.schema
          .createIndex('members_username_lower')
          .on('members')
          .unique()
          .expression(sql`lower(username)`)
          .execute();
      },
    },
    '0006_rules': {
      // The rules of private communities (issue #16). Download rights: `can_leech` 0 or 1, with
      // who took them (`leech_reason`: 'ratio' for ratio watch, 'staff') and when. Ratio watch:
      // when the member was warned (null = not warned now) and how many warnings so far. Per
      // member and torrent, the state at the last announce (0 stopped, 1 leeching, 2 seeding),
      // for "seeding now" where the tracker's memory cannot be asked (the CLI).
      async up(db: AnyDb) {
        await db.schema
          .alterTable('members')
          .addColumn('can_leech', 'integer', (c) => c.notNull().defaultTo(1))
          .execute();
        await db.schema.alterTable('members').addColumn('leech_reason', 'text').execute();
        await db.schema.alterTable('members').addColumn('leech_changed_at', 'bigint').execute();
        await db.schema.alterTable('members').addColumn('ratio_warned_at', 'bigint').execute();
        await db.schema
          .alterTable('members')
          .addColumn('ratio_warnings', 'integer', (c) => c.notNull().defaultTo(0))
          .execute();
        await db.schema
          .alterTable('member_torrents')
          .addColumn('state', 'integer', (c) => c.notNull().defaultTo(0))
          .execute();
      },
    },
    '0007_hit_and_runs': {
      // Hit-and-run (issue #16). Per member and torrent, whether the snatch has been judged
      // (`hnr_state`: 0 not yet, 1 fulfilled or exempt, 2 a hit-and-run), so that each pass reads
      // only snatches past their deadline and not yet judged. One row per hit-and-run, kept when it
      // ends (why: 'seeded', 'expired', 'forgiven'; by whom), for the member's and staff's pages.
      // Per-member immunity, set by staff.
      async up(db: AnyDb) {
        await db.schema
          .alterTable('member_torrents')
          .addColumn('hnr_state', 'integer', (c) => c.notNull().defaultTo(0))
          .execute();
        await db.schema
          .alterTable('members')
          .addColumn('hnr_immune', 'integer', (c) => c.notNull().defaultTo(0))
          .execute();
        await db.schema
          .createTable('hit_and_runs')
          .addColumn('id', t.id, (c) => id(c) as typeof c)
          .addColumn('member_id', 'integer', (c) => c.notNull().references('members.id').onDelete('cascade'))
          .addColumn('torrent_id', 'integer', (c) =>
            c.notNull().references('torrents.id').onDelete('cascade'),
          )
          .addColumn('snatched_at', 'bigint', (c) => c.notNull())
          .addColumn('marked_at', 'bigint', (c) => c.notNull())
          .addColumn('seed_time', 'bigint', (c) => c.notNull())
          .addColumn('status', 'text', (c) => c.notNull().defaultTo('active'))
          .addColumn('ended_at', 'bigint')
          .addColumn('ended_by', 'integer', (c) => c.references('members.id').onDelete('set null'))
          .addColumn('note', 'text')
          .addUniqueConstraint('hit_and_runs_member_torrent', ['member_id', 'torrent_id'])
          .execute();
        await db.schema
          .createIndex('hit_and_runs_status')
          .on('hit_and_runs')
          .columns(['status', 'member_id'])
          .execute();
        await db.schema
          .createIndex('member_torrents_hnr')
          .on('member_torrents')
          .columns(['hnr_state', 'completed_at'])
          .execute();
      },
    },
    '0008_classes': {
      // Member classes (issue #16): the member's class by name (null = the first configured
      // class), whether staff set it by hand (the scheduler then leaves it), and every change.
      async up(db: AnyDb) {
        await db.schema.alterTable('members').addColumn('class', 'text').execute();
        await db.schema
          .alterTable('members')
          .addColumn('class_locked', 'integer', (c) => c.notNull().defaultTo(0))
          .execute();
        await db.schema
          .createTable('class_history')
          .addColumn('id', t.id, (c) => id(c) as typeof c)
          .addColumn('member_id', 'integer', (c) => c.notNull().references('members.id').onDelete('cascade'))
          .addColumn('from_class', 'text')
          .addColumn('to_class', 'text', (c) => c.notNull())
          .addColumn('reason', 'text', (c) => c.notNull())
          .addColumn('at', 'bigint', (c) => c.notNull())
          .addColumn('by_member', 'integer', (c) => c.references('members.id').onDelete('set null'))
          .execute();
        await db.schema
          .createIndex('class_history_member')
          .on('class_history')
          .columns(['member_id', 'at'])
          .execute();
      },
    },
    '0009_bonus': {
      // Bonus points (issue #16): a ledger, one row per change (balance = the sum, in hundredths
      // of a point); per member and torrent, the seeding time already paid for (what was seeded
      // before this migration is paid: it earns nothing); freeleech tokens bought in the shop.
      async up(db: AnyDb) {
        await db.schema
          .alterTable('member_torrents')
          .addColumn('bonus_seed_time', 'bigint', (c) => c.notNull().defaultTo(0))
          .execute();
        await db.updateTable('member_torrents').set({ bonus_seed_time: sql`seed_time` }).execute();
        await db.schema
          .alterTable('members')
          .addColumn('freeleech_tokens', 'integer', (c) => c.notNull().defaultTo(0))
          .execute();
        await db.schema
          .createTable('bonus_ledger')
          .addColumn('id', t.id, (c) => id(c) as typeof c)
          .addColumn('member_id', 'integer', (c) => c.notNull().references('members.id').onDelete('cascade'))
          .addColumn('delta', 'bigint', (c) => c.notNull())
          .addColumn('reason', 'text', (c) => c.notNull())
          .addColumn('note', 'text')
          .addColumn('at', 'bigint', (c) => c.notNull())
          .addColumn('by_member', 'integer', (c) => c.references('members.id').onDelete('set null'))
          .execute();
        await db.schema
          .createIndex('bonus_ledger_member')
          .on('bonus_ledger')
          .columns(['member_id', 'id'])
          .execute();
      },
    },
    '0010_personal_freeleech': {
      // Personal freeleech (issue #16): a window in which one member's download on one torrent
      // (or, torrent_id null, on every torrent) is not counted; from a freeleech token or staff.
      async up(db: AnyDb) {
        await db.schema
          .createTable('personal_freeleech')
          .addColumn('id', t.id, (c) => id(c) as typeof c)
          .addColumn('member_id', 'integer', (c) => c.notNull().references('members.id').onDelete('cascade'))
          .addColumn('torrent_id', 'integer', (c) => c.references('torrents.id').onDelete('cascade'))
          .addColumn('starts_at', 'bigint', (c) => c.notNull())
          .addColumn('ends_at', 'bigint', (c) => c.notNull())
          .addColumn('source', 'text', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('by_member', 'integer', (c) => c.references('members.id').onDelete('set null'))
          .execute();
        await db.schema
          .createIndex('personal_freeleech_ends')
          .on('personal_freeleech')
          .columns(['ends_at'])
          .execute();
      },
    },
    '0011_promotions': {
      // Promotions (issue #16): staff's personal freeleech windows may count uploads more
      // (upload_factor, percent; a token's window is 100) and be revoked (revoked_at; the window
      // then ends at the revocation); site-wide events (freeleech and/or an upload factor) with a
      // start and an end; featured torrents (free, and uploads counted by upload_factor) until
      // their end. Cancelled events and unfeatured torrents are kept, their end moved to then.
      async up(db: AnyDb) {
        await db.schema
          .alterTable('personal_freeleech')
          .addColumn('upload_factor', 'integer', (c) => c.notNull().defaultTo(100))
          .execute();
        await db.schema.alterTable('personal_freeleech').addColumn('revoked_at', 'bigint').execute();
        await db.schema.alterTable('personal_freeleech').addColumn('note', 'text').execute();
        await db.schema
          .createTable('site_events')
          .addColumn('id', t.id, (c) => id(c) as typeof c)
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('starts_at', 'bigint', (c) => c.notNull())
          .addColumn('ends_at', 'bigint', (c) => c.notNull())
          .addColumn('freeleech', 'integer', (c) => c.notNull())
          .addColumn('upload_factor', 'integer', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('by_member', 'integer', (c) => c.references('members.id').onDelete('set null'))
          .addColumn('cancelled_at', 'bigint')
          .execute();
        await db.schema.createIndex('site_events_ends').on('site_events').columns(['ends_at']).execute();
        await db.schema
          .createTable('featured_torrents')
          .addColumn('id', t.id, (c) => id(c) as typeof c)
          .addColumn('torrent_id', 'integer', (c) =>
            c.notNull().references('torrents.id').onDelete('cascade'),
          )
          .addColumn('starts_at', 'bigint', (c) => c.notNull())
          .addColumn('ends_at', 'bigint', (c) => c.notNull())
          .addColumn('upload_factor', 'integer', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('by_member', 'integer', (c) => c.references('members.id').onDelete('set null'))
          .addColumn('ended_at', 'bigint')
          .execute();
        await db.schema
          .createIndex('featured_torrents_ends')
          .on('featured_torrents')
          .columns(['ends_at'])
          .execute();
      },
    },
    '0012_account_security': {
      // Account mail and two-factor authentication (issue #16). Members: a TOTP secret (encrypted
      // when `totp_encryption_key` is set), when 2FA was turned on, and the last time step a code
      // was accepted in (a code works once). Sessions: 1 while the password was right but the
      // second factor is still owed. Password resets and recovery codes: only their SHA-256.
      async up(db: AnyDb) {
        await db.schema.alterTable('members').addColumn('totp_secret', 'text').execute();
        await db.schema.alterTable('members').addColumn('totp_enabled_at', 'bigint').execute();
        await db.schema.alterTable('members').addColumn('totp_last_step', 'bigint').execute();
        await db.schema
          .alterTable('sessions')
          .addColumn('pending_2fa', 'integer', (c) => c.notNull().defaultTo(0))
          .execute();
        await db.schema
          .createTable('password_resets')
          .addColumn('id', t.id, (c) => id(c) as typeof c)
          .addColumn('token_hash', 'text', (c) => c.notNull().unique())
          .addColumn('member_id', 'integer', (c) => c.notNull().references('members.id').onDelete('cascade'))
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('expires_at', 'bigint', (c) => c.notNull())
          .addColumn('used_at', 'bigint')
          .addColumn('by_member', 'integer', (c) => c.references('members.id').onDelete('set null'))
          .execute();
        await db.schema
          .createTable('recovery_codes')
          .addColumn('id', t.id, (c) => id(c) as typeof c)
          .addColumn('member_id', 'integer', (c) => c.notNull().references('members.id').onDelete('cascade'))
          .addColumn('code_hash', 'text', (c) => c.notNull())
          .addColumn('used_at', 'bigint')
          .execute();
        await db.schema
          .createIndex('recovery_codes_member')
          .on('recovery_codes')
          .columns(['member_id'])
          .execute();
      },
    },
    '0013_connectable': {
      // The connectable check (issue #16): the last result for a member on a torrent (the endpoint
      // its peer announced, whether Herald could open a BitTorrent connection to it, and when).
      async up(db: AnyDb) {
        await db.schema
          .createTable('connectable')
          .addColumn('member_id', 'integer', (c) => c.notNull().references('members.id').onDelete('cascade'))
          .addColumn('torrent_id', 'integer', (c) =>
            c.notNull().references('torrents.id').onDelete('cascade'),
          )
          .addColumn('connectable', 'integer', (c) => c.notNull())
          .addColumn('ip', 'text', (c) => c.notNull())
          .addColumn('port', 'integer', (c) => c.notNull())
          .addColumn('checked_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('connectable_pk', ['member_id', 'torrent_id'])
          .execute();
        await db.schema.createIndex('connectable_torrent').on('connectable').column('torrent_id').execute();
      },
    },
    '0014_scheduler_leases': {
      // Several instances on one database (issue #16): each scheduler's pass (ratio watch,
      // hit-and-run, classes, bonus points) runs in the one instance that holds its lease.
      async up(db: AnyDb) {
        await db.schema
          .createTable('scheduler_leases')
          .addColumn('name', 'text', (c) => c.primaryKey())
          .addColumn('holder', 'text', (c) => c.notNull())
          .addColumn('expires_at', 'bigint', (c) => c.notNull())
          .execute();
      },
    },
    '0015_auth_attempts': {
      // The portal's guessing limits, shared by every process on the database (`--workers N`,
      // several instances): per-process counters gave a guesser N times the attempts.
      async up(db: AnyDb) {
        await db.schema
          .createTable('auth_attempts')
          .addColumn('scope', 'text', (c) => c.notNull())
          .addColumn('key', 'text', (c) => c.notNull())
          .addColumn('times', 'text', (c) => c.notNull())
          .addColumn('expires_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('auth_attempts_pk', ['scope', 'key'])
          .execute();
        await db.schema
          .createIndex('auth_attempts_expires')
          .on('auth_attempts')
          .column('expires_at')
          .execute();
      },
    },
    '0016_update_room': {
      // PostgreSQL: room on every page of the two tables the accounting flush updates at each
      // flush_interval (a member's totals, a member × torrent row), so that an update can write the
      // new row version on the same page and leave the indexes alone (a HOT update: no indexed
      // column changes). Full pages made nearly every update a new entry in every index (five on
      // members), and the flush's rows cost PostgreSQL a third more CPU (docs/benchmarks.md,
      // 2026-12-08). New and rewritten pages keep the room; SQLite has no such setting.
      async up(db: AnyDb) {
        if (dialect !== 'postgres') return;
        await sql`ALTER TABLE members SET (fillfactor = 80)`.execute(db);
        await sql`ALTER TABLE member_torrents SET (fillfactor = 80)`.execute(db);
      },
    },
    '0017_browse_indexes': {
      // The portal's torrent list sorts and pages in the database (by name, size, snatches or
      // age): with an index per order, a page is read from the index instead of sorting every
      // torrent at every view (100,000 torrents by name: 260 ms of the event loop on SQLite).
      async up(db: AnyDb) {
        await db.schema.createIndex('torrents_size').on('torrents').column('size').execute();
        await db.schema.createIndex('torrents_snatches').on('torrents').column('snatches').execute();
        await db.schema.createIndex('torrents_created').on('torrents').column('created_at').execute();
        await db.schema
          .createIndex('torrents_name_lower')
          .on('torrents')
          .expression(sql`lower(name)`)
          .execute();
      },
    },
    '0018_sessions_expires': {
      // The portal ends expired sessions at every tick (`deleteExpiredSessions`): without an index
      // on `expires_at` that read every session of the site each time (a full scan of a table
      // with a row per logged-in browser), to delete the few that had expired since.
      async up(db: AnyDb) {
        await db.schema.createIndex('sessions_expires').on('sessions').column('expires_at').execute();
      },
    },
    '0019_hnr_status_id': {
      // Staff › Hit-and-runs and the API list one status newest first, a page at a time: with the
      // index on (status, member_id) SQLite read every hit-and-run of that status and sorted them
      // for each page (100,000 expired ones: ~0.3 s of CPU a page); on (status, id) a page is read
      // in order and stops at its limit. (status, member_id) stays: the per-member counts use it.
      async up(db: AnyDb) {
        await db.schema
          .createIndex('hit_and_runs_status_id')
          .on('hit_and_runs')
          .columns(['status', 'id'])
          .execute();
      },
    },
  };
}

/** The newest migration's name: the schema this Herald writes (`herald --version`, `/stats`). */
export const SCHEMA_VERSION: string = Object.keys(migrations('sqlite')).at(-1)!;

/** Names of the migrations applied to a database, oldest first (none on an empty one). */
export async function appliedMigrations(db: AnyDb): Promise<string[]> {
  const tables = await db.introspection.getTables({ withInternalKyselyTables: true });
  if (!tables.some((t) => t.name === 'kysely_migration')) return [];
  const rows: { name: string }[] = await db
    .selectFrom('kysely_migration')
    .select('name')
    .orderBy('name')
    .execute();
  return rows.map((r) => r.name);
}

/**
 * Brings the schema up to date (or up to the migration named `upTo`, for tests of a migration).
 * Safe to call from several processes at once (Kysely locks). A database that a newer Herald has
 * migrated is refused with a message that says so (an older Herald cannot know its schema).
 */
export async function migrate(db: AnyDb, dialect: Dialect, upTo?: string): Promise<void> {
  const list = migrations(dialect);
  const unknown = (await appliedMigrations(db)).filter((name) => !(name in list));
  if (unknown.length > 0)
    throw new Error(
      `the database's schema (${unknown.at(-1)}) is newer than this Herald's (${SCHEMA_VERSION}): ` +
        'run the Herald that migrated it, or restore a backup made before the upgrade',
    );
  const provider: MigrationProvider = { getMigrations: async () => list };
  const migrator = new Migrator({ db, provider });
  const { error, results } = await (upTo === undefined
    ? migrator.migrateToLatest()
    : migrator.migrateTo(upTo));
  if (error) {
    const failed = results?.find((r) => r.status === 'Error');
    throw new Error(`database migration ${failed?.migrationName ?? ''} failed: ${String(error)}`);
  }
}
