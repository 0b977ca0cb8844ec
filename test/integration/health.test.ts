/**
 * `/health` for orchestrators and load balancers (issue #17): live (`/health/live`) against ready
 * (`/health`, `/health/ready`), with the status code a load balancer reads. Real listeners, and a
 * real PostgreSQL server that stops accepting the tracker's connections.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { describe, test } from 'node:test';
import pg from 'pg';
import { createTracker, type Tracker } from '../../src/index.ts';
import { engines } from '../helpers/db.ts';

/** node:http (no deadline of its own: a check that hangs is answered after CHECK_TIMEOUT_MS). */
function call(t: Tracker, path: string, method = 'GET'): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: t.addresses().http[0].port, path, method }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        text += d;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function health(t: Tracker, path = '/health') {
  const r = await call(t, path);
  return { status: r.status, body: JSON.parse(r.text) };
}

async function started(extra: Parameters<typeof createTracker>[0] = {}): Promise<Tracker> {
  const t = createTracker({
    http: ['127.0.0.1:0'],
    udp: ['127.0.0.1:0'],
    logLevel: 'silent',
    databaseUrl: 'sqlite::memory:',
    ...extra,
  });
  await t.start();
  return t;
}

describe('/health', () => {
  test('a serving tracker is live and ready: database answers, listeners bound', async (t) => {
    const tracker = await started();
    t.after(() => tracker.stop());
    const ready = await health(tracker);
    assert.equal(ready.status, 200);
    assert.deepEqual(ready.body, { status: 'ok', checks: { database: 'ok', listeners: 'ok' } });
    assert.deepEqual(await health(tracker, '/health/ready'), ready);
    assert.deepEqual(await health(tracker, '/health/live'), { status: 200, body: { status: 'live' } });
    const head = await call(tracker, '/health', 'HEAD');
    assert.deepEqual(head, { status: 200, text: '' }, 'HEAD /health (what some load balancers send)');
  });

  test('a failing check (a shared store that lost its server) makes it 503, not live', async (t) => {
    const tracker = await started();
    t.after(() => tracker.stop());
    let connected = false;
    tracker.health.add('store', () => connected || 'disconnected');
    const down = await health(tracker);
    assert.equal(down.status, 503);
    assert.equal(down.body.status, 'unavailable');
    assert.equal(down.body.checks.store, 'disconnected');
    assert.equal(down.body.checks.database, 'ok');
    assert.equal((await health(tracker, '/health/live')).status, 200, 'still live: a restart would not help');
    connected = true;
    tracker.health.add('store', () => connected || 'disconnected');
    assert.equal((await health(tracker)).status, 200);
  });

  test('a degraded check (part of a shared store failing) keeps the instance ready: 200 "degraded"; a failure beside it is 503', async (t) => {
    const tracker = await started();
    t.after(() => tracker.stop());
    tracker.health.add('store', () => ({ degraded: 'some calls failing' }));
    const partly = await health(tracker);
    assert.equal(partly.status, 200);
    assert.deepEqual(partly.body, {
      status: 'degraded',
      checks: { store: 'some calls failing', database: 'ok', listeners: 'ok' },
    });
    tracker.health.add('cache', () => 'disconnected');
    const down = await health(tracker);
    assert.equal(down.status, 503);
    assert.equal(down.body.status, 'unavailable');
    assert.equal(down.body.checks.store, 'some calls failing');
  });

  test('a check that throws says only "failed" (its error may name hosts); one that hangs times out', async (t) => {
    const tracker = await started();
    t.after(() => tracker.stop());
    tracker.health.add('thrower', () => {
      throw new Error('connect ECONNREFUSED 10.1.2.3:6379 user=secret');
    });
    tracker.health.add('hanger', () => new Promise<true>(() => {}));
    const r = await health(tracker);
    assert.equal(r.status, 503);
    assert.equal(r.body.checks.thrower, 'failed');
    assert.equal(r.body.checks.hanger, 'timed out');
    assert.doesNotMatch(JSON.stringify(r.body), /10\.1\.2\.3|secret/);
  });

  test('with the portal on every path, /health/live and /health/ready are still the tracker’s', async (t) => {
    const tracker = await started({ mode: 'private', portal: 'on' });
    t.after(() => tracker.stop());
    assert.deepEqual((await health(tracker, '/health/live')).body, { status: 'live' });
    assert.equal((await health(tracker, '/health/ready')).body.status, 'ok');
  });

  for (const engine of engines.filter((e) => e.name === 'postgres'))
    test('PostgreSQL refusing connections makes it 503 "database", and 200 again when it is back', async (t) => {
      const db = await engine.create();
      t.after(() => db.drop());
      const tracker = await started({ databaseUrl: db.url });
      t.after(() => tracker.stop());
      assert.equal((await health(tracker)).status, 200);
      const name = new URL(db.url).pathname.slice(1);
      const admin = new pg.Client({ connectionString: process.env.HERALD_TEST_PG_URL });
      await admin.connect();
      t.after(() => admin.end());
      await admin.query(`ALTER DATABASE ${name} ALLOW_CONNECTIONS false`);
      await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1', [name]);
      let down: Awaited<ReturnType<typeof health>> | undefined;
      // Answers are cached for a second: ask until the next round of checks has run.
      for (let i = 0; i < 50 && down?.status !== 503; i++) {
        await new Promise((r) => setTimeout(r, 100));
        down = await health(tracker);
      }
      assert.equal(down?.status, 503);
      assert.equal(down?.body.status, 'unavailable');
      assert.notEqual(down?.body.checks.database, 'ok');
      assert.equal(down?.body.checks.listeners, 'ok');
      assert.equal((await health(tracker, '/health/live')).status, 200);
      await admin.query(`ALTER DATABASE ${name} ALLOW_CONNECTIONS true`);
      let up = 0;
      for (let i = 0; i < 50 && up !== 200; i++) {
        await new Promise((r) => setTimeout(r, 100));
        up = (await health(tracker)).status;
      }
      assert.equal(up, 200);
    });
});
