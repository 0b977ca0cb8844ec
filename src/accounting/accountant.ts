import type { Transaction } from 'kysely';
import { binaryString } from '../core/bytes.ts';
import type { Clock } from '../core/clock.ts';
import type { Logger } from '../core/log.ts';
import { AnnounceEvent, type AnnounceRequest } from '../core/types.ts';
import type { Registry } from '../db/registry.ts';
import type { Database } from '../db/schema.ts';
import type { PolicyMember, PolicySnapshot, PolicyTorrent } from '../policy/policy.ts';

/** A graceful stop tries this many times to write what is pending, waiting 0.2 s, 0.4 s... between. */
const STOP_ATTEMPTS = 5;
const STOP_RETRY_MS = 200;

/** What the accountant remembers of one peer (member × torrent × peer id) between announces. */
interface PeerState {
  uploaded: number;
  downloaded: number;
  at: number;
  seeding: boolean;
}

interface MemberPending {
  uploaded: number;
  downloaded: number;
  rawUploaded: number;
  rawDownloaded: number;
  seedTime: number;
  lastAt: number;
}

interface MemberTorrentPending extends MemberPending {
  memberId: number;
  torrentId: number;
  announces: number;
  completedAt: number; // 0 = not completed in this batch
  firstAt: number;
}

interface Flag {
  memberId: number;
  torrentId: number;
  peerId: string;
  kind: string;
  uploaded: number;
  downloaded: number;
  seconds: number;
  at: number;
}

export interface AccountantOptions {
  logger: Logger;
  clock: Clock;
  /** Policy snapshot getter (site-wide factors). */
  snapshot: () => PolicySnapshot;
  /** Seconds between flushes: the most a crash can lose. */
  flushInterval: number;
  /** Bytes per second above which a delta is flagged and not credited (0 = no limit). */
  maxRate: number;
  /** A gap longer than this between two announces does not count as seeding time. */
  peerTimeout: number;
}

/**
 * Private-mode accounting (DESIGN.md "accounting"). Per announce, synchronously and without I/O:
 * the delta of `uploaded`/`downloaded` since the same peer's previous announce, credited with the
 * torrent's and the site's factors, seeding time, snatches. Deltas add up in memory and are
 * written by `flush()` in one transaction per interval, never one write per announce.
 *
 * What a crash can lose: the deltas since the last flush (at most `flushInterval` seconds), and
 * the per-peer baselines (the first announce of each peer after a restart credits nothing).
 */
export class Accountant {
  #o: AccountantOptions;
  #reg: Registry | null = null;
  #peers = new Map<string, PeerState>();
  #members = new Map<number, MemberPending>();
  #memberTorrents = new Map<string, MemberTorrentPending>();
  #flags: Flag[] = [];
  #timer: NodeJS.Timeout | null = null;
  #flushing: Promise<void> | null = null;
  /** Counters for /stats and tests. */
  readonly counts = { flushes: 0, flushErrors: 0, flagged: 0, credited: 0, dropped: 0 };

  constructor(opts: AccountantOptions) {
    this.#o = opts;
  }

  /** Attaches the database (opened by `Tracker.start`). */
  connect(registry: Registry): void {
    this.#reg = registry;
  }

  /** One announce that policy has accepted. */
  account(req: AnnounceRequest, member: PolicyMember, torrent: PolicyTorrent, now: number): void {
    const peerId = binaryString(req.peerId);
    const key = `${torrent.id}:${member.id}:${peerId}`;
    const prev = this.#peers.get(key);
    const seeding = req.left === 0;
    const wasLeeching = prev !== undefined && !prev.seeding;
    let du = 0;
    let dd = 0;
    let seed = 0;
    if (prev !== undefined && req.event !== AnnounceEvent.started) {
      du = req.uploaded - prev.uploaded;
      dd = req.downloaded - prev.downloaded;
      // Counters that went backwards were reset by the client (a restart without `started`):
      // the new values are the new baseline, nothing is credited or debited.
      if (du < 0) du = 0;
      if (dd < 0) dd = 0;
      const elapsed = Math.max(1, now - prev.at);
      if (prev.seeding && elapsed <= this.#o.peerTimeout) seed = now - prev.at;
      const max = this.#o.maxRate;
      if (max > 0 && (du > max * elapsed || dd > max * elapsed)) {
        // Faster than any real link: recorded for staff, not credited.
        this.#flags.push({
          memberId: member.id,
          torrentId: torrent.id,
          peerId: Buffer.from(req.peerId).toString('hex'),
          kind: 'rate',
          uploaded: du,
          downloaded: dd,
          seconds: elapsed,
          at: now,
        });
        this.counts.flagged++;
        du = 0;
        dd = 0;
      }
    }
    if (req.event === AnnounceEvent.stopped) this.#peers.delete(key);
    else if (prev === undefined)
      this.#peers.set(key, { uploaded: req.uploaded, downloaded: req.downloaded, at: now, seeding });
    else {
      prev.uploaded = req.uploaded;
      prev.downloaded = req.downloaded;
      prev.at = now;
      prev.seeding = seeding;
    }

