import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage } from 'node:http';
import { connect } from 'node:net';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  type FormLimits,
  isFormError,
  multipartBoundary,
  parseMultipart,
  parseUrlEncoded,
  readBody,
} from './forms.ts';
import { escapeHtml, html, raw } from './html.ts';

const LIMITS: FormLimits = { maxFields: 16, maxFieldBytes: 256, maxFileBytes: 1024 };

function multipart(
  boundary: string,
  fields: [string, string][],
  files: [string, string, Buffer][] = [],
): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of fields)
    parts.push(
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`),
    );
  for (const [name, filename, data] of files)
    parts.push(
      Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="${name}"; filename="${filename}"\r\nContent-Type: application/x-bittorrent\r\n\r\n`,
      ),
      data,
      Buffer.from('\r\n'),
    );
  parts.push(Buffer.from(`--${boundary}--\r\n`));
  return Buffer.concat(parts);
}

test('urlencoded: decodes names, values, + and UTF-8', () => {
  const f = parseUrlEncoded(Buffer.from('a=1&name=J%C3%BCrgen+X&empty=&flag'), LIMITS);
  assert.ok(!isFormError(f));
  assert.equal(f.fields.get('a'), '1');
  assert.equal(f.fields.get('name'), 'Jürgen X');
  assert.equal(f.fields.get('empty'), '');
  assert.equal(f.fields.get('flag'), '');
});

test('urlencoded: malformed escapes, invalid UTF-8 and raw bytes are 400; too much is 413', () => {
  for (const bad of ['a=%zz', 'a=%C3', 'a=%', 'a=\u00ff'])
    assert.deepEqual(
      (parseUrlEncoded(Buffer.from(bad, 'latin1'), LIMITS) as { status: number }).status,
      400,
      bad,
    );
  assert.equal(
    (parseUrlEncoded(Buffer.from(`a=${'x'.repeat(257)}`), LIMITS) as { status: number }).status,
    413,
  );
  assert.equal(
    (
      parseUrlEncoded(Buffer.from(Array.from({ length: 17 }, (_, i) => `f${i}=1`).join('&')), LIMITS) as {
        status: number;
      }
    ).status,
    413,
  );
});

test('urlencoded: round trip with URLSearchParams (property)', () => {
  const name = fc.string({ minLength: 1, maxLength: 10 });
  fc.assert(
    fc.property(
      fc.uniqueArray(fc.tuple(name, fc.string({ maxLength: 60 })), { maxLength: 10, selector: (t) => t[0] }),
      (pairs) => {
        const body = Buffer.from(new URLSearchParams(pairs).toString());
        const f = parseUrlEncoded(body, LIMITS);
        assert.ok(!isFormError(f));
        assert.deepEqual([...f.fields], pairs);
      },
    ),
  );
});

test('multipart: boundary parameter', () => {
  assert.equal(multipartBoundary('multipart/form-data; boundary=----abc'), '----abc');
  assert.equal(multipartBoundary('multipart/form-data; charset=utf-8; boundary="a b"'), 'a b');
  assert.equal(multipartBoundary('multipart/form-data'), null);
  assert.equal(multipartBoundary(`multipart/form-data; boundary=${'x'.repeat(71)}`), null);
});

test('multipart: fields and a binary file', () => {
  const file = Buffer.from([0, 1, 2, 0x0d, 0x0a, 0x2d, 0x2d, 255]);
  const body = multipart(
    'XyZ',
    [
      ['_csrf', 'tok'],
      ['name', 'Ünïcode'],
    ],
    [['torrent', 'a.torrent', file]],
  );
  const f = parseMultipart(body, 'multipart/form-data; boundary=XyZ', LIMITS);
  assert.ok(!isFormError(f), JSON.stringify(f));
  assert.equal(f.fields.get('_csrf'), 'tok');
  assert.equal(f.fields.get('name'), 'Ünïcode');
  assert.equal(f.files.get('torrent')?.filename, 'a.torrent');
  assert.deepEqual(f.files.get('torrent')?.data, file);
});

