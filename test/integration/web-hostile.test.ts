/**
 * Hostile requests to the web side (API and portal), found by `npm run fuzz` (target http): each
 * is a client error, answered as one; none is an internal error in the log, in /stats and
 * /metrics, or an HTTP 500.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createTracker, type Tracker } from '../../src/index.ts';
import { rawExchange, splitResponses } from '../helpers/clients.ts';

const TOKEN = 'web-bodies-token-0123456789';
let tracker: Tracker;
let port: number;

before(async () => {
  tracker = createTracker({
    http: ['127.0.0.1:0'],
    udp: ['off'],
    mode: 'private',
    databaseUrl: 'sqlite::memory:',
    apiToken: TOKEN,
    portal: 'on',
    logLevel: 'silent',
  });
  await tracker.start();
  port = tracker.addresses().http[0].port;
});

after(() => tracker.stop());

async function internalErrors(): Promise<number> {
  return (await tracker.stats.snapshot()).internalErrors;
}

test('API: a JSON body cut short by the client is a 400, not an internal error', async () => {
  const before = await internalErrors();
  const all = await rawExchange(
    port,
    '127.0.0.1',
    `POST /api/members HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer ${TOKEN}\r\n` +
      'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"username":',
    { halfClose: true, timeoutMs: 5000 },
  );
  const text = all.toString('latin1');
  assert.doesNotMatch(text, /^HTTP\/1\.1 500/m, text);
  assert.doesNotMatch(text, /internal error/, text);
  for (const r of splitResponses(all)) assert.ok(r.status >= 400 && r.status < 500, `status ${r.status}`);
  // The handler runs on after the answer; give it the turn it needs to fail the way it fails.
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(await internalErrors(), before, 'nothing was counted as an internal error');
});

test('portal: a request target no URL parser accepts is a 400, not an internal error', async () => {
  const before = await internalErrors();
  for (const target of ['//a:99999/', 'http://12uploaded=7.0.0.1/torrents', 'http://[::1/']) {
    const all = await rawExchange(port, '127.0.0.1', `GET ${target} HTTP/1.1\r\nHost: t\r\n\r\n`, {
      halfClose: true,
      timeoutMs: 5000,
    });
    const [r] = splitResponses(all);
    assert.ok(r, `an answer to ${target}`);
    assert.equal(r.status, 400, `${target}: ${all.toString('latin1', 0, 200)}`);
  }
  assert.equal(await internalErrors(), before, 'nothing was counted as an internal error');
});
