import type { Kysely } from 'kysely';
import { controlCharacters } from '../core/text.ts';
import type { AccountsHost } from './accounts.ts';
import { checkWindow } from './freeleech.ts';
import { RegistryError, rowId } from './rows.ts';
import type { Database } from './schema.ts';

export interface EventInput {
  name: string;
  startsAt: number;
  endsAt: number;
  freeleech: boolean;
  /** Percent of uploads counted (100: as usual, 200: double upload). */
  uploadFactor: number;
}

const EVENT_COLUMNS = [
  'id',
  'name',
  'starts_at',
  'ends_at',
  'freeleech',
  'upload_factor',
  'created_at',
  'by_member',
  'cancelled_at',
] as const;

function checkEvent(e: EventInput): void {
  const name = e.name.trim();
  if (name.length === 0 || name.length > 100 || controlCharacters(name))
    throw new RegistryError('name: 1 to 100 characters, no control characters');
  checkWindow(e.startsAt, e.endsAt, e.uploadFactor);
  if (!e.freeleech && e.uploadFactor === 100)
    throw new RegistryError('an event is freeleech, or counts uploads more than 100%, or both');
}

/**
 * Site-wide events and featured torrents (issue #16) in the database. The policy snapshot loads
 * them whole with their start and end (the accounting judges them at each announce), so every
 * change bumps the revision. A cancelled event or an unfeatured torrent is kept, its end moved
 * to the moment of cancelling (or to its start, when it had not begun). `registry.promotions`.
 */
export class SitePromotions {
  #reg: AccountsHost;
  constructor(registry: AccountsHost) {
    this.#reg = registry;
  }

