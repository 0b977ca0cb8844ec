/**
 * The portal in a real browser: Debian's headless Chromium driven by playwright-core, against
 * `herald serve` as a child process (private mode, UDP too). An administrator sets up the site
 * and invites a member; the member registers with the link, logs in, uploads a torrent,
 * downloads the personal .torrent, and that file's announce URL works on the running tracker.
 * Staff approve an application; a banned member can neither log in nor announce; form posts
 * without the CSRF token are refused. A member reads why download rights went for a hit-and-run;
 * staff forgive it and set immunity, class and download rights; staff give bonus points and the
 * member spends them in the shop; staff schedule a site-wide event (the banner), feature a torrent
 * (the Featured list and badge) and give a member personal freeleech (issue #16). Screenshots of the main pages at desktop and phone widths
 * go to test-results/screenshots/ (not committed) for a person to look at.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { openDatabase } from '../../src/db/connect.ts';
import { Registry } from '../../src/db/registry.ts';
import { parseMetainfo } from '../../src/protocol/metainfo/index.ts';
import { CHROMIUM, CHROMIUM_ARGS } from '../helpers/chromium.ts';
import { announcePath, bdecode, httpGet, text } from '../helpers/clients.ts';
import { makeTorrent } from '../helpers/portal-client.ts';
import { markHitAndRun } from '../helpers/scheduler.ts';
import { type Browser, DESKTOP, type Page, PHONE, type PW, SHOTS, shoot } from './browser.ts';
import { type RunningTracker, startTracker } from './tracker-process.ts';

const PASSWORD = 'a long enough password';

let pw: PW;
let browser: Browser;
let herald: RunningTracker;
let base: string;

before(async () => {
  if (!existsSync(CHROMIUM))
    throw new Error(
      `portal e2e: ${CHROMIUM} is missing; install Debian's "chromium" package (apt-get install chromium)`,
    );
  try {
    pw = await import('playwright-core');
  } catch (err) {
    throw new Error(`portal e2e: playwright-core is not installed (npm install): ${String(err)}`);
  }
  mkdirSync(SHOTS, { recursive: true });
  herald = await startTracker([
    '--mode',
    'private',
    '--http',
    '127.0.0.1:0',
    '--udp',
    '127.0.0.1:0',
    '--applications',
    '--policy-refresh',
    '1',
    '--site-name',
    'Herald Demo',
    // Hit-and-run on (issue #16), so its pages show the rule; nothing is old enough to judge.
    '--hnr-seed-hours',
    '72',
    '--hnr-max',
    '1',
    // Member classes (issue #16): everyone starts as User.
    '--member-classes',
    'User: slots=3,Power User: days=28 uploaded=25GiB ratio=105 slots=8 invites=1',
    // Bonus points (issue #16): seeding earns, the shop sells.
    '--bonus-base',
    '100',
  ]);
  base = `http://127.0.0.1:${herald.http[0].port}`;
  browser = await pw.chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    // playwright gives every launch a fresh temporary profile (its own --user-data-dir).
  });
});

after(async () => {
  await browser?.close();
  await herald?.stop();
});

async function newPage(viewport = DESKTOP): Promise<Page> {
  const ctx = await browser.newContext({ viewport, acceptDownloads: true });
  return ctx.newPage();
}

async function submit(page: Page, button: string) {
  await Promise.all([page.waitForLoadState('load'), page.getByRole('button', { name: button }).click()]);
}

async function register(page: Page, url: string, username: string) {
  await page.goto(url);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password', { exact: false }).first().fill(PASSWORD);
  await page.getByLabel('Repeat password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.waitForURL(/\/login\?msg=registered/);
}

/** Logs in; `expectOk` waits for the torrent list, otherwise for the refusal page. */
async function login(page: Page, username: string, expectOk = true) {
  await page.goto(`${base}/login`);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Log in' }).click();
  if (expectOk) await page.waitForURL(/\/torrents$/);
  else await page.getByRole('alert').waitFor();
}

async function announce(passkeyPath: string, infoHash: Buffer, port: number) {
  const r = await httpGet(
    herald.http[0].port,
    '127.0.0.1',
    announcePath({ infoHash, port, left: 0, event: 'started', base: passkeyPath }),
  );
  return bdecode(r.body);
}

let admin: Page;
let member: Page;
let memberPasskeyPath = '';
let uploadedHash: Buffer;

