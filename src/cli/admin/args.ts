import { ConfigError, flagOptions } from '../../config/load.ts';

/** Options of the admin commands (everything else on the line is a config flag, as for serve). */
const ADMIN_OPTIONS: Record<string, 'string' | 'boolean'> = {
  json: 'boolean',
  role: 'string',
  email: 'string',
  invites: 'string',
  'can-leech': 'string',
  'hnr-immune': 'string',
  class: 'string',
  status: 'string',
  reason: 'string',
  search: 'string',
  category: 'string',
  name: 'string',
  restricted: 'string',
  freeleech: 'string',
  'download-factor': 'string',
  'upload-factor': 'string',
  member: 'string',
  group: 'string',
  torrent: 'string',
  reference: 'string',
  expires: 'string',
  days: 'string',
  note: 'string',
  limit: 'string',
  start: 'string',
  end: 'string',
  'double-upload': 'string',
  all: 'boolean',
};

interface Parsed {
  positionals: string[];
  opts: Record<string, string | boolean>;
  configArgs: string[];
}

/**
 * The command line after the command: positionals, admin options, and everything else as config
 * flags (as for serve).
 */
export function splitArgs(argv: string[]): Parsed {
  const configFlags = flagOptions();
  const positionals: string[] = [];
  const opts: Record<string, string | boolean> = {};
  const configArgs: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--') || a === '--') {
      positionals.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = a.slice(2, eq >= 0 ? eq : undefined);
    const inline = eq >= 0 ? a.slice(eq + 1) : undefined;
    const kind = ADMIN_OPTIONS[name];
    if (kind !== undefined) {
      if (kind === 'boolean') opts[name] = true;
      else {
        const v = inline ?? argv[++i];
        if (v === undefined) throw new ConfigError(`--${name} needs a value`);
        opts[name] = v;
      }
      continue;
    }
    const cf = configFlags[name];
    if (cf === undefined) throw new ConfigError(`unknown option --${name}`);
    configArgs.push(a);
    if (cf.type === 'string' && inline === undefined) {
      const v = argv[++i];
      if (v === undefined) throw new ConfigError(`--${name} needs a value`);
      configArgs.push(v);
    }
  }
  return { positionals, opts, configArgs };
}
