/**
 * Two-factor authentication and the mailed password reset in a real browser (issue #16): Debian's
 * headless Chromium (playwright-core) against `herald serve` as a child process, with
 * `require_2fa_for_staff` and mail through a real SMTP server on loopback (python3-aiosmtpd).
 * The administrator is sent to enrol before any staff page, scans (reads) the secret, confirms
 * with a code and sees the recovery codes; logs in with a code, is refused a wrong one, logs in
 * with a recovery code; forgets the password, opens the mailed link, sets a new one and logs in
 * with it. A member turns 2FA on, is refused turning it off with a wrong code, turns it off with a
 * right one, turns it on again; staff reset it from the member's profile, which ends the member's
 * session. Screenshots go to test-results/screenshots/.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { totpCode } from '../../src/web/portal/two-factor.ts';
import { CHROMIUM, CHROMIUM_ARGS } from '../helpers/chromium.ts';
import { freePort, SmtpServer, smtpAvailable } from '../helpers/smtp.ts';
import { assertAccessible, type Browser, DESKTOP, type Page, type PW, SHOTS, shoot } from './browser.ts';
import { type RunningTracker, startTracker } from './tracker-process.ts';

const PASSWORD = 'a long enough password';
const NEW_PASSWORD = 'another long password';
const available = smtpAvailable();

let pw: PW;
let browser: Browser;
let herald: RunningTracker;
let smtp: SmtpServer;
let base: string;
/** The administrator's recovery codes (test 1), for the staff side of test 2. */
let adminCodes: string[] = [];

before(async () => {
  if (available !== true) return;
  if (!existsSync(CHROMIUM))
    throw new Error(`portal 2FA e2e: ${CHROMIUM} is missing; install Debian's "chromium" package`);
  pw = await import('playwright-core');
  mkdirSync(SHOTS, { recursive: true });
  smtp = await SmtpServer.start();
  // A fixed port, so that site_url (the links in mails) can name it before the tracker starts.
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  herald = await startTracker([
    '--mode',
    'private',
    '--http',
    `127.0.0.1:${port}`,
    '--udp',
    'off',
    '--site-name',
    'Herald Demo',
    '--require-2fa-for-staff',
    '--smtp-url',
    `smtp://127.0.0.1:${smtp.port}`,
    '--mail-from',
    'Herald Demo <tracker@example.org>',
    '--site-url',
    base,
  ]);
  browser = await pw.chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
});

after(async () => {
  await browser?.close();
  await herald?.stop();
  await smtp?.stop();
});

async function submit(page: Page, button: string) {
  await Promise.all([page.waitForLoadState('load'), page.getByRole('button', { name: button }).click()]);
}

/** Password step of the login; lands on the code step. */
async function passwordStep(page: Page, password = PASSWORD) {
  await page.goto(`${base}/login`);
  await page.getByLabel('Username').fill('admin');
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForURL(/\/login\/2fa$/);
}

async function codeStep(page: Page, code: string, ok = true) {
  await page.getByLabel('Code').fill(code);
  await page.getByRole('button', { name: 'Log in' }).click();
  if (ok) await page.waitForURL(/\/torrents$/);
  else await page.getByRole('alert').waitFor();
}

async function logout(page: Page) {
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.waitForURL(/\/login\?msg=loggedout/);
}