test('an administrator sets up the site and invites a member by link', async () => {
  admin = await newPage();
  await admin.goto(`${base}/register`);
  await shoot(admin, '01-register-first-admin');
  await register(admin, `${base}/register`, 'admin');
  await login(admin, 'admin');
  assert.match(admin.url(), /\/torrents$/);
  await admin.goto(`${base}/invites`);
  await admin.getByLabel('E-mail of the invitee').fill('alice@example.org');
  await submit(admin, 'Create invitation');
  const link = (await admin.locator('#invite-link').textContent())!;
  assert.match(link, /\/register\?invite=/);
  await shoot(admin, '02-invites');

  member = await newPage();
  await register(member, link, 'alice');
  await shoot(member, '03-login');
  await login(member, 'alice');
  assert.match(member.url(), /\/torrents$/);
});

test('the member uploads a torrent, downloads the personal .torrent, and it announces', async () => {
  await member.goto(`${base}/upload`);
  await shoot(member, '04-upload');
  await member.getByLabel('.torrent file').setInputFiles({
    name: 'ubuntu.torrent',
    mimeType: 'application/x-bittorrent',
    buffer: makeTorrent('ubuntu-26.04-desktop-amd64.iso'),
  });
  await member.getByLabel('Category').selectOption('Software');
  await member.getByLabel('Description').fill('The desktop image, as released.');
  await member.getByRole('button', { name: 'Upload' }).click();
  await member.waitForURL(/\/torrent\/[0-9]+\?msg=uploaded$/);
  await member.getByText('Torrent uploaded').waitFor();

  const [download] = await Promise.all([
    member.waitForEvent('download'),
    member.getByRole('link', { name: 'Download .torrent' }).click(),
  ]);
  const file = readFileSync((await download.path())!);
  const parsed = parseMetainfo(file);
  assert.ok(parsed.ok, 'the download is a .torrent');
  assert.equal(parsed.torrent.private, true);
  const url = new URL(parsed.torrent.announce!);
  assert.equal(url.port, String(herald.http[0].port));
  assert.ok(parsed.torrent.announceList!.flat().some((u) => u.startsWith('udp://')));
  memberPasskeyPath = url.pathname;
  uploadedHash = parsed.torrent.infoHashV1!;
  const d = await announce(memberPasskeyPath, uploadedHash, 40001);
  assert.ok(!d.has('failure reason'), `announce failed: ${text(d.get('failure reason'))}`);
  await member.reload();
  await shoot(member, '05-torrent');

  await member.goto(`${base}/torrents?sort=seeders`);
  await member.getByRole('link', { name: 'ubuntu-26.04-desktop-amd64.iso' }).waitFor();
  await shoot(member, '06-browse');
  await member.getByRole('link', { name: 'Profile' }).click();
  await member.locator('canvas#traffic-chart').waitFor();
  await shoot(member, '07-profile');
});

test('form posts without the CSRF token are refused with 403', async () => {
  const status = await member.evaluate(async () => {
    const r = await fetch('/invites', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'email=x%40example.org',
    });
    return r.status;
  });
  assert.equal(status, 403);
  const viaApi = await member.context().request.post(`${base}/me/passkey`, { form: { _csrf: 'forged' } });
  assert.equal(viaApi.status(), 403);
  // The passkey did not change: the downloaded .torrent still announces.
  const d = await announce(memberPasskeyPath, uploadedHash, 40002);
  assert.ok(!d.has('failure reason'));
});

let applicant: Page;

test('staff approve an application and the applicant gets an invitation', async () => {
  applicant = await newPage(PHONE);
  await applicant.goto(`${base}/apply`);
  await applicant.getByLabel('Username you would like').fill('carol');
  await applicant.getByLabel('E-mail').fill('carol@example.org');
  await applicant.getByLabel('About you').fill('I keep a seedbox running and share documentaries.');
  await submit(applicant, 'Send application');
  await applicant.getByText('pending').waitFor();
  const statusUrl = applicant.url();

  await admin.goto(`${base}/staff/applications`);
  await shoot(admin, '08-staff-applications');
  await submit(admin, 'Approve');
  await admin.locator('#invite-link').waitFor();

  await applicant.goto(statusUrl);
  await applicant.getByRole('link', { name: 'Create your account' }).click();
  await applicant.getByLabel('Username').fill('carol');
  await applicant.getByLabel('Password', { exact: false }).first().fill(PASSWORD);
  await applicant.getByLabel('Repeat password').fill(PASSWORD);
  await applicant.getByRole('button', { name: 'Create account' }).click();
  await applicant.waitForURL(/\/login\?msg=registered/);
});