    const snap = this.#o.snapshot();
    // Factors are percentages: credited = raw × torrent% × site% / 10000.
    const up = Math.floor((du * torrent.uploadFactor * snap.siteUploadFactor) / 10000);
    const down = Math.floor((dd * torrent.downloadFactor * snap.siteDownloadFactor) / 10000);
    if (du > 0 || dd > 0) this.counts.credited++;

    let m = this.#members.get(member.id);
    if (m === undefined) {
      m = { uploaded: 0, downloaded: 0, rawUploaded: 0, rawDownloaded: 0, seedTime: 0, lastAt: now };
      this.#members.set(member.id, m);
    }
    addTraffic(m, up, down, du, dd, seed);
    m.lastAt = now;

    const mtKey = `${member.id}:${torrent.id}`;
    let mt = this.#memberTorrents.get(mtKey);
    if (mt === undefined) {
      mt = {
        memberId: member.id,
        torrentId: torrent.id,
        uploaded: 0,
        downloaded: 0,
        rawUploaded: 0,
        rawDownloaded: 0,
        seedTime: 0,
        lastAt: now,
        announces: 0,
        completedAt: 0,
        firstAt: now,
      };
      this.#memberTorrents.set(mtKey, mt);
    }
    addTraffic(mt, up, down, du, dd, seed);
    mt.announces++;
    mt.lastAt = now;
    // A snatch: the client says `completed`, or a peer seen leeching now reports nothing left
    // (some clients, aria2 with --seed-time=0 among them, only send `stopped` with left=0).
    const finished = req.event === AnnounceEvent.completed || (wasLeeching && seeding);
    if (finished && mt.completedAt === 0) mt.completedAt = now;
  }

  /** Pending member-torrent rows (tests and /stats). */
  get pending(): number {
    return this.#memberTorrents.size;
  }

  start(): void {
    this.#timer = setInterval(() => void this.flush(), this.#o.flushInterval * 1000);
    this.#timer.unref();
  }

  /**
   * Stops the timer and writes everything pending (graceful shutdown). A failed write is tried
   * again a few times, a little later each time (a lock held by the CLI or a backup, a database
   * restarting); after that what could not be written is logged, with its totals, and lost.
   */
  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    for (let attempt = 1; ; attempt++) {
      await this.flush();
      if (this.#members.size === 0 && this.#memberTorrents.size === 0 && this.#flags.length === 0) return;
      if (attempt === STOP_ATTEMPTS) break;
      await new Promise((resolve) => setTimeout(resolve, STOP_RETRY_MS * attempt));
    }
    let uploaded = 0;
    let downloaded = 0;
    for (const m of this.#members.values()) {
      uploaded += m.uploaded;
      downloaded += m.downloaded;
    }
    this.#o.logger.error('accounting: pending credit lost at stop (the database refused every write)', {
      members: this.#members.size,
      rows: this.#memberTorrents.size,
      flags: this.#flags.length,
      uploaded,
      downloaded,
    });
  }

  /**
   * Writes what has accumulated in one transaction. On failure the batch is merged back and
   * retried at the next flush: nothing is lost while the process lives.
   */
  flush(): Promise<void> {
    if (this.#flushing !== null) return this.#flushing.then(() => this.flush());
    const p = this.#flushOnce().finally(() => {
      this.#flushing = null;
    });
    this.#flushing = p;
    return p;
  }

  async #flushOnce(): Promise<void> {
    this.#expireBaselines();
    if (this.#members.size === 0 && this.#memberTorrents.size === 0 && this.#flags.length === 0) return;
    const members = this.#members;
    const memberTorrents = this.#memberTorrents;
    const flags = this.#flags;
    this.#members = new Map();
    this.#memberTorrents = new Map();
    this.#flags = [];
    try {
      await this.#write(members, memberTorrents, flags);
      this.counts.flushes++;
    } catch (err) {
      this.counts.flushErrors++;
      this.#o.logger.error('accounting flush failed; will retry', { err: String(err) });
      this.#mergeBack(members, memberTorrents, flags);
    }
  }

  async #write(
    members: Map<number, MemberPending>,
    memberTorrents: Map<string, MemberTorrentPending>,
    flags: Flag[],
  ): Promise<void> {
    const reg = this.#reg;
    if (reg === null) throw new Error('accountant: no database connected');
    const dropped = await reg.db.kysely.transaction().execute(async (trx) => {
      for (const [id, m] of members) {
        await trx
          .updateTable('members')
          .set((eb) => ({
            uploaded: eb('uploaded', '+', m.uploaded),
            downloaded: eb('downloaded', '+', m.downloaded),
            raw_uploaded: eb('raw_uploaded', '+', m.rawUploaded),
            raw_downloaded: eb('raw_downloaded', '+', m.rawDownloaded),
            seed_time: eb('seed_time', '+', m.seedTime),
            last_announce_at: m.lastAt,
          }))
          .where('id', '=', id)
          .execute();
      }
      // Staff may have removed a torrent since these deltas were counted (CLI, API, portal):
      // its rows would fail their foreign keys and roll back every member's credit, at every
      // flush, forever (issue #15). They are dropped here instead; the member's own total above
      // keeps what was earned while the torrent was registered. Members are never deleted today,
      // but a row for one that was is dropped the same way.
      const torrents = await existingIds(
        trx,
        'torrents',
        rowsOf(memberTorrents.values(), flags, 'torrentId'),
      );
      const live = await existingIds(trx, 'members', rowsOf(memberTorrents.values(), flags, 'memberId'));
      const kept = (r: { memberId: number; torrentId: number }) =>
        torrents.has(r.torrentId) && live.has(r.memberId);
      let dropped = 0;
      for (const mt of memberTorrents.values()) {
        if (!kept(mt)) {
          dropped++;
          continue;
        }
        await trx
          .insertInto('member_torrents')
          .values({
            member_id: mt.memberId,
            torrent_id: mt.torrentId,
            uploaded: mt.uploaded,
            downloaded: mt.downloaded,
            raw_uploaded: mt.rawUploaded,
            raw_downloaded: mt.rawDownloaded,
            seed_time: mt.seedTime,
            announces: mt.announces,
            completed_at: null,
            first_announce_at: mt.firstAt,
            last_announce_at: mt.lastAt,
          })
          .onConflict((oc) =>
            oc.columns(['member_id', 'torrent_id']).doUpdateSet((eb) => ({
              uploaded: eb('member_torrents.uploaded', '+', eb.ref('excluded.uploaded')),
              downloaded: eb('member_torrents.downloaded', '+', eb.ref('excluded.downloaded')),
              raw_uploaded: eb('member_torrents.raw_uploaded', '+', eb.ref('excluded.raw_uploaded')),
              raw_downloaded: eb('member_torrents.raw_downloaded', '+', eb.ref('excluded.raw_downloaded')),
              seed_time: eb('member_torrents.seed_time', '+', eb.ref('excluded.seed_time')),
              announces: eb('member_torrents.announces', '+', eb.ref('excluded.announces')),
              last_announce_at: eb.ref('excluded.last_announce_at'),
            })),
          )
          .execute();
        if (mt.completedAt !== 0) {
          // A snatch counts once per member and torrent, whatever the client repeats.
          const r = await trx
            .updateTable('member_torrents')
            .set({ completed_at: mt.completedAt })
            .where('member_id', '=', mt.memberId)
            .where('torrent_id', '=', mt.torrentId)
            .where('completed_at', 'is', null)
            .executeTakeFirst();
          if (Number(r.numUpdatedRows) > 0)
            await trx
              .updateTable('torrents')
              .set((eb) => ({ snatches: eb('snatches', '+', 1) }))
              .where('id', '=', mt.torrentId)
              .execute();
        }
      }
      const keptFlags = flags.filter(kept);
      dropped += flags.length - keptFlags.length;
      if (keptFlags.length > 0)
        await trx
          .insertInto('accounting_flags')
          .values(
            keptFlags.map((f) => ({
              member_id: f.memberId,
              torrent_id: f.torrentId,
              peer_id: f.peerId,
              kind: f.kind,
              uploaded: f.uploaded,
              downloaded: f.downloaded,
              seconds: f.seconds,
              created_at: f.at,
            })),
          )
          .execute();
      return dropped;
    });
    if (dropped > 0) {
      this.counts.dropped += dropped;
      this.#o.logger.info('accounting: rows for removed torrents dropped', { rows: dropped });
    }
  }

  #mergeBack(
    members: Map<number, MemberPending>,
    memberTorrents: Map<string, MemberTorrentPending>,
    flags: Flag[],
  ): void {
    for (const [id, m] of members) {
      const cur = this.#members.get(id);
      if (cur === undefined) this.#members.set(id, m);
      else {
        addTraffic(cur, m.uploaded, m.downloaded, m.rawUploaded, m.rawDownloaded, m.seedTime);
      }
    }
    for (const [k, mt] of memberTorrents) {
      const cur = this.#memberTorrents.get(k);
      if (cur === undefined) this.#memberTorrents.set(k, mt);
      else {
        addTraffic(cur, mt.uploaded, mt.downloaded, mt.rawUploaded, mt.rawDownloaded, mt.seedTime);
        cur.announces += mt.announces;
        cur.firstAt = Math.min(cur.firstAt, mt.firstAt);
        if (cur.completedAt === 0) cur.completedAt = mt.completedAt;
      }
    }
    this.#flags = flags.concat(this.#flags);
  }

  /**
   * Peers a member runs now (seeding, leeching), from the baselines of the last `peerTimeout`
   * seconds. O(peers): for a profile page, not for the hot path.
   */
  activity(memberId: number): { seeding: number; leeching: number } {
    const cutoff = this.#o.clock.now() - this.#o.peerTimeout;
    const infix = `:${memberId}:`;
    let seeding = 0;
    let leeching = 0;
    for (const [k, p] of this.#peers) {
      if (p.at < cutoff) continue;
      const first = k.indexOf(':');
      if (k.slice(first, first + infix.length) !== infix) continue;
      if (p.seeding) seeding++;
      else leeching++;
    }
    return { seeding, leeching };
  }

  /** Forgets baselines of peers that stopped announcing (they would have expired anyway). */
  #expireBaselines(): void {
    const cutoff = this.#o.clock.now() - this.#o.peerTimeout;
    for (const [k, p] of this.#peers) if (p.at < cutoff) this.#peers.delete(k);
  }
}

