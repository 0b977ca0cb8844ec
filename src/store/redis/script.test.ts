/**
 * How the Redis store's announces reach the Lua script (redis-store.ts `#luaAnnounce`: one EVALSHA
 * command, not ioredis's script helper), on a redis-server of the test's own (its call statistics
 * and script cache are the test's alone): a server that has lost the script (SCRIPT FLUSH, a
 * restart) answers NOSCRIPT and the store sends the script with the call (EVAL), once.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import {
  freePort,
  type OwnRedis,
  ownRedis,
  peerAnnounce,
  redisTargets,
} from '../../../test/helpers/redis.ts';
import type { AnnounceResult } from '../../core/types.ts';
import { RedisSwarmStore } from './redis-store.ts';

/** The server's count of `command` calls (INFO commandstats). */
async function calls(admin: Redis, command: string): Promise<number> {
  const info = await admin.info('commandstats');
  return Number(new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(info)?.[1] ?? 0);
}

describe('redis store, the announce script (a redis-server of its own)', {
  skip: redisTargets.length === 0,
}, () => {
  let server: OwnRedis;
  let admin: Redis;
  let store: RedisSwarmStore;
  before(async () => {
    server = ownRedis(await freePort(7400));
    await server.start();
    admin = new Redis(server.url);
    store = new RedisSwarmStore({
      url: server.url,
      prefix: 'hb',
      timeoutMs: 5000,
      peerTimeout: 1800,
      module: 'off',
    });
    await store.ready(5000);
  });
  after(async () => {
    await store?.close();
    admin?.disconnect();
    await server?.kill();
  });

  test('a server that lost the script (SCRIPT FLUSH) is sent it with the call', async () => {
    const h = new Uint8Array(20).fill(8);
    await store.announce(peerAnnounce(h, 1, {}), 1000);
    await admin.script('FLUSH');
    await admin.config('RESETSTAT');
    const r = (await store.announce(peerAnnounce(h, 2, {}), 1001)) as AnnounceResult;
    assert.equal(r.incomplete, 1);
    assert.equal(await calls(admin, 'eval'), 1);
    // Loaded again: the next call is an EVALSHA that succeeds. (An announce's counts leave out its own peer.)
    const again = (await store.announce(peerAnnounce(h, 3, {}), 1002)) as AnnounceResult;
    assert.equal(again.incomplete, 2);
    assert.equal(await calls(admin, 'eval'), 1);
  });
});
