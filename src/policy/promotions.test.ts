import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ManualClock } from '../core/clock.ts';
import { type Credit, credit, Promotions, promotionAt } from './promotions.ts';

const T0 = 1_900_000_000;
const H = 3600;
const torrent = { id: 7, uploadFactor: 100, downloadFactor: 100 };

function source(p = new Promotions(), site = { up: 100, down: 100 }) {
  return { promotions: p, siteUploadFactor: site.up, siteDownloadFactor: site.down };
}

/** Credit for 1000 bytes up and 1000 down by member 1 on `t` at the clock's time. */
function at(
  s: ReturnType<typeof source>,
  clock: ManualClock,
  t = torrent,
  cls?: { uploadFactor: number; downloadFactor: number },
): [number, number] {
  const out: Credit = { up: -1, down: -1 };
  credit(s, 1, t, cls, 1000, 1000, clock.now(), out);
  return [out.up, out.down];
}

describe('promotions: factors at each start and end (injected clock)', () => {
  test('no promotion: raw × torrent% × site% × class%, floored as before', () => {
    const clock = new ManualClock(T0);
    assert.deepEqual(at(source(), clock), [1000, 1000]);
    assert.deepEqual(
      at(source(undefined, { up: 150, down: 50 }), clock, { id: 7, uploadFactor: 133, downloadFactor: 77 }),
      [Math.floor((1000 * 133 * 150) / 10000), Math.floor((1000 * 77 * 50) / 10000)],
    );
    assert.deepEqual(at(source(), clock, torrent, { uploadFactor: 110, downloadFactor: 90 }), [1100, 900]);
  });

  test('a site-wide event is in force from its start (inclusive) to its end (exclusive)', () => {
    const p = new Promotions();
    p.events = [
      {
        id: 1,
        name: 'Freeleech weekend',
        startsAt: T0 + H,
        endsAt: T0 + 2 * H,
        freeleech: true,
        uploadFactor: 200,
      },
    ];
    const s = source(p);
    const clock = new ManualClock(T0 + H - 1);
    assert.deepEqual(at(s, clock), [1000, 1000], 'one second before the start');
    clock.advance(1);
    assert.deepEqual(at(s, clock), [2000, 0], 'at the start: free and double upload');
    clock.set(T0 + 2 * H - 1);
    assert.deepEqual(at(s, clock), [2000, 0], 'last second');
    clock.advance(1);
    assert.deepEqual(at(s, clock), [1000, 1000], 'at the end: over');
  });

  test('double upload only: downloads count as usual', () => {
    const p = new Promotions();
    p.events = [{ id: 1, name: 'DU', startsAt: T0, endsAt: T0 + H, freeleech: false, uploadFactor: 200 }];
    assert.deepEqual(at(source(p), new ManualClock(T0)), [2000, 1000]);
  });

  test('a staff window: every torrent of that member only, free and its upload factor, [starts, ends)', () => {
    const p = new Promotions();
    p.addPersonal(1, null, T0, T0 + H, 200);
    const s = source(p);
    const clock = new ManualClock(T0 - 1);
    assert.deepEqual(at(s, clock), [1000, 1000]);
    clock.advance(1);
    assert.deepEqual(at(s, clock), [2000, 0]);
    assert.deepEqual(
      at(s, clock, { id: 99, uploadFactor: 100, downloadFactor: 100 }),
      [2000, 0],
      'any torrent',
    );
    assert.equal(promotionAt(p, 2, 7, clock.now()), 0, 'another member: nothing');
    clock.set(T0 + H);
    assert.deepEqual(at(s, clock), [1000, 1000]);
  });

  test("a token's window: that torrent only, free, uploads at 100%", () => {
    const p = new Promotions();
    p.addPersonal(1, 7, T0, T0 + H, 100);
    const s = source(p);
    const clock = new ManualClock(T0);
    assert.deepEqual(at(s, clock), [1000, 0]);
    assert.deepEqual(at(s, clock, { id: 8, uploadFactor: 100, downloadFactor: 100 }), [1000, 1000]);
  });

  test('a featured torrent: free and double upload for everyone on it, then over', () => {
    const p = new Promotions();
    p.addFeatured(7, T0, T0 + 7 * 86400, 200);
    const s = source(p);
    const clock = new ManualClock(T0 - 1);
    assert.deepEqual(at(s, clock), [1000, 1000]);
    clock.advance(1);
    assert.deepEqual(at(s, clock), [2000, 0]);
    assert.equal(promotionAt(p, 42, 7, clock.now()), 2 * 200 + 1, 'every member');
    assert.deepEqual(at(s, clock, { id: 8, uploadFactor: 100, downloadFactor: 100 }), [1000, 1000]);
    clock.set(T0 + 7 * 86400);
    assert.deepEqual(at(s, clock), [1000, 1000]);
  });

  test('upload factors do not stack: the largest applies (event, window, featured, the torrent itself)', () => {
    const p = new Promotions();
    p.events = [{ id: 1, name: 'DU', startsAt: T0, endsAt: T0 + H, freeleech: false, uploadFactor: 200 }];
    p.addFeatured(7, T0, T0 + H, 200);
    p.addPersonal(1, null, T0 + 10, T0 + 20, 300);
    const s = source(p);
    const clock = new ManualClock(T0);
    assert.deepEqual(at(s, clock), [2000, 0], 'event 200% and featured 200%: double, not four times');
    clock.set(T0 + 10);
    assert.deepEqual(at(s, clock), [3000, 0], 'the 300% window is the largest');
    clock.set(T0 + 20);
    assert.deepEqual(
      at(s, clock, { id: 7, uploadFactor: 500, downloadFactor: 100 }),
      [5000, 0],
      'the torrent at 500% keeps it',
    );
    // Site and class factors are standing settings and still multiply.
    assert.deepEqual(
      at(source(p, { up: 150, down: 100 }), clock, torrent, { uploadFactor: 110, downloadFactor: 200 }),
      [Math.floor((Math.floor((1000 * 200 * 150) / 10000) * 110) / 100), 0],
      'freeleech wins over a class download factor of 200%',
    );
  });

  test('freeleech wins over any download factor; an upload-only event does not free anything', () => {
    const p = new Promotions();
    p.events = [
      { id: 1, name: 'DU', startsAt: T0, endsAt: T0 + 2 * H, freeleech: false, uploadFactor: 150 },
      { id: 2, name: 'FL', startsAt: T0 + H, endsAt: T0 + 2 * H, freeleech: true, uploadFactor: 100 },
    ];
    const s = source(p, { up: 100, down: 300 });
    const clock = new ManualClock(T0);
    assert.deepEqual(at(s, clock), [1500, 3000]);
    clock.set(T0 + H);
    assert.deepEqual(
      at(s, clock),
      [1500, 0],
      'free under a 300% site download factor; the 150% upload stays',
    );
  });

  test('the banner: the event in force, else the next to start', () => {
    const p = new Promotions();
    p.events = [
      { id: 1, name: 'A', startsAt: T0 + H, endsAt: T0 + 2 * H, freeleech: true, uploadFactor: 100 },
      { id: 2, name: 'B', startsAt: T0 + 3 * H, endsAt: T0 + 4 * H, freeleech: true, uploadFactor: 100 },
    ];
    assert.equal(p.current(T0)?.name, 'A');
    assert.equal(p.current(T0 + H)?.name, 'A');
    assert.equal(p.current(T0 + 2 * H)?.name, 'B');
    assert.equal(p.current(T0 + 4 * H), null);
  });
});

test('credit is exact to the byte for deltas near 2^53 (the factors applied in integers)', () => {
  const exact = (n: number, ...pcts: number[]) => {
    let v = BigInt(n);
    for (let i = 0; i < pcts.length; i += 2) v = (v * BigInt(pcts[i]) * BigInt(pcts[i + 1])) / 10000n;
    return Number(v);
  };
  const out: Credit = { up: 0, down: 0 };
  const big = Number.MAX_SAFE_INTEGER;
  credit(source(), 1, torrent, undefined, big, big - 1, T0, out);
  assert.deepEqual([out.up, out.down], [big, big - 1], 'every factor 100%');
  const odd = 2 ** 52 + 12345;
  credit(
    source(undefined, { up: 150, down: 50 }),
    1,
    { id: 7, uploadFactor: 99, downloadFactor: 77 },
    undefined,
    odd,
    odd,
    T0,
    out,
  );
  assert.deepEqual([out.up, out.down], [exact(odd, 99, 150), exact(odd, 77, 50)]);
  credit(source(), 1, torrent, { uploadFactor: 110, downloadFactor: 90 }, odd, odd, T0, out);
  assert.deepEqual([out.up, out.down], [exact(odd, 110, 100), exact(odd, 90, 100)], 'class factors');
});
