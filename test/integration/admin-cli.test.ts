/**
 * The administration commands (`herald member|torrent|list|client|group|grant|site`), run the
 * way a shell runs them, on a temporary SQLite database: every command, --json output, and
 * clear errors for mistakes.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { openDatabase } from '../../src/db/connect.ts';
import { Registry } from '../../src/db/registry.ts';
import { encode } from '../../src/protocol/bencode/index.ts';
import { linkTokenHash } from '../../src/web/portal/two-factor.ts';
import { runHerald } from '../e2e/tracker-process.ts';
import { markHitAndRun, memberTorrentRow } from '../helpers/scheduler.ts';

const dir = mkdtempSync(join(tmpdir(), 'herald-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const herald = (...args: string[]) =>
  runHerald([...args, '--data-dir', dir, '--public-urls', 'https://t.example.org']);
const json = (...args: string[]) => {
  const r = herald(...args, '--json');
  assert.equal(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout);
};

test('members: add, show, list, set, disable, ban, enable, reset-passkey', () => {
  const m = json(
    'member',
    'add',
    'alice',
    '--role',
    'uploader',
    '--email',
    'a@example.org',
    '--invites',
    '3',
  );
  assert.equal(m.role, 'uploader');
  assert.equal(m.invites, 3);
  assert.deepEqual(m.announce_urls, [`https://t.example.org/announce/${m.passkey}`]);
  assert.equal(json('member', 'show', m.passkey).username, 'alice');
  assert.equal(json('member', 'list', '--search', 'ali').length, 1);
  assert.equal(json('member', 'set', 'alice', '--role', 'moderator').role, 'moderator');
  const d = json('member', 'disable', 'alice', '--reason', 'inactive');
  assert.deepEqual([d.status, d.status_reason], ['disabled', 'inactive']);
  assert.equal(json('member', 'ban', 'alice').status, 'banned');
  assert.equal(json('member', 'enable', 'alice').status, 'active');
  assert.notEqual(json('member', 'reset-passkey', 'alice').passkey, m.passkey);
  const dup = herald('member', 'add', 'alice');
  assert.equal(dup.status, 1);
  assert.match(dup.stderr, /already exists/);
  const missing = herald('member', 'show', 'nobody');
  assert.equal(missing.status, 3);
  assert.match(missing.stderr, /no member "nobody"/);
  assert.match(herald('member', 'add', 'bob', '--role', 'god').stderr, /--role: one of/);
  // Human output names the announce URL too.
  assert.match(herald('member', 'show', 'alice').stdout, /announce {3}https:\/\/t\.example\.org\/announce\//);
});

test('members: a name in any case is the same member; a number is always an id, never a name', () => {
  const dora = json('member', 'add', 'Dora');
  assert.match(herald('member', 'add', 'DORA').stderr, /already exists/);
  assert.equal(json('member', 'show', 'dora').id, dora.id);
  assert.equal(json('member', 'show', String(dora.id)).username, 'Dora');
  const digits = herald('member', 'add', String(dora.id + 10));
  assert.equal(digits.status, 1);
  assert.match(digits.stderr, /not only digits/);
});

test('torrents: add a .torrent file, show, set, list, remove; bad files are refused', () => {
  const file = join(dir, 'x.torrent');
  const info = new Map<string, unknown>([
    ['length', 32768],
    ['name', Buffer.from('x.bin')],
    ['piece length', 16384],
    ['pieces', Buffer.alloc(40, 1)],
  ]);
  writeFileSync(file, encode(new Map([['info', info]]) as never));
  const t = json('torrent', 'add', file, '--category', 'linux');
  assert.match(t.info_hash, /^[0-9a-f]{40}$/);
  assert.equal(t.private, false);
  assert.equal(json('torrent', 'show', t.info_hash).category, 'linux');
  const s = json(
    'torrent',
    'set',
    String(t.id),
    '--freeleech',
    'yes',
    '--restricted',
    'yes',
    '--upload-factor',
    '200',
  );
  assert.deepEqual([s.download_factor, s.restricted, s.upload_factor], [0, 1, 200]);
  assert.equal(json('torrent', 'list').length, 1);
  assert.match(herald('torrent', 'add', file).stderr, /already registered/);
  writeFileSync(join(dir, 'bad.torrent'), 'd4:infoi1ee');
  const bad = herald('torrent', 'add', join(dir, 'bad.torrent'));
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /not a valid \.torrent file/);
  // Grants on it, to a member and to a group.
  json('member', 'add', 'carol');
  json('group', 'add', 'buyers');
  assert.equal(json('group', 'list')[0].name, 'buyers');
  json('group', 'add-member', 'buyers', 'carol');
  const g1 = json(
    'grant',
    'add',
    t.info_hash,
    '--member',
    'carol',
    '--reference',
    'order-1',
    '--expires',
    '4102444800',
  );
  assert.equal(g1.reference, 'order-1');
  json('grant', 'add', t.info_hash, '--group', 'buyers');
  assert.equal(json('grant', 'list', '--torrent', t.info_hash).length, 2);
  assert.equal(json('grant', 'remove', String(g1.id)).revoked, 1);
  assert.equal(json('grant', 'remove', t.info_hash, '--group', 'buyers').revoked, 1);
  assert.match(herald('grant', 'add', t.info_hash).stderr, /one member or one group/);
  assert.equal(json('group', 'remove-member', 'buyers', 'carol').removed, true);
  assert.equal(json('torrent', 'remove', t.info_hash).id, t.id);
  assert.equal(json('torrent', 'list').length, 0);
});

test('info-hash lists, client prefixes and site settings', () => {
  const h = 'AB'.repeat(20);
  assert.equal(json('list', 'allow', 'add', h, '--note', 'release').info_hash, h.toLowerCase());
  assert.equal(json('list', 'allow', 'show')[0].note, 'release');
  assert.equal(json('list', 'allow', 'remove', h).removed, true);
  json('list', 'deny', 'add', 'cd'.repeat(32)); // a v2 hash is kept as trackers see it
  assert.equal(json('list', 'deny', 'show')[0].info_hash, 'cd'.repeat(20));
  assert.match(herald('list', 'deny', 'add', 'xyz').stderr, /is not an info hash/);
  json('client', 'add', '-qB4');
  assert.deepEqual(
    json('client', 'list').map((r: { prefix: string }) => r.prefix),
    ['-qB4'],
  );
  assert.equal(json('client', 'remove', '-qB4').removed, true);
  assert.equal(json('site', 'set', 'download_factor', '0').site_download_factor, 0);
  assert.equal(json('site', 'show').site_download_factor, 0);
  assert.match(herald('site', 'set', 'colour', '3').stderr, /download_factor or upload_factor/);
  const unknown = herald('member', 'fly');
  assert.notEqual(unknown.status, 0);
  assert.match(unknown.stderr, /unknown command/);
});

/** A small .torrent file named `name` in the scratch directory: its path. */
function torrentFile(name: string): string {
  const file = join(dir, `${name}.torrent`);
  const info = new Map<string, unknown>([
    ['length', 1000],
    ['name', name],
    ['piece length', 16384],
    ['pieces', Buffer.alloc(20, 2)],
  ]);
  writeFileSync(file, encode(new Map([['info', info]]) as never));
  return file;
}

