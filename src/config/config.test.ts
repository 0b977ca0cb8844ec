import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { helpText, renderConfigToml } from './cli-args.ts';
import { ConfigError, loadConfig, resolveConfig } from './load.ts';
import { flagName, SCHEMA, wsIdleTimeout } from './schema.ts';

const load = (argv: string[], env: Record<string, string> = {}, cwd?: string) =>
  loadConfig({ argv, env, cwd });

test('defaults: HTTP and UDP on 6969, IPv4 and IPv6, data under ./data', () => {
  const c = load([], {}, mkdtempSync(join(tmpdir(), 'herald-cfg-')));
  assert.deepEqual(c.http, ['0.0.0.0:6969', '[::]:6969']);
  assert.deepEqual(c.udp, ['0.0.0.0:6969', '[::]:6969']);
  assert.equal(c.dataDir, './data');
  assert.equal(c.defaultNumWant, 50);
  assert.equal(c.fullScrape, false);
});

test('precedence: defaults < TOML (data dir or --config) < HERALD_* < flags', () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-cfg-'));
  try {
    writeFileSync(
      join(dir, 'herald.toml'),
      'interval = 1000\nmin_interval = 100\nmax_numwant = 80\nudp = "off"\n',
    );
    const fromFile = load(['--data-dir', dir]);
    assert.equal(fromFile.interval, 1000);
    assert.deepEqual(fromFile.udp, []);
    const fromEnv = load(['--data-dir', dir], {
      HERALD_INTERVAL: '1200',
      HERALD_HTTP: '127.0.0.1:1,[::1]:2',
    });
    assert.equal(fromEnv.interval, 1200);
    assert.deepEqual(fromEnv.http, ['127.0.0.1:1', '[::1]:2']);
    assert.equal(fromEnv.maxNumWant, 80, 'the file still applies where env is silent');
    const fromFlags = load(
      [
        '--data-dir',
        dir,
        '--interval',
        '1300',
        '--http',
        '127.0.0.1:3',
        '--http',
        '127.0.0.1:4',
        '--no-full-scrape',
      ],
      {
        HERALD_INTERVAL: '1200',
        HERALD_FULL_SCRAPE: 'true',
      },
    );
    assert.equal(fromFlags.interval, 1300);
    assert.deepEqual(fromFlags.http, ['127.0.0.1:3', '127.0.0.1:4']);
    assert.equal(fromFlags.fullScrape, false);
    const other = join(dir, 'other.toml');
    writeFileSync(other, 'peer_timeout = 5000\n');
    assert.equal(load(['--config', other]).peerTimeout, 5000);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('every bad value names its key and source; unknown keys, variables and flags are refused', () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-cfg-'));
  try {
    const cases: [() => unknown, RegExp][] = [
      [() => load(['--interval', 'x']), /interval: must be an integer .*\[from --interval\]/],
      [() => load(['--interval', '0']), /interval: must be >= 1/],
      [
        () => load([], { HERALD_MAX_NUMWANT: '5000' }),
        /max_numwant: must be <= 1000 .*\[from HERALD_MAX_NUMWANT\]/,
      ],
      [() => load(['--udp', '1.2.3.4']), /udp: .*HOST:PORT/],
      [() => load(['--interval', '3000']), /peer_timeout \(2700\) must be greater than interval \(3000\)/],
      [() => load(['--min-interval', '2000']), /min_interval \(2000\) must not exceed interval/],
      [
        () => load(['--ws-idle-timeout', '1800']),
        /ws_idle_timeout \(1800\) must be greater than interval \(1800\), or 0/,
      ],
      [() => load(['--default-numwant', '300']), /default_numwant \(300\) must not exceed max_numwant/],
      [() => load(['--https', '0.0.0.0:443']), /https: .*needs tls_cert and tls_key/],
      [() => load(['--http', 'off', '--udp', 'off']), /nothing to serve/],
      [() => load(['--log-level', 'loud']), /log_level: must be one of/],
      [() => load(['--udp-secret', 'abc']), /udp_secret/],
      [() => load(['--trusted-proxies', 'proxy.lan']), /trusted_proxies: "proxy\.lan" is not an IP address/],
      [() => load([], { HERALD_NOPE: '1' }), /unknown environment variable HERALD_NOPE/],
      [() => load(['--nope']), /Unknown option '--nope'/],
      [() => load(['--config', join(dir, 'missing.toml')]), /file not found/],
    ];
    writeFileSync(join(dir, 'bad.toml'), 'intervall = 5\n');
    cases.push([() => load(['--config', join(dir, 'bad.toml')]), /unknown key "intervall"/]);
    writeFileSync(join(dir, 'broken.toml'), 'interval = = 5\n');
    cases.push([() => load(['--config', join(dir, 'broken.toml')]), /broken\.toml/]);
    for (const [f, re] of cases)
      assert.throws(f, (e: unknown) => e instanceof ConfigError && re.test(e.message), String(re));
    assert.throws(() => resolveConfig({ interval: -1 }), /interval: must be >= 1 .*createTracker/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('ws_idle_timeout 0 is the later of peer_timeout and interval + 60; another value is itself', () => {
  assert.equal(wsIdleTimeout(load([])), 2700);
  assert.equal(
    wsIdleTimeout(load(['--interval', '600', '--min-interval', '60', '--peer-timeout', '620'])),
    660,
  );
  assert.equal(wsIdleTimeout(load(['--ws-idle-timeout', '2000'])), 2000);
});

test('config print gives a documented TOML file that loads back to the same configuration', () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-cfg-'));
  try {
    const c = load(
      [
        '--interval',
        '1234',
        '--trusted-proxies',
        '10.0.0.1',
        '--full-scrape',
        '--udp-secret',
        'ab'.repeat(16),
      ],
      {},
      dir,
    );
    const text = renderConfigToml(c);
    for (const d of SCHEMA) if (d.key !== 'config') assert.ok(text.includes(`# ${d.doc}`), d.key);
    const file = join(dir, 'printed.toml');
    writeFileSync(file, text);
    const back = load(['--config', file], {}, dir);
    assert.deepEqual({ ...back, config: null }, { ...c, config: null });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('help documents every flag', () => {
  const help = helpText('serve');
  for (const d of SCHEMA) assert.ok(help.includes(`--${flagName(d)}`), flagName(d));
});

test('fuzz: any text for a numeric flag loads or fails with a ConfigError, never anything else', () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 30 }), (s) => {
      try {
        const c = load([`--max-numwant=${s}`]);
        assert.ok(Number.isInteger(c.maxNumWant));
      } catch (err) {
        assert.ok(err instanceof ConfigError, String(err));
      }
    }),
    { numRuns: 500 },
  );
});

test('store: a Redis store needs a shared udp_secret, a valid URL, workers = 1 and not private mode', () => {
  const cwd = mkdtempSync(join(tmpdir(), 'herald-cfg-'));
  const secret = 'ab'.repeat(16);
  assert.equal(load([], {}, cwd).store, 'memory');
  assert.throws(
    () => load(['--store', 'redis://127.0.0.1:6379'], {}, cwd),
    (e: Error) => e instanceof ConfigError && /udp_secret: with a Redis store/.test(e.message),
  );
  const ok = load(['--store', 'redis://127.0.0.1:6379', '--udp-secret', secret], {}, cwd);
  assert.deepEqual([ok.store, ok.redisPrefix, ok.redisTimeout], ['redis://127.0.0.1:6379', 'herald', 1000]);
  // Workers on Redis: each talks to Redis directly (issue #14).
  assert.equal(load(['--store', 'redis://h:1', '--workers', '2', '--udp', 'off'], {}, cwd).workers, 2);
  // Private mode: baselines are shared through Redis (issue #14).
  assert.equal(
    load(['--store', 'redis://h:1', '--mode', 'private', '--udp', 'off'], {}, cwd).mode,
    'private',
  );
  // Without UDP listeners there are no connection ids to share.
  assert.equal(load(['--store', 'redis-cluster://h1:7001,h2:7002', '--udp', 'off'], {}, cwd).udp.length, 0);
  for (const [argv, why] of [
    [['--store', 'mysql://x'], /store: memory, redis/],
    [['--store', 'redis://h:1', '--redis-prefix', 'a{b}'], /redis_prefix/],
  ] as const)
    assert.throws(
      () => load([...argv, '--udp-secret', secret], {}, cwd),
      (e: Error) => e instanceof ConfigError && why.test(e.message),
    );
});

test('account mail: smtp_url needs mail_from and site_url; a bad URL or a From with a line break is refused', () => {
  const cwd = mkdtempSync(join(tmpdir(), 'herald-cfg-'));
  try {
    const off = load([], {}, cwd);
    assert.deepEqual([off.smtpUrl, off.require2faForStaff, off.totpEncryptionKey], ['', false, null]);
    const refused = (args: string[], re: RegExp) =>
      assert.throws(
        () => load(args, {}, cwd),
        (e: Error) => e instanceof ConfigError && re.test(e.message),
        args.join(' '),
      );
    const smtp = ['--smtp-url', 'smtp://u:p@127.0.0.1:2525'];
    refused(smtp, /mail_from: needed with smtp_url/);
    refused([...smtp, '--mail-from', 'h@example.org'], /site_url: needed with smtp_url/);
    refused(['--smtp-url', 'http://mail.example.org'], /smtp_url: an smtp:\/\/host:port/);
    refused(['--smtp-url', 'not a url'], /smtp_url/);
    refused(['--site-url', 'ftp://x'], /site_url: an http\(s\):\/\//);
    refused(['--mail-from', 'a@example.org\r\nBcc: b@example.org'], /mail_from: one line/);
    refused(['--totp-encryption-key', 'short'], /totp_encryption_key: must be at least 16/);
    const on = load(
      [
        ...smtp,
        '--mail-from',
        'Herald <h@example.org>',
        '--site-url',
        'https://t.example.org',
        '--require-2fa-for-staff',
      ],
      { HERALD_TOTP_ENCRYPTION_KEY: 'k'.repeat(32) },
      cwd,
    );
    assert.deepEqual(
      [on.siteUrl, on.require2faForStaff, on.totpEncryptionKey],
      ['https://t.example.org', true, 'k'.repeat(32)],
    );
  } finally {
    rmSync(cwd, { recursive: true, force: true });
  }
});

test('a configuration file that is not one (a device, a huge file, a directory) is refused in one line', () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-cfg-'));
  try {
    // 2 MiB of comments: valid TOML, but no configuration is that long.
    writeFileSync(join(dir, 'huge.toml'), `interval = 60\n${'# x\n'.repeat(512 * 1024)}`);
    for (const [file, re] of [
      ['/dev/zero', /config: \/dev\/zero: larger than 1048576 bytes/],
      [join(dir, 'huge.toml'), /huge\.toml: larger than 1048576 bytes/],
      [dir, /EISDIR/],
    ] as const)
      assert.throws(
        () => load(['--config', file]),
        (e: unknown) => e instanceof ConfigError && re.test(e.message) && !e.message.includes('\n'),
        String(re),
      );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
