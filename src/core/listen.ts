import type { Server } from 'node:net';

/** Reasons for the usual errno codes of bind/listen, as people read them. */
const REASONS: Record<string, string> = {
  EADDRINUSE: 'address already in use',
  EACCES: 'permission denied (ports below 1024 need privileges)',
  EADDRNOTAVAIL: 'address not available on this host',
  EAFNOSUPPORT: 'address family not supported',
  ENOTFOUND: 'host name not found',
};

/**
 * A listener could not be opened. The message names the protocol, the address and the
 * configuration key it came from, e.g.
 * `cannot listen on udp 0.0.0.0:6969 (key "udp"): address already in use`: an operator with
 * several listeners (and Node's or the addon's own `bind: Address already in use`) would not
 * know which one failed.
 */
export class ListenError extends Error {
  /** The errno code (EADDRINUSE, EACCES, ...) when the cause had one. */
  readonly code: string | undefined;

  constructor(protocol: string, key: string, host: string, port: number, cause: unknown) {
    const raw = (cause as { code?: unknown } | null)?.code;
    const code = typeof raw === 'string' ? raw : undefined;
    const reason =
      (code !== undefined ? REASONS[code] : undefined) ??
      (cause instanceof Error ? cause.message : String(cause));
    const address = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
    super(`cannot listen on ${protocol} ${address} (key "${key}"): ${reason}`, { cause });
    this.name = 'ListenError';
    this.code = code;
  }
}

/**
 * Runs `open` (which binds one listener) and turns its failure, thrown or rejected, into a
 * `ListenError` naming the listener.
 */
export async function opening<T>(
  protocol: string,
  key: string,
  l: { host: string; port: number },
  open: () => T | Promise<T>,
): Promise<T> {
  try {
    return await open();
  } catch (err) {
    throw new ListenError(protocol, key, l.host, l.port, err);
  }
}

/**
 * Binds a node:net (or node:http, node:tls) server to one listener; a failure is a `ListenError`.
 * Once listening, later errors go to `onError`. With `ipv6Only`, '[::]' serves IPv6 only, so that
 * '0.0.0.0' on the same port can serve IPv4.
 */
export function listenOn(
  server: Server,
  protocol: string,
  key: string,
  l: { host: string; port: number },
  opts: { ipv6Only: boolean; reusePort?: boolean; onError?: (err: Error) => void },
): Promise<void> {
  return opening(
    protocol,
    key,
    l,
    () =>
      new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(
          { host: l.host, port: l.port, ipv6Only: opts.ipv6Only, reusePort: opts.reusePort === true },
          () => {
            server.off('error', reject);
            if (opts.onError) server.on('error', opts.onError);
            resolve();
          },
        );
      }),
  );
}
