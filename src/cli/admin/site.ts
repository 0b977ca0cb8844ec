import { RegistryError } from '../../db/registry.ts';
import { type AdminCommands, intOpt } from './context.ts';

/** `herald site …`: site-wide figures and factors. */
export const siteCommands: AdminCommands = {
  show: async ({ reg, print }) => {
    const s = {
      site_download_factor: Number((await reg.setting('site_download_factor')) ?? 100),
      site_upload_factor: Number((await reg.setting('site_upload_factor')) ?? 100),
      ...(await reg.counts()),
    };
    print(s, () =>
      Object.entries(s)
        .map(([k, v]) => `${k} ${v}`)
        .join('\n'),
    );
  },
  set: async ({ reg, rest, print, need }) => {
    need(2, 'set download_factor|upload_factor PCT');
    const key = rest[0].replace(/^site_/, '');
    if (key !== 'download_factor' && key !== 'upload_factor')
      throw new RegistryError('site set: download_factor or upload_factor');
    const v = intOpt(rest[1], key, 10000) ?? 100;
    await reg.setSetting(`site_${key}`, String(v));
    print({ [`site_${key}`]: v }, () => `site ${key} = ${v}%`);
  },
};
