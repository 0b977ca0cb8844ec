/**
 * The host's table of connections per address (native/src/conn_table.h) that makes
 * max_connections_per_ip hold over every worker: two "workers" in one process map the same
 * memfd, as worker processes map the descriptor the primary hands them.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type PeerAddress, parseIp } from '../core/address.ts';
import { ConnectionLimit } from '../core/connection-limit.ts';
import { createLogger, type Logger } from '../core/log.ts';
import { TrackerCounters } from '../core/metrics.ts';
import { loadHttpBatchAddon } from '../frontend/http/batch.ts';
import { createConnectionTable, openHostConnections } from './connection-table.ts';

// Before the addon's first load: its test hooks (connReleaseDying, connTableDump) are exported
// only when this is set.
process.env.HERALD_TEST_HOOKS = '1';
const addon = loadHttpBatchAddon();
const skip = addon?.connTableCreate === undefined ? 'the http_batch addon is not built' : false;
const ip = (s: string): PeerAddress => parseIp(s)!;
const logger = createLogger('silent');

test('two workers: an address holds the cap over both; a release on one frees a place for the other', {
  skip,
}, () => {
  const fd = createConnectionTable(2, logger)!;
  try {
    const counters = new TrackerCounters();
    const w0 = new ConnectionLimit(3, counters, null, openHostConnections(fd, 0, logger));
    const w1 = new ConnectionLimit(3, counters, null, openHostConnections(fd, 1, logger));
    const a = ip('192.0.2.1');
    assert.ok(w0.acquire(a));
    assert.ok(w0.acquire(a));
    assert.ok(w1.acquire(a));
    assert.equal(w1.acquire(a), false, 'three over both workers');
    assert.equal(w0.acquire(a), false);
    assert.equal(counters.connectionsRefused, 2);
    assert.ok(w1.acquire(ip('192.0.2.2')), 'another address');
    assert.ok(w1.acquire(ip('2001:db8:1:2::1')));
    assert.ok(w0.acquire(ip('2001:db8:1:2::2')));
    assert.ok(w0.acquire(ip('2001:db8:1:2::3')));
    assert.equal(w1.acquire(ip('2001:db8:1:2:ffff::1')), false, 'one /64 over both workers');
    w0.release(a);
    assert.ok(w1.acquire(a), "worker 0's release frees a place for worker 1");
    assert.equal(w0.acquire(a), false);
    // Releasing what this worker never counted changes nothing over the host.
    w0.release(ip('192.0.2.2'));
    assert.equal(w0.acquire(ip('192.0.2.2')), true);
    assert.equal(w0.acquire(ip('192.0.2.2')), true);
    assert.equal(w0.acquire(ip('192.0.2.2')), false);
  } finally {
    closeSync(fd);
  }
});

test('a restarted worker: what its predecessor held is freed when it opens the table', { skip }, () => {
  const fd = createConnectionTable(2, logger)!;
  try {
    const a = ip('198.51.100.7');
    const w0 = new ConnectionLimit(2, new TrackerCounters(), null, openHostConnections(fd, 0, logger));
    const w1 = new ConnectionLimit(2, new TrackerCounters(), null, openHostConnections(fd, 1, logger));
    assert.ok(w1.acquire(a));
    assert.ok(w1.acquire(a));
    assert.equal(w0.acquire(a), false);
    // Worker 1 dies (its connections with it) and comes back.
    const again = new ConnectionLimit(2, new TrackerCounters(), null, openHostConnections(fd, 1, logger));
    assert.ok(w0.acquire(a), 'the dead worker’s places are free');
    assert.ok(again.acquire(a));
    assert.equal(w0.acquire(a), false);
  } finally {
    closeSync(fd);
  }
});

test('many addresses come and go in any order: counts stay exact; a full table falls back to the worker’s own count', {
  skip,
}, () => {
  const fd = addon!.connTableCreate!(2, 64);
  try {
    const host = [openHostConnections(fd, 0, logger)!, openHostConnections(fd, 1, logger)!];
    const model = new Map<number, number>();
    let seed = 7;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed % n;
    };
    // 40 addresses (the table holds 56), 4 connections each at most, from either worker.
    const held: [number, number][] = [];
    for (let step = 0; step < 5000; step++) {
      if (held.length > 0 && rand(3) === 0) {
        const [addr, w] = held.splice(rand(held.length), 1)[0];
        host[w].release(4, 0, addr);
        model.set(addr, model.get(addr)! - 1);
        continue;
      }
      const addr = 1 + rand(40);
      const w = rand(2);
      const want = (model.get(addr) ?? 0) < 4 ? 1 : 0;
      assert.equal(host[w].acquire(4, 0, addr, 4), want, `step ${step}, address ${addr}`);
      if (want === 1) {
        held.push([addr, w]);
        model.set(addr, (model.get(addr) ?? 0) + 1);
      }
    }
    for (const [addr, w] of held.splice(0)) host[w].release(4, 0, addr);
    // Empty again: 56 new addresses fit, the 57th is not counted (-1).
    for (let a = 100; a < 156; a++) assert.equal(host[0].acquire(4, 0, a, 1), 1, `address ${a}`);
    assert.equal(host[1].acquire(4, 0, 999, 1), -1);
    const limit = new ConnectionLimit(1, new TrackerCounters(), null, host[1]);
    assert.ok(limit.acquire(ip('203.0.113.9')), 'not counted over the host: the worker counts it');
    assert.equal(limit.acquire(ip('203.0.113.9')), false);
    limit.release(ip('203.0.113.9'));
    assert.ok(limit.acquire(ip('203.0.113.9')));
  } finally {
    closeSync(fd);
  }
});

test('a worker that cannot open the host table counts its own connections (logged), rather than failing to start', {
  skip,
}, () => {
  const warnings: string[] = [];
  const quiet = () => {};
  const log: Logger = {
    trace: quiet,
    debug: quiet,
    info: quiet,
    warn: (msg) => warnings.push(msg),
    error: quiet,
    child: () => log,
  };
  // A descriptor that is no table (a worker that could not map it fails the same way).
  const fd = openSync('/dev/null', 'r');
  try {
    assert.equal(openHostConnections(fd, 0, log), null);
    assert.deepEqual(warnings, [
      'max_connections_per_ip is counted per worker: the host table cannot be opened',
    ]);
    const limit = new ConnectionLimit(1, new TrackerCounters(), null, null);
    assert.ok(limit.acquire(ip('192.0.2.50')));
    assert.equal(limit.acquire(ip('192.0.2.50')), false);
  } finally {
    closeSync(fd);
  }
});

/** One table entry as connTableDump gives it. */
interface Entry {
  slot: number;
  home: number;
  family: number;
  key: number;
  total: number;
  counts: number[];
}

