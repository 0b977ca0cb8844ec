import { type ChildProcess, fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HeraldConfig } from '../config/schema.ts';
import { parseHostPort } from '../core/address.ts';
import { ListenError } from '../core/listen.ts';
import type { Logger } from '../core/log.ts';
import { loadUdpBatchAddon } from '../frontend/udp/batch.ts';
import { createSharedSwarms, sharedSwarmsWanted } from '../store/shared/shared-memory-store.ts';
import { PrimaryAccounting } from './accounting-link.ts';
import { createConnectionTable } from './connection-table.ts';

/**
 * What the primary tells a worker process (environment variable HERALD_WORKER, JSON): which
 * worker it is, and what every worker must share.
 */
export interface WorkerSetup {
  clusterId: string;
  index: number;
  count: number;
  /** One UDP connection-id key for all workers: an id issued by one is valid on every other. */
  udpSecret: string;
  /** The secret every connection between workers starts with (hex; see ClusterBus). */
  busToken: string;
  /** The directory of the workers' bus sockets, mode 0700 (null: abstract sockets; see ClusterBus). */
  busDir: string | null;
  /**
   * The listen addresses every worker binds (SO_REUSEPORT). Worker 0 binds the configured ones
   * first; a port 0 there becomes the port it got, so all workers share it.
   */
  listen: Pick<HeraldConfig, 'http' | 'https' | 'udp' | 'ws' | 'portalListen'>;
  /**
   * Per UDP listener (same order as `listen.udp`): the descriptor this worker inherited from the
   * primary's steering group, or null (no addon: the worker binds its own socket).
   */
  udpFds: (number | null)[];
  /**
   * The descriptor of the host's table of connections per address (max_connections_per_ip over
   * every worker, src/cluster/connection-table.ts), inherited after the UDP sockets; null: none.
   */
  connTableFd?: number | null;
  /**
   * The descriptor of the swarms every worker maps (worker_swarms = shared, src/store/shared/),
   * inherited after the connection table's; null: swarms sharded by info hash.
   */
  sharedSwarmsFd?: number | null;
}

/** Messages from a worker to the primary (Node's IPC channel). */
export type WorkerMessage = { type: 'ready'; listen: WorkerSetup['listen'] };
/** Messages from the primary to a worker: which workers are down (for /health). */
export type PrimaryMessage = { type: 'health'; down: number[] };

export const WORKER_ENV = 'HERALD_WORKER';

/**
 * A new directory, mode 0700, for the workers' bus sockets (see ClusterBus), or null when the
 * temporary directory's path is too long for a socket address (then abstract sockets, guarded by
 * the secret alone) or cannot be made.
 */
function busDirectory(logger: Logger): string | null {
  try {
    const dir = mkdtempSync(join(tmpdir(), 'herald-bus-'));
    // sun_path holds 107 bytes: room for "/<index>.sock".
    if (Buffer.byteLength(dir) <= 90) return dir;
    rmSync(dir, { recursive: true, force: true });
  } catch (err) {
    logger.warn("cluster: no private directory for the workers' sockets", { err: String(err) });
  }
  return null;
}

/** The configured `workers`, resolved (`auto` = the CPUs this process may use). */
export function workerCount(config: Pick<HeraldConfig, 'workers'>): number {
  return config.workers === 'auto' ? Math.max(1, availableParallelism()) : config.workers;
}

/** The setup this process was started with, when it is a worker; null otherwise. */
export function workerSetup(env: NodeJS.ProcessEnv): WorkerSetup | null {
  const raw = env[WORKER_ENV];
  if (raw === undefined || raw === '') return null;
  return JSON.parse(raw) as WorkerSetup;
}

/**
 * `herald serve --workers N` (N > 1): this process is the primary. It serves nothing itself; it
 * starts N worker processes (this same program with the same arguments, told which worker each
 * is), waits for worker 0 to bind (and migrate the database) before starting the others,
 * restarts a worker that dies, tells the others which are down (their `/health` says
 * "degraded" meanwhile), forwards SIGHUP (TLS reload) and stops them all gracefully on SIGTERM
 * or SIGINT. Resolves with the exit code when every worker has stopped.
 *
 * Processes rather than threads: each worker has its own heap, its own event loop and its own
 * open-file limit (WebSocket connections), and a crash takes down one worker, not the tracker.
 * Hand-over between processes over Unix sockets costs what SharedArrayBuffer rings between
 * threads cost once requests are batched (`bench/handover.ts`, docs/design-notes.md).
 */
