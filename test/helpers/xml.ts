/**
 * A small, strict XML 1.0 well-formedness check for feeds, in the spirit of what a feed reader's
 * parser refuses: bytes must be UTF-8; every character must be an XML `Char` (no C0 controls other
 * than tab, LF and CR; no U+FFFE/U+FFFF); tags nest and close; one root element; attribute values
 * are quoted; `&` starts only the five predefined entities or a character reference to a legal
 * character. Returns null when the document is well-formed, else what is wrong and where.
 * Not a parser for everything XML allows (no DOCTYPE, no CDATA): Herald's feeds use none of it.
 */
export function xmlWellFormedError(bytes: Uint8Array): string | null {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return 'not UTF-8';
  }
  for (let i = 0; i < text.length; i++) {
    const c = text.codePointAt(i)!;
    if (c > 0xffff) i++;
    if (!isXmlChar(c)) return `character U+${c.toString(16).padStart(4, '0')} at ${i} is not allowed in XML`;
  }
  const NAME = /^[A-Za-z_:][A-Za-z0-9_:.-]*/;
  const badReference = (s: string, at: number): string | null => {
    for (const m of s.matchAll(/&([^;]*);?/g)) {
      const ref = m[1];
      if (!m[0].endsWith(';')) return `unterminated reference at ${at + m.index}`;
      if (['lt', 'gt', 'amp', 'quot', 'apos'].includes(ref)) continue;
      const n = /^#x[0-9A-Fa-f]+$/.test(ref)
        ? Number.parseInt(ref.slice(2), 16)
        : /^#[0-9]+$/.test(ref)
          ? Number(ref.slice(1))
          : -1;
      if (n < 0) return `unknown entity &${ref}; at ${at + m.index}`;
      if (!isXmlChar(n))
        return `character reference &${ref}; at ${at + m.index} names a character XML forbids`;
    }
    return null;
  };
  let pos = 0;
  if (text.startsWith('<?xml')) {
    const end = text.indexOf('?>');
    if (end < 0) return 'unterminated XML declaration';
    pos = end + 2;
  }
  const open: string[] = [];
  let roots = 0;
  while (pos < text.length) {
    const lt = text.indexOf('<', pos);
    const chunk = text.slice(pos, lt < 0 ? text.length : lt);
    if (open.length === 0 && chunk.trim() !== '') return `text outside the root element at ${pos}`;
    if (chunk.includes(']]>')) return `"]]>" in text at ${pos}`;
    const bad = badReference(chunk, pos);
    if (bad) return bad;
    if (lt < 0) break;
    const gt = text.indexOf('>', lt);
    if (gt < 0) return `unterminated tag at ${lt}`;
    const tag = text.slice(lt + 1, gt);
    pos = gt + 1;
    if (tag.startsWith('!--')) {
      const end = text.indexOf('-->', lt);
      if (end < 0) return `unterminated comment at ${lt}`;
      pos = end + 3;
      continue;
    }
    if (tag.startsWith('/')) {
      const name = tag.slice(1).trim();
      if (open.pop() !== name) return `</${name}> at ${lt} closes nothing open`;
      continue;
    }
    const name = NAME.exec(tag)?.[0];
    if (!name) return `bad tag name at ${lt}`;
    const selfClosing = tag.endsWith('/');
    let attrs = tag.slice(name.length, selfClosing ? -1 : undefined);
    const seen = new Set<string>();
    while (attrs.trim() !== '') {
      const m = /^\s+([A-Za-z_:][A-Za-z0-9_:.-]*)\s*=\s*("([^"<]*)"|'([^'<]*)')/.exec(attrs);
      if (!m) return `malformed attribute in <${name}> at ${lt}`;
      if (seen.has(m[1])) return `attribute ${m[1]} twice in <${name}> at ${lt}`;
      seen.add(m[1]);
      const badAttr = badReference(m[3] ?? m[4], lt);
      if (badAttr) return badAttr;
      attrs = attrs.slice(m[0].length);
    }
    if (open.length === 0 && ++roots > 1) return `a second root element at ${lt}`;
    if (!selfClosing) open.push(name);
  }
  if (open.length > 0) return `<${open.at(-1)}> is never closed`;
  if (roots === 0) return 'no root element';
  return null;
}

/** The XML 1.0 `Char` production. */
function isXmlChar(c: number): boolean {
  return (
    c === 0x9 ||
    c === 0xa ||
    c === 0xd ||
    (c >= 0x20 && c <= 0xd7ff) ||
    (c >= 0xe000 && c <= 0xfffd) ||
    (c >= 0x10000 && c <= 0x10ffff)
  );
}
