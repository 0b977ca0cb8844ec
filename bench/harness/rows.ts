import type { Insertable } from 'kysely';
import type { TorrentsTable } from '../../src/db/schema.ts';

/** A torrent row as a bench writes it straight into the database (no file, registered at 0). */
export function torrentRow(infoHash: string, name: string, size: number): Insertable<TorrentsTable> {
  return {
    info_hash: infoHash,
    info_hash_v2: null,
    name,
    size,
    file_count: 1,
    category: null,
    description: null,
    uploader_id: null,
    created_at: 0,
    download_factor: 100,
    upload_factor: 100,
    restricted: 0,
    snatches: 0,
    metainfo: null,
  };
}
