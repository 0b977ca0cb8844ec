import { readFileSync } from 'node:fs';
import { parseClasses } from '../config/classes.ts';
import { ConfigError, flagOptions, loadConfig } from '../config/load.ts';
import type { HeraldConfig } from '../config/schema.ts';
import { parseHostPort } from '../core/address.ts';
import { announceBases, announceUrls } from '../core/urls.ts';
import { parsePoints } from '../db/bonus.ts';
import { openDatabase } from '../db/connect.ts';
import type { HitAndRunView } from '../db/hit-and-runs.ts';
import { type PublicMember, Registry, RegistryError } from '../db/registry.ts';
import { HNR_STATUSES, type HnrStatus, ROLES, type Role } from '../db/schema.ts';
import { hnrRules, hnrThreshold } from '../policy/hit-and-run.ts';
import { hashPassword } from '../web/portal/security.ts';
import { linkTokenHash, newLinkToken } from '../web/portal/two-factor.ts';

/** Options of the admin commands (everything else on the line is a config flag, as for serve). */
const ADMIN_OPTIONS: Record<string, 'string' | 'boolean'> = {
  json: 'boolean',
  role: 'string',
  email: 'string',
  invites: 'string',
  'can-leech': 'string',
  'hnr-immune': 'string',
  class: 'string',
  status: 'string',
  reason: 'string',
  search: 'string',
  category: 'string',
  name: 'string',
  restricted: 'string',
  freeleech: 'string',
  'download-factor': 'string',
  'upload-factor': 'string',
  member: 'string',
  group: 'string',
  torrent: 'string',
  reference: 'string',
  expires: 'string',
  days: 'string',
  note: 'string',
  limit: 'string',
  start: 'string',
  end: 'string',
  'double-upload': 'string',
  all: 'boolean',
};

export const ADMIN_COMMANDS = [
  'member',
  'torrent',
  'list',
  'client',
  'group',
  'grant',
  'site',
  'hnr',
  'class',
  'bonus',
  'event',
  'featured',
  'freeleech',
  'token',
];

export const ADMIN_HELP = `Administration (on the tracker's database; a running tracker applies changes within policy_refresh seconds):
  herald member add NAME [--role member|uploader|moderator|admin] [--email E] [--invites N]
  herald member list [--search TEXT] | show MEMBER | disable MEMBER [--reason R] | ban MEMBER [--reason R]
  herald member enable MEMBER | reset-passkey MEMBER | set MEMBER [--role R] [--invites N] [--can-leech yes|no] [--hnr-immune yes|no] [--class NAME|auto]
  herald member password MEMBER < FILE   (portal password, first line of standard input)
  herald member reset-link MEMBER | 2fa-reset MEMBER   (a one-time password reset link; two-factor authentication off)
  herald member invite [--member INVITER] [--email E] [--days N]   (a portal invitation link)
  herald torrent add FILE.torrent [--category C] [--restricted yes] [--freeleech yes]
  herald torrent list [--search TEXT] | show TORRENT | remove TORRENT
  herald torrent set TORRENT [--freeleech yes|no] [--restricted yes|no] [--download-factor PCT] [--upload-factor PCT]
  herald list allow|deny add|remove INFO_HASH [--note N] | herald list allow|deny show
  herald client add|remove PEER_ID_PREFIX | herald client list        (client whitelist, e.g. -qB4 -TR4)
  herald group add NAME | list | add-member GROUP MEMBER | remove-member GROUP MEMBER
  herald grant add TORRENT (--member M | --group G) [--reference REF] [--expires UNIX_SECONDS]
  herald grant remove GRANT_ID | herald grant remove TORRENT (--member M | --group G) | grant list [--torrent T] [--member M]
  herald site show | site set download_factor|upload_factor PCT   (site-wide freeleech: download_factor 0)
  herald bonus show MEMBER | bonus give MEMBER POINTS [--note TEXT]   (bonus points: balance, tokens, ledger; POINTS may be negative, 2 decimals)
  herald token show MEMBER | token give MEMBER COUNT [--note TEXT] | token spend MEMBER TORRENT   (freeleech tokens: held, spent, given; COUNT may be negative)
  herald freeleech list [MEMBER] [--all] | freeleech give MEMBER --end TIME [--start TIME] [--double-upload yes] [--upload-factor PCT] [--note TEXT] | freeleech revoke ID
  herald event list [--all] | event add NAME --start TIME --end TIME [--freeleech yes] [--double-upload yes] [--upload-factor PCT]
  herald event set ID [--name N] [--start TIME] [--end TIME] [--freeleech yes|no] [--upload-factor PCT] | event cancel ID   (site-wide events)
  herald featured list [--all] | featured add TORRENT [--days N] [--start TIME] [--upload-factor PCT] | featured remove ID   (featured torrents)
  TIME is unix seconds or an ISO 8601 date and time (2026-12-24T18:00Z); promotions start and end to the second in the running tracker.
  herald class list | class history MEMBER   (member classes: configured, members in each; a member's changes)
  herald hnr list [--member M] [--status active|seeded|expired|forgiven] [--limit N] | hnr forgive ID [--note TEXT]   (hit-and-runs)
  MEMBER is an id, a username (in any case; never only digits) or a passkey; TORRENT an id or an info hash. Every command takes
  --json, and the same --data-dir/--config/--database-url flags as serve.
`;