test('staff are sent to enrol; login with a code, a wrong code, a recovery code; reset by the mailed link', {
  skip: available === true ? false : available,
}, async () => {
  const page = await (await browser.newContext({ viewport: DESKTOP })).newPage();
  // The first account is the administrator.
  await page.goto(`${base}/register`);
  await page.getByLabel('Username').fill('admin');
  await page.getByLabel('E-mail').fill('admin@example.org');
  await page.getByLabel('Password', { exact: false }).first().fill(PASSWORD);
  await page.getByLabel('Repeat password').fill(PASSWORD);
  await submit(page, 'Create account');
  await page.goto(`${base}/login`);
  await page.getByLabel('Username').fill('admin');
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForURL(/\/torrents$/);

  // Staff forced to enrol: the Staff link leads to the security page, which says why.
  await page.getByRole('link', { name: 'Staff' }).click();
  await page.waitForURL(/\/me\/security\?msg=staff2fa$/);
  assert.match(
    (await page.getByRole('status').textContent()) ?? '',
    /Staff pages need two-factor authentication/,
  );
  await shoot(page, '2fa-required');

  // Enrol: the QR code and the secret as text; a wrong code first, then the right one.
  await submit(page, 'Set up two-factor authentication');
  // A string, evaluated in the page: the test's TypeScript has no DOM types.
  const width = await page.evaluate(
    `(() => { const img = document.getElementById('totp-qr'); return img.decode().then(() => img.naturalWidth); })()`,
  );
  assert.ok((width as number) > 0, `the QR code image renders (width ${width})`);
  const secret = ((await page.locator('#totp-secret').textContent()) ?? '').trim();
  await assertAccessible(page);
  await page.screenshot({ path: join(SHOTS, '2fa-enrol-desktop.png'), fullPage: true });
  await page.getByLabel('The 6-digit code your app shows').fill('000000');
  await page.getByLabel('Current password').fill(PASSWORD);
  await submit(page, 'Turn on');
  assert.match((await page.getByRole('alert').textContent()) ?? '', /not right/);
  await page.getByLabel('The 6-digit code your app shows').fill(totpCode(secret, Date.now()));
  await page.getByLabel('Current password').fill(PASSWORD);
  await submit(page, 'Turn on');
  const codes = (await page.locator('#recovery-codes li').allTextContents()).map((s) => s.trim());
  assert.equal(codes.length, 10);
  adminCodes = codes;
  await assertAccessible(page);
  await page.screenshot({ path: join(SHOTS, '2fa-recovery-codes-desktop.png'), fullPage: true });
  await page.getByRole('link', { name: 'Done' }).click();
  await page.getByRole('link', { name: 'Staff' }).click();
  await page.waitForURL(/\/staff\/stats$/);

  // Login with a code (the next step's: the enrolment's own code is spent).
  await logout(page);
  await passwordStep(page);
  await shoot(page, '2fa-code');
  await codeStep(page, '123456', false);
  assert.match((await page.getByRole('alert').textContent()) ?? '', /not right/);
  await page.screenshot({ path: join(SHOTS, '2fa-wrong-code-desktop.png'), fullPage: true });
  await codeStep(page, totpCode(secret, Date.now() + 30_000));

  // Login with a recovery code; the same one again is refused.
  await logout(page);
  await passwordStep(page);
  await codeStep(page, codes[0]);
  await logout(page);
  await passwordStep(page);
  await codeStep(page, codes[0], false);

  // Forgot the password: the mailed link sets a new one, which then logs in (with a code).
  await page.goto(`${base}/login`);
  await page.getByRole('link', { name: 'Forgot your password?' }).click();
  await page.getByLabel('Username or e-mail').fill('admin@example.org');
  await submit(page, 'Send reset link');
  assert.match((await page.getByRole('status').textContent()) ?? '', /a reset link is on its way/);
  await shoot(page, 'forgot-password');
  const mail = await smtp.next(
    (m) => m.rcpt_tos.includes('admin@example.org') && /Password reset/.test(m.subject),
  );
  const link = /(http:\/\/\S+\/reset\/[A-Za-z0-9_-]{43})/.exec(mail.text ?? '')![1];
  assert.ok(link.startsWith(base));
  await page.goto(link);
  await shoot(page, 'reset-password');
  await page.getByLabel('New password', { exact: false }).first().fill(NEW_PASSWORD);
  await page.getByLabel('Repeat new password').fill(NEW_PASSWORD);
  await submit(page, 'Set password');
  await page.waitForURL(/\/login\?msg=reset$/);
  await passwordStep(page, NEW_PASSWORD);
  await codeStep(page, codes[1]);
  // The link is spent.
  const again = await page.goto(link);
  assert.equal(again?.status(), 404);
});

