/** `herald bonus …` (bonus points) and `herald token …` (freeleech tokens). */
import { parsePoints } from '../../db/bonus.ts';
import { RegistryError } from '../../db/registry.ts';
import { type AdminCommands, intOpt, utc } from './context.ts';

/** `herald bonus …` */
export const bonusCommands: AdminCommands = {
  show: async ({ reg, opts, rest, print, need }) => {
    need(1, 'show MEMBER');
    const m = await reg.member(rest[0]);
    const b = {
      balance: await reg.bonus.balance(m.id),
      freeleech_tokens: m.freeleech_tokens,
      ledger: await reg.bonus.ledger(m.id, intOpt(opts.limit, 'limit', 100000) ?? 50),
    };
    print(b, () =>
      [
        `${m.username}: ${(b.balance / 100).toFixed(2)} points, ${b.freeleech_tokens} freeleech tokens`,
        ...b.ledger.map(
          (r) =>
            `  ${new Date(r.at * 1000).toISOString()}  ${(r.delta / 100).toFixed(2).padStart(10)}  ${r.reason}${r.note ? ` (${r.note})` : ''}`,
        ),
      ].join('\n'),
    );
  },
  give: async ({ reg, opts, rest, print, need }) => {
    need(2, 'give MEMBER POINTS [--note TEXT]');
    const m = await reg.member(rest[0]);
    const n = parsePoints(rest[1]);
    if (Number.isNaN(n)) throw new RegistryError('POINTS: a number with at most two decimals');
    const balance = await reg.bonus.give(m, n, {
      note: (opts.note as string | undefined) ?? null,
      by: null,
      at: Math.floor(Date.now() / 1000),
    });
    print({ balance }, () => `${m.username}: ${(balance / 100).toFixed(2)} points`);
  },
};

/** `herald token …` */
export const tokenCommands: AdminCommands = {
  show: async ({ reg, rest, print, need }) => {
    need(1, 'show MEMBER');
    const m = await reg.member(rest[0]);
    const t = {
      freeleech_tokens: m.freeleech_tokens,
      spent: await reg.freeleech.list({ member: m.id, source: 'token', limit: 500 }),
      ledger: (await reg.bonus.ledger(m.id, 500)).filter((r) => r.reason.endsWith(':token')),
    };
    print(t, () =>
      [
        `${m.username}: ${t.freeleech_tokens} freeleech tokens`,
        ...t.spent.map((w) => `  spent  "${w.torrent_name}"  free ${utc(w.starts_at)} to ${utc(w.ends_at)}`),
        ...t.ledger.map(
          (r) => `  ${r.reason === 'shop:token' ? 'bought' : 'staff '} ${r.note ?? ''}  ${utc(r.at)}`,
        ),
      ].join('\n'),
    );
  },
  give: async ({ reg, opts, rest, print, need }) => {
    need(2, 'give MEMBER COUNT [--note TEXT]');
    const m = await reg.member(rest[0]);
    if (!/^-?[0-9]{1,5}$/.test(rest[1])) throw new RegistryError('COUNT: a whole number, may be negative');
    const n = await reg.freeleech.giveTokens(m, Number(rest[1]), {
      note: (opts.note as string | undefined) ?? null,
      by: null,
      at: Math.floor(Date.now() / 1000),
    });
    print({ freeleech_tokens: n }, () => `${m.username}: ${n} freeleech tokens`);
  },
  spend: async ({ reg, rest, config, print, need }) => {
    need(2, 'spend MEMBER TORRENT');
    const m = await reg.member(rest[0]);
    const t = await reg.torrent(rest[1]);
    const ends = await reg.freeleech.spendToken(
      m,
      t.id,
      config.freeleechTokenDays,
      Math.floor(Date.now() / 1000),
    );
    print(
      { torrent: t.id, ends_at: ends },
      () => `${m.username}: "${t.name}" is freeleech for them until ${utc(ends)}`,
    );
  },
};
