/**
 * Hostile WebTorrent messages over real WebSocket connections, found by `npm run fuzz` (target
 * wsjson): each is refused as the client's mistake, none becomes an internal error.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, test } from 'node:test';
import { WebSocket } from 'ws';
import { createTracker, type Tracker } from '../../src/index.ts';

let tracker: Tracker;
let url: string;

before(async () => {
  tracker = createTracker({
    http: ['127.0.0.1:0'],
    udp: ['off'],
    logLevel: 'silent',
    databaseUrl: 'sqlite::memory:',
  });
  await tracker.start();
  url = `ws://127.0.0.1:${tracker.addresses().http[0].port}/announce`;
});

after(() => tracker.stop());

/** A connected client and the messages it receives, parsed. */
async function peer(): Promise<{ ws: WebSocket; next: () => Promise<Record<string, unknown>> }> {
  const ws = new WebSocket(url);
  const queue: Record<string, unknown>[] = [];
  let waiting: ((m: Record<string, unknown>) => void) | null = null;
  ws.on('message', (d) => {
    const m = JSON.parse(String(d));
    if (waiting) {
      const w = waiting;
      waiting = null;
      w(m);
    } else queue.push(m);
  });
  await once(ws, 'open');
  return {
    ws,
    next: () => (queue.length > 0 ? Promise.resolve(queue.shift()!) : new Promise((r) => (waiting = r))),
  };
}

test('an answer nested too deeply to relay is refused, not an internal error', async () => {
  const ih = 'h'.repeat(20);
  const a = await peer();
  const b = await peer();
  try {
    b.ws.send(
      JSON.stringify({ action: 'announce', info_hash: ih, peer_id: 'B'.repeat(20), left: 1, numwant: 0 }),
    );
    await b.next();
    const offer = { offer: { type: 'offer', sdp: 'v=0' }, offer_id: 'o'.repeat(20) };
    a.ws.send(
      JSON.stringify({
        action: 'announce',
        info_hash: ih,
        peer_id: 'A'.repeat(20),
        left: 1,
        numwant: 1,
        offers: [offer],
      }),
    );
    await a.next();
    assert.equal((await b.next()).offer_id, 'o'.repeat(20), 'B got the offer');
    // JSON.parse takes 30,000 levels of nesting (in 60 KB); JSON.stringify, to relay it, does not.
    const deep = `${'['.repeat(30_000)}${']'.repeat(30_000)}`;
    b.ws.send(
      `{"action":"announce","info_hash":"${ih}","peer_id":"${'B'.repeat(20)}","to_peer_id":"${'A'.repeat(20)}",` +
        `"offer_id":"${'o'.repeat(20)}","answer":{"type":"answer","sdp":"v=0","x":${deep}}}`,
    );
    const reply = await b.next();
    assert.notEqual(reply['failure reason'], 'internal error');
    assert.ok(typeof reply['failure reason'] === 'string', JSON.stringify(reply).slice(0, 200));
    assert.equal((await tracker.stats.snapshot()).internalErrors, 0);
  } finally {
    a.ws.close();
    b.ws.close();
  }
});
