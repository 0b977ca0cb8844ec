import { type FullScrapeGate, FullScrapeLimiter } from '../tracker/full-scrape.ts';
import type { ClusterBus } from './bus.ts';
import { MessageType, textOf, writeText } from './messages.ts';

/** Which frontend's limit a permit is for: HTTP's and WebSocket's full scrapes are counted apart. */
type Scope = 'h' | 'w';

/**
 * The full scrape's rate limit (`full_scrape_interval`) for the whole tracker with workers: worker
 * 0 keeps every address's last full scrape, and the other workers ask it before they answer one
 * (one bus round trip per full scrape, which costs a walk over every worker's swarms anyway).
 * Counted in each worker, one address with a connection on each of N workers got N full scrapes
 * an interval. When worker 0 cannot be asked (restarting), the permit's promise rejects and the
 * frontend answers the retryable "tracker busy", as a full scrape with a worker down gets.
 */
export class SharedFullScrapeGates {
  readonly http: FullScrapeGate;
  readonly ws: FullScrapeGate;

  constructor(bus: ClusterBus, intervalSeconds: number) {
    if (bus.index === 0) {
      const limits: Record<Scope, FullScrapeLimiter> = {
        h: new FullScrapeLimiter(intervalSeconds),
        w: new FullScrapeLimiter(intervalSeconds),
      };
      this.http = limits.h;
      this.ws = limits.w;
      bus.route([MessageType.fullScrapePermit], (_type, id, body, at, reply, done) => {
        const text = textOf(body, at);
        const limit = limits[text[0] as Scope];
        const [address, now] = text.slice(1).split(' ');
        const ok = limit?.allow(address, Number(now)) === true;
        writeText(reply, MessageType.fullScrapePermitOk, id, ok ? '1' : '0');
        done();
      });
    } else {
      this.http = remoteGate(bus, 'h');
      this.ws = remoteGate(bus, 'w');
    }
  }
}

function remoteGate(bus: ClusterBus, scope: Scope): FullScrapeGate {
  return {
    allow: (address, now) =>
      bus.request(
        0,
        (w, id) => writeText(w, MessageType.fullScrapePermit, id, `${scope}${address} ${now}`),
        (body, at, type) => {
          if (type !== MessageType.fullScrapePermitOk) throw new Error(`cluster: unexpected reply ${type}`);
          return textOf(body, at) === '1';
        },
      ),
  };
}
