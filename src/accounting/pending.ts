import type { Clock } from '../core/clock.ts';
import type { Logger } from '../core/log.ts';
import type { Registry } from '../db/registry.ts';
import {
  type Batch,
  type Flag,
  type MemberPending,
  type MemberTorrentPending,
  type MemberTorrentRows,
  writeBatch,
} from './flush-writer.ts';

/**
 * A batch as it crosses from a worker to the primary (Node's IPC channel, JSON): the pending sums
 * and flags, nothing else (baselines stay in the worker that owns the torrent).
 */
export interface WireBatch {
  members: [number, MemberPending][];
  memberTorrents: [string, MemberTorrentPending][];
  flags: Flag[];
}

/** Flags waiting for the next flush; beyond this they are counted, not kept. */
const MAX_PENDING_FLAGS = 10_000;

/** How long a flush waits for another connection's lock before it leaves the work to the next. */
const FLUSH_BUSY_TIMEOUT_MS = 250;

/** After this many failed flushes in a row, flushes write member by member. */
const ISOLATE_AFTER = 2;

/** A graceful stop tries this many times to write what is pending, waiting 0.2 s, 0.4 s... between. */
const STOP_ATTEMPTS = 5;
const STOP_RETRY_MS = 200;

/** The accountant's counters (/stats and tests); the pending side adds to those of the flush. */
export interface AccountingCounts {
  flushes: number;
  flushErrors: number;
  flagged: number;
  flagsDropped: number;
  credited: number;
  dropped: number;
  /** Flushes written a second time, checked, after a removed torrent broke a foreign key. */
  rewrites: number;
  evicted: number;
  /** Baselines forgotten when their member lost access (`Accountant.revoke`). */
  revoked: number;
  /** Wall-clock seconds spent writing flushes that committed (herald_accounting_flush_seconds_total). */
  flushSeconds: number;
  /** Member x torrent rows written by flushes that committed (herald_accounting_rows_written_total). */
  rowsWritten: number;
}

export interface PendingOptions {
  logger: Logger;
  clock: Clock;
  /** Seconds between flushes: the most a crash can lose. */
  flushInterval: number;
  /** At most this many written sums are kept for reuse (the accountant's `maxPeers`). */
  maxPeers: number;
  counts: AccountingCounts;
  /** Called before pending sums are taken (the accountant expires silent baselines then). */
  beforeTake: () => void;
}

/**
 * The accountant's side of the flush (src/accounting/accountant.ts keeps the per-announce side):
 * the pending sums of the current flush interval (per member, per member × torrent) and the
 * flags, the batch taken out of them for `writeBatch` (or for the workers' primary), merged back
 * when a write fails, and the written sums kept for reuse by the next interval's announces.
 * One transaction per `flushInterval`, and on a graceful stop.
 */
export class Pending {
  #o: PendingOptions;
  #reg: Registry | null = null;
  readonly counts: AccountingCounts;
  #members = new Map<number, MemberPending>();
  /** member id → torrent id → pending row; `#rows` of them. */
  #memberTorrents: MemberTorrentRows = new Map();
  #rows = 0;
  /** Pending sums taken so far (`#take`): a holding's cached rows are of the current one only. */
  #epoch = 0;
  /**
   * Pending sums written by a flush that succeeded, reused by the next announces: a flush
   * interval's rows otherwise live just long enough to be promoted to the old generation, then
   * die there (with a 1 MiB young generation, a good part of a private announce's GC cost).
   */
  #freeRows: MemberTorrentPending[] = [];
  #freeMembers: MemberPending[] = [];
  /**
   * Sums this process's announces started since the last reuse: at most that many are kept for
   * the next interval (the workers' primary, which accounts no announce, keeps none of the rows
   * it writes for them).
   */
  #madeRows = 0;
  #madeMembers = 0;
  #flags: Flag[] = [];
  #timer: NodeJS.Timeout | null = null;
  #flushing: Promise<void> | null = null;
  /** Failed flushes in a row (see `#flushOnce`). */
  #failedFlushes = 0;
  /** Clock time up to which every credit is in the database (see `flushAge`). */
  #upToDateAt: number;

  constructor(opts: PendingOptions) {
    this.#o = opts;
    this.counts = opts.counts;
    this.#upToDateAt = opts.clock.now();
  }

  /** Pending sums taken so far: a sum cached by a holding is current while this has not moved. */
  get epoch(): number {
    return this.#epoch;
  }

