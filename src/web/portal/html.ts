import { stripControls } from '../../core/text.ts';

/**
 * HTML templates as tagged templates that escape by default: every interpolated value is text
 * unless it is already `Html` (another template, or `raw()` for trusted markup). Arrays are
 * concatenated; `null`, `undefined` and `false` render nothing, so `${cond && html`...`}` works.
 */
export class Html {
  readonly value: string;
  constructor(value: string) {
    this.value = value;
  }
  toString(): string {
    return this.value;
  }
}

const ESC: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/**
 * Escapes text for element content and quoted attribute values, in HTML and in XML (the RSS
 * feed): characters XML cannot carry at all are dropped (core/text.ts), so no stored name, however
 * old, can make a page or a feed unreadable.
 */
export function escapeHtml(s: string): string {
  return stripControls(s).replace(/[&<>"']/g, (c) => ESC[c]);
}

function render(v: unknown): string {
  if (v instanceof Html) return v.value;
  if (v === null || v === undefined || v === false) return '';
  if (Array.isArray(v)) return v.map(render).join('');
  return escapeHtml(String(v));
}

export function html(strings: TemplateStringsArray, ...values: unknown[]): Html {
  let out = strings[0];
  for (let i = 0; i < values.length; i++) out += render(values[i]) + strings[i + 1];
  return new Html(out);
}

/** Trusted markup, inserted as is. Never pass user input. */
export function raw(s: string): Html {
  return new Html(s);
}

/** JSON for a `data-*` attribute (escaped as an attribute by the template). */
export function jsonAttr(v: unknown): string {
  return JSON.stringify(v);
}
