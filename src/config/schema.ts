import { parseHostPort } from '../core/address.ts';
import { LOG_LEVELS, type LogLevel } from '../core/log.ts';

/** Herald's whole configuration, as the code sees it (camelCase). */
export interface HeraldConfig {
  http: string[];
  https: string[];
  tlsCert: string | null;
  tlsKey: string | null;
  udp: string[];
  ws: string[];
  dataDir: string;
  config: string | null;
  interval: number;
  minInterval: number;
  peerTimeout: number;
  defaultNumWant: number;
  maxNumWant: number;
  trustedProxies: string[];
  fullScrape: boolean;
  fullScrapeInterval: number;
  maxScrapeHashes: number;
  httpIdleTimeout: number;
  udpSecret: string | null;
  udpIo: 'auto' | 'batched' | 'dgram';
  httpIo: 'auto' | 'batched' | 'node';
  logLevel: LogLevel;
  logRequests: boolean;
  mode: 'open' | 'whitelist' | 'private';
  databaseUrl: string;
  flushInterval: number;
  policyRefresh: number;
  maxRate: number;
  apiToken: string | null;
  publicUrls: string[];
  portal: 'auto' | 'on' | 'off';
  portalListen: string[];
  portalPath: string;
  siteName: string;
  registration: 'invite' | 'open' | 'closed';
  applications: boolean;
  categories: string[];
  inviteExpiryDays: number;
  inviteMinRatioPercent: number;
  inviteMinAgeDays: number;
  inviteMinUploaded: number;
  invitesPerPeriod: number;
  invitePeriodDays: number;
}

type Kind =
  | 'listen-list'
  | 'string-list'
  | 'url-list'
  | 'path'
  | 'path?'
  | 'string'
  | 'secret?'
  | 'int'
  | 'bool'
  | 'hex?'
  | 'level'
  | 'udp-io'
  | 'mode'
  | 'choice';

export interface KeyDef {
  key: keyof HeraldConfig;
  kind: Kind;
  /** For ints: inclusive range. */
  min?: number;
  max?: number;
  default: HeraldConfig[keyof HeraldConfig];
  doc: string;
  /** Flag value placeholder in help text. */
  arg?: string;
  /** snake_case name when it is not derived from `key` (numwant is one word on the wire). */
  name?: string;
  /** For `choice`: the allowed values. */
  choices?: readonly string[];
}

/**
 * Every key, its default and one line of documentation, in one place (STYLE.md example 12).
 * Names derive from `key`: TOML `snake_case`, flag `--kebab-case`, environment `HERALD_UPPER_SNAKE`.
 */
