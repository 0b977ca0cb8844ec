/**
 * Promotions (issue #16) over real sockets: a site-wide event, a staff freeleech window and a
 * featured torrent, each made through the JSON API, change what announces over HTTP credit, from
 * their start to their end, with no reload in between (the snapshot holds their times and the
 * accounting judges them at each announce against the injected clock). Member totals are read
 * back from the database after each flush. Tokens through the API; the member object's figures.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ManualClock } from '../../src/core/clock.ts';
import { createTracker, type Tracker } from '../../src/index.ts';
import { announcePath, bdecode, hashOf, httpGet, text } from '../helpers/clients.ts';
import { privateTrackerConfig } from '../helpers/store-tracker.ts';

const TOKEN = 'promotions-token-0123456789';
const T0 = 1_900_000_000;
const STEP = 1200;
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('promotions over HTTP: what is credited from start to end', () => {
  const clock = new ManualClock(T0);
  let tracker: Tracker;
  let port: number;
  const api = async (method: string, path: string, body?: unknown, status?: number) => {
    const res = await fetch(`http://127.0.0.1:${port}/api/${path}`, {
      method,
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    assert.equal(res.status, status ?? (method === 'POST' ? 201 : 200), await res.clone().text());
    return (await res.json()) as Record<string, unknown> & Record<string, unknown>[];
  };

  before(async () => {
    tracker = createTracker(
      privateTrackerConfig({
        interval: 1200,
        minInterval: 600,
        announceGrace: 60,
        peerTimeout: 1500,
        apiToken: TOKEN,
      }),
      { clock },
    );
    await tracker.start();
    port = tracker.addresses().http[0].port;
  });
  after(() => tracker.stop());

  test('an event, a staff window and a featured torrent, each at its start and end; revoked and cancelled ones stop at once', async () => {
    const reg = tracker.registry();
    const a = await reg.addMember({ username: 'ada' });
    const b = await reg.addMember({ username: 'bo' });
    const [t1, t2] = [hashOf(901, 160), hashOf(902, 160)];
    for (const [h, n] of [
      [t1, 't1'],
      [t2, 't2'],
    ] as const)
      await reg.addTorrent({ infoHash: hex(h), infoHashV2: null, name: n, size: 1e6, fileCount: 1 });
    const t1Id = (await reg.torrent(hex(t1))).id;

    // Made before any traffic; each call reloads the policy once, and nothing reloads after.
    const event = await api('POST', 'events', {
      name: 'Freeleech hour',
      starts_at: T0 + 3 * STEP,
      ends_at: T0 + 6 * STEP,
      freeleech: true,
      double_upload: true,
    });
    assert.deepEqual([event.freeleech, event.upload_factor], [1, 200]);
    const win = await api('POST', 'members/ada/freeleech', {
      starts_at: T0 + 7 * STEP,
      ends_at: T0 + 8 * STEP,
      double_upload: true,
      note: 'thanks for the uploads',
    });
    assert.deepEqual([win.source, win.upload_factor, win.torrent_id], ['staff', 200, null]);
    const feat = await api('POST', 'featured', {
      torrent: t1Id,
      starts_at: T0 + 9 * STEP,
      ends_at: T0 + 10 * STEP,
    });
    assert.deepEqual([feat.torrent_name, feat.upload_factor], ['t1', 200]);
    await api('POST', 'featured', { torrent: hex(t1), starts_at: T0 + 9 * STEP }, 409);
    await api('POST', 'events', { name: 'nothing', starts_at: T0, ends_at: T0 + 1 }, 400);
    await api('POST', 'events', { name: 'backwards', starts_at: T0 + 10, ends_at: T0, freeleech: true }, 400);
    const profile = await api('GET', 'members/ada');
    assert.equal((profile.freeleech_windows as unknown[]).length, 1, 'the window is on the member object');

    const peers = [
      { m: a, h: t2, port: 9301 },
      { m: b, h: t2, port: 9302 },
      { m: b, h: t1, port: 9303 },
    ];
    let sent = 0;
    const round = async (event?: 'started') => {
      if (event === undefined) sent += 1000;
      for (const p of peers) {
        const d = bdecode(
          (
            await httpGet(
              port,
              '127.0.0.1',
              announcePath({
                infoHash: p.h,
                port: p.port,
                base: `/announce/${p.m.passkey}`,
                uploaded: sent,
                downloaded: sent,
                left: 1e6,
                event,
              }),
            )
          ).body,
        );
        assert.equal(text(d.get('failure reason')), 'undefined');
      }
    };
    let last = { a: [0, 0], b: [0, 0] };
    /** What the round at step `k` credited each member: [up, down]. */
    const creditedAt = async (k: number) => {
      clock.set(T0 + k * STEP);
      await round();
      await tracker.accountant!.flush();
      const [ra, rb] = [await reg.member(a.id), await reg.member(b.id)];
      const got = {
        a: [ra.uploaded - last.a[0], ra.downloaded - last.a[1]],
        b: [rb.uploaded - last.b[0], rb.downloaded - last.b[1]],
      };
      last = { a: [ra.uploaded, ra.downloaded], b: [rb.uploaded, rb.downloaded] };
      return got;
    };
    await round('started');
    const loads = tracker.policy.loads;
    const plain = { a: [1000, 1000], b: [2000, 2000] };
    assert.deepEqual(await creditedAt(1), plain, 'before anything');
    assert.deepEqual(await creditedAt(2), plain, 'a step before the event');
    assert.deepEqual(
      await creditedAt(3),
      { a: [2000, 0], b: [4000, 0] },
      'the event starts: free, double up',
    );
    assert.deepEqual(await creditedAt(5), { a: [2000, 0], b: [4000, 0] }, 'the event goes on');
    assert.deepEqual(await creditedAt(6), plain, 'the event ended');
    assert.deepEqual(await creditedAt(7), { a: [2000, 0], b: [2000, 2000] }, "ada's window: hers only");
    assert.deepEqual(await creditedAt(8), plain, "ada's window ended");
    assert.deepEqual(
      await creditedAt(9),
      { a: [1000, 1000], b: [3000, 1000] },
      't1 featured: free, double up',
    );
    assert.deepEqual(await creditedAt(10), plain, 't1 no longer featured');
    assert.equal(tracker.policy.loads, loads, 'no reload between the starts and ends');

    // Revoked and cancelled: over at once (the API reloads the policy).
    const w2 = await api('POST', 'members/bo/freeleech', {
      starts_at: T0 + 11 * STEP,
      ends_at: T0 + 20 * STEP,
    });
    const e2 = await api('POST', 'events', {
      name: 'Double upload',
      starts_at: T0 + 11 * STEP,
      ends_at: T0 + 20 * STEP,
      double_upload: true,
    });
    assert.deepEqual(await creditedAt(11), { a: [2000, 1000], b: [4000, 0] });
    const revoked = await api('DELETE', `freeleech/${w2.id}`);
    assert.equal(typeof revoked.revoked_at, 'number');
    await api('DELETE', `freeleech/${w2.id}`, undefined, 409);
    const cancelled = await api('DELETE', `events/${e2.id}`);
    assert.equal(typeof cancelled.cancelled_at, 'number');
    assert.deepEqual(await creditedAt(12), plain, 'revoked and cancelled');
    await api('DELETE', 'events/999', undefined, 404);
    await api('PATCH', `events/${event.id}`, { name: 'Renamed' });
    assert.equal(((await api('GET', 'events?all=1')) as unknown as { name: string }[])[0].name, 'Renamed');
  });

  test('tokens through the API: staff give, the member spends one on a torrent, listed with their use', async () => {
    const reg = tracker.registry();
    await reg.addMember({ username: 'cy' });
    await reg.addTorrent({
      infoHash: hex(hashOf(903, 160)),
      infoHashV2: null,
      name: 't3',
      size: 1,
      fileCount: 1,
    });
    await api('POST', 'members/cy/tokens/spend', { torrent: hex(hashOf(903, 160)) }, 409);
    const given = await api('POST', 'members/cy/tokens', { count: 2, note: 'contest' });
    assert.equal(given.freeleech_tokens, 2);
    const spent = await api('POST', 'members/cy/tokens/spend', { torrent: hex(hashOf(903, 160)) });
    assert.equal(spent.freeleech_tokens, 1);
    const tokens = await api('GET', 'members/cy/tokens');
    assert.equal(tokens.freeleech_tokens, 1);
    assert.deepEqual(
      (tokens.spent as { torrent_name: string; source: string }[]).map((w) => [w.torrent_name, w.source]),
      [['t3', 'token']],
    );
    assert.deepEqual(
      (tokens.ledger as { reason: string; note: string }[]).map((r) => [r.reason, r.note]),
      [['staff:token', '+2 contest']],
    );
    await api('POST', 'members/cy/tokens', { count: -5 }, 409);
    const m = await api('GET', 'members/cy');
    for (const k of ['snatches', 'seeding_now', 'leeching_now', 'hnr_active', 'bonus_points', 'invites_sent'])
      assert.equal(typeof m[k], 'number', k);
    assert.equal(m.freeleech_tokens, 1);
    assert.deepEqual(
      (m.freeleech_windows as { source: string }[]).map((w) => w.source),
      ['token'],
      'the window the token opened',
    );
  });
});
