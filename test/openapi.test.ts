/**
 * Docs move with the code: docs/openapi.json documents exactly the routes of src/api/api.ts, so
 * adding a route without documenting it (or removing one) fails here.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

type Json = Record<string, unknown>;

const doc = JSON.parse(readFileSync(new URL('../docs/openapi.json', import.meta.url), 'utf8')) as Json;
const apiSource = readFileSync(new URL('../src/api/api.ts', import.meta.url), 'utf8');
const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace'];

/** The `['METHOD', 'pattern', handler]` tuples of the routes array, as "METHOD pattern". */
function sourceRoutes(): string[] {
  const re = /\[\s*'(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS)',\s*'([^']*)',/g;
  return [...apiSource.matchAll(re)].map((m) => `${m[1]} ${m[2]}`);
}

/** Every operation of the document: "METHOD pattern" (`{param}` → `*`, without `/api/`) and the object. */
function operations(): { key: string; path: string; method: string; op: Json }[] {
  const out = [];
  for (const [path, item] of Object.entries(doc.paths as Record<string, Json>)) {
    assert.ok(path.startsWith('/api/'), `${path} is under /api/`);
    const pattern = path.slice('/api/'.length).replace(/\{[^}]*\}/g, '*');
    for (const method of METHODS) {
      const op = item[method] as Json | undefined;
      if (op) out.push({ key: `${method.toUpperCase()} ${pattern}`, path, method, op });
    }
  }
  return out;
}

/** Follows a local `$ref` (`#/components/...`). */
function deref(v: unknown): Json {
  let o = v as Json;
  while (typeof o.$ref === 'string') {
    const ref = o.$ref;
    assert.ok(ref.startsWith('#/'), ref);
    let t: unknown = doc;
    for (const k of ref.slice(2).split('/')) t = (t as Json)[k];
    assert.ok(t !== undefined, `${ref} resolves`);
    o = t as Json;
  }
  return o;
}

test('the document is OpenAPI 3.1 with bearer authentication', () => {
  assert.match(String(doc.openapi), /^3\.1\.\d+$/);
  const info = doc.info as Json;
  assert.equal(typeof info.title, 'string');
  assert.equal(typeof info.version, 'string');
  const schemes = (doc.components as Json).securitySchemes as Record<string, Json>;
  assert.equal(schemes.bearer.type, 'http');
  assert.equal(schemes.bearer.scheme, 'bearer');
  assert.deepEqual(doc.security, [{ bearer: [] }]);
});

test('the document has exactly the routes of src/api/api.ts', () => {
  const src = sourceRoutes();
  assert.ok(src.length >= 20, `found the routes in api.ts (${src.length})`);
  assert.equal(new Set(src).size, src.length, 'no duplicate route in api.ts');
  const documented = operations().map((o) => o.key);
  const missing = src.filter((r) => !documented.includes(r));
  const extra = documented.filter((r) => !src.includes(r));
  assert.deepEqual(missing, [], 'routes of api.ts missing from docs/openapi.json');
  assert.deepEqual(extra, [], 'operations in docs/openapi.json that api.ts does not have');
});

test('every operation has a unique operationId, its path parameters, a success and a 401 response', () => {
  const ids = new Set<string>();
  for (const { key, path, method, op } of operations()) {
    assert.equal(typeof op.operationId, 'string', `${key}: operationId`);
    assert.ok(!ids.has(op.operationId as string), `${key}: operationId ${op.operationId} is unique`);
    ids.add(op.operationId as string);
    assert.equal(typeof op.summary, 'string', `${key}: summary`);

    const params = ((op.parameters ?? []) as unknown[]).map(deref);
    const inPath = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
    assert.deepEqual(
      params.filter((p) => p.in === 'path').map((p) => p.name),
      inPath,
      `${key}: path parameters`,
    );
    for (const p of params) if (p.in === 'path') assert.equal(p.required, true, `${key}: ${p.name} required`);

    const responses = op.responses as Record<string, unknown>;
    const success = method === 'post' ? '201' : '200';
    assert.ok(responses[success], `${key}: ${success} response`);
    assert.ok(deref(responses[success]).content, `${key}: ${success} has a body schema`);
    assert.ok(responses['401'], `${key}: 401 response`);
    // A path parameter that is not percent-encoded right (`%ZZ`) is a 400 wherever there is one.
    if (inPath.length > 0) assert.ok(responses['400'], `${key}: 400 response (malformed path parameter)`);
    const unauthorized = deref(responses['401']);
    assert.ok((unauthorized.headers as Json)['WWW-Authenticate'], `${key}: 401 sends WWW-Authenticate`);
    for (const r of Object.values(responses)) deref(r);
    if (op.requestBody) {
      for (const code of ['400', '413', '415']) assert.ok(responses[code], `${key}: ${code} response`);
      const schema = deref(
        (deref(op.requestBody).content as Record<string, Json>)['application/json'].schema,
      );
      const strict = schema.oneOf ? (schema.oneOf as Json[]) : [schema];
      for (const s of strict) assert.equal(s.additionalProperties, false, `${key}: body is a strict object`);
    }
  }
});

test('every $ref in the document resolves', () => {
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v !== null && typeof v === 'object') {
      if (typeof (v as Json).$ref === 'string') deref(v);
      Object.values(v).forEach(walk);
    }
  };
  walk(doc);
});
