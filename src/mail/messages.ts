import { type Html, html } from '../web/portal/html.ts';
import type { MailMessage } from './mailer.ts';

/**
 * The account mails (issue #16), each as plain text and HTML. Names and reasons that members or
 * staff typed are escaped in the HTML part and kept to one line in the subject (a subject never
 * carries user text other than the site name and a username, which the username rules keep to
 * letters, digits, '.', '_' and '-').
 */
export interface Site {
  name: string;
  /** The portal's public address (`site_url`), without a trailing slash. */
  url: string;
}

const line = (s: string) => s.replace(/[\x00-\x1f\x7f]+/g, ' ').trim();

export const siteOf = (name: string, url: string): Site => ({
  name: line(name),
  url: url.replace(/\/+$/, ''),
});

function body(site: Site, paragraphs: (string | { link: string })[]): { text: string; html: string } {
  const text = `${paragraphs.map((p) => (typeof p === 'string' ? p : p.link)).join('\n\n')}\n\n-- \n${site.name}\n${site.url}\n`;
  const parts: Html[] = paragraphs.map((p) =>
    typeof p === 'string' ? html`<p>${p}</p>` : html`<p><a href="${p.link}">${p.link}</a></p>`,
  );
  const doc = html`<!doctype html><html><body>${parts}<p style="color:#666">— ${site.name}</p></body></html>`;
  return { text, html: doc.value };
}

function mail(
  kind: string,
  to: string,
  subject: string,
  site: Site,
  paragraphs: (string | { link: string })[],
) {
  return {
    kind,
    to,
    subject: line(`[${site.name}] ${subject}`),
    ...body(site, paragraphs),
  } satisfies MailMessage;
}

export function invitationMail(
  site: Site,
  to: string,
  o: { inviter: string | null; code: string; expiresAt: number },
): MailMessage {
  const until = new Date(o.expiresAt * 1000).toISOString().slice(0, 16).replace('T', ' ');
  return mail('invitation', to, 'You are invited', site, [
    `${o.inviter ? `${o.inviter} invites` : 'You are invited'} you to join ${site.name}.`,
    `Create your account with this link (it works once, until ${until} UTC):`,
    { link: `${site.url}/register?invite=${encodeURIComponent(o.code)}` },
  ]);
}

export function resetMail(
  site: Site,
  to: string,
  o: { username: string; token: string; minutes: number },
): MailMessage {
  return mail('reset', to, `Password reset for ${o.username}`, site, [
    `Someone (we hope you) asked to reset the password of the account "${o.username}".`,
    `Choose a new password with this link. It works once, for ${o.minutes} minutes, and logs out every session of the account:`,
    { link: `${site.url}/reset/${o.token}` },
    'If you did not ask for this, ignore this mail: your password stays as it is.',
  ]);
}

export function ratioWarningMail(
  site: Site,
  to: string,
  o: { username: string; ratio: string; minPercent: number; days: number },
): MailMessage {
  return mail('ratio-warning', to, 'Ratio warning', site, [
    `Hello ${o.username}, your ratio is ${o.ratio}, below the ${(o.minPercent / 100).toFixed(2)} this site asks for.`,
    `Seed what you have downloaded: if your ratio is still below it in ${o.days} days, you lose download rights until it is back up (seeding keeps working).`,
    { link: `${site.url}/me` },
  ]);
}

export function hitAndRunMail(
  site: Site,
  to: string,
  o: { username: string; torrent: string; torrentId: number },
): MailMessage {
  return mail('hit-and-run', to, 'Hit-and-run', site, [
    `Hello ${o.username}, you downloaded "${o.torrent}" and did not seed it long enough: it is now a hit-and-run.`,
    'Seed it again to clear it; too many hit-and-runs cost download rights.',
    { link: `${site.url}/torrent/${o.torrentId}` },
  ]);
}

export function applicationMail(
  site: Site,
  to: string,
  o: { username: string; approved: boolean; token: string; reason: string | null },
): MailMessage {
  return mail('application', to, o.approved ? 'Your application was approved' : 'Your application', site, [
    o.approved
      ? `Welcome, ${o.username}: your application was approved. Your status page has your invitation.`
      : `Your application as ${o.username} was not approved${o.reason ? `: ${o.reason}` : '.'}`,
    { link: `${site.url}/apply/status/${o.token}` },
  ]);
}
