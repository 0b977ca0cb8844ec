import type { ChildProcess } from 'node:child_process';
import { Accountant, type WireBatch } from '../accounting/accountant.ts';
import type { HeraldConfig } from '../config/schema.ts';
import type { Logger } from '../core/log.ts';
import { type Db, openDatabase } from '../db/connect.ts';
import { Registry } from '../db/registry.ts';

/**
 * Private-mode accounting with workers (issue #13): one writer. Each worker accounts the announces
 * of the torrents it owns (their baselines live there), and the primary writes the deltas of every
 * worker in one transaction per `flush_interval`: it asks each worker for what it holds
 * (`collect`), waits a bounded time for the answers, adds them up and flushes. One write
 * transaction per interval instead of one per worker: no write-lock contention between workers on
 * SQLite, N times fewer commits on PostgreSQL.
 *
 * Graceful stop: each worker hands its last batch to the primary and waits for the primary's
 * acknowledgement, however late (a worker whose primary is gone writes the batch itself, as one
 * process would); the primary writes everything after the last worker has stopped. What a crash loses:
 * a killed worker, its deltas since the last collection (at most one interval, as without
 * workers); a killed primary, what it collected and had not yet written (at most one interval).
 */

/** Primary → worker. */
export type AccountingToWorker = { type: 'acct-collect'; seq: number } | { type: 'acct-ack'; seq: number };
/** Worker → primary: the batch for collection `seq`, or (final) the last one at stop. */
export type AccountingToPrimary = {
  type: 'acct-batch';
  seq: number;
  final: boolean;
  batch: WireBatch | null;
};

/** The part of a process (or a child process seen from its parent) the link talks through. */
interface Channel {
  send?(message: unknown, callback?: (err: Error | null) => void): boolean;
  on(event: 'message', listener: (message: unknown) => void): unknown;
  on(event: 'disconnect', listener: () => void): unknown;
  off(event: 'message', listener: (message: unknown) => void): unknown;
  off(event: 'disconnect', listener: () => void): unknown;
  readonly connected?: boolean;
}

const isMessage = <T extends { type: string }>(m: unknown, type: T['type']): m is T =>
  typeof m === 'object' && m !== null && (m as { type?: unknown }).type === type;

/** A worker's side: answers collections; hands over the last batch at stop. */
export class WorkerAccounting {
  #acct: Accountant;
  #channel: Channel;
  #finals = 0;

  constructor(accountant: Accountant, channel: Channel = process as unknown as Channel) {
    this.#acct = accountant;
    this.#channel = channel;
    channel.on('message', (m) => {
      if (isMessage<Extract<AccountingToWorker, { type: 'acct-collect' }>>(m, 'acct-collect'))
        this.#reply({ type: 'acct-batch', seq: m.seq, final: false, batch: accountant.takeBatch() });
    });
  }

  #reply(msg: AccountingToPrimary): void {
    if (!this.#channel.connected || this.#channel.send === undefined) {
      // No primary to take it: back into the pending sums, written by the fallback at stop.
      if (msg.batch !== null) this.#acct.absorb(msg.batch);
      return;
    }
    this.#channel.send(msg, (err) => {
      if (err !== null && msg.batch !== null) this.#acct.absorb(msg.batch);
    });
  }

  /**
   * At stop: the last batch to the primary. True when the primary has it (acknowledged); false
   * when it must be written here (no primary, or the channel closed before the acknowledgement).
   *
   * No deadline while the primary is connected: a batch sent is in the primary's pipe, and a late
   * primary (its event loop held by a long flush, a loaded host) still reads and absorbs it, so a
   * worker that gave up and wrote it too would credit it twice. A primary that never answers is
   * bounded by the worker's forced exit (src/cli/main.ts); the batch stays in the pipe for it.
   */
  async handOff(): Promise<boolean> {
    const batch = this.#acct.takeBatch();
    if (batch === null) return true;
    const seq = ++this.#finals;
    const channel = this.#channel;
    const acked = await new Promise<boolean>((resolve) => {
      if (!channel.connected || channel.send === undefined) return resolve(false);
      const onMessage = (m: unknown) => {
        if (isMessage<Extract<AccountingToWorker, { type: 'acct-ack' }>>(m, 'acct-ack') && m.seq === seq)
          finish(true);
      };
      const onDisconnect = () => finish(false);
      const finish = (ok: boolean) => {
        channel.off('message', onMessage);
        channel.off('disconnect', onDisconnect);
        resolve(ok);
      };
      channel.on('message', onMessage);
      channel.on('disconnect', onDisconnect);
      const msg: AccountingToPrimary = { type: 'acct-batch', seq, final: true, batch };
      channel.send(msg, (err) => {
        if (err !== null) finish(false);
      });
    });
    if (!acked) this.#acct.absorb(batch);
    return acked;
  }
}