export const SCHEMA: readonly KeyDef[] = [
  {
    key: 'http',
    kind: 'listen-list',
    default: ['0.0.0.0:6969', '[::]:6969'],
    arg: 'HOST:PORT',
    doc: 'HTTP listen addresses (repeatable; "off" disables HTTP)',
  },
  {
    key: 'https',
    kind: 'listen-list',
    default: [],
    arg: 'HOST:PORT',
    doc: 'HTTPS listen addresses (repeatable; needs tls_cert and tls_key)',
  },
  {
    key: 'tlsCert',
    kind: 'path?',
    default: null,
    arg: 'FILE',
    doc: 'TLS certificate chain (PEM) for HTTPS; reloaded on SIGHUP',
  },
  {
    key: 'tlsKey',
    kind: 'path?',
    default: null,
    arg: 'FILE',
    doc: 'TLS private key (PEM) for HTTPS; reloaded on SIGHUP',
  },
  {
    key: 'udp',
    kind: 'listen-list',
    default: ['0.0.0.0:6969', '[::]:6969'],
    arg: 'HOST:PORT',
    doc: 'UDP (BEP 15) listen addresses (repeatable; "off" disables UDP)',
  },
  {
    key: 'ws',
    kind: 'listen-list',
    default: [],
    arg: 'HOST:PORT',
    doc: 'Extra WebSocket (WebTorrent) listen addresses; WebTorrent clients can also use the HTTP(S) listeners (ws:// and wss:// on /announce)',
  },
  {
    key: 'dataDir',
    kind: 'path',
    default: './data',
    arg: 'DIR',
    doc: "Directory for Herald's data (and herald.toml, read when present)",
  },
  {
    key: 'config',
    kind: 'path?',
    default: null,
    arg: 'FILE',
    doc: 'TOML configuration file (default: <data_dir>/herald.toml if it exists)',
  },
  {
    key: 'interval',
    kind: 'int',
    min: 1,
    max: 86400,
    default: 1800,
    arg: 'SECONDS',
    doc: 'Seconds clients should wait between announces',
  },
  {
    key: 'minInterval',
    kind: 'int',
    min: 1,
    max: 86400,
    default: 900,
    arg: 'SECONDS',
    doc: 'Seconds clients must wait between announces (min interval)',
  },
  {
    key: 'peerTimeout',
    kind: 'int',
    min: 2,
    max: 172800,
    default: 2700,
    arg: 'SECONDS',
    doc: 'Seconds after its last announce that a peer is dropped (must exceed interval)',
  },
  {
    key: 'defaultNumWant',
    name: 'default_numwant',
    kind: 'int',
    min: 0,
    max: 1000,
    default: 50,
    arg: 'N',
    doc: 'Peers returned when the client does not say how many (numwant)',
  },
  {
    key: 'maxNumWant',
    name: 'max_numwant',
    kind: 'int',
    min: 0,
    max: 1000,
    default: 200,
    arg: 'N',
    doc: 'Most peers returned to one announce, whatever numwant asks',
  },
  {
    key: 'trustedProxies',
    kind: 'string-list',
    default: [],
    arg: 'ADDRESS',
    doc: 'Proxy addresses whose X-Forwarded-For and ip= are believed (repeatable; "*" = all, only if no client reaches Herald directly)',
  },
  {
    key: 'fullScrape',
    kind: 'bool',
    default: false,
    doc: 'Answer /scrape without info_hash with every torrent (gzip, rate-limited)',
  },
  {
    key: 'fullScrapeInterval',
    kind: 'int',
    min: 1,
    max: 86400,
    default: 60,
    arg: 'SECONDS',
    doc: 'Seconds one address (an IPv6 /64 counts as one) must wait between full scrapes, HTTP or WebSocket',
  },
  {
    key: 'httpIdleTimeout',
    kind: 'int',
    min: 1,
    max: 3600,
    default: 30,
    arg: 'SECONDS',
    doc: 'Seconds after which an HTTP(S) connection that has sent no complete request is closed (idle keep-alive, slow heads)',
  },
  {
    key: 'maxScrapeHashes',
    kind: 'int',
    min: 1,
    max: 10000,
    default: 100,
    arg: 'N',
    doc: 'Most info_hash values in one HTTP scrape',
  },
  {
    key: 'udpSecret',
    kind: 'hex?',
    default: null,
    arg: 'HEX',
    doc: 'Key for UDP connection ids, 32+ hex digits; share it between instances (default: random per start)',
  },
  {
    key: 'udpIo',
    kind: 'udp-io',
    default: 'auto',
    arg: 'MODE',
    doc: 'UDP socket I/O: batched (recvmmsg/sendmmsg addon), dgram (Node sockets) or auto (batched when built)',
  },
  {
    key: 'httpIo',
    kind: 'choice',
    choices: ['auto', 'batched', 'node'],
    default: 'auto',
    arg: 'MODE',
    doc: 'Plain HTTP listener I/O: batched (a native addon accepts, reads and writes tracker connections; everything else moves to Node sockets), node (node:net sockets) or auto (batched when built and the swarm store is in memory); HTTPS always uses node:tls',
  },
  {
    key: 'mode',
    kind: 'mode',
    default: 'open',
    arg: 'MODE',
    doc: 'open (any torrent; blacklist applies), whitelist (listed and registered torrents only) or private (members with a passkey, registered torrents, accounting)',
  },
  {
    key: 'databaseUrl',
    kind: 'string',
    default: '',
    arg: 'URL',
    doc: 'Database: empty = SQLite file <data_dir>/herald.db; sqlite:PATH; or postgres://user:password@host:port/db',
  },
  {
    key: 'flushInterval',
    kind: 'int',
    min: 1,
    max: 3600,
    default: 10,
    arg: 'SECONDS',
    doc: 'Private mode: seconds between accounting writes (one transaction each); the most a crash can lose',
  },
  {
    key: 'policyRefresh',
    kind: 'int',
    min: 1,
    max: 3600,
    default: 2,
    arg: 'SECONDS',
    doc: 'Seconds between checks for changes made by the CLI, API or portal (members, torrents, lists, grants)',
  },
  {
    key: 'maxRate',
    kind: 'int',
    min: 0,
    max: 1e15,
    default: 1_250_000_000,
    arg: 'BYTES_PER_SECOND',
    doc: 'Private mode: an upload or download delta faster than this is flagged for staff and not credited (0 = no limit)',
  },
  {
    key: 'apiToken',
    kind: 'secret?',
    default: null,
    arg: 'TOKEN',
    doc: 'Bearer token for the JSON API under /api (16+ characters; unset = API off)',
  },
  {
    key: 'publicUrls',
    kind: 'url-list',
    default: [],
    arg: 'URL',
    doc: 'Base URLs members use to reach this tracker, e.g. https://tracker.example.org or udp://tracker.example.org:6969 (repeatable; default: from the listen addresses)',
  },
  {
    key: 'portal',
    kind: 'choice',
    choices: ['auto', 'on', 'off'],
    default: 'auto',
    arg: 'auto|on|off',
    doc: 'The community web portal (login, invitations, torrents, staff pages); auto = on in private mode',
  },
  {
    key: 'portalListen',
    kind: 'listen-list',
    default: [],
    arg: 'HOST:PORT',
    doc: 'Serve the portal on its own HTTP listeners instead of on the tracker HTTP(S) ports (repeatable)',
  },
  {
    key: 'portalPath',
    kind: 'string',
    default: '',
    arg: 'PATH',
    doc: 'Serve the portal under this path, e.g. /portal (default: at the root, around /announce and /api)',
  },
  {
    key: 'siteName',
    kind: 'string',
    default: 'Herald',
    arg: 'NAME',
    doc: 'Portal: the community name shown in titles and feeds',
  },
  {
    key: 'registration',
    kind: 'choice',
    choices: ['invite', 'open', 'closed'],
    default: 'invite',
    arg: 'invite|open|closed',
    doc: 'Portal: who may create an account (the first account of a new installation is always allowed, and is the administrator)',
  },
  {
    key: 'applications',
    kind: 'bool',
    default: false,
    doc: 'Portal: prospective members may apply with a short form; staff approve (issues an invitation) or reject',
  },
  {
    key: 'categories',
    kind: 'string-list',
    default: ['Movies', 'TV', 'Music', 'Books', 'Software', 'Games', 'Other'],
    arg: 'NAME',
    doc: 'Portal: torrent categories offered on upload and browse (repeatable)',
  },
  {
    key: 'inviteExpiryDays',
    kind: 'int',
    min: 1,
    max: 365,
    default: 7,
    arg: 'DAYS',
    doc: 'Portal: days an invitation link stays valid',
  },
  {
    key: 'inviteMinRatioPercent',
    kind: 'int',
    min: 0,
    max: 1_000_000,
    default: 100,
    arg: 'PERCENT',
    doc: 'Invite earning: least ratio, in percent (100 = uploaded at least as much as downloaded)',
  },
  {
    key: 'inviteMinAgeDays',
    kind: 'int',
    min: 0,
    max: 36500,
    default: 30,
    arg: 'DAYS',
    doc: 'Invite earning: least account age in days',
  },
  {
    key: 'inviteMinUploaded',
    kind: 'int',
    min: 0,
    max: 1e15,
    default: 10 * 1024 ** 3,
    arg: 'BYTES',
    doc: 'Invite earning: least credited upload in bytes (default 10 GiB)',
  },
  {
    key: 'invitesPerPeriod',
    kind: 'int',
    min: 0,
    max: 1000,
    default: 1,
    arg: 'N',
    doc: 'Invite earning: invites a qualifying member earns per period (0 = only staff grant invites)',
  },
  {
    key: 'invitePeriodDays',
    kind: 'int',
    min: 1,
    max: 3650,
    default: 30,
    arg: 'DAYS',
    doc: 'Invite earning: length of one period in days',
  },
  {
    key: 'logLevel',
    kind: 'level',
    default: 'info',
    arg: 'LEVEL',
    doc: `Log level: ${LOG_LEVELS.join(', ')}`,
  },
  {
    key: 'logRequests',
    kind: 'bool',
    default: false,
    doc: 'Log every tracker request (costly; for debugging)',
  },
];

