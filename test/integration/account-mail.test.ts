/**
 * Account mail against a real SMTP server on loopback (python3-aiosmtpd, test/helpers/smtp.ts),
 * over real HTTP, on every database engine (issue #16): an invitation mailed to the invitee, a
 * password reset by a mailed one-time link (the same answer for unknown names, the link works
 * once and ends every session), ratio-warning and hit-and-run notices from the schedulers, an
 * application decision; header injection through an address refused; a message that met a dead
 * server delivered once the server is up.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import nodemailer from 'nodemailer';
import { createLogger } from '../../src/core/log.ts';
import { createTracker, type Tracker } from '../../src/index.ts';
import { Mailer } from '../../src/mail/mailer.ts';
import { linkTokenHash, newLinkToken } from '../../src/web/portal/two-factor.ts';
import { engines } from '../helpers/db.ts';
import { PortalClient } from '../helpers/portal-client.ts';
import { markHitAndRun } from '../helpers/scheduler.ts';
import { freePort, type ReceivedMail, SmtpServer, smtpAvailable } from '../helpers/smtp.ts';

const available = smtpAvailable();
const skip = available === true ? false : available;
const PASSWORD = 'a long enough password';
const SITE = 'https://portal.example.org';

/** The path of the first link to this site in a mail's text part. */
function linkIn(m: ReceivedMail, prefix: string): string {
  const re = new RegExp(`${SITE.replace(/\./g, '\\.')}(${prefix}[^\\s]*)`);
  const hit = re.exec(m.text ?? '');
  assert.ok(hit, `no ${prefix} link in: ${m.text}`);
  return hit[1];
}

const register = (c: PortalClient, username: string, email: string, invite = '') =>
  c.post('/register', { invite, username, email, password: PASSWORD, password2: PASSWORD });