/**
 * Who writes a process's accounting: the primary, through a `WorkerAccounting` link made at
 * `start`, when it collects this worker's deltas (`primaryWrites`); else the accountant's own
 * flusher (one process). `stop` leaves no delta behind: handed to the primary (acknowledged), or
 * written here.
 */
export class AccountingWriter {
  readonly #acct: Accountant;
  readonly #primaryWrites: boolean;
  #link: WorkerAccounting | null = null;

  constructor(accountant: Accountant, primaryWrites: boolean) {
    this.#acct = accountant;
    this.#primaryWrites = primaryWrites;
  }

  start(): void {
    if (this.#primaryWrites) this.#link = new WorkerAccounting(this.#acct);
    else this.#acct.start();
  }

  /** Before the database closes: every pending delta with the primary, or written here. */
  async stop(): Promise<void> {
    const handed = this.#link !== null && (await this.#link.handOff());
    if (!handed) await this.#acct.stop();
  }
}

/** The primary's side: the one writer. */
export class PrimaryAccounting {
  #acct: Accountant;
  #db: Db;
  #logger: Logger;
  #interval: number;
  #timer: NodeJS.Timeout | null = null;
  #seq = 0;
  /** The collection waiting for answers: which workers have not answered yet. */
  #waiting: { seq: number; from: Set<ChildProcess>; done: () => void } | null = null;
  #collecting: Promise<void> | null = null;

  private constructor(db: Db, acct: Accountant, logger: Logger, interval: number) {
    this.#db = db;
    this.#acct = acct;
    this.#logger = logger;
    this.#interval = interval;
  }

  /** Opens the database (after worker 0 has migrated it) and the writer. */
  static async open(config: HeraldConfig, logger: Logger): Promise<PrimaryAccounting> {
    const db = await openDatabase(config.databaseUrl, config.dataDir);
    const acct = new Accountant({
      logger,
      clock: { now: () => Math.floor(Date.now() / 1000) },
      snapshot: () => {
        throw new Error('the primary writes accounting; it does not account announces');
      },
      flushInterval: config.flushInterval,
      maxRate: config.maxRate,
      peerTimeout: config.peerTimeout,
      maxPeers: config.accountingMaxPeers,
    });
    acct.connect(new Registry(db, { maxBytes: config.maxTorrentBytes, maxFiles: config.maxTorrentFiles }));
    return new PrimaryAccounting(db, acct, logger, config.flushInterval);
  }

  /** Listens to a (new) worker process. */
  attach(child: ChildProcess): void {
    child.on('message', (m: unknown) => {
      if (!isMessage<AccountingToPrimary>(m, 'acct-batch')) return;
      if (m.batch !== null) this.#acct.absorb(m.batch);
      if (m.final) {
        const ack: AccountingToWorker = { type: 'acct-ack', seq: m.seq };
        if (child.connected) child.send(ack);
        return;
      }
      const w = this.#waiting;
      if (w !== null && w.seq === m.seq && w.from.delete(child) && w.from.size === 0) w.done();
    });
    child.on('exit', () => {
      const w = this.#waiting;
      if (w?.from.delete(child) && w.from.size === 0) w.done();
    });
  }

  /** Collects and writes every `flush_interval` seconds from the workers `workers()` lists. */
  start(workers: () => ChildProcess[]): void {
    this.#timer = setInterval(() => {
      if (this.#collecting !== null) return; // the previous one is still writing
      this.#collecting = this.collect(workers()).finally(() => {
        this.#collecting = null;
      });
    }, this.#interval * 1000);
    this.#timer.unref();
  }

  /** One round: every worker's batch (those that answer within the bound), then one transaction. */
  async collect(workers: ChildProcess[]): Promise<void> {
    const live = workers.filter((c) => c.connected);
    if (live.length > 0) {
      const seq = ++this.#seq;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => finish(), Math.min(2000, this.#interval * 1000));
        const finish = () => {
          clearTimeout(timer);
          this.#waiting = null;
          resolve();
        };
        this.#waiting = { seq, from: new Set(live), done: finish };
        const msg: AccountingToWorker = { type: 'acct-collect', seq };
        for (const c of live) c.send(msg);
      });
    }
    await this.#acct.flush();
  }

  /** After every worker has stopped (and handed over its last batch): the last write. */
  async stop(): Promise<void> {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    await this.#collecting;
    await this.#acct.stop();
    await this.#db.close();
    this.#logger.debug('accounting writer stopped', {});
  }
}
