import type { Family } from './types.ts';

/** A peer address in wire form: 4 bytes (family 4) or 16 bytes (family 6). */
export interface PeerAddress {
  family: Family;
  bytes: Uint8Array;
}

const MAPPED_PREFIX = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

/**
 * Parses a textual IPv4 or IPv6 address (as `socket.remoteAddress` gives it, or an `ip=` /
 * `X-Forwarded-For` value). An IPv4-mapped IPv6 address (`::ffff:1.2.3.4`) is family 4: a
 * dual-stack socket reports IPv4 peers that way, and they belong with the IPv4 peers.
 * Returns null for anything else (zone ids are stripped).
 */
export function parseIp(text: string): PeerAddress | null {
  if (text.length === 0 || text.length > 64) return null;
  const v4 = parseIpv4(text);
  if (v4 !== null) return { family: 4, bytes: v4 };
  const zone = text.indexOf('%');
  const v6 = parseIpv6(zone >= 0 ? text.slice(0, zone) : text);
  if (v6 === null) return null;
  let mapped = true;
  for (let i = 0; i < 12; i++) {
    if (v6[i] !== MAPPED_PREFIX[i]) {
      mapped = false;
      break;
    }
  }
  if (mapped) return { family: 4, bytes: v6.slice(12) };
  return { family: 6, bytes: v6 };
}

export function parseIpv4(text: string): Uint8Array | null {
  const out = new Uint8Array(4);
  let part = 0;
  let value = 0;
  let digits = 0;
  for (let i = 0; i <= text.length; i++) {
    const c = i < text.length ? text.charCodeAt(i) : 46;
    if (c === 46) {
      if (digits === 0 || part > 3) return null;
      out[part++] = value;
      value = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && value === 0) return null; // no leading zeros (octal ambiguity)
      value = value * 10 + (c - 48);
      if (value > 255 || ++digits > 3) return null;
    } else {
      return null;
    }
  }
  return part === 4 ? out : null;
}

export function parseIpv6(text: string): Uint8Array | null {
  const out = new Uint8Array(16);
  const dbl = text.indexOf('::');
  if (dbl !== text.lastIndexOf('::') && dbl >= 0) return null;
  const head = dbl >= 0 ? text.slice(0, dbl) : text;
  const tail = dbl >= 0 ? text.slice(dbl + 2) : '';
  const headGroups = head.length ? head.split(':') : [];
  const tailGroups = tail.length ? tail.split(':') : [];
  const words: number[] = [];
  const tailWords: number[] = [];
  const fill = (groups: string[], into: number[], allowV4Last: boolean): boolean => {
    for (let i = 0; i < groups.length; i++) {
      const g = groups[i];
      if (allowV4Last && i === groups.length - 1 && g.includes('.')) {
        const v4 = parseIpv4(g);
        if (v4 === null) return false;
        into.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
        continue;
      }
      if (g.length === 0 || g.length > 4 || !/^[0-9a-fA-F]+$/.test(g)) return false;
      into.push(Number.parseInt(g, 16));
    }
    return true;
  };
  if (dbl >= 0) {
    if (!fill(headGroups, words, false) || !fill(tailGroups, tailWords, true)) return null;
    if (words.length + tailWords.length > 7) return null;
  } else {
    if (!fill(headGroups, words, true) || words.length !== 8) return null;
  }
  for (let i = 0; i < words.length; i++) {
    out[2 * i] = words[i] >> 8;
    out[2 * i + 1] = words[i] & 0xff;
  }
  const start = 8 - tailWords.length;
  for (let i = 0; i < tailWords.length; i++) {
    out[2 * (start + i)] = tailWords[i] >> 8;
    out[2 * (start + i) + 1] = tailWords[i] & 0xff;
  }
  return out;
}

/** Text form of a 4- or 16-byte address (RFC 5952 compression for IPv6). */
export function formatIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push((bytes[i] << 8) | bytes[i + 1]);
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = words.map((w) => w.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/** Splits `HOST:PORT` / `[V6]:PORT`. Returns null when malformed. */
export function parseHostPort(text: string): { host: string; port: number } | null {
  let host: string;
  let portText: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0 || text[close + 1] !== ':') return null;
    host = text.slice(1, close);
    portText = text.slice(close + 2);
    if (parseIpv6(host) === null) return null;
  } else {
    const colon = text.lastIndexOf(':');
    if (colon <= 0) return null;
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(':')) return null;
  }
  if (!/^[0-9]{1,5}$/.test(portText)) return null;
  const port = Number(portText);
  if (port > 65535) return null;
  return { host, port };
}