for (const engine of engines) {
  describe(`account mail (${engine.name})`, { skip }, () => {
    let smtp: SmtpServer;
    let tracker: Tracker;
    let drop: () => Promise<void>;
    let base: string;
    before(async () => {
      smtp = await SmtpServer.start();
      const db = await engine.create();
      drop = db.drop;
      tracker = createTracker({
        http: ['127.0.0.1:0'],
        udp: [],
        mode: 'private',
        databaseUrl: db.url,
        policyRefresh: 3600,
        logLevel: 'silent',
        applications: true,
        smtpUrl: `smtp://127.0.0.1:${smtp.port}`,
        mailFrom: 'Herald Test <tracker@example.org>',
        siteUrl: SITE,
        ratioWatchMinPercent: 100,
        ratioWatchGrace: 0,
        hnrSeedHours: 72,
      });
      await tracker.start();
      base = `http://127.0.0.1:${tracker.addresses().http[0].port}`;
    });
    after(async () => {
      await tracker?.stop();
      await drop?.();
      await smtp?.stop();
    });

    test('invitation, password reset by link, notices, application decision, header injection', async () => {
      const reg = tracker.registry();
      const admin = new PortalClient(base);
      await admin.get('/register');
      assert.equal((await register(admin, 'admin', '')).status, 303);
      assert.equal((await admin.login('admin', PASSWORD)).location, '/torrents');

      // Invitation by e-mail: the invitee gets the link, and it opens the registration form.
      await admin.get('/invites');
      const sent = await admin.post('/invites', { email: 'carol@example.org' });
      assert.equal(sent.status, 200);
      assert.match(sent.body, /Invitation mailed/);
      const inv = await smtp.next((m) => m.rcpt_tos.includes('carol@example.org'));
      assert.equal(inv.to, 'carol@example.org');
      assert.match(inv.subject, /^\[Herald\] You are invited$/);
      assert.match(inv.headers.find(([k]) => k === 'From')![1], /tracker@example\.org/);
      assert.ok(inv.html?.includes('/register?invite='));
      const carol = new PortalClient(base);
      const regPath = linkIn(inv, '/register');
      assert.equal((await carol.get(regPath)).status, 200);
      const code = new URL(regPath, SITE).searchParams.get('invite')!;
      assert.equal((await register(carol, 'carol', 'carol@example.org', code)).status, 303);
      assert.equal((await carol.login('carol', PASSWORD)).location, '/torrents');

      // Header injection: a line break in an address is refused by the forms ...
      await admin.get('/invites');
      assert.equal(
        (await admin.post('/invites', { email: 'x@example.org\r\nBcc: evil@example.org' })).status,
        400,
      );
      await carol.get('/me/security');
      assert.equal(
        (await carol.post('/me/email', { email: 'c@example.org\r\nBcc: evil@example.org' })).status,
        400,
      );
      // ... and by the mailer, for an address stored by other means.
      const dave = await reg.addMember({ username: 'dave' });
      await reg.db.kysely
        .updateTable('members')
        .set({ email: 'dave@example.org\r\nBcc: evil@example.org' })
        .where('id', '=', dave.id)
        .execute();

      // Password reset: one answer for a name that does not exist, one that has a bad address,
      // and one that has a good one; only the last gets mail.
      const anon = new PortalClient(base);
      await anon.get('/forgot');
      const answers: string[] = [];
      for (const who of ['nobody', 'dave', 'carol@example.org']) {
        const r = await anon.post('/forgot', { who });
        assert.equal(r.status, 200);
        answers.push(/role="status">([^<]*)</.exec(r.body)![1]);
      }
      assert.equal(new Set(answers).size, 1);
      const reset = await smtp.next(
        (m) => m.rcpt_tos.includes('carol@example.org') && /Password reset/.test(m.subject),
      );
      assert.match(reset.subject, /Password reset for carol$/);
      const resetPath = linkIn(reset, '/reset/');
      assert.equal(smtp.to('evil@example.org').length, 0);
      assert.ok(smtp.mails.every((m) => !m.headers.some(([k]) => k.toLowerCase() === 'bcc')));
      assert.ok(smtp.mails.every((m) => !m.rcpt_tos.some((t) => t.startsWith('dave'))));

      // The link: a form; mismatched passwords refused; then the password changes, carol's
      // sessions end, the new password logs in, and the link is spent.
      const page = await anon.get(resetPath);
      assert.equal(page.status, 200);
      assert.match(page.body, /carol/);
      assert.equal(
        (await anon.post(resetPath, { password: 'new password 1', password2: 'other password' })).status,
        400,
      );
      const done = await anon.post(resetPath, { password: 'new password 1', password2: 'new password 1' });
      assert.equal(done.status, 303);
      assert.equal(done.location, '/login?msg=reset');
      assert.equal((await carol.get('/torrents')).location, '/login');
      assert.equal((await new PortalClient(base).login('carol', PASSWORD)).status, 401);
      assert.equal((await carol.login('carol', 'new password 1')).location, '/torrents');
      assert.equal((await anon.get(resetPath)).status, 404);
      await anon.get('/forgot');
      assert.equal(
        (await anon.post(resetPath, { password: 'third password', password2: 'third password' })).status,
        404,
      );
      assert.equal((await anon.get('/reset/not-a-token')).status, 404);

      // Expiry, at its boundary (the database's clock is the caller's).
      const token = newLinkToken();
      const at = 1_900_000_000;
      const carolId = (await reg.member('carol')).id;
      await reg.accounts.createPasswordReset({
        memberId: carolId,
        tokenHash: linkTokenHash(token),
        expiresAt: at,
        by: null,
      });
      assert.equal((await reg.accounts.passwordReset(linkTokenHash(token), at - 1))?.id, carolId);
      assert.equal(await reg.accounts.passwordReset(linkTokenHash(token), at), undefined);
      assert.equal(await reg.accounts.usePasswordReset(linkTokenHash(token), at, 'x'), null);

      // Notices: ratio watch warns carol, the hit-and-run scheduler's mark reaches her too.
      await reg.db.kysely
        .updateTable('members')
        .set({ downloaded: 10 * 1024 ** 3, uploaded: 0 })
        .where('id', '=', carolId)
        .execute();
      await tracker.mailNotices!.run(); // sets the watermarks where they are
      assert.equal((await tracker.ratioWatch!.run()).warned, 1);
      const t = await reg.addTorrent({
        infoHash: 'ab'.repeat(20),
        infoHashV2: null,
        name: 'Some <b>Album</b>',
        size: 1000,
        fileCount: 1,
      });
      await markHitAndRun(reg, carolId, t.id, Math.floor(Date.now() / 1000));
      assert.deepEqual(await tracker.mailNotices!.run(), { ratio: 1, hnr: 1 });
      assert.deepEqual(await tracker.mailNotices!.run(), { ratio: 0, hnr: 0 }, 'each notice once');
      const warning = await smtp.next(
        (m) => m.rcpt_tos.includes('carol@example.org') && /Ratio warning/.test(m.subject),
      );
      assert.match(warning.text!, /your ratio is 0\.00, below the 1\.00/);
      const hnr = await smtp.next(
        (m) => m.rcpt_tos.includes('carol@example.org') && /Hit-and-run/.test(m.subject),
      );
      assert.match(hnr.text!, /"Some <b>Album<\/b>"/);
      assert.ok(hnr.html!.includes('Some &lt;b&gt;Album&lt;/b&gt;'));
      assert.equal(linkIn(hnr, '/torrent/'), `/torrent/${t.id}`);

      // An application's decision reaches the applicant.
      const applicant = new PortalClient(base);
      await applicant.get('/apply');
      const applied = await applicant.post('/apply', {
        username: 'erin',
        email: 'erin@example.org',
        body: 'I seed old radio plays and keep them seeded for years.',
      });
      assert.equal(applied.status, 303);
      const app = (await reg.accounts.listApplications('pending'))[0];
      await admin.get('/staff/applications');
      assert.equal((await admin.post(`/staff/applications/${app.id}`, { action: 'approve' })).status, 200);
      const decision = await smtp.next((m) => m.rcpt_tos.includes('erin@example.org'));
      assert.match(decision.subject, /approved/);
      assert.equal(linkIn(decision, '/apply/status/'), applied.location);
    });
  });
}

describe('mail retries', { skip }, () => {
  test('a message that met a dead SMTP server is delivered once the server is up', async () => {
    const port = await freePort();
    const mailer = new Mailer({
      transport: nodemailer.createTransport({ url: `smtp://127.0.0.1:${port}` }),
      from: 'tracker@example.org',
      logger: createLogger('silent'),
      backoffMs: 300,
    });
    assert.equal(
      mailer.send({ kind: 'test', to: 'a@example.org', subject: 'hello', text: 'hi', html: '<p>hi</p>' }),
      true,
    );
    // The first attempt is refused (nothing listens); then the server comes up on that port.
    while (mailer.counts.retried === 0) await new Promise((r) => setTimeout(r, 20));
    const smtp = await SmtpServer.start(port);
    try {
      await mailer.idle();
      assert.equal(mailer.counts.sent, 1);
      assert.equal(smtp.to('a@example.org').length, 1);
    } finally {
      mailer.stop();
      await smtp.stop();
    }
  });
});
