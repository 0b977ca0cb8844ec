import { randomBytes } from 'node:crypto';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { ExpressionBuilder, Transaction } from 'kysely';
import { type Kysely, sql } from 'kysely';
import { AuthAttempts } from './attempts.ts';
import type { Db } from './connect.ts';
import {
  checkUsername,
  liveGrants,
  MEMBER_COLUMNS,
  memberRow,
  newKey,
  now,
  type PublicMember,
  RegistryError,
  rowId,
  sameName,
  TORRENT_COLUMNS,
} from './rows.ts';
import type { Database, MemberStatus, SiteHistoryTable } from './schema.ts';

/**
 * What Accounts needs from the Registry that owns it (declared here, so that accounts.ts does
 * not import registry.ts, which imports it).
 */
export interface AccountsHost {
  readonly db: Db;
  change<T>(fn: (trx: Transaction<Database>) => Promise<T>): Promise<T>;
  findMember(ref: string | number): Promise<PublicMember | undefined>;
  member(ref: string | number): Promise<PublicMember>;
  counts(): Promise<{ members: number; torrents: number }>;
}

/** The statement that ends the sessions expired at `at` (its plan is tested: sessions-expiry.test.ts). */
export function expiredSessions(k: Kysely<Database>, at: number) {
  return k.deleteFrom('sessions').where('expires_at', '<=', at);
}

/** What the portal's torrent list, search and feeds filter on. */
export interface BrowseFilter {
  search?: string;
  category?: string;
  /** Leave out the restricted torrents this member holds no live grant on. */
  grantedTo?: { memberId: number; at: number };
}

/**
 * Members per page of the portal's periodic passes (traffic records, earned invites), with a turn
 * of the event loop between pages.
 */
const MEMBER_PAGE = 1000;

/**
 * The portal's side of the database: passwords and sessions, registration and invitations,
 * applications, browsing, and the history behind its charts. Staff operations that the tracker's
 * policy reads (members, torrents, lists, grants) stay in `Registry`, whose `change()` bumps the
 * policy revision; `registry.accounts` is this object.
 */
export class Accounts {
  #reg: AccountsHost;
  /** The portal's guessing limits, shared by every process on this database. */
  readonly attempts: AuthAttempts;
  constructor(registry: AccountsHost) {
    this.#reg = registry;
    this.attempts = new AuthAttempts(registry.db);
  }

