/** Docs move with the code: the README documents every configuration key. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { envName, flagName, SCHEMA, tomlName } from '../src/config/schema.ts';

test('README lists every configuration key with its flag and environment variable', () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  for (const d of SCHEMA) {
    assert.ok(readme.includes(`\`${tomlName(d)}\``), tomlName(d));
    assert.ok(readme.includes(`--${flagName(d)}`), flagName(d));
    assert.ok(readme.includes(envName(d)), envName(d));
  }
});