test('multipart: refuses unclosed, undelimited, nameless, oversized and trailing-garbage bodies', () => {
  const ct = 'multipart/form-data; boundary=B';
  const cases: [string, Buffer, number][] = [
    ['unclosed', Buffer.from('--B\r\nContent-Disposition: form-data; name="a"\r\n\r\nvalue'), 400],
    ['no start', Buffer.from('junk--B--'), 400],
    ['nameless', Buffer.from('--B\r\nContent-Disposition: form-data\r\n\r\nv\r\n--B--'), 400],
    ['not form-data', Buffer.from('--B\r\nContent-Disposition: attachment; name="a"\r\n\r\nv\r\n--B--'), 400],
    ['big field', multipart('B', [['a', 'x'.repeat(300)]]), 413],
    ['big file', multipart('B', [], [['f', 'f', Buffer.alloc(2000)]]), 413],
    [
      'many parts',
      multipart(
        'B',
        Array.from({ length: 17 }, (_, i) => [`f${i}`, '1'] as [string, string]),
      ),
      413,
    ],
    ['trailing', Buffer.concat([multipart('B', [['a', '1']]), Buffer.from('more')]), 400],
  ];
  for (const [label, body, status] of cases) {
    const f = parseMultipart(body, ct, LIMITS);
    assert.ok(isFormError(f), label);
    assert.equal(f.status, status, label);
  }
});

test('multipart: round trip of random fields (property)', () => {
  const name = fc.stringMatching(/^[a-z_]{1,12}$/);
  const value = fc.string({ maxLength: 80 }).filter((s) => !s.includes('\r\n--'));
  fc.assert(
    fc.property(
      fc.uniqueArray(fc.tuple(name, value), { maxLength: 8, selector: (t) => t[0] }),
      fc.uint8Array({ maxLength: 500 }),
      (fields, bytes) => {
        const boundary = '----heraldBoundary7MA4YWxk';
        const body = multipart(boundary, fields, [['file', 'x.torrent', Buffer.from(bytes)]]);
        const f = parseMultipart(body, `multipart/form-data; boundary=${boundary}`, LIMITS);
        assert.ok(!isFormError(f));
        assert.deepEqual([...f.fields], fields);
        assert.deepEqual(f.files.get('file')?.data, Buffer.from(bytes));
      },
    ),
  );
});

test('fuzz: neither parser throws on arbitrary bytes, and results stay within the limits', () => {
  const check = (r: ReturnType<typeof parseMultipart>) => {
    if (isFormError(r)) return assert.ok(r.status === 400 || r.status === 413);
    assert.ok(r.fields.size + r.files.size <= LIMITS.maxFields);
    for (const v of r.fields.values()) assert.ok(Buffer.byteLength(v) <= LIMITS.maxFieldBytes * 3);
    for (const v of r.files.values()) assert.ok(v.data.length <= LIMITS.maxFileBytes);
  };
  const pieces = fc.oneof(
    fc.constantFrom(
      '--B',
      '\r\n',
      '--',
      'Content-Disposition: form-data; name="a"',
      '; filename="f"',
      '\r\n\r\n',
      '=',
      '&',
      '%',
      '%C3',
    ),
    fc.string({ maxLength: 20 }),
  );
  fc.assert(
    fc.property(fc.array(pieces, { maxLength: 40 }), fc.uint8Array({ maxLength: 200 }), (ps, tail) => {
      const body = Buffer.concat([Buffer.from(ps.join('')), Buffer.from(tail)]);
      check(parseMultipart(body, 'multipart/form-data; boundary=B', LIMITS));
      check(parseUrlEncoded(body, LIMITS));
    }),
    { numRuns: 3000 },
  );
});

test('html: interpolations are escaped unless already Html', () => {
  const evil = '<script>alert("x")</script>&\'';
  assert.equal(html`<p>${evil}</p>`.value, `<p>${escapeHtml(evil)}</p>`);
  assert.ok(!html`<p title="${evil}">`.value.includes('"x"'));
  assert.equal(html`<b>${raw('<i>ok</i>')}</b>`.value, '<b><i>ok</i></b>');
  assert.equal(
    html`${[html`<li>${'<a>'}</li>`, 'x']}${null}${false}${undefined}${0}`.value,
    '<li>&lt;a&gt;</li>x0',
  );
});

test('readBody: a body the client abandoned before it was read is a 400, not a wait for ever', async () => {
  // The portal looks the session up before it reads the body; the client may be gone by then.
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  try {
    const got = once(server, 'request') as Promise<[IncomingMessage]>;
    const client = connect(port, '127.0.0.1');
    client.on('error', () => {});
    client.end('POST /invites HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n_csrf=');
    const [req] = await got;
    if (!req.readableAborted) await once(req, 'aborted');
    // Not a measure of speed: an answer that has not come after 5 s is never coming.
    let timer: NodeJS.Timeout | undefined;
    const hung = new Promise<'hung'>((r) => {
      timer = setTimeout(() => r('hung'), 5000);
    });
    const body = await Promise.race([readBody(req, 1024), hung]);
    clearTimeout(timer);
    assert.notEqual(body, 'hung', 'readBody never settled');
    assert.ok(isFormError(body), 'a FormError');
    assert.equal(body.status, 400);
    client.destroy();
  } finally {
    server.closeAllConnections();
    server.close();
  }
});
