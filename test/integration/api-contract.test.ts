/**
 * The JSON API against its own document, over real HTTP on every database engine: every
 * operation of docs/openapi.json is called with what a careless or hostile client sends (unknown
 * and malformed path parameters, bad query values, no body, wrong media types, JSON that is not
 * an object, unknown fields, no token), and every answer must be a status the document lists for
 * that operation, never a 500; a method a path does not take is 405 with `Allow`; a body over the
 * limit is a 413 the client reads.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import type { Tracker } from '../../src/index.ts';
import { hashPassword } from '../../src/web/portal/security.ts';
import { engines } from '../helpers/db.ts';
import { PortalClient } from '../helpers/portal-client.ts';
import { startPortalTracker } from '../helpers/portal-tracker.ts';

type Json = Record<string, unknown>;

const TOKEN = 'api-contract-token-0123456789';
const PASSWORD = 'a long enough password';
const doc = JSON.parse(readFileSync(new URL('../../docs/openapi.json', import.meta.url), 'utf8')) as Json;
const METHODS = ['get', 'put', 'post', 'delete', 'patch'];

/** Path parameters that name nothing, or nothing that can exist. */
const BAD_PARAMS = [
  '999999',
  '99999999999', // beyond 32 bits: PostgreSQL's serial ids refuse it as a parameter
  '0',
  '-1',
  'abc',
  '%ZZ',
  '%2F',
  '1.5',
  'x'.repeat(300),
  'ef'.repeat(32),
];
/** Query strings with values out of range or of the wrong type (for operations that take a query). */
const BAD_QUERIES = [
  '?limit=-1',
  '?limit=abc',
  '?limit=1001',
  '?offset=99999999999',
  '?status=nonsense',
  '?member=nobody-here',
  '?torrent=not-a-hash',
  '?torrent=999999',
  '?all=1',
  '?torrent=1&group=nobody',
  '?member=99999999999&torrent=99999999999',
];
/** Bodies: [content-type, body]; undefined = none. */
const BODIES: [string | undefined, string | undefined][] = [
  [undefined, undefined],
  ['text/plain', 'hello'],
  ['application/json', 'null'],
  ['application/json', '[]'],
  ['application/json', '"text"'],
  ['application/json', '{'],
  ['application/json', '{}'],
  ['application/json', '{"no_such_field":1}'],
  ['application/json', '{"__proto__":{"admin":true}}'],
  ['application/json', '{"name":12,"username":[],"torrent":{},"points":1e300,"count":-1e9}'],
  ['application/json', '{"torrent":99999999999,"member":99999999999,"group":99999999999}'],
];

