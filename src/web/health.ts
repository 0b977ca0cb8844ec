/**
 * Health for orchestrators and load balancers (README "Monitor").
 *
 * - live (`/health/live`): the process answers HTTP. 200 as long as the event loop turns; a
 *   supervisor that gets no answer restarts the process.
 * - ready (`/health`, `/health/ready`): this instance should get traffic. Every registered check
 *   passes: the database answers a query, every configured listener is bound, no worker is down,
 *   and (once one is configured) the shared swarm store is connected. 503 otherwise, with the
 *   failing checks named, so that a load balancer takes the instance out of rotation. A check
 *   may instead say the instance is degraded but should keep its traffic (`{ degraded: text }`):
 *   200 with status "degraded" and the text. The shared store does when part of its calls fail
 *   (a Redis Cluster master failing over): every instance on that store has the same fault, so a
 *   503 would take all of them out at once, while each still answers most swarms.
 *
 * A check returns `true` when all is well, a short static text saying what is wrong, or
 * `{ degraded: text }`; it may be
 * asynchronous, and is given `CHECK_TIMEOUT_MS` before it counts as failed ("timed out"); one that
 * throws is 'failed' (the error is logged, never shown: it may name hosts or users). Answers
 * are shared: requests that arrive while a round of checks runs, or within `CACHE_MS` of it, get
 * its result, so a flood of `/health` requests costs the database one query a second at most.
 */
export type HealthCheck = () => HealthResult | Promise<HealthResult>;

/** `true`, what is wrong (not ready), or what is degraded while the instance stays ready. */
export type HealthResult = true | string | { degraded: string };

export interface Readiness {
  ready: boolean;
  /**
   * 'ok'; 'degraded' when only workers are down (not ready: 503) or when checks say degraded and
   * none failed (ready: 200); else 'unavailable'.
   */
  status: 'ok' | 'degraded' | 'unavailable';
  /** Every check by name: 'ok' or what is wrong. */
  checks: Record<string, string>;
}

export const CHECK_TIMEOUT_MS = 2000;
const CACHE_MS = 1000;

export class Health {
  #checks = new Map<string, HealthCheck>();
  #last: { at: number; result: Promise<Readiness> } | null = null;
  #onError: (name: string, err: unknown) => void;

  /** `onError` logs a check that threw (its message is not shown on a public endpoint). */
  constructor(onError: (name: string, err: unknown) => void = () => {}) {
    this.#onError = onError;
  }

  /**
   * Adds (or replaces) a readiness check. The composition root adds `database`, `listeners` and
   * `workers`; a shared swarm store adds `store` (its connection state) where it is built.
   */
  add(name: string, check: HealthCheck): void {
    this.#checks.set(name, check);
    this.#last = null;
  }

  /** Runs every check (or reuses a result less than a second old). */
  ready(now = Date.now()): Promise<Readiness> {
    if (this.#last !== null && now - this.#last.at < CACHE_MS) return this.#last.result;
    const result = this.#run();
    this.#last = { at: now, result };
    return result;
  }

  async #run(): Promise<Readiness> {
    const names = [...this.#checks.keys()];
    const outcomes = await Promise.all(
      names.map((name) => runCheck(this.#checks.get(name)!, (err) => this.#onError(name, err))),
    );
    const checks: Record<string, string> = {};
    const failed: string[] = [];
    let degraded = false;
    names.forEach((name, i) => {
      const o = outcomes[i];
      checks[name] = typeof o === 'string' ? o : o.degraded;
      if (typeof o !== 'string') degraded = true;
      else if (o !== 'ok') failed.push(name);
    });
    const status =
      failed.length === 0
        ? degraded
          ? 'degraded'
          : 'ok'
        : failed.length === 1 && failed[0] === 'workers'
          ? 'degraded'
          : 'unavailable';
    return { ready: failed.length === 0, status, checks };
  }
}

async function runCheck(
  check: HealthCheck,
  onError: (err: unknown) => void,
): Promise<string | { degraded: string }> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve('timed out'), CHECK_TIMEOUT_MS);
  });
  try {
    const r = await Promise.race([Promise.resolve().then(check), timeout]);
    return r === true ? 'ok' : r;
  } catch (err) {
    // The error may name hosts or users: logged, and the endpoint says only 'failed'.
    onError(err);
    return 'failed';
  } finally {
    clearTimeout(timer);
  }
}
