import { readBounded } from '../../core/read-bounded.ts';
import { announceUrls } from '../../core/urls.ts';
import { type PublicMember, RegistryError } from '../../db/registry.ts';
import { ROLES, type Role } from '../../db/schema.ts';
import { hashPassword } from '../../web/portal/security.ts';
import { linkTokenHash, newLinkToken } from '../../web/portal/two-factor.ts';
import { type AdminCommand, type AdminCommands, type AdminContext, intOpt, yes } from './context.ts';

/** A member with its announce URLs (on the `urls` bases). */
const withUrls = (urls: string[], m: PublicMember) => ({
  ...m,
  announce_urls: announceUrls(urls, m.passkey),
});

/**
 * What the member's profile shows (issue #16): the row, snatches, torrents seeding and leeching
 * now (from the database: as of the tracker's last accounting write), download rights and
 * ratio warnings.
 */
async function showMember(c: AdminContext, m: PublicMember): Promise<void> {
  const { reg, config, classes, print } = c;
  const mm = {
    ...withUrls(c.urls, m),
    class_name: classes.length > 0 ? (m.class ?? classes[0].name) : null,
    ...(await reg.memberFigures(m.id, config.peerTimeout)),
    torrents_now: await reg.connectable.torrentsNow(
      m.id,
      config.peerTimeout,
      config.connectableInterval + config.peerTimeout,
      Math.floor(Date.now() / 1000),
    ),
  };
  const day = (t: number) => new Date(t * 1000).toISOString().slice(0, 16).replace('T', ' ');
  print(mm, () =>
    [
      `#${m.id} ${m.username} (${m.role}, ${m.status}${m.status_reason ? `: ${m.status_reason}` : ''})`,
      `  passkey    ${m.passkey}`,
      `  uploaded   ${m.uploaded}  downloaded ${m.downloaded}  seed time ${m.seed_time}s  invites ${m.invites}`,
      `  snatches   ${mm.snatches}  seeding now ${mm.seeding_now}  leeching now ${mm.leeching_now}`,
      `  download   ${m.can_leech === 1 ? 'allowed' : `suspended (${m.leech_reason ?? 'staff'})`}  ratio warnings ${m.ratio_warnings}${m.ratio_warned_at !== null ? ` (warned since ${new Date(m.ratio_warned_at * 1000).toISOString()})` : ''}`,
      `  hit-and-runs active ${mm.hnr_active}${m.hnr_immune === 1 ? '  (immune)' : ''}`,
      `  bonus      ${(mm.bonus_points / 100).toFixed(2)} points  freeleech tokens ${m.freeleech_tokens}  invites sent ${mm.invites_sent}`,
      ...mm.freeleech_windows.map(
        (w) =>
          `  freeleech  #${w.id} ${w.torrent_name ?? 'every torrent'} ${day(w.starts_at)} to ${day(w.ends_at)} UTC (${w.source}${w.upload_factor !== 100 ? `, uploads ${w.upload_factor}%` : ''})`,
      ),
      ...mm.torrents_now.map(
        (t) => `  ${t.state.padEnd(10)} #${t.torrent_id} ${t.name}  connectable: ${t.connectable}`,
      ),
      ...(classes.length > 0
        ? [`  class      ${m.class ?? classes[0].name}${m.class_locked === 1 ? '  (set by staff)' : ''}`]
        : []),
      ...mm.announce_urls.map((u) => `  announce   ${u}`),
    ].join('\n'),
  );
}

const setStatus: AdminCommand = async (c) => {
  const { reg, opts, rest, sub, need } = c;
  need(1, `${sub} MEMBER`);
  const status = sub === 'enable' ? 'active' : sub === 'ban' ? 'banned' : 'disabled';
  await showMember(
    c,
    await reg.setMemberStatus(rest[0], status, (opts.reason as string | undefined) ?? null),
  );
};

/**
 * `herald member …`: members (add, list, show, status, passkey, password, links, settings) and
 * portal invitations.
 */
