import { addressKey } from '../../core/limiter.ts';
import { checkUsername, RegistryError } from '../../db/registry.ts';
import { AttemptLimit } from './attempts.ts';
import { type Ctx, csrfField, errorPage, field, page, redirect } from './context.ts';
import { html } from './html.ts';
import {
  cookie,
  dummyVerify,
  hashPassword,
  newToken,
  PasswordBusyError,
  parseCookies,
  tokenId,
  verifyPassword,
} from './security.ts';
import { checkTotp, normalRecoveryCode, openSecret, recoveryHash } from './two-factor.ts';

export type Access = 'public' | 'member' | 'staff' | 'admin';

export interface Route {
  method: 'GET' | 'POST';
  pattern: RegExp;
  access: Access;
  /** Largest request body this route reads (default: the form limit, 256 KiB). */
  maxBody?: number;
  handle(ctx: Ctx): Promise<void> | void;
}

export const SESSION_COOKIE = 'herald_session';
const SESSION_SECONDS = 30 * 86400;
/** How long a login may wait for its second factor after the right password. */
const PENDING_SECONDS = 5 * 60;

/**
 * Checks a second factor typed by a member: a TOTP code (6 digits; accepted once per time step:
 * the step is recorded conditionally, so the same code at once in two requests passes only one)
 * or a recovery code (used up). Whether it was right.
 */
export async function secondFactor(ctx: Ctx, memberId: number, input: string): Promise<boolean> {
  const tf = await ctx.reg.accounts.twoFactor(memberId);
  if (tf.enabledAt === null || tf.secret === null) return false;
  const digits = input.replace(/\s/g, '');
  if (/^[0-9]{6}$/.test(digits)) {
    const secret = openSecret(tf.secret, ctx.deps.config.totpEncryptionKey);
    if (secret === null) return false;
    const step = checkTotp(secret, digits, Date.now(), tf.lastStep);
    return step !== null && (await ctx.reg.accounts.acceptTotpStep(memberId, step));
  }
  const code = normalRecoveryCode(input);
  return code !== null && (await ctx.reg.accounts.useRecoveryCode(memberId, recoveryHash(code), ctx.now));
}

/** Starts a session (a cookie); `pending`: it owes the second factor, for a few minutes only. */
async function startSession(ctx: Ctx, memberId: number, pending: boolean): Promise<void> {
  const token = newToken();
  const ttl = pending ? PENDING_SECONDS : SESSION_SECONDS;
  await ctx.reg.accounts.createSession({
    id: tokenId(token),
    memberId,
    csrf: newToken(),
    expiresAt: ctx.now + ttl,
    ip: ctx.ip,
    pending2fa: pending,
  });
  ctx.setCookies.push(cookie(SESSION_COOKIE, token, { maxAge: ttl, secure: ctx.secure }));
}

/**
 * Failed logins: 10 per client address (an IPv4 address or an IPv6 /64) and 5 per username in 15
 * minutes.
 *
 * Threat model. One host guessing many accounts meets the per-address limit; a botnet guessing
 * one account meets the per-username limit. Each attempt is counted before its password is
 * checked (scrypt takes tens of milliseconds, and parallel requests would otherwise all pass the
 * check first), and given back when the password was right. A per-username limit would let
 * anyone lock a member out by failing on purpose, so it does not apply from an address the
 * member has logged in from before (`login_addresses`): the owner keeps logging in from home
 * while a stranger elsewhere is refused; from such an address only the per-address limit holds.
 */
export interface LoginLimits {
  perIp: number;
  perUser: number;
  windowMs: number;
}

