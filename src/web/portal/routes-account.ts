import QRCode from 'qrcode';
import { addressKey } from '../../core/limiter.ts';
import type { PublicMember } from '../../db/registry.ts';
import { plainAddress } from '../../mail/mailer.ts';
import { applicationMail, invitationMail, resetMail, type Site, siteOf } from '../../mail/messages.ts';
import { AttemptLimit } from './attempts.ts';
import {
  type Ctx,
  csrfField,
  errorPage,
  field,
  origin,
  page,
  redirect,
  STAFF,
  staffRefusal,
} from './context.ts';
import { type Html, html } from './html.ts';
import { type Route, SESSION_COOKIE, secondFactor } from './routes-auth.ts';
import { hashPassword, parseCookies, tokenId, verifyPassword } from './security.ts';
import {
  checkTotp,
  linkTokenHash,
  linkTokenOk,
  newLinkToken,
  newRecoveryCodes,
  newTotpSecret,
  normalRecoveryCode,
  openSecret,
  recoveryHash,
  sealSecret,
  totpUri,
} from './two-factor.ts';

/**
 * Account mail, password resets and two-factor authentication (issue #16): the pages a member
 * uses (forgot password, reset link, e-mail address, 2FA enrolment and turning it off) and the
 * staff's part (a reset link to hand over, resetting a member's 2FA). The second login step
 * (`/login/2fa`) lives in routes-auth.ts, with the login limits it shares.
 */

/** Where links in mails and the links staff hand over point: `site_url`, else this request's address. */
function siteFor(ctx: Ctx): Site {
  return siteOf(ctx.deps.config.siteName, ctx.deps.config.siteUrl || origin(ctx));
}

/** A one-time password reset link for a member (stored as its hash); `by`: staff who made it. */
export async function makeResetLink(ctx: Ctx, m: PublicMember, by: number | null): Promise<string> {
  const token = newLinkToken();
  await ctx.reg.accounts.createPasswordReset({
    memberId: m.id,
    tokenHash: linkTokenHash(token),
    expiresAt: ctx.now + ctx.deps.config.resetLinkMinutes * 60,
    by,
  });
  return token;
}

/** Sends an invitation mail when mail is on and the address is one; whether it was queued. */
export function mailInvitation(ctx: Ctx, to: string, code: string, expiresAt: number): boolean {
  const mailer = ctx.deps.mailer;
  if (!mailer || plainAddress(to) === null) return false;
  return mailer.send(
    invitationMail(siteFor(ctx), to, { inviter: ctx.member?.username ?? null, code, expiresAt }),
  );
}

/** Mails an applicant staff's decision (with mail on): the status page has the invitation. */
export async function mailDecision(ctx: Ctx, id: number): Promise<void> {
  const a = ctx.deps.mailer ? await ctx.reg.accounts.application(id) : undefined;
  if (!a || a.status === 'pending' || a.token === null || plainAddress(a.email) === null) return;
  ctx.deps.mailer!.send(
    applicationMail(siteFor(ctx), a.email, {
      username: a.username,
      approved: a.status === 'approved',
      token: a.token,
      reason: a.reason,
    }),
  );
}

const SAME_ANSWER =
  'If an account with that name or e-mail address exists and has an e-mail address, a reset link is on its way. It works once, for a limited time.';

async function qrDataUrl(text: string): Promise<string> {
  const svg = await QRCode.toString(text, { type: 'svg', errorCorrectionLevel: 'M', margin: 2, width: 200 });
  return `data:image/svg+xml;base64,${Buffer.from(svg).toString('base64')}`;
}

/**
 * The current password a member types again to change the password or the e-mail address (where
 * reset links go), or to turn two-factor authentication on (whose phone logs in from then on): a
 * session alone, stolen or left open, cannot take the account over or lock its owner out. Checks
 * are limited per member (5 wrong in 15 minutes, the three forms together), so a session cannot
 * be used to guess the password on either.
 */
export class CurrentPassword {
  #tries = new AttemptLimit('current-password', { limit: 5, windowMs: 15 * 60_000 });

