/** Text for people: sizes in messages and pages, and what markup can carry. */

/** Binary units, for people: `64.0 KiB`, `4.00 MiB`. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

/*
 * XML 1.0 has no way to carry the C0 control characters other than tab, line feed and carriage
 * return, nor U+FFFE and U+FFFF, not even as character references: one such character in a
 * torrent name makes every strict feed reader drop the whole RSS feed, and HTML calls them parse
 * errors. Herald refuses them in what people type (names, categories, descriptions:
 * `controlCharacters`) and strips them from everything it writes into markup (`stripControls`,
 * in the HTML and RSS escaping), so rows stored before the check, and names read from .torrent
 * files, are safe too. DEL (U+007F) goes with them: XML allows it, but it is invisible and no
 * name needs it. So do the explicit bidirectional formatting characters (embeddings, overrides,
 * isolates: U+202A-U+202E, U+2066-U+2069): an override makes `invoice<RLO>fdp.exe` read
 * `invoiceexe.pdf` in a file list, and one left open reorders the rest of its line. Right-to-left
 * text needs none of them (the letters carry their direction; U+200E/U+200F marks stay).
 */
const CONTROLS = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f\u202a-\u202e\u2066-\u2069\ufffe\uffff]/;
const CONTROLS_AND_BREAKS = /[\u0000-\u001f\u007f\u202a-\u202e\u2066-\u2069\ufffe\uffff]/;
const STRIP = new RegExp(CONTROLS.source, 'g');
/** A UTF-16 surrogate without its other half (`String.prototype.isWellFormed`, ES2024). */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** `s` without the characters no page or feed may carry (tab, LF and CR stay). */
export function stripControls(s: string): string {
  return s.replace(STRIP, '');
}

/**
 * Whether typed text holds characters Herald refuses: control characters (tab and line breaks
 * too, unless `multiline`), U+FFFE/U+FFFF, or a lone UTF-16 surrogate (JSON can carry one).
 */
export function controlCharacters(s: string, multiline = false): boolean {
  return (multiline ? CONTROLS : CONTROLS_AND_BREAKS).test(s) || LONE_SURROGATE.test(s);
}
