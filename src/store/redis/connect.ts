import { Cluster, Redis, type RedisOptions } from 'ioredis';

/** Connections to one Redis server or a Redis Cluster, as the Redis store and WebTorrent relay make them. */

/** The Cluster slot of a hash tag: CRC16 (XMODEM) of its bytes, modulo 16384. */
export function keySlot(tag: string): number {
  let crc = 0;
  for (let i = 0; i < tag.length; i++) {
    crc ^= tag.charCodeAt(i) << 8;
    for (let k = 0; k < 8; k++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc & 16383;
}

/**
 * A client for `url`: redis://[user:password@]host:port[/db] and rediss:// (TLS) for one server,
 * redis-cluster://[user:password@]host:port,host:port,… for a Cluster (seed nodes; the others are
 * discovered). No offline queue, a timeout on every command, reconnection with backoff (100 ms
 * growing to 2 s).
 */
export function connectRedis(url: string, timeoutMs: number): Redis | Cluster {
  const backoff = (times: number) => Math.min(100 * times, 2000);
  const common: RedisOptions = {
    commandTimeout: timeoutMs,
    connectTimeout: Math.max(timeoutMs, 1000),
    enableAutoPipelining: true,
    maxRetriesPerRequest: 0,
  };
  const cluster = /^redis-cluster:\/\/(?:([^@/]*)@)?([^/]+)\/?$/.exec(url);
  if (cluster !== null) {
    const auth = cluster[1] === undefined ? {} : credentials(cluster[1]);
    const seeds = cluster[2].split(',').map((hp) => {
      const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(hp.trim());
      if (m === null) throw new Error(`redis: "${hp}" is not host:port in ${url}`);
      return { host: m[1], port: Number(m[2]) };
    });
    const client = new Cluster(seeds, {
      enableOfflineQueue: false,
      enableAutoPipelining: true,
      clusterRetryStrategy: backoff,
      retryDelayOnFailover: 200,
      retryDelayOnClusterDown: 200,
      retryDelayOnTryAgain: 200,
      maxRedirections: 16,
      slotsRefreshTimeout: Math.max(timeoutMs, 1000),
      // Refreshed every second by refreshSlots() instead: see there.
      slotsRefreshInterval: 0,
      redisOptions: { ...common, ...auth },
    });
    return refreshSlots(client);
  }
  if (!/^rediss?:\/\//.test(url)) throw new Error(`redis: unsupported URL ${url}`);
  return new Redis(url, { ...common, enableOfflineQueue: false, retryStrategy: backoff });
}

/** A Cluster's slots are refreshed this often (a failed-over master is noticed even when no call is redirected). */
export const SLOTS_REFRESH_MS = 1000;

/**
 * Refreshes `client`'s slots every SLOTS_REFRESH_MS while it is ready, until it ends. Not
 * ioredis's own `slotsRefreshInterval`: a refresh still in flight when the client is closed
 * (`quit()`, `disconnect()`) schedules the next round anyway, and so on forever (ioredis 5.11),
 * which kept a stopped Herald's process alive (rtc-swarms.test.ts "leaves no timer").
 */
function refreshSlots(client: Cluster): Cluster {
  const timer = setInterval(() => {
    if (client.status === 'ready') client.refreshSlotsCache();
    else if (client.status === 'end') clearInterval(timer);
  }, SLOTS_REFRESH_MS);
  timer.unref();
  client.once('end', () => clearInterval(timer));
  return client;
}

/** Another connection with `client`'s options (a subscriber's), its slots refreshed as `client`'s are. */
export function duplicateRedis(client: Redis | Cluster): Redis | Cluster {
  return client instanceof Cluster ? refreshSlots(client.duplicate()) : client.duplicate();
}

function credentials(text: string): { username?: string; password?: string } {
  const i = text.indexOf(':');
  const user = decodeURIComponent(i < 0 ? text : text.slice(0, i));
  const password = i < 0 ? undefined : decodeURIComponent(text.slice(i + 1));
  return { ...(user ? { username: user } : {}), ...(password !== undefined ? { password } : {}) };
}