  /** Checks the form's `current` field for the logged-in member. */
  async check(ctx: Ctx): Promise<'ok' | 'wrong' | 'limited'> {
    const me = ctx.member!;
    const key = String(me.id);
    // Counted before the (slow) check, so requests at once cannot all pass the limit first.
    if ((await this.#tries.take(ctx.reg.accounts, key)) > 0) return 'limited';
    let ok = false;
    try {
      const cred = await ctx.reg.accounts.credentials(me.username);
      ok = await verifyPassword(ctx.form.fields.get('current') ?? '', cred?.password_hash ?? null);
    } finally {
      if (ok) await this.#tries.release(ctx.reg.accounts, key);
    }
    return ok ? 'ok' : 'wrong';
  }
}

export function accountRoutes(current = new CurrentPassword()): Route[] {
  // Reset requests: 5 per client address and 3 mails per member an hour (no mail bombing).
  const forgotByIp = new AttemptLimit('forgot-ip', { limit: 5, windowMs: 3600_000 });
  const forgotByMember = new AttemptLimit('forgot-member', { limit: 3, windowMs: 3600_000 });
  // Codes typed to turn 2FA off: 5 per member in 15 minutes (a stolen session cannot guess on).
  const disableTries = new AttemptLimit('2fa-disable', { limit: 5, windowMs: 15 * 60_000 });

  const forgotForm = (ctx: Ctx, opts: { flash?: string; error?: string; status?: number } = {}) =>
    page(ctx, {
      title: 'Forgot password',
      status: opts.status,
      error: opts.error,
      flash: opts.flash,
      body: html`<div class="card narrow"><h1>Forgot your password?</h1>
${
  ctx.deps.mailer
    ? html`<p>Give your username or e-mail address: we mail a link to choose a new password.</p>
<form method="post" action="/forgot" class="stack">${csrfField(ctx)}
<label>Username or e-mail <input name="who" required maxlength="254" autocomplete="username"></label>
<button type="submit">Send reset link</button></form>`
    : html`<p>This site sends no mail: ask a staff member for a password reset link.</p>`
}</div>`,
    });

  const resetForm = (ctx: Ctx, m: PublicMember, error?: string) =>
    page(ctx, {
      title: 'Choose a new password',
      status: error ? 400 : 200,
      error,
      body: html`<div class="card narrow"><h1>Choose a new password</h1>
<p>For the account <strong>${m.username}</strong>. Every session of the account is logged out.</p>
<form method="post" class="stack">${csrfField(ctx)}
<input type="text" name="username" autocomplete="username" value="${m.username}" hidden>
<label>New password <span class="hint">at least 10 characters</span><input type="password" name="password" autocomplete="new-password" required minlength="10" maxlength="1024"></label>
<label>Repeat new password <input type="password" name="password2" autocomplete="new-password" required minlength="10" maxlength="1024"></label>
<button type="submit">Set password</button></form></div>`,
    });

  const badLink = (ctx: Ctx) =>
    errorPage(
      ctx,
      404,
      'Reset link',
      'This reset link is unknown, used or expired. Ask for a new one on the "Forgot password" page, or ask staff.',
    );

  return [
    {
      method: 'GET',
      pattern: /^\/forgot$/,
      access: 'public',
      handle(ctx) {
        forgotForm(ctx);
      },
    },
    {
      method: 'POST',
      pattern: /^\/forgot$/,
      access: 'public',
      async handle(ctx) {
        const mailer = ctx.deps.mailer;
        if (!mailer) return forgotForm(ctx);
        const who = field(ctx, 'who').slice(0, 254);
        if (who === '')
          return forgotForm(ctx, { status: 400, error: 'Give your username or e-mail address.' });
        if ((await forgotByIp.take(ctx.reg.accounts, addressKey(ctx.ip))) > 0)
          return forgotForm(ctx, {
            status: 429,
            error: 'Too many reset requests from your address. Try again later.',
          });
        // The same answer whether or not anything matched: the form tells nobody who is a member.
        const found = who.includes('@')
          ? await ctx.reg.accounts.membersByEmail(who)
          : [await ctx.reg.findMember(who)].filter((m): m is PublicMember => m !== undefined);
        for (const m of found) {
          if (m.status !== 'active' || m.email === null || plainAddress(m.email) === null) continue;
          if ((await forgotByMember.take(ctx.reg.accounts, String(m.id))) > 0) continue;
          const token = await makeResetLink(ctx, m, null);
          mailer.send(
            resetMail(siteFor(ctx), m.email, {
              username: m.username,
              token,
              minutes: ctx.deps.config.resetLinkMinutes,
            }),
          );
        }
        forgotForm(ctx, { flash: SAME_ANSWER });
      },
    },
    {
      method: 'GET',
      pattern: /^\/reset\/([A-Za-z0-9_-]{1,64})$/,
      access: 'public',
      async handle(ctx) {
        const token = ctx.params[0];
        const m = linkTokenOk(token)
          ? await ctx.reg.accounts.passwordReset(linkTokenHash(token), ctx.now)
          : undefined;
        if (!m) return badLink(ctx);
        resetForm(ctx, m);
      },
    },
    {
      method: 'POST',
      pattern: /^\/reset\/([A-Za-z0-9_-]{1,64})$/,
      access: 'public',
      async handle(ctx) {
        const token = ctx.params[0];
        if (!linkTokenOk(token)) return badLink(ctx);
        const hash = linkTokenHash(token);
        const m = await ctx.reg.accounts.passwordReset(hash, ctx.now);
        if (!m) return badLink(ctx);
        const next = ctx.form.fields.get('password') ?? '';
        if (next.length < 10 || next.length > 1024)
          return resetForm(ctx, m, 'The new password needs at least 10 characters.');
        if (next !== (ctx.form.fields.get('password2') ?? ''))
          return resetForm(ctx, m, 'The two passwords differ.');
        const id = await ctx.reg.accounts.usePasswordReset(hash, ctx.now, await hashPassword(next));
        if (id === null) return badLink(ctx);
        redirect(ctx, '/login?msg=reset');
      },
    },
    {
      method: 'GET',
      pattern: /^\/me\/security$/,
      access: 'member',
      async handle(ctx) {
        await securityPage(ctx);
      },
    },
    {
      method: 'POST',
      pattern: /^\/me\/email$/,
      access: 'member',
      async handle(ctx) {
        const email = field(ctx, 'email');
        if (email !== '' && plainAddress(email) === null)
          return securityPage(ctx, { error: 'That e-mail address does not look right.' });
        const check = await current.check(ctx);
        if (check === 'limited')
          return securityPage(ctx, {
            error: 'Too many wrong passwords. Try again in 15 minutes.',
            status: 429,
          });
        if (check === 'wrong')
          return securityPage(ctx, { error: 'The current password is wrong.', status: 403 });
        await ctx.reg.updateMember(ctx.member!.id, { email: email === '' ? null : email });
        redirect(ctx, '/me/security?msg=email');
      },
    },
    {
      method: 'POST',
      pattern: /^\/me\/2fa\/setup$/,
      access: 'member',
      async handle(ctx) {
        const me = ctx.member!;
        if (ctx.twoFactor) return redirect(ctx, '/me/security');
        const secret = newTotpSecret();
        await ctx.reg.accounts.setTotpSecret(me.id, sealSecret(secret, ctx.deps.config.totpEncryptionKey));
        await enrolPage(ctx, secret);
      },
    },
    {
      method: 'POST',
      pattern: /^\/me\/2fa\/confirm$/,
      access: 'member',
      async handle(ctx) {
        const me = ctx.member!;
        if (ctx.twoFactor) return redirect(ctx, '/me/security');
        const tf = await ctx.reg.accounts.twoFactor(me.id);
        const secret = tf.secret === null ? null : openSecret(tf.secret, ctx.deps.config.totpEncryptionKey);
        if (secret === null) return redirect(ctx, '/me/security');
        // The password too: a session alone (stolen, or left open) cannot put its own phone
        // between the member and their account.
        const check = await current.check(ctx);
        if (check !== 'ok')
          return enrolPage(
            ctx,
            secret,
            check === 'limited'
              ? 'Too many wrong passwords. Try again in 15 minutes.'
              : 'Your current password is wrong.',
            check === 'limited' ? 429 : 403,
          );
        const step = checkTotp(secret, field(ctx, 'code'), Date.now(), null);
        if (step === null)
          return enrolPage(ctx, secret, 'That code is not right: type the 6 digits your app shows now.');
        const codes = newRecoveryCodes();
        await ctx.reg.accounts.enableTwoFactor(
          me.id,
          ctx.now,
          step,
          codes.map((c) => recoveryHash(normalRecoveryCode(c)!)),
        );
        // Every other session ends: none of them passed the second factor, and staff powers
        // under require_2fa_for_staff go by the member having it on (a session stolen before
        // would gain them now). This one just proved the password and a code.
        await ctx.reg.accounts.deleteOtherSessions(
          me.id,
          tokenId(parseCookies(ctx.req.headers.cookie).get(SESSION_COOKIE) ?? ''),
        );
        page(ctx, {
          title: 'Recovery codes',
          body: html`<div class="card narrow"><h1>Two-factor authentication is on</h1>
<p>Keep these recovery codes somewhere safe (printed, or in a password manager). Each logs you in <strong>once</strong> without your app. They are shown only now.</p>
<ul class="mono" id="recovery-codes">${codes.map((c) => html`<li>${c}</li>`)}</ul>
<p><a class="button" href="/me/security">Done</a></p></div>`,
        });
      },
    },
    {
      method: 'POST',
      pattern: /^\/me\/2fa\/disable$/,
      access: 'member',
      async handle(ctx) {
        const me = ctx.member!;
        if (!ctx.twoFactor) return redirect(ctx, '/me/security');
        if ((await disableTries.take(ctx.reg.accounts, String(me.id))) > 0)
          return securityPage(ctx, { error: 'Too many wrong codes. Try again in 15 minutes.', status: 429 });
        if (!(await secondFactor(ctx, me.id, field(ctx, 'code'))))
          return securityPage(ctx, { error: 'That code is not right.', status: 401 });
        await disableTries.release(ctx.reg.accounts, String(me.id));
        await ctx.reg.accounts.disableTwoFactor(me.id);
        redirect(ctx, '/me/security?msg=twofactor');
      },
    },
    {
      method: 'POST',
      pattern: /^\/staff\/members\/([0-9]{1,12})\/(reset-link|2fa-reset)$/,
      access: 'staff',
      async handle(ctx) {
        const me = ctx.member!;
        const m = await ctx.reg.findMember(Number(ctx.params[0]));
        if (!m) return errorPage(ctx, 404, 'Member', 'No such member.');
        const refused = staffRefusal(ctx, m);
        if (refused !== null) return errorPage(ctx, 403, 'Member', refused);
        if (ctx.params[1] === '2fa-reset') {
          await ctx.reg.accounts.disableTwoFactor(m.id);
          await ctx.reg.accounts.deleteMemberSessions(m.id);
          return redirect(ctx, `/member/${m.id}?msg=twofactor`);
        }
        const token = await makeResetLink(ctx, m, me.id);
        const link = `${siteFor(ctx).url}/reset/${token}`;
        page(ctx, {
          title: 'Reset link',
          nav: '/staff',
          body: html`<div class="card narrow"><h1>Password reset link for ${m.username}</h1>
<p>Hand this link to ${m.username} (it works once, for ${ctx.deps.config.resetLinkMinutes} minutes, and logs out every session of the account):</p>
<p><code id="reset-link">${link}</code></p><p><a href="/member/${m.id}">Back to ${m.username}</a></p></div>`,
        });
      },
    },
  ];

  async function securityPage(ctx: Ctx, opts: { error?: string; status?: number } = {}) {
    const me = ctx.member!;
    const tf = await ctx.reg.accounts.twoFactor(me.id);
    const required = ctx.deps.config.require2faForStaff && STAFF.includes(me.role);
    page(ctx, {
      title: 'Account security',
      status: opts.status ?? (opts.error ? 400 : 200),
      error: opts.error,
      nav: `/member/${me.id}`,
      body: html`<h1>Account security</h1>
<section class="card narrow" aria-labelledby="email-h"><h2 id="email-h">E-mail address</h2>
<p class="muted">${ctx.deps.mailer ? 'For password reset links and notices (ratio warnings, hit-and-runs).' : 'This site sends no mail today; staff see the address.'}</p>
<form method="post" action="/me/email" class="stack">${csrfField(ctx)}
<label>E-mail <input name="email" type="email" maxlength="254" autocomplete="email" value="${me.email ?? ''}"></label>
<label>Current password <input name="current" type="password" autocomplete="current-password" required maxlength="1024"></label>
<button type="submit">Save e-mail address</button></form></section>
<section class="card narrow" aria-labelledby="tfa-h"><h2 id="tfa-h">Two-factor authentication</h2>
${
  tf.enabledAt !== null
    ? html`<p id="tfa-status">Two-factor authentication is <strong>on</strong>. Recovery codes left: <strong>${tf.recoveryLeft}</strong>.</p>
<form method="post" action="/me/2fa/disable" class="stack">${csrfField(ctx)}
<label>Code from your app, or a recovery code <input name="code" autocomplete="one-time-code" required maxlength="32"></label>
<button class="secondary" type="submit">Turn two-factor authentication off</button></form>`
    : html`<p id="tfa-status">Two-factor authentication is <strong>off</strong>.${required ? html` <strong>Staff pages need it on.</strong>` : ''} With it on, logging in asks for a code from an authenticator app after your password.</p>
<form method="post" action="/me/2fa/setup">${csrfField(ctx)}<button type="submit">Set up two-factor authentication</button></form>`
}</section>`,
    });
  }

  async function enrolPage(ctx: Ctx, secret: string, error?: string, status = 400) {
    const uri = totpUri(secret, ctx.member!.username, ctx.deps.config.siteName);
    page(ctx, {
      title: 'Set up two-factor authentication',
      status: error ? status : 200,
      error,
      nav: `/member/${ctx.member!.id}`,
      body: html`<div class="card narrow"><h1>Set up two-factor authentication</h1>
<p>Scan this code with an authenticator app (Aegis, FreeOTP, Google Authenticator, 1Password, …):</p>
<p><img id="totp-qr" src="${await qrDataUrl(uri)}" alt="QR code of your two-factor secret" width="200" height="200"></p>
<p>Or type the secret by hand: <code id="totp-secret">${secret}</code></p>
<form method="post" action="/me/2fa/confirm" class="stack">${csrfField(ctx)}
<label>The 6-digit code your app shows <input name="code" inputmode="numeric" autocomplete="one-time-code" required pattern="[0-9 ]{6,8}" maxlength="8"></label>
<label>Current password <input name="current" type="password" autocomplete="current-password" required maxlength="1024"></label>
<button type="submit">Turn on</button></form></div>`,
    });
  }
}

/** The staff's account tools on a member's profile: a reset link to hand over, resetting 2FA. */
export async function accountStaffForm(ctx: Ctx, m: PublicMember): Promise<Html> {
  if (staffRefusal(ctx, m) !== null) return html``;
  const tf = await ctx.reg.accounts.twoFactor(m.id);
  return html`<h3 class="mt">Account</h3>
<p>E-mail: <strong>${m.email ?? 'none'}</strong> · two-factor authentication: <strong>${tf.enabledAt !== null ? 'on' : 'off'}</strong></p>
<form method="post" action="/staff/members/${m.id}/reset-link" class="inline">${csrfField(ctx)}<button class="secondary" type="submit">Make a password reset link</button></form>
${
  tf.enabledAt !== null
    ? html`<form method="post" action="/staff/members/${m.id}/2fa-reset" class="inline">${csrfField(ctx)}<button class="secondary" type="submit">Reset two-factor authentication</button>
<span class="hint">For a member who lost their phone and recovery codes: 2FA goes off and their sessions end.</span></form>`
    : ''
}`;
}
