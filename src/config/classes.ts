/**
 * Member classes (issue #16), as the operator writes them in `member_classes`: one entry per
 * class, lowest first, each `NAME` or `NAME: key=value key=value` (pairs apart by spaces or `;`,
 * never commas: a list in an environment variable or flag is split at commas). The first class is where
 * every member starts (its thresholds, if any, are ignored); a member belongs to the highest class
 * whose thresholds all hold. Keys (all optional):
 * - thresholds: `days` (account age), `uploaded` (credited bytes; units KiB, MiB, GiB, TiB),
 *   `ratio` (credited, in percent: 105 = 1.05; nothing downloaded meets any ratio), `seed_hours`
 *   (seeding time over all torrents);
 * - what the class gives: `slots` (torrents leeched at once; 0 = no limit), `invites` (invites
 *   earned per invite period instead of `invites_per_period`), `upload_factor` and
 *   `download_factor` (percent, on top of the torrent's and the site's), `hnr_immune` (1 = never
 *   marked for a hit-and-run).
 */
export interface ClassDef {
  name: string;
  days: number;
  uploaded: number;
  ratioPercent: number;
  seedHours: number;
  slots: number;
  /** Invites per invite period; null = the site's `invites_per_period`. */
  invites: number | null;
  uploadFactor: number;
  downloadFactor: number;
  hnrImmune: boolean;
}

const UNITS: Record<string, number> = { '': 1, KIB: 1024, MIB: 1024 ** 2, GIB: 1024 ** 3, TIB: 1024 ** 4 };

/** Keys and their ranges (the byte key takes a unit). */
const KEYS: Record<string, { field: keyof ClassDef; max: number }> = {
  days: { field: 'days', max: 36500 },
  uploaded: { field: 'uploaded', max: 1e18 },
  ratio: { field: 'ratioPercent', max: 1_000_000 },
  seed_hours: { field: 'seedHours', max: 10_000_000 },
  slots: { field: 'slots', max: 100_000 },
  invites: { field: 'invites', max: 1000 },
  upload_factor: { field: 'uploadFactor', max: 10_000 },
  download_factor: { field: 'downloadFactor', max: 10_000 },
  hnr_immune: { field: 'hnrImmune', max: 1 },
};

/** Parses `member_classes`; throws an Error that says which entry and why. */
export function parseClasses(entries: readonly string[]): ClassDef[] {
  const out: ClassDef[] = [];
  for (const entry of entries) {
    const colon = entry.indexOf(':');
    const name = (colon >= 0 ? entry.slice(0, colon) : entry).trim();
    if (!/^[A-Za-z0-9][A-Za-z0-9 ._-]{0,31}$/.test(name))
      throw new Error(`"${entry}": a class name is 1 to 32 letters, digits, spaces, ".", "_" or "-"`);
    if (out.some((c) => c.name.toLowerCase() === name.toLowerCase()))
      throw new Error(`"${name}" is listed twice`);
    const c: ClassDef = {
      name,
      days: 0,
      uploaded: 0,
      ratioPercent: 0,
      seedHours: 0,
      slots: 0,
      invites: null,
      uploadFactor: 100,
      downloadFactor: 100,
      hnrImmune: false,
    };
    const rest = colon >= 0 ? entry.slice(colon + 1).trim() : '';
    for (const part of rest === '' ? [] : rest.split(/[\s;]+/).filter((p) => p !== '')) {
      const m = /^([a-z_]+)=([0-9]{1,15})([KMGT]iB)?$/i.exec(part);
      const key = m === null ? undefined : KEYS[m[1].toLowerCase()];
      if (m === null || key === undefined)
        throw new Error(
          `"${name}": "${part.trim()}" is not key=number (keys: ${Object.keys(KEYS).join(', ')})`,
        );
      if (m[3] !== undefined && key.field !== 'uploaded')
        throw new Error(`"${name}": only uploaded takes a unit (KiB, MiB, GiB, TiB)`);
      const n = Number(m[2]) * UNITS[(m[3] ?? '').toUpperCase()];
      if (n > key.max) throw new Error(`"${name}": ${m[1]} must be <= ${key.max}`);
      if (key.field === 'hnrImmune') c.hnrImmune = n === 1;
      else (c as unknown as Record<string, number>)[key.field] = n;
    }
    out.push(c);
  }
  return out;
}
