import { parseClasses } from '../../config/classes.ts';
import type { PublicMember } from '../../db/registry.ts';
import { type ClassDef, classIndex } from '../../policy/classes.ts';
import { bytes, type Ctx, csrfField, date } from './context.ts';
import { html } from './html.ts';

/** The configured classes (parsed once per configuration object). */
const parsed = new WeakMap<readonly string[], ClassDef[]>();
export function portalClasses(ctx: Ctx): ClassDef[] {
  const list = ctx.deps.config.memberClasses;
  let c = parsed.get(list);
  if (c === undefined) {
    c = parseClasses(list);
    parsed.set(list, c);
  }
  return c;
}

/** A member's class name ('' with no classes configured). */
export function className(ctx: Ctx, m: PublicMember): string {
  const classes = portalClasses(ctx);
  return classes.length === 0 ? '' : (m.class ?? classes[0].name);
}

function gives(c: ClassDef): string {
  const parts = [
    c.slots > 0
      ? `${c.slots} torrent${c.slots === 1 ? '' : 's'} leeched at once`
      : 'no limit on torrents leeched at once',
  ];
  if (c.uploadFactor !== 100) parts.push(`uploads count ${c.uploadFactor}%`);
  if (c.downloadFactor !== 100) parts.push(`downloads count ${c.downloadFactor}%`);
  if (c.invites !== null) parts.push(`${c.invites} invite${c.invites === 1 ? '' : 's'} per invite period`);
  if (c.hnrImmune) parts.push('no hit-and-runs');
  return parts.join(', ');
}

function needs(c: ClassDef): string {
  const parts: string[] = [];
  if (c.days > 0) parts.push(`an account ${c.days} days old`);
  if (c.uploaded > 0) parts.push(`${bytes(c.uploaded)} uploaded`);
  if (c.ratioPercent > 0) parts.push(`a ratio of ${(c.ratioPercent / 100).toFixed(2)}`);
  if (c.seedHours > 0) parts.push(`${c.seedHours} hours of seeding`);
  return parts.length === 0 ? 'nothing more' : parts.join(', ');
}

/**
 * The member's class on their profile (the member and staff see it): what it gives, what the
 * next class needs, and the changes so far.
 */
export function classSection(
  ctx: Ctx,
  m: PublicMember,
  history: { from_class: string | null; to_class: string; reason: string; at: number }[],
): ReturnType<typeof html> | '' {
  const classes = portalClasses(ctx);
  if (classes.length === 0) return '';
  const i = classIndex(m.class, classes);
  const cur = classes[i] ?? classes[0];
  const next = classes[i + 1];
  return html`<section class="card mt" aria-labelledby="class"><h2 id="class">Class: ${cur.name}</h2>
<p>${cur.name} gives ${gives(cur)}.${m.class_locked === 1 ? ' Set by staff.' : ''}</p>
${next !== undefined && m.class_locked !== 1 ? html`<p class="muted" id="next-class">${next.name} needs ${needs(next)} (${gives(next)}). Classes are reviewed every hour or so.</p>` : ''}
${
  history.length > 0
    ? html`<ul class="muted" id="class-history">${history.map((h) => html`<li>${date(h.at)}: ${h.from_class ?? classes[0].name} → ${h.to_class} (${h.reason})</li>`)}</ul>`
    : ''
}
</section>`;
}

/** Staff: set a member's class by hand, or back to automatic. */
export function classForm(ctx: Ctx, m: PublicMember) {
  const classes = portalClasses(ctx);
  if (classes.length === 0) return '';
  const sel = m.class_locked === 1 ? (m.class ?? '') : 'auto';
  return html`<form method="post" action="/staff/members/${m.id}" class="inline mt">
${csrfField(ctx)}<input type="hidden" name="action" value="class">
<label>Class <select name="class"><option value="auto"${sel === 'auto' ? html` selected` : ''}>automatic (now ${m.class ?? classes[0].name})</option>${classes.map((c) => html`<option${sel === c.name ? html` selected` : ''}>${c.name}</option>`)}</select></label>
<button type="submit">Set class</button>
</form>`;
}
