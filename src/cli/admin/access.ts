/**
 * Who may announce what: `herald list` (allow and deny lists of info hashes), `herald client` (the
 * client whitelist), `herald group` and `herald grant` (restricted torrents).
 */
import { RegistryError } from '../../db/registry.ts';
import { type AdminCommand, type AdminCommands, intOpt } from './context.ts';

const hashList: AdminCommand = async ({ reg, opts, rest, sub, print }) => {
  const list = sub as 'allow' | 'deny';
  const [verb, hash] = rest;
  if (verb === 'add' && hash) {
    const h = await reg.addToList(list, hash, (opts.note as string | undefined) ?? null);
    print({ list, info_hash: h }, () => `added ${h} to the ${list} list`);
  } else if (verb === 'remove' && hash) {
    const removed = await reg.removeFromList(list, hash);
    print({ list, removed }, () =>
      removed ? `removed ${hash} from the ${list} list` : `${hash} was not on the ${list} list`,
    );
  } else if (verb === 'show' || verb === undefined) {
    const rows = await reg.listHashes(list);
    print(rows, () => rows.map((r) => `${r.info_hash}${r.note ? `\t${r.note}` : ''}`).join('\n'));
  } else
    throw new RegistryError(`usage: herald list ${list} add|remove INFO_HASH | herald list ${list} show`);
};

/** `herald list …` */
export const listCommands: AdminCommands = {
  allow: hashList,
  deny: hashList,
};

/** `herald client …` */
export const clientCommands: AdminCommands = {
  add: async ({ reg, opts, rest, print, need }) => {
    need(1, 'add PREFIX');
    await reg.addClientPrefix(rest[0], (opts.note as string | undefined) ?? null);
    print({ prefix: rest[0] }, () => `allowed clients now include ${rest[0]}`);
  },
  remove: async ({ reg, rest, print, need }) => {
    need(1, 'remove PREFIX');
    const removed = await reg.removeClientPrefix(rest[0]);
    print({ prefix: rest[0], removed }, () => (removed ? `removed ${rest[0]}` : `${rest[0]} was not listed`));
  },
  list: async ({ reg, print }) => {
    const rows = await reg.listClientPrefixes();
    print(rows, () =>
      rows.length ? rows.map((r) => r.prefix).join('\n') : '(empty: every client is allowed)',
    );
  },
};

/** `herald group …` */
export const groupCommands: AdminCommands = {
  add: async ({ reg, rest, print, need }) => {
    need(1, 'add NAME');
    const g = await reg.addGroup(rest[0]);
    print(g, () => `group #${g.id} ${g.name}`);
  },
  list: async ({ reg, print }) => {
    const rows = await reg.listGroups();
    print(rows, () => rows.map((g) => `#${g.id}\t${g.name}`).join('\n'));
  },
  'add-member': async ({ reg, rest, print, need }) => {
    need(2, 'add-member GROUP MEMBER');
    await reg.addToGroup(rest[0], rest[1]);
    print({ group: rest[0], member: rest[1] }, () => `${rest[1]} is in ${rest[0]}`);
  },
  'remove-member': async ({ reg, rest, print, need }) => {
    need(2, 'remove-member GROUP MEMBER');
    const removed = await reg.removeFromGroup(rest[0], rest[1]);
    print({ removed }, () => (removed ? `${rest[1]} left ${rest[0]}` : `${rest[1]} was not in ${rest[0]}`));
  },
};

/** `herald grant …` */
export const grantCommands: AdminCommands = {
  add: async ({ reg, opts, rest, print, need }) => {
    need(1, 'add TORRENT (--member M | --group G)');
    const g = await reg.grant({
      torrent: rest[0],
      member: (opts.member as string | undefined) ?? null,
      group: (opts.group as string | undefined) ?? null,
      reference: (opts.reference as string | undefined) ?? null,
      expiresAt: intOpt(opts.expires, 'expires') ?? null,
    });
    print(
      g,
      () =>
        `grant #${g.id}: torrent #${g.torrent_id} to ${g.member_id ? `member #${g.member_id}` : `group #${g.group_id}`}`,
    );
  },
  remove: async ({ reg, opts, rest, print, need }) => {
    need(1, 'remove GRANT_ID | remove TORRENT (--member M | --group G)');
    const n =
      opts.member === undefined && opts.group === undefined
        ? await reg.revoke({ id: intOpt(rest[0], 'grant id') })
        : await reg.revoke({
            torrent: rest[0],
            member: opts.member as string | undefined,
            group: opts.group as string | undefined,
          });
    print({ revoked: n }, () => `${n} grant(s) revoked`);
  },
  list: async ({ reg, opts, print }) => {
    const rows = await reg.listGrants({
      torrent: opts.torrent ? (await reg.torrent(opts.torrent as string)).id : undefined,
      member: opts.member ? (await reg.member(opts.member as string)).id : undefined,
    });
    print(rows, () =>
      rows
        .map(
          (g) =>
            `#${g.id}\ttorrent #${g.torrent_id}\t${g.member_id ? `member #${g.member_id}` : `group #${g.group_id}`}\t${g.reference ?? ''}`,
        )
        .join('\n'),
    );
  },
};