const snakeOf = (k: string) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
/** TOML key. */
export const tomlName = (d: KeyDef) => d.name ?? snakeOf(d.key);
/** Command-line flag, without the dashes. */
export const flagName = (d: KeyDef) => tomlName(d).replace(/_/g, '-');
/** Environment variable. */
export const envName = (d: KeyDef) => `HERALD_${tomlName(d).toUpperCase()}`;

export function defaults(): HeraldConfig {
  const out: Record<string, unknown> = {};
  for (const d of SCHEMA) out[d.key] = Array.isArray(d.default) ? [...d.default] : d.default;
  return out as unknown as HeraldConfig;
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/**
 * Turns a raw value (TOML value, or string from env/flags) into the key's type, or throws a
 * ConfigError naming the key and where the value came from.
 */
export function coerce(def: KeyDef, raw: unknown, source: string): unknown {
  const name = tomlName(def);
  const bad = (why: string): never => {
    throw new ConfigError(`config: ${name}: ${why} (got ${JSON.stringify(raw)}) [from ${source}]`);
  };
  switch (def.kind) {
    case 'int': {
      let n: number;
      if (typeof raw === 'number' || typeof raw === 'bigint') n = Number(raw);
      else if (typeof raw === 'string' && /^-?[0-9]{1,15}$/.test(raw.trim())) n = Number(raw.trim());
      else return bad('must be an integer');
      if (!Number.isInteger(n)) return bad('must be an integer');
      if (def.min !== undefined && n < def.min) return bad(`must be >= ${def.min}`);
      if (def.max !== undefined && n > def.max) return bad(`must be <= ${def.max}`);
      return n;
    }
    case 'bool': {
      if (typeof raw === 'boolean') return raw;
      if (typeof raw === 'string') {
        const s = raw.trim().toLowerCase();
        if (['true', '1', 'yes', 'on'].includes(s)) return true;
        if (['false', '0', 'no', 'off'].includes(s)) return false;
      }
      return bad('must be true or false');
    }
    case 'path':
      if (typeof raw !== 'string' || raw.length === 0) return bad('must be a non-empty path');
      return raw;
    case 'path?':
      if (raw === null || raw === '') return null;
      if (typeof raw !== 'string') return bad('must be a path');
      return raw;
    case 'hex?':
      if (raw === null || raw === '') return null;
      if (typeof raw !== 'string' || !/^[0-9a-fA-F]{32,128}$/.test(raw) || raw.length % 2 !== 0)
        return bad('must be an even number (32 to 128) of hex digits');
      return raw.toLowerCase();
    case 'udp-io':
      if (raw !== 'auto' && raw !== 'batched' && raw !== 'dgram')
        return bad('must be auto, batched or dgram');
      return raw;
    case 'mode':
      if (raw !== 'open' && raw !== 'whitelist' && raw !== 'private')
        return bad('must be open, whitelist or private');
      return raw;
    case 'choice':
      if (typeof raw !== 'string' || !(def.choices ?? []).includes(raw))
        return bad(`must be one of ${(def.choices ?? []).join(', ')}`);
      return raw;
    case 'string':
      if (typeof raw !== 'string') return bad('must be a string');
      return raw;
    case 'secret?':
      if (raw === null || raw === '') return null;
      if (typeof raw !== 'string' || raw.length < 16 || /\s/.test(raw))
        return bad('must be at least 16 characters without spaces');
      return raw;
    case 'level':
      if (typeof raw !== 'string' || !LOG_LEVELS.includes(raw as LogLevel))
        return bad(`must be one of ${LOG_LEVELS.join(', ')}`);
      return raw;
    case 'url-list':
    case 'string-list':
    case 'listen-list': {
      const list = listOf(raw);
      if (list === null) return bad('must be a list of strings');
      if (def.kind === 'listen-list') {
        if (list.length === 1 && list[0] === 'off') return [];
        for (const item of list)
          if (parseHostPort(item) === null)
            bad(`"${item}" is not HOST:PORT ([v6]:PORT for IPv6, port 0-65535)`);
      }
      if (def.kind === 'url-list')
        for (const item of list) {
          let u: URL | null = null;
          try {
            u = new URL(item);
          } catch {}
          if (u === null || !['http:', 'https:', 'udp:', 'ws:', 'wss:'].includes(u.protocol))
            bad(`"${item}" is not an http(s):// or udp:// URL`);
        }
      return list;
    }
  }
}

function listOf(raw: unknown): string[] | null {
  if (typeof raw === 'string')
    return raw
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s.length > 0);
  if (Array.isArray(raw) && raw.every((x) => typeof x === 'string')) return raw.map((s) => s.trim());
  return null;
}

