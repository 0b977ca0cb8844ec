import { type Kysely, sql } from 'kysely';
import type { AccountsHost } from './accounts.ts';
import { valuesTable } from './batch.ts';
import { type PublicMember, RegistryError } from './rows.ts';
import type { Database } from './schema.ts';

/** "12.5" → 1250 hundredths; NaN when it is not a number of points with at most two decimals. */
export function parsePoints(s: string): number {
  if (!/^-?[0-9]{1,9}([.][0-9]{1,2})?$/.test(s.trim())) return Number.NaN;
  return Math.round(Number(s.trim()) * 100);
}

/**
 * Rows of member_torrents read per page of a bonus pass (one transaction when any is unpaid): on
 * SQLite a page holds the event loop while it runs, some 10-15 ms at 250 rows all unpaid.
 */
const PAGE = 250;

/** Where a bonus pass is in member_torrents: the key of the last row read. */
export interface BonusCursor {
  memberId: number;
  torrentId: number;
}

/** What the bonus shop sells, and the price of each (hundredths of a point; 0 = not sold). */
export interface ShopPrices {
  /** Per GiB of upload credit. */
  upload: number;
  invite: number;
  token: number;
}

export type ShopItem = 'upload' | 'invite' | 'token';

/**
 * Bonus points in the database (issue #16; the formula is src/policy/bonus.ts): the ledger
 * (balance = the sum of its rows), the scheduler's payments, the shop and staff's grants.
 * Nothing here changes what the tracker's policy reads, so no change bumps the revision; a
 * purchase still runs in `change()`, whose first statement takes the revision's lock: purchases
 * run one at a time, so two at once can never spend the same points.
 */
export class Bonus {
  #reg: AccountsHost;
  constructor(registry: AccountsHost) {
    this.#reg = registry;
  }

