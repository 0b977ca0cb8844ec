import { Errors } from '../core/errors.ts';
import type { StatsSnapshot } from '../tracker/stats.ts';
import type { ClusterBus } from './bus.ts';
import { type FrameWriter, MessageType, textOf, writeText } from './messages.ts';

/**
 * `/stats` and `/metrics` with workers on a shared store (Redis), where each worker is an instance
 * of its own and the swarm figures are the store's: the worker that answers asks every other one
 * for its own figures over the bus (request counters, connections, process), as the sharded
 * store's `gather` does (through this) for workers on the memory store. Without it, each answer
 * gave the request counters of whichever worker the kernel handed the connection to.
 */
export function gatherStats<T = StatsSnapshot>(bus: ClusterBus): Promise<T[]> {
  const waits: Promise<T>[] = [];
  for (let to = 0; to < bus.count; to++)
    if (to !== bus.index)
      waits.push(
        bus.request(
          to,
          (w, id) => writeText(w, MessageType.stats, id, ''),
          (body, at, type) => {
            if (type !== MessageType.statsOk) throw new Error(`cluster: unexpected reply ${type}`);
            return JSON.parse(textOf(body, at)) as T;
          },
        ),
      );
  // A worker down or restarting: /stats and /metrics answer 503 "degraded" (src/web/app.ts).
  return Promise.all(waits).catch(() => {
    throw Errors.shardUnavailable;
  });
}

/** Answers the other workers' `gatherStats` with this worker's own figures. */
export function answerStats(bus: ClusterBus, local: () => Promise<StatsSnapshot>): void {
  bus.route([MessageType.stats], (_type, id, _body, _at, reply, done) =>
    replyStats(local(), reply, id, done),
  );
}

/** Writes a stats request's answer when the figures are ready (or the failure to get them). */
export function replyStats(
  figures: Promise<unknown>,
  reply: FrameWriter,
  id: number,
  done: () => void,
): void {
  figures.then(
    (s) => {
      writeText(reply, MessageType.statsOk, id, JSON.stringify(s));
      done();
    },
    (err) => {
      writeText(reply, MessageType.failure, id, String(err));
      done();
    },
  );
}