export async function runPrimary(opts: {
  config: HeraldConfig;
  argv: string[];
  logger: Logger;
  /** The script to run for each worker (bin/herald.js). */
  script: string;
  execArgv?: string[];
}): Promise<number> {
  const { config, logger } = opts;
  const count = workerCount(config);
  const clusterId = `${process.pid}-${randomBytes(4).toString('hex')}`;
  const base = {
    clusterId,
    count,
    udpSecret: config.udpSecret ?? randomBytes(32).toString('hex'),
    busToken: randomBytes(32).toString('hex'),
    busDir: busDirectory(logger),
  };
  let listen: WorkerSetup['listen'] = {
    http: config.http,
    https: config.https,
    udp: config.udp,
    ws: config.ws,
    portalListen: config.portalListen,
  };
  // UDP steering (docs/design-notes.md "Workers"): the primary opens each UDP listener as a
  // SO_REUSEPORT group of `count` sockets whose BPF program delivers an announce or scrape to
  // socket shardOf(infoHash, count), and hands socket i to worker i, so UDP announces reach the
  // worker that owns their swarm with no hand-over. The primary keeps the sockets open (a
  // restarted worker gets the same one back; datagrams wait in it meanwhile).
  const groups: number[][] = [];
  const addon = config.udpIo === 'dgram' ? null : loadUdpBatchAddon();
  if (addon !== null && typeof addon.openGroup === 'function') {
    for (const text of config.udp) {
      const hp = parseHostPort(text);
      if (hp === null) throw new Error(`config: udp: invalid HOST:PORT "${text}"`);
      try {
        groups.push(addon.openGroup(hp.host.includes(':') ? 6 : 4, hp.host, hp.port, count));
      } catch (err) {
        logger.error(new ListenError('udp', 'udp', hp.host, hp.port, err).message);
        return 1;
      }
    }
  }
  // max_connections_per_ip for the whole host: one table every worker maps (the primary keeps
  // the descriptor, so a restarted worker gets the same table back).
  const connTable = config.maxConnectionsPerIp > 0 ? createConnectionTable(count, logger) : null;
  // Swarms in memory every worker maps (worker_swarms = shared; open and whitelist modes): made
  // here and kept, so a restarted worker finds every swarm as it was (src/store/shared/).
  let swarmsFd: number | null = null;
  if (sharedSwarmsWanted(config, count))
    try {
      swarmsFd = createSharedSwarms({ maxPeers: config.maxPeers, maxTorrents: config.maxTorrents });
    } catch (err) {
      logger.error('worker_swarms = shared: the shared swarm store cannot be made', { err: String(err) });
      return 1;
    }
  const children: (ChildProcess | null)[] = new Array(count).fill(null);
  const down = new Set<number>();
  let stopping = false;
  // A worker that did not stop cleanly (a non-zero exit while stopping): the primary exits 1.
  let unclean = false;
  let resolveDone: (code: number) => void = () => {};
  const done = new Promise<number>((r) => {
    resolveDone = r;
  });
  // Runs before whoever awaits `done` (registered first).
  void done.then(() => {
    if (base.busDir !== null) rmSync(base.busDir, { recursive: true, force: true });
    if (connTable !== null) closeSync(connTable);
    if (swarmsFd !== null) closeSync(swarmsFd);
  });

  // Private mode: this process writes the accounting of every worker (src/cluster/accounting-link.ts),
  // opened once worker 0 has migrated the database.
  let accounting: PrimaryAccounting | null = null;
  // Every worker has stopped (and handed over its last accounting batch): the last write, then done.
  const finish = async () => {
    try {
      await accounting?.stop();
    } catch (err) {
      logger.error('accounting: the last write failed', { err: String(err) });
      resolveDone(1);
      return;
    }
    resolveDone(unclean ? 1 : 0);
  };

  const broadcast = () => {
    const msg: PrimaryMessage = { type: 'health', down: [...down].sort() };
    for (const c of children) if (c?.connected) c.send(msg);
  };

  const spawnWorker = (index: number): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      // The worker's UDP sockets arrive as descriptors 4, 5, ... (after stdio and the IPC channel).
      // Then the connection table's.
      const fds = groups.map((g) => g[index]);
      const setup: WorkerSetup = {
        ...base,
        index,
        listen,
        udpFds: groups.length ? fds.map((_, i) => 4 + i) : [],
        connTableFd: connTable === null ? null : 4 + fds.length,
        sharedSwarmsFd: swarmsFd === null ? null : 4 + fds.length + (connTable === null ? 0 : 1),
      };
      const child = fork(opts.script, opts.argv, {
        env: { ...process.env, [WORKER_ENV]: JSON.stringify(setup) },
        execArgv: opts.execArgv ?? process.execArgv,
        stdio: [
          'ignore',
          'inherit',
          'inherit',
          'ipc',
          ...fds,
          ...(connTable === null ? [] : [connTable]),
          ...(swarmsFd === null ? [] : [swarmsFd]),
        ],
      });
      children[index] = child;
      // A message to a worker that has just died (its exit not yet seen: a health broadcast, an
      // accounting collection) fails with EPIPE, emitted here; unheard, it would end the primary
      // and so every worker. The exit that follows is handled below.
      child.on('error', (err) => logger.warn('worker channel error', { worker: index, err: String(err) }));
      accounting?.attach(child);
      let ready = false;
      child.on('message', (m: WorkerMessage) => {
        if (m?.type !== 'ready' || ready) return;
        ready = true;
        if (index === 0) listen = m.listen;
        down.delete(index);
        logger.info('worker ready', { worker: index, pid: child.pid });
        broadcast();
        resolve();
      });
      child.on('exit', (code, signal) => {
        children[index] = null;
        if (!ready)
          reject(new Error(`worker ${index} exited before it was ready (code ${code}, signal ${signal})`));
        if (stopping) {
          // A worker stopped before it was ready has nothing to hand over: the signal is its stop.
          if (ready && code !== 0) unclean = true;
          logger.info('worker stopped', { worker: index, code, signal });
          if (children.every((c) => c === null)) void finish();
          return;
        }
        // A worker died: the others answer for its swarms with a retryable failure until it is
        // back; its swarms are rebuilt from the peers' next announces.
        logger.error('worker died: restarting it', { worker: index, code, signal });
        down.add(index);
        broadcast();
        // Not unref'd: when every worker died at once (the OOM killer, a kill of the process
        // group's children), this timer is all that keeps the primary alive to restart them.
        setTimeout(() => {
          if (stopping) return;
          spawnWorker(index).catch((err) =>
            logger.error('worker restart failed', { worker: index, err: String(err) }),
          );
        }, 500);
      });
    });

  const stopAll = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    logger.info('stopping workers', { signal });
    const live = children.filter((c): c is ChildProcess => c !== null);
    if (live.length === 0) void finish();
    for (const c of live) c.kill('SIGTERM');
    // A worker that does not stop in time is killed; the primary does not hang.
    setTimeout(() => {
      for (const c of children) c?.kill('SIGKILL');
      resolveDone(1);
    }, 15_000).unref();
  };
  process.on('SIGINT', () => stopAll('SIGINT'));
  process.on('SIGTERM', () => stopAll('SIGTERM'));
  process.on('SIGHUP', () => {
    for (const c of children) c?.kill('SIGHUP');
  });

  try {
    // Worker 0 first: it migrates the database and fixes the ports (port 0) the others share.
    await spawnWorker(0);
    if (config.mode === 'private') {
      const opened = await PrimaryAccounting.open(config, logger);
      const first = children[0];
      if (first === null && stopping) {
        // Stopped while it opened, and worker 0 is gone already: nothing is left to hand over.
        await opened.stop();
        return done;
      }
      accounting = opened;
      // Worker 0 started before the writer existed: it listens to it from now on (and takes its
      // last batch when a stop came meanwhile; the last worker's exit writes it).
      if (first !== null) accounting.attach(first);
      if (stopping) return done;
      accounting.start(() => children.filter((c): c is ChildProcess => c !== null));
    }
    if (stopping) return done;
    await Promise.all(Array.from({ length: count - 1 }, (_, i) => spawnWorker(i + 1)));
  } catch (err) {
    // A stop asked for during start-up (a worker stopped by it before it was ready) is no failed start.
    if (stopping) return done;
    logger.error('could not start the workers', { err: String(err) });
    stopAll('SIGTERM');
    await done;
    return 1;
  }
  logger.info('herald workers running', { workers: count, listen, udpSteering: groups.length > 0 });
  return done;
}
