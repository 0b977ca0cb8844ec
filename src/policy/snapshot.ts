import type { ClassDef } from './classes.ts';
import { Promotions } from './promotions.ts';
import { TorrentTable } from './torrent-table.ts';
import type { PolicyMember, PolicyTorrent } from './types.ts';

interface Grants {
  members: Map<number, number>; // member id -> expiry (unix s; 0 = never)
  groups: Map<number, number>;
}

/**
 * Everything policy reads, held in memory so that an announce never waits for the database:
 * loaded whole at start and again whenever the database `revision` moves (every change made
 * through `Registry` bumps it; `refresh()` polls it every `policy_refresh` seconds). Torrents
 * are found by the raw 20-byte info hash (`TorrentTable`); the allow and deny lists are keyed by
 * it as a latin1 string.
 */
export class PolicySnapshot {
  members = new Map<string, PolicyMember>();
  torrents = new TorrentTable();
  grants = new Map<number, Grants>();
  allow = new Set<string>();
  deny = new Set<string>();
  clientPrefixes: string[] = [];
  siteDownloadFactor = 100;
  siteUploadFactor = 100;
  /**
   * Member id → the member's class (issue #16): download slots and factors. Only with classes
   * configured (empty otherwise); keyed by id, so the worker that owns a torrent finds it for a
   * member whose announce another worker received.
   */
  classById = new Map<number, ClassDef>();
  /**
   * Promotions (issue #16): site-wide events, featured torrents and personal freeleech windows,
   * each with its start and end, judged at announce time (policy/promotions.ts).
   */
  promotions = new Promotions();
  /** Member id → member, and torrent id → torrent: what access was lost is judged by id. */
  memberById = new Map<number, PolicyMember>();
  torrentById = new Map<number, PolicyTorrent>();
  revision = -1;
}