test('member show: what the profile shows (snatches, seeding and leeching now, download rights, ratio warnings); set --can-leech', async () => {
  const m = json('member', 'add', 'profiled');
  const t = json('torrent', 'add', torrentFile('profiled-a'));
  const t2 = json('torrent', 'add', torrentFile('profiled-b'));
  const t3 = json('torrent', 'add', torrentFile('profiled-c'));
  // What the tracker's accounting writes (member_torrents): a snatch seeding now, a torrent
  // leeching now, and one whose last announce is older than peer_timeout.
  const db = await openDatabase('', dir);
  const at = Math.floor(Date.now() / 1000);
  const row = (torrent: number, state: number, last: number, completed: number | null) =>
    memberTorrentRow(m.id, torrent, last, { state, completed_at: completed });
  await db.kysely
    .insertInto('member_torrents')
    .values([row(t.id, 2, at, at), row(t2.id, 1, at, null), row(t3.id, 2, at - 100_000, at - 100_000)])
    .execute();
  await db.close();
  const shown = json('member', 'show', 'profiled');
  assert.deepEqual(
    [shown.snatches, shown.seeding_now, shown.leeching_now, shown.can_leech, shown.ratio_warnings],
    [2, 1, 1, 1, 0],
  );
  assert.match(
    herald('member', 'show', 'profiled').stdout,
    /snatches {3}2 {2}seeding now 1 {2}leeching now 1/,
  );
  const off = json('member', 'set', 'profiled', '--can-leech', 'no');
  assert.deepEqual([off.can_leech, off.leech_reason], [0, 'staff']);
  assert.match(herald('member', 'show', 'profiled').stdout, /download {3}suspended \(staff\)/);
  assert.equal(json('member', 'set', 'profiled', '--can-leech', 'yes').can_leech, 1);
  assert.match(herald('member', 'set', 'profiled', '--can-leech', 'maybe').stderr, /--can-leech: yes or no/);
});