test('a banned member can no longer log in or announce', async () => {
  await admin.goto(`${base}/staff/members`);
  await shoot(admin, '09-staff-members');
  await admin.getByRole('link', { name: 'alice' }).click();
  await admin.getByLabel('Status').selectOption('banned');
  await admin.getByLabel('Reason').fill('ratio cheating');
  await submit(admin, 'Set status');
  await admin.getByText('Member banned').waitFor();

  await member.goto(`${base}/torrents`);
  assert.match(member.url(), /\/login$/, 'the session ended');
  await login(member, 'alice', false);
  await member.getByText('This account is banned: ratio cheating').waitFor();
  // The running tracker picks the change up within policy_refresh (1 s here).
  let failure = '';
  for (let i = 0; i < 40 && failure === ''; i++) {
    const d = await announce(memberPasskeyPath, uploadedHash, 40003);
    if (d.has('failure reason')) failure = text(d.get('failure reason'));
    else await new Promise((r) => setTimeout(r, 100));
  }
  assert.notEqual(failure, '', 'the banned passkey is refused');
});

test('staff pages render (screenshots)', async () => {
  for (const [path, name] of [
    ['/staff/stats', '10-staff-stats'],
    ['/staff/invites', '11-staff-invite-tree'],
    ['/staff/torrents', '12-staff-torrents'],
    ['/staff/lists', '13-staff-lists'],
  ]) {
    await admin.goto(base + path);
    assert.equal(await admin.locator('h1').count(), 1);
    await shoot(admin, name);
  }
});

test('rules (issue #16): a member reads why download rights went, what to seed and their class; staff forgive a hit-and-run, set immunity, class and download rights (screenshots)', async () => {
  // A hit-and-run of carol's, as the scheduler leaves one (the same database, beside the tracker).
  const db = await openDatabase('', herald.dataDir);
  let hnrId = 0;
  let carolId = 0;
  try {
    const reg = new Registry(db);
    const carol = await reg.member('carol');
    carolId = carol.id;
    const torrent = (await reg.listTorrents())[0];
    await markHitAndRun(reg, carol.id, torrent.id, Math.floor(Date.now() / 1000));
    hnrId = (await reg.hnr.list({ member: carol.id }))[0].id;
  } finally {
    await db.close();
  }
  await applicant.setViewportSize(DESKTOP);
  await login(applicant, 'carol');
  await applicant.getByRole('link', { name: 'Profile' }).click();
  await applicant.locator('#rights-notice').getByText('suspended for hit-and-runs').waitFor();
  await applicant.getByRole('heading', { name: 'Hit-and-runs' }).waitFor();
  await applicant.getByRole('heading', { name: 'Class: User' }).waitFor();
  await applicant.locator('#next-class').getByText('Power User needs an account 28 days old').waitFor();
  assert.equal(await applicant.locator('#hnr-list tbody tr').count(), 1);
  assert.equal(await applicant.getByRole('button', { name: 'Forgive' }).count(), 0, 'members do not forgive');
  await shoot(applicant, '14-member-hit-and-runs');

  await admin.goto(`${base}/staff/hit-and-runs`);
  await admin.getByRole('link', { name: 'carol' }).waitFor();
  await shoot(admin, '15-staff-hit-and-runs');
  await admin.getByLabel(`Note for hit-and-run ${hnrId}`).fill('tracker outage that week');
  await submit(admin, 'Forgive');
  await admin.getByText('Hit-and-run forgiven.').waitFor();

  await applicant.reload();
  await applicant.getByText('forgiven (tracker outage that week)').waitFor();
  assert.equal(await applicant.locator('#rights-notice').count(), 0, 'download rights are back');

  await admin.goto(`${base}/member/${carolId}`);
  await admin.getByLabel('Hit-and-run immunity').selectOption('yes');
  await submit(admin, 'Set immunity');
  await admin.getByText('Saved.').waitFor();
  await admin.locator('select[name="class"]').selectOption('Power User');
  await submit(admin, 'Set class');
  await admin.getByText('Saved.').waitFor();
  await admin.getByLabel('Download rights').selectOption('no');
  await submit(admin, 'Set download rights');
  await admin.getByText('Saved.').waitFor();
  await shoot(admin, '16-staff-member-rules');
  await applicant.reload();
  await applicant.getByText('This account is immune to hit-and-runs.').waitFor();
  await applicant.locator('#rights-notice').getByText('suspended by staff').waitFor();
  await applicant.getByRole('heading', { name: 'Class: Power User' }).waitFor();
  await applicant.locator('#class-history').getByText('User → Power User (staff)').waitFor();
  await shoot(applicant, '17-member-class');
});

