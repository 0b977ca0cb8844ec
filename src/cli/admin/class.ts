import type { AdminCommands } from './context.ts';

/** `herald class …`: member classes. */
export const classCommands: AdminCommands = {
  list: async ({ reg, print, classes }) => {
    const counts = await reg.classes.counts();
    const list = classes.map((c, i) => ({
      ...c,
      members: (counts.get(c.name) ?? 0) + (i === 0 ? (counts.get(null) ?? 0) : 0),
    }));
    print(list, () =>
      list.length === 0
        ? '(no member classes: set member_classes)'
        : list
            .map(
              (c) =>
                `${c.name}  members ${c.members}  days ${c.days} uploaded ${c.uploaded} ratio ${c.ratioPercent}% seed ${c.seedHours} h  slots ${c.slots || 'any'}  factors up ${c.uploadFactor}% down ${c.downloadFactor}%${c.invites !== null ? `  invites ${c.invites}` : ''}${c.hnrImmune ? '  hit-and-run immune' : ''}`,
            )
            .join('\n'),
    );
  },
  history: async ({ reg, rest, print, need }) => {
    need(1, 'history MEMBER');
    const h = await reg.classes.history((await reg.member(rest[0])).id);
    print(h, () =>
      h.length === 0
        ? '(no class changes)'
        : h
            .map(
              (r) =>
                `${new Date(r.at * 1000).toISOString()}  ${r.from_class ?? '(first)'} -> ${r.to_class}  ${r.reason}`,
            )
            .join('\n'),
    );
  },
};