test('hit-and-runs: member show counts them; hnr list and forgive (rights back); member set --hnr-immune', async () => {
  const m = json('member', 'add', 'runner');
  const t = json('torrent', 'add', torrentFile('runner-a'));
  const db = await openDatabase('', dir);
  try {
    await markHitAndRun(new Registry(db), m.id, t.id, Math.floor(Date.now() / 1000));
  } finally {
    await db.close();
  }
  const shown = json('member', 'show', 'runner');
  assert.deepEqual([shown.hnr_active, shown.can_leech, shown.leech_reason], [1, 0, 'hnr']);
  assert.match(herald('member', 'show', 'runner').stdout, /hit-and-runs active 1/);
  const list = json('hnr', 'list', '--member', 'runner') as unknown as { id: number; status: string }[];
  assert.deepEqual(
    list.map((h) => h.status),
    ['active'],
  );
  assert.match(herald('hnr', 'list', '--status', 'active').stdout, /active {2}runner {2}"runner-a"/);
  assert.match(herald('hnr', 'list', '--status', 'bogus').stderr, /--status: one of active/);
  const f = json('hnr', 'forgive', String(list[0].id), '--note', 'seedbox died');
  assert.deepEqual([f.status, f.note], ['forgiven', 'seedbox died']);
  assert.equal(json('member', 'show', 'runner').can_leech, 1, 'rights back');
  assert.match(herald('hnr', 'forgive', String(list[0].id)).stderr, /not active \(forgiven\)/);
  assert.equal(herald('hnr', 'forgive', '999999').status, 3);
  assert.equal(json('member', 'set', 'runner', '--hnr-immune', 'yes').hnr_immune, 1);
  assert.match(herald('member', 'show', 'runner').stdout, /\(immune\)/);
});

test('member classes: class list, member set --class (and auto), member show, class history', () => {
  const cls = ['--member-classes', 'User: slots=2,Elite: uploaded=1TiB upload_factor=150 hnr_immune=1'];
  json('member', 'add', 'classy');
  const list = json('class', 'list', ...cls) as unknown as { name: string; slots: number; members: number }[];
  assert.deepEqual(
    list.map((c) => [c.name, c.slots]),
    [
      ['User', 2],
      ['Elite', 0],
    ],
  );
  assert.ok(list[0].members >= 1, 'every member starts in the first class');
  assert.match(
    herald('class', 'list', ...cls).stdout,
    /Elite {2}members 0 .*factors up 150%.*hit-and-run immune/,
  );
  const set = json('member', 'set', 'classy', '--class', 'Elite', ...cls);
  assert.deepEqual([set.class, set.class_locked], ['Elite', 1]);
  assert.match(herald('member', 'show', 'classy', ...cls).stdout, /class {6}Elite {2}\(set by staff\)/);
  assert.match(
    herald('member', 'set', 'classy', '--class', 'Gold', ...cls).stderr,
    /class: one of User, Elite/,
  );
  assert.match(
    herald('member', 'set', 'classy', '--class', 'Elite').stderr,
    /no member classes are configured/,
  );
  assert.equal(json('member', 'set', 'classy', '--class', 'auto', ...cls).class_locked, 0);
  assert.match(herald('class', 'history', 'classy', ...cls).stdout, /\(first\) -> Elite {2}staff/);
});

test('bonus points: bonus give (and take) and show', () => {
  json('member', 'add', 'saver');
  assert.equal(json('bonus', 'give', 'saver', '12.5', '--note', 'welcome').balance, 1250);
  assert.equal(json('bonus', 'give', 'saver', '-2', '--note', 'typo').balance, 1050);
  assert.match(
    herald('bonus', 'give', 'saver', '1.234').stderr,
    /POINTS: a number with at most two decimals/,
  );
  const shown = json('bonus', 'show', 'saver') as unknown as {
    balance: number;
    ledger: { delta: number; note: string }[];
  };
  assert.deepEqual(
    [shown.balance, shown.ledger.map((r) => [r.delta, r.note])],
    [
      1050,
      [
        [-200, 'typo'],
        [1250, 'welcome'],
      ],
    ],
  );
  assert.match(herald('bonus', 'show', 'saver').stdout, /saver: 10\.50 points, 0 freeleech tokens/);
});