/** Adds credited and raw traffic and seeding time to a pending member or member-torrent sum. */
function addTraffic(
  into: MemberPending,
  uploaded: number,
  downloaded: number,
  rawUploaded: number,
  rawDownloaded: number,
  seedTime: number,
): void {
  into.uploaded += uploaded;
  into.downloaded += downloaded;
  into.rawUploaded += rawUploaded;
  into.rawDownloaded += rawDownloaded;
  into.seedTime += seedTime;
}

/** Member or torrent ids of pending rows and flags, each once. */
function rowsOf(
  rows: Iterable<MemberTorrentPending>,
  flags: Flag[],
  field: 'memberId' | 'torrentId',
): number[] {
  const ids = new Set<number>();
  for (const r of rows) ids.add(r[field]);
  for (const f of flags) ids.add(f[field]);
  return [...ids];
}

/** Which of `ids` still exist in `table`, read inside the flush's transaction (in chunks: bind limits). */
async function existingIds(
  trx: Transaction<Database>,
  table: 'members' | 'torrents',
  ids: number[],
): Promise<Set<number>> {
  const found = new Set<number>();
  for (let i = 0; i < ids.length; i += 500) {
    const rows = await trx
      .selectFrom(table)
      .select('id')
      .where('id', 'in', ids.slice(i, i + 500))
      .execute();
    for (const r of rows) found.add(r.id);
  }
  return found;
}
