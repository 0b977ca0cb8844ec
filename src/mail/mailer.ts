import nodemailer from 'nodemailer';
import type { Logger } from '../core/log.ts';

/**
 * Account mail (issue #16): a bounded queue in front of one SMTP transport (nodemailer).
 *
 * `send` never waits for the SMTP server: it checks the message, queues it and returns at once,
 * so a slow or dead mail server costs a page nothing. One message is in flight at a time; a
 * failed one goes back to the queue's end after a backoff (2 s, 4 s, 8 s, … capped at 5 min)
 * and is dropped after `maxAttempts` tries. The queue holds at most `maxQueue` messages: beyond
 * that `send` refuses (and logs), so a mail server that is down for days holds a bounded amount
 * of memory. Logs name the message's kind and the SMTP error, never the body (reset links are
 * secrets) nor the SMTP URL (it may hold a password).
 *
 * Header injection: every header Herald sets is checked here to be one line (`oneLine`) and the
 * recipient to be one plain address (`plainAddress`); a message that fails is refused, not
 * cleaned up. nodemailer encodes non-ASCII header text itself.
 */
export interface MailMessage {
  /** For logs and tests: 'invitation', 'reset', 'ratio-warning', 'hit-and-run', 'application'. */
  kind: string;
  to: string;
  subject: string;
  text: string;
  html: string;
}

/** What sends one message (nodemailer's transport; tests may pass another). */
export interface MailTransport {
  sendMail(m: { from: string; to: string; subject: string; text: string; html: string }): Promise<unknown>;
  close?(): void;
}

export interface MailerOptions {
  transport: MailTransport;
  from: string;
  logger: Logger;
  maxQueue?: number;
  maxAttempts?: number;
  /** First retry delay in ms (doubles per attempt, capped at 5 min). */
  backoffMs?: number;
}

interface Queued {
  m: MailMessage;
  attempts: number;
  /** Not before (ms). */
  at: number;
}

/** One plain address (local@domain), no display name, no list, no line break: or null. */
export function plainAddress(s: string): string | null {
  const a = s.trim();
  if (
    a.length > 254 ||
    !/^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(a)
  )
    return null;
  return a;
}

/** A header value with no line breaks or other control characters. */
export const oneLine = (s: string) => !/[\x00-\x1f\x7f]/.test(s);

export class Mailer {
  readonly #o: Required<Omit<MailerOptions, 'transport' | 'logger'>> &
    Pick<MailerOptions, 'transport' | 'logger'>;
  readonly #queue: Queued[] = [];
  #busy = false;
  #timer: NodeJS.Timeout | null = null;
  #stopped = false;
  #idle: (() => void)[] = [];
  /** Counts (tests, metrics). */
  readonly counts = { sent: 0, retried: 0, failed: 0, dropped: 0, refused: 0 };

  constructor(o: MailerOptions) {
    this.#o = { maxQueue: 1000, maxAttempts: 6, backoffMs: 2000, ...o };
  }

  /** A mailer over nodemailer's SMTP transport for `smtp_url` (null when mail is off). */
  static fromConfig(c: { smtpUrl: string; mailFrom: string }, logger: Logger): Mailer | null {
    if (c.smtpUrl === '') return null;
    const transport = nodemailer.createTransport({
      url: c.smtpUrl,
      // Bounded in time: a server that accepts and then says nothing is a failure, retried later.
      connectionTimeout: 15_000,
      greetingTimeout: 15_000,
      socketTimeout: 30_000,
      disableFileAccess: true,
      disableUrlAccess: true,
    });
    return new Mailer({ transport, from: c.mailFrom, logger });
  }

  /** Messages waiting (and in flight). */
  get pending(): number {
    return this.#queue.length + (this.#busy ? 1 : 0);
  }

  /**
   * Queues a message; false when it is refused (a bad recipient or header, the queue is full, or
   * the mailer stopped). Never waits for the server.
   */
  send(m: MailMessage): boolean {
    const to = plainAddress(m.to);
    if (this.#stopped || to === null || !oneLine(m.subject) || !oneLine(m.kind)) {
      this.counts.refused++;
      this.#o.logger.warn('mail refused', { kind: m.kind, why: to === null ? 'address' : 'header' });
      return false;
    }
    if (this.#queue.length >= this.#o.maxQueue) {
      this.counts.dropped++;
      this.#o.logger.warn('mail queue full: message dropped', { kind: m.kind, queued: this.#queue.length });
      return false;
    }
    this.#queue.push({ m: { ...m, to }, attempts: 0, at: 0 });
    this.#pump();
    return true;
  }

  /** Resolves when nothing is queued or in flight (tests). */
  idle(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /** Stops sending; what is queued is dropped (logged with its count). */
  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#queue.length > 0) this.#o.logger.warn('mail not sent at stop', { queued: this.#queue.length });
    this.#queue.length = 0;
    this.#o.transport.close?.();
    this.#settle();
  }

  #settle() {
    if (this.pending !== 0) return;
    for (const f of this.#idle.splice(0)) f();
  }

  #pump() {
    if (this.#busy || this.#stopped) return;
    const now = Date.now();
    const i = this.#queue.findIndex((q) => q.at <= now);
    if (i < 0) {
      this.#settle();
      if (this.#queue.length > 0 && this.#timer === null) {
        const next = Math.min(...this.#queue.map((q) => q.at));
        this.#timer = setTimeout(
          () => {
            this.#timer = null;
            this.#pump();
          },
          Math.max(0, next - now),
        );
        this.#timer.unref();
      }
      return;
    }
    const [q] = this.#queue.splice(i, 1);
    this.#busy = true;
    const { m } = q;
    this.#o.transport
      .sendMail({ from: this.#o.from, to: m.to, subject: m.subject, text: m.text, html: m.html })
      .then(
        () => {
          this.counts.sent++;
        },
        (err: unknown) => {
          q.attempts++;
          const why = err instanceof Error ? err.message : String(err);
          if (q.attempts >= this.#o.maxAttempts || this.#stopped) {
            this.counts.failed++;
            this.#o.logger.error('mail failed; given up', { kind: m.kind, attempts: q.attempts, err: why });
            return;
          }
          const delay = Math.min(this.#o.backoffMs * 2 ** (q.attempts - 1), 300_000);
          this.#o.logger.warn('mail failed; will retry', {
            kind: m.kind,
            attempts: q.attempts,
            inMs: delay,
            err: why,
          });
          q.at = Date.now() + delay;
          this.counts.retried++;
          this.#queue.push(q);
        },
      )
      .finally(() => {
        this.#busy = false;
        this.#pump();
      });
  }
}
