import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { binaryString } from '../core/bytes.ts';
import type { Clock } from '../core/clock.ts';
import { Errors, type TrackerError, Warnings } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { AnnounceEvent, type AnnounceRequest } from '../core/types.ts';
import type { Registry } from '../db/registry.ts';
import {
  type AnnounceStep,
  type RequestContext,
  requestContext,
  type ScrapeStep,
} from '../tracker/service.ts';
import { type AccessChange, accessChange, granted } from './access-change.ts';
import { type ClassDef, classOf } from './classes.ts';
import { type PeerListGate, PeerListWindows } from './peer-lists.ts';
import { inPages, PAGE } from './scheduled.ts';
import { PolicySnapshot } from './snapshot.ts';
import type { PolicyMember, PolicyTorrent } from './types.ts';

export type { AccessChange } from './access-change.ts';
export { accessChange, dropUntracked } from './access-change.ts';
export { PolicySnapshot } from './snapshot.ts';
export type { PolicyMember, PolicyTorrent } from './types.ts';

export type Mode = 'open' | 'whitelist' | 'private';

/** The earliest grant expiry after `now` in `s`, or 0. */
function nextExpiry(s: PolicySnapshot, now: number): number {
  let next = 0;
  for (const g of s.grants.values())
    for (const into of [g.members, g.groups])
      for (const exp of into.values()) if (exp > now && (next === 0 || exp < next)) next = exp;
  return next;
}

/** How long a reload waits for a lock on the database before it leaves the work to the next poll. */
const RELOAD_BUSY_TIMEOUT_MS = 250;

const wallNow = () => Math.floor(Date.now() / 1000);

const hexBytes = (hex: string) => Buffer.from(hex.slice(0, 40), 'hex');
const hexKey = (hex: string) => hexBytes(hex).toString('latin1');

/**
 * Member and torrent ids cross between workers as u64 numbers exact up to 2^53 (cluster frames,
 * src/cluster/messages.ts `writeRowId`); a table holding a larger id (a site that imported its
 * rows) is refused with its name here, at load, rather than two rows sharing one rounded id.
 * SQLite's driver already refuses to read such an integer (ERR_OUT_OF_RANGE, which names no
 * table); PostgreSQL's bigint reader (src/db/connect.ts) would round it.
 */
async function withExactIds(
  table: 'members' | 'torrents',
  load: (exact: (id: number) => void) => Promise<void>,
) {
  const refuse = (what: string) =>
    new Error(
      `the ${table} table holds an id above 2^53 - 1 (${what}): Herald's workers carry ids exactly only up to ${Number.MAX_SAFE_INTEGER}; renumber those rows`,
    );
  try {
    await load((id) => {
      if (!Number.isSafeInteger(id)) throw refuse(String(id));
    });
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_OUT_OF_RANGE') throw refuse((err as Error).message);
    throw err;
  }
}

