import { stringify } from 'smol-toml';
import { ADMIN_HELP } from '../cli/admin.ts';
import { BACKUP_HELP } from '../cli/backup.ts';
import { envName, flagName, type HeraldConfig, SCHEMA, tomlName } from './schema.ts';

export type Command =
  | { command: 'serve'; args: string[] }
  | { command: 'config-print'; args: string[] }
  | { command: 'help'; topic?: string; args: string[] }
  | { command: 'version'; args: string[] };

/** Splits `herald <command> [flags]`. Flags are parsed (strictly) by `loadConfig`. */
export function parseCommandLine(argv: string[]): Command {
  const [first, ...rest] = argv;
  if (first === undefined || first === 'help' || first === '--help' || first === '-h')
    return { command: 'help', topic: rest[0], args: [] };
  if (first === '--version' || first === '-v' || first === 'version') return { command: 'version', args: [] };
  const wantsHelp = rest.includes('--help') || rest.includes('-h');
  if (first === 'serve')
    return wantsHelp ? { command: 'help', topic: 'serve', args: [] } : { command: 'serve', args: rest };
  if (first === 'config') {
    if (rest[0] === 'print')
      return wantsHelp
        ? { command: 'help', topic: 'config', args: [] }
        : { command: 'config-print', args: rest.slice(1) };
    throw new Error(`herald: unknown config command "${rest[0] ?? ''}" (try: herald config print)`);
  }
  throw new Error(`herald: unknown command "${first}"`);
}

function fmtDefault(v: unknown): string {
  if (Array.isArray(v)) return v.length ? v.join(', ') : '(none)';
  if (v === null) return '(none)';
  return String(v);
}

/** Help text generated from the schema: every flag, its doc, default and environment variable. */
export function helpText(topic?: string): string {
  const lines: string[] = [];
  if (topic === 'serve' || topic === 'config') {
    lines.push(
      topic === 'serve'
        ? 'Usage: herald serve [flags]\n\nStart the tracker. Settings come from defaults < TOML file < HERALD_* environment < flags.\n'
        : 'Usage: herald config print [flags]\n\nPrint the effective configuration as a documented TOML file.\n',
      'Flags:',
    );
    for (const d of SCHEMA) {
      const flag =
        d.kind === 'bool' ? `--${flagName(d)} / --no-${flagName(d)}` : `--${flagName(d)} ${d.arg ?? 'VALUE'}`;
      lines.push(`  ${flag}`);
      lines.push(`      ${d.doc}`);
      lines.push(`      default: ${fmtDefault(d.default)}; TOML: ${tomlName(d)}; env: ${envName(d)}`);
    }
    lines.push('  -h, --help', '      Show this help');
    return `${lines.join('\n')}\n`;
  }
  return [
    'Herald: a BitTorrent tracker (HTTP, HTTPS, UDP; IPv4 and IPv6)',
    '',
    'Usage: herald <command> [flags]',
    '',
    'Commands:',
    '  serve          start the tracker (herald serve --help lists every flag)',
    '  config print   print the effective configuration as documented TOML',
    '  help [serve]   show help',
    '  --version      print the version',
    '',
    BACKUP_HELP,
    ADMIN_HELP,
  ].join('\n');
}

/** The configuration as TOML with each key's doc line as a comment; loading it gives it back. */
export function renderConfigToml(c: HeraldConfig): string {
  const out: string[] = ['# Herald configuration. Every key, with its documentation.', ''];
  for (const d of SCHEMA) {
    if (d.key === 'config') continue;
    const v = c[d.key];
    out.push(`# ${d.doc}`);
    if (v === null) out.push(`# ${tomlName(d)} = ""`);
    else out.push(stringify({ [tomlName(d)]: v }).trim());
    out.push('');
  }
  return out.join('\n');
}
