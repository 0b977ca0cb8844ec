import { parseClasses } from '../config/classes.ts';
import { loadConfig } from '../config/load.ts';
import type { HeraldConfig } from '../config/schema.ts';
import { parseHostPort } from '../core/address.ts';
import { announceBases } from '../core/urls.ts';
import { openDatabase } from '../db/connect.ts';
import { Registry, RegistryError } from '../db/registry.ts';
import { clientCommands, grantCommands, groupCommands, listCommands } from './admin/access.ts';
import { splitArgs } from './admin/args.ts';
import { bonusCommands, tokenCommands } from './admin/bonus.ts';
import { classCommands } from './admin/class.ts';
import type { AdminCommands, AdminContext } from './admin/context.ts';
import { hnrCommands } from './admin/hnr.ts';
import { memberCommands } from './admin/member.ts';
import { eventCommands, featuredCommands, freeleechCommands } from './admin/promotions.ts';
import { siteCommands } from './admin/site.ts';
import { torrentCommands } from './admin/torrent.ts';

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

/** Base URLs for announce URLs printed by the CLI: public_urls, else the first listen address of each kind. */
function baseUrls(c: HeraldConfig): string[] {
  const first = (list: string[]) => {
    const hp = list.length > 0 ? parseHostPort(list[0]) : null;
    return hp === null ? [] : [hp];
  };
  return announceBases(c.publicUrls, { http: first(c.http), https: first(c.https), udp: first(c.udp) });
}

/** Every admin command's sub-commands (src/cli/admin/, one module per noun or two). */
const COMMANDS: Record<string, AdminCommands> = {
  member: memberCommands,
  torrent: torrentCommands,
  list: listCommands,
  client: clientCommands,
  group: groupCommands,
  grant: grantCommands,
  site: siteCommands,
  hnr: hnrCommands,
  class: classCommands,
  bonus: bonusCommands,
  event: eventCommands,
  featured: featuredCommands,
  freeleech: freeleechCommands,
  token: tokenCommands,
};

export const ADMIN_COMMANDS = Object.keys(COMMANDS);

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
  const [sub, ...rest] = positionals;
  const c: AdminContext = {
    command,
    sub: sub ?? '',
    rest,
    opts,
    config,
    reg,
    json,
    out,
    print: (value, text) =>
      out(
        json
          ? `${JSON.stringify(value, (_k, v) => (v instanceof Uint8Array ? undefined : v), 2)}\n`
          : `${text()}\n`,
      ),
    need: (n, usage) => {
      if (rest.length < n) throw new RegistryError(`usage: herald ${command} ${usage}`);
    },
    urls: baseUrls(config),
    classes: parseClasses(config.memberClasses),
  };
  try {
    const subs = Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined;
    const run = subs !== undefined && sub !== undefined && Object.hasOwn(subs, sub) ? subs[sub] : undefined;
    if (run === undefined)
      throw new RegistryError(`unknown command: herald ${command} ${sub ?? ''}\n\n${ADMIN_HELP}`);
    await run(c);
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