test("a member turns 2FA on and off (a code needed); staff reset a member's 2FA and the member's session ends", {
  skip: available === true ? false : available,
}, async () => {
  assert.ok(adminCodes.length === 10, 'the first test enrolled the administrator');
  // A member made on the command line gets a reset link from staff to set a password.
  assert.equal(herald.admin(['member', 'add', 'carol']).status, 0);
  const r = herald.admin(['member', 'reset-link', 'carol', '--site-url', base, '--json']);
  assert.equal(r.status, 0, r.stderr);
  const link = (JSON.parse(r.stdout) as { url: string }).url;
  const carol = await (await browser.newContext({ viewport: DESKTOP })).newPage();
  await carol.goto(link);
  await carol.getByLabel('New password', { exact: false }).first().fill(PASSWORD);
  await carol.getByLabel('Repeat new password').fill(PASSWORD);
  await submit(carol, 'Set password');
  await carol.waitForURL(/\/login\?msg=reset$/);
  await carol.getByLabel('Username').fill('carol');
  await carol.getByLabel('Password').fill(PASSWORD);
  await carol.getByRole('button', { name: 'Log in' }).click();
  await carol.waitForURL(/\/torrents$/);

  // Enrol, then turn it off: a wrong code is refused, the right one turns it off.
  const enrol = async () => {
    await carol.goto(`${base}/me/security`);
    await submit(carol, 'Set up two-factor authentication');
    const secret = ((await carol.locator('#totp-secret').textContent()) ?? '').trim();
    await carol.getByLabel('The 6-digit code your app shows').fill(totpCode(secret, Date.now()));
    await carol.getByLabel('Current password').fill(PASSWORD);
    await submit(carol, 'Turn on');
    assert.equal((await carol.locator('#recovery-codes li').count()) > 0, true);
    return secret;
  };
  const secret = await enrol();
  await carol.goto(`${base}/me/security`);
  assert.match((await carol.locator('#tfa-status').textContent()) ?? '', /is on/);
  await carol.getByLabel('Code from your app, or a recovery code').fill('000000');
  await submit(carol, 'Turn two-factor authentication off');
  assert.match((await carol.getByRole('alert').textContent()) ?? '', /not right/);
  assert.match((await carol.locator('#tfa-status').textContent()) ?? '', /is on/);
  await carol
    .getByLabel('Code from your app, or a recovery code')
    .fill(totpCode(secret, Date.now() + 30_000));
  await submit(carol, 'Turn two-factor authentication off');
  assert.match((await carol.locator('#tfa-status').textContent()) ?? '', /is off/);
  await shoot(carol, '2fa-turned-off');
  assert.match(herald.admin(['member', 'show', 'carol', '--json']).stdout, /"two_factor": ?"off"/);

  // On again; then staff reset it from carol's profile: carol's session ends, and her password
  // alone logs her in.
  await enrol();
  assert.match(herald.admin(['member', 'show', 'carol', '--json']).stdout, /"two_factor": ?"on"/);
  const admin = await (await browser.newContext({ viewport: DESKTOP })).newPage();
  await passwordStep(admin, NEW_PASSWORD);
  await codeStep(admin, adminCodes[2]);
  const carolId = (JSON.parse(herald.admin(['member', 'show', 'carol', '--json']).stdout) as { id: number })
    .id;
  await admin.goto(`${base}/member/${carolId}`);
  assert.match((await admin.locator('main').textContent()) ?? '', /two-factor authentication: on/);
  await shoot(admin, '2fa-staff-reset');
  await submit(admin, 'Reset two-factor authentication');
  assert.match(herald.admin(['member', 'show', 'carol', '--json']).stdout, /"two_factor": ?"off"/);
  await carol.goto(`${base}/me/security`);
  await carol.waitForURL(/\/login/);
  await carol.getByLabel('Username').fill('carol');
  await carol.getByLabel('Password').fill(PASSWORD);
  await carol.getByRole('button', { name: 'Log in' }).click();
  await carol.waitForURL(/\/torrents$/);
});
