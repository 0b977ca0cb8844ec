import type { ClassDef } from '../../config/classes.ts';
import type { HeraldConfig } from '../../config/schema.ts';
import { type Registry, RegistryError } from '../../db/registry.ts';

/** What every admin command is given (src/cli/admin.ts makes it once per run). */
export interface AdminContext {
  /** The command (`member`, `torrent`, …) and its sub-command (`add`, `list`, …). */
  command: string;
  sub: string;
  /** The positionals after the sub-command. */
  rest: string[];
  /** The admin options given (`--json`, `--role`, …). */
  opts: Record<string, string | boolean>;
  config: HeraldConfig;
  reg: Registry;
  /** `--json`: results are printed as JSON. */
  json: boolean;
  out: (s: string) => void;
  /** Prints `value` as JSON with `--json`, else `text()`. */
  print: (value: unknown, text: () => string) => void;
  /** Refuses with `usage: herald <command> <usage>` unless `n` positionals follow the sub-command. */
  need: (n: number, usage: string) => void;
  /** Base URLs of the announce URLs printed. */
  urls: string[];
  /** The configured member classes. */
  classes: ClassDef[];
}

export type AdminCommand = (c: AdminContext) => Promise<void>;
/** One command's sub-commands, by name. */
export type AdminCommands = Record<string, AdminCommand>;

export const yes = (v: string | boolean | undefined, name: string): boolean | undefined => {
  if (v === undefined) return undefined;
  if (v === true || ['yes', 'on', 'true', '1'].includes(String(v))) return true;
  if (['no', 'off', 'false', '0'].includes(String(v))) return false;
  throw new RegistryError(`--${name}: yes or no`);
};
export const intOpt = (v: string | boolean | undefined, name: string, max = 1e12): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > max) throw new RegistryError(`--${name}: an integer 0..${max}`);
  return n;
};

/** `--start`/`--end`: unix seconds or an ISO 8601 date and time. */
export const timeOpt = (v: string | boolean | undefined, name: string): number | undefined => {
  if (v === undefined) return undefined;
  const t = String(v);
  if (/^[0-9]{1,11}$/.test(t)) return Number(t);
  const ms = /^[0-9]{4}-[0-9]{2}-[0-9]{2}/.test(t) ? Date.parse(t) : Number.NaN;
  if (Number.isNaN(ms))
    throw new RegistryError(`--${name}: unix seconds or an ISO 8601 time such as 2026-12-24T18:00Z`);
  return Math.floor(ms / 1000);
};

export const utc = (t: number) => `${new Date(t * 1000).toISOString().slice(0, 16).replace('T', ' ')} UTC`;