  /**
   * Seconds since the database last held every credit (`/metrics`
   * `herald_accounting_flush_age_seconds`): at most about `flushInterval` while flushes succeed,
   * growing while they fail (a database down or locked), which is what a crash would lose.
   */
  flushAge(): number {
    return Math.max(0, this.#o.clock.now() - this.#upToDateAt);
  }

  /** Attaches the database (opened by `Tracker.start`). */
  connect(registry: Registry): void {
    this.#reg = registry;
  }

  /** The member's pending sums in this interval (made, or a written one reused, at its first announce). */
  memberRow(memberId: number, now: number): MemberPending {
    let m = this.#members.get(memberId);
    if (m === undefined) {
      this.#madeMembers++;
      m = this.#freeMembers.pop();
      if (m === undefined)
        m = { uploaded: 0, downloaded: 0, rawUploaded: 0, rawDownloaded: 0, seedTime: 0, lastAt: now };
      else {
        addTraffic(m, -m.uploaded, -m.downloaded, -m.rawUploaded, -m.rawDownloaded, -m.seedTime);
        m.lastAt = now;
      }
      this.#members.set(memberId, m);
    }
    return m;
  }

  /** The member × torrent's pending row in this interval (made at its first announce). */
  row(memberId: number, torrentId: number, now: number): MemberTorrentPending {
    let byTorrent = this.#memberTorrents.get(memberId);
    if (byTorrent === undefined) {
      byTorrent = new Map();
      this.#memberTorrents.set(memberId, byTorrent);
    }
    let mt = byTorrent.get(torrentId);
    if (mt === undefined) {
      mt = this.#newRow(memberId, torrentId, now);
      byTorrent.set(torrentId, mt);
      this.#rows++;
    }
    return mt;
  }

  /** A pending member × torrent row with nothing in it yet (a written one reused, or a new one). */
  #newRow(memberId: number, torrentId: number, now: number): MemberTorrentPending {
    this.#madeRows++;
    const r = this.#freeRows.pop();
    if (r === undefined)
      return {
        memberId,
        torrentId,
        uploaded: 0,
        downloaded: 0,
        rawUploaded: 0,
        rawDownloaded: 0,
        seedTime: 0,
        lastAt: now,
        announces: 0,
        completedAt: 0,
        firstAt: now,
        state: 0,
      };
    r.memberId = memberId;
    r.torrentId = torrentId;
    r.uploaded = 0;
    r.downloaded = 0;
    r.rawUploaded = 0;
    r.rawDownloaded = 0;
    r.seedTime = 0;
    r.lastAt = now;
    r.announces = 0;
    r.completedAt = 0;
    r.firstAt = now;
    r.state = 0;
    return r;
  }

