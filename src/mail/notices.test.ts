import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createLogger } from '../core/log.ts';
import { openDatabase } from '../db/connect.ts';
import { Registry } from '../db/registry.ts';
import { Mailer } from './mailer.ts';
import { siteOf } from './messages.ts';
import { MailNotices } from './notices.ts';

test('ratio warnings: more members warned in one scheduler run than a batch (500) are each mailed once', async () => {
  const db = await openDatabase('sqlite::memory:', '');
  try {
    const reg = new Registry(db);
    const logger = createLogger('silent');
    const sent: string[] = [];
    const mailer = new Mailer({
      transport: { sendMail: async (m) => void sent.push(m.to) },
      from: 'h@example.org',
      logger,
      maxQueue: 10_000,
    });
    const notices = new MailNotices({
      registry: () => reg,
      mailer,
      site: siteOf('Herald', 'https://tracker.example.org'),
      ratio: { minPercent: 100, days: 14 },
      logger,
    });
    assert.deepEqual(await notices.run(), { ratio: 0, hnr: 0 }); // the watermarks, where they are
    // One ratio-watch run warns 520 members: every one gets the same warning time.
    const ids: number[] = [];
    for (let i = 0; i < 520; i++)
      ids.push((await reg.addMember({ username: `m${i}`, email: `m${i}@example.org` })).id);
    const at = Math.floor(Date.now() / 1000);
    await db.kysely.updateTable('members').set({ ratio_warned_at: at }).where('id', 'in', ids).execute();
    let mailed = 0;
    for (let run = 0; run < 3; run++) mailed += (await notices.run()).ratio;
    assert.equal(mailed, 520);
    await mailer.idle();
    assert.equal(new Set(sent).size, 520);
    assert.equal(sent.length, 520);
  } finally {
    await db.close();
  }
});