interface Parsed {
  positionals: string[];
  opts: Record<string, string | boolean>;
  configArgs: string[];
}

function splitArgs(argv: string[]): Parsed {
  const configFlags = flagOptions();
  const positionals: string[] = [];
  const opts: Record<string, string | boolean> = {};
  const configArgs: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--') || a === '--') {
      positionals.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = a.slice(2, eq >= 0 ? eq : undefined);
    const inline = eq >= 0 ? a.slice(eq + 1) : undefined;
    const kind = ADMIN_OPTIONS[name];
    if (kind !== undefined) {
      if (kind === 'boolean') opts[name] = true;
      else {
        const v = inline ?? argv[++i];
        if (v === undefined) throw new ConfigError(`--${name} needs a value`);
        opts[name] = v;
      }
      continue;
    }
    const cf = configFlags[name];
    if (cf === undefined) throw new ConfigError(`unknown option --${name}`);
    configArgs.push(a);
    if (cf.type === 'string' && inline === undefined) {
      const v = argv[++i];
      if (v === undefined) throw new ConfigError(`--${name} needs a value`);
      configArgs.push(v);
    }
  }
  return { positionals, opts, configArgs };
}

const yes = (v: string | boolean | undefined, name: string): boolean | undefined => {
  if (v === undefined) return undefined;
  if (v === true || ['yes', 'on', 'true', '1'].includes(String(v))) return true;
  if (['no', 'off', 'false', '0'].includes(String(v))) return false;
  throw new RegistryError(`--${name}: yes or no`);
};
const intOpt = (v: string | boolean | undefined, name: string, max = 1e12): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > max) throw new RegistryError(`--${name}: an integer 0..${max}`);
  return n;
};

/** `--start`/`--end`: unix seconds or an ISO 8601 date and time. */
const timeOpt = (v: string | boolean | undefined, name: string): number | undefined => {
  if (v === undefined) return undefined;
  const t = String(v);
  if (/^[0-9]{1,11}$/.test(t)) return Number(t);
  const ms = /^[0-9]{4}-[0-9]{2}-[0-9]{2}/.test(t) ? Date.parse(t) : Number.NaN;
  if (Number.isNaN(ms))
    throw new RegistryError(`--${name}: unix seconds or an ISO 8601 time such as 2026-12-24T18:00Z`);
  return Math.floor(ms / 1000);
};

const utc = (t: number) => `${new Date(t * 1000).toISOString().slice(0, 16).replace('T', ' ')} UTC`;

/** One promotion on one line (event, featured torrent, personal window). */
function promotionLine(p: {
  id: number;
  starts_at: number;
  ends_at: number;
  upload_factor: number;
  what: string;
  free: boolean;
  ended: number | null;
}): string {
  const deal = [p.free ? 'freeleech' : '', p.upload_factor !== 100 ? `uploads ${p.upload_factor}%` : '']
    .filter((x) => x !== '')
    .join(' + ');
  return `#${p.id}  ${p.what}  ${utc(p.starts_at)} to ${utc(p.ends_at)}  ${deal}${p.ended !== null ? '  (ended early)' : ''}`;
}

/** One hit-and-run on one line. */
function hnrLine(h: HitAndRunView): string {
  const day = (t: number) => new Date(t * 1000).toISOString().slice(0, 10);
  return `${h.status}  ${h.username}  "${h.torrent_name}"  snatched ${day(h.snatched_at)}  marked ${day(h.marked_at)}  seeded ${Math.floor(h.seed_time_now / 3600)} h${h.note !== null ? `  note: ${h.note}` : ''}`;
}

