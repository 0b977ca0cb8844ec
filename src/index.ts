/**
 * Herald as a library: embed a tracker in another Node program.
 *
 * @example
 * import { createTracker } from 'herald-tracker';
 * const tracker = createTracker({ http: ['0.0.0.0:6969'], udp: ['0.0.0.0:6969'] });
 * await tracker.start();
 */
export { createTracker, type Tracker, type TrackerAddresses } from './cli/compose.ts';
export type { HeraldConfig } from './config/schema.ts';
export type { SwarmStore } from './swarm/types.ts';
export type { Health, HealthCheck, HealthResult, Readiness } from './web/health.ts';