export async function loadSnapshot(
  reg: Registry,
  classes: readonly ClassDef[] = [],
  now = Math.floor(Date.now() / 1000),
): Promise<PolicySnapshot> {
  const k = reg.db.kysely;
  const s = new PolicySnapshot();
  s.revision = await reg.revision();
  // Group memberships and prefixes are made by staff only, and read whole (the lists are paged below).
  const groupsOf = new Map<number, number[]>();
  for (const r of await k.selectFrom('group_members').select(['group_id', 'member_id']).execute()) {
    const g = groupsOf.get(r.member_id);
    if (g === undefined) groupsOf.set(r.member_id, [r.group_id]);
    else g.push(r.group_id);
  }
  const hnr = await reg.hnr.activeByMember();
  await withExactIds('members', (exact) =>
    inPages(
      (after) =>
        k
          .selectFrom('members')
          .select(['id', 'passkey', 'status', 'can_leech', 'leech_reason', 'ratio_warned_at', 'class'])
          .where('id', '>', after)
          .orderBy('id')
          .limit(PAGE)
          .execute(),
      (m) => {
        exact(m.id);
        if (classes.length > 0) {
          const c = classOf(m.class, classes);
          if (c !== null) s.classById.set(m.id, c);
        }
        const pm: PolicyMember = {
          id: m.id,
          status: m.status === 'active' ? 0 : m.status === 'disabled' ? 1 : 2,
          groups: groupsOf.get(m.id) ?? [],
          leech: m.can_leech === 1 ? 0 : m.leech_reason === 'ratio' ? 1 : m.leech_reason === 'hnr' ? 3 : 2,
          warned: m.ratio_warned_at !== null,
          hnr: hnr.get(m.id) ?? 0,
          passkey: m.passkey,
        };
        s.members.set(m.passkey, pm);
        s.memberById.set(m.id, pm);
      },
    ),
  );
  await withExactIds('torrents', (exact) =>
    inPages(
      (after) =>
        k
          .selectFrom('torrents')
          .select(['id', 'info_hash', 'info_hash_v2', 'restricted', 'download_factor', 'upload_factor'])
          .where('id', '>', after)
          .orderBy('id')
          .limit(PAGE)
          .execute(),
      (t) => {
        exact(t.id);
        const pt: PolicyTorrent = {
          id: t.id,
          restricted: t.restricted === 1,
          downloadFactor: t.download_factor,
          uploadFactor: t.upload_factor,
          route: Buffer.from(((t.info_hash || t.info_hash_v2) ?? '').slice(0, 40).padEnd(40, '0'), 'hex'),
        };
        s.torrentById.set(t.id, pt);
        // A hybrid torrent is one torrent with two hashes (BEP 52): both map to it.
        if (t.info_hash) s.torrents.set(hexBytes(t.info_hash), pt);
        if (t.info_hash_v2) s.torrents.set(hexBytes(t.info_hash_v2), pt);
      },
    ),
  );
  await inPages(
    (after) =>
      k
        .selectFrom('grants')
        .select(['id', 'torrent_id', 'member_id', 'group_id', 'expires_at'])
        .where('id', '>', after)
        .orderBy('id')
        .limit(PAGE)
        .execute(),
    (g) => {
      let e = s.grants.get(g.torrent_id);
      if (e === undefined) {
        e = { members: new Map(), groups: new Map() };
        s.grants.set(g.torrent_id, e);
      }
      const exp = g.expires_at ?? 0;
      const into = g.member_id !== null ? e.members : e.groups;
      const id = g.member_id ?? g.group_id ?? 0;
      const prev = into.get(id);
      // Several grants for one holder: the longest wins (0 = never expires).
      if (prev === undefined || prev !== 0)
        into.set(id, exp === 0 || prev === undefined ? exp : Math.max(prev, exp));
    },
  );
  // Promotions that ended more than a day ago are left out (a clock never runs that far behind).
  const since = now - 86400;
  // Freeleech tokens spent add a window each: paged like members (a large site holds 10⁴-10⁵).
  await inPages(
    (afterId) => reg.freeleech.windows(since, undefined, { afterId, limit: PAGE }),
    (w) => s.promotions.addPersonal(w.member_id, w.torrent_id, w.starts_at, w.ends_at, w.upload_factor),
  );
  for (const f of await reg.promotions.featuredWindows(since))
    s.promotions.addFeatured(f.torrent_id, f.starts_at, f.ends_at, f.upload_factor);
  s.promotions.events = (await reg.promotions.events({ after: since })).map((e) => ({
    id: e.id,
    name: e.name,
    startsAt: e.starts_at,
    endsAt: e.ends_at,
    freeleech: e.freeleech === 1,
    uploadFactor: e.upload_factor,
  }));
  await yieldToLoop();
  // The lists by key, a page at a time with a turn of the event loop between: a deny list grows
  // with every takedown (10⁵-10⁶ hashes), and one read of 100,000 held the loop 85 ms, the whole
  // step with the windows 280 ms, at every reload (docs/benchmarks.md).
  for (const list of ['allow', 'deny'] as const) {
    const into = list === 'allow' ? s.allow : s.deny;
    for (let after = ''; ; ) {
      const rows = await k
        .selectFrom('hash_lists')
        .select('info_hash')
        .where('list', '=', list)
        .where('info_hash', '>', after)
        .orderBy('info_hash')
        .limit(PAGE)
        .execute();
      for (const r of rows) into.add(hexKey(r.info_hash));
      if (rows.length < PAGE) break;
      after = rows[rows.length - 1].info_hash;
      await yieldToLoop();
    }
  }
  s.clientPrefixes = (await k.selectFrom('client_prefixes').select('prefix').execute()).map((r) => r.prefix);
  for (const r of await k
    .selectFrom('settings')
    .select(['key', 'value'])
    .where('key', 'in', ['site_download_factor', 'site_upload_factor'])
    .execute()) {
    const n = Number(r.value);
    if (!Number.isInteger(n) || n < 0) continue;
    if (r.key === 'site_download_factor') s.siteDownloadFactor = n;
    else s.siteUploadFactor = n;
  }
  return s;
}