  get #k(): Kysely<Database> {
    return this.#reg.db.kysely;
  }

  /**
   * Pays one page of seeding time not yet paid, in one transaction: the next `PAGE` rows of
   * member_torrents after `after` (null: from the first) by key, and of those the ones with
   * seeding time not yet paid; a ledger row per member, at `rate` hundredths an hour per torrent
   * (pro rata, rounded down); a rate of 0 (bonus points off) marks the time paid and earns
   * nothing. `seeders` is given to `rate` only when `countSeeders` (the members seeding the
   * torrent now, as of the last accounting write). `next`: where the following page starts
   * (null: the pass is done).
   *
   * Pages go by key, not by "the first unpaid rows": that query scanned the table from its start
   * for every page, past the rows paid by the pages before (a pass over 200,000 unpaid rows held
   * the event loop 14.7 s on SQLite), and a page is bounded by the rows it reads, paid or not.
   */
  async payPage(
    rate: (t: { size: number; seeders: number; createdAt: number }) => number,
    countSeeders: boolean,
    now: number,
    after: BonusCursor | null,
  ): Promise<{ members: number; points: number; next: BonusCursor | null }> {
    return this.#k.transaction().execute(async (trx) => {
      let q = trx
        .selectFrom('member_torrents as mt')
        .innerJoin('torrents as t', 't.id', 'mt.torrent_id')
        .select([
          'mt.member_id',
          'mt.torrent_id',
          'mt.seed_time',
          'mt.bonus_seed_time',
          't.size',
          't.created_at',
        ])
        .orderBy('mt.member_id')
        .orderBy('mt.torrent_id')
        .limit(PAGE);
      if (after !== null)
        q = q.where(({ eb, refTuple, tuple }) =>
          eb(refTuple('mt.member_id', 'mt.torrent_id'), '>', tuple(after.memberId, after.torrentId)),
        );
      const page = await q.execute();
      const last = page.at(-1);
      const next =
        page.length < PAGE || last === undefined
          ? null
          : { memberId: last.member_id, torrentId: last.torrent_id };
      const rows = page.filter((r) => r.seed_time > r.bonus_seed_time);
      if (rows.length === 0) return { members: 0, points: 0, next };
      const seeders = new Map<number, number>();
      if (countSeeders) {
        const ids = [...new Set(rows.map((r) => r.torrent_id))];
        for (let i = 0; i < ids.length; i += 500) {
          const counts = await trx
            .selectFrom('member_torrents')
            .select(['torrent_id', (e) => e.fn.countAll().as('n')])
            .where('torrent_id', 'in', ids.slice(i, i + 500))
            .where('state', '=', 2)
            .groupBy('torrent_id')
            .execute();
          for (const c of counts) seeders.set(c.torrent_id, Number(c.n));
        }
      }
      // The paid seeding time moves only if no other pass moved it since it was read (another
      // instance's, at the same moment): the seconds are paid by the pass that moves them. One
      // UPDATE for the page's rows and one INSERT of its ledger rows (a round trip each on
      // PostgreSQL, where a statement per row cost a round trip per snatch).
      const dialect = this.#reg.db.dialect;
      const moved = await sql<{ member_id: number; torrent_id: number }>`update member_torrents
        set bonus_seed_time = v.seed
        from ${valuesTable(
          dialect,
          'v',
          [
            ['m', 'integer'],
            ['t', 'integer'],
            ['paid', 'bigint'],
            ['seed', 'bigint'],
          ],
          rows.map((r) => [r.member_id, r.torrent_id, r.bonus_seed_time, r.seed_time]),
        )}
        where member_torrents.member_id = v.m and member_torrents.torrent_id = v.t
          and member_torrents.bonus_seed_time = v.paid
        returning member_id, torrent_id`.execute(trx);
      const paid = new Set(moved.rows.map((r) => `${r.member_id}:${r.torrent_id}`));
      const perMember = new Map<number, { points: number; torrents: number }>();
      for (const r of rows) {
        if (!paid.has(`${r.member_id}:${r.torrent_id}`)) continue;
        const perHour = rate({
          size: r.size,
          seeders: seeders.get(r.torrent_id) ?? 1,
          createdAt: r.created_at,
        });
        const p = Math.floor(((r.seed_time - r.bonus_seed_time) * perHour) / 3600);
        const m = perMember.get(r.member_id) ?? { points: 0, torrents: 0 };
        m.points += p;
        m.torrents++;
        perMember.set(r.member_id, m);
      }
      let points = 0;
      const ledger = [];
      for (const [memberId, m] of perMember) {
        if (m.points === 0) continue;
        ledger.push({
          member_id: memberId,
          delta: m.points,
          reason: 'seeding',
          note: `${m.torrents} torrent${m.torrents === 1 ? '' : 's'}`,
          at: now,
          by_member: null,
        });
        points += m.points;
      }
      if (ledger.length > 0) await trx.insertInto('bonus_ledger').values(ledger).execute();
      return { members: ledger.length, points, next };
    });
  }

  /** A member's balance: the sum of the ledger. */
  balance(memberId: number): Promise<number> {
    return balanceIn(this.#k, memberId);
  }

  /** A member's ledger, newest first. */
  async ledger(memberId: number, limit = 50) {
    const rows = await this.#k
      .selectFrom('bonus_ledger')
      .select(['id', 'delta', 'reason', 'note', 'at', 'by_member'])
      .where('member_id', '=', memberId)
      .orderBy('id', 'desc')
      .limit(limit)
      .execute();
    return rows.map((r) => ({ ...r, delta: Number(r.delta) }));
  }

  /**
   * Buys `count` of an item for a member, in one transaction: refused (and nothing changes) when
   * the item is not sold or the balance is short; otherwise a ledger row of minus the price and
   * the item itself (upload credit in GiB, invites, freeleech tokens). Returns the new balance.
   */
  async buy(m: PublicMember, item: ShopItem, count: number, prices: ShopPrices, at: number): Promise<number> {
    const price = prices[item];
    if (price <= 0) throw new RegistryError(`the shop does not sell ${item}`);
    if (!Number.isInteger(count) || count < 1 || count > 1000) throw new RegistryError('count: 1 to 1000');
    const cost = price * count;
    return this.#reg.change(async (trx) => {
      const balance = await balanceIn(trx, m.id);
      if (balance < cost)
        throw new RegistryError(
          `not enough bonus points: ${(cost / 100).toFixed(2)} needed, ${(balance / 100).toFixed(2)} held`,
          409,
        );
      await trx
        .insertInto('bonus_ledger')
        .values({
          member_id: m.id,
          delta: -cost,
          reason: `shop:${item}`,
          note: `${count}`,
          at,
          by_member: null,
        })
        .execute();
      const q = trx.updateTable('members').where('id', '=', m.id);
      if (item === 'upload')
        await q.set((eb) => ({ uploaded: eb('uploaded', '+', count * 1024 ** 3) })).execute();
      else if (item === 'invite') await q.set((eb) => ({ invites: eb('invites', '+', count) })).execute();
      else await q.set((eb) => ({ freeleech_tokens: eb('freeleech_tokens', '+', count) })).execute();
      return balance - cost;
    });
  }

  /**
   * Staff give (or, negative, take) points, with a note. Returns the new balance. A take is
   * refused (409) beyond the balance, which never goes below 0: it runs in `change()`, as
   * purchases do, so a purchase at the same moment spends only what the take leaves.
   */
  async give(m: PublicMember, delta: number, opts: { note: string | null; by: number | null; at: number }) {
    if (!Number.isInteger(delta) || delta === 0 || Math.abs(delta) > 1e12)
      throw new RegistryError('points: a non-zero whole number of hundredths');
    return this.#reg.change(async (trx) => {
      const balance = await balanceIn(trx, m.id);
      if (balance + delta < 0)
        throw new RegistryError(
          `the member holds ${(balance / 100).toFixed(2)} points: at most that can be taken`,
          409,
        );
      await trx
        .insertInto('bonus_ledger')
        .values({ member_id: m.id, delta, reason: 'staff', note: opts.note, at: opts.at, by_member: opts.by })
        .execute();
      return balance + delta;
    });
  }
}

/** A member's balance (the sum of the ledger), read through `k` (a transaction's, or the pool). */
async function balanceIn(k: Kysely<Database>, memberId: number): Promise<number> {
  const r = await k
    .selectFrom('bonus_ledger')
    .select(sql<number>`coalesce(sum(delta), 0)`.as('b'))
    .where('member_id', '=', memberId)
    .executeTakeFirstOrThrow();
  return Number(r.b);
}
