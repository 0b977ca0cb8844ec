/**
 * The host's table of connections per address (native/src/conn_table.h) that makes
 * max_connections_per_ip hold over every worker: two "workers" in one process map the same
 * memfd, as worker processes map the descriptor the primary hands them.
 */
import assert from 'node:assert/strict';
import { closeSync, openSync } from 'node:fs';
import { test } from 'node:test';
import { type PeerAddress, parseIp } from '../core/address.ts';
import { ConnectionLimit } from '../core/connection-limit.ts';
import { createLogger, type Logger } from '../core/log.ts';
import { TrackerCounters } from '../core/metrics.ts';
import { loadHttpBatchAddon } from '../frontend/http/batch.ts';
import { createConnectionTable, openHostConnections } from './connection-table.ts';

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
