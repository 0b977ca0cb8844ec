/*
 * Promotions (issue #16) and how every factor combines into what one announce credits: pure
 * arithmetic over the policy snapshot, judged at the announce's own clock time, so an event, a
 * window or a featured torrent starts and ends to the second without waiting for a reload.
 *
 * The rule (README "Promotions"):
 * - Download: freeleech from any source wins over every download factor. A torrent at 0%, a site
 *   at 0%, a personal window (a token's or staff's), a site-wide freeleech event or a featured
 *   torrent: nothing is counted. Otherwise raw × torrent% × site% / 10,000, then × the class%.
 * - Upload: promotions do not stack. The largest of the torrent's own factor and every promotion
 *   in force (an event's, a staff window's, a featured torrent's) applies; a double-upload event
 *   on a featured torrent counts uploads double, not four times, and a torrent at 300% keeps
 *   300% under a 200% event. Then × the site% and × the class%, standing settings that multiply
 *   as they always have (with none of them set, the result is the byte count of before).
 * - Windows are [starts, ends): in force at `starts`, over at `ends`. The factors in force when
 *   the announce arrives apply to everything it reports since the peer's previous one.
 */

/** A site-wide event as the snapshot holds it (and the portal's banner shows it). */
export interface SiteEvent {
  id: number;
  name: string;
  startsAt: number;
  endsAt: number;
  freeleech: boolean;
  /** Percent of uploads counted (100: as usual). */
  uploadFactor: number;
}

/** Promotions in the snapshot: everything not over more than a day before it was loaded. */
export class Promotions {
  /** By start, then id. */
  events: SiteEvent[] = [];
  /** Torrent id → featured windows as [starts, ends, upload%] triples (always free). */
  featured = new Map<number, number[]>();
  /**
   * Personal freeleech: member id → torrent id (0: every torrent) → windows as [starts, ends,
   * upload%] triples (always free; a token's window counts uploads at 100%). Keyed by member id,
   * so the worker that owns a torrent finds it for a member whose announce another worker got.
   */
  personal = new Map<number, Map<number, number[]>>();

  /** Adds a personal window (loading). */
  addPersonal(memberId: number, torrentId: number | null, starts: number, ends: number, upload: number) {
    let byTorrent = this.personal.get(memberId);
    if (byTorrent === undefined) {
      byTorrent = new Map();
      this.personal.set(memberId, byTorrent);
    }
    push(byTorrent, torrentId ?? 0, starts, ends, upload);
  }

  /** Adds a featured window (loading). */
  addFeatured(torrentId: number, starts: number, ends: number, upload: number) {
    push(this.featured, torrentId, starts, ends, upload);
  }

  /** The event in force at `now`, else the next to start (the portal's banner); null: none. */
  current(now: number): SiteEvent | null {
    let next: SiteEvent | null = null;
    for (const e of this.events) {
      if (e.endsAt <= now) continue;
      if (e.startsAt <= now) return e;
      if (next === null || e.startsAt < next.startsAt) next = e;
    }
    return next;
  }
}

/** The largest upload factor of the [starts, ends, upload%] windows in force at `now`; 0: none is. */
function windowsAt(w: number[] | undefined, now: number): number {
  let best = 0;
  if (w !== undefined)
    for (let i = 0; i < w.length; i += 3)
      if (now >= w[i] && now < w[i + 1] && w[i + 2] > best) best = w[i + 2];
  return best;
}

function push(m: Map<number, number[]>, key: number, starts: number, ends: number, upload: number) {
  const w = m.get(key);
  if (w === undefined) m.set(key, [starts, ends, upload]);
  else w.push(starts, ends, upload);
}

/** What an announce is credited, in bytes (`credit` fills and returns `out`). */
export interface Credit {
  up: number;
  down: number;
}

/** The factors `credit` reads: percentages, as the snapshot holds them. */
export interface FactorSource {
  siteUploadFactor: number;
  siteDownloadFactor: number;
  promotions: Promotions;
}

/** The freeleech part of `promotionAt`'s answer (the rest is twice the largest upload factor; 0: none). */
const FREE = 1;

/**
 * Promotions in force for one member on one torrent at `now`: `upload% × 2 + free` (free: 1), where
 * upload% is the largest promotional upload factor (0 with none). One number, so the hot path
 * allocates nothing.
 */
export function promotionAt(p: Promotions, memberId: number, torrentId: number, now: number): number {
  let free = 0;
  let up = 0;
  const ev = p.events;
  for (let i = 0; i < ev.length; i++) {
    const e = ev[i];
    if (now < e.startsAt || now >= e.endsAt) continue;
    if (e.freeleech) free = FREE;
    if (e.uploadFactor > up) up = e.uploadFactor;
  }
  // Featured torrents and personal windows are always free; their factors are at least 100, so a
  // window in force gives a positive answer.
  let w = p.featured.size > 0 ? windowsAt(p.featured.get(torrentId), now) : 0;
  const byTorrent = p.personal.size > 0 ? p.personal.get(memberId) : undefined;
  if (byTorrent !== undefined)
    w = Math.max(w, windowsAt(byTorrent.get(torrentId), now), windowsAt(byTorrent.get(0), now));
  if (w > 0) {
    free = FREE;
    if (w > up) up = w;
  }
  return up * 2 + free;
}

/**
 * What `du` uploaded and `dd` downloaded bytes are credited (the rule at the top of this file).
 * `cls`: the member's class factors, or undefined.
 */
export function credit(
  s: FactorSource,
  memberId: number,
  torrent: { id: number; uploadFactor: number; downloadFactor: number },
  cls: { uploadFactor: number; downloadFactor: number } | undefined,
  du: number,
  dd: number,
  now: number,
  out: Credit,
): Credit {
  const promo = promotionAt(s.promotions, memberId, torrent.id, now);
  const boost = Math.floor(promo / 2);
  const upFactor = Math.max(boost, torrent.uploadFactor);
  let up = scale(du, upFactor * s.siteUploadFactor, 10000);
  let down = (promo & FREE) !== 0 ? 0 : scale(dd, torrent.downloadFactor * s.siteDownloadFactor, 10000);
  if (cls !== undefined) {
    if (cls.uploadFactor !== 100) up = scale(up, cls.uploadFactor, 100);
    if (cls.downloadFactor !== 100) down = scale(down, cls.downloadFactor, 100);
  }
  out.up = up;
  out.down = down;
  return out;
}

/**
 * floor(n × f / d) for a whole number of bytes `n`, exact whenever the answer is below 2^53: the
 * product n × f alone is not (a delta of a terabyte times 100% × 100% already loses bytes).
 */
function scale(n: number, f: number, d: number): number {
  if (f === d) return n;
  const r = n % d;
  return ((n - r) / d) * f + Math.floor((r * f) / d);
}
