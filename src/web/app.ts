import type { IncomingMessage, ServerResponse } from 'node:http';
import { isShardUnavailable } from '../core/errors.ts';
import { renderPrometheus, type StatsReporter } from '../tracker/stats.ts';
import type { Health } from './health.ts';

/** Paths this handler answers itself, even when the portal takes every other path. */
const OWN_PATHS = new Set(['/health', '/health/live', '/health/ready', '/stats', '/metrics']);

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
  /** Readiness checks for `/health` (src/web/health.ts). */
  health: Health;
}): WebHandler {
  const api = deps.api ?? null;
  const portal = deps.portal ?? null;
  const send = (res: ServerResponse, status: number, type: string, body: string) => {
    res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };
  /**
   * /stats or /metrics could not be gathered. With workers, one that is down (restarting) cannot
   * give its figures: that is a known state, not an internal error, and the tracker's figures
   * without it would look like half the swarms vanished; so 503 "degraded" until it is back (a
   * Prometheus scrape fails, a gap rather than a false dip).
   */
  const figuresFailed = (res: ServerResponse, err: unknown) => {
    if (isShardUnavailable(err)) {
      send(
        res,
        503,
        'application/json',
        '{"status":"degraded","error":"a worker is down: try again shortly"}\n',
      );
      return;
    }
    deps.onError(err);
    send(res, 500, 'text/plain; charset=utf-8', 'internal error\n');
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
      (prefix === '' ? !OWN_PATHS.has(path) : path === prefix || path.startsWith(`${prefix}/`))
    ) {
      portal(req, res);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
      return;
    }
    switch (path) {
      case '/health/live':
        send(res, 200, 'application/json', '{"status":"live"}\n');
        return;
      case '/health':
      case '/health/ready':
        // Load balancers read the status code: 200 ready, 503 take this instance out of rotation.
        deps.health.ready().then(
          (r) =>
            send(
              res,
              r.ready ? 200 : 503,
              'application/json',
              `${JSON.stringify({ status: r.status, checks: r.checks })}\n`,
            ),
          (err) => {
            deps.onError(err);
            send(res, 503, 'application/json', '{"status":"unavailable"}\n');
          },
        );
        return;
      case '/stats':
        deps.stats.snapshot().then(
          (s) => send(res, 200, 'application/json', `${JSON.stringify(s, null, 2)}\n`),
          (err) => figuresFailed(res, err),
        );
        return;
      case '/metrics':
        deps.stats.snapshots().then(
          (s) => send(res, 200, 'text/plain; version=0.0.4; charset=utf-8', renderPrometheus(s.sum, s.each)),
          (err) => figuresFailed(res, err),
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