  /** A written batch's pending sums, for reuse (nothing else refers to them any more). */
  #recycle(batch: Batch): void {
    const members = Math.min(this.#o.maxPeers, this.#madeMembers);
    const rows = Math.min(this.#o.maxPeers, this.#madeRows);
    this.#madeMembers = 0;
    this.#madeRows = 0;
    for (const m of batch.members.values()) if (this.#freeMembers.length < members) this.#freeMembers.push(m);
    for (const byTorrent of batch.memberTorrents.values())
      for (const r of byTorrent.values()) if (this.#freeRows.length < rows) this.#freeRows.push(r);
  }

  /** Written pending sums kept for reuse (tests). */
  get reusable(): number {
    return this.#freeRows.length + this.#freeMembers.length;
  }

  /** Pending flags are bounded too: one per announce at most, but announces are cheap. */
  flag(f: Flag): void {
    this.counts.flagged++;
    if (this.#flags.length < MAX_PENDING_FLAGS) this.#flags.push(f);
    else this.counts.flagsDropped++;
  }
  /** Pending member-torrent rows (tests and /stats). */
  get rows(): number {
    return this.#rows;
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
      if (this.idle) return;
      if (attempt === STOP_ATTEMPTS) break;
      await new Promise((resolve) => setTimeout(resolve, STOP_RETRY_MS * attempt));
    }
    this.#o.logger.error('accounting: pending credit lost at stop (the database refused every write)', {
      members: this.#members.size,
      rows: this.#rows,
      flags: this.#flags.length,
      ...creditOf(this.#members),
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

  /** Whether nothing waits to be written. */
  get idle(): boolean {
    return this.#members.size === 0 && this.#rows === 0 && this.#flags.length === 0;
  }

  /** Everything pending, taken out; null when nothing is. */
  #take(): Batch | null {
    this.#o.beforeTake();
    if (this.idle) return null;
    const batch: Batch = { members: this.#members, memberTorrents: this.#memberTorrents, flags: this.#flags };
    this.#members = new Map();
    this.#memberTorrents = new Map();
    this.#rows = 0;
    this.#flags = [];
    // Every holding's cached rows are now the batch's.
    this.#epoch++;
    return batch;
  }

  /**
   * With workers: everything pending, taken out for the primary, which writes the batches of all
   * workers in one transaction (src/cluster/accounting-link.ts). Null when nothing is pending.
   */
  takeBatch(): WireBatch | null {
    // What leaves for the primary is the primary's to write (its flush age says when it has).
    this.#upToDateAt = this.#o.clock.now();
    const b = this.#take();
    return b === null
      ? null
      : { members: [...b.members], memberTorrents: wireRows(b.memberTorrents), flags: b.flags };
  }

  /** The primary: adds a worker's batch to what the next flush writes. */
  absorb(w: WireBatch): void {
    this.#mergeBack({
      members: new Map(w.members),
      memberTorrents: rowsFromWire(w.memberTorrents),
      flags: w.flags,
    });
  }

  async #flushOnce(): Promise<void> {
    const started = this.#o.clock.now();
    const batch = this.#take();
    if (batch === null) {
      this.#upToDateAt = started;
      return;
    }
    if (this.#failedFlushes < ISOLATE_AFTER) {
      const err = await this.#tryWrite(batch);
      if (err === null) {
        this.#recycle(batch);
        this.#failedFlushes = 0;
        this.#upToDateAt = started;
      } else {
        this.#failedFlushes++;
        this.#o.logger.error('accounting flush failed; will retry', { err: String(err) });
        this.#mergeBack(batch);
      }
      return;
    }
    // The whole batch failed again and again: one member's row may be what the database refuses
    // (a value out of range, a trigger or constraint an operator added). Member by member, one
    // transaction each, that member alone waits; everyone else is credited.
    const groups = byMember(batch);
    const refused: number[] = [];
    for (let i = 0; i < groups.length; i++) {
      const err = await this.#tryWrite(groups[i]);
      if (err === null) continue;
      this.#mergeBack(groups[i]);
      if (databaseWide(err)) {
        // Locked or unreachable: the rest would fail the same way; all of it waits for the next flush.
        for (const g of groups.slice(i + 1)) this.#mergeBack(g);
        this.#o.logger.error('accounting flush failed; will retry', { err: String(err) });
        return;
      }
      refused.push(groups[i].members.keys().next().value ?? 0);
      if (refused.length === 1)
        this.#o.logger.error("accounting: the database refuses a member's row", { err: String(err) });
    }
    if (refused.length === 0) {
      this.#failedFlushes = 0;
      this.#upToDateAt = started;
    } else
      this.#o.logger.error('accounting: credit kept pending for members whose rows are refused', {
        members: refused.slice(0, 20),
        count: refused.length,
      });
  }

  /** One transaction; the error, or null when it committed. */
  async #tryWrite(batch: Batch): Promise<unknown> {
    const reg = this.#reg;
    try {
      if (reg === null) throw new Error('accountant: no database connected');
      // A lock held elsewhere (the CLI, a backup) is waited for briefly, then the next flush tries
      // again with everything kept: the tracker never queues behind it for seconds.
      const t0 = performance.now();
      const rows = await reg.db.withBusyTimeout(FLUSH_BUSY_TIMEOUT_MS, () => this.#write(reg, batch));
      this.counts.flushSeconds += (performance.now() - t0) / 1000;
      this.counts.rowsWritten += rows;
      this.counts.flushes++;
      // What a crash can no longer lose (test/integration/private-crash.test.ts adds these up).
      this.#o.logger.debug('accounting flushed', { members: batch.members.size, ...creditOf(batch.members) });
      return null;
    } catch (err) {
      this.counts.flushErrors++;
      return err ?? new Error('accounting flush failed');
    }
  }