test('promotions: tokens (give, spend, show), personal freeleech (give, list, revoke), events (add, set, list, cancel), featured torrents; member show reports them', () => {
  json('member', 'add', 'promo');
  const t = json('torrent', 'add', torrentFile('promo-file'));
  assert.equal(json('token', 'give', 'promo', '2', '--note', 'contest').freeleech_tokens, 2);
  assert.match(herald('token', 'give', 'promo', '-5').stderr, /fewer tokens than that/);
  const spent = json('token', 'spend', 'promo', String(t.id));
  assert.equal(spent.torrent, t.id);
  assert.match(herald('token', 'spend', 'promo', String(t.id)).stderr, /already freeleech for you/);
  const tokens = json('token', 'show', 'promo');
  assert.equal(tokens.freeleech_tokens, 1);
  assert.deepEqual(
    tokens.spent.map((w: { torrent_id: number }) => w.torrent_id),
    [t.id],
  );
  assert.match(
    herald('token', 'show', 'promo').stdout,
    /promo: 1 freeleech tokens\n {2}spent {2}"promo-file"/,
  );

  const w = json(
    'freeleech',
    'give',
    'promo',
    '--start',
    '2098-12-01T00:00Z',
    '--end',
    '2099-01-01T00:00Z',
    '--double-upload',
    'yes',
    '--note',
    'thanks',
  );
  assert.deepEqual([w.source, w.upload_factor, w.torrent_id, w.ends_at], ['staff', 200, null, 4070908800]);
  assert.match(
    herald('freeleech', 'give', 'promo', '--end', 'soon').stderr,
    /--end: unix seconds or an ISO 8601 time/,
  );
  assert.equal(json('freeleech', 'list', 'promo').length, 2, "the token's window and staff's");
  const shown = json('member', 'show', 'promo');
  assert.equal(shown.freeleech_tokens, 1);
  assert.equal(shown.freeleech_windows.length, 2);
  for (const k of ['snatches', 'seeding_now', 'leeching_now', 'hnr_active', 'bonus_points', 'invites_sent'])
    assert.equal(typeof shown[k], 'number', k);
  assert.match(
    herald('member', 'show', 'promo').stdout,
    /freeleech {2}#\d+ every torrent .* \(staff, uploads 200%\)/,
  );
  assert.ok(json('freeleech', 'revoke', String(w.id)).revoked_at > 0);
  assert.match(herald('freeleech', 'revoke', String(w.id)).stderr, /revoked already/);
  assert.equal(json('freeleech', 'list', 'promo').length, 1);

  const e = json(
    'event',
    'add',
    'Winter freeleech',
    '--start',
    '2098-12-24T18:00Z',
    '--end',
    '2098-12-27T00:00Z',
    '--freeleech',
    'yes',
  );
  assert.deepEqual([e.freeleech, e.upload_factor, e.starts_at], [1, 100, 4070282400]);
  assert.match(
    herald('event', 'add', 'Nothing', '--start', '2098-12-24', '--end', '2098-12-25').stderr,
    /an event is freeleech/,
  );
  assert.equal(json('event', 'set', String(e.id), '--upload-factor', '150').upload_factor, 150);
  assert.match(
    herald('event', 'list').stdout,
    /"Winter freeleech" {2}2098-12-24 18:00 UTC to 2098-12-27 00:00 UTC {2}freeleech \+ uploads 150%/,
  );
  assert.equal(json('event', 'cancel', String(e.id)).cancelled_at > 0, true);
  assert.equal(json('event', 'list').length, 0);
  assert.equal(json('event', 'list', '--all').length, 1);

  const f = json('featured', 'add', String(t.id), '--days', '3');
  assert.deepEqual([f.torrent_id, f.upload_factor, f.ends_at - f.starts_at], [t.id, 200, 3 * 86400]);
  assert.match(herald('featured', 'add', String(t.id)).stderr, /featured already/);
  assert.equal(json('featured', 'list').length, 1);
  json('featured', 'remove', String(f.id));
  assert.equal(json('featured', 'list').length, 0);
});

test('member reset-link and 2fa-reset (issue #16): a one-time link for the portal; 2FA off', async () => {
  json('member', 'add', 'resetme');
  const r = json('member', 'reset-link', 'resetme', '--site-url', 'https://portal.example.org/');
  assert.match(r.path, /^\/reset\/[A-Za-z0-9_-]{43}$/);
  assert.equal(r.url, `https://portal.example.org${r.path}`);
  assert.match(
    herald('member', 'reset-link', 'resetme').stdout,
    /\/reset\/\S+ {2}\(after the portal's address/,
  );
  // The link is live in the database (stored as its hash) until it expires.
  const db = await openDatabase('', dir);
  try {
    const reg = new Registry(db);
    const token = r.path.slice('/reset/'.length);
    assert.equal(
      (await reg.accounts.passwordReset(linkTokenHash(token), r.expires_at - 1))?.username,
      'resetme',
    );
    assert.equal(await reg.accounts.passwordReset(linkTokenHash(token), r.expires_at), undefined);
    const id = (await reg.member('resetme')).id;
    await reg.accounts.setTotpSecret(id, 'plain:GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ');
    await reg.accounts.enableTwoFactor(id, 1, 1, ['h']);
  } finally {
    await db.close();
  }
  assert.equal(json('member', 'show', 'resetme').two_factor, 'on');
  assert.equal(json('member', '2fa-reset', 'resetme').two_factor, 'off');
  assert.equal(json('member', 'show', 'resetme').two_factor, 'off');
  assert.match(herald('member', 'reset-link', 'nobody').stderr, /no member "nobody"/);
});
