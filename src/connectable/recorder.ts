import type { Logger } from '../core/log.ts';
import type { ConnectableResult } from './checker.ts';

/** Most results waiting for the database; beyond, the newest are dropped (and counted). */
const MAX_PENDING = 100_000;

/**
 * Writes the connectable check's results for members (private mode) to the database in batches,
 * every `intervalSeconds` (the accounting's `flush_interval`) and at stop: the newest result per
 * member and torrent, in one transaction. Nothing on the announce path waits for it.
 */
export class ConnectableRecorder {
  #pending = new Map<string, ConnectableResult>();
  #write: (rows: ConnectableResult[]) => Promise<void>;
  #logger: Logger;
  #timer: NodeJS.Timeout | null = null;
  #writing: Promise<void> | null = null;
  dropped = 0;

  constructor(write: (rows: ConnectableResult[]) => Promise<void>, logger: Logger) {
    this.#write = write;
    this.#logger = logger;
  }

  add(r: ConnectableResult): void {
    const key = `${r.memberId}:${r.torrentId}`;
    if (this.#pending.size >= MAX_PENDING && !this.#pending.has(key)) {
      this.dropped++;
      return;
    }
    this.#pending.set(key, r);
  }

  start(intervalSeconds: number): void {
    this.#timer = setInterval(() => void this.flush(), intervalSeconds * 1000);
    this.#timer.unref();
  }

  /** Writes what is pending (one write at a time); a failed write is logged and its rows dropped. */
  async flush(): Promise<void> {
    while (this.#writing !== null) await this.#writing;
    if (this.#pending.size === 0) return;
    const rows = [...this.#pending.values()];
    this.#pending = new Map();
    this.#writing = this.#write(rows)
      .catch((err) =>
        this.#logger.warn('connectable: results not written', { rows: rows.length, err: String(err) }),
      )
      .finally(() => {
        this.#writing = null;
      });
    await this.#writing;
  }

  async stop(): Promise<void> {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    await this.flush();
  }
}