  get #k(): Kysely<Database> {
    return this.#reg.db.kysely;
  }

  /**
   * Events by start: those that end after `after` and are not empty (a cancelled event that had
   * not begun is), or with `all` every one of them (staff's list, cancelled ones included).
   */
  async events(opts: { after?: number; all?: boolean; limit?: number } = {}) {
    let q = this.#k.selectFrom('site_events').select(EVENT_COLUMNS);
    if (opts.after !== undefined) q = q.where('ends_at', '>', opts.after);
    if (opts.all !== true) q = q.whereRef('ends_at', '>', 'starts_at');
    return q
      .orderBy('starts_at')
      .orderBy('id')
      .limit(opts.limit ?? 1000)
      .execute();
  }

  async event(id: number) {
    const e = await this.#k
      .selectFrom('site_events')
      .select(EVENT_COLUMNS)
      .where('id', '=', rowId(id))
      .executeTakeFirst();
    if (e === undefined) throw new RegistryError(`no event ${id}`, 404);
    return e;
  }

  async addEvent(e: EventInput, by: number | null, at: number) {
    checkEvent(e);
    const id = await this.#reg.change(async (trx) => {
      const r = await trx
        .insertInto('site_events')
        .values({
          name: e.name.trim(),
          starts_at: e.startsAt,
          ends_at: e.endsAt,
          freeleech: e.freeleech ? 1 : 0,
          upload_factor: e.uploadFactor,
          created_at: at,
          by_member: by,
          cancelled_at: null,
        })
        .returning('id')
        .executeTakeFirstOrThrow();
      return r.id;
    });
    return this.event(id);
  }

  /** Changes an event that is not cancelled (any field; the rest stays). */
  async updateEvent(id: number, patch: Partial<EventInput>) {
    const old = await this.event(id);
    if (old.cancelled_at !== null) throw new RegistryError(`event ${id} was cancelled`, 409);
    const e: EventInput = {
      name: patch.name ?? old.name,
      startsAt: patch.startsAt ?? old.starts_at,
      endsAt: patch.endsAt ?? old.ends_at,
      freeleech: patch.freeleech ?? old.freeleech === 1,
      uploadFactor: patch.uploadFactor ?? old.upload_factor,
    };
    checkEvent(e);
    await this.#reg.change((trx) =>
      trx
        .updateTable('site_events')
        .set({
          name: e.name.trim(),
          starts_at: e.startsAt,
          ends_at: e.endsAt,
          freeleech: e.freeleech ? 1 : 0,
          upload_factor: e.uploadFactor,
        })
        .where('id', '=', id)
        .execute(),
    );
    return this.event(id);
  }

  /** Cancels an event: it ends at `at` (never begins, when it had not). Refused once it is over. */
  async cancelEvent(id: number, at: number) {
    const e = await this.event(id);
    if (e.cancelled_at !== null) throw new RegistryError(`event ${id} was cancelled already`, 409);
    if (e.ends_at <= at) throw new RegistryError(`event ${id} is over already`, 409);
    await this.#reg.change((trx) =>
      trx
        .updateTable('site_events')
        .set({ ends_at: Math.max(e.starts_at, at), cancelled_at: at })
        .where('id', '=', id)
        .execute(),
    );
    return this.event(id);
  }

  /** Featured windows that end after `after` (the policy snapshot). */
  async featuredWindows(after: number) {
    return this.#k
      .selectFrom('featured_torrents')
      .select(['torrent_id', 'starts_at', 'ends_at', 'upload_factor'])
      .where('ends_at', '>', after)
      .whereRef('ends_at', '>', 'starts_at')
      .orderBy('id')
      .execute();
  }

  /**
   * Featured torrents, newest first, with the torrent's name: those that end after `after` (the
   * portal's list: pass now), or every one.
   */
  async featured(opts: { after?: number; torrent?: number; limit?: number } = {}) {
    let q = this.#featured();
    if (opts.after !== undefined)
      q = q.where('f.ends_at', '>', opts.after).whereRef('f.ends_at', '>', 'f.starts_at');
    if (opts.torrent !== undefined) q = q.where('f.torrent_id', '=', opts.torrent);
    return q
      .orderBy('f.id', 'desc')
      .limit(opts.limit ?? 500)
      .execute();
  }

  async featuredOne(id: number) {
    const f = await this.#featured().where('f.id', '=', rowId(id)).executeTakeFirst();
    if (f === undefined) throw new RegistryError(`no featured torrent ${id}`, 404);
    return f;
  }

  #featured() {
    return this.#k
      .selectFrom('featured_torrents as f')
      .innerJoin('torrents as t', 't.id', 'f.torrent_id')
      .leftJoin('members as b', 'b.id', 'f.by_member')
      .select([
        'f.id',
        'f.torrent_id',
        't.name as torrent_name',
        't.restricted',
        'f.starts_at',
        'f.ends_at',
        'f.upload_factor',
        'f.created_at',
        'f.by_member',
        'b.username as by_username',
        'f.ended_at',
      ]);
  }

  /**
   * Features a torrent from `startsAt` to `endsAt`: free for everyone, uploads counted by
   * `uploadFactor` percent. Refused while it is featured already (unfeature it first).
   */
  async feature(
    torrentId: number,
    w: { startsAt: number; endsAt: number; uploadFactor: number },
    by: number | null,
    at: number,
  ) {
    checkWindow(w.startsAt, w.endsAt, w.uploadFactor);
    const id = await this.#reg.change(async (trx) => {
      const t = await trx
        .selectFrom('torrents')
        .select('id')
        .where('id', '=', rowId(torrentId))
        .executeTakeFirst();
      if (t === undefined) throw new RegistryError(`no torrent ${torrentId}`, 404);
      const open = await trx
        .selectFrom('featured_torrents')
        .select(['id', 'ends_at'])
        .where('torrent_id', '=', torrentId)
        .where('ends_at', '>', w.startsAt)
        .where('starts_at', '<', w.endsAt)
        .whereRef('ends_at', '>', 'starts_at')
        .executeTakeFirst();
      if (open !== undefined)
        throw new RegistryError(
          `this torrent is featured already until ${new Date(open.ends_at * 1000).toISOString()} (#${open.id})`,
          409,
        );
      const r = await trx
        .insertInto('featured_torrents')
        .values({
          torrent_id: torrentId,
          starts_at: w.startsAt,
          ends_at: w.endsAt,
          upload_factor: w.uploadFactor,
          created_at: at,
          by_member: by,
          ended_at: null,
        })
        .returning('id')
        .executeTakeFirstOrThrow();
      return r.id;
    });
    return this.featuredOne(id);
  }

  /** Ends a featured window now (or before it begins). Refused once it is over. */
  async unfeature(id: number, at: number) {
    const f = await this.featuredOne(id);
    if (f.ended_at !== null) throw new RegistryError(`featured torrent ${id} was ended already`, 409);
    if (f.ends_at <= at) throw new RegistryError(`featured torrent ${id} is over already`, 409);
    await this.#reg.change((trx) =>
      trx
        .updateTable('featured_torrents')
        .set({ ends_at: Math.max(f.starts_at, at), ended_at: at })
        .where('id', '=', id)
        .execute(),
    );
    return this.featuredOne(id);
  }
}