/**
 * The policy steps of the announce service (DESIGN.md "policy"), built for the configured mode
 * over a snapshot that is swapped whole on reload. Open mode: only the blacklist (free while it
 * is empty) and the client whitelist (free while it is empty).
 */
export class Policy {
  readonly mode: Mode;
  #reg: Registry | null = null;
  #logger: Logger;
  #snap: PolicySnapshot = new PolicySnapshot();
  #timer: NodeJS.Timeout | null = null;
  /** The load in flight, and the one more that calls made during it share. */
  #running: Promise<boolean> | null = null;
  #queued: Promise<boolean> | null = null;
  #loads = 0;
  #clock: Clock | null;
  #peerListLimit: number;
  #classes: readonly ClassDef[];
  /** Who counts the peer lists (peer_list_limit): this process, or every worker's (`peerLists`). */
  #peerLists: PeerListGate | null;
  /** The key of `keyPrint` (the same in every worker: `passkeyPrintKey`). */
  #printSeed: number;
  /** Announces whose peer list a rule withheld (for tests and /stats). */
  readonly counts = { peerListsWithheld: 0 };
  /** Called after each snapshot a reload swapped in, and at each grant expiry (`onReload`). */
  #onReload: ((change: AccessChange) => void)[] = [];
  /** When access was last judged (unix s, wall clock as grants are): the `then` of `accessChange`. */
  #judgedAt = 0;
  /** Fires at the earliest grant expiry of the snapshot (`#armExpiry`). */
  #expiryTimer: NodeJS.Timeout | null = null;
  #stopped = false;