/** Base URLs for announce URLs printed by the CLI: public_urls, else the first listen address of each kind. */
function baseUrls(c: HeraldConfig): string[] {
  const first = (list: string[]) => {
    const hp = list.length > 0 ? parseHostPort(list[0]) : null;
    return hp === null ? [] : [hp];
  };
  return announceBases(c.publicUrls, { http: first(c.http), https: first(c.https), udp: first(c.udp) });
}

/**
 * `herald member|torrent|list|client|group|grant|site ...`: staff operations from a shell, on the
 * same database as the tracker (SQLite in WAL mode or PostgreSQL), while it runs.
 */
export async function runAdmin(
  command: string,
  argv: string[],
  out: (s: string) => void,
  env: Record<string, string | undefined>,
): Promise<number> {
  const { positionals, opts, configArgs } = splitArgs(argv);
  const config = loadConfig({ argv: configArgs, env, cwd: process.cwd() });
  const db = await openDatabase(config.databaseUrl, config.dataDir);
  const reg = new Registry(db, { maxBytes: config.maxTorrentBytes, maxFiles: config.maxTorrentFiles });
  const json = opts.json === true;
  const print = (value: unknown, text: () => string) =>
    out(
      json
        ? `${JSON.stringify(value, (_k, v) => (v instanceof Uint8Array ? undefined : v), 2)}\n`
        : `${text()}\n`,
    );
  const urls = baseUrls(config);
  const classes = parseClasses(config.memberClasses);
  const member = (m: PublicMember) => ({ ...m, announce_urls: announceUrls(urls, m.passkey) });
  /**
   * What the member's profile shows (issue #16): the row, snatches, torrents seeding and leeching
   * now (from the database: as of the tracker's last accounting write), download rights and
   * ratio warnings.
   */
  const showMember = async (m: PublicMember) => {
    const mm = {
      ...member(m),
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
  };
  const [sub, ...rest] = positionals;
  const need = (n: number, usage: string) => {
    if (rest.length < n) throw new RegistryError(`usage: herald ${command} ${usage}`);
  };
  try {
    switch (`${command} ${sub ?? ''}`) {
      case 'member add': {
        need(1, 'add NAME');
        const role = (opts.role as string | undefined) ?? 'member';
        if (!(ROLES as readonly string[]).includes(role))
          throw new RegistryError(`--role: one of ${ROLES.join(', ')}`);
        await showMember(
          await reg.addMember({
            username: rest[0],
            role: role as Role,
            email: (opts.email as string | undefined) ?? null,
            invites: intOpt(opts.invites, 'invites', 100000),
          }),
        );
        break;
      }
      case 'member list': {
        const list = await reg.listMembers({
          search: opts.search as string | undefined,
          limit: intOpt(opts.limit, 'limit', 100000) ?? 1000,
        });
        print(list.map(member), () =>
          list
            .map(
              (m) =>
                `#${m.id}\t${m.username}\t${m.role}\t${m.status}\tup ${m.uploaded}\tdown ${m.downloaded}`,
            )
            .join('\n'),
        );
        break;
      }
      case 'member show':
        need(1, 'show MEMBER');
        await showMember(await reg.member(rest[0]));
        break;
      case 'member disable':
      case 'member ban':
      case 'member enable': {
        need(1, `${sub} MEMBER`);
        const status = sub === 'enable' ? 'active' : sub === 'ban' ? 'banned' : 'disabled';
        await showMember(
          await reg.setMemberStatus(rest[0], status, (opts.reason as string | undefined) ?? null),
        );
        break;
      }
      case 'member password': {
        // The password comes on standard input (never on the command line, where `ps` shows it).
        need(1, 'password MEMBER < password.txt');
        const m = await reg.member(rest[0]);
        const password = readFileSync(0, 'utf8').split(/\r?\n/)[0];
        if (password.length < 10)
          throw new RegistryError('password: at least 10 characters, on standard input');
        await reg.accounts.setPasswordHash(m.id, await hashPassword(password));
        await reg.accounts.deleteMemberSessions(m.id);
        print({ id: m.id, username: m.username, password: 'set' }, () => `password set for ${m.username}`);
        break;
      }
      case 'member invite': {
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
        break;
      }
      case 'member reset-link': {
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
        break;
      }
      case 'member 2fa-reset': {
        need(1, '2fa-reset MEMBER');
        const m = await reg.member(rest[0]);
        await reg.accounts.disableTwoFactor(m.id);
        await reg.accounts.deleteMemberSessions(m.id);
        print(
          { id: m.id, username: m.username, two_factor: 'off' },
          () => `two-factor authentication off for ${m.username}`,
        );
        break;
      }
      case 'member reset-passkey':
        need(1, 'reset-passkey MEMBER');
        await showMember(await reg.resetPasskey(rest[0]));
        break;
      case 'member set': {
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
        await showMember(m);
        break;
      }
      case 'bonus show': {
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
        break;
      }
      case 'bonus give': {
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
        break;
      }
      case 'token show': {
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
            ...t.spent.map(
              (w) => `  spent  "${w.torrent_name}"  free ${utc(w.starts_at)} to ${utc(w.ends_at)}`,
            ),
            ...t.ledger.map(
              (r) => `  ${r.reason === 'shop:token' ? 'bought' : 'staff '} ${r.note ?? ''}  ${utc(r.at)}`,
            ),
          ].join('\n'),
        );
        break;
      }
      case 'token give': {
        need(2, 'give MEMBER COUNT [--note TEXT]');
        const m = await reg.member(rest[0]);
        if (!/^-?[0-9]{1,5}$/.test(rest[1]))
          throw new RegistryError('COUNT: a whole number, may be negative');
        const n = await reg.freeleech.giveTokens(m, Number(rest[1]), {
          note: (opts.note as string | undefined) ?? null,
          by: null,
          at: Math.floor(Date.now() / 1000),
        });
        print({ freeleech_tokens: n }, () => `${m.username}: ${n} freeleech tokens`);
        break;
      }
      case 'token spend': {
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
        break;
      }
      case 'freeleech list': {
        const now = Math.floor(Date.now() / 1000);
        const list = await reg.freeleech.list({
          member: rest[0] !== undefined ? (await reg.member(rest[0])).id : undefined,
          after: opts.all === true ? undefined : now,
          limit: intOpt(opts.limit, 'limit', 100000) ?? 200,
        });
        print(list, () =>
          list.length === 0
            ? '(no freeleech windows)'
            : list
                .map((w) =>
                  promotionLine({
                    ...w,
                    what: `${w.username} on ${w.torrent_name === null ? 'every torrent' : `"${w.torrent_name}"`} (${w.source})`,
                    free: true,
                    ended: w.revoked_at,
                  }),
                )
                .join('\n'),
        );
        break;
      }
      case 'freeleech give': {
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
        print(w, () =>
          promotionLine({ ...w, what: `${w.username} on every torrent`, free: true, ended: null }),
        );
        break;
      }
      case 'freeleech revoke': {
        need(1, 'revoke ID');
        const w = await reg.freeleech.revoke(
          intOpt(rest[0], 'ID', 2 ** 31) ?? 0,
          Math.floor(Date.now() / 1000),
        );
        print(w, () =>
          promotionLine({ ...w, what: `${w.username} (revoked)`, free: true, ended: w.revoked_at }),
        );
        break;
      }
      case 'event list': {
        const list = await reg.promotions.events(
          opts.all === true ? { all: true } : { after: Math.floor(Date.now() / 1000) },
        );
        print(list, () =>
          list.length === 0
            ? '(no events)'
            : list
                .map((e) =>
                  promotionLine({
                    ...e,
                    what: `"${e.name}"`,
                    free: e.freeleech === 1,
                    ended: e.cancelled_at,
                  }),
                )
                .join('\n'),
        );
        break;
      }
      case 'event add': {
        need(
          1,
          'add NAME --start TIME --end TIME [--freeleech yes] [--double-upload yes] [--upload-factor PCT]',
        );
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
        break;
      }
      case 'event set': {
        need(1, 'set ID [--name N] [--start TIME] [--end TIME] [--freeleech yes|no] [--upload-factor PCT]');
        const e = await reg.promotions.updateEvent(intOpt(rest[0], 'ID', 2 ** 31) ?? 0, {
          name: opts.name as string | undefined,
          startsAt: timeOpt(opts.start, 'start'),
          endsAt: timeOpt(opts.end, 'end'),
          freeleech: yes(opts.freeleech, 'freeleech'),
          uploadFactor: intOpt(opts['upload-factor'], 'upload-factor', 1000),
        });
        print(e, () => promotionLine({ ...e, what: `"${e.name}"`, free: e.freeleech === 1, ended: null }));
        break;
      }
      case 'event cancel': {
        need(1, 'cancel ID');
        const e = await reg.promotions.cancelEvent(
          intOpt(rest[0], 'ID', 2 ** 31) ?? 0,
          Math.floor(Date.now() / 1000),
        );
        print(e, () =>
          promotionLine({ ...e, what: `"${e.name}"`, free: e.freeleech === 1, ended: e.cancelled_at }),
        );
        break;
      }
      case 'featured list': {
        const list = await reg.promotions.featured(
          opts.all === true ? {} : { after: Math.floor(Date.now() / 1000) },
        );
        print(list, () =>
          list.length === 0
            ? '(no featured torrents)'
            : list
                .map((f) =>
                  promotionLine({ ...f, what: `"${f.torrent_name}"`, free: true, ended: f.ended_at }),
                )
                .join('\n'),
        );
        break;
      }
      case 'featured add': {
        need(1, 'add TORRENT [--days N] [--start TIME] [--upload-factor PCT]');
        const t = await reg.torrent(rest[0]);
        const at = Math.floor(Date.now() / 1000);
        const start = timeOpt(opts.start, 'start') ?? at;
        const f = await reg.promotions.feature(
          t.id,
          {
            startsAt: start,
            endsAt: start + (intOpt(opts.days, 'days', 366) ?? config.featuredDays) * 86400,
            uploadFactor:
              intOpt(opts['upload-factor'], 'upload-factor', 1000) ?? config.promotionUploadFactor,
          },
          null,
          at,
        );
        print(f, () => promotionLine({ ...f, what: `"${f.torrent_name}"`, free: true, ended: null }));
        break;
      }
      case 'featured remove': {
        need(1, 'remove ID');
        const f = await reg.promotions.unfeature(
          intOpt(rest[0], 'ID', 2 ** 31) ?? 0,
          Math.floor(Date.now() / 1000),
        );
        print(f, () => promotionLine({ ...f, what: `"${f.torrent_name}"`, free: true, ended: f.ended_at }));
        break;
      }
      case 'class list': {
        const counts = await reg.classes.counts();
        const list = classes.map((c, i) => ({
          ...c,
          members: (counts.get(c.name) ?? 0) + (i === 0 ? (counts.get(null) ?? 0) : 0),
        }));
        print(list, () =>
          list.length === 0
            ? '(no member classes: set member_classes)'
            : list
                .map(
                  (c) =>
                    `${c.name}  members ${c.members}  days ${c.days} uploaded ${c.uploaded} ratio ${c.ratioPercent}% seed ${c.seedHours} h  slots ${c.slots || 'any'}  factors up ${c.uploadFactor}% down ${c.downloadFactor}%${c.invites !== null ? `  invites ${c.invites}` : ''}${c.hnrImmune ? '  hit-and-run immune' : ''}`,
                )
                .join('\n'),
        );
        break;
      }
      case 'class history': {
        need(1, 'history MEMBER');
        const h = await reg.classes.history((await reg.member(rest[0])).id);
        print(h, () =>
          h.length === 0
            ? '(no class changes)'
            : h
                .map(
                  (r) =>
                    `${new Date(r.at * 1000).toISOString()}  ${r.from_class ?? '(first)'} -> ${r.to_class}  ${r.reason}`,
                )
                .join('\n'),
        );
        break;
      }
      case 'hnr list': {
        const status = opts.status as string | undefined;
        if (status !== undefined && !(HNR_STATUSES as readonly string[]).includes(status))
          throw new RegistryError(`--status: one of ${HNR_STATUSES.join(', ')}`);
        const list = await reg.hnr.list({
          member: opts.member !== undefined ? (await reg.member(String(opts.member))).id : undefined,
          status: status as HnrStatus | undefined,
          limit: intOpt(opts.limit, 'limit', 100000) ?? 100,
        });
        print(list, () =>
          list.length === 0 ? '(no hit-and-runs)' : list.map((h) => `#${h.id} ${hnrLine(h)}`).join('\n'),
        );
        break;
      }
      case 'hnr forgive': {
        need(1, 'forgive ID [--note TEXT]');
        const id = intOpt(rest[0], 'ID', 2 ** 31);
        const h = await reg.hnr.forgive(id ?? 0, {
          by: null,
          note: (opts.note as string | undefined) ?? null,
          max: hnrThreshold(hnrRules(config)),
          at: Math.floor(Date.now() / 1000),
        });
        print(h, () => `#${h.id} ${hnrLine(h)}`);
        break;
      }
      case 'torrent add': {
        need(1, 'add FILE.torrent');
        let bytes: Buffer;
        try {
          bytes = readFileSync(rest[0]);
        } catch (err) {
          throw new RegistryError(`cannot read ${rest[0]}: ${(err as Error).message}`);
        }
        const free = yes(opts.freeleech, 'freeleech');
        const t = await reg.addTorrentFile(bytes, {
          category: (opts.category as string | undefined) ?? null,
          restricted: yes(opts.restricted, 'restricted') ?? false,
          downloadFactor: free ? 0 : intOpt(opts['download-factor'], 'download-factor', 10000),
          uploadFactor: intOpt(opts['upload-factor'], 'upload-factor', 10000),
          name: opts.name as string | undefined,
        });
        if (config.mode === 'private' && !t.private && !json)
          out('warning: this torrent has no private flag: clients may also use DHT and PEX with it\n');
        print(
          t,
          () =>
            `#${t.id} ${t.name}\n  info hash    ${t.info_hash ?? '-'}\n  info hash v2 ${t.info_hash_v2 ?? '-'}`,
        );
        break;
      }
      case 'torrent list': {
        const list = await reg.listTorrents({
          search: opts.search as string | undefined,
          limit: intOpt(opts.limit, 'limit', 100000) ?? 1000,
        });
        print(list, () =>
          list
            .map(
              (t) =>
                `#${t.id}\t${t.info_hash ?? t.info_hash_v2?.slice(0, 40)}\t${t.size}\t${t.snatches}\t${t.name}`,
            )
            .join('\n'),
        );
        break;
      }
      case 'torrent show': {
        need(1, 'show TORRENT');
        const t = await reg.torrent(rest[0]);
        print(t, () =>
          Object.entries(t)
            .map(([k, v]) => `${k.padEnd(16)} ${v ?? '-'}`)
            .join('\n'),
        );
        break;
      }
      case 'torrent remove': {
        need(1, 'remove TORRENT');
        const t = await reg.removeTorrent(rest[0]);
        print(t, () => `removed #${t.id} ${t.name}`);
        break;
      }
      case 'torrent set': {
        need(
          1,
          'set TORRENT [--freeleech yes|no] [--restricted yes|no] [--download-factor PCT] [--upload-factor PCT]',
        );
        const free = yes(opts.freeleech, 'freeleech');
        const t = await reg.updateTorrent(rest[0], {
          restricted: yes(opts.restricted, 'restricted'),
          downloadFactor:
            free !== undefined ? (free ? 0 : 100) : intOpt(opts['download-factor'], 'download-factor', 10000),
          uploadFactor: intOpt(opts['upload-factor'], 'upload-factor', 10000),
          category: opts.category as string | undefined,
          name: opts.name as string | undefined,
        });
        print(
          t,
          () =>
            `#${t.id} ${t.name}: download ${t.download_factor}%, upload ${t.upload_factor}%, restricted ${t.restricted ? 'yes' : 'no'}`,
        );
        break;
      }
      case 'list allow':
      case 'list deny': {
        const list = sub as 'allow' | 'deny';
        const [verb, hash] = rest;
        if (verb === 'add' && hash) {
          const h = await reg.addToList(list, hash, (opts.note as string | undefined) ?? null);
          print({ list, info_hash: h }, () => `added ${h} to the ${list} list`);
        } else if (verb === 'remove' && hash) {
          const removed = await reg.removeFromList(list, hash);
          print({ list, removed }, () =>
            removed ? `removed ${hash} from the ${list} list` : `${hash} was not on the ${list} list`,
          );
        } else if (verb === 'show' || verb === undefined) {
          const rows = await reg.listHashes(list);
          print(rows, () => rows.map((r) => `${r.info_hash}${r.note ? `\t${r.note}` : ''}`).join('\n'));
        } else
          throw new RegistryError(
            `usage: herald list ${list} add|remove INFO_HASH | herald list ${list} show`,
          );
        break;
      }
      case 'client add':
        need(1, 'add PREFIX');
        await reg.addClientPrefix(rest[0], (opts.note as string | undefined) ?? null);
        print({ prefix: rest[0] }, () => `allowed clients now include ${rest[0]}`);
        break;
      case 'client remove': {
        need(1, 'remove PREFIX');
        const removed = await reg.removeClientPrefix(rest[0]);
        print({ prefix: rest[0], removed }, () =>
          removed ? `removed ${rest[0]}` : `${rest[0]} was not listed`,
        );
        break;
      }
      case 'client list': {
        const rows = await reg.listClientPrefixes();
        print(rows, () =>
          rows.length ? rows.map((r) => r.prefix).join('\n') : '(empty: every client is allowed)',
        );
        break;
      }
      case 'group add': {
        need(1, 'add NAME');
        const g = await reg.addGroup(rest[0]);
        print(g, () => `group #${g.id} ${g.name}`);
        break;
      }
      case 'group list': {
        const rows = await reg.listGroups();
        print(rows, () => rows.map((g) => `#${g.id}\t${g.name}`).join('\n'));
        break;
      }
      case 'group add-member':
        need(2, 'add-member GROUP MEMBER');
        await reg.addToGroup(rest[0], rest[1]);
        print({ group: rest[0], member: rest[1] }, () => `${rest[1]} is in ${rest[0]}`);
        break;
      case 'group remove-member': {
        need(2, 'remove-member GROUP MEMBER');
        const removed = await reg.removeFromGroup(rest[0], rest[1]);
        print({ removed }, () =>
          removed ? `${rest[1]} left ${rest[0]}` : `${rest[1]} was not in ${rest[0]}`,
        );
        break;
      }
      case 'grant add': {
        need(1, 'add TORRENT (--member M | --group G)');
        const g = await reg.grant({
          torrent: rest[0],
          member: (opts.member as string | undefined) ?? null,
          group: (opts.group as string | undefined) ?? null,
          reference: (opts.reference as string | undefined) ?? null,
          expiresAt: intOpt(opts.expires, 'expires') ?? null,
        });
        print(
          g,
          () =>
            `grant #${g.id}: torrent #${g.torrent_id} to ${g.member_id ? `member #${g.member_id}` : `group #${g.group_id}`}`,
        );
        break;
      }
      case 'grant remove': {
        need(1, 'remove GRANT_ID | remove TORRENT (--member M | --group G)');
        const n =
          opts.member === undefined && opts.group === undefined
            ? await reg.revoke({ id: intOpt(rest[0], 'grant id') })
            : await reg.revoke({
                torrent: rest[0],
                member: opts.member as string | undefined,
                group: opts.group as string | undefined,
              });
        print({ revoked: n }, () => `${n} grant(s) revoked`);
        break;
      }
      case 'grant list': {
        const rows = await reg.listGrants({
          torrent: opts.torrent ? (await reg.torrent(opts.torrent as string)).id : undefined,
          member: opts.member ? (await reg.member(opts.member as string)).id : undefined,
        });
        print(rows, () =>
          rows
            .map(
              (g) =>
                `#${g.id}\ttorrent #${g.torrent_id}\t${g.member_id ? `member #${g.member_id}` : `group #${g.group_id}`}\t${g.reference ?? ''}`,
            )
            .join('\n'),
        );
        break;
      }
      case 'site show': {
        const s = {
          site_download_factor: Number((await reg.setting('site_download_factor')) ?? 100),
          site_upload_factor: Number((await reg.setting('site_upload_factor')) ?? 100),
          ...(await reg.counts()),
        };
        print(s, () =>
          Object.entries(s)
            .map(([k, v]) => `${k} ${v}`)
            .join('\n'),
        );
        break;
      }
      case 'site set': {
        need(2, 'set download_factor|upload_factor PCT');
        const key = rest[0].replace(/^site_/, '');
        if (key !== 'download_factor' && key !== 'upload_factor')
          throw new RegistryError('site set: download_factor or upload_factor');
        const v = intOpt(rest[1], key, 10000) ?? 100;
        await reg.setSetting(`site_${key}`, String(v));
        print({ [`site_${key}`]: v }, () => `site ${key} = ${v}%`);
        break;
      }
      default:
        throw new RegistryError(`unknown command: herald ${command} ${sub ?? ''}\n\n${ADMIN_HELP}`);
    }
    return 0;
  } catch (err) {
    if (err instanceof RegistryError) {
      process.stderr.write(`herald: ${err.message}\n`);
      return err.status === 404 ? 3 : 1;
    }
    throw err;
  } finally {
    await db.close();
  }
}
