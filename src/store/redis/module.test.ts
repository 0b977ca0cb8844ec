/**
 * Herald's Redis module (native/redis/herald.c) on bad input: HERALD.ANNOUNCE with the wrong number
 * of arguments, malformed packed records, or swarm keys of the wrong type answers a Redis error
 * and changes nothing it should not; random argument bytes (and valid records with random bytes
 * changed) never crash or hang redis-server. On a redis-server of the test's own with the module
 * loaded. A call that starts after its deadline answers LATE and changes nothing (as the script).
 * And a server that unloads it under a running store: `redis_module = auto` goes on
 * through the Lua script, `require` refuses and says why in its health.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { moduleRedis, peerAnnounce } from '../../../test/helpers/redis.ts';
import { Errors } from '../../core/errors.ts';
import type { AnnounceEvent, AnnounceRequest } from '../../core/types.ts';
import { endpointOf } from '../../swarm/contract.ts';
import { announceRecord, bucketOf } from './records.ts';
import { RedisSwarmStore } from './redis-store.ts';
import { ANNOUNCE_BATCH, LATE } from './scripts.ts';

const server = moduleRedis();

/** A small deterministic generator (the run is the same every time). */
function rng(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (Math.imul(x ^ (x >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    return x / 2 ** 32;
  };
}

function request(h: Uint8Array, peer: number, family: 4 | 6 = 4): AnnounceRequest {
  return peerAnnounce(h, peer, {
    family,
    ...endpointOf(peer, family),
    event: 2 as AnnounceEvent,
    numWant: 30,
    wantPeerIds: true,
  });
}

describe('herald redis module: bad input', {
  skip: server === null ? 'no module (see above)' : false,
}, () => {
  let c: Redis;
  const prefix = 'herald-module-test';
  const h = new Uint8Array(20).fill(0x42);
  const b = bucketOf(h);
  const index = `${prefix}:{${b}}:i`;
  const call = (...args: (string | Buffer | number)[]) =>
    c.callBuffer('HERALD.ANNOUNCE', ...args).then(
      (r) => r as Buffer,
      (err: Error) => err,
    );
  const record = (peer: number, over: Partial<AnnounceRequest> = {}, acct = false) =>
    announceRecord(
      { ...request(h, peer), ...over },
      b,
      1000,
      0.5,
      acct
        ? { torrentId: 1, memberId: 2, route: h, peersPerTorrent: 2, minGap: 10, refuseEarly: true }
        : null,
      100,
    );

  before(async () => {
    c = new Redis(await server!.url());
  });
  after(async () => {
    c?.disconnect();
    await server?.stop();
  });

  test('the wrong number of arguments is an error', async () => {
    for (const args of [
      [],
      [index],
      [index, prefix],
      [index, prefix, record(1)],
      [index, prefix, record(1), '0', 'x'],
    ]) {
      const r = await call(...args);
      assert.ok(r instanceof Error && /wrong number of arguments/.test(r.message), String(r));
    }
  });

  test('a malformed record is an error, and no record of the call is applied', async () => {
    const good = record(1);
    const bad = [
      Buffer.alloc(1),
      good.subarray(0, good.length - 1),
      Buffer.concat([good, Buffer.alloc(3)]),
      // An IPv4 record with an 18-byte endpoint length; an event past 3; private flag 7.
      Buffer.from(good).fill(18, 54, 55),
      Buffer.from(good).fill(9, 3, 4),
      Buffer.from(good).fill(7, good.length - 1),
      // A private record cut in its middle.
      record(1, {}, true).subarray(0, 70),
    ];
    for (const x of bad) {
      const r = await call(index, prefix, Buffer.concat([good, x]), '0');
      assert.ok(
        r instanceof Error && /^ERR herald\.announce/.test(r.message),
        `${String(r)} for ${x.toString('hex')}`,
      );
    }
    const none = await call(index, prefix, Buffer.alloc(0), '0');
    assert.ok(none instanceof Error && /no announce record/.test(none.message), String(none));
    assert.equal((await c.keys(`${prefix}:*`)).length, 0, 'nothing written');
    // The same record alone is good: it answers and writes.
    const ok = await call(index, prefix, good, '0');
    assert.ok(Buffer.isBuffer(ok) && ok[0] === 0);
    assert.equal(await c.zcard(index), 1);
  });

  test('a call that starts after its deadline (by the server clock) changes nothing and answers LATE, as the script does', async () => {
    const h3 = new Uint8Array(20).fill(0x44);
    const b3 = bucketOf(h3);
    const index3 = `${prefix}:{${b3}}:i`;
    const rec = announceRecord(request(h3, 1), b3, 1000, 0.5, null, 100);
    const [sec] = await c.time();
    const past = String(Number(sec) * 1000 - 1000);
    const script = (deadline: string) =>
      c.callBuffer('EVAL', ANNOUNCE_BATCH, 1, index3, prefix, rec, deadline).then(
        (r) => r as Buffer,
        (err: Error) => err,
      );
    for (const r of [await call(index3, prefix, rec, past), await script(past)])
      assert.ok(r instanceof Error && r.message === LATE, String(r));
    assert.deepEqual(await c.keys(`${prefix}:{${b3}}:*`), [], 'nothing written');
    const bad = await call(index3, prefix, rec, 'soon');
    assert.ok(bad instanceof Error && /deadline is not a number/.test(bad.message), String(bad));
    // In time (a minute ahead), or without a deadline (0): applied.
    const ahead = String(Number(sec) * 1000 + 60_000);
    for (const r of [
      await call(index3, prefix, rec, ahead),
      await script(ahead),
      await call(index3, prefix, rec, '0'),
    ])
      assert.ok(Buffer.isBuffer(r) && r[0] === 0, String(r));
    assert.equal(await c.zcard(index3), 1);
  });

  test('a swarm key of the wrong type is a WRONGTYPE error, never a crash', async () => {
    const h2 = new Uint8Array(20).fill(0x43);
    const b2 = bucketOf(h2);
    const meta = Buffer.concat([Buffer.from(`${prefix}:{${b2}}:`), h2, Buffer.from(':m')]);
    const leechers = Buffer.concat([Buffer.from(`${prefix}:{${b2}}:`), h2, Buffer.from(':4l')]);
    const rec = (peer: number) => announceRecord(request(h2, peer), b2, 1000, 0.5, null, 100);
    for (const [k, [key, set]] of (
      [
        [meta, () => c.set(meta, 'x')],
        [leechers, () => c.set(leechers, 'x')],
        [`${prefix}:{${b2}}:i`, () => c.hset(`${prefix}:{${b2}}:i`, 'x', '1')],
        [`${prefix}:{${b2}}:n`, () => c.sadd(`${prefix}:{${b2}}:n`, 'x')],
      ] as const
    ).entries()) {
      await set();
      // A new peer each time: one that must be added to every key (an earlier one may be in some).
      const r = await call(`${prefix}:{${b2}}:i`, prefix, rec(5 + k), '0');
      assert.ok(r instanceof Error && r.message.startsWith('WRONGTYPE'), `${String(r)} (${String(key)})`);
      await c.del(key);
    }
    // A private-mode baseline hash of the wrong type.
    const akey = `${prefix}:{${b}}:a:1:2`;
    await c.set(akey, 'x');
    const r = await call(index, prefix, record(7, {}, true), '0');
    assert.ok(r instanceof Error && r.message.startsWith('WRONGTYPE'), String(r));
    await c.del(akey);
    assert.equal(await c.ping(), 'PONG');
  });

  test('random bytes and damaged records never crash redis-server', async () => {
    const random = rng(1414);
    const byte = () => Math.floor(random() * 256);
    const valid = () => {
      const peer = Math.floor(random() * 40);
      const family = random() < 0.5 ? 4 : 6;
      return announceRecord(
        {
          ...request(h, peer, family),
          event: Math.floor(random() * 4) as AnnounceEvent,
          left: random() < 0.5 ? 0 : 5,
          numWant: Math.floor(random() * 300),
        },
        b,
        1000 + Math.floor(random() * 100),
        random(),
        random() < 0.3
          ? {
              torrentId: 1,
              memberId: Math.floor(random() * 3),
              route: h,
              peersPerTorrent: Math.floor(random() * 3),
              minGap: Math.floor(random() * 20),
              refuseEarly: random() < 0.5,
            }
          : null,
        100,
      );
    };
    let errors = 0;
    let answers = 0;
    for (let i = 0; i < 1500; i++) {
      let records: Buffer;
      const kind = random();
      if (kind < 0.3) records = Buffer.from(Array.from({ length: Math.floor(random() * 200) }, byte));
      else {
        records = Buffer.concat(Array.from({ length: 1 + Math.floor(random() * 4) }, valid));
        // Damage a few bytes (most of the time): lengths, flags, counts, anything.
        if (kind < 0.85)
          for (let k = Math.floor(random() * 4); k >= 0; k--)
            records[Math.floor(random() * records.length)] = byte();
      }
      const args: (string | Buffer)[] = [
        index,
        random() < 0.1 ? Buffer.from([byte(), byte()]) : prefix,
        records,
        random() < 0.1 ? Buffer.from([byte(), byte()]) : '0',
      ];
      // Now and then the wrong number of arguments.
      if (random() < 0.05) args.splice(Math.floor(random() * 4), 1);
      const r = await call(...args);
      if (r instanceof Error) errors++;
      else answers++;
    }
    assert.equal(await c.ping(), 'PONG', 'redis-server still answers');
    assert.ok(errors > 100 && answers > 100, `errors ${errors}, answers ${answers}: both kinds exercised`);
  });
});

describe('herald redis module: a server that loses it', {
  skip: server === null ? 'no module (see above)' : false,
}, () => {
  const own = moduleRedis(['--enable-module-command', 'local']);
  after(() => own?.stop());

  test('redis_module = auto goes back to the Lua script; require refuses and says so in health', async () => {
    const url = await own!.url();
    const h = new Uint8Array(20).fill(0x77);
    const auto = new RedisSwarmStore({ url, prefix: 'lost', timeoutMs: 2000, peerTimeout: 100 });
    const required = new RedisSwarmStore({
      url,
      prefix: 'lost',
      timeoutMs: 2000,
      peerTimeout: 100,
      module: 'require',
    });
    const c = new Redis(url);
    try {
      await auto.ready(10_000);
      await required.ready(10_000);
      assert.equal(auto.module, true, 'found at connection');
      assert.ok(!((await auto.announce(request(h, 1), 1000)) instanceof Error));
      await c.call('MODULE', 'UNLOAD', 'herald');
      // The next announce is answered (through the script), and the swarm is the same one.
      const r = await auto.announce(request(h, 2), 1000);
      assert.ok(!(r instanceof Error), String(r));
      assert.equal(r.incomplete, 1, 'the peer announced through the module');
      assert.equal(auto.module, false);
      const refused = await required.announce(request(h, 3), 1000);
      assert.equal(refused, Errors.storeUnavailable);
      assert.match(String(required.health()), /herald module is not loaded/);
    } finally {
      c.disconnect();
      await auto.close();
      await required.close();
    }
  });
});
