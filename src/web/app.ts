import type { IncomingMessage, ServerResponse } from 'node:http';
import { renderPrometheus, type StatsReporter } from '../tracker/stats.ts';

export type WebHandler = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * Everything on the HTTP port that is not a tracker request: health, statistics, metrics (and,
 * in later issues, the portal and the API). Tracker requests never reach this code: the HTTP
 * frontend answers them on the raw connection (DESIGN.md).
 */
export function createWebHandler(deps: {
  stats: StatsReporter;
  onError: (err: unknown) => void;
  /** The JSON API (null when no api_token is configured). */
  api?: WebHandler | null;
  /** The community portal: every other path (null when it is off or has its own listeners). */
  portal?: WebHandler | null;
  /** The portal's path prefix ('' = every path the tracker does not use). */
  portalPath?: string;
  /** With workers: the workers that are down (restarting); `/health` is then 503 "degraded". */
  workersDown?: () => number[];
  /** A shared swarm store (Redis): null when usable, else what is wrong; `/health` is then 503 "degraded". */
  storeHealth?: () => string | null;
}): WebHandler {
  const api = deps.api ?? null;
  const portal = deps.portal ?? null;
  const send = (res: ServerResponse, status: number, type: string, body: string) => {
    res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };
  return function webHandler(req, res) {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q >= 0 ? url.slice(0, q) : url;
    if (path === '/api' || path.startsWith('/api/')) {
      if (api === null) send(res, 404, 'application/json', '{"error":"the API is off: set api_token"}\n');
      else api(req, res);
      return;
    }
    const prefix = deps.portalPath ?? '';
    if (
      portal !== null &&
      (prefix === ''
        ? path !== '/health' && path !== '/stats' && path !== '/metrics'
        : path === prefix || path.startsWith(`${prefix}/`))
    ) {
      portal(req, res);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
      return;
    }
    switch (path) {
      case '/health': {
        const down = deps.workersDown?.() ?? [];
        const store = deps.storeHealth?.() ?? null;
        if (down.length > 0 || store !== null)
          send(
            res,
            503,
            'application/json',
            `${JSON.stringify({ status: 'degraded', ...(down.length > 0 ? { workersDown: down } : {}), ...(store !== null ? { store } : {}) })}\n`,
          );
        else send(res, 200, 'application/json', '{"status":"ok"}\n');
        return;
      }
      case '/stats':
        deps.stats.snapshot().then(
          (s) => send(res, 200, 'application/json', `${JSON.stringify(s, null, 2)}\n`),
          (err) => {
            deps.onError(err);
            send(res, 500, 'text/plain; charset=utf-8', 'internal error\n');
          },
        );
        return;
      case '/metrics':
        deps.stats.snapshot().then(
          (s) => send(res, 200, 'text/plain; version=0.0.4; charset=utf-8', renderPrometheus(s)),
          (err) => {
            deps.onError(err);
            send(res, 500, 'text/plain; charset=utf-8', 'internal error\n');
          },
        );
        return;
      case '/':
        send(
          res,
          200,
          'text/plain; charset=utf-8',
          'Herald BitTorrent tracker\nannounce: /announce\nscrape: /scrape\nstats: /stats\nmetrics: /metrics\n',
        );
        return;
      default:
        send(res, 404, 'text/plain; charset=utf-8', 'not found\n');
    }
  };
}
