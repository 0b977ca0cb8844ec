import { readBounded } from '../../core/read-bounded.ts';
import { RegistryError } from '../../db/registry.ts';
import { type AdminCommands, intOpt, yes } from './context.ts';

/** `herald torrent …`: registered torrents. */
export const torrentCommands: AdminCommands = {
  add: async ({ reg, opts, rest, config, print, need, out, json }) => {
    need(1, 'add FILE.torrent');
    let bytes: Buffer;
    try {
      bytes = readBounded(rest[0], config.maxTorrentBytes);
    } catch (err) {
      throw new RegistryError(`cannot read ${rest[0]}: ${(err as Error).message} (max_torrent_bytes)`);
    }
    const free = yes(opts.freeleech, 'freeleech');
    const t = await reg.addTorrentFile(bytes, {
      category: (opts.category as string | undefined) ?? null,
      restricted: yes(opts.restricted, 'restricted') ?? false,
      downloadFactor: free ? 0 : intOpt(opts['download-factor'], 'download-factor', 10000),
      uploadFactor: intOpt(opts['upload-factor'], 'upload-factor', 10000),
      name: opts.name as string | undefined,
    });
    if (config.mode === 'private' && !t.private && !json)
      out('warning: this torrent has no private flag: clients may also use DHT and PEX with it\n');
    print(
      t,
      () =>
        `#${t.id} ${t.name}\n  info hash    ${t.info_hash ?? '-'}\n  info hash v2 ${t.info_hash_v2 ?? '-'}`,
    );
  },
  list: async ({ reg, opts, print }) => {
    const list = await reg.listTorrents({
      search: opts.search as string | undefined,
      limit: intOpt(opts.limit, 'limit', 100000) ?? 1000,
    });
    print(list, () =>
      list
        .map(
          (t) =>
            `#${t.id}\t${t.info_hash ?? t.info_hash_v2?.slice(0, 40)}\t${t.size}\t${t.snatches}\t${t.name}`,
        )
        .join('\n'),
    );
  },
  show: async ({ reg, rest, print, need }) => {
    need(1, 'show TORRENT');
    const t = await reg.torrent(rest[0]);
    print(t, () =>
      Object.entries(t)
        .map(([k, v]) => `${k.padEnd(16)} ${v ?? '-'}`)
        .join('\n'),
    );
  },
  remove: async ({ reg, rest, print, need }) => {
    need(1, 'remove TORRENT');
    const t = await reg.removeTorrent(rest[0]);
    print(t, () => `removed #${t.id} ${t.name}`);
  },
  set: async ({ reg, opts, rest, print, need }) => {
    need(
      1,
      'set TORRENT [--freeleech yes|no] [--restricted yes|no] [--download-factor PCT] [--upload-factor PCT]',
    );
    const free = yes(opts.freeleech, 'freeleech');
    const t = await reg.updateTorrent(rest[0], {
      restricted: yes(opts.restricted, 'restricted'),
      downloadFactor:
        free !== undefined ? (free ? 0 : 100) : intOpt(opts['download-factor'], 'download-factor', 10000),
      uploadFactor: intOpt(opts['upload-factor'], 'upload-factor', 10000),
      category: opts.category as string | undefined,
      name: opts.name as string | undefined,
    });
    print(
      t,
      () =>
        `#${t.id} ${t.name}: download ${t.download_factor}%, upload ${t.upload_factor}%, restricted ${t.restricted ? 'yes' : 'no'}`,
    );
  },
};