function dump(table: object, workers: number): { used: number; entries: Entry[] } {
  const raw = addon!.connTableDump!(table);
  const entries: Entry[] = [];
  for (let k = 1; k < raw.length; k += 6 + workers) {
    const [slot, home, family, hi, lo, total] = raw.slice(k, k + 6);
    entries.push({
      slot,
      home,
      family,
      key: hi * 2 ** 32 + lo,
      total,
      counts: raw.slice(k + 6, k + 6 + workers),
    });
  }
  return { used: raw[0], entries };
}

/** What a lookup needs: each address once, reachable from its home slot without an empty slot. */
function assertConsistent(table: { used: number; entries: Entry[] }, slots: number, what: string): void {
  const at = new Map(table.entries.map((e) => [e.slot, e]));
  const seen = new Set<string>();
  for (const e of table.entries) {
    const id = `${e.family}/${e.key}`;
    assert.ok(!seen.has(id), `${what}: address ${id} is in the table twice`);
    seen.add(id);
    for (let s = e.home; s !== e.slot; s = (s + 1) % slots) {
      assert.ok(
        at.has(s),
        `${what}: address ${id} (home ${e.home}, slot ${e.slot}) is cut off by an empty slot ${s}`,
      );
    }
    const sum = e.counts.reduce((a, b) => a + b, 0);
    assert.equal(e.total, sum, `${what}: address ${id}'s total is its workers' counts`);
    assert.ok(sum > 0, `${what}: address ${id} holds no connection but is still in the table`);
  }
  assert.equal(table.used, table.entries.length, `${what}: entries in use`);
}

/** Backward-shift deletion of the entry at `slot`, simulated: how many entries it moves. */
function movesOfDelete(entries: Entry[], slot: number, slots: number): number {
  const homes = new Map(entries.map((e) => [e.slot, e.home]));
  let i = slot;
  let moves = 0;
  for (let j = (i + 1) % slots; homes.has(j); j = (j + 1) % slots) {
    const home = homes.get(j)!;
    const stays = i <= j ? i < home && home <= j : i < home || home <= j;
    if (stays) continue;
    homes.set(i, home);
    homes.delete(j);
    i = j;
    moves++;
  }
  return moves;
}

const addonFile = fileURLToPath(new URL('../../native/build/Release/http_batch.node', import.meta.url));

/**
 * Worker 1 in a child process: maps the table (descriptor 3), counts a connection of each address
 * in argv, says "ready", then reads "<address> <dieAfter>" and releases that address with
 * connReleaseDying, printing the points passed if it is still alive.
 */
const workerOne = `
  const addon = require(${JSON.stringify(addonFile)});
  const table = addon.connTableOpen(3, 1);
  for (const a of process.argv.slice(1).map(Number)) if (addon.connAcquire(table, 4, 0, a, 10) !== 1) process.exit(2);
  process.stdout.write('ready\\n');
  process.stdin.once('data', (line) => {
    const [a, dieAfter] = String(line).trim().split(' ').map(Number);
    process.stdout.write(addon.connReleaseDying(table, 4, 0, a, dieAfter) + '\\n');
    process.exit(0);
  });`;

