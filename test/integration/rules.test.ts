/**
 * The rules of private communities (issue #16) over real sockets, HTTP and UDP: peer limits,
 * early announces (refused or warned), the peer-list limit and ratio watch, each with the text a
 * member's client shows. A manual clock; credit read back from the database.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { HeraldConfig } from '../../src/config/schema.ts';
import { ManualClock } from '../../src/core/clock.ts';
import { Errors, Warnings } from '../../src/core/errors.ts';
import { createTracker, type Tracker } from '../../src/index.ts';
import {
  type ConnectionId,
  parseResponse,
  writeAnnounceRequest,
  writeConnectRequest,
} from '../../src/protocol/udp/codec.ts';
import {
  type AnnounceFields,
  announcePath,
  bdecode,
  hashOf,
  httpGet,
  text,
  udpClient,
} from '../helpers/clients.ts';
import { privateTrackerConfig } from '../helpers/store-tracker.ts';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const TOKEN = 'rules-token-0123456789abcdef';
const GiB = 1024 ** 3;
const DAY = 86400;
const EVENTS = { none: 0, completed: 1, started: 2, stopped: 3 } as const;

interface Rig {
  tracker: Tracker;
  clock: ManualClock;
  http(f: AnnounceFields & { passkey: string }): Promise<Map<string, unknown>>;
  /** One UDP announce with the passkey in BEP 41 URL data: the decoded reply. */
  udp(
    f: AnnounceFields & { passkey: string },
  ): Promise<{ action: number; message?: string; interval?: number; leechers?: number }>;
  member(name: string): Promise<{ id: number; passkey: string }>;
  torrent(n: number): Promise<Buffer>;
  close(): Promise<void>;
}

async function rig(extra: Partial<HeraldConfig>): Promise<Rig> {
  const clock = new ManualClock(1_900_000_000);
  const tracker = createTracker(
    privateTrackerConfig({
      udp: ['127.0.0.1:0'],
      ratioWatchInterval: 86400,
      interval: 1200,
      minInterval: 600,
      announceGrace: 60,
      peerTimeout: 1500,
      ...extra,
    }),
    { clock },
  );
  await tracker.start();
  const port = tracker.addresses().http[0].port;
  const udpPort = tracker.addresses().udp[0].port;
  const reg = tracker.registry();
  const c = await udpClient(4);
  const buf = Buffer.alloc(1024);
  let tx = 0;
  return {
    tracker,
    clock,
    async http(f) {
      const r = await httpGet(port, '127.0.0.1', announcePath({ ...f, base: `/announce/${f.passkey}` }));
      return bdecode(r.body);
    },
    async udp(f) {
      const cr = parseResponse(
        (await c.request(buf.subarray(0, writeConnectRequest(buf, ++tx)), udpPort))!,
        16,
      ) as {
        connectionId: ConnectionId;
      };
      const n = writeAnnounceRequest(buf, {
        connectionId: cr.connectionId,
        transactionId: ++tx,
        infoHash: f.infoHash,
        peerId: f.peerId ?? Buffer.from(`-UD0001-${String(f.port).padStart(12, '0')}`),
        downloaded: f.downloaded ?? 0,
        left: f.left ?? 1000,
        uploaded: f.uploaded ?? 0,
        event: EVENTS[f.event ?? 'none'],
        numWant: f.numwant ?? 50,
        port: f.port,
        urlData: `/announce/${f.passkey}`,
      });
      const reply = (await c.request(buf.subarray(0, n), udpPort))!;
      return parseResponse(reply, reply.length) as never;
    },
    async member(name) {
      const m = await reg.addMember({ username: name });
      await tracker.policy.refresh();
      return m;
    },
    async torrent(n) {
      const h = hashOf(n, 160);
      await reg.addTorrent({ infoHash: hex(h), infoHashV2: null, name: `t${n}`, size: 1000, fileCount: 1 });
      await tracker.policy.refresh();
      return h;
    },
    async close() {
      c.close();
      await tracker.stop();
    },
  };
}

