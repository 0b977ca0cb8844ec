import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { PRIVATE_SERVE, type RunningTracker, startTracker } from '../e2e/tracker-process.ts';
import type { Engine } from './db.ts';
import { deleteKeys, testPrefix } from './redis.ts';

/** The JSON a herald admin command printed (it must have succeeded). */
export function adminJson<T>(r: { status: number; stdout: string; stderr: string }): T {
  assert.equal(r.status, 0, `herald failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

/** Two private-mode instances on one Redis and one PostgreSQL database (`privateInstances`). */
export interface PrivatePair {
  one: RunningTracker;
  two: RunningTracker;
  db: { url: string; drop(): Promise<void> };
  /** A directory of the suite's own (removed after). */
  scratch: string;
}

/**
 * Two `herald serve` processes in private mode on one Redis (`url`, under a key prefix of their
 * own) and one fresh database of `postgres`, started before the tests of the enclosing `describe`
 * (one after the other: the first creates the schema) and stopped after them, their keys and
 * database removed. `args` go to both; `first` to the first only; `second` and `secondReady` to
 * the second only.
 */
export function privateInstances(
  postgres: Engine,
  url: string,
  opts: { args?: string[]; first?: string[]; second?: string[]; secondReady?: string } = {},
): PrivatePair {
  const prefix = testPrefix();
  const pair = { scratch: mkdtempSync(join(tmpdir(), 'herald-pair-')) } as PrivatePair;
  before(async () => {
    pair.db = await postgres.create();
    const serve = [
      ...PRIVATE_SERVE,
      '--store',
      url,
      '--redis-prefix',
      prefix,
      '--database-url',
      pair.db.url,
      ...(opts.args ?? []),
    ];
    pair.one = await startTracker([...serve, ...(opts.first ?? [])]);
    pair.two = await startTracker([...serve, ...(opts.second ?? [])], { ready: opts.secondReady });
  });
  after(async () => {
    await Promise.all([pair.one?.stop(), pair.two?.stop()]);
    await deleteKeys(url, prefix);
    await pair.db?.drop();
    rmSync(pair.scratch, { recursive: true, force: true });
  });
  return pair;
}
