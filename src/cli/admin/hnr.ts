import type { HitAndRunView } from '../../db/hit-and-runs.ts';
import { RegistryError } from '../../db/registry.ts';
import { HNR_STATUSES, type HnrStatus } from '../../db/schema.ts';
import { hnrRules, hnrThreshold } from '../../policy/hit-and-run.ts';
import { type AdminCommands, intOpt } from './context.ts';

/** One hit-and-run on one line. */
function hnrLine(h: HitAndRunView): string {
  const day = (t: number) => new Date(t * 1000).toISOString().slice(0, 10);
  return `${h.status}  ${h.username}  "${h.torrent_name}"  snatched ${day(h.snatched_at)}  marked ${day(h.marked_at)}  seeded ${Math.floor(h.seed_time_now / 3600)} h${h.note !== null ? `  note: ${h.note}` : ''}`;
}

/** `herald hnr …`: hit-and-runs. */
export const hnrCommands: AdminCommands = {
  list: async ({ reg, opts, print }) => {
    const status = opts.status as string | undefined;
    if (status !== undefined && !(HNR_STATUSES as readonly string[]).includes(status))
      throw new RegistryError(`--status: one of ${HNR_STATUSES.join(', ')}`);
    const list = await reg.hnr.list({
      member: opts.member !== undefined ? (await reg.member(String(opts.member))).id : undefined,
      status: status as HnrStatus | undefined,
      limit: intOpt(opts.limit, 'limit', 100000) ?? 100,
    });
    print(list, () =>
      list.length === 0 ? '(no hit-and-runs)' : list.map((h) => `#${h.id} ${hnrLine(h)}`).join('\n'),
    );
  },
  forgive: async ({ reg, opts, rest, config, print, need }) => {
    need(1, 'forgive ID [--note TEXT]');
    const id = intOpt(rest[0], 'ID', 2 ** 31);
    const h = await reg.hnr.forgive(id ?? 0, {
      by: null,
      note: (opts.note as string | undefined) ?? null,
      max: hnrThreshold(hnrRules(config)),
      at: Math.floor(Date.now() / 1000),
    });
    print(h, () => `#${h.id} ${hnrLine(h)}`);
  },
};
