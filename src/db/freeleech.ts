import type { Kysely } from 'kysely';
import type { AccountsHost } from './accounts.ts';
import { type PublicMember, RegistryError } from './rows.ts';
import type { Database } from './schema.ts';

/**
 * Personal freeleech in the database (issue #16): freeleech tokens spent on a torrent, and the
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
   * is already freeleech for them. Returns when it ends.
   */
  async spendToken(m: PublicMember, torrentId: number, days: number, at: number): Promise<number> {
    return this.#reg.change(async (trx) => {
      const t = await trx.selectFrom('torrents').select('id').where('id', '=', torrentId).executeTakeFirst();
      if (t === undefined) throw new RegistryError(`no torrent ${torrentId}`, 404);
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

  /** Windows that end after `after` (the policy snapshot; a member's page). */
  async windows(after: number, memberId?: number) {
    let q = this.#k
      .selectFrom('personal_freeleech')
      .select(['id', 'member_id', 'torrent_id', 'starts_at', 'ends_at', 'source'])
      .where('ends_at', '>', after);
    if (memberId !== undefined) q = q.where('member_id', '=', memberId);
    return q.orderBy('id').execute();
  }
}