test('a worker killed inside a backward-shift delete: the next locker repairs the table (no address twice, no broken probe chain, exact counts)', {
  skip: skip || (process.platform !== 'linux' && 'robust mutexes over a memfd: Linux'),
}, async (t) => {
  const slots = 64;
  // Worker 0 (this process) holds 1..12, worker 1 (the child) 1..6 and 13..48: 48 addresses in
  // 64 slots, long probe chains. The child releases one of its own addresses (13..48) whose
  // delete moves the most entries, and dies at a chosen point inside it.
  const mine = Array.from({ length: 12 }, (_, k) => 1 + k);
  const theirs = [...mine.slice(0, 6), ...Array.from({ length: 36 }, (_, k) => 13 + k)];
  let covered = 0;
  for (let run = 0; run < 12; run++) {
    const tableFd = addon!.connTableCreate!(2, slots);
    try {
      const w0 = addon!.connTableOpen!(tableFd, 0);
      for (const a of mine) assert.equal(addon!.connAcquire!(w0, 4, 0, a, 10), 1);
      const child = spawn(process.execPath, ['-e', workerOne, ...theirs.map(String)], {
        stdio: ['pipe', 'pipe', 'inherit', tableFd],
        env: { ...process.env, HERALD_TEST_HOOKS: '1' },
      });
      const exited = new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
        child.once('exit', (code, signal) => resolve([code, signal])),
      );
      let out = '';
      child.stdout!.on('data', (b: Buffer) => {
        out += b.toString();
      });
      while (!out.includes('ready\n')) {
        await new Promise((resolve) => setTimeout(resolve, 5));
        assert.equal(child.exitCode, null, 'worker 1 counted its addresses');
      }
      const before = dump(w0, 2);
      assertConsistent(before, slots, 'before');
      const candidates = before.entries.filter((e) => e.key >= 13);
      const target = candidates.reduce((best, e) =>
        movesOfDelete(before.entries, e.slot, slots) > movesOfDelete(before.entries, best.slot, slots)
          ? e
          : best,
      );
      const moves = movesOfDelete(before.entries, target.slot, slots);
      // Three points per move (a hole, a written but untagged copy, the entry twice), one at the
      // end; the last run lets the delete finish and checks that count.
      const points = 3 * moves + 1;
      const dieAfter = run === 11 ? -1 : run % points;
      child.stdin!.write(`${target.key} ${dieAfter}\n`);
      const [code, signal] = await exited;
      if (dieAfter < 0) {
        assert.equal(code, 0);
        assert.equal(Number(out.split('\n')[1]), points, 'the points a whole delete passes');
      } else {
        assert.equal(signal, 'SIGKILL', 'worker 1 died holding the lock');
        covered = Math.max(covered, dieAfter);
      }
      // The next locker (worker 0) finds the lock's owner dead and repairs the table.
      assert.equal(addon!.connCount!(w0, 4, 0, 1), 2);
      const after = dump(w0, 2);
      assertConsistent(after, slots, `died after ${dieAfter} of ${points} points (${moves} moves)`);
      const expected = new Map<number, [number, number]>();
      for (const a of mine) expected.set(a, [1, 0]);
      for (const a of theirs) if (a !== target.key) expected.set(a, [expected.get(a)?.[0] ?? 0, 1]);
      assert.deepEqual(
        new Map(after.entries.map((e) => [e.key, e.counts as [number, number]])),
        expected,
        'every address with the counts each worker holds; the released one gone',
      );
      for (const a of [1, 7, 13]) assert.equal(addon!.connCount!(w0, 4, 0, a) > 0, a !== target.key);
      // Worker 1's successor takes its predecessor's counts out: only worker 0's are left.
      addon!.connTableOpen!(tableFd, 1);
      const restarted = dump(w0, 2);
      assertConsistent(restarted, slots, 'after worker 1 restarted');
      assert.deepEqual(
        restarted.entries.map((e) => e.key).sort((a, b) => a - b),
        mine,
      );
      assert.equal(addon!.connAcquire!(w0, 4, 0, 40, 1), 1, 'a freed address is counted afresh');
    } finally {
      closeSync(tableFd);
    }
  }
  t.diagnostic(`died at points 0..${covered}`);
  assert.ok(covered >= 3, 'died at each kind of point at least once');
});

test('a descriptor that is no table: the error says so (not "read: Success")', { skip }, () => {
  const fd = openSync('/dev/null', 'r');
  try {
    assert.throws(() => addon!.connTableOpen!(fd, 0), {
      message:
        /^http_batch: connTableOpen: not a connection table \(descriptor \d+: 0 of its 24 header bytes\)$/,
    });
  } finally {
    closeSync(fd);
  }
});