  get #k(): Kysely<Database> {
    return this.#reg.db.kysely;
  }

  // ---- portal: passwords, sessions (no revision bump: the tracker's policy does not read them) ----

  /**
   * The stored password hash and status of a member, by username (login), and whether the member
   * has logged in from `address` before (a key as `addressKey` makes it; see `rememberAddress`).
   */
  async credentials(username: string, address = '') {
    const r = await this.#k
      .selectFrom('members')
      .select(['id', 'username', 'password_hash', 'status', 'status_reason', 'totp_enabled_at'])
      .select((eb) =>
        eb
          .exists(
            eb
              .selectFrom('login_addresses')
              .select('login_addresses.member_id')
              .whereRef('login_addresses.member_id', '=', 'members.id')
              .where('login_addresses.address', '=', address),
          )
          .as('known'),
      )
      .where(sameName(username))
      .executeTakeFirst();
    // SQLite answers EXISTS with 0/1, PostgreSQL with a boolean.
    return r === undefined ? undefined : { ...r, known: Boolean(r.known) };
  }

  /** Records a successful login from `address`; a member keeps the 10 most recent addresses. */
  async rememberAddress(memberId: number, address: string, at: number): Promise<void> {
    await this.#k
      .insertInto('login_addresses')
      .values({ member_id: memberId, address, last_at: at })
      .onConflict((oc) => oc.columns(['member_id', 'address']).doUpdateSet({ last_at: at }))
      .execute();
    await this.#k
      .deleteFrom('login_addresses')
      .where('member_id', '=', memberId)
      .where(
        'address',
        'not in',
        this.#k
          .selectFrom('login_addresses')
          .select('address')
          .where('member_id', '=', memberId)
          .orderBy('last_at', 'desc')
          .orderBy('address')
          .limit(10),
      )
      .execute();
  }

  /**
   * Sets a member's password and voids the member's unused reset links, in one transaction: a link
   * made before the change (a mail someone else read, a link staff handed over) cannot set the
   * password back over the new one.
   */
  async setPasswordHash(memberId: number, hash: string): Promise<void> {
    await this.#k.transaction().execute(async (trx) => {
      await trx.updateTable('members').set({ password_hash: hash }).where('id', '=', memberId).execute();
      await voidResetLinks(trx, memberId, now());
    });
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
    /** The password was right; the second factor is still owed (not a login yet). */
    pending2fa?: boolean;
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
        pending_2fa: s.pending2fa ? 1 : 0,
      })
      .execute();
    if (!s.pending2fa)
      await this.#k
        .updateTable('members')
        .set({ last_login_at: now() })
        .where('id', '=', s.memberId)
        .execute();
  }

  /**
   * The session's member and CSRF token, if the session exists and has not expired; `pending`: it
   * still owes the second factor; `twoFactor`: the member has 2FA on.
   */
  async session(
    id: string,
    at: number,
  ): Promise<{ member: PublicMember; csrf: string; pending: boolean; twoFactor: boolean } | undefined> {
    const s = await this.#k
      .selectFrom('sessions')
      .innerJoin('members', 'members.id', 'sessions.member_id')
      .select(['sessions.member_id', 'sessions.csrf', 'sessions.expires_at', 'sessions.pending_2fa'])
      .select('members.totp_enabled_at')
      .where('sessions.id', '=', id)
      .executeTakeFirst();
    if (!s) return undefined;
    if (s.expires_at <= at) {
      await this.deleteSession(id);
      return undefined;
    }
    const member = await this.#reg.findMember(s.member_id);
    return member
      ? { member, csrf: s.csrf, pending: s.pending_2fa === 1, twoFactor: s.totp_enabled_at !== null }
      : undefined;
  }

  async deleteSession(id: string): Promise<void> {
    await this.#k.deleteFrom('sessions').where('id', '=', id).execute();
  }

  /** Ends every session of a member (ban, password change). */
  async deleteMemberSessions(memberId: number): Promise<void> {
    await this.#k.deleteFrom('sessions').where('member_id', '=', memberId).execute();
  }

  /** Ends every session of a member but one (`keep`, a session id): two-factor authentication turned on. */
  async deleteOtherSessions(memberId: number, keep: string): Promise<void> {
    await this.#k.deleteFrom('sessions').where('member_id', '=', memberId).where('id', '!=', keep).execute();
  }

  /** Ends the sessions expired at `at` (the portal's tick): found through `sessions_expires` (0018). */
  async deleteExpiredSessions(at: number): Promise<void> {
    await expiredSessions(this.#k, at).execute();
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
    const at = now();
    const id = await this.#reg.change(async (trx) => {
      // Read inside the transaction, which change() serialises: of two first registrations at
      // once, the second finds the first one's account.
      const first = (await trx.selectFrom('members').select('id').limit(1).executeTakeFirst()) === undefined;
      if (!first && opts.code === null && !opts.open)
        throw new RegistryError('registration needs an invitation', 403);
      const exists = await trx
        .selectFrom('members')
        .select('id')
        .where(sameName(username))
        .executeTakeFirst();
      if (exists) throw new RegistryError(`the name "${username}" is taken`, 409);
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
    return this.#reg.member(id);
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
      return insertInvitation(trx, opts);
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
    /** Member classes that earn another number (issue #16): class name → invites (null: the first class). */
    perClass?: Map<string | null, number>;
  }): Promise<number> {
    const perClass = rules.perClass ?? new Map<string | null, number>();
    const most = Math.max(rules.perPeriod, ...perClass.values());
    if (most <= 0 || rules.periodSeconds <= 0) return 0;
    const due = (eb: ExpressionBuilder<Database, 'members'>) =>
      eb.or([
        eb('invites_earned_at', 'is', null),
        eb('invites_earned_at', '<=', rules.at - rules.periodSeconds),
      ]);
    // Members a page at a time by id, each page decided and paid before the next is read, with a
    // turn of the event loop between (node:sqlite holds the loop for a whole statement).
    let earned = 0;
    for (let after = 0; ; ) {
      const candidates = await this.#k
        .selectFrom('members')
        .select(['id', 'uploaded', 'downloaded', 'class'])
        .where('id', '>', after)
        .where('status', '=', 'active')
        .where('created_at', '<=', rules.at - rules.minAgeSeconds)
        .where('uploaded', '>=', rules.minUploaded)
        .where(due)
        .orderBy('id')
        .limit(MEMBER_PAGE)
        .execute();
      // Members by the number they earn (their class's, or the site's).
      const byCount = new Map<number, number[]>();
      for (const m of candidates) {
        if (m.downloaded !== 0 && m.uploaded / m.downloaded < rules.minRatio) continue;
        const n = perClass.get(m.class) ?? rules.perPeriod;
        if (n <= 0) continue;
        const ids = byCount.get(n);
        if (ids === undefined) byCount.set(n, [m.id]);
        else ids.push(m.id);
      }
      // Each update gives only to members still due: another instance's timer (or this one's, once
      // more) that read the same candidates at the same moment finds them paid and gives nothing.
      for (const [n, ids] of byCount)
        for (let i = 0; i < ids.length; i += 500) {
          const r = await this.#k
            .updateTable('members')
            .set((eb) => ({ invites: eb('invites', '+', n), invites_earned_at: rules.at }))
            .where('id', 'in', ids.slice(i, i + 500))
            .where(due)
            .executeTakeFirst();
          earned += Number(r.numUpdatedRows);
        }
      if (candidates.length < MEMBER_PAGE) break;
      after = candidates[candidates.length - 1].id;
      await yieldToLoop();
    }
    return earned;
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

  async application(id: number) {
    return this.#k.selectFrom('applications').selectAll().where('id', '=', rowId(id)).executeTakeFirst();
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

  /**
   * Approve (issues an invitation for the applicant's e-mail) or reject (with a reason), in one
   * transaction. The decision is taken first, only while the application is pending: of two at
   * once (a double click, two staff, two instances) one takes effect and the others are refused,
   * so an application never yields two invitations, nor an invitation once rejected.
   */
  async decideApplication(opts: {
    id: number;
    staffId: number;
    approve: boolean;
    reason: string | null;
    ttlSeconds: number;
  }): Promise<{ code: string | null }> {
    return this.#k.transaction().execute(async (trx) => {
      const r = await trx
        .updateTable('applications')
        .set({
          status: opts.approve ? 'approved' : 'rejected',
          reason: opts.reason,
          decided_by: opts.staffId,
          decided_at: now(),
        })
        .where('id', '=', rowId(opts.id))
        .where('status', '=', 'pending')
        .executeTakeFirst();
      if (Number(r.numUpdatedRows) === 0) {
        const a = await trx
          .selectFrom('applications')
          .select('status')
          .where('id', '=', rowId(opts.id))
          .executeTakeFirst();
        if (!a) throw new RegistryError(`no application #${opts.id}`, 404);
        throw new RegistryError(`application #${opts.id} is already ${a.status}`, 409);
      }
      if (!opts.approve) return { code: null };
      const a = await trx
        .selectFrom('applications')
        .select('email')
        .where('id', '=', opts.id)
        .executeTakeFirstOrThrow();
      const inv = await insertInvitation(trx, {
        inviterId: opts.staffId,
        email: a.email,
        ttlSeconds: opts.ttlSeconds,
      });
      await trx
        .updateTable('applications')
        .set({ invitation_id: inv.id })
        .where('id', '=', opts.id)
        .execute();
      return { code: inv.code };
    });
  }

  // ---- portal: browsing and history ----

  /** The torrents that match a browse filter (name words, category, what a member may see). */
  #browsed(opts: BrowseFilter) {
    let q = this.#k.selectFrom('torrents');
    const g = opts.grantedTo;
    if (g)
      q = q.where((eb) =>
        eb.or([eb('restricted', '=', 0), eb('id', 'in', liveGrants(this.#k, g.memberId, g.at))]),
      );
    if (opts.search) {
      for (const word of opts.search
        .split(/\s+/)
        .filter((w) => w.length > 0)
        .slice(0, 8))
        q = q.where(sql`lower(name)`, 'like', `%${word.toLowerCase().replace(/[%_\\]/g, '')}%`);
    }
    if (opts.category) q = q.where('category', '=', opts.category);
    return q;
  }

  /**
   * Torrents for browse, search and feeds: newest first, or by `sort` (name, size, snatches or
   * age; `dir`, ties by id), `offset` and `limit` (default 5,000). `grantedTo`: leave out the
   * restricted torrents that member holds no live grant on (`hide_restricted`, and every RSS feed).
   * The order is the database's, so a page of a sorted list is the right one on a site of any size
   * (the portal once sorted the newest 5,000 and showed nothing older).
   */
  browseTorrents(
    opts: BrowseFilter & {
      limit?: number;
      offset?: number;
      sort?: 'name' | 'size' | 'snatches' | 'age';
      dir?: 'asc' | 'desc';
    },
  ) {
    let q = this.#browsed(opts).select(TORRENT_COLUMNS);
    const dir = opts.dir ?? 'desc';
    // Ties: by id, the other way (as the page always broke them).
    const tie = dir === 'asc' ? 'desc' : 'asc';
    if (opts.sort === 'name') q = q.orderBy(sql`lower(name)`, dir).orderBy('id', tie);
    else if (opts.sort === 'size' || opts.sort === 'snatches')
      q = q.orderBy(opts.sort, dir).orderBy('id', tie);
    else if (opts.sort === 'age') q = q.orderBy('created_at', dir).orderBy('id', dir);
    else q = q.orderBy('id', 'desc');
    return q
      .limit(opts.limit ?? 5000)
      .offset(opts.offset ?? 0)
      .execute();
  }

  /** How many torrents match a browse filter. */
  async countTorrents(opts: BrowseFilter): Promise<number> {
    const r = await this.#browsed(opts)
      .select((eb) => eb.fn.countAll().as('n'))
      .executeTakeFirstOrThrow();
    return Number(r.n);
  }

  /**
   * The ids and info hashes of every torrent that matches a browse filter, by id after `afterId`,
   * at most `limit` (the portal's sort by live counts reads them a page at a time).
   */
  browseKeys(opts: BrowseFilter, afterId: number, limit: number) {
    return this.#browsed(opts)
      .select(['id', 'info_hash', 'info_hash_v2'])
      .where('id', '>', afterId)
      .orderBy('id')
      .limit(limit)
      .execute();
  }

  /** Torrents by id, in no order (a page of the portal's sort by live counts). */
  torrentsById(ids: readonly number[]) {
    if (ids.length === 0) return Promise.resolve([]);
    return this.#k.selectFrom('torrents').select(TORRENT_COLUMNS).where('id', 'in', ids).execute();
  }

  /**
   * Records every member's credited totals that changed since their last record, at most one
   * record per member per `minGap` seconds (an active site would otherwise add a row per member
   * per tick); records older than `keepSeconds` are dropped.
   *
   * A page of `MEMBER_PAGE` members at a time, with a turn of the event loop between pages: each
   * member's last record is found through the (member_id, at) key, and old records are deleted
   * member by member the same way. The whole-table `GROUP BY member_id` and `DELETE ... WHERE at <`
   * this replaced read every record kept (400 days of hourly ones) at every tick, in one statement:
   * 0.6 s of the event loop with 200 hours of history for 10,000 members (docs/benchmarks.md).
   */
  async snapshotTraffic(at: number, minGap = 3600, keepSeconds = 400 * 86400): Promise<number> {
    let written = 0;
    for (let after = 0; ; ) {
      const page = await sql<{
        id: number;
        uploaded: number;
        downloaded: number;
        last_at: number | null;
        last_up: number | null;
        last_down: number | null;
      }>`SELECT m.id, m.uploaded, m.downloaded, t.at AS last_at, t.uploaded AS last_up, t.downloaded AS last_down
        FROM members m LEFT JOIN traffic_history t ON t.member_id = m.id
          AND t.at = (SELECT MAX(l.at) FROM traffic_history l WHERE l.member_id = m.id)
        WHERE m.id > ${after} ORDER BY m.id LIMIT ${MEMBER_PAGE}`.execute(this.#k);
      const members = page.rows;
      const rows = members
        .filter((m) => {
          if (m.last_at === null) return true;
          if (Number(m.last_at) > at - minGap) return false;
          return Number(m.last_up) !== Number(m.uploaded) || Number(m.last_down) !== Number(m.downloaded);
        })
        .map((m) => ({
          member_id: Number(m.id),
          at,
          uploaded: Number(m.uploaded),
          downloaded: Number(m.downloaded),
        }));
      for (let i = 0; i < rows.length; i += 500)
        await this.#k
          .insertInto('traffic_history')
          .values(rows.slice(i, i + 500))
          .onConflict((oc) => oc.columns(['member_id', 'at']).doNothing())
          .execute();
      written += rows.length;
      const ids = members.map((m) => Number(m.id));
      for (let i = 0; i < ids.length; i += 500)
        await this.#k
          .deleteFrom('traffic_history')
          .where('member_id', 'in', ids.slice(i, i + 500))
          .where('at', '<', at - keepSeconds)
          .execute();
      if (members.length < MEMBER_PAGE) break;
      after = Number(members[members.length - 1].id);
      await yieldToLoop();
    }
    await this.#k
      .deleteFrom('site_history')
      .where('at', '<', at - keepSeconds)
      .execute();
    return written;
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
    const c = await this.#reg.counts();
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

  // ---- portal: password resets and two-factor authentication (0012; see web/portal/two-factor.ts) ----

  /** Active members whose e-mail address is `email` (any case); a few at most. */
  membersByEmail(email: string) {
    return this.#k
      .selectFrom('members')
      .select(MEMBER_COLUMNS)
      .where(sql`lower(email)`, '=', email.toLowerCase())
      .where('status', '=', 'active')
      .orderBy('id')
      .limit(5)
      .execute();
  }

  /** Stores a reset link's token hash; `by`: the staff member who made it. */
  async createPasswordReset(r: {
    memberId: number;
    tokenHash: string;
    expiresAt: number;
    by: number | null;
  }) {
    await this.#k
      .insertInto('password_resets')
      .values({
        token_hash: r.tokenHash,
        member_id: r.memberId,
        created_at: now(),
        expires_at: r.expiresAt,
        used_at: null,
        by_member: r.by,
      })
      .execute();
  }

  /** The member a reset link is for, if it is unused and unexpired at `at`. */
  async passwordReset(tokenHash: string, at: number): Promise<PublicMember | undefined> {
    const r = await this.#k
      .selectFrom('password_resets')
      .select(['member_id'])
      .where('token_hash', '=', tokenHash)
      .where('used_at', 'is', null)
      .where('expires_at', '>', at)
      .executeTakeFirst();
    if (!r) return undefined;
    const m = await this.#reg.findMember(r.member_id);
    return m?.status === 'active' ? m : undefined;
  }

  /**
   * Uses a reset link: once, before it expires. Sets the password, ends every session of the
   * member and voids the member's other links, in one transaction. The member's id, or null.
   */
  async usePasswordReset(tokenHash: string, at: number, passwordHash: string): Promise<number | null> {
    return this.#k.transaction().execute(async (trx) => {
      const r = await trx
        .selectFrom('password_resets')
        .select(['id', 'member_id'])
        .where('token_hash', '=', tokenHash)
        .where('used_at', 'is', null)
        .where('expires_at', '>', at)
        .executeTakeFirst();
      if (!r) return null;
      const u = await trx
        .updateTable('password_resets')
        .set({ used_at: at })
        .where('id', '=', r.id)
        .where('used_at', 'is', null)
        .executeTakeFirst();
      if (Number(u.numUpdatedRows) !== 1) return null;
      await voidResetLinks(trx, r.member_id, at);
      await trx
        .updateTable('members')
        .set({ password_hash: passwordHash })
        .where('id', '=', r.member_id)
        .execute();
      await trx.deleteFrom('sessions').where('member_id', '=', r.member_id).execute();
      return r.member_id;
    });
  }

  /** A member's TOTP state: the stored (sealed) secret, when 2FA was turned on, the last step used. */
  async twoFactor(memberId: number) {
    const r = await this.#k
      .selectFrom('members')
      .select(['totp_secret', 'totp_enabled_at', 'totp_last_step'])
      .where('id', '=', memberId)
      .executeTakeFirst();
    const left = await this.#k
      .selectFrom('recovery_codes')
      .select((eb) => eb.fn.countAll().as('n'))
      .where('member_id', '=', memberId)
      .where('used_at', 'is', null)
      .executeTakeFirstOrThrow();
    return {
      secret: r?.totp_secret ?? null,
      enabledAt: r?.totp_enabled_at ?? null,
      lastStep: r?.totp_last_step === null || r === undefined ? null : Number(r.totp_last_step),
      recoveryLeft: Number(left.n),
    };
  }

  /** Enrolment, step one: a new secret, not in force until confirmed (`enableTwoFactor`). */
  async setTotpSecret(memberId: number, sealed: string): Promise<void> {
    await this.#k
      .updateTable('members')
      .set({ totp_secret: sealed })
      .where('id', '=', memberId)
      .where('totp_enabled_at', 'is', null)
      .execute();
  }

  /** Enrolment confirmed by a code of `step`: 2FA on, with fresh recovery codes (their hashes). */
  async enableTwoFactor(memberId: number, at: number, step: number, recoveryHashes: string[]) {
    await this.#k.transaction().execute(async (trx) => {
      await trx
        .updateTable('members')
        .set({ totp_enabled_at: at, totp_last_step: step })
        .where('id', '=', memberId)
        .execute();
      await trx.deleteFrom('recovery_codes').where('member_id', '=', memberId).execute();
      await trx
        .insertInto('recovery_codes')
        .values(recoveryHashes.map((h) => ({ member_id: memberId, code_hash: h, used_at: null })))
        .execute();
    });
  }

  /**
   * Records that a code of `step` was accepted; false when a code of this step or a later one was
   * accepted already (the same code twice, perhaps at once: the update is conditional).
   */
  async acceptTotpStep(memberId: number, step: number): Promise<boolean> {
    const u = await this.#k
      .updateTable('members')
      .set({ totp_last_step: step })
      .where('id', '=', memberId)
      .where((eb) => eb.or([eb('totp_last_step', 'is', null), eb('totp_last_step', '<', step)]))
      .executeTakeFirst();
    return Number(u.numUpdatedRows) === 1;
  }

  /** Uses a recovery code (its hash) once; false when unknown or used. */
  async useRecoveryCode(memberId: number, hash: string, at: number): Promise<boolean> {
    const u = await this.#k
      .updateTable('recovery_codes')
      .set({ used_at: at })
      .where('member_id', '=', memberId)
      .where('code_hash', '=', hash)
      .where('used_at', 'is', null)
      .executeTakeFirst();
    return Number(u.numUpdatedRows) === 1;
  }

  /** 2FA off (the member with a code, or staff's reset): secret and recovery codes gone. */
  async disableTwoFactor(memberId: number): Promise<void> {
    await this.#k.transaction().execute(async (trx) => {
      await trx
        .updateTable('members')
        .set({ totp_secret: null, totp_enabled_at: null, totp_last_step: null })
        .where('id', '=', memberId)
        .execute();
      await trx.deleteFrom('recovery_codes').where('member_id', '=', memberId).execute();
    });
  }

  // ---- account mail: what the notices have mailed so far (settings rows, no revision bump) ----

  /** A notices watermark (null: never set). */
  async noticeMark(key: NoticeMark): Promise<number | null> {
    const r = await this.#k.selectFrom('settings').select('value').where('key', '=', key).executeTakeFirst();
    return r === undefined ? null : Number(r.value);
  }

  async setNoticeMark(key: NoticeMark, value: number): Promise<void> {
    await this.#k.transaction().execute(async (trx) => {
      await trx.deleteFrom('settings').where('key', '=', key).execute();
      await trx
        .insertInto('settings')
        .values({ key, value: String(value) })
        .execute();
    });
  }

  /**
   * Members warned by ratio watch after the one warned at `at` with id `afterId` (oldest warning
   * first, then by id), `limit` at most; `afterId` null: after `at`. One ratio-watch run warns
   * every member at the same time, so the time alone cannot say where a batch stopped.
   */
  ratioWarnedAfter(at: number, afterId: number | null, limit: number) {
    return this.#k
      .selectFrom('members')
      .select(['id', 'username', 'email', 'uploaded', 'downloaded', 'ratio_warned_at'])
      .where((eb) =>
        afterId === null
          ? eb('ratio_warned_at', '>', at)
          : eb.or([
              eb('ratio_warned_at', '>', at),
              eb.and([eb('ratio_warned_at', '=', at), eb('id', '>', afterId)]),
            ]),
      )
      .orderBy('ratio_warned_at')
      .orderBy('id')
      .limit(limit)
      .execute();
  }

  /** The latest ratio warning's time (0 when none). */
  async lastRatioWarning(): Promise<number> {
    const r = await this.#k
      .selectFrom('members')
      .select((eb) => eb.fn.max('ratio_warned_at').as('at'))
      .executeTakeFirst();
    return Number(r?.at ?? 0);
  }

  /** Hit-and-runs marked after the one with id `afterId` (still active), `limit` at most. */
  hitAndRunsAfter(afterId: number, limit: number) {
    return this.#k
      .selectFrom('hit_and_runs as h')
      .innerJoin('members as m', 'm.id', 'h.member_id')
      .innerJoin('torrents as t', 't.id', 'h.torrent_id')
      .select(['h.id', 'h.status', 'm.username', 'm.email', 't.id as torrent_id', 't.name as torrent'])
      .where('h.id', '>', afterId)
      .orderBy('h.id')
      .limit(limit)
      .execute();
  }

  /** The newest hit-and-run's id (0 when none). */
  async lastHitAndRun(): Promise<number> {
    const r = await this.#k
      .selectFrom('hit_and_runs')
      .select((eb) => eb.fn.max('id').as('id'))
      .executeTakeFirst();
    return Number(r?.id ?? 0);
  }
}

/** The account-mail notices' watermarks (settings rows). */
type NoticeMark = 'mail_notice_ratio_at' | 'mail_notice_ratio_id' | 'mail_notice_hnr_id';

/** Inserts a new invitation (its code: the secret in the link) in `trx`. */
async function insertInvitation(
  trx: Transaction<Database>,
  opts: { inviterId: number | null; email: string | null; ttlSeconds: number },
): Promise<{ id: number; code: string; expires_at: number }> {
  const code = randomBytes(18).toString('base64url');
  const at = now();
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
}

/** Marks every unused reset link of a member used (at `at`). */
export async function voidResetLinks(
  trx: Transaction<Database>,
  memberId: number,
  at: number,
): Promise<void> {
  await trx
    .updateTable('password_resets')
    .set({ used_at: at })
    .where('member_id', '=', memberId)
    .where('used_at', 'is', null)
    .execute();
}
