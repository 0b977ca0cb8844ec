/**
 * Prints the README's configuration reference table from the schema (the one source of truth):
 *   node scripts/config-table.ts
 * test/docs.test.ts checks that the README lists every key.
 */
import { envName, flagName, SCHEMA, tomlName } from '../src/config/schema.ts';

const fmt = (v: unknown) =>
  Array.isArray(v) ? (v.length ? v.map((x) => `\`${x}\``).join(', ') : '(none)') : v === null || v === '' ? '(none)' : `\`${v}\``;
const rows = ['| TOML key | flag | environment | default | meaning |', '| --- | --- | --- | --- | --- |'];
for (const d of SCHEMA) {
  const flag = d.kind === 'bool' ? `\`--${flagName(d)}\` / \`--no-${flagName(d)}\`` : `\`--${flagName(d)} ${d.arg ?? 'VALUE'}\``;
  rows.push(`| \`${tomlName(d)}\` | ${flag} | \`${envName(d)}\` | ${fmt(d.default)} | ${d.doc.replace(/\|/g, '\\|')} |`);
}
process.stdout.write(`${rows.join('\n')}\n`);
