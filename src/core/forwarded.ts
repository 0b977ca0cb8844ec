import { type PeerAddress, parseIp } from './address.ts';

/**
 * Which peers are reverse proxies (`trusted_proxies`) and who the client behind them is: the one
 * rule the tracker's HTTP frontend and the portal (login limits) share.
 *
 * Threat model: anyone can send `X-Forwarded-For` with any content, so only entries written by a
 * proxy we trust count. A proxy appends the address it received the request from at the right of
 * the header (nginx `$proxy_add_x_forwarded_for`; HAProxy adds a header line of its own, and
 * several lines read as one list joined in order). Walking from the right, each entry that is a
 * trusted proxy vouches for the entry to its left; the first entry that is not one is the client.
 * Everything left of it is whatever the client sent and is never believed (taking the first entry
 * let anyone register a peer at, or remove a peer of, an address of their choosing).
 *
 * `"*"` trusts every direct peer (only right when no client reaches Herald except through the
 * proxy) but no address inside the header: the rightmost entry is then the client.
 */
export class TrustedProxies {
  readonly #all: boolean;
  /** Trusted addresses, as their bytes in latin1 (a string key: no allocation for IPv4 compare). */
  readonly #set = new Set<string>();

  constructor(list: readonly string[]) {
    this.#all = list.includes('*');
    for (const p of list) {
      if (p === '*') continue;
      const a = parseIp(p);
      if (a === null) throw new Error(`trusted_proxies: "${p}" is not an IP address (or "*")`);
      this.#set.add(keyOf(a));
    }
  }

  /** Whether a direct peer is a trusted proxy (its X-Forwarded-For is then read). */
  trusts(peer: PeerAddress | null): boolean {
    if (this.#all) return true;
    return peer !== null && this.#set.size > 0 && this.#set.has(keyOf(peer));
  }

  /**
   * The client of a request `peer` sent with this X-Forwarded-For value (several header lines
   * joined with ','): `peer` itself unless it is a trusted proxy; else the rightmost entry that is
   * not a trusted proxy. An entry that is not an address ends the walk at the nearest trusted
   * hop (a proxy we trust never writes one).
   */
  client(peer: PeerAddress, xForwardedFor: string | null | undefined): PeerAddress {
    if (!this.trusts(peer) || xForwardedFor == null) return peer;
    let hop = peer;
    let end = xForwardedFor.length;
    while (end >= 0) {
      const comma = xForwardedFor.lastIndexOf(',', end - 1);
      const a = parseEntry(xForwardedFor.slice(comma + 1, end));
      if (a === null) return hop;
      if (!this.#set.has(keyOf(a))) return a;
      hop = a;
      if (comma < 0) return hop;
      end = comma;
    }
    return hop;
  }
}

function keyOf(a: PeerAddress): string {
  return String.fromCharCode(...a.bytes);
}

/** One X-Forwarded-For entry: an address, `[v6]`, `[v6]:port` or `v4:port`; null otherwise. */
function parseEntry(raw: string): PeerAddress | null {
  const s = raw.trim();
  if (s.startsWith('[')) {
    const close = s.indexOf(']');
    if (close < 0 || (close + 1 < s.length && s[close + 1] !== ':')) return null;
    return parseIp(s.slice(1, close));
  }
  const colon = s.indexOf(':');
  if (colon > 0 && colon === s.lastIndexOf(':')) return parseIp(s.slice(0, colon));
  return parseIp(s);
}