/** The JSON API of the rig's tracker: the decoded body, after checking the status. */
function apiOf(r: Rig) {
  const port = r.tracker.addresses().http[0].port;
  return async (method: string, path: string, body?: unknown, status = 200) => {
    const res = await fetch(`http://127.0.0.1:${port}/api/${path}`, {
      method,
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    assert.equal(res.status, status, await res.clone().text());
    return (await res.json()) as Record<string, unknown> & Record<string, unknown>[];
  };
}

const peer = (n: number) => Buffer.from(`-qB4500-rules${String(n).padStart(7, '0')}`);
const reason = (d: Map<string, unknown>) => text(d.get('failure reason'));

/** A rig for the enclosing `describe`, started before its tests and closed after them. */
function rigFor(extra: Partial<HeraldConfig>): { r: Rig } {
  const box = {} as { r: Rig };
  before(async () => {
    box.r = await rig(extra);
  });
  after(() => box.r.close());
  return box;
}

describe('peer limits', () => {
  const box = rigFor({ peersPerTorrent: 2, peersPerMember: 3 });

  test('per torrent, HTTP and UDP: the third client of a member is refused; a stopped one frees its place', async () => {
    const { r } = box;
    const m = await r.member('ann');
    const h = await r.torrent(1);
    const base = { infoHash: h, passkey: m.passkey };
    assert.equal(
      reason(await r.http({ ...base, port: 7001, peerId: peer(1), event: 'started' })),
      'undefined',
    );
    assert.equal((await r.udp({ ...base, port: 7002, peerId: peer(2), event: 'started' })).action, 1);
    const refused = await r.http({ ...base, port: 7003, peerId: peer(3), event: 'started' });
    assert.equal(reason(refused), Errors.peerLimitTorrent.message);
    const udp = await r.udp({ ...base, port: 7003, peerId: peer(3), event: 'started' });
    assert.equal(udp.action, 3);
    assert.equal(udp.message, Errors.peerLimitTorrent.message);
    // The refused client was not put in the swarm: the next peer sees two.
    const other = await r.member('other');
    const seen = await r.http({ infoHash: h, passkey: other.passkey, port: 7100, event: 'started' });
    assert.equal(seen.get('incomplete'), 2);
    // A stopped client (over UDP) frees its place at once.
    assert.equal((await r.udp({ ...base, port: 7002, peerId: peer(2), event: 'stopped' })).action, 1);
    assert.equal(
      reason(await r.http({ ...base, port: 7003, peerId: peer(3), event: 'started' })),
      'undefined',
    );
  });

  test('per member over all torrents, with its own reason', async () => {
    const { r } = box;
    const m = await r.member('bea');
    const hs = [await r.torrent(2), await r.torrent(3), await r.torrent(4), await r.torrent(5)];
    for (let i = 0; i < 3; i++)
      assert.equal(
        reason(await r.http({ infoHash: hs[i], passkey: m.passkey, port: 7200 + i, event: 'started' })),
        'undefined',
      );
    const d = await r.http({ infoHash: hs[3], passkey: m.passkey, port: 7210, event: 'started' });
    assert.equal(reason(d), Errors.peerLimitMember.message);
    const u = await r.udp({ infoHash: hs[3], passkey: m.passkey, port: 7210, event: 'started' });
    assert.equal(u.message, Errors.peerLimitMember.message);
  });
});

describe('early announces, refused', () => {
  const box = rigFor({ earlyAnnounce: 'refuse' });

  test('HTTP and UDP: sooner than min_interval - grace is refused, nothing counted twice; stopped and completed pass', async () => {
    const { r } = box;
    const m = await r.member('cat');
    const h = await r.torrent(10);
    const f = { infoHash: h, passkey: m.passkey, port: 7300, peerId: peer(30) };
    assert.equal(reason(await r.http({ ...f, event: 'started', left: 0 })), 'undefined');
    r.clock.advance(539); // min_interval 600 - grace 60 = 540
    const soon = await r.http({ ...f, left: 0, uploaded: 1000 });
    assert.equal(reason(soon), Errors.announceTooSoon.message);
    assert.ok(soon.has('retry in'), 'BEP 31 retry in');
    const u = await r.udp({ ...f, left: 0, uploaded: 1000 });
    assert.equal(u.action, 3);
    assert.equal(u.message, Errors.announceTooSoon.message);
    r.clock.advance(1);
    assert.equal(reason(await r.http({ ...f, left: 0, uploaded: 2000 })), 'undefined', 'at 540 s: on time');
    r.clock.advance(1);
    const done = await r.udp({ ...f, left: 0, uploaded: 2500, event: 'completed' });
    assert.equal(done.action, 1, 'completed passes however soon');
    assert.equal(reason(await r.http({ ...f, left: 0, uploaded: 3000, event: 'stopped' })), 'undefined');
    await r.tracker.accountant!.flush();
    assert.equal((await r.tracker.registry().member(m.id)).uploaded, 3000, 'each byte credited once');
  });
});

describe('early announces, warned (the default)', () => {
  const box = rigFor({});

  test('HTTP carries the warning message beside the usual answer; UDP (no such field) answers as usual', async () => {
    const { r } = box;
    const m = await r.member('dan');
    const h = await r.torrent(20);
    const f = { infoHash: h, passkey: m.passkey, port: 7400, peerId: peer(40) };
    const first = await r.http({ ...f, event: 'started', left: 0 });
    assert.equal(first.get('warning message'), undefined);
    r.clock.advance(10);
    const soon = await r.http({ ...f, left: 0, uploaded: 500 });
    assert.equal(reason(soon), 'undefined');
    assert.equal(text(soon.get('warning message')), Warnings.announceTooSoon.message);
    assert.equal(soon.get('interval'), 1200);
    const u = await r.udp({ ...f, left: 0, uploaded: 700 });
    assert.equal(u.action, 1);
    await r.tracker.accountant!.flush();
    assert.equal((await r.tracker.registry().member(m.id)).uploaded, 700);
  });
});

describe('peer-list limit', () => {
  const box = rigFor({ peerListLimit: 2, peerListWindow: 3600 });

  test('beyond the limit the peer list is empty and the announce still counts; a new window gives lists again', async () => {
    const { r } = box;
    const seeder = await r.member('seedy');
    const scraper = await r.member('scraper');
    const h = await r.torrent(30);
    const h2 = await r.torrent(31);
    for (const ih of [h, h2])
      await r.http({
        infoHash: ih,
        passkey: seeder.passkey,
        port: 7500,
        event: 'started',
        left: 0,
        numwant: 0,
      });
    const ask = (ih: Buffer, port: number) =>
      r.http({ infoHash: ih, passkey: scraper.passkey, port, event: 'started', compact: 1 });
    assert.equal(((await ask(h, 7501)).get('peers') as Buffer).length, 6, 'one peer: the seeder');
    assert.equal(((await ask(h2, 7502)).get('peers') as Buffer).length, 6);
    const third = await ask(h, 7503);
    assert.equal(reason(third), 'undefined');
    assert.equal((third.get('peers') as Buffer).length, 0, 'no peers beyond the limit');
    assert.equal(third.get('complete'), 1, 'the counts are still there');
    const u = await r.udp({ infoHash: h2, passkey: scraper.passkey, port: 7504, event: 'started' });
    assert.equal(u.action, 1);
    assert.equal((u as { peers?: unknown[] }).peers?.length ?? 0, 0);
    // The announces counted: the swarm holds the scraper's peers.
    const seen = await r.http({ infoHash: h, passkey: seeder.passkey, port: 7500, left: 0, numwant: 0 });
    assert.equal(seen.get('incomplete'), 2);
    assert.equal(r.tracker.policy.counts.peerListsWithheld, 2);
    r.clock.advance(3600);
    assert.ok(((await ask(h, 7505)).get('peers') as Buffer).length > 0, 'a new window: peers again');
  });
});

describe('ratio watch', () => {
  const box = rigFor({
    ratioWatchMinPercent: 60,
    ratioWatchGrace: 5 * GiB,
    ratioWatchDays: 14,
    apiToken: TOKEN,
  });

  test('warned, then download rights suspended with a reason; seeding and stopped still work; back with the ratio', async () => {
    const { r } = box;
    const m = await r.member('eve');
    const h = await r.torrent(40);
    const reg = r.tracker.registry();
    const setRatio = (up: number) =>
      reg.db.kysely
        .updateTable('members')
        .set({ uploaded: up, downloaded: 10 * GiB })
        .where('id', '=', m.id)
        .execute();
    await setRatio(1 * GiB);
    const f = { infoHash: h, passkey: m.passkey, port: 7600, peerId: peer(60) };
    await r.tracker.ratioWatch!.run();
    const warned = await r.http({ ...f, event: 'started' });
    assert.equal(reason(warned), 'undefined');
    assert.equal(text(warned.get('warning message')), Warnings.ratioWatch.message);
    r.clock.advance(14 * DAY);
    assert.deepEqual(await r.tracker.ratioWatch!.run(), { warned: 0, revoked: 1, restored: 0, cleared: 0 });
    // Leeching: refused over HTTP and UDP, saying why and how to recover.
    const refused = await r.http({ ...f });
    assert.equal(reason(refused), Errors.leechRatio.message);
    assert.match(reason(refused), /ratio.*seed/);
    assert.equal((await r.udp({ ...f })).message, Errors.leechRatio.message);
    // Leaving works (and is credited); seeding another torrent works.
    assert.equal(reason(await r.http({ ...f, event: 'stopped', downloaded: 100 })), 'undefined');
    const h2 = await r.torrent(41);
    const seed = await r.http({ infoHash: h2, passkey: m.passkey, port: 7601, event: 'started', left: 0 });
    assert.equal(reason(seed), 'undefined');
    assert.equal(text(seed.get('warning message')), Warnings.ratioWatch.message);
    assert.equal((await r.udp({ infoHash: h2, passkey: m.passkey, port: 7602, left: 0 })).action, 1);
    // The ratio is back: so are download rights, and the warning goes.
    await setRatio(6 * GiB);
    assert.deepEqual(await r.tracker.ratioWatch!.run(), { warned: 0, revoked: 0, restored: 1, cleared: 0 });
    const back = await r.http({ ...f, event: 'started' });
    assert.equal(reason(back), 'undefined');
    assert.equal(back.get('warning message'), undefined);
  });

  test('staff suspension: its own reason; seeding still works', async () => {
    const { r } = box;
    const m = await r.member('fay');
    const h = await r.torrent(42);
    await r.tracker.registry().setCanLeech(m.id, false);
    await r.tracker.policy.refresh();
    const d = await r.http({ infoHash: h, passkey: m.passkey, port: 7700, event: 'started' });
    assert.equal(reason(d), Errors.leechStaff.message);
    const seed = await r.http({ infoHash: h, passkey: m.passkey, port: 7700, event: 'started', left: 0 });
    assert.equal(reason(seed), 'undefined');
  });

  test('API: the member as the profile shows them (snatches, seeding and leeching now, rights, warnings); PATCH can_leech', async () => {
    const { r } = box;
    const m = await r.member('gil');
    const h = await r.torrent(43);
    const h2 = await r.torrent(44);
    await r.http({ infoHash: h, passkey: m.passkey, port: 7800, event: 'started', left: 0 });
    await r.http({ infoHash: h2, passkey: m.passkey, port: 7801, event: 'started', left: 500 });
    r.clock.advance(600);
    await r.http({ infoHash: h2, passkey: m.passkey, port: 7801, event: 'completed', left: 0 });
    await r.http({ infoHash: h, passkey: m.passkey, port: 7800, event: 'stopped', left: 0 });
    const h3 = await r.torrent(45);
    await r.http({ infoHash: h3, passkey: m.passkey, port: 7802, event: 'started', left: 500 });
    await r.tracker.accountant!.flush();
    const api = apiOf(r);
    const shown = await api('GET', `members/${m.id}`);
    assert.deepEqual(
      [shown.snatches, shown.seeding_now, shown.leeching_now, shown.can_leech, shown.ratio_warnings],
      [1, 1, 1, 1, 0],
    );
    const off = await api('PATCH', `members/${m.id}`, { can_leech: false });
    assert.deepEqual([off.can_leech, off.leech_reason], [0, 'staff']);
    await r.tracker.policy.refresh();
    const d = await r.http({ infoHash: h3, passkey: m.passkey, port: 7802, left: 400 });
    assert.equal(reason(d), Errors.leechStaff.message);
    assert.equal((await api('PATCH', `members/${m.id}`, { can_leech: true })).can_leech, 1);
  });
});

describe('hit-and-run', () => {
  const HOUR = 3600;
  const box = rigFor({ hnrSeedHours: 2, hnrDays: 3, hnrMax: 1, hnrExpireDays: 0, apiToken: TOKEN });

  /** A member snatches torrent `h` through one client (started, then completed an interval later). */
  async function snatch(r: Rig, passkey: string, h: Buffer, port: number) {
    const f = { infoHash: h, passkey, port, peerId: peer(port) };
    await r.http({ ...f, event: 'started', left: 1000, downloaded: 0 });
    r.clock.advance(600);
    await r.http({ ...f, event: 'completed', left: 0, downloaded: 1000 });
    return f;
  }

  test('over days of simulated time: a snatch left unseeded is marked at its deadline, download rights go (HTTP and UDP say why and how to recover); seeding it after all brings them back', async () => {
    const { r } = box;
    await r.tracker.hnrWatch!.run(); // hit-and-run on from here (hnr_since)
    const m = await r.member('hal');
    const h = await r.torrent(50);
    const f = await snatch(r, m.passkey, h, 7900);
    await r.http({ ...f, event: 'stopped', left: 0, downloaded: 1000 });
    await r.tracker.accountant!.flush();
    const run = () => r.tracker.hnrWatch!.run();
    r.clock.advance(3 * DAY - 1); // a second before the deadline
    assert.deepEqual(await run(), { marked: 0, seeded: 0, expired: 0, revoked: 0, restored: 0 });
    r.clock.advance(1);
    assert.deepEqual(await run(), { marked: 1, seeded: 0, expired: 0, revoked: 1, restored: 0 });
    const other = await r.torrent(51);
    const refused = await r.http({ infoHash: other, passkey: m.passkey, port: 7901, event: 'started' });
    assert.equal(reason(refused), Errors.leechHnr.message);
    assert.match(reason(refused), /hit-and-run.*seed/);
    assert.equal(
      (await r.udp({ infoHash: other, passkey: m.passkey, port: 7901 })).message,
      Errors.leechHnr.message,
    );
    // Seeding works, with the warning; seeding the torrent for 2 hours (announces every 20 min) clears it.
    const seed = await r.http({ ...f, event: 'started', left: 0, downloaded: 1000 });
    assert.equal(reason(seed), 'undefined');
    assert.equal(text(seed.get('warning message')), Warnings.hitAndRun.message);
    for (let t = 0; t < 2 * HOUR; t += 1200) {
      r.clock.advance(1200);
      assert.equal((await r.udp({ ...f, left: 0, downloaded: 1000 })).action, 1);
    }
    await r.tracker.accountant!.flush();
    assert.deepEqual(await run(), { marked: 0, seeded: 1, expired: 0, revoked: 0, restored: 1 });
    const back = await r.http({ infoHash: other, passkey: m.passkey, port: 7901, event: 'started' });
    assert.equal(reason(back), 'undefined');
    assert.equal(back.get('warning message'), undefined);
    const [ended] = await r.tracker.registry().hnr.list({ member: m.id });
    assert.equal(ended.status, 'seeded');
    assert.ok(ended.seed_time_now >= 2 * HOUR);
  });

  test('seeded within the window, or immune: never marked; API lists, forgives (rights back at once) and sets immunity', async () => {
    const { r } = box;
    await r.tracker.hnrWatch!.run();
    const good = await r.member('ida');
    const bad = await r.member('jon');
    const safe = await r.member('kim');
    const h = await r.torrent(52);
    const g = await snatch(r, good.passkey, h, 7910);
    await snatch(r, bad.passkey, h, 7911);
    await snatch(r, safe.passkey, h, 7912);
    const api = apiOf(r);
    assert.equal((await api('PATCH', `members/${safe.id}`, { hnr_immune: true })).hnr_immune, 1);
    // The first of these starts a new baseline (the client was silent longer than peer_timeout).
    for (let t = 0; t <= 2 * HOUR; t += 1200) {
      r.clock.advance(1200);
      await r.http({ ...g, left: 0, downloaded: 1000 });
    }
    await r.tracker.accountant!.flush();
    r.clock.advance(3 * DAY);
    assert.equal((await r.tracker.hnrWatch!.run()).marked, 1, 'only jon');
    const listed = await api('GET', `hit-and-runs?member=${bad.id}&status=active`);
    assert.equal(listed.length, 1);
    assert.deepEqual(
      [listed[0].username, listed[0].torrent_name, listed[0].status],
      ['jon', 't52', 'active'],
    );
    assert.equal((await api('GET', `hit-and-runs?member=${good.id}`)).length, 0);
    assert.equal((await api('GET', `hit-and-runs?member=${safe.id}`)).length, 0);
    const shown = await api('GET', `members/${bad.id}`);
    assert.deepEqual([shown.hnr_active, shown.can_leech, shown.leech_reason], [1, 0, 'hnr']);
    await api('GET', 'hit-and-runs?status=bogus', undefined, 400);
    const forgiven = await api(
      'POST',
      `hit-and-runs/${listed[0].id}/forgive`,
      { note: 'client crashed' },
      201,
    );
    assert.deepEqual([forgiven.status, forgiven.note], ['forgiven', 'client crashed']);
    await api('POST', `hit-and-runs/${listed[0].id}/forgive`, {}, 409);
    await api('POST', 'hit-and-runs/999999/forgive', {}, 404);
    assert.equal((await api('GET', `members/${bad.id}`)).can_leech, 1, 'rights back in the same transaction');
    await r.tracker.policy.refresh();
    const ok = await r.http({
      infoHash: await r.torrent(53),
      passkey: bad.passkey,
      port: 7913,
      event: 'started',
    });
    assert.equal(reason(ok), 'undefined');
  });
});

describe('member classes', () => {
  const box = rigFor({
    memberClasses: ['User: slots=1', 'Elite: uploaded=1GiB slots=0 upload_factor=200 download_factor=50'],
    apiToken: TOKEN,
  });

  /** A new member, three new torrents (numbered from `n`) and its announce fields on one of them. */
  async function slotsMember(name: string, n: number) {
    const { r } = box;
    const m = await r.member(name);
    const [a, b, c] = [await r.torrent(n), await r.torrent(n + 1), await r.torrent(n + 2)];
    const f = (h: Buffer, port: number) => ({ infoHash: h, passkey: m.passkey, port, peerId: peer(port) });
    return { a, b, c, f };
  }

  test('download slots, HTTP and UDP: a second leeching torrent is refused with a reason; seeding is not limited; a stopped torrent frees its slot', async () => {
    const { r } = box;
    const { a, b, c, f } = await slotsMember('lou', 60);
    assert.equal(reason(await r.http({ ...f(a, 8001), event: 'started', left: 1000 })), 'undefined');
    const refused = await r.http({ ...f(b, 8002), event: 'started', left: 1000 });
    assert.equal(reason(refused), Errors.downloadSlots.message);
    assert.match(reason(refused), /slots.*seeding is not limited/);
    const u = await r.udp({ ...f(b, 8002), event: 'started', left: 1000 });
    assert.deepEqual([u.action, u.message], [3, Errors.downloadSlots.message]);
    assert.equal(reason(await r.http({ ...f(c, 8003), event: 'started', left: 0 })), 'undefined', 'seeding');
    assert.equal(
      reason(await r.http({ ...f(a, 8004), event: 'started', left: 1000 })),
      'undefined',
      'same torrent',
    );
    for (const port of [8001, 8004]) await r.http({ ...f(a, port), event: 'stopped', left: 1000 });
    assert.equal((await r.udp({ ...f(b, 8002), event: 'started', left: 1000 })).action, 1, 'slot free again');
  });

  test('download slots: a peer that starts as a seeder and then reports something left takes a slot (HTTP and UDP)', async () => {
    const { r } = box;
    const { a, b, c, f } = await slotsMember('sly', 66);
    assert.equal(reason(await r.http({ ...f(a, 8101), event: 'started', left: 1000 })), 'undefined');
    // The slot is taken: a second torrent announced as seeding first, then leeched.
    assert.equal(reason(await r.http({ ...f(b, 8102), event: 'started', left: 0 })), 'undefined', 'seeding');
    assert.equal((await r.udp({ ...f(c, 8103), event: 'started', left: 0 })).action, 1, 'seeding (UDP)');
    r.clock.advance(700);
    assert.equal(reason(await r.http({ ...f(b, 8102), left: 1000 })), Errors.downloadSlots.message);
    const u = await r.udp({ ...f(c, 8103), left: 1000 });
    assert.deepEqual([u.action, u.message], [3, Errors.downloadSlots.message]);
    // Still seeding them is fine; once the first torrent stops, one of them may be leeched.
    assert.equal(reason(await r.http({ ...f(b, 8102), left: 0 })), 'undefined', 'still seeding');
    await r.http({ ...f(a, 8101), event: 'stopped', left: 1000 });
    r.clock.advance(700);
    assert.equal(reason(await r.http({ ...f(b, 8102), left: 1000 })), 'undefined', 'slot free again');
    assert.equal((await r.udp({ ...f(c, 8103), left: 1000 })).action, 3, 'and taken');
  });

  test('promoted by the scheduler, the member gets the class\u2019s slots and factors at once', async () => {
    const { r } = box;
    const m = await r.member('eli');
    const reg = r.tracker.registry();
    await reg.db.kysely
      .updateTable('members')
      .set({ uploaded: 1024 ** 3 })
      .where('id', '=', m.id)
      .execute();
    assert.deepEqual(await r.tracker.classWatch!.run(), { promoted: 1, demoted: 0 });
    const [a, b] = [await r.torrent(63), await r.torrent(64)];
    const f = { infoHash: a, passkey: m.passkey, port: 8010, peerId: peer(8010) };
    await r.http({ ...f, event: 'started', left: 1000 });
    assert.equal(
      reason(await r.http({ infoHash: b, passkey: m.passkey, port: 8011, event: 'started' })),
      'undefined',
      'Elite: no slot limit',
    );
    r.clock.advance(600);
    await r.http({ ...f, left: 0, uploaded: 1000, downloaded: 1000 });
    await r.tracker.accountant!.flush();
    const after = await reg.member(m.id);
    assert.deepEqual(
      [after.uploaded - 1024 ** 3, after.downloaded, after.raw_uploaded, after.class],
      [2000, 500, 1000, 'Elite'],
    );
  });

  test('API: the classes with their members, a class set by hand (and back to automatic), the history', async () => {
    const { r } = box;
    const api = apiOf(r);
    const m = await r.member('nan');
    const classes = await api('GET', 'classes');
    assert.deepEqual(
      classes.map((c) => [c.name, c.slots, c.uploadFactor]),
      [
        ['User', 1, 100],
        ['Elite', 0, 200],
      ],
    );
    assert.ok((classes[0].members as number) >= 1);
    const set = await api('PATCH', `members/${m.id}`, { class: 'Elite' });
    assert.deepEqual([set.class, set.class_locked], ['Elite', 1]);
    await api('PATCH', `members/${m.id}`, { class: 'Gold' }, 400);
    assert.deepEqual(
      await r.tracker.classWatch!.run(),
      { promoted: 0, demoted: 0 },
      'set by hand: left alone',
    );
    assert.equal((await api('PATCH', `members/${m.id}`, { class: null })).class_locked, 0);
    assert.deepEqual(await r.tracker.classWatch!.run(), { promoted: 0, demoted: 1 });
    const h = await api('GET', `members/${m.id}/class-history`);
    assert.deepEqual(
      h.map((c) => [c.from_class, c.to_class, c.reason]),
      [
        ['Elite', 'User', 'demoted'],
        [null, 'Elite', 'staff'],
      ],
    );
  });

  test('API: bonus points given and taken, balance and ledger', async () => {
    const { r } = box;
    const api = apiOf(r);
    const m = await r.member('ola');
    assert.equal(
      (await api('POST', `members/${m.id}/bonus`, { points: 1500, note: 'prize' }, 201)).balance,
      1500,
    );
    assert.equal((await api('POST', `members/${m.id}/bonus`, { points: -500 }, 201)).balance, 1000);
    await api('POST', `members/${m.id}/bonus`, { points: 0 }, 400);
    await api('POST', `members/${m.id}/bonus`, { points: 1.5 }, 400);
    const b = await api('GET', `members/${m.id}/bonus`);
    assert.deepEqual(
      [b.balance, b.freeleech_tokens, (b.ledger as unknown as { delta: number }[]).map((x) => x.delta)],
      [1000, 0, [-500, 1500]],
    );
  });
});

describe('bonus points', () => {
  const box = rigFor({
    bonusBase: 100,
    bonusPerGib: 0,
    bonusFewSeeders: 3,
    bonusFewPoints: 50,
    bonusOldDays: 0,
  });

  test('two hours of seeding over HTTP and UDP earn two hours of points, once, into the ledger', async () => {
    const { r } = box;
    const m = await r.member('pat');
    const h = await r.torrent(70);
    const f = { infoHash: h, passkey: m.passkey, port: 8100, peerId: peer(8100), left: 0 };
    await r.http({ ...f, event: 'started' });
    for (let i = 0; i < 6; i++) {
      r.clock.advance(1200);
      await (i % 2 === 0 ? r.http(f) : r.udp(f));
    }
    await r.tracker.accountant!.flush();
    // 100 base + 50 (one seeder: few) = 150 hundredths an hour, for 7200 s.
    assert.deepEqual(await r.tracker.bonusWatch!.run(), { members: 1, points: 300 });
    assert.deepEqual(await r.tracker.bonusWatch!.run(), { members: 0, points: 0 });
    assert.equal(await r.tracker.registry().bonus.balance(m.id), 300);
  });

  test('a freeleech token makes one torrent free for the member for freeleech_token_days: download not counted, then counted again', async () => {
    const { r } = box;
    const reg = r.tracker.registry();
    const m = await r.member('quin');
    const [h, other] = [await r.torrent(71), await r.torrent(72)];
    await reg.db.kysely.updateTable('members').set({ freeleech_tokens: 1 }).where('id', '=', m.id).execute();
    const [hid, otherId] = [(await reg.torrent(hex(h))).id, (await reg.torrent(hex(other))).id];
    const ends = await reg.freeleech.spendToken(await reg.member(m.id), hid, 3, r.clock.now());
    assert.equal(ends, r.clock.now() + 3 * DAY);
    await assert.rejects(
      reg.freeleech.spendToken(await reg.member(m.id), hid, 3, r.clock.now()),
      /already freeleech for you/,
    );
    await assert.rejects(
      reg.freeleech.spendToken(await reg.member(m.id), otherId, 3, r.clock.now()),
      /no freeleech tokens left/,
    );
    await r.tracker.policy.refresh();
    const leech = async (ih: Buffer, port: number, downloaded: number, event?: 'started') =>
      r.http({ infoHash: ih, passkey: m.passkey, port, peerId: peer(port), left: 5000, downloaded, event });
    await leech(h, 8200, 0, 'started');
    await leech(other, 8201, 0, 'started');
    r.clock.advance(1200);
    await leech(h, 8200, 1000);
    await leech(other, 8201, 1000);
    await r.tracker.accountant!.flush();
    let row = await reg.member(m.id);
    assert.deepEqual(
      [row.downloaded, row.raw_downloaded, row.freeleech_tokens],
      [1000, 2000, 0],
      'only the other torrent counts',
    );
    r.clock.advance(3 * DAY);
    await leech(h, 8200, 1500, 'started');
    r.clock.advance(1200);
    await leech(h, 8200, 2500);
    await r.tracker.accountant!.flush();
    row = await reg.member(m.id);
    assert.equal(row.downloaded, 2000, 'three days on: counted again');
  });
});
