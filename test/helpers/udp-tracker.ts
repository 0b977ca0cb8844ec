import type { HeraldConfig } from '../../src/config/schema.ts';
import type { ManualClock } from '../../src/core/clock.ts';
import { createTracker, type Tracker } from '../../src/index.ts';

export interface UdpTestTracker {
  tracker: Tracker;
  /** The UDP ports bound on 127.0.0.1 and ::1. */
  port4: number;
  port6: number;
}

/**
 * A started tracker serving UDP only, on 127.0.0.1 and ::1 (ephemeral ports), on the given
 * transport and clock; `extra` overrides the test defaults (in-memory SQLite, silent log).
 */
export async function udpTracker(
  io: 'batched' | 'dgram',
  clock: ManualClock,
  extra: Partial<HeraldConfig> = {},
): Promise<UdpTestTracker> {
  const tracker = createTracker(
    {
      http: [],
      udp: ['127.0.0.1:0', '[::1]:0'],
      interval: 1200,
      minInterval: 60,
      peerTimeout: 1500,
      logLevel: 'silent',
      databaseUrl: 'sqlite::memory:',
      policyRefresh: 3600,
      udpIo: io,
      ...extra,
    },
    { clock },
  );
  await tracker.start();
  const a = tracker.addresses().udp;
  return {
    tracker,
    port4: a.find((x) => x.host === '127.0.0.1')!.port,
    port6: a.find((x) => x.host === '::1')!.port,
  };
}
