import { parseHostPort, parseIp } from '../core/address.ts';
import { LOG_LEVELS, type LogLevel } from '../core/log.ts';
import { ROLES } from '../db/schema.ts';
import { parseClasses } from './classes.ts';

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
  maxPeers: number;
  maxTorrents: number;
  /** 'memory', or a Redis URL: swarms shared by every instance that names it (issue #14). */
  store: string;
  redisPrefix: string;
  redisTimeout: number;
  /** Whether announces use the Herald Redis module's HERALD.ANNOUNCE instead of the Lua script. */
  redisModule: 'auto' | 'off' | 'require';
  trustedProxies: string[];
  trustIpParam: boolean;
  fullScrape: boolean;
  fullScrapeInterval: number;
  maxScrapeHashes: number;
  httpIdleTimeout: number;
  wsIdleTimeout: number;
  wsFirstAnnounceTimeout: number;
  wsPingInterval: number;
  maxConnectionsPerIp: number;
  udpSecret: string | null;
  udpIo: 'auto' | 'batched' | 'dgram';
  /** Worker processes serving one set of swarms (issue #13); 'auto' = usable CPUs. */
  workers: number | 'auto';
  httpIo: 'auto' | 'batched' | 'node';
  workerSwarms: 'auto' | 'shared' | 'sharded';
  logLevel: LogLevel;
  logRequests: boolean;
  mode: 'open' | 'whitelist' | 'private';
  databaseUrl: string;
  flushInterval: number;
  policyRefresh: number;
  maxRate: number;
  accountingMaxPeers: number;
  peersPerTorrent: number;
  peersPerMember: number;
  earlyAnnounce: 'off' | 'warn' | 'refuse';
  announceGrace: number;
  peerListLimit: number;
  peerListWindow: number;
  connectableCheck: 'off' | 'private' | 'any';
  connectableConcurrency: number;
  connectableQueue: number;
  connectableTimeout: number;
  connectableInterval: number;
  connectablePrivateAddresses: boolean;
  connectableOnlyForUnconnectable: boolean;
  ratioWatchMinPercent: number;
  ratioWatchGrace: number;
  ratioWatchDays: number;
  ratioWatchInterval: number;
  hnrSeedHours: number;
  hnrDays: number;
  hnrRatioPercent: number;
  hnrMax: number;
  hnrExpireDays: number;
  hnrImmuneRoles: string[];
  hnrInterval: number;
  memberClasses: string[];
  classInterval: number;
  bonusBase: number;
  bonusPerGib: number;
  bonusGibCap: number;
  bonusFewSeeders: number;
  bonusFewPoints: number;
  bonusOldDays: number;
  bonusOldPoints: number;
  bonusInterval: number;
  bonusUploadPrice: number;
  bonusInvitePrice: number;
  bonusTokenPrice: number;
  freeleechTokenDays: number;
  promotionUploadFactor: number;
  featuredDays: number;
  apiToken: string | null;
  publicUrls: string[];
  portal: 'auto' | 'on' | 'off';
  portalListen: string[];
  portalPath: string;
  siteName: string;
  registration: 'invite' | 'open' | 'closed';
  applications: boolean;
  categories: string[];
  maxTorrentBytes: number;
  maxTorrentFiles: number;
  uploadsPerHour: number;
  hideRestricted: boolean;
  inviteExpiryDays: number;
  inviteMinRatioPercent: number;
  inviteMinAgeDays: number;
  inviteMinUploaded: number;
  invitesPerPeriod: number;
  invitePeriodDays: number;
  /** Account mail (issue #16): an smtp:// or smtps:// URL; '' = no mail. */
  smtpUrl: string;
  mailFrom: string;
  siteUrl: string;
  resetLinkMinutes: number;
  require2faForStaff: boolean;
  totpEncryptionKey: string | null;
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
  | 'workers'
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
    key: 'maxPeers',
    kind: 'int',
    min: 1,
    max: 1_000_000_000,
    default: 5_000_000,
    arg: 'N',
    doc: 'Most peers held in memory: past it a new peer is refused with "tracker is full, try later" (peers already held keep announcing). About 40-90 bytes a peer, up to 340 for IPv6 peers in big swarms (the default: 0.2-1.7 GB)',
  },
  {
    key: 'maxTorrents',
    kind: 'int',
    min: 1,
    max: 1_000_000_000,
    default: 2_000_000,
    arg: 'N',
    doc: 'Most torrents (swarms with peers) held in memory: past it an announce that would add one is refused the same way',
  },
  {
    key: 'store',
    kind: 'string',
    default: 'memory',
    arg: 'URL',
    doc: 'Where swarms live: memory (this process), or Redis shared by several instances: redis://[:password@]host:port[/db], rediss:// (TLS), or redis-cluster://host:port,host:port (Cluster seed nodes). With Redis, udp_secret must be set and the same on every instance; max_peers and max_torrents do not apply (Redis maxmemory does). See docs/redis.md',
  },
  {
    key: 'redisPrefix',
    kind: 'string',
    default: 'herald',
    arg: 'PREFIX',
    doc: 'Redis store: prefix of every key; instances with the same store and prefix share their swarms',
  },
  {
    key: 'redisTimeout',
    kind: 'int',
    min: 10,
    max: 60000,
    default: 1000,
    arg: 'MS',
    doc: 'Redis store: most milliseconds any call may take; past it the announce or scrape gets "tracker storage unavailable, try again later"',
  },
  {
    key: 'redisModule',
    kind: 'choice',
    choices: ['auto', 'off', 'require'],
    default: 'auto',
    arg: 'MODE',
    doc: 'Redis store: announces through the Herald Redis module (HERALD.ANNOUNCE, native/build/herald-redis.so loaded by redis-server) instead of the Lua script: auto (when the server has it), off (always Lua) or require (announces fail while it is missing). Same keys either way. See docs/redis.md',
  },
  {
    key: 'trustedProxies',
    kind: 'string-list',
    default: [],
    arg: 'ADDRESS',
    doc: 'Reverse proxy addresses whose X-Forwarded-For is read: the client is the rightmost entry that is not itself a trusted proxy (repeatable; "*" = any direct peer, only if no client reaches Herald directly)',
  },
  {
    key: 'trustIpParam',
    kind: 'bool',
    default: false,
    doc: "Believe the announce ip= parameter (HTTP): any client can then register, or remove with event=stopped, a peer at another host's address; only for a network of trusted clients",
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
    doc: 'Seconds one address (an IPv6 /64 counts as one; over HTTP behind trusted_proxies, the client X-Forwarded-For names) must wait between full scrapes, HTTP or WebSocket',
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
    key: 'wsIdleTimeout',
    kind: 'int',
    min: 0,
    max: 172800,
    default: 0,
    arg: 'SECONDS',
    doc: 'Seconds without an answered announce after which a WebSocket is closed; scrapes, pings and refused announces do not count (0 = the later of peer_timeout and interval + 60; else must exceed interval)',
  },
  {
    key: 'wsFirstAnnounceTimeout',
    kind: 'int',
    min: 1,
    max: 3600,
    default: 30,
    arg: 'SECONDS',
    doc: 'Seconds a new WebSocket has to make its first answered announce (an upgrade request on a ws listener to arrive; a message, once begun, to arrive whole) before it is closed',
  },
  {
    key: 'wsPingInterval',
    kind: 'int',
    min: 0,
    max: 3600,
    default: 60,
    arg: 'SECONDS',
    doc: 'A WebSocket silent this long is pinged, and dropped when silent twice as long (a vanished client; 0 = no pings)',
  },
  {
    key: 'maxConnectionsPerIp',
    name: 'max_connections_per_ip',
    kind: 'int',
    min: 0,
    max: 1_000_000,
    default: 128,
    arg: 'N',
    doc: 'Most HTTP(S) and WebSocket connections one address (an IPv6 /64) may hold open at once, over every listener together; more are closed at once (0 = no limit; trusted_proxies are not counted; with workers, over every worker)',
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
    key: 'workers',
    kind: 'workers',
    default: 1,
    arg: 'N',
    doc: 'Worker processes (1-256, or auto = usable CPUs); swarms in memory are sharded by info hash, so every worker serves every torrent; with a Redis store every worker uses Redis directly (see README "Workers")',
  },
  {
    key: 'workerSwarms',
    kind: 'choice',
    choices: ['auto', 'shared', 'sharded'],
    default: 'auto',
    arg: 'HOW',
    doc: "With workers and swarms in memory: shared (every worker answers every announce from swarms in memory all of them map, no hand-over; open and whitelist modes), sharded (each worker holds the swarms of its share of info hashes and hands the others' announces to their owner; private mode always) or auto (sharded for now; shared is opt-in, see README Workers)",
  },
  {
    key: 'httpIo',
    kind: 'choice',
    choices: ['auto', 'batched', 'node'],
    default: 'auto',
    arg: 'MODE',
    doc: 'Plain HTTP listener I/O: batched (a native addon accepts, reads and writes tracker connections, and holds a connection whose answer comes from another worker or an asynchronous store; everything else moves to Node sockets), node (node:net sockets) or auto (batched when built); HTTPS always uses node:tls',
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
    doc: 'Private mode: most bytes per second credited to one member on one torrent (all its peer ids together), and to one address (IPv4, or IPv6 /64) over all members and torrents; a delta beyond it is flagged for staff and not credited (0 = no limit)',
  },
  {
    key: 'accountingMaxPeers',
    kind: 'int',
    min: 1,
    max: 100_000_000,
    default: 1_000_000,
    arg: 'N',
    doc: 'Private mode: most peers (member × torrent × peer id) whose counters accounting remembers between announces; past it the least recently seen is forgotten, and its next announce credits nothing',
  },
  {
    key: 'peersPerTorrent',
    kind: 'int',
    min: 0,
    max: 1_000_000,
    default: 3,
    arg: 'N',
    doc: 'Private mode: most peers (clients, by peer id) one member may run on one torrent; a new one beyond it is refused until one stops or goes silent for peer_timeout (0 = no limit)',
  },
  {
    key: 'peersPerMember',
    kind: 'int',
    min: 0,
    max: 100_000_000,
    default: 0,
    arg: 'N',
    doc: 'Private mode: most peers one member may run over all torrents, counted over every worker and every instance on Redis (0 = no limit; see README "Rules")',
  },
  {
    key: 'earlyAnnounce',
    kind: 'choice',
    choices: ['off', 'warn', 'refuse'],
    default: 'warn',
    arg: 'off|warn|refuse',
    doc: 'Private mode: an announce of a peer sooner than min_interval - announce_grace after its previous one gets a warning message, or is refused without counting anything (stopped and completed always pass)',
  },
  {
    key: 'announceGrace',
    kind: 'int',
    min: 0,
    max: 86400,
    default: 60,
    arg: 'SECONDS',
    doc: 'Private mode: seconds of slack under min_interval before an announce is early (clients and clocks are not exact)',
  },
  {
    key: 'peerListLimit',
    kind: 'int',
    min: 0,
    max: 100_000_000,
    default: 0,
    arg: 'N',
    doc: 'Private mode: most peer lists one member receives per peer_list_window, against peer scraping; beyond it the list is empty and the announce still counts (0 = no limit; with workers, counted over every worker by the member\'s home worker, a few lists over in practice, workers × limit at most: README "Workers")',
  },
  {
    key: 'peerListWindow',
    kind: 'int',
    min: 1,
    max: 604800,
    default: 3600,
    arg: 'SECONDS',
    doc: 'Private mode: the window of peer_list_limit, in seconds',
  },
  {
    key: 'connectableCheck',
    kind: 'choice',
    choices: ['off', 'private', 'any'],
    default: 'off',
    arg: 'off|private|any',
    doc: 'Connectable check: Herald connects to each new peer\'s endpoint and sends a BitTorrent handshake for its torrent (private: in private mode; any: in every mode). Off by default: it shows the tracker\'s own address to every peer (README "Connectable check")',
  },
  {
    key: 'connectableConcurrency',
    kind: 'int',
    min: 1,
    max: 10_000,
    default: 32,
    arg: 'N',
    doc: 'Connectable check: most checks (sockets) at once (with workers, per worker)',
  },
  {
    key: 'connectableQueue',
    kind: 'int',
    min: 0,
    max: 1_000_000,
    default: 1000,
    arg: 'N',
    doc: 'Connectable check: most endpoints waiting for a check; a new one beyond is skipped (counted in /metrics) and tried again at its next announce',
  },
  {
    key: 'connectableTimeout',
    kind: 'int',
    min: 1,
    max: 120,
    default: 5,
    arg: 'SECONDS',
    doc: 'Connectable check: seconds a check may take (connect and handshake answer); no answer by then is "not connectable"',
  },
  {
    key: 'connectableInterval',
    kind: 'int',
    min: 1,
    max: 30 * 86400,
    default: 3600,
    arg: 'SECONDS',
    doc: 'Connectable check: seconds a result stands for an endpoint (address and port) before it is checked again',
  },
  {
    key: 'connectablePrivateAddresses',
    kind: 'bool',
    default: false,
    doc: 'Connectable check: also check peers at loopback, private (RFC 1918, RFC 4193), link-local and other reserved addresses (a LAN tracker; tests). Off: they are skipped and stay "unknown"',
  },
  {
    key: 'connectableOnlyForUnconnectable',
    kind: 'bool',
    default: false,
    doc: 'Connectable check: a peer found not connectable gets only peers found connectable in its peer lists (it could reach no other); its list may then be shorter than numwant',
  },
  {
    key: 'ratioWatchMinPercent',
    kind: 'int',
    min: 0,
    max: 1_000_000,
    default: 0,
    arg: 'PERCENT',
    doc: 'Ratio watch (private mode): least ratio, in percent (60 = 0.6); a member below it is warned, and loses download rights after ratio_watch_days (0 = off)',
  },
  {
    key: 'ratioWatchGrace',
    kind: 'int',
    min: 0,
    max: 1e15,
    default: 5 * 1024 ** 3,
    arg: 'BYTES',
    doc: 'Ratio watch: credited download below which the ratio is not judged (default 5 GiB)',
  },
  {
    key: 'ratioWatchDays',
    kind: 'int',
    min: 0,
    max: 3650,
    default: 14,
    arg: 'DAYS',
    doc: 'Ratio watch: days a warned member has to raise the ratio before download rights are suspended (they come back when the ratio does)',
  },
  {
    key: 'ratioWatchInterval',
    kind: 'int',
    min: 1,
    max: 86400,
    default: 3600,
    arg: 'SECONDS',
    doc: 'Ratio watch: seconds between runs of the scheduler that warns, suspends and restores',
  },
  {
    key: 'hnrSeedHours',
    kind: 'int',
    min: 0,
    max: 87600,
    default: 0,
    arg: 'HOURS',
    doc: 'Hit-and-run (private mode): hours a member must seed a torrent they snatched, within hnr_days of the snatch (or reach hnr_ratio_percent on it); a snatch that does not is a hit-and-run (0 = off)',
  },
  {
    key: 'hnrDays',
    kind: 'int',
    min: 1,
    max: 3650,
    default: 14,
    arg: 'DAYS',
    doc: 'Hit-and-run: days after a snatch by which the member must have seeded hnr_seed_hours',
  },
  {
    key: 'hnrRatioPercent',
    kind: 'int',
    min: 0,
    max: 1_000_000,
    default: 100,
    arg: 'PERCENT',
    doc: 'Hit-and-run: a ratio on the torrent itself (uploaded / downloaded as the client reported them, in percent) that fulfils the rule as seeding time does (0 = only seeding time)',
  },
  {
    key: 'hnrMax',
    kind: 'int',
    min: 0,
    max: 100_000,
    default: 3,
    arg: 'N',
    doc: 'Hit-and-run: active hit-and-runs at which a member loses download rights, until fewer are active (0 = never)',
  },
  {
    key: 'hnrExpireDays',
    kind: 'int',
    min: 0,
    max: 3650,
    default: 30,
    arg: 'DAYS',
    doc: 'Hit-and-run: days after which a hit-and-run no longer counts (0 = never); seeding the torrent to hnr_seed_hours, or staff forgiveness, ends it sooner',
  },
  {
    key: 'hnrImmuneRoles',
    kind: 'string-list',
    default: ['moderator', 'admin'],
    arg: 'ROLE',
    doc: 'Hit-and-run: roles whose members are never marked (repeatable: member, uploader, moderator, admin); staff also make single members immune',
  },
  {
    key: 'hnrInterval',
    kind: 'int',
    min: 1,
    max: 86400,
    default: 3600,
    arg: 'SECONDS',
    doc: 'Hit-and-run: seconds between runs of the scheduler that marks, ends, suspends and restores',
  },
  {
    key: 'memberClasses',
    kind: 'string-list',
    default: [],
    arg: 'CLASS',
    doc: 'Member classes (private mode), lowest first, each "NAME" or "NAME: key=value ..." with thresholds days, uploaded (bytes, or KiB..TiB), ratio (percent), seed_hours, and what the class gives: slots (torrents leeched at once, 0 = no limit), invites (per invite period), upload_factor, download_factor (percent), hnr_immune (1); see README "Rules" (none = no classes)',
  },
  {
    key: 'classInterval',
    kind: 'int',
    min: 1,
    max: 86400,
    default: 3600,
    arg: 'SECONDS',
    doc: 'Member classes: seconds between runs of the scheduler that promotes and demotes',
  },
  {
    key: 'bonusBase',
    kind: 'int',
    min: 0,
    max: 1_000_000,
    default: 0,
    arg: 'CENTS',
    doc: 'Bonus points (private mode): hundredths of a point (100 = 1 point) a member earns per hour of seeding each torrent, before the terms below (0 = bonus points off; see README "Bonus points" for the formula)',
  },
  {
    key: 'bonusPerGib',
    kind: 'int',
    min: 0,
    max: 1_000_000,
    default: 10,
    arg: 'CENTS',
    doc: "Bonus points: more hundredths per hour per GiB of the torrent's size, up to bonus_gib_cap GiB",
  },
  {
    key: 'bonusGibCap',
    kind: 'int',
    min: 0,
    max: 1_000_000,
    default: 100,
    arg: 'GIB',
    doc: 'Bonus points: the size counted by bonus_per_gib at most, in GiB',
  },
  {
    key: 'bonusFewSeeders',
    kind: 'int',
    min: 0,
    max: 1_000_000,
    default: 3,
    arg: 'N',
    doc: 'Bonus points: a torrent with at most this many seeders (the member included) earns bonus_few_points more per hour (0 = no such term)',
  },
  {
    key: 'bonusFewPoints',
    kind: 'int',
    min: 0,
    max: 1_000_000,
    default: 100,
    arg: 'CENTS',
    doc: 'Bonus points: hundredths per hour more for a torrent with few seeders',
  },
  {
    key: 'bonusOldDays',
    kind: 'int',
    min: 0,
    max: 36500,
    default: 30,
    arg: 'DAYS',
    doc: 'Bonus points: a torrent registered at least this many days ago earns bonus_old_points more per hour (0 = no such term)',
  },
  {
    key: 'bonusOldPoints',
    kind: 'int',
    min: 0,
    max: 1_000_000,
    default: 50,
    arg: 'CENTS',
    doc: 'Bonus points: hundredths per hour more for an old torrent',
  },
  {
    key: 'bonusInterval',
    kind: 'int',
    min: 60,
    max: 86400,
    default: 3600,
    arg: 'SECONDS',
    doc: 'Bonus points: seconds between runs of the scheduler that credits seeding',
  },
  {
    key: 'bonusUploadPrice',
    kind: 'int',
    min: 0,
    max: 1e12,
    default: 100_000,
    arg: 'CENTS',
    doc: 'Bonus shop: hundredths of a point for 1 GiB of upload credit (0 = not sold)',
  },
  {
    key: 'bonusInvitePrice',
    kind: 'int',
    min: 0,
    max: 1e12,
    default: 500_000,
    arg: 'CENTS',
    doc: 'Bonus shop: hundredths of a point for one invite (0 = not sold)',
  },
  {
    key: 'bonusTokenPrice',
    kind: 'int',
    min: 0,
    max: 1e12,
    default: 200_000,
    arg: 'CENTS',
    doc: 'Bonus shop: hundredths of a point for one freeleech token (0 = not sold)',
  },
  {
    key: 'freeleechTokenDays',
    kind: 'int',
    min: 1,
    max: 365,
    default: 3,
    arg: 'DAYS',
    doc: 'Freeleech tokens: days one token makes one torrent freeleech for the member who spends it (their download on it is not counted)',
  },
  {
    key: 'promotionUploadFactor',
    kind: 'int',
    min: 100,
    max: 1000,
    default: 200,
    arg: 'PCT',
    doc: 'Promotions: percent of uploads counted by "double upload" (site-wide events, staff freeleech windows, featured torrents) when staff do not give a figure',
  },
  {
    key: 'featuredDays',
    kind: 'int',
    min: 1,
    max: 365,
    default: 7,
    arg: 'DAYS',
    doc: 'Featured torrents: days a torrent staff feature stays featured (free and double upload for everyone) when they do not say',
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
    key: 'maxTorrentBytes',
    kind: 'int',
    min: 1024,
    // libtorrent-based clients refuse larger files by default (about 10 MB), and base64 in a
    // JSON body keeps an API upload of this size within the API's 16 MiB body limit.
    max: 10 * 1024 * 1024,
    default: 4 * 1024 * 1024,
    arg: 'BYTES',
    doc: 'Largest .torrent file accepted for upload (portal, API, CLI), in bytes (default 4 MiB)',
  },
  {
    key: 'maxTorrentFiles',
    kind: 'int',
    min: 1,
    max: 10_000_000,
    default: 50_000,
    arg: 'N',
    doc: 'Most files a .torrent may list to be accepted for upload (portal, API, CLI)',
  },
  {
    key: 'uploadsPerHour',
    kind: 'int',
    min: 0,
    max: 10_000,
    default: 60,
    arg: 'N',
    doc: 'Portal: uploads a member may make per hour, refused ones included (staff: no limit; 0 = no limit). Each upload is parsed on the event loop the tracker shares',
  },
  {
    key: 'hideRestricted',
    kind: 'bool',
    default: false,
    doc: 'Portal: leave restricted torrents out of browse and search for members without a grant, and answer 404 for their pages (off: the name shows, the .torrent and magnet link do not)',
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
    key: 'smtpUrl',
    kind: 'string',
    default: '',
    arg: 'URL',
    doc: 'Account mail: the SMTP server as smtp://user:password@host:587 (STARTTLS when offered; add ?requireTLS=true to insist) or smtps://…:465; empty = no mail (invitations, reset links and notices are not sent)',
  },
  {
    key: 'mailFrom',
    kind: 'string',
    default: '',
    arg: 'ADDRESS',
    doc: 'Account mail: the From address, e.g. "Herald <tracker@example.org>" (needed with smtp_url)',
  },
  {
    key: 'siteUrl',
    kind: 'string',
    default: '',
    arg: 'URL',
    doc: "Account mail: the portal's public address for links in mails, e.g. https://tracker.example.org (needed with smtp_url; also used by `herald member reset-link`)",
  },
  {
    key: 'resetLinkMinutes',
    kind: 'int',
    min: 5,
    max: 7 * 24 * 60,
    default: 60,
    arg: 'MINUTES',
    doc: 'Portal: minutes a password reset link stays valid (it works once)',
  },
  {
    key: 'require2faForStaff',
    name: 'require_2fa_for_staff',
    kind: 'bool',
    default: false,
    doc: 'Portal: staff (moderators, administrators) must turn on two-factor authentication before any staff page',
  },
  {
    key: 'totpEncryptionKey',
    kind: 'secret?',
    default: null,
    arg: 'KEY',
    doc: "Portal: a key (16+ characters, e.g. `openssl rand -hex 32`) that encrypts members' two-factor secrets in the database (AES-256-GCM); unset = stored as is. Keep it: secrets sealed with a lost key cannot be read (staff then reset those members' 2FA)",
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
    case 'workers': {
      if (raw === 'auto') return raw;
      const n =
        typeof raw === 'number'
          ? raw
          : typeof raw === 'string' && /^[0-9]{1,3}$/.test(raw.trim())
            ? Number(raw)
            : NaN;
      if (!Number.isInteger(n) || n < 1 || n > 256) return bad('must be auto or an integer from 1 to 256');
      return n;
    }
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

/**
 * The WebSocket idle timeout in effect, in seconds: `ws_idle_timeout`, or when it is 0 the later
 * of `peer_timeout` (by then the socket's peers have expired: it holds nothing) and interval + 60
 * (a browser tab in the background may announce up to a minute late).
 */
export function wsIdleTimeout(c: HeraldConfig): number {
  return c.wsIdleTimeout > 0 ? c.wsIdleTimeout : Math.max(c.peerTimeout, c.interval + 60);
}

/** Checks relations between keys. Throws ConfigError naming the keys. */
export function validateRelations(c: HeraldConfig): void {
  if (c.peerTimeout <= c.interval)
    throw new ConfigError(
      `config: peer_timeout (${c.peerTimeout}) must be greater than interval (${c.interval})`,
    );
  if (c.wsIdleTimeout !== 0 && c.wsIdleTimeout <= c.interval)
    throw new ConfigError(
      `config: ws_idle_timeout (${c.wsIdleTimeout}) must be greater than interval (${c.interval}), or 0`,
    );
  if (c.minInterval > c.interval)
    throw new ConfigError(`config: min_interval (${c.minInterval}) must not exceed interval (${c.interval})`);
  if (c.defaultNumWant > c.maxNumWant)
    throw new ConfigError(
      `config: default_numwant (${c.defaultNumWant}) must not exceed max_numwant (${c.maxNumWant})`,
    );
  if (c.https.length > 0 && (!c.tlsCert || !c.tlsKey))
    throw new ConfigError('config: https: listening for HTTPS needs tls_cert and tls_key');
  for (const p of c.trustedProxies)
    if (p !== '*' && parseIp(p) === null)
      throw new ConfigError(`config: trusted_proxies: "${p}" is not an IP address (or "*")`);
  if (c.portalPath !== '' && !/^(\/[A-Za-z0-9._~-]+)+$/.test(c.portalPath))
    throw new ConfigError(
      `config: portal_path: a path like /portal, without a trailing slash (got "${c.portalPath}")`,
    );
  if (c.store !== 'memory') {
    if (!/^(rediss?:\/\/.+|redis-cluster:\/\/.+:\d+)$/.test(c.store))
      throw new ConfigError(
        `config: store: memory, redis://host:port[/db], rediss://… or redis-cluster://host:port,… (got "${c.store}")`,
      );
    if (c.redisPrefix === '' || /[{}\s]/.test(c.redisPrefix))
      throw new ConfigError('config: redis_prefix: a non-empty prefix without braces or spaces');
    // A connection id from one instance must be accepted by every other (a client's next request
    // may reach another instance): they need one key. A random key per start would refuse them.
    if (c.udp.length > 0 && c.udpSecret === null)
      throw new ConfigError(
        'config: udp_secret: with a Redis store, set udp_secret (32+ hex digits, e.g. `openssl rand -hex 32`) to the same value on every instance, so that UDP connection ids from one are valid on all',
      );
  }
  if (c.workerSwarms === 'shared' && c.mode === 'private')
    throw new ConfigError(
      'config: worker_swarms: "shared" serves open and whitelist modes; private mode accounts each torrent in the worker that owns it (use "auto" or "sharded")',
    );
  if (c.connectableCheck === 'private' && c.mode !== 'private')
    throw new ConfigError(
      `config: connectable_check: "private" checks members' peers in private mode (mode is ${c.mode}); use "any" to check every peer`,
    );
  try {
    parseClasses(c.memberClasses);
  } catch (err) {
    throw new ConfigError(`config: member_classes: ${(err as Error).message}`);
  }
  if (c.smtpUrl !== '') {
    let u: URL | null = null;
    try {
      u = new URL(c.smtpUrl);
    } catch {}
    if (u === null || (u.protocol !== 'smtp:' && u.protocol !== 'smtps:') || u.hostname === '')
      throw new ConfigError('config: smtp_url: an smtp://host:port or smtps://host:port URL');
    if (c.mailFrom === '')
      throw new ConfigError('config: mail_from: needed with smtp_url (the From address)');
    if (c.siteUrl === '')
      throw new ConfigError(
        "config: site_url: needed with smtp_url (the portal's address for links in mails)",
      );
  }
  if (c.mailFrom !== '' && /[\r\n]/.test(c.mailFrom))
    throw new ConfigError('config: mail_from: one line, e.g. "Herald <tracker@example.org>"');
  if (c.siteUrl !== '' && !/^https?:\/\/[^\s/?#]+(\/[^\s?#]*)?$/.test(c.siteUrl))
    throw new ConfigError(`config: site_url: an http(s):// address without query (got "${c.siteUrl}")`);
  for (const r of c.hnrImmuneRoles)
    if (!(ROLES as readonly string[]).includes(r))
      throw new ConfigError(`config: hnr_immune_roles: "${r}" is not a role (${ROLES.join(', ')})`);
  if (c.http.length === 0 && c.https.length === 0 && c.udp.length === 0 && c.ws.length === 0)
    throw new ConfigError('config: http, https, udp and ws are all off: nothing to serve');
}
