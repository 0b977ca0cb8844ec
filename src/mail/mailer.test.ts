import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createLogger } from '../core/log.ts';
import { Mailer, type MailMessage, type MailTransport, oneLine, plainAddress } from './mailer.ts';
import { invitationMail, resetMail, siteOf } from './messages.ts';

const logger = createLogger('silent');
const msg = (to = 'a@example.org', subject = 'hi'): MailMessage => ({
  kind: 'test',
  to,
  subject,
  text: 'text',
  html: '<p>html</p>',
});

/** A transport that fails its first `failures` sends, then records. */
function transport(failures = 0) {
  const sent: { to: string; subject: string }[] = [];
  let calls = 0;
  const t: MailTransport = {
    async sendMail(m) {
      calls++;
      if (calls <= failures) throw new Error('421 try later');
      sent.push({ to: m.to, subject: m.subject });
    },
  };
  return { t, sent, calls: () => calls };
}

test('send queues and returns at once; messages leave one at a time, in order', async () => {
  const { t, sent } = transport();
  const m = new Mailer({ transport: t, from: 'Herald <h@example.org>', logger });
  assert.equal(m.send(msg('a@example.org')), true);
  assert.equal(m.send(msg('b@example.org')), true);
  assert.equal(m.pending, 2);
  await m.idle();
  assert.deepEqual(
    sent.map((s) => s.to),
    ['a@example.org', 'b@example.org'],
  );
  assert.equal(m.counts.sent, 2);
});

test('a failed message is retried with backoff and given up after maxAttempts', async () => {
  const a = transport(2);
  const m = new Mailer({ transport: a.t, from: 'h@example.org', logger, backoffMs: 5, maxAttempts: 5 });
  m.send(msg());
  await m.idle();
  assert.equal(a.calls(), 3);
  assert.equal(m.counts.sent, 1);
  const b = transport(100);
  const m2 = new Mailer({ transport: b.t, from: 'h@example.org', logger, backoffMs: 1, maxAttempts: 3 });
  m2.send(msg());
  await m2.idle();
  assert.equal(b.calls(), 3);
  assert.equal(m2.counts.failed, 1);
  assert.equal(m2.pending, 0);
});

test('the queue is bounded: beyond maxQueue, send refuses', async () => {
  const never: MailTransport = { sendMail: () => new Promise(() => {}) };
  const m = new Mailer({ transport: never, from: 'h@example.org', logger, maxQueue: 3 });
  let accepted = 0;
  for (let i = 0; i < 10; i++) if (m.send(msg())) accepted++;
  // One in flight, three waiting.
  assert.equal(accepted, 4);
  assert.equal(m.counts.dropped, 6);
  m.stop();
  assert.equal(m.send(msg()), false);
});

test('header injection: a recipient or subject with a line break, or a list of addresses, is refused', () => {
  const { t } = transport();
  const m = new Mailer({ transport: t, from: 'h@example.org', logger });
  for (const to of [
    'a@example.org\r\nBcc: evil@example.org',
    'a@example.org\nBcc: evil@example.org',
    'a@example.org, evil@example.org',
    'Evil <evil@example.org>',
    'a@example.org\u0000',
    '',
    'no-at-sign',
  ])
    assert.equal(m.send(msg(to)), false, JSON.stringify(to));
  assert.equal(m.send(msg('a@example.org', 'hi\r\nBcc: evil@example.org')), false);
  assert.equal(m.counts.refused, 8);
  m.stop();
  assert.equal(plainAddress(' a.b+c@example.org '), 'a.b+c@example.org');
  assert.ok(!oneLine('a\rb'));
});

test('mails carry the link and escape what people typed in the HTML part', () => {
  const site = siteOf('Demo\r\nBcc: x@example.org', 'https://t.example.org/');
  const inv = invitationMail(site, 'a@example.org', {
    inviter: '<b>bob</b>',
    code: 'CODE_1',
    expiresAt: 1_800_000_000,
  });
  assert.ok(oneLine(inv.subject), inv.subject);
  assert.match(inv.text, /https:\/\/t\.example\.org\/register\?invite=CODE_1/);
  assert.ok(inv.html.includes('&lt;b&gt;bob&lt;/b&gt;'));
  assert.ok(!inv.html.includes('<b>bob'));
  const r = resetMail(site, 'a@example.org', { username: 'alice', token: 'T', minutes: 60 });
  assert.match(r.text, /https:\/\/t\.example\.org\/reset\/T/);
  assert.match(r.subject, /Password reset for alice$/);
});
