import { randomBytes } from 'node:crypto';
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { type PeerAddress, parseIp } from '../../core/address.ts';
import { TrackerError } from '../../core/errors.ts';
import type { Logger } from '../../core/log.ts';
import type { AnnounceEvent, AnnounceRequest, AnnounceResult, ScrapeEntry } from '../../core/types.ts';
import {
  MAX_RESPONSE_SIZE,
  parseRequest,
  writeAnnounceResponse,
  writeConnectResponse,
  writeErrorResponse,
  writeScrapeResponse,
} from '../../protocol/udp/codec.ts';
import { ConnectionIds } from '../../protocol/udp/connection-id.ts';
import type { RequestContext, TrackerService } from '../../tracker/service.ts';

export interface UdpFrontendOptions {
  service: TrackerService;
  listen: { host: string; port: number }[];
  /** Key for connection ids; share it between instances that serve one swarm. Random if null. */
  secret: Uint8Array | null;
  logger: Logger;
  /** Log every announce and scrape (debugging only: costly). */
  logRequests?: boolean;
}

/**
 * BEP 15 over `node:dgram` (the batched addon of DESIGN.md comes with the performance issue;
 * this path stays as its fallback).
 *
 * Security: a request other than connect must carry a connection id that this tracker (or one
 * sharing its secret) gave the same address and port within about two minutes; otherwise the
 * packet is dropped without a reply, so a spoofed source gets nothing back (no amplification).
 * The only reply an unconnected address can get is the 16-byte connect response to a 16-byte
 * connect request.
 */
export class UdpFrontend {
  #o: UdpFrontendOptions;
  #ids: ConnectionIds;
  #sockets: Socket[] = [];
  #ctx: RequestContext = { protocol: 'udp', passkey: null };

  constructor(opts: UdpFrontendOptions) {
    this.#o = opts;
    this.#ids = new ConnectionIds(opts.secret ?? randomBytes(32));
  }

  addresses(): { host: string; port: number }[] {
    return this.#sockets.map((s) => {
      const a = s.address();
      return { host: a.address, port: a.port };
    });
  }

  async start(): Promise<void> {
    for (const l of this.#o.listen) {
      const v6 = l.host.includes(':');
      // ipv6Only lets '[::]:P' and '0.0.0.0:P' be bound side by side.
      const socket = createSocket({ type: v6 ? 'udp6' : 'udp4', ipv6Only: v6 });
      // Sized for the largest reply this configuration allows (IPv6 peers, maxNumWant of them).
      const out = Buffer.alloc(Math.max(MAX_RESPONSE_SIZE, 20 + 18 * this.#o.service.settings.maxNumWant));
      await new Promise<void>((resolve, reject) => {
        socket.once('error', reject);
        socket.bind(l.port, l.host, () => {
          socket.off('error', reject);
          resolve();
        });
      });
      socket.on('error', (err) => this.#o.logger.error('udp socket error', { err: String(err) }));
      socket.on('message', (msg, rinfo) => this.#onMessage(socket, out, msg, rinfo));
      this.#sockets.push(socket);
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.#sockets.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    this.#sockets = [];
  }

  #send(socket: Socket, out: Buffer, len: number, rinfo: RemoteInfo): void {
    // dgram may queue the buffer when the socket is not writable at once, so the shared reply
    // buffer is copied (the batched addon removes this copy).
    socket.send(Buffer.from(out.subarray(0, len)), rinfo.port, rinfo.address);
  }

  #onMessage(socket: Socket, out: Buffer, msg: Buffer, rinfo: RemoteInfo): void {
    const service = this.#o.service;
    const counters = service.counters;
    const r = parseRequest(msg, msg.length);
    const peer: PeerAddress | null = parseIp(rinfo.address);
    if (peer === null) {
      counters.udpDropped++;
      return;
    }
    const now = service.clock.now();
    try {
      switch (r.action) {
        case 0: {
          counters.udpConnects++;
          const id = this.#ids.make(peer.bytes, rinfo.port, now);
          this.#send(socket, out, writeConnectResponse(out, r.transactionId, id), rinfo);
          return;
        }
        case 1: {
          if (!this.#ids.check(r.connectionId, peer.bytes, rinfo.port, now)) {
            counters.udpDropped++;
            return;
          }
          // The `ip` field is ignored: believing it would let anyone register a third party.
          const req: AnnounceRequest = {
            infoHash: r.infoHash,
            peerId: r.peerId,
            family: peer.family,
            ip: peer.bytes,
            port: r.port,
            uploaded: r.uploaded,
            downloaded: r.downloaded,
            left: r.left,
            event: r.event as AnnounceEvent,
            numWant: r.numWant,
            wantPeerIds: false,
          };
          const tid = r.transactionId;
          const reply = (res: AnnounceResult | TrackerError) => {
            if (res instanceof TrackerError) {
              counters.failures.udp++;
              this.#send(socket, out, writeErrorResponse(out, tid, res.message), rinfo);
              return;
            }
            counters.announces.udp++;
            if (this.#o.logRequests)
              this.#o.logger.info('udp announce', {
                remote: rinfo.address,
                port: req.port,
                event: req.event,
              });
            const len = writeAnnounceResponse(
              out,
              tid,
              service.settings.interval,
              res.incomplete,
              res.complete,
              res.peers,
              res.peerCount * (peer.family === 4 ? 6 : 18),
            );
            this.#send(socket, out, len, rinfo);
          };
          const res = service.announce(req, this.#ctx);
          if (res instanceof Promise) res.then(reply, (err) => this.#internal(err));
          else reply(res);
          return;
        }
        case 2: {
          if (!this.#ids.check(r.connectionId, peer.bytes, rinfo.port, now)) {
            counters.udpDropped++;
            return;
          }
          const tid = r.transactionId;
          const reply = (entries: ScrapeEntry[] | TrackerError) => {
            if (entries instanceof TrackerError) {
              counters.failures.udp++;
              this.#send(socket, out, writeErrorResponse(out, tid, entries.message), rinfo);
              return;
            }
            counters.scrapes.udp++;
            if (this.#o.logRequests)
              this.#o.logger.info('udp scrape', { remote: rinfo.address, hashes: entries.length });
            this.#send(socket, out, writeScrapeResponse(out, tid, entries), rinfo);
          };
          const res = service.scrape(r.infoHashes, this.#ctx);
          if (res instanceof Promise) res.then(reply, (err) => this.#internal(err));
          else reply(res);
          return;
        }
        default: {
          // Malformed: answer only a sender that proved its address with a valid connection id
          // (STYLE.md example 2); everything else is dropped silently.
          if (
            r.transactionId !== null &&
            r.connectionId !== null &&
            this.#ids.check(r.connectionId, peer.bytes, rinfo.port, now)
          ) {
            counters.failures.udp++;
            this.#send(socket, out, writeErrorResponse(out, r.transactionId, r.error.message), rinfo);
          } else {
            counters.udpDropped++;
          }
        }
      }
    } catch (err) {
      this.#internal(err);
    }
  }

  #internal(err: unknown): void {
    this.#o.service.counters.internalErrors++;
    this.#o.logger.error('internal error answering a udp request', { err: String(err) });
  }
}
