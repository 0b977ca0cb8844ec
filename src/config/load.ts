import { existsSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parse as parseToml } from 'smol-toml';
import { readBounded } from '../core/read-bounded.ts';
import {
  ConfigError,
  coerce,
  defaults,
  envName,
  flagName,
  type HeraldConfig,
  type KeyDef,
  SCHEMA,
  tomlName,
  validateRelations,
} from './schema.ts';

export { ConfigError } from './schema.ts';

const BY_TOML = new Map(SCHEMA.map((d) => [tomlName(d), d]));
const BY_ENV = new Map(SCHEMA.map((d) => [envName(d), d]));

function isList(d: KeyDef): boolean {
  return d.kind === 'listen-list' || d.kind === 'string-list' || d.kind === 'url-list';
}

/** node:util parseArgs options generated from the schema. */
export function flagOptions(): Record<string, { type: 'string' | 'boolean'; multiple?: boolean }> {
  const opts: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }> = {};
  for (const d of SCHEMA) {
    if (d.kind === 'bool') {
      opts[flagName(d)] = { type: 'boolean' };
      opts[`no-${flagName(d)}`] = { type: 'boolean' };
    } else opts[flagName(d)] = { type: 'string', multiple: isList(d) };
  }
  return opts;
}

/**
 * Loads the configuration: defaults < TOML file < HERALD_* environment < flags (flags win).
 * Throws ConfigError naming the key and the source of any bad value, unknown TOML key,
 * unknown HERALD_* variable or unknown flag.
 */
export function loadConfig(input: {
  argv: string[];
  env: Record<string, string | undefined>;
  cwd?: string;
}): HeraldConfig {
  const cwd = input.cwd ?? process.cwd();
  let flags: Record<string, unknown>;
  try {
    flags = parseArgs({
      args: input.argv,
      options: flagOptions(),
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    throw new ConfigError(`config: ${err instanceof Error ? err.message : String(err)}`);
  }
  const fromFlags = new Map<KeyDef, unknown>();
  for (const d of SCHEMA) {
    const v = flags[flagName(d)];
    if (v !== undefined) fromFlags.set(d, isList(d) ? (v as string[]).flatMap((x) => x.split(',')) : v);
    if (d.kind === 'bool' && flags[`no-${flagName(d)}`]) fromFlags.set(d, false);
  }
  const fromEnv = new Map<KeyDef, string>();
  for (const [name, value] of Object.entries(input.env)) {
    if (!name.startsWith('HERALD_') || value === undefined) continue;
    const d = BY_ENV.get(name);
    if (d === undefined) {
      // Variables the test harness or later issues use are not config keys.
      if (name.startsWith('HERALD_E2E_') || name.startsWith('HERALD_TEST_')) continue;
      // What a `--workers` primary tells its worker processes (src/cluster/primary.ts).
      if (name === 'HERALD_WORKER') continue;
      throw new ConfigError(`config: unknown environment variable ${name}`);
    }
    fromEnv.set(d, value);
  }

  const config = defaults() as unknown as Record<string, unknown>;
  const set = (d: KeyDef, raw: unknown, source: string) => {
    config[d.key] = coerce(d, raw, source);
  };
  // The data dir and config file must be known before the file is read.
  const dataDirDef = SCHEMA.find((d) => d.key === 'dataDir')!;
  const configDef = SCHEMA.find((d) => d.key === 'config')!;
  const pick = (d: KeyDef) =>
    fromFlags.has(d)
      ? { v: fromFlags.get(d), s: `--${flagName(d)}` }
      : fromEnv.has(d)
        ? { v: fromEnv.get(d), s: envName(d) }
        : null;
  const cfgPick = pick(configDef);
  let file: string | null = null;
  if (cfgPick !== null) {
    file = coerce(configDef, cfgPick.v, cfgPick.s) as string | null;
    if (file !== null && !existsSync(resolve(cwd, file)))
      throw new ConfigError(`config: config: file not found: ${file} [from ${cfgPick.s}]`);
  } else {
    const ddPick = pick(dataDirDef);
    const dd = ddPick ? (coerce(dataDirDef, ddPick.v, ddPick.s) as string) : (dataDirDef.default as string);
    const candidate = join(resolve(cwd, dd), 'herald.toml');
    if (existsSync(candidate)) file = candidate;
  }
  if (file !== null) {
    const path = isAbsolute(file) ? file : resolve(cwd, file);
    let table: Record<string, unknown>;
    try {
      table = parseToml(readBounded(path, MAX_CONFIG_BYTES).toString('utf8')) as Record<string, unknown>;
    } catch (err) {
      throw new ConfigError(
        `config: ${file}: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`,
      );
    }
    for (const [k, v] of Object.entries(table)) {
      const d = BY_TOML.get(k);
      if (d === undefined || d.key === 'config')
        throw new ConfigError(`config: unknown key "${k}" [from ${file}]`);
      set(d, v, file);
    }
    config.config = file;
  }
  for (const [d, v] of fromEnv) set(d, v, envName(d));
  for (const [d, v] of fromFlags) set(d, v, `--${flagName(d)}`);
  const c = config as unknown as HeraldConfig;
  validateRelations(c);
  return c;
}

/**
 * Completes and validates a partial configuration given in code (the library API). Unknown keys
 * and bad values throw ConfigError as the CLI does.
 */
export function resolveConfig(partial: Partial<HeraldConfig>): HeraldConfig {
  const config = defaults() as unknown as Record<string, unknown>;
  const byKey = new Map(SCHEMA.map((d) => [d.key as string, d]));
  for (const [k, v] of Object.entries(partial)) {
    if (v === undefined) continue;
    const d = byKey.get(k);
    if (d === undefined) throw new ConfigError(`config: unknown key "${k}" [from createTracker]`);
    config[k] = coerce(d, v, 'createTracker');
  }
  const c = config as unknown as HeraldConfig;
  validateRelations(c);
  return c;
}

/** No configuration is longer; a bigger file (or a device such as /dev/zero) is the wrong file. */
const MAX_CONFIG_BYTES = 1024 * 1024;