test('bonus points (issue #16): staff give points, the member buys a freeleech token in the shop and sees the ledger (screenshot)', async () => {
  await admin.goto(`${base}/staff/members`);
  await admin.getByRole('link', { name: 'carol' }).click();
  await admin.getByLabel('Points to give (negative: take)').fill('2500');
  await admin.getByLabel('Note for the bonus points').fill('seeding contest');
  await submit(admin, 'Give points');
  await admin.getByText('Saved.').waitFor();

  await applicant.getByRole('link', { name: 'Bonus' }).click();
  assert.equal((await applicant.locator('#bonus-balance').textContent())?.trim(), '2500.00');
  await applicant.getByText('Every hour you seed a torrent earns 1.00 points').waitFor();
  await submit(applicant, 'Buy freeleech tokens');
  await applicant.getByText('Bought: it is yours now.').waitFor();
  assert.equal((await applicant.locator('#bonus-balance').textContent())?.trim(), '500.00');
  await applicant.locator('#bonus-ledger').getByText('shop:token').waitFor();
  await shoot(applicant, '18-bonus-shop');
  // Beyond the balance: refused, nothing spent.
  await submit(applicant, 'Buy freeleech tokens');
  await applicant.getByText('not enough bonus points').waitFor();
  await applicant.goto(`${base}/bonus`);
  assert.equal((await applicant.locator('#bonus-balance').textContent())?.trim(), '500.00');
});

test('promotions (issue #16): staff schedule an event (the banner members see), feature a torrent (the Featured list and badge) and give personal freeleech (screenshots)', async () => {
  const local = (t: number) => new Date(t * 1000).toISOString().slice(0, 16);
  const now = Math.floor(Date.now() / 1000);
  await admin.setViewportSize(DESKTOP);
  await admin.goto(`${base}/staff/promotions`);
  await admin.getByLabel('Name').fill('Winter freeleech');
  await admin.getByLabel('Starts (UTC)').fill(local(now - 60));
  await admin.getByLabel('Ends (UTC)').fill(local(now + 3 * 86400));
  await admin.getByLabel('Uploads counted (percent').fill('200');
  await submit(admin, 'Schedule event');
  await admin.getByText('Saved.').waitFor();
  await admin.locator('#staff-events').getByText('Winter freeleech').waitFor();
  await admin.locator('#event-banner').getByText('Winter freeleech').waitFor();
  await shoot(admin, '19-staff-promotions');

  // Feature the first torrent from its page.
  await admin.goto(`${base}/torrents`);
  await admin.locator('table a[href^="/torrent/"]').first().click();
  await submit(admin, 'Feature (free + double upload for everyone)');
  await admin.getByText('Saved.').waitFor();
  await admin.locator('#featured-notice').getByText('freeleech + double upload').waitFor();

  await applicant.setViewportSize(DESKTOP);
  await applicant.goto(`${base}/torrents`);
  await applicant
    .locator('#event-banner')
    .getByText('freeleech + double upload for everyone until')
    .waitFor();
  await applicant.locator('#featured-list li').first().waitFor();
  assert.equal(await applicant.locator('table .badge.featured').count(), 1, 'the badge in the list');
  await shoot(applicant, '20-member-banner-featured');

  // Personal freeleech for carol, from her page.
  await admin.goto(`${base}/staff/members`);
  await admin.getByRole('link', { name: 'carol' }).click();
  await admin.getByLabel('Personal freeleech from (UTC)').fill(local(now - 60));
  await admin.getByLabel('until (UTC)').fill(local(now + 7 * 86400));
  await admin.getByLabel('Double upload').check();
  await admin.getByLabel('Note for the freeleech window').fill('archive seeder');
  await submit(admin, 'Give freeleech');
  await admin.getByText('Saved.').waitFor();
  await admin.locator('#freeleech-windows').getByText('archive seeder').waitFor();
  await shoot(admin, '21-staff-freeleech-window');
  await applicant.getByRole('link', { name: 'Profile' }).click();
  await applicant.locator('#freeleech-windows').getByText('every torrent').waitFor();
  assert.equal(await applicant.getByRole('button', { name: /Revoke/ }).count(), 0, 'members do not revoke');
  await shoot(applicant, '22-member-freeleech');

  // Staff cancel the event: the banner goes.
  await admin.goto(`${base}/staff/promotions`);
  await submit(admin, 'Cancel event Winter freeleech');
  await admin.getByText('Saved.').waitFor();
  assert.equal(await admin.locator('#event-banner').count(), 0);
});
