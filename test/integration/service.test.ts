/**
 * The systemd unit (packaging/herald.service, issue #17): `systemd-analyze verify` finds nothing to
 * say about it, with and without the drop-in that allows ports below 1024; its sandbox rates "OK"
 * in `systemd-analyze security --offline`; and the command it starts takes the configuration
 * file the install steps write. systemd is not PID 1 here: both analyses work offline. The
 * test is skipped, loudly, where systemd-analyze is not installed.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

const ROOT = new URL('../../', import.meta.url).pathname;
const UNIT = readFileSync(join(ROOT, 'packaging/herald.service'), 'utf8');
const BINARY = '/usr/local/bin/herald';
const NODE = join(ROOT, 'node_modules/.bin/node');

const analyze = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
const missing = analyze.error !== undefined;
if (missing)
  process.stderr.write(
    '\n*** systemd unit tests SKIPPED: systemd-analyze is not installed (Debian: systemd) ***\n\n',
  );

/** The unit as installed, with ExecStart's binary at a path that exists here (verify checks it). */
function unitAt(dir: string, text: string): string {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'herald.service');
  writeFileSync(file, text.replaceAll(BINARY, process.execPath));
  return file;
}

function verify(file: string) {
  const r = spawnSync('systemd-analyze', ['verify', file], { encoding: 'utf8' });
  return { status: r.status, output: `${r.stdout}${r.stderr}`.trim() };
}

const setting = (key: string) =>
  UNIT.split('\n')
    .filter((l) => l.startsWith(`${key}=`))
    .map((l) => l.slice(key.length + 1));

test('packaging/herald.service: sandboxed, restarts on failure, reloads on SIGHUP', {
  skip: missing,
}, (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-unit-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  assert.deepEqual(verify(unitAt(join(dir, 'plain'), UNIT)), { status: 0, output: '' });

  // The drop-in README "Run as a service" gives for ports below 1024, applied to the [Service] section.
  const lowPorts = UNIT.replace(
    /^AmbientCapabilities=$/m,
    'AmbientCapabilities=CAP_NET_BIND_SERVICE\nCapabilityBoundingSet=CAP_NET_BIND_SERVICE',
  );
  assert.notEqual(lowPorts, UNIT);
  assert.deepEqual(verify(unitAt(join(dir, 'low-ports'), lowPorts)), { status: 0, output: '' });

  // verify does speak up: a misspelt setting is reported.
  const typo = verify(unitAt(join(dir, 'typo'), UNIT.replace('ProtectSystem=strict', 'ProtectSystem=stric')));
  assert.match(typo.output, /protect system value/i);

  const security = spawnSync(
    'systemd-analyze',
    ['security', '--offline=yes', '--no-pager', unitAt(join(dir, 'plain'), UNIT)],
    { encoding: 'utf8' },
  );
  const level = /Overall exposure level for herald\.service: ([0-9.]+) (\w+)/.exec(security.stdout);
  assert.ok(level, security.stdout + security.stderr);
  assert.ok(Number(level[1]) <= 2, `exposure ${level[1]} ${level[2]}`);

  assert.deepEqual(setting('User'), ['herald']);
  assert.deepEqual(setting('StateDirectory'), ['herald']);
  assert.deepEqual(setting('ProtectSystem'), ['strict']);
  assert.deepEqual(setting('PrivateTmp'), ['yes']);
  assert.deepEqual(setting('NoNewPrivileges'), ['yes']);
  assert.deepEqual(setting('CapabilityBoundingSet'), ['']);
  assert.deepEqual(setting('AmbientCapabilities'), ['']);
  assert.deepEqual(setting('Restart'), ['on-failure']);
  assert.deepEqual(setting('ExecReload'), ['/bin/kill -HUP $MAINPID']);
});

test('the unit’s command line loads the configuration file the install steps write', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-unit-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const etc = join(dir, 'etc');
  const state = join(dir, 'state');
  mkdirSync(etc);
  mkdirSync(state);
  const herald = (args: string[]) =>
    spawnSync(NODE, [join(ROOT, 'bin/herald.js'), ...args], { encoding: 'utf8', timeout: 30_000 });
  // mkdir -p /etc/herald && herald config print > /etc/herald/herald.toml
  const printed = herald(['config', 'print']);
  assert.equal(printed.status, 0, printed.stderr);
  writeFileSync(join(etc, 'herald.toml'), printed.stdout);
  // ExecStart's arguments, with the directories systemd passes; `config print` in place of `serve`.
  const [execStart] = setting('ExecStart');
  const args = execStart
    .split(' ')
    .slice(1)
    .map((a) => a.replace(/\$\{CONFIGURATION_DIRECTORY\}/, etc).replace(/\$\{STATE_DIRECTORY\}/, state));
  assert.equal(args[0], 'serve');
  const loaded = herald(['config', 'print', ...args.slice(1)]);
  assert.equal(loaded.status, 0, loaded.stderr);
  assert.match(loaded.stdout, new RegExp(`data_dir = "${state}"`));
});
