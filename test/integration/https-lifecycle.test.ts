/**
 * Built-in HTTPS (certificate reload on SIGHUP without dropping the tracker), graceful shutdown
 * on SIGTERM, and the `herald` command's configuration errors, on a real process.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import type { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { announcePath, bdecode, hashOf } from '../helpers/clients.ts';
import { makeCert as makeCertIn } from '../helpers/tls.ts';

const ROOT = new URL('../../', import.meta.url).pathname;
const NODE = join(ROOT, 'node_modules/.bin/node');
const HERALD = join(ROOT, 'bin/herald.js');

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'herald-https-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

const makeCert = (name: string, cn: string) => makeCertIn(dir, name, cn);

function startHerald(
  args: string[],
  ready = 'herald listening',
): Promise<{ child: ChildProcess; log: () => string; https: number; http: number }> {
  const child = spawn(NODE, [HERALD, 'serve', '--data-dir', join(dir, 'data'), '--udp', 'off', ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no start:\n${log}`)), 40_000);
    child.stderr!.on('data', (d) => {
      log += d;
      const line = log.split('\n').find((l) => l.includes('herald listening'));
      if (line && log.includes(ready)) {
        clearTimeout(t);
        const listening = JSON.parse(line);
        const port = (a: string | undefined) =>
          a === undefined ? 0 : Number(a.slice(a.lastIndexOf(':') + 1));
        resolve({ child, log: () => log, https: port(listening.https[0]), http: port(listening.http[0]) });
      }
    });
    child.on('exit', (code) => reject(new Error(`exited ${code}:\n${log}`)));
  });
}

function httpsGet(port: number, path: string): Promise<{ body: Buffer; cn: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, rejectUnauthorized: false, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      const cert = (res.socket as import('node:tls').TLSSocket).getPeerX509Certificate() as X509Certificate;
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ body: Buffer.concat(chunks), cn: cert.subject }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('HTTPS and process lifecycle', () => {
  test('announce over HTTPS; SIGHUP reloads the certificate; SIGTERM stops cleanly', async () => {
    const a = makeCert('a', 'herald-a');
    const b = makeCert('b', 'herald-b');
    const live = { cert: join(dir, 'live.crt'), key: join(dir, 'live.key') };
    writeFileSync(live.cert, readFileSync(a.cert));
    writeFileSync(live.key, readFileSync(a.key));
    const h = await startHerald([
      '--http',
      'off',
      '--https',
      '127.0.0.1:0',
      '--tls-cert',
      live.cert,
      '--tls-key',
      live.key,
    ]);
    try {
      const first = await httpsGet(h.https, announcePath({ infoHash: hashOf(1), port: 9001, left: 0 }));
      assert.match(first.cn, /herald-a/);
      assert.equal(bdecode(first.body).get('complete'), 0);
      writeFileSync(live.cert, readFileSync(b.cert));
      writeFileSync(live.key, readFileSync(b.key));
      h.child.kill('SIGHUP');
      let cn = '';
      for (let i = 0; i < 50 && !/herald-b/.test(cn); i++) {
        await new Promise((r) => setTimeout(r, 100));
        cn = (await httpsGet(h.https, '/health')).cn;
      }
      assert.match(cn, /herald-b/, 'new connections get the new certificate');
      const again = await httpsGet(h.https, announcePath({ infoHash: hashOf(1), port: 9002, left: 5 }));
      assert.equal(bdecode(again.body).get('complete'), 1, 'the swarm survived the reload');
      const code = await new Promise((resolve) => {
        h.child.once('exit', resolve);
        h.child.kill('SIGTERM');
      });
      assert.equal(code, 0);
      assert.match(h.log(), /"msg":"stopped"/);
    } finally {
      h.child.kill('SIGKILL');
    }
  });

  for (const io of ['batched', 'node'])
    test(`SIGTERM with a WebSocket client on the HTTP listener (http io ${io}): the client is told, the process exits 0 at once`, async () => {
      const h = await startHerald(['--http', '127.0.0.1:0', '--http-io', io]);
      try {
        const ws = new WebSocket(`ws://127.0.0.1:${h.http}/announce`);
        await new Promise((resolve, reject) => {
          ws.on('open', resolve);
          ws.on('error', reject);
        });
        const closed = new Promise<number>((resolve) => ws.on('close', resolve));
        const exited = new Promise<number | null>((resolve) => h.child.once('exit', resolve));
        h.child.kill('SIGTERM');
        // Before the fix, node:net waited for the upgraded socket until the 10 s stop deadline
        // and the process ended with exit code 1.
        assert.equal(await exited, 0);
        assert.equal(await closed, 1001, 'going away');
        assert.match(h.log(), /"msg":"stopped"/);
      } finally {
        h.child.kill('SIGKILL');
      }
    });

  test('--workers 2: SIGHUP to the primary reloads the certificate in every worker; SIGTERM stops them all', async () => {
    const a = makeCert('wa', 'herald-wa');
    const b = makeCert('wb', 'herald-wb');
    const live = { cert: join(dir, 'wlive.crt'), key: join(dir, 'wlive.key') };
    writeFileSync(live.cert, readFileSync(a.cert));
    writeFileSync(live.key, readFileSync(a.key));
    const h = await startHerald(
      [
        '--workers',
        '2',
        '--http',
        'off',
        '--https',
        '127.0.0.1:0',
        '--tls-cert',
        live.cert,
        '--tls-key',
        live.key,
      ],
      'herald workers running',
    );
    try {
      // New connections are spread over both workers by the kernel: 24 of them reach both.
      const names = async () => {
        const all = await Promise.all(Array.from({ length: 24 }, () => httpsGet(h.https, '/health')));
        return new Set(all.map((r) => (/herald-wb/.test(r.cn) ? 'b' : 'a')));
      };
      assert.deepEqual([...(await names())], ['a']);
      writeFileSync(live.cert, readFileSync(b.cert));
      writeFileSync(live.key, readFileSync(b.key));
      h.child.kill('SIGHUP');
      let seen = new Set<string>();
      for (let i = 0; i < 50; i++) {
        await new Promise((r) => setTimeout(r, 100));
        seen = await names();
        if (seen.size === 1 && seen.has('b')) break;
      }
      assert.deepEqual([...seen], ['b'], 'every worker serves the new certificate');
      const code = await new Promise((resolve) => {
        h.child.once('exit', resolve);
        h.child.kill('SIGTERM');
      });
      assert.equal(code, 0);
      assert.equal(h.log().match(/"msg":"stopped"/g)?.length, 2, 'both workers stopped gracefully');
    } finally {
      h.child.kill('SIGKILL');
    }
  });

  test('a bad value stops the start with a message naming the key and its source', () => {
    let out = '';
    try {
      execFileSync(NODE, [HERALD, 'serve', '--peer-timeout', '10', '--interval', '60'], { stdio: 'pipe' });
    } catch (err) {
      out = String((err as { stderr: Buffer }).stderr);
      assert.equal((err as { status: number }).status, 2);
    }
    assert.match(out, /peer_timeout \(10\) must be greater than interval \(60\)/);
    try {
      execFileSync(NODE, [HERALD, 'serve', '--http', 'nowhere'], { stdio: 'pipe', env: { ...process.env } });
      assert.fail('should not start');
    } catch (err) {
      assert.match(String((err as { stderr: Buffer }).stderr), /config: http: .*nowhere.*\[from --http\]/);
    }
    try {
      execFileSync(NODE, [HERALD, 'serve'], { stdio: 'pipe', env: { ...process.env, HERALD_INTERVL: '5' } });
      assert.fail('should not start');
    } catch (err) {
      assert.match(String((err as { stderr: Buffer }).stderr), /unknown environment variable HERALD_INTERVL/);
    }
  });

  test('herald serve --help documents every flag', () => {
    const help = execFileSync(NODE, [HERALD, 'serve', '--help']).toString();
    for (const flag of [
      '--http',
      '--udp',
      '--https',
      '--tls-cert',
      '--tls-key',
      '--data-dir',
      '--interval',
      '--min-interval',
      '--peer-timeout',
      '--max-numwant',
      '--trusted-proxies',
      '--full-scrape',
    ])
      assert.ok(help.includes(flag), flag);
  });
});
