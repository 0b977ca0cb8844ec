/**
 * `herald` commands given the wrong file: each exits non-zero with one line that names it, never
 * a stack trace, and never reads a device or a huge file to the end (the process would run out
 * of memory first).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { runHerald } from '../e2e/tracker-process.ts';

const ROOT = new URL('../../', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'herald-cli-bad-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function oneLine(r: { status: number; stdout: string; stderr: string }, re: RegExp, what: string) {
  assert.notEqual(r.status, 0, `${what}: exit code`);
  assert.ok(r.status > 0, `${what}: exited by itself, not killed (${r.status}): ${r.stderr.slice(0, 300)}`);
  assert.match(r.stderr, re, what);
  assert.equal(r.stderr.trim().split('\n').length, 1, `${what}: one line, not a stack trace:\n${r.stderr}`);
}

test('torrent add of a device or a file far over max_torrent_bytes: refused in one line', () => {
  oneLine(
    runHerald(['torrent', 'add', '/dev/zero', '--data-dir', dir]),
    /\/dev\/zero.*larger than/,
    '/dev/zero',
  );
});

test('member password from a standard input that never ends: refused in one line', () => {
  assert.equal(runHerald(['member', 'add', 'carol', '--data-dir', dir]).status, 0);
  const r = spawnSync(
    join(ROOT, 'node_modules/.bin/node'),
    [join(ROOT, 'bin/herald.js'), 'member', 'password', 'carol', '--data-dir', dir],
    { encoding: 'utf8', timeout: 30_000, stdio: [openSync('/dev/zero', 'r'), 'pipe', 'pipe'] },
  );
  oneLine({ status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr }, /password: .*larger than/, 'stdin');
});

test('backup to a path that cannot be written, restore of a directory: one line each', () => {
  oneLine(runHerald(['backup', '/proc/none/x.db', '--data-dir', dir]), /^herald backup: /, 'backup');
  oneLine(runHerald(['restore', dir, '--data-dir', dir]), /^herald restore: /, 'restore');
});
