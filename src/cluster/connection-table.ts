import type { HostConnections } from '../core/connection-limit.ts';
import type { Logger } from '../core/log.ts';
import { loadHttpBatchAddon } from '../frontend/http/batch.ts';

/**
 * Addresses the host's connection table holds at once (a power of two; at 7/8 full, new
 * addresses fall back to each worker's own count). 2^16 slots of 16 + 2 bytes per worker,
 * rounded to 8: 1.5 MiB with 2 workers, in memory only as far as it is touched.
 */
export const CONNECTION_TABLE_SLOTS = 1 << 16;

/**
 * Primary (`herald serve --workers N` with `max_connections_per_ip`): the table of open
 * connections per address that every worker maps (native/src/conn_table.h), as a memfd
 * descriptor to hand each worker; null when the HTTP addon is not built (each worker then counts
 * its own connections, as before).
 */
export function createConnectionTable(workers: number, logger: Logger): number | null {
  const addon = loadHttpBatchAddon();
  if (addon?.connTableCreate === undefined) {
    logger.warn('max_connections_per_ip is counted per worker: the http_batch addon is not built');
    return null;
  }
  try {
    return addon.connTableCreate(workers, CONNECTION_TABLE_SLOTS);
  } catch (err) {
    logger.warn('max_connections_per_ip is counted per worker: no shared table', { err: String(err) });
    return null;
  }
}

/**
 * Worker `index`: the host's table, from the descriptor the primary handed it (see above); null
 * (logged) when this process cannot open it (an addon that does not load here, a failed mmap): the
 * worker then counts its own connections, as without a table, rather than failing at every
 * restart.
 */
export function openHostConnections(fd: number, index: number, logger: Logger): HostConnections | null {
  const addon = loadHttpBatchAddon();
  let table: object;
  try {
    if (addon?.connTableOpen === undefined) throw new Error('the http_batch addon is not loaded');
    table = addon.connTableOpen(fd, index);
  } catch (err) {
    logger.warn('max_connections_per_ip is counted per worker: the host table cannot be opened', {
      err: String(err),
    });
    return null;
  }
  const acquire = addon.connAcquire!;
  const release = addon.connRelease!;
  return {
    acquire: (family, hi, lo, max) => acquire(table, family, hi, lo, max),
    release: (family, hi, lo) => release(table, family, hi, lo),
  };
}