for (const engine of engines) {
  describe(`API contract (${engine.name})`, () => {
    let tracker: Tracker;
    let stop: () => Promise<void>;
    let base = '';

    before(async () => {
      ({ tracker, base, stop } = await startPortalTracker(engine, { udp: [], apiToken: TOKEN }));
      const reg = tracker.registry();
      const m = await reg.addMember({ username: 'walker' });
      const t = await reg.addTorrent({
        infoHash: 'ab'.repeat(20),
        infoHashV2: null,
        name: 'walked',
        size: 1,
        fileCount: 1,
        restricted: true,
      });
      await reg.addGroup('walkers');
      await reg.grant({ torrent: t.id, member: m.id });
    });

    after(async () => {
      await stop();
    });

    const call = async (
      method: string,
      path: string,
      opts: { type?: string; body?: string; token?: string } = {},
    ) => {
      const headers: Record<string, string> = { authorization: `Bearer ${opts.token ?? TOKEN}` };
      if (opts.type !== undefined) headers['content-type'] = opts.type;
      const r = await fetch(base + path, { method, headers, body: opts.body });
      const text = await r.text();
      return { status: r.status, allow: r.headers.get('allow'), text };
    };

    /** Every documented operation: its method, its path with `{param}` filled in by `fill`. */
    function operations() {
      const out: { method: string; path: string; op: Json; params: string[] }[] = [];
      for (const [path, item] of Object.entries(doc.paths as Record<string, Json>))
        for (const method of METHODS)
          if (item[method])
            out.push({
              method: method.toUpperCase(),
              path,
              op: item[method] as Json,
              params: [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]),
            });
      return out;
    }
    const VALID: Record<string, string> = {
      member: 'walker',
      torrent: '1',
      list: 'allow',
      info_hash: 'cd'.repeat(20),
      prefix: '-qB4',
      group: 'walkers',
      id: '1',
    };
    const fill = (path: string, bad?: { name: string; value: string }) =>
      path.replace(/\{([^}]+)\}/g, (_, n: string) => (bad?.name === n ? bad.value : VALID[n]));
    const takesQuery = (op: Json) =>
      ((op.parameters ?? []) as Json[]).some(
        (p) => p.in === 'query' || (typeof p.$ref === 'string' && /\/(limit|offset)$/.test(p.$ref)),
      );

    test('every answer to every operation is a status docs/openapi.json lists for it, never a 500', async () => {
      const undocumented: string[] = [];
      for (const { method, path, op, params } of operations()) {
        const listed = new Set(Object.keys(op.responses as Json));
        const tries: { path: string; type?: string; body?: string; token?: string }[] = [];
        const bodies = method === 'GET' ? [BODIES[0]] : BODIES;
        for (const [type, body] of bodies) tries.push({ path: fill(path), type, body });
        for (const name of params)
          for (const value of BAD_PARAMS)
            tries.push({ path: fill(path, { name, value }), ...jsonBody(method) });
        if (takesQuery(op))
          for (const q of BAD_QUERIES) tries.push({ path: fill(path) + q, ...jsonBody(method) });
        tries.push({ path: fill(path), token: 'wrong-token-0123456789', ...jsonBody(method) });
        for (const t of tries) {
          const r = await call(method, t.path, t);
          if (!listed.has(String(r.status)) || r.status === 500)
            undocumented.push(
              `${method} ${path} -> ${r.status} (${t.path.slice(0, 80)} ${t.type ?? ''} ${t.body ?? ''}): ${r.text.slice(0, 120)}`,
            );
        }
      }
      assert.deepEqual(undocumented, [], 'answers docs/openapi.json does not list');
      assert.equal((await tracker.stats.snapshot()).internalErrors, 0);
    });

    test('a method a path does not take is 405 with Allow naming the ones it does (API, portal, web paths)', async () => {
      const byPath = new Map<string, string[]>();
      for (const { method, path } of operations()) byPath.set(path, [...(byPath.get(path) ?? []), method]);
      for (const [path, methods] of byPath) {
        const other = ['GET', 'PUT', 'POST', 'DELETE', 'PATCH'].find((m) => !methods.includes(m))!;
        const r = await call(other, fill(path), jsonBody(other));
        assert.equal(r.status, 405, `${other} ${path}`);
        assert.deepEqual(r.allow?.split(', ').sort(), [...methods].sort(), `${other} ${path}: Allow`);
      }
      // The portal: a GET page posted to, a form page (GET and POST) deleted.
      const torrents = await fetch(`${base}/torrents`, { method: 'PUT' });
      assert.equal(torrents.status, 405);
      assert.equal(torrents.headers.get('allow'), 'GET, HEAD');
      const login = await fetch(`${base}/login`, { method: 'DELETE' });
      assert.equal(login.status, 405);
      assert.deepEqual(login.headers.get('allow')?.split(', ').sort(), ['GET', 'HEAD', 'POST']);
      // Health and statistics.
      const stats = await fetch(`${base}/stats`, { method: 'POST' });
      assert.equal(stats.status, 405);
      assert.equal(stats.headers.get('allow'), 'GET, HEAD');
    });

    test('a body over 16 MiB is answered 413, which the client still sending it reads (declared or chunked)', async () => {
      const before = (await tracker.stats.snapshot()).internalErrors;
      for (const chunked of [false, true]) {
        const r = await upload('/api/torrents', 16 * 1024 * 1024 + 1, chunked);
        assert.equal(r.status, 413, `chunked: ${chunked}: ${r.text}`);
        assert.match(r.text, /larger than/);
      }
      assert.equal((await call('GET', '/api/stats')).status, 200);
      assert.equal((await tracker.stats.snapshot()).internalErrors, before);
    });

    test('media type and authentication scheme are read without regard to case; application/jsonx is not JSON', async () => {
      const body = JSON.stringify({ name: 'case-group' });
      for (const type of ['APPLICATION/JSON', 'Application/Json; charset=utf-8'])
        assert.equal(
          (await call('POST', '/api/groups', { type, body: body.replace('case', type.slice(0, 3)) })).status,
          201,
          type,
        );
      for (const type of ['application/jsonx', 'application/json-seq', 'text/json'])
        assert.equal((await call('POST', '/api/groups', { type, body })).status, 415, type);
      const r = await fetch(`${base}/api/stats`, { headers: { authorization: `bearer ${TOKEN}` } });
      assert.equal(r.status, 200, 'the scheme is case-insensitive (RFC 9110 11.1)');
      await r.arrayBuffer();
    });

    test('portal: an id beyond 32 bits is a 404 on every page and staff form, not an internal error', async () => {
      const reg = tracker.registry();
      await reg.addMember({ username: 'big-ids', role: 'admin', passwordHash: await hashPassword(PASSWORD) });
      const c = new PortalClient(base);
      assert.equal((await c.login('big-ids', PASSWORD)).location, '/torrents');
      const before = (await tracker.stats.snapshot()).internalErrors;
      const BIG = '99999999999';
      for (const path of [
        `/member/${BIG}`,
        `/torrent/${BIG}`,
        `/torrent/${BIG}/download`,
        `/staff/promotions/events/${BIG}`,
      ])
        assert.equal((await c.get(path)).status, 404, path);
      await c.get('/staff/members');
      for (const path of [
        `/staff/members/${BIG}`,
        `/staff/members/${BIG}/reset-link`,
        `/staff/torrents/${BIG}`,
        `/staff/hit-and-runs/${BIG}/forgive`,
        `/staff/promotions/windows/${BIG}/revoke`,
        `/staff/promotions/featured/${BIG}/end`,
        `/staff/promotions/events/${BIG}/cancel`,
        `/torrent/${BIG}/token`,
      ])
        assert.equal((await c.post(path, { action: 'free' })).status, 404, path);
      for (const [path, fields] of [
        ['/staff/promotions/tokens', { member: BIG, count: '1' }],
        ['/staff/promotions/featured', { torrent: BIG }],
        ['/staff/torrents/1', { action: 'grant', who: BIG }],
        ['/staff/torrents/1', { action: 'revoke', grant: BIG }],
        [`/staff/applications/${BIG}`, { action: 'approve' }],
      ] as const)
        assert.equal((await c.post(path, fields)).status, 404, path);
      assert.equal((await tracker.stats.snapshot()).internalErrors, before);
    });

    /** Streams `size` bytes of JSON-ish text to `path` with or without Content-Length. */
    function upload(path: string, size: number, chunked: boolean): Promise<{ status: number; text: string }> {
      return new Promise((resolve, reject) => {
        const headers: Record<string, string> = {
          authorization: `Bearer ${TOKEN}`,
          'content-type': 'application/json',
        };
        if (!chunked) headers['content-length'] = String(size);
        const req = request(`${base}${path}`, { method: 'POST', headers }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }),
          );
          res.on('error', reject);
        });
        req.on('error', reject);
        const block = Buffer.alloc(1 << 20, 0x20);
        let sent = 0;
        const pump = () => {
          while (sent < size) {
            const n = Math.min(block.length, size - sent);
            sent += n;
            if (!req.write(block.subarray(0, n))) return void req.once('drain', pump);
          }
          req.end();
        };
        pump();
      });
    }
  });
}

/** A harmless JSON body for methods that take one (GET and DELETE send none). */
function jsonBody(method: string): { type?: string; body?: string } {
  return method === 'GET' || method === 'DELETE' ? {} : { type: 'application/json', body: '{}' };
}
