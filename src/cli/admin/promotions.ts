/**
 * Promotions: `herald freeleech` (personal windows), `herald event` (site-wide events), `herald
 * featured` (featured torrents).
 */
import { RegistryError } from '../../db/registry.ts';
import { type AdminCommands, intOpt, timeOpt, utc, yes } from './context.ts';

/** A promotion as `promotionLine` prints it. */
interface Promotion {
  id: number;
  starts_at: number;
  ends_at: number;
  upload_factor: number;
  what: string;
  free: boolean;
  ended: number | null;
}

/** One promotion on one line (event, featured torrent, personal window). */
function promotionLine(p: Promotion): string {
  const deal = [p.free ? 'freeleech' : '', p.upload_factor !== 100 ? `uploads ${p.upload_factor}%` : '']
    .filter((x) => x !== '')
    .join(' + ');
  return `#${p.id}  ${p.what}  ${utc(p.starts_at)} to ${utc(p.ends_at)}  ${deal}${p.ended !== null ? '  (ended early)' : ''}`;
}

/** A list of promotions, one a line, or `none` when it is empty. */
function promotionLines<T>(list: T[], none: string, promotion: (x: T) => Promotion): string {
  return list.length === 0 ? none : list.map((x) => promotionLine(promotion(x))).join('\n');
}

/** `herald freeleech …` */
export const freeleechCommands: AdminCommands = {
  list: async ({ reg, opts, rest, print }) => {
    const now = Math.floor(Date.now() / 1000);
    const list = await reg.freeleech.list({
      member: rest[0] !== undefined ? (await reg.member(rest[0])).id : undefined,
      after: opts.all === true ? undefined : now,
      limit: intOpt(opts.limit, 'limit', 100000) ?? 200,
    });
    print(list, () =>
      promotionLines(list, '(no freeleech windows)', (w) => ({
        ...w,
        what: `${w.username} on ${w.torrent_name === null ? 'every torrent' : `"${w.torrent_name}"`} (${w.source})`,
        free: true,
        ended: w.revoked_at,
      })),
    );
  },
  give: async ({ reg, opts, rest, config, print, need }) => {
    need(
      1,
      'give MEMBER --end TIME [--start TIME] [--double-upload yes] [--upload-factor PCT] [--note TEXT]',
    );
    const m = await reg.member(rest[0]);
    const at = Math.floor(Date.now() / 1000);
    const end = timeOpt(opts.end, 'end');
    if (end === undefined) throw new RegistryError('--end TIME is needed');
    const w = await reg.freeleech.give(m, {
      startsAt: timeOpt(opts.start, 'start') ?? at,
      endsAt: end,
      uploadFactor:
        intOpt(opts['upload-factor'], 'upload-factor', 1000) ??
        (yes(opts['double-upload'], 'double-upload') === true ? config.promotionUploadFactor : 100),
      note: (opts.note as string | undefined) ?? null,
      by: null,
      at,
    });
    print(w, () => promotionLine({ ...w, what: `${w.username} on every torrent`, free: true, ended: null }));
  },
  revoke: async ({ reg, rest, print, need }) => {
    need(1, 'revoke ID');
    const w = await reg.freeleech.revoke(intOpt(rest[0], 'ID', 2 ** 31) ?? 0, Math.floor(Date.now() / 1000));
    print(w, () => promotionLine({ ...w, what: `${w.username} (revoked)`, free: true, ended: w.revoked_at }));
  },
};