  constructor(opts: {
    mode: Mode;
    logger: Logger;
    /** Needed by `peerListLimit`. */
    clock?: Clock;
    /**
     * Private mode: most peer lists one member receives per `peerListWindow` seconds (0 = no
     * limit). Counted in this process, unless `peerLists` counts them (with workers: over every
     * worker, src/cluster/peer-list-gate.ts).
     */
    peerListLimit?: number;
    peerListWindow?: number;
    peerLists?: PeerListGate;
    /** Member classes (issue #16), lowest first; none = no classes. */
    classes?: readonly ClassDef[];
    /**
     * Workers: the key of the passkey fingerprints announces carry between workers (`keyPrint`),
     * the same in every worker (the bus's secret). Without it (one process: no frames), 0.
     */
    passkeyPrintKey?: Uint8Array | null;
  }) {
    this.#classes = opts.classes ?? [];
    const k = opts.passkeyPrintKey;
    this.#printSeed =
      k != null && k.length >= 4 ? ((k[0] << 24) | (k[1] << 16) | (k[2] << 8) | k[3]) >>> 0 : 0;
    this.mode = opts.mode;
    this.#logger = opts.logger;
    this.#clock = opts.clock ?? null;
    this.#peerListLimit = opts.peerListLimit ?? 0;
    if (this.#peerListLimit > 0 && this.#clock === null)
      throw new Error('policy: peerListLimit needs a clock');
    this.#peerLists =
      this.#peerListLimit > 0
        ? (opts.peerLists ?? new PeerListWindows(this.#peerListLimit, opts.peerListWindow ?? 3600))
        : null;
  }

  /** Attaches the database (opened by `Tracker.start`) and loads the first snapshot. */
  async connect(registry: Registry): Promise<void> {
    this.#reg = registry;
    this.#snap = await loadSnapshot(registry, this.#classes, this.#now());
    this.#loads++;
    this.#judgedAt = wallNow();
    this.#armExpiry();
  }

  #now(): number {
    return this.#clock?.now() ?? Math.floor(Date.now() / 1000);
  }

  get snapshot(): PolicySnapshot {
    return this.#snap;
  }

  /**
   * `fn` runs after every reload that swapped in a new snapshot, before `refresh()` resolves, and
   * when a grant expires (no reload runs then: nothing changed in the database): for state that
   * outlives one request and was admitted before (open WebSockets, HTTP/UDP peers in the swarms).
   * `change` says who may have lost access since (private mode; empty in other modes).
   */
  onReload(fn: (change: AccessChange) => void): void {
    this.#onReload.push(fn);
  }

  /** Runs the `onReload` listeners for what access changed from `old` (judged then) to now. */
  async #judge(old: PolicySnapshot): Promise<void> {
    const now = wallNow();
    const next = this.#snap;
    const change = await accessChange(old, next, this.#judgedAt, now, this.mode);
    this.#judgedAt = now;
    this.#armExpiry();
    for (const fn of this.#onReload)
      try {
        fn(change);
      } catch (err) {
        this.#logger.error('policy reload listener failed', { err: String(err) });
      }
  }

  /**
   * A grant that expires changes nothing in the database, so no reload notices it: a timer at the
   * snapshot's earliest expiry judges access again (a day at most per wait: timers are 32-bit).
   */
  #armExpiry(): void {
    if (this.#expiryTimer !== null) clearTimeout(this.#expiryTimer);
    this.#expiryTimer = null;
    if (this.#reg === null || this.#stopped || this.#onReload.length === 0) return;
    const next = nextExpiry(this.#snap, this.#judgedAt);
    if (next === 0) return;
    const ms = Math.min(86_400_000, Math.max(0, next * 1000 - Date.now()) + 5);
    this.#expiryTimer = setTimeout(() => {
      this.#expiryTimer = null;
      void this.#judge(this.#snap);
    }, ms);
    this.#expiryTimer.unref();
  }

  /** Snapshots loaded so far (a reload that found the revision unchanged loads none). */
  get loads(): number {
    return this.#loads;
  }

  /**
   * Reloads when the database revision moved; resolves true when it loaded a new snapshot. Never
   * throws (a failed load is logged).
   *
   * Any member can ask for a reload (a passkey reset, an upload), and the portal waits for it so
   * that the member's change is live when the page answers. So reloads coalesce: at most one
   * runs at a time, and every call made while one runs shares exactly one more, started when it
   * ends. Each caller still waits for a load that began after its call (it sees the caller's
   * change), and a burst of any size costs at most two loads. Loads yield to the event loop
   * between pages (`inPages`), so even back-to-back reloads never stall announces.
   */
  refresh(): Promise<boolean> {
    if (this.#reg === null) return Promise.resolve(false);
    if (this.#queued !== null) return this.#queued;
    const running = this.#running;
    if (running === null) return this.#start();
    this.#queued = running.then(() => {
      this.#queued = null;
      return this.#start();
    });
    return this.#queued;
  }

  #start(): Promise<boolean> {
    const run: Promise<boolean> = this.#load().finally(() => {
      if (this.#running === run) this.#running = null;
    });
    this.#running = run;
    return run;
  }

  async #load(): Promise<boolean> {
    const reg = this.#reg!;
    try {
      // Reads wait for no writer (WAL); should the database be locked whole (a restore), the
      // next poll tries again rather than this one waiting for seconds.
      const t0 = performance.now();
      const snap = await reg.db.withBusyTimeout(RELOAD_BUSY_TIMEOUT_MS, async () => {
        const rev = await reg.revision();
        return rev === this.#snap.revision ? null : loadSnapshot(reg, this.#classes, this.#now());
      });
      if (snap === null) return false;
      const old = this.#snap;
      this.#snap = snap;
      this.#loads++;
      this.#logger.info('policy reloaded', {
        revision: this.#snap.revision,
        members: this.#snap.members.size,
        torrents: this.#snap.torrents.size,
        ms: Math.round(performance.now() - t0),
      });
      await this.#judge(old);
      return true;
    } catch (err) {
      this.#logger.error('policy refresh failed', { err: String(err) });
      return false;
    }
  }

  start(everySeconds: number): void {
    this.#timer = setInterval(() => void this.refresh(), everySeconds * 1000);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    this.#stopped = true;
    if (this.#expiryTimer !== null) clearTimeout(this.#expiryTimer);
    this.#expiryTimer = null;
  }

  /** Who may announce what. Fills `ctx.member` and `ctx.torrent` in private mode. */
  announceSteps(): AnnounceStep[] {
    const steps: AnnounceStep[] = [(req, ctx) => this.#checkTorrent(req.infoHash, ctx, req.event)];
    steps.push((req) => this.#checkClient(req));
    if (this.mode === 'private') {
      steps.push((req, ctx) => this.#checkRights(req, ctx));
      if (this.#peerListLimit > 0) steps.push((req, ctx) => this.#limitPeerLists(req, ctx));
    }
    return steps;
  }

  /**
   * Download rights, ratio watch and hit-and-run (issue #16): a member without rights is refused
   * any announce that still has something to download (`stopped` passes: the client leaves, and
   * what it moved is credited); seeding goes on. A warned member's announces carry the warning
   * (ratio first: it is the one with a deadline on the whole account).
   */
  #checkRights(req: AnnounceRequest, ctx: RequestContext): TrackerError | null {
    const m = ctx.member;
    if (m === null) return null;
    if (m.leech !== 0 && m.leech !== undefined && req.left > 0 && req.event !== AnnounceEvent.stopped)
      return m.leech === 1 ? Errors.leechRatio : m.leech === 3 ? Errors.leechHnr : Errors.leechStaff;
    if (m.warned === true) ctx.warning = Warnings.ratioWatch;
    else if (m.hnr !== undefined && m.hnr > 0) ctx.warning = Warnings.hitAndRun;
    return null;
  }

  /**
   * Peer lists per member per window (issue #16, against peer scraping): beyond the limit the
   * announce is served with no peers (numwant 0) and still counts. Fixed windows, from the
   * member's first peer list in each; announces that ask for no peers do not count.
   */
  #limitPeerLists(req: AnnounceRequest, ctx: RequestContext): null {
    const m = ctx.member;
    if (m === null || req.numWant === 0 || req.event === AnnounceEvent.stopped) return null;
    if (!this.#peerLists!.take(m.id, this.#clock!.now())) {
      req.numWant = 0;
      this.counts.peerListsWithheld++;
    }
    return null;
  }

  scrapeSteps(): ScrapeStep[] {
    return [
      (hashes, ctx) => {
        for (let i = 0; i < hashes.length; i++) {
          const refused = this.#checkTorrent(hashes[i], ctx, -1);
          if (refused !== null) return refused;
        }
        return null;
      },
    ];
  }

  #checkClient(req: AnnounceRequest): TrackerError | null {
    const prefixes = this.#snap.clientPrefixes;
    if (prefixes.length === 0) return null;
    for (let i = 0; i < prefixes.length; i++) {
      const p = prefixes[i];
      let ok = p.length <= 20;
      for (let j = 0; ok && j < p.length; j++) ok = req.peerId[j] === p.charCodeAt(j);
      if (ok) return null;
    }
    return Errors.clientNotAllowed;
  }

  #checkTorrent(infoHash: Uint8Array, ctx: RequestContext, _event: number): TrackerError | null {
    const s = this.#snap;
    if (this.mode === 'open') {
      if (s.deny.size === 0) return null;
      return s.deny.has(binaryString(infoHash)) ? Errors.infoHashDenied : null;
    }
    if (this.#denied(infoHash)) return Errors.infoHashDenied;
    if (this.mode === 'whitelist') {
      // Whitelist mode tracks the allow list and every registered torrent.
      return s.torrents.get(infoHash) !== undefined ||
        (s.allow.size > 0 && s.allow.has(binaryString(infoHash)))
        ? null
        : Errors.infoHashNotListed;
    }
    // Private mode.
    let member = ctx.member;
    if (member === null) {
      if (ctx.passkey === null)
        return ctx.protocol === 'udp' ? Errors.udpPasskeyMissing : Errors.passkeyRequired;
      const found = s.members.get(ctx.passkey);
      const refused = memberRefusal(found);
      if (refused !== null || found === undefined) return refused ?? Errors.passkeyUnknown;
      member = found;
      ctx.member = member;
    }
    const torrent = s.torrents.get(infoHash);
    const refused = this.#torrentRefusal(torrent, member);
    if (refused !== null || torrent === undefined) return refused ?? Errors.torrentNotRegistered;
    ctx.torrent = torrent;
    return null;
  }

  /** Whether the hash is on the deny list (keyed by string: one is made only while it holds something). */
  #denied(infoHash: Uint8Array): boolean {
    const deny = this.#snap.deny;
    return deny.size > 0 && deny.has(binaryString(infoHash));
  }

  /** Why `member` may not announce `torrent` (not registered; restricted without a grant), or null. */
  #torrentRefusal(torrent: PolicyTorrent | undefined, member: PolicyMember): TrackerError | null {
    if (torrent === undefined) return Errors.torrentNotRegistered;
    if (torrent.restricted && !this.#granted(torrent.id, member)) return Errors.torrentNotGranted;
    return null;
  }

  /**
   * Workers: this snapshot's verdict on an announce that another worker judged by an older one
   * (ShardedSwarmStore `recheckWith`), by the ids it was accounted to (private mode) or by its
   * info hash: what `announceSteps` would refuse now of the torrent, the member and its rights.
   * `keyPrint`: the fingerprint of the passkey the sender admitted it by (`keyPrint`), null
   * without a member: refused unless it is this snapshot's key of the member, so a sender behind
   * a passkey reset cannot admit the old key (its peers were taken out at the reset), and a sender
   * whose snapshot read the new key under the revision before the reset (the reset committed
   * while it loaded) is not refused for it. By the key itself, not by the revisions: a revision
   * says when a snapshot began loading, not which key it read.
   */
  recheck(
    req: AnnounceRequest,
    memberId: number | null,
    torrentId: number | null,
    keyPrint: number | null,
  ): TrackerError | null {
    const s = this.#snap;
    const client = this.#checkClient(req);
    if (client !== null) return client;
    if (this.mode !== 'private')
      return this.#checkTorrent(req.infoHash, requestContext('http', null), req.event);
    if (memberId === null || torrentId === null) return null;
    if (this.#denied(req.infoHash)) return Errors.infoHashDenied;
    const member = s.memberById.get(memberId);
    if (member !== undefined && keyPrint !== null && this.keyPrint(member) !== keyPrint)
      return Errors.passkeyUnknown;
    const refused = memberRefusal(member);
    if (refused !== null || member === undefined) return refused ?? Errors.passkeyUnknown;
    const torrent = s.torrentById.get(torrentId);
    const cannot = this.#torrentRefusal(torrent, member);
    if (cannot !== null || torrent === undefined) return cannot ?? Errors.torrentNotRegistered;
    const ctx = requestContext('http', null);
    ctx.member = member;
    ctx.torrent = torrent;
    return this.#checkRights(req, ctx);
  }

  /**
   * Workers: 4 bytes of a keyed hash of the member's passkey, which an announce handed to another
   * worker carries so that the owner checks the key the sender admitted against its own snapshot
   * (`recheck`). Not a MAC (the bus is private and authenticated): the key only keeps the
   * fingerprint from being a function of the passkey alone. Murmur3-style mixing of the 32
   * characters: a few dozen nanoseconds per announce that crosses. 0 for a member without one.
   */
  keyPrint(member: PolicyMember): number {
    const key = member.passkey;
    if (key === undefined) return 0;
    let h = this.#printSeed ^ key.length;
    for (let i = 0; i < key.length; i++) {
      let c = Math.imul(key.charCodeAt(i), 0xcc9e2d51);
      c = Math.imul((c << 15) | (c >>> 17), 0x1b873593);
      h ^= c;
      h = Math.imul((h << 13) | (h >>> 19), 5) + 0xe6546b64;
    }
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    return (h ^ (h >>> 16)) >>> 0;
  }

  #granted(torrentId: number, member: PolicyMember): boolean {
    return granted(this.#snap, torrentId, member, Math.floor(Date.now() / 1000));
  }
}

/** Why a member found by passkey or id may not announce (unknown, disabled, banned), or null. */
function memberRefusal(member: PolicyMember | undefined): TrackerError | null {
  if (member === undefined) return Errors.passkeyUnknown;
  if (member.status === 1) return Errors.memberDisabled;
  if (member.status === 2) return Errors.memberBanned;
  return null;
}

/** The passkey in a BEP 41 URL-data path or an HTTP path: `/announce/<pk>` or `/<pk>/announce`. */
export function passkeyFromPath(path: string | null): string | null {
  if (path === null) return null;
  const q = path.indexOf('?');
  const p = q >= 0 ? path.slice(0, q) : path;
  const parts = p.split('/').filter((x) => x.length > 0);
  if (parts.length !== 2) return null;
  if (parts[0] === 'announce' || parts[0] === 'scrape') return parts[1];
  if (parts[1] === 'announce' || parts[1] === 'scrape') return parts[0];
  return null;
}
