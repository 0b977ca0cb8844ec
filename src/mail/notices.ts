import type { Logger } from '../core/log.ts';
import type { Registry } from '../db/registry.ts';
import type { Mailer } from './mailer.ts';
import { hitAndRunMail, ratioWarningMail, type Site } from './messages.ts';

/** Rows per query; the rest waits for the next run. */
const BATCH = 500;

/**
 * Notices by mail (issue #16): ratio-watch warnings and hit-and-runs, after the schedulers made
 * them. It reads what is new since its watermarks (settings rows: the last warning time and the
 * last hit-and-run id mailed), so a restart neither repeats nor loses a notice, and the
 * schedulers stay as they are. The first run only sets the watermarks: turning mail on does not
 * mail a site's history. Members without an e-mail address are skipped.
 */
export interface NoticesOptions {
  registry: () => Registry;
  mailer: Mailer;
  site: Site;
  /** Ratio watch's rules, for the warning's text. */
  ratio: { minPercent: number; days: number };
  logger: Logger;
}

export class MailNotices {
  readonly #o: NoticesOptions;
  #running: Promise<{ ratio: number; hnr: number }> | null = null;
  #timer: NodeJS.Timeout | null = null;

  constructor(o: NoticesOptions) {
    this.#o = o;
  }

  /** Runs every `everySeconds` (failures are logged; the next run tries again). */
  start(everySeconds: number): void {
    const run = () =>
      void this.run().catch((err) => this.#o.logger.error('mail notices failed', { err: String(err) }));
    this.#timer = setInterval(run, everySeconds * 1000);
    this.#timer.unref();
    run();
  }

  /** Stops the timer; resolves when a run under way has ended. */
  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.#running?.catch(() => {});
  }

  /** One run (one at a time: a call during a run shares it). How many notices were queued. */
  run(): Promise<{ ratio: number; hnr: number }> {
    this.#running ??= this.#run().finally(() => {
      this.#running = null;
    });
    return this.#running;
  }

  async #run(): Promise<{ ratio: number; hnr: number }> {
    const { mailer, site } = this.#o;
    const acc = this.#o.registry().accounts;
    const out = { ratio: 0, hnr: 0 };
    const ratioMark = await acc.noticeMark('mail_notice_ratio_at');
    if (ratioMark === null) await acc.setNoticeMark('mail_notice_ratio_at', await acc.lastRatioWarning());
    else {
      // (No id yet: the watermark was set where the warnings were, or by an older Herald.)
      const rows = await acc.ratioWarnedAfter(ratioMark, await acc.noticeMark('mail_notice_ratio_id'), BATCH);
      for (const m of rows) {
        if (m.email === null) continue;
        const ratio = m.downloaded === 0 ? '∞' : (m.uploaded / m.downloaded).toFixed(2);
        const { minPercent, days } = this.#o.ratio;
        if (mailer.send(ratioWarningMail(site, m.email, { username: m.username, ratio, minPercent, days })))
          out.ratio++;
      }
      if (rows.length > 0) {
        const last = rows.at(-1)!;
        await acc.setNoticeMark('mail_notice_ratio_at', last.ratio_warned_at!);
        await acc.setNoticeMark('mail_notice_ratio_id', last.id);
      }
    }
    const hnrMark = await acc.noticeMark('mail_notice_hnr_id');
    if (hnrMark === null) await acc.setNoticeMark('mail_notice_hnr_id', await acc.lastHitAndRun());
    else {
      const rows = await acc.hitAndRunsAfter(hnrMark, BATCH);
      for (const h of rows) {
        if (h.email === null || h.status !== 'active') continue;
        if (
          mailer.send(
            hitAndRunMail(site, h.email, {
              username: h.username,
              torrent: h.torrent,
              torrentId: h.torrent_id,
            }),
          )
        )
          out.hnr++;
      }
      if (rows.length > 0) await acc.setNoticeMark('mail_notice_hnr_id', rows.at(-1)!.id);
    }
    if (out.ratio + out.hnr > 0) this.#o.logger.info('mail notices queued', out);
    return out;
  }
}