/** `herald event …` */
export const eventCommands: AdminCommands = {
  list: async ({ reg, opts, print }) => {
    const list = await reg.promotions.events(
      opts.all === true ? { all: true } : { after: Math.floor(Date.now() / 1000) },
    );
    print(list, () =>
      promotionLines(list, '(no events)', (e) => ({
        ...e,
        what: `"${e.name}"`,
        free: e.freeleech === 1,
        ended: e.cancelled_at,
      })),
    );
  },
  add: async ({ reg, opts, rest, config, print, need }) => {
    need(1, 'add NAME --start TIME --end TIME [--freeleech yes] [--double-upload yes] [--upload-factor PCT]');
    const start = timeOpt(opts.start, 'start');
    const end = timeOpt(opts.end, 'end');
    if (start === undefined || end === undefined)
      throw new RegistryError('--start TIME and --end TIME are needed');
    const e = await reg.promotions.addEvent(
      {
        name: rest[0],
        startsAt: start,
        endsAt: end,
        freeleech: yes(opts.freeleech, 'freeleech') ?? false,
        uploadFactor:
          intOpt(opts['upload-factor'], 'upload-factor', 1000) ??
          (yes(opts['double-upload'], 'double-upload') === true ? config.promotionUploadFactor : 100),
      },
      null,
      Math.floor(Date.now() / 1000),
    );
    print(e, () => promotionLine({ ...e, what: `"${e.name}"`, free: e.freeleech === 1, ended: null }));
  },
  set: async ({ reg, opts, rest, print, need }) => {
    need(1, 'set ID [--name N] [--start TIME] [--end TIME] [--freeleech yes|no] [--upload-factor PCT]');
    const e = await reg.promotions.updateEvent(intOpt(rest[0], 'ID', 2 ** 31) ?? 0, {
      name: opts.name as string | undefined,
      startsAt: timeOpt(opts.start, 'start'),
      endsAt: timeOpt(opts.end, 'end'),
      freeleech: yes(opts.freeleech, 'freeleech'),
      uploadFactor: intOpt(opts['upload-factor'], 'upload-factor', 1000),
    });
    print(e, () => promotionLine({ ...e, what: `"${e.name}"`, free: e.freeleech === 1, ended: null }));
  },
  cancel: async ({ reg, rest, print, need }) => {
    need(1, 'cancel ID');
    const e = await reg.promotions.cancelEvent(
      intOpt(rest[0], 'ID', 2 ** 31) ?? 0,
      Math.floor(Date.now() / 1000),
    );
    print(e, () =>
      promotionLine({ ...e, what: `"${e.name}"`, free: e.freeleech === 1, ended: e.cancelled_at }),
    );
  },
};

/** `herald featured …` */
export const featuredCommands: AdminCommands = {
  list: async ({ reg, opts, print }) => {
    const list = await reg.promotions.featured(
      opts.all === true ? {} : { after: Math.floor(Date.now() / 1000) },
    );
    print(list, () =>
      promotionLines(list, '(no featured torrents)', (f) => ({
        ...f,
        what: `"${f.torrent_name}"`,
        free: true,
        ended: f.ended_at,
      })),
    );
  },
  add: async ({ reg, opts, rest, config, print, need }) => {
    need(1, 'add TORRENT [--days N] [--start TIME] [--upload-factor PCT]');
    const t = await reg.torrent(rest[0]);
    const at = Math.floor(Date.now() / 1000);
    const start = timeOpt(opts.start, 'start') ?? at;
    const f = await reg.promotions.feature(
      t.id,
      {
        startsAt: start,
        endsAt: start + (intOpt(opts.days, 'days', 366) ?? config.featuredDays) * 86400,
        uploadFactor: intOpt(opts['upload-factor'], 'upload-factor', 1000) ?? config.promotionUploadFactor,
      },
      null,
      at,
    );
    print(f, () => promotionLine({ ...f, what: `"${f.torrent_name}"`, free: true, ended: null }));
  },
  remove: async ({ reg, rest, print, need }) => {
    need(1, 'remove ID');
    const f = await reg.promotions.unfeature(
      intOpt(rest[0], 'ID', 2 ** 31) ?? 0,
      Math.floor(Date.now() / 1000),
    );
    print(f, () => promotionLine({ ...f, what: `"${f.torrent_name}"`, free: true, ended: f.ended_at }));
  },
};