/** Checks relations between keys. Throws ConfigError naming the keys. */
export function validateRelations(c: HeraldConfig): void {
  if (c.peerTimeout <= c.interval)
    throw new ConfigError(
      `config: peer_timeout (${c.peerTimeout}) must be greater than interval (${c.interval})`,
    );
  if (c.minInterval > c.interval)
    throw new ConfigError(`config: min_interval (${c.minInterval}) must not exceed interval (${c.interval})`);
  if (c.defaultNumWant > c.maxNumWant)
    throw new ConfigError(
      `config: default_numwant (${c.defaultNumWant}) must not exceed max_numwant (${c.maxNumWant})`,
    );
  if (c.https.length > 0 && (!c.tlsCert || !c.tlsKey))
    throw new ConfigError('config: https: listening for HTTPS needs tls_cert and tls_key');
  if (c.portalPath !== '' && !/^(\/[A-Za-z0-9._~-]+)+$/.test(c.portalPath))
    throw new ConfigError(
      `config: portal_path: a path like /portal, without a trailing slash (got "${c.portalPath}")`,
    );
  if (c.http.length === 0 && c.https.length === 0 && c.udp.length === 0 && c.ws.length === 0)
    throw new ConfigError('config: http, https, udp and ws are all off: nothing to serve');
}
