import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { parseRequestHead, type RequestHead } from './request.ts';

const head = (s: string, max?: number): RequestHead => {
  const b = Buffer.from(s, 'latin1');
  return parseRequestHead(b, 0, b.length, max);
};
const okHead = (s: string) => {
  const h = head(s);
  if (h.kind !== 'ok') assert.fail(`${JSON.stringify(s)}: ${JSON.stringify(h)}`);
  return h;
};

test('parses method, path, query and the headers the fast path needs', () => {
  const s =
    'GET /announce?info_hash=%aa&port=1 HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 203.0.113.5, 10.0.0.1\r\nAccept-Encoding: gzip\r\n\r\n';
  const h = okHead(s);
  const b = Buffer.from(s, 'latin1');
  assert.equal(h.method, 'GET');
  assert.equal(b.toString('latin1', h.pathStart, h.pathEnd), '/announce');
  assert.equal(b.toString('latin1', h.queryStart, h.queryEnd), 'info_hash=%aa&port=1');
  assert.equal(h.headEnd, b.length);
  assert.equal(h.keepAlive, true);
  assert.equal(h.hasBody, false);
  assert.equal(h.xForwardedFor, '203.0.113.5, 10.0.0.1', 'the whole value: the frontend picks the entry');
  const two = okHead('GET / HTTP/1.1\r\nX-Forwarded-For: 9.9.9.9\r\nx-forwarded-for:  10.0.0.1 \r\n\r\n');
  assert.equal(two.xForwardedFor, '9.9.9.9,10.0.0.1', 'several header lines read as one list, in order');
  const noQuery = okHead('GET /scrape HTTP/1.0\r\n\r\n');
  assert.equal(noQuery.queryStart, noQuery.queryEnd);
  assert.equal(noQuery.keepAlive, false);
});

test('keep-alive rules, bodies and upgrades', () => {
  assert.equal(okHead('GET / HTTP/1.1\r\nConnection: close\r\n\r\n').keepAlive, false);
  assert.equal(okHead('GET / HTTP/1.0\r\nconnection: Keep-Alive\r\n\r\n').keepAlive, true);
  assert.equal(okHead('POST /api HTTP/1.1\r\nContent-Length: 5\r\n\r\n').hasBody, true);
  assert.equal(okHead('POST /api HTTP/1.1\r\nContent-Length: 0\r\n\r\n').hasBody, false);
  assert.equal(okHead('POST /api HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n').hasBody, true);
  assert.equal(okHead('GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n').upgrade, true);
  assert.equal(okHead('POST /x HTTP/1.1\r\n\r\n').method, 'OTHER');
});

test('partial heads are incomplete; pipelined heads parse one after another', () => {
  const one = 'GET /announce?a=1 HTTP/1.1\r\nHost: x\r\n\r\n';
  const two = 'GET /scrape?b=2 HTTP/1.1\r\nHost: x\r\n\r\n';
  const all = Buffer.from(one + two, 'latin1');
  for (let cut = 0; cut < one.length; cut++)
    assert.equal(parseRequestHead(all, 0, cut).kind, 'incomplete', `cut ${cut}`);
  const h1 = parseRequestHead(all, 0, all.length);
  assert.equal(h1.kind, 'ok');
  if (h1.kind !== 'ok') return;
  const h2 = parseRequestHead(all, h1.headEnd, all.length);
  assert.equal(h2.kind, 'ok');
  if (h2.kind === 'ok') assert.equal(all.toString('latin1', h2.pathStart, h2.pathEnd), '/scrape');
});

test('malformed and oversized heads are refused with the right status', () => {
  assert.deepEqual(head('garbage\r\n\r\n'), { kind: 'error', status: 400, reason: 'Bad Request' });
  assert.equal(
    (head('\x16\x03\x01\x02\x00') as { status: number }).status,
    400,
    'a TLS hello on the plain port',
  );
  assert.equal((head('GET /x HTTP/2.0\r\n\r\n') as { status: number }).status, 505);
  assert.equal((head('GET x HTTP/1.1\r\n\r\n') as { status: number }).status, 400);
  assert.equal((head('GET /x HTTP/1.1\r\nBad Header\r\n\r\n') as { status: number }).status, 400);
  assert.equal((head('GET /x HTTP/1.1\r\nBad : x\r\n\r\n') as { status: number }).status, 400);
  assert.equal((head('GET /x HTTP/1.1\r\nContent-Length: -1\r\n\r\n') as { status: number }).status, 400);
  assert.equal((head(`GET /${'a'.repeat(9000)}`) as { status: number }).status, 414);
  assert.equal((head(`GET / HTTP/1.1\r\nX: ${'a'.repeat(9000)}`) as { status: number }).status, 431);
});

test('fuzz: random bytes and mutated requests never throw, and indices stay in range', () => {
  const valid = Buffer.from(
    'GET /announce?info_hash=%aa HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    'latin1',
  );
  const check = (b: Uint8Array) => {
    const h = parseRequestHead(b, 0, b.length, 256);
    if (h.kind === 'ok') {
      assert.ok(
        h.pathStart <= h.pathEnd &&
          h.pathEnd <= h.queryEnd &&
          h.queryEnd < h.headEnd &&
          h.headEnd <= b.length,
      );
    }
  };
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), check), { numRuns: 3000 });
  fc.assert(
    fc.property(fc.nat(), fc.integer({ min: 0, max: 255 }), (at, byte) => {
      const b = Buffer.from(valid);
      b[at % b.length] = byte;
      check(b);
    }),
    { numRuns: 3000 },
  );
});
