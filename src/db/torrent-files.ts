import type { Transaction } from 'kysely';
import {
  type AnnounceSlots,
  announceSlots,
  type Metainfo,
  type MetainfoFile,
  parseMetainfo,
} from '../protocol/metainfo/index.ts';
import type { Db } from './connect.ts';
import type { Database } from './schema.ts';

/** Files per row of `torrent_file_pages`, so per page of the torrent page's file list. */
export const FILES_PER_PAGE = 100;

/** What the torrent page shows of the file, read from its summary (never from the file itself). */
export interface TorrentContents {
  /** info.name (the magnet link's display name). */
  name: string;
  version: string;
  pieceLength: number;
  /** One page of the file list. */
  files: MetainfoFile[];
  pages: number;
}

/**
 * The .torrent files a tracker stores (`torrents.metainfo`) and what is read from them at upload:
 * the template of a member's personal copy (`template`) and the torrent page's file list, a page
 * at a time (`contents`). `Registry.files` is this object; `Registry.addTorrent` stores them.
 */
export class StoredTorrentFiles {
  readonly #db: Db;
  /** Summaries being computed for rows stored before 0003, so that concurrent views parse once. */
  #summarising = new Map<number, Promise<void>>();
  constructor(db: Db) {
    this.#db = db;
  }

  async file(id: number): Promise<Uint8Array | null> {
    const r = await this.#db.kysely
      .selectFrom('torrents')
      .select('metainfo')
      .where('id', '=', id)
      .executeTakeFirst();
    return r?.metainfo ?? null;
  }

  /**
   * The stored .torrent and where a personal copy differs from it (`withAnnounce`), or null when
   * no file is stored. Rows stored before 0003 get their slots now (a scan of the file's top-level
   * keys, no parse), kept for next time.
   */
  async template(id: number): Promise<{ bytes: Uint8Array; slots: AnnounceSlots } | null> {
    const r = await this.#db.kysely
      .selectFrom('torrents')
      .select(['metainfo', 'announce_slots'])
      .where('id', '=', id)
      .executeTakeFirst();
    if (!r?.metainfo) return null;
    if (r.announce_slots !== null) {
      const slots = r.announce_slots.split(',').map(Number);
      if (slots.length === 4 && slots.every(Number.isSafeInteger))
        return { bytes: r.metainfo, slots: slots as AnnounceSlots };
    }
    const slots = announceSlots(r.metainfo);
    if (slots === null) return null;
    // Derived from the file, not a policy change: no revision bump.
    await this.#db.kysely
      .updateTable('torrents')
      .set({ announce_slots: slots.join(',') })
      .where('id', '=', id)
      .execute();
    return { bytes: r.metainfo, slots };
  }

  /**
   * The torrent page's view of the file: info.name, version, piece length and one page (from 1)
   * of the file list, all from the summary stored at upload; null when there is none (no file
   * was stored). A row stored before 0003 is summarised on first use: its one parse, shared by
   * concurrent callers.
   */
  async contents(id: number, page: number): Promise<TorrentContents | null> {
    let r = await this.#contentsRow(id);
    if (r === undefined) return null;
    if (r.meta_version === null) {
      let job = this.#summarising.get(id);
      if (job === undefined) {
        job = this.#summarise(id).finally(() => this.#summarising.delete(id));
        this.#summarising.set(id, job);
      }
      await job;
      r = await this.#contentsRow(id);
      if (r?.meta_version == null) return null;
    }
    const p = await this.#db.kysely
      .selectFrom('torrent_file_pages')
      .select('files')
      .where('torrent_id', '=', id)
      .where('page', '=', page)
      .executeTakeFirst();
    const files = p
      ? (JSON.parse(p.files) as [string, number][]).map(([path, length]) => ({ path, length }))
      : [];
    return {
      name: r.meta_name ?? '',
      version: r.meta_version,
      pieceLength: Number(r.piece_length),
      files,
      pages: Math.ceil(r.file_count / FILES_PER_PAGE),
    };
  }

  #contentsRow(id: number) {
    return this.#db.kysely
      .selectFrom('torrents')
      .select(['meta_name', 'meta_version', 'piece_length', 'file_count'])
      .where('id', '=', id)
      .executeTakeFirst();
  }

  async #summarise(id: number): Promise<void> {
    const stored = await this.file(id);
    if (stored === null) return;
    // Accepted once already: no caps now, whatever they have become since.
    const parsed = parseMetainfo(stored, { maxBytes: Number.POSITIVE_INFINITY });
    if (!parsed.ok) return;
    await this.#db.kysely.transaction().execute(async (trx) => {
      await trx.deleteFrom('torrent_file_pages').where('torrent_id', '=', id).execute();
      await insertFilePages(trx, id, parsed.torrent.files);
      await trx
        .updateTable('torrents')
        .set({ ...summaryOf(parsed.torrent), file_count: parsed.torrent.files.length })
        .where('id', '=', id)
        .execute();
    });
  }
}

/** The columns `addTorrent` stores with a file (0003). */
export function summaryOf(m: Metainfo) {
  return {
    announce_slots: announceSlots(m.bytes)?.join(',') ?? null,
    meta_name: m.name,
    meta_version: m.version,
    piece_length: m.pieceLength,
  };
}

export async function insertFilePages(trx: Transaction<Database>, torrentId: number, files: MetainfoFile[]) {
  const rows = [];
  for (let i = 0; i < files.length; i += FILES_PER_PAGE)
    rows.push({
      torrent_id: torrentId,
      page: i / FILES_PER_PAGE + 1,
      files: JSON.stringify(files.slice(i, i + FILES_PER_PAGE).map((f) => [f.path, f.length])),
    });
  for (let i = 0; i < rows.length; i += 100)
    await trx
      .insertInto('torrent_file_pages')
      .values(rows.slice(i, i + 100))
      .execute();
}