export function authRoutes(limits: LoginLimits = { perIp: 10, perUser: 5, windowMs: 15 * 60_000 }): Route[] {
  // In the database: one count for every process serving it (see AttemptLimit).
  const byIp = new AttemptLimit('login-ip', { limit: limits.perIp, windowMs: limits.windowMs });
  const byUser = new AttemptLimit('login-user', { limit: limits.perUser, windowMs: limits.windowMs });
  // Applications are anonymous: at most 5 per address and hour, so a script cannot flood staff.
  const applications = new AttemptLimit('apply-ip', { limit: 5, windowMs: 3600_000 });

  const loginForm = (ctx: Ctx, opts: { error?: string; status?: number; username?: string } = {}) =>
    page(ctx, {
      title: 'Log in',
      status: opts.status,
      error: opts.error,
      body: html`<div class="card narrow">
<h1>Log in</h1>
<form method="post" action="/login" class="stack">
${csrfField(ctx)}
<label>Username <input name="username" autocomplete="username" required maxlength="32" value="${opts.username ?? ''}"></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required maxlength="1024"></label>
<button type="submit">Log in</button>
</form>
<p class="muted"><a href="/forgot">Forgot your password?</a> No account? <a href="/register">Register with an invitation</a>${ctx.deps.config.applications ? html` or <a href="/apply">apply to join</a>` : ''}.</p>
</div>`,
    });

  const codeForm = (ctx: Ctx, opts: { error?: string; status?: number } = {}) =>
    page(ctx, {
      title: 'Two-factor code',
      status: opts.status,
      error: opts.error,
      body: html`<div class="card narrow">
<h1>Two-factor code</h1>
<p>Type the 6-digit code your authenticator app shows for this site, or one of your recovery codes.</p>
<form method="post" action="/login/2fa" class="stack">
${csrfField(ctx)}
<label>Code <input name="code" autocomplete="one-time-code" required maxlength="32" autofocus></label>
<button type="submit">Log in</button>
</form>
</div>`,
    });

  const registerForm = (
    ctx: Ctx,
    opts: {
      code: string;
      first: boolean;
      error?: string;
      status?: number;
      username?: string;
      email?: string;
    },
  ) =>
    page(ctx, {
      title: 'Register',
      status: opts.status,
      error: opts.error,
      body: html`<div class="card narrow">
<h1>Create your account</h1>
${opts.first ? html`<p>This is a new installation: the first account becomes the <strong>administrator</strong>.</p>` : ''}
<form method="post" action="/register" class="stack">
${csrfField(ctx)}
<input type="hidden" name="invite" value="${opts.code}">
<label>Username <span class="hint">2 to 32 letters, digits, ".", "_" or "-"; not only digits</span>
<input name="username" autocomplete="username" required minlength="2" maxlength="32" pattern="[A-Za-z0-9_.\\-]{2,32}" value="${opts.username ?? ''}"></label>
<label>E-mail <span class="hint">optional</span><input name="email" type="email" autocomplete="email" maxlength="254" value="${opts.email ?? ''}"></label>
<label>Password <span class="hint">at least 10 characters</span><input name="password" type="password" autocomplete="new-password" required minlength="10" maxlength="1024"></label>
<label>Repeat password <input name="password2" type="password" autocomplete="new-password" required minlength="10" maxlength="1024"></label>
<button type="submit">Create account</button>
</form>
</div>`,
    });

  /** Whether a registration with this code (or none) may proceed; the reason otherwise. */
  async function mayRegister(ctx: Ctx, code: string): Promise<{ first: boolean; why: string | null }> {
    const first = (await ctx.reg.counts()).members === 0;
    if (first) return { first, why: null };
    if (code !== '') {
      const inv = await ctx.reg.accounts.invitation(code);
      if (!inv || inv.used_by !== null || inv.expires_at <= ctx.now)
        return { first, why: 'This invitation is unknown, already used or expired. Ask for a new one.' };
      return { first, why: null };
    }
    if (ctx.deps.config.registration === 'open') return { first, why: null };
    return {
      first,
      why:
        ctx.deps.config.registration === 'closed'
          ? 'Registration is closed.'
          : 'Registration is by invitation only: open the link you were sent.',
    };
  }

  return [
    {
      method: 'GET',
      pattern: /^\/login$/,
      access: 'public',
      handle(ctx) {
        if (ctx.member) return redirect(ctx, '/torrents');
        loginForm(ctx);
      },
    },
    {
      method: 'POST',
      pattern: /^\/login$/,
      access: 'public',
      async handle(ctx) {
        const username = field(ctx, 'username').slice(0, 64);
        const password = ctx.form.fields.get('password') ?? '';
        const userKey = username.toLowerCase();
        const ipKey = addressKey(ctx.ip);
        const tooMany = (waitMs: number) =>
          loginForm(ctx, {
            status: 429,
            username,
            error: `Too many failed attempts. Try again in ${Math.ceil(waitMs / 60_000)} min.`,
          });
        const accounts = ctx.reg.accounts;
        // Counted now, before the password is checked (see LoginLimits).
        const ipWait = await byIp.take(accounts, ipKey);
        if (ipWait > 0) return tooMany(ipWait);
        const cred = await accounts.credentials(username, ipKey);
        const perUser = cred?.known !== true;
        if (perUser) {
          const userWait = await byUser.take(accounts, userKey);
          if (userWait > 0) {
            await byIp.release(accounts, ipKey);
            return tooMany(userWait);
          }
        }
        let ok = false;
        try {
          if (cred) ok = await verifyPassword(password, cred.password_hash);
          else await dummyVerify(password); // same cost for unknown names: timing tells nothing
        } catch (err) {
          if (!(err instanceof PasswordBusyError)) throw err;
          // Not checked, so not a failed attempt.
          await byIp.release(accounts, ipKey);
          if (perUser) await byUser.release(accounts, userKey);
          ctx.res.setHeader('retry-after', '5');
          return loginForm(ctx, {
            status: 503,
            username,
            error: 'The server is busy. Try again in a moment.',
          });
        }
        if (!cred || !ok)
          return loginForm(ctx, { status: 401, username, error: 'Wrong username or password.' });
        // The right password: not a failed attempt after all.
        await byIp.release(accounts, ipKey);
        if (perUser) await byUser.release(accounts, userKey);
        if (cred.status !== 'active')
          return loginForm(ctx, {
            status: 403,
            username,
            error: `This account is ${cred.status}${cred.status_reason ? `: ${cred.status_reason}` : '.'}`,
          });
        if (cred.totp_enabled_at !== null) {
          // The password was right; the login is not done until the second factor is given.
          await startSession(ctx, cred.id, true);
          return redirect(ctx, '/login/2fa');
        }
        await startSession(ctx, cred.id, false);
        await ctx.reg.accounts.rememberAddress(cred.id, ipKey, ctx.now);
        redirect(ctx, '/torrents');
      },
    },
    {
      method: 'GET',
      pattern: /^\/login\/2fa$/,
      access: 'public',
      handle(ctx) {
        if (ctx.member) return redirect(ctx, '/torrents');
        if (!ctx.pending) return redirect(ctx, '/login');
        codeForm(ctx);
      },
    },
    {
      method: 'POST',
      pattern: /^\/login\/2fa$/,
      access: 'public',
      async handle(ctx) {
        const m = ctx.pending;
        if (!m) return redirect(ctx, '/login');
        // A code attempt counts like a password attempt: per address, and per member (whoever
        // types here has the password already, so the owner's addresses are not exempt).
        const userKey = m.username.toLowerCase();
        const ipKey = addressKey(ctx.ip);
        const accounts = ctx.reg.accounts;
        const ipWait = await byIp.take(accounts, ipKey);
        const userWait = ipWait > 0 ? 0 : await byUser.take(accounts, userKey);
        if (ipWait > 0 || userWait > 0) {
          if (ipWait === 0) await byIp.release(accounts, ipKey);
          return codeForm(ctx, {
            status: 429,
            error: `Too many failed attempts. Try again in ${Math.ceil(Math.max(ipWait, userWait) / 60_000)} min.`,
          });
        }
        if (!(await secondFactor(ctx, m.id, field(ctx, 'code').slice(0, 64))))
          return codeForm(ctx, { status: 401, error: 'That code is not right, or was used already.' });
        await byIp.release(accounts, ipKey);
        await byUser.release(accounts, userKey);
        // A new session (new token) for the finished login; the pending one ends.
        const old = parseCookies(ctx.req.headers.cookie).get(SESSION_COOKIE);
        if (old) await ctx.reg.accounts.deleteSession(tokenId(old));
        await startSession(ctx, m.id, false);
        await ctx.reg.accounts.rememberAddress(m.id, ipKey, ctx.now);
        redirect(ctx, '/torrents');
      },
    },
    {
      method: 'POST',
      pattern: /^\/logout$/,
      access: 'public',
      async handle(ctx) {
        const token = parseCookies(ctx.req.headers.cookie).get(SESSION_COOKIE);
        if (token) await ctx.reg.accounts.deleteSession(tokenId(token));
        ctx.setCookies.push(cookie(SESSION_COOKIE, '', { maxAge: 0, secure: ctx.secure }));
        redirect(ctx, '/login?msg=loggedout');
      },
    },
    {
      method: 'GET',
      pattern: /^\/register$/,
      access: 'public',
      async handle(ctx) {
        if (ctx.member) return redirect(ctx, '/torrents');
        const code = (ctx.query.get('invite') ?? '').slice(0, 64);
        const { first, why } = await mayRegister(ctx, code);
        if (why !== null)
          return page(ctx, {
            title: 'Register',
            status: 403,
            body: html`<div class="card narrow"><h1>Register</h1><p>${why}</p>
${ctx.deps.config.applications ? html`<p><a class="button" href="/apply">Apply to join</a></p>` : ''}</div>`,
          });
        registerForm(ctx, { code, first });
      },
    },
    {
      method: 'POST',
      pattern: /^\/register$/,
      access: 'public',
      async handle(ctx) {
        const code = field(ctx, 'invite').slice(0, 64);
        const username = field(ctx, 'username');
        const email = field(ctx, 'email').slice(0, 254);
        const password = ctx.form.fields.get('password') ?? '';
        const again = (error: string, status = 400) =>
          registerForm(ctx, { code, first, error, status, username, email });
        const { first, why } = await mayRegister(ctx, code);
        if (why !== null) return errorPage(ctx, 403, 'Register', why);
        if (password.length < 10 || password.length > 1024)
          return again('The password needs at least 10 characters.');
        if (password !== (ctx.form.fields.get('password2') ?? '')) return again('The two passwords differ.');
        if (email !== '' && !/^[^\s@]+@[^\s@]+$/.test(email))
          return again('That e-mail address does not look right.');
        try {
          await ctx.reg.accounts.register({
            username,
            email: email === '' ? null : email,
            passwordHash: await hashPassword(password),
            code: code === '' ? null : code,
            open: ctx.deps.config.registration === 'open',
          });
        } catch (err) {
          if (err instanceof RegistryError) return again(err.message, err.status);
          throw err;
        }
        await ctx.deps.refreshPolicy();
        redirect(ctx, '/login?msg=registered');
      },
    },
    {
      method: 'GET',
      pattern: /^\/apply$/,
      access: 'public',
      handle(ctx) {
        if (!ctx.deps.config.applications)
          return errorPage(ctx, 404, 'Applications', 'Applications are closed.');
        applyForm(ctx);
      },
    },
    {
      method: 'POST',
      pattern: /^\/apply$/,
      access: 'public',
      async handle(ctx) {
        if (!ctx.deps.config.applications)
          return errorPage(ctx, 404, 'Applications', 'Applications are closed.');
        const username = field(ctx, 'username');
        const email = field(ctx, 'email');
        const body = field(ctx, 'body');
        try {
          checkUsername(username);
        } catch (err) {
          if (err instanceof RegistryError)
            return applyForm(ctx, `${err.message[0].toUpperCase()}${err.message.slice(1)}.`);
          throw err;
        }
        if (!/^[^\s@]+@[^\s@]+$/.test(email) || email.length > 254)
          return applyForm(ctx, 'A valid e-mail address, please.');
        if (body.length < 20 || body.length > 5000)
          return applyForm(ctx, 'Tell us a little about yourself (20 to 5000 characters).');
        if ((await applications.take(ctx.reg.accounts, addressKey(ctx.ip))) > 0)
          return errorPage(ctx, 429, 'Apply', 'Too many applications from your address. Try again later.');
        const a = await ctx.reg.accounts.addApplication({ username, email, body });
        redirect(ctx, `/apply/status/${a.token}`);
      },
    },
    {
      method: 'GET',
      pattern: /^\/apply\/status\/([A-Za-z0-9_-]{10,64})$/,
      access: 'public',
      async handle(ctx) {
        const a = await ctx.reg.accounts.applicationByToken(ctx.params[0]);
        if (!a) return errorPage(ctx, 404, 'Application', 'No such application.');
        const inv = a.invitation;
        page(ctx, {
          title: 'Your application',
          body: html`<div class="card narrow"><h1>Your application</h1>
<p>Keep this page's address: it shows the decision once staff have read your application.</p>
<p>Status: <strong>${a.status}</strong></p>
${a.status === 'rejected' && a.reason ? html`<p>Reason: ${a.reason}</p>` : ''}
${
  a.status === 'approved' && inv && inv.used_by === null
    ? html`<p>Welcome! <a class="button" href="/register?invite=${inv.code}">Create your account</a></p>`
    : ''
}</div>`,
        });
      },
    },
  ];
}

function applyForm(ctx: Ctx, error?: string) {
  page(ctx, {
    title: 'Apply',
    status: error ? 400 : 200,
    error,
    body: html`<div class="card narrow"><h1>Apply to join</h1>
<p class="muted">Staff read every application. If they approve it, your status page shows your invitation.</p>
<form method="post" action="/apply" class="stack">
${csrfField(ctx)}
<label>Username you would like <input name="username" required minlength="2" maxlength="32" value="${field(ctx, 'username')}"></label>
<label>E-mail <input name="email" type="email" required maxlength="254" value="${field(ctx, 'email')}"></label>
<label>About you <span class="hint">where you share today, what you would bring (20 to 5000 characters)</span>
<textarea name="body" required minlength="20" maxlength="5000">${field(ctx, 'body')}</textarea></label>
<button type="submit">Send application</button>
</form></div>`,
  });
}
