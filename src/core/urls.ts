/** The base URLs members reach the tracker by, and their personal announce URLs. */

type Listener = { host: string; port: number };

/**
 * Base URLs: the configured `public_urls`, or else one per listener, with a wildcard address
 * (0.0.0.0, ::) shown as 127.0.0.1 (the operator should set `public_urls`).
 */
export function announceBases(
  publicUrls: readonly string[],
  listeners: { http: Listener[]; https: Listener[]; udp: Listener[] },
): string[] {
  if (publicUrls.length > 0) return [...publicUrls];
  const host = (h: string) => (h === '0.0.0.0' || h === '::' ? '127.0.0.1' : h.includes(':') ? `[${h}]` : h);
  const urls = (scheme: string, list: Listener[]) => list.map((l) => `${scheme}://${host(l.host)}:${l.port}`);
  return [...urls('http', listeners.http), ...urls('https', listeners.https), ...urls('udp', listeners.udp)];
}

/** Announce URLs of a member: one per base URL, passkey in the path. */
export function announceUrls(bases: string[], passkey: string): string[] {
  return bases.map((b) => `${b.replace(/\/+$/, '')}/announce/${passkey}`);
}