  /** Writes `batch`; the member x torrent rows written. */
  async #write(reg: Registry, batch: Batch): Promise<number> {
    const { written, dropped, rewritten } = await writeBatch(reg, batch);
    if (rewritten) this.counts.rewrites++;
    if (dropped > 0) {
      this.counts.dropped += dropped;
      this.#o.logger.info('accounting: rows for removed torrents dropped', { rows: dropped });
    }
    return written;
  }

  #mergeBack({ members, memberTorrents, flags }: Batch): void {
    for (const [id, m] of members) {
      const cur = this.#members.get(id);
      if (cur === undefined) this.#members.set(id, m);
      else {
        addTraffic(cur, m.uploaded, m.downloaded, m.rawUploaded, m.rawDownloaded, m.seedTime);
      }
    }
    for (const [memberId, rows] of memberTorrents) {
      let byTorrent = this.#memberTorrents.get(memberId);
      if (byTorrent === undefined) {
        byTorrent = new Map();
        this.#memberTorrents.set(memberId, byTorrent);
      }
      for (const [torrentId, mt] of rows) {
        const cur = byTorrent.get(torrentId);
        if (cur === undefined) {
          byTorrent.set(torrentId, mt);
          this.#rows++;
          continue;
        }
        addTraffic(cur, mt.uploaded, mt.downloaded, mt.rawUploaded, mt.rawDownloaded, mt.seedTime);
        cur.announces += mt.announces;
        cur.firstAt = Math.min(cur.firstAt, mt.firstAt);
        if (cur.completedAt === 0) cur.completedAt = mt.completedAt;
      }
    }
    const all = flags.concat(this.#flags);
    this.counts.flagsDropped += Math.max(0, all.length - MAX_PENDING_FLAGS);
    this.#flags = all.length > MAX_PENDING_FLAGS ? all.slice(0, MAX_PENDING_FLAGS) : all;
  }
}

/** Pending rows as a worker sends them (WireBatch: `member:torrent` keys, as before). */
function wireRows(rows: MemberTorrentRows): [string, MemberTorrentPending][] {
  const out: [string, MemberTorrentPending][] = [];
  for (const [memberId, byTorrent] of rows)
    for (const [torrentId, r] of byTorrent) out.push([`${memberId}:${torrentId}`, r]);
  return out;
}

/** A worker's pending rows, by member and torrent again (the rows carry both ids). */
function rowsFromWire(wire: [string, MemberTorrentPending][]): MemberTorrentRows {
  const rows: MemberTorrentRows = new Map();
  for (const [, r] of wire) {
    let byTorrent = rows.get(r.memberId);
    if (byTorrent === undefined) {
      byTorrent = new Map();
      rows.set(r.memberId, byTorrent);
    }
    byTorrent.set(r.torrentId, r);
  }
  return rows;
}

/** Credited bytes in a batch, for logs. */
function creditOf(members: Map<number, MemberPending>): { uploaded: number; downloaded: number } {
  let uploaded = 0;
  let downloaded = 0;
  for (const m of members.values()) {
    uploaded += m.uploaded;
    downloaded += m.downloaded;
  }
  return { uploaded, downloaded };
}

/** Adds credited and raw traffic and seeding time to a pending member or member-torrent sum. */
export function addTraffic(
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

/** A batch split by member: each member's totals, per-torrent rows and flags together. */
function byMember(batch: Batch): Batch[] {
  const groups = new Map<number, Batch>();
  const group = (id: number): Batch => {
    let g = groups.get(id);
    if (g === undefined) {
      g = { members: new Map(), memberTorrents: new Map(), flags: [] };
      groups.set(id, g);
    }
    return g;
  };
  for (const [id, m] of batch.members) group(id).members.set(id, m);
  for (const [id, rows] of batch.memberTorrents) group(id).memberTorrents.set(id, rows);
  for (const f of batch.flags) group(f.memberId).flags.push(f);
  return [...groups.values()];
}

/**
 * Whether an error says the database as a whole cannot take writes now (locked, unreachable,
 * full, read-only), rather than that one row is refused (SQLite: constraint, mismatch, range or a
 * trigger's RAISE; PostgreSQL: data exception, integrity constraint, an operator's RAISE).
 */
function databaseWide(err: unknown): boolean {
  const e = err as { errcode?: unknown; code?: unknown };
  if (typeof e.errcode === 'number') return ![1, 18, 19, 20, 25].includes(e.errcode & 0xff);
  if (typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code)) return !/^(22|23|P0)/.test(e.code);
  return true;
}
