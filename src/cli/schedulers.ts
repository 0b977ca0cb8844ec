import { randomUUID } from 'node:crypto';
import type { HeraldConfig } from '../config/schema.ts';
import type { Clock } from '../core/clock.ts';
import type { Logger } from '../core/log.ts';
import type { Registry } from '../db/registry.ts';
import type { Mailer } from '../mail/mailer.ts';
import { siteOf } from '../mail/messages.ts';
import { MailNotices } from '../mail/notices.ts';
import { BonusWatch, bonusRules } from '../policy/bonus.ts';
import { type ClassDef, ClassWatch } from '../policy/classes.ts';
import { HitAndRunWatch, hnrRules } from '../policy/hit-and-run.ts';
import { RatioWatch } from '../policy/ratio-watch.ts';

/**
 * The private-community schedulers of one tracker (issue #16): ratio watch, hit-and-run, member
 * classes, bonus points, and the mail notices of their verdicts. One set for the whole tracker:
 * the composition root makes them only where they run (private mode; worker 0 with workers, the
 * others see their changes through the policy revision); with several instances on one database,
 * each pass runs in the instance holding its lease (`holder`).
 */
export class Schedulers {
  readonly ratioWatch: RatioWatch;
  readonly hnrWatch: HitAndRunWatch;
  readonly classWatch: ClassWatch;
  readonly bonusWatch: BonusWatch;
  /** Mails warnings and hit-and-runs (null without a mailer). */
  readonly mailNotices: MailNotices | null;
  readonly #config: HeraldConfig;

  constructor(
    config: HeraldConfig,
    classes: readonly ClassDef[],
    deps: {
      registry: () => Registry;
      clock: Clock;
      logger: Logger;
      refreshPolicy: () => Promise<unknown>;
      mailer: Mailer | null;
    },
  ) {
    this.#config = config;
    const common = {
      registry: deps.registry,
      clock: deps.clock,
      logger: deps.logger,
      refreshPolicy: deps.refreshPolicy,
      holder: randomUUID(),
    };
    this.hnrWatch = new HitAndRunWatch({ ...common, rules: hnrRules(config) });
    this.classWatch = new ClassWatch({ ...common, rules: classes });
    this.bonusWatch = new BonusWatch({ ...common, rules: bonusRules(config) });
    this.ratioWatch = new RatioWatch({
      ...common,
      rules: {
        minPercent: config.ratioWatchMinPercent,
        graceBytes: config.ratioWatchGrace,
        periodSeconds: config.ratioWatchDays * 86400,
      },
    });
    this.mailNotices =
      deps.mailer === null
        ? null
        : new MailNotices({
            registry: deps.registry,
            mailer: deps.mailer,
            site: siteOf(config.siteName, config.siteUrl),
            ratio: { minPercent: config.ratioWatchMinPercent, days: config.ratioWatchDays },
            logger: deps.logger,
          });
  }

  /** Each on its interval, and the judging passes once now (a change of rules applies at once). */
  start(): void {
    const c = this.#config;
    this.ratioWatch.start(c.ratioWatchInterval);
    void this.ratioWatch.tick().catch(() => {});
    this.hnrWatch.start(c.hnrInterval);
    void this.hnrWatch.tick().catch(() => {});
    this.classWatch.start(c.classInterval);
    void this.classWatch.tick().catch(() => {});
    this.bonusWatch.start(c.bonusInterval);
    this.mailNotices?.start(Math.min(c.ratioWatchInterval, c.hnrInterval));
  }

  /** Stops them, each after the pass it is running. */
  async stop(): Promise<void> {
    await this.ratioWatch.stop();
    await this.hnrWatch.stop();
    await this.classWatch.stop();
    await this.bonusWatch.stop();
    await this.mailNotices?.stop();
  }
}