export const memberCommands: AdminCommands = {
  add: async (c) => {
    const { reg, opts, rest, need } = c;
    need(1, 'add NAME');
    const role = (opts.role as string | undefined) ?? 'member';
    if (!(ROLES as readonly string[]).includes(role))
      throw new RegistryError(`--role: one of ${ROLES.join(', ')}`);
    await showMember(
      c,
      await reg.addMember({
        username: rest[0],
        role: role as Role,
        email: (opts.email as string | undefined) ?? null,
        invites: intOpt(opts.invites, 'invites', 100000),
      }),
    );
  },
  list: async ({ reg, opts, print, urls }) => {
    const list = await reg.listMembers({
      search: opts.search as string | undefined,
      limit: intOpt(opts.limit, 'limit', 100000) ?? 1000,
    });
    print(
      list.map((m) => withUrls(urls, m)),
      () =>
        list
          .map(
            (m) => `#${m.id}\t${m.username}\t${m.role}\t${m.status}\tup ${m.uploaded}\tdown ${m.downloaded}`,
          )
          .join('\n'),
    );
  },
  show: async (c) => {
    const { reg, rest, need } = c;
    need(1, 'show MEMBER');
    await showMember(c, await reg.member(rest[0]));
  },
  disable: setStatus,
  ban: setStatus,
  enable: setStatus,
  password: async ({ reg, rest, print, need }) => {
    // The password comes on standard input (never on the command line, where `ps` shows it).
    need(1, 'password MEMBER < password.txt');
    const m = await reg.member(rest[0]);
    let input: Buffer;
    try {
      input = readBounded(0, 4096);
    } catch (err) {
      throw new RegistryError(`password: standard input ${(err as Error).message}`);
    }
    const password = input.toString('utf8').split(/\r?\n/)[0];
    if (password.length < 10) throw new RegistryError('password: at least 10 characters, on standard input');
    await reg.accounts.setPasswordHash(m.id, await hashPassword(password));
    await reg.accounts.deleteMemberSessions(m.id);
    print({ id: m.id, username: m.username, password: 'set' }, () => `password set for ${m.username}`);
  },
  invite: async ({ reg, opts, config, print }) => {
    const inviter = opts.member !== undefined ? (await reg.member(opts.member as string)).id : null;
    const days = intOpt(opts.days, 'days', 365) ?? config.inviteExpiryDays;
    if (days < 1) throw new RegistryError('--days: 1 to 365');
    const inv = await reg.accounts.createInvitation({
      inviterId: inviter,
      email: (opts.email as string | undefined) ?? null,
      ttlSeconds: days * 86400,
      spend: false,
    });
    print(
      { code: inv.code, path: `/register?invite=${inv.code}`, expires_at: inv.expires_at },
      () => `invitation (valid ${days} days): /register?invite=${inv.code}`,
    );
  },
  'reset-link': async ({ reg, rest, config, print, need }) => {
    // A one-time password reset link (issue #16), for a site without mail: staff hand it over.
    need(1, 'reset-link MEMBER');
    const m = await reg.member(rest[0]);
    const token = newLinkToken();
    const at = Math.floor(Date.now() / 1000);
    const expiresAt = at + config.resetLinkMinutes * 60;
    await reg.accounts.createPasswordReset({
      memberId: m.id,
      tokenHash: linkTokenHash(token),
      expiresAt,
      by: null,
    });
    const path = `/reset/${token}`;
    const url = config.siteUrl === '' ? null : `${config.siteUrl.replace(/\/+$/, '')}${path}`;
    print(
      { id: m.id, username: m.username, path, url, expires_at: expiresAt },
      () =>
        `password reset link for ${m.username} (once, ${config.resetLinkMinutes} min): ${url ?? `${path}  (after the portal's address; set site_url to get the whole link)`}`,
    );
  },
  '2fa-reset': async ({ reg, rest, print, need }) => {
    need(1, '2fa-reset MEMBER');
    const m = await reg.member(rest[0]);
    await reg.accounts.disableTwoFactor(m.id);
    await reg.accounts.deleteMemberSessions(m.id);
    print(
      { id: m.id, username: m.username, two_factor: 'off' },
      () => `two-factor authentication off for ${m.username}`,
    );
  },
  'reset-passkey': async (c) => {
    const { reg, rest, need } = c;
    need(1, 'reset-passkey MEMBER');
    await showMember(c, await reg.resetPasskey(rest[0]));
  },
  set: async (c) => {
    const { reg, opts, rest, need, classes } = c;
    need(
      1,
      'set MEMBER [--role R] [--invites N] [--can-leech yes|no] [--hnr-immune yes|no] [--class NAME|auto]',
    );
    const role = opts.role as string | undefined;
    if (role !== undefined && !(ROLES as readonly string[]).includes(role))
      throw new RegistryError(`--role: one of ${ROLES.join(', ')}`);
    let m = await reg.updateMember(rest[0], {
      role: role as Role | undefined,
      invites: intOpt(opts.invites, 'invites', 100000),
      email: opts.email as string | undefined,
    });
    const canLeech = yes(opts['can-leech'], 'can-leech');
    if (canLeech !== undefined) m = await reg.setCanLeech(m.id, canLeech);
    const immune = yes(opts['hnr-immune'], 'hnr-immune');
    if (immune !== undefined) {
      await reg.hnr.setImmune(m, immune);
      m = await reg.member(m.id);
    }
    if (opts.class !== undefined) {
      const name = String(opts.class);
      await reg.classes.set(m, name === 'auto' ? null : name, {
        by: null,
        at: Math.floor(Date.now() / 1000),
        classes: classes.map((c) => c.name),
      });
      m = await reg.member(m.id);
    }
    await showMember(c, m);
  },
};
