import type { Kysely } from 'kysely';
import { controlCharacters } from '../core/text.ts';
import type { AccountsHost } from './accounts.ts';
import { type PublicMember, RegistryError, rowId } from './rows.ts';
import type { Database } from './schema.ts';

/**
 * Personal freeleech in the database (issue #16): freeleech tokens spent on a torrent, staff's
 * windows over every torrent (optionally with an upload factor), staff's grants of tokens, and the
 * windows the policy snapshot loads (the accounting applies them, with no query per announce).
 * Changes bump the revision (`change()`), so running trackers apply them at their next reload.
 * `registry.freeleech` is this object.
 */
export class PersonalFreeleech {
  #reg: AccountsHost;
  constructor(registry: AccountsHost) {
    this.#reg = registry;
  }

  get #k(): Kysely<Database> {
    return this.#reg.db.kysely;
  }

  /**
   * Spends one of the member's freeleech tokens on a torrent: freeleech for them from `at` for
   * `days` days, in one transaction. Refused (nothing spent) without a token, or while the torrent
   * is already freeleech for them or for everyone (its download factor is 0, or it is featured).
   * Returns when it ends.
   */
  async spendToken(m: PublicMember, torrentId: number, days: number, at: number): Promise<number> {
    return this.#reg.change(async (trx) => {
      const t = await trx
        .selectFrom('torrents')
        .select(['id', 'download_factor'])
        .where('id', '=', rowId(torrentId))
        .executeTakeFirst();
      if (t === undefined) throw new RegistryError(`no torrent ${torrentId}`, 404);
      if (t.download_factor === 0)
        throw new RegistryError('this torrent is freeleech for everyone: a token would change nothing', 409);
      const featured = await trx
        .selectFrom('featured_torrents')
        .select('ends_at')
        .where('torrent_id', '=', torrentId)
        .where('starts_at', '<=', at)
        .where('ends_at', '>', at)
        .executeTakeFirst();
      if (featured !== undefined)
        throw new RegistryError(
          `this torrent is featured, freeleech for everyone until ${new Date(featured.ends_at * 1000).toISOString()}`,
          409,
        );
      const open = await trx
        .selectFrom('personal_freeleech')
        .select('ends_at')
        .where('member_id', '=', m.id)
        .where((eb) => eb.or([eb('torrent_id', '=', torrentId), eb('torrent_id', 'is', null)]))
        .where('starts_at', '<=', at)
        .where('ends_at', '>', at)
        .executeTakeFirst();
      if (open !== undefined)
        throw new RegistryError(
          `this torrent is already freeleech for you until ${new Date(open.ends_at * 1000).toISOString()}`,
          409,
        );
      const r = await trx
        .updateTable('members')
        .set((eb) => ({ freeleech_tokens: eb('freeleech_tokens', '-', 1) }))
        .where('id', '=', m.id)
        .where('freeleech_tokens', '>', 0)
        .executeTakeFirst();
      if (Number(r.numUpdatedRows) === 0) throw new RegistryError('no freeleech tokens left', 409);
      const ends = at + days * 86400;
      await trx
        .insertInto('personal_freeleech')
        .values({
          member_id: m.id,
          torrent_id: torrentId,
          starts_at: at,
          ends_at: ends,
          source: 'token',
          created_at: at,
          by_member: null,
        })
        .execute();
      return ends;
    });
  }

  /**
   * Windows that end after `after` (a member's page: `memberId`; the policy snapshot: `page`, by
   * id after `page.afterId`, at most `page.limit`).
   */
  async windows(after: number, memberId?: number, page?: { afterId: number; limit: number }) {
    let q = this.#k
      .selectFrom('personal_freeleech')
      .select(['id', 'member_id', 'torrent_id', 'starts_at', 'ends_at', 'source', 'upload_factor'])
      .where('ends_at', '>', after)
      .whereRef('ends_at', '>', 'starts_at');
    if (memberId !== undefined) q = q.where('member_id', '=', memberId);
    if (page !== undefined) q = q.where('id', '>', page.afterId).limit(page.limit);
    return q.orderBy('id').execute();
  }

  /**
   * Staff give a member personal freeleech on every torrent from `startsAt` to `endsAt`, uploads
   * counted by `uploadFactor` percent (100: as usual; 200: double). Returns the window.
   */
  async give(
    m: PublicMember,
    w: {
      startsAt: number;
      endsAt: number;
      uploadFactor: number;
      note: string | null;
      by: number | null;
      at: number;
    },
  ): Promise<FreeleechWindow> {
    checkWindow(w.startsAt, w.endsAt, w.uploadFactor);
    if (w.note !== null && (w.note.length > 200 || controlCharacters(w.note, false)))
      throw new RegistryError('note: at most 200 characters, no control characters');
    const id = await this.#reg.change(async (trx) => {
      const r = await trx
        .insertInto('personal_freeleech')
        .values({
          member_id: m.id,
          torrent_id: null,
          starts_at: w.startsAt,
          ends_at: w.endsAt,
          source: 'staff',
          created_at: w.at,
          by_member: w.by,
          upload_factor: w.uploadFactor,
          note: w.note,
        })
        .returning('id')
        .executeTakeFirstOrThrow();
      return r.id;
    });
    return this.one(id);
  }

  /**
   * Staff revoke a window: it ends now (or never begins), and stays listed as revoked. Refused
   * when it is over already.
   */
  async revoke(id: number, at: number): Promise<FreeleechWindow> {
    const w = await this.one(id);
    if (w.revoked_at !== null) throw new RegistryError(`window ${id} was revoked already`, 409);
    if (w.ends_at <= at) throw new RegistryError(`window ${id} is over already`, 409);
    await this.#reg.change((trx) =>
      trx
        .updateTable('personal_freeleech')
        .set({ ends_at: Math.max(w.starts_at, at), revoked_at: at })
        .where('id', '=', id)
        .execute(),
    );
    return this.one(id);
  }

  async one(id: number): Promise<FreeleechWindow> {
    const [w] = await this.#list().where('pf.id', '=', rowId(id)).execute();
    if (w === undefined) throw new RegistryError(`no freeleech window ${id}`, 404);
    return w;
  }

  /**
   * Windows (tokens' and staff's), newest first: a member's and/or those not over at `after`; with the member's and torrent's names, and who gave it.
   */
  async list(opts: { member?: number; after?: number; source?: 'token' | 'staff'; limit?: number }) {
    let q = this.#list();
    if (opts.member !== undefined) q = q.where('pf.member_id', '=', opts.member);
    // Not over yet: a window revoked before it began is over.
    if (opts.after !== undefined)
      q = q.where('pf.ends_at', '>', opts.after).whereRef('pf.ends_at', '>', 'pf.starts_at');
    if (opts.source !== undefined) q = q.where('pf.source', '=', opts.source);
    return q
      .orderBy('pf.id', 'desc')
      .limit(opts.limit ?? 200)
      .execute();
  }

  #list() {
    return this.#k
      .selectFrom('personal_freeleech as pf')
      .innerJoin('members as m', 'm.id', 'pf.member_id')
      .leftJoin('torrents as t', 't.id', 'pf.torrent_id')
      .leftJoin('members as b', 'b.id', 'pf.by_member')
      .select([
        'pf.id',
        'pf.member_id',
        'm.username',
        'pf.torrent_id',
        't.name as torrent_name',
        'pf.starts_at',
        'pf.ends_at',
        'pf.source',
        'pf.upload_factor',
        'pf.note',
        'pf.created_at',
        'pf.by_member',
        'b.username as by_username',
        'pf.revoked_at',
      ]);
  }

  /**
   * Staff give a member freeleech tokens (or, negative, take some: never below 0), recorded in the
   * bonus ledger as a row of 0 points (reason `staff:token`, the count in the note). Returns the
   * tokens the member holds.
   */
  async giveTokens(
    m: PublicMember,
    count: number,
    opts: { note: string | null; by: number | null; at: number },
  ) {
    if (!Number.isInteger(count) || count === 0 || Math.abs(count) > 10000)
      throw new RegistryError('tokens: a non-zero whole number, at most 10000');
    if (opts.note !== null && (opts.note.length > 200 || controlCharacters(opts.note, false)))
      throw new RegistryError('note: at most 200 characters, no control characters');
    return this.#reg.change(async (trx) => {
      const r = await trx
        .updateTable('members')
        .set((eb) => ({ freeleech_tokens: eb('freeleech_tokens', '+', count) }))
        .where('id', '=', m.id)
        .where('freeleech_tokens', '>=', -count)
        .executeTakeFirst();
      if (Number(r.numUpdatedRows) === 0)
        throw new RegistryError('the member holds fewer tokens than that', 409);
      await trx
        .insertInto('bonus_ledger')
        .values({
          member_id: m.id,
          delta: 0,
          reason: 'staff:token',
          note: `${count > 0 ? '+' : ''}${count}${opts.note !== null ? ` ${opts.note}` : ''}`,
          at: opts.at,
          by_member: opts.by,
        })
        .execute();
      const row = await trx
        .selectFrom('members')
        .select('freeleech_tokens')
        .where('id', '=', m.id)
        .executeTakeFirstOrThrow();
      return row.freeleech_tokens;
    });
  }
}

export type FreeleechWindow = Awaited<ReturnType<PersonalFreeleech['list']>>[number];

/** Longest promotion (a window, an event, a featured torrent): a year. */
export const MAX_PROMOTION_SECONDS = 366 * 86400;

/** A promotion's times and upload factor, or a RegistryError that says what is wrong. */
export function checkWindow(startsAt: number, endsAt: number, uploadFactor: number): void {
  if (!Number.isInteger(startsAt) || !Number.isInteger(endsAt) || startsAt < 0 || endsAt > 1e11)
    throw new RegistryError('start and end: unix seconds');
  if (endsAt <= startsAt) throw new RegistryError('the end must come after the start');
  if (endsAt - startsAt > MAX_PROMOTION_SECONDS) throw new RegistryError('at most 366 days long');
  if (!Number.isInteger(uploadFactor) || uploadFactor < 100 || uploadFactor > 1000)
    throw new RegistryError('upload factor: 100 to 1000 (percent)');
}
