import type { Kysely } from 'kysely';
import type { ConnectableResult } from '../connectable/checker.ts';
import type { AccountsHost } from './accounts.ts';
import type { Database } from './schema.ts';

/** A torrent a member is seeding or leeching now, and whether its peer there is connectable. */
export interface TorrentNow {
  torrent_id: number;
  name: string;
  state: 'seeding' | 'leeching';
  /** 'unknown': not checked (the check is off, not done yet, skipped), or the result is too old. */
  connectable: 'yes' | 'no' | 'unknown';
  /** When it was checked (null when unknown). */
  checked_at: number | null;
}

/**
 * The connectable check's results in the database (issue #16): the last one per member and
 * torrent. Written in batches by the tracker (`ConnectableRecorder`); read by the profile, the
 * API and the CLI. `registry.connectable` is this object.
 */
export class Connectability {
  #reg: AccountsHost;
  constructor(registry: AccountsHost) {
    this.#reg = registry;
  }

  get #k(): Kysely<Database> {
    return this.#reg.db.kysely;
  }

  /**
   * Stores results in one transaction, the newest per member and torrent winning; rows of
   * members or torrents deleted meanwhile are left out.
   */
  async record(rows: readonly ConnectableResult[]): Promise<void> {
    if (rows.length === 0) return;
    await this.#k.transaction().execute(async (trx) => {
      const ids = async (table: 'members' | 'torrents', list: number[]) => {
        const found = new Set<number>();
        for (let i = 0; i < list.length; i += 500) {
          const part = list.slice(i, i + 500);
          for (const r of await trx.selectFrom(table).select('id').where('id', 'in', part).execute())
            found.add(r.id);
        }
        return found;
      };
      const members = await ids('members', [...new Set(rows.map((r) => r.memberId))]);
      const torrents = await ids('torrents', [...new Set(rows.map((r) => r.torrentId))]);
      for (const r of rows) {
        if (!members.has(r.memberId) || !torrents.has(r.torrentId)) continue;
        const values = { connectable: r.connectable ? 1 : 0, ip: r.ip, port: r.port, checked_at: r.at };
        await trx
          .insertInto('connectable')
          .values({ member_id: r.memberId, torrent_id: r.torrentId, ...values })
          .onConflict((oc) => oc.columns(['member_id', 'torrent_id']).doUpdateSet(values))
          .execute();
      }
    });
  }

  /**
   * The torrents a member is seeding or leeching now (as of the tracker's last accounting write:
   * the last announce was not `stopped` and came within `peerTimeout` seconds), each with its
   * connectable result if one is younger than `maxAge` seconds.
   */
  async torrentsNow(
    memberId: number,
    peerTimeout: number,
    maxAge: number,
    at: number,
  ): Promise<TorrentNow[]> {
    const rows = await this.#k
      .selectFrom('member_torrents as mt')
      .innerJoin('torrents as t', 't.id', 'mt.torrent_id')
      .leftJoin('connectable as c', (j) =>
        j.onRef('c.member_id', '=', 'mt.member_id').onRef('c.torrent_id', '=', 'mt.torrent_id'),
      )
      .select(['mt.torrent_id', 't.name', 'mt.state', 'c.connectable', 'c.checked_at'])
      .where('mt.member_id', '=', memberId)
      .where('mt.state', 'in', [1, 2])
      .where('mt.last_announce_at', '>=', at - peerTimeout)
      .orderBy('mt.last_announce_at', 'desc')
      .limit(1000)
      .execute();
    return rows.map((r) => {
      const fresh = r.checked_at !== null && r.checked_at >= at - maxAge;
      return {
        torrent_id: r.torrent_id,
        name: r.name,
        state: r.state === 2 ? 'seeding' : 'leeching',
        connectable: !fresh ? 'unknown' : r.connectable === 1 ? 'yes' : 'no',
        checked_at: fresh ? Number(r.checked_at) : null,
      };
    });
  }
}
