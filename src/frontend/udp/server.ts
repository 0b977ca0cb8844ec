import { randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { type PeerAddress, parseIp } from '../../core/address.ts';
import { TrackerError } from '../../core/errors.ts';
import { opening } from '../../core/listen.ts';
import type { Logger } from '../../core/log.ts';
import type { AnnounceEvent, AnnounceRequest, AnnounceResult, ScrapeEntry } from '../../core/types.ts';
import { passkeyFromPath } from '../../policy/policy.ts';
import {
  MAX_RESPONSE_SIZE,
  readRequest,
  UdpPacket,
  writeAnnounceResponse,
  writeConnectResponse,
  writeErrorResponse,
  writeScrapeResponse,
} from '../../protocol/udp/codec.ts';
import { ConnectionIds } from '../../protocol/udp/connection-id.ts';
import { type RequestContext, requestContext, type TrackerService } from '../../tracker/service.ts';
import { BATCH, deferredSender, loadUdpBatchAddon, META, type UdpBatchAddon } from './batch.ts';

export interface UdpFrontendOptions {
  service: TrackerService;
  listen: { host: string; port: number }[];
  /** Key for connection ids; share it between instances that serve one swarm. Random if null. */
  secret: Uint8Array | null;
  logger: Logger;
  /** Log every announce and scrape (debugging only: costly). */
  logRequests?: boolean;
  /** SO_REUSEPORT on the listeners: several worker processes bind the same address (issue #13). */
  reusePort?: boolean;
  /**
   * Sockets this process inherited, by index in `listen` (a `--workers` primary opened them as
   * steering groups, see src/cluster/primary.ts): such a listener serves that descriptor through
   * the batched addon instead of binding its own.
   */
  inherited?: (number | null)[];
  /**
   * 'batched': recvmmsg/sendmmsg through the addon; 'dgram': Node's sockets; 'auto': batched when
   * the addon is built. The batched transport answers within its batch, so a store that is not
   * `synchronous` is always served through dgram, each request answered when its promise settles.
   */
  io?: 'auto' | 'batched' | 'dgram';
}

/**
 * dgram resolves the destination of every send through `lookup` (by default `dns.lookup`, which
 * for an address literal still checks it and defers the send to the next tick). Replies go to
 * the address a request came from, already an address: answered at once.
 */
function literalLookup(
  address: string,
  _opts: unknown,
  callback: (err: Error | null, address: string, family: number) => void,
): void {
  callback(null, address, address.includes(':') ? 6 : 4);
}

function blankRequest(): AnnounceRequest {
  return {
    infoHash: EMPTY,
    peerId: EMPTY,
    family: 4,
    ip: EMPTY,
    port: 0,
    uploaded: 0,
    downloaded: 0,
    left: 0,
    event: 0 as AnnounceEvent,
    numWant: -1,
    wantPeerIds: false,
  };
}

const EMPTY = new Uint8Array(0);

const SOCKET_BUFFER = 4 << 20;

/** The largest datagram read; a longer one is truncated by the kernel and dropped here. */
const IN_SLOT = 2048;

/**
 * BEP 15 over UDP. Two transports share one per-packet handler: the batched addon (one
 * recvmmsg, one call into JavaScript and one sendmmsg per 64 datagrams; DESIGN.md) and
 * `node:dgram` as the fallback.
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
  #dgram: Socket[] = [];
  #batched: { addon: UdpBatchAddon; handle: object; host: string }[] = [];
  /** Reused: the service reads it synchronously, before any await. */
  #ctx: RequestContext = requestContext('udp', null);
  /** Each datagram is read into this one object (see `UdpPacket`). */
  #packet = new UdpPacket();
  /** The announce handed to a synchronous store, reused (see #handle). */
  #req: AnnounceRequest = blankRequest();
  #outSlot: number;
  /**
   * Whether the store answers synchronously (`SwarmStore.synchronous`); if not, dgram only, with a
   * reply callback per request.
   */
  readonly #sync: boolean;
  /**
   * Whether the store has read the request by the time `announce` returns (`readsRequestAtOnce`:
   * the sharded store of workers copies it into its frame): then one request object and views of
   * the datagram serve every packet, as with a synchronous store.
   */
  readonly #reuseRequest: boolean;
  /** Parsed client addresses by text form (dgram path): parsing per packet costs more than a lookup. */
  #peerCache = new Map<string, PeerAddress>();

  constructor(opts: UdpFrontendOptions) {
    this.#o = opts;
    this.#ids = new ConnectionIds(opts.secret ?? randomBytes(32));
    this.#sync = opts.service.store.synchronous === true;
    this.#reuseRequest = this.#sync || opts.service.store.readsRequestAtOnce === true;
    // Sized for the largest reply this configuration allows (IPv6 peers, maxNumWant of them).
    this.#outSlot = Math.max(MAX_RESPONSE_SIZE, 20 + 18 * opts.service.settings.maxNumWant);
  }

  /** Which transport is serving: 'batched' or 'dgram'. */
  get io(): 'batched' | 'dgram' | 'none' {
    return this.#batched.length > 0 ? 'batched' : this.#dgram.length > 0 ? 'dgram' : 'none';
  }

  addresses(): { host: string; port: number }[] {
    return [
      ...this.#batched.map((b) => ({ host: b.host, port: b.addon.port(b.handle) })),
      ...this.#dgram.map((s) => {
        const a = s.address();
        return { host: a.address, port: a.port };
      }),
    ];
  }

  async start(): Promise<void> {
    // An asynchronous store needs replies sent after their batch: the addon's sendTo.
    const io = this.#o.io ?? 'auto';
    const loaded = io === 'dgram' ? null : loadUdpBatchAddon();
    const addon = loaded !== null && (this.#sync || typeof loaded.sendTo === 'function') ? loaded : null;
    if (io === 'batched' && addon === null)
      throw new Error('udp io "batched": the native addon is not built (npm rebuild)');
    for (const [i, l] of this.#o.listen.entries())
      await opening('udp', 'udp', l, () =>
        addon !== null ? this.#startBatched(addon, l, this.#o.inherited?.[i] ?? null) : this.#startDgram(l),
      );
  }

  #startBatched(addon: UdpBatchAddon, l: { host: string; port: number }, fd: number | null): void {
    const v6 = l.host.includes(':');
    const handle =
      fd !== null ? addon.adopt(fd) : addon.open(v6 ? 6 : 4, l.host, l.port, this.#o.reusePort === true);
    const inMeta = new ArrayBuffer(BATCH * META);
    const inData = new ArrayBuffer(BATCH * IN_SLOT);
    const outMeta = new ArrayBuffer(BATCH * META);
    const outData = new ArrayBuffer(BATCH * this.#outSlot);
    const im = new Uint8Array(inMeta);
    const id = Buffer.from(inData);
    const om = new Uint8Array(outMeta);
    const od = Buffer.from(outData);
    const slot = this.#outSlot;
    // Views of every slot and its sender's address, made once: nothing is allocated per datagram
    // (#handle reads them synchronously, before the next datagram overwrites the slot).
    const ins: Buffer[] = [];
    const outs: Buffer[] = [];
    const from4: PeerAddress[] = [];
    const from6: PeerAddress[] = [];
    for (let i = 0; i < BATCH; i++) {
      ins.push(id.subarray(i * IN_SLOT, (i + 1) * IN_SLOT));
      outs.push(od.subarray(i * slot, (i + 1) * slot));
      from4.push({ family: 4, bytes: im.subarray(i * META, i * META + 4) });
      from6.push({ family: 6, bytes: im.subarray(i * META, i * META + 16) });
    }
    // An asynchronous store (workers: another worker's swarm) answers after the batch: the reply
    // is written into the slot then (no batch runs meanwhile) and sent alone from a copy, to the
    // address copied when the store's answer turned out to be a promise (the meta slot is reused
    // by the next batch). Nothing is allocated for a request answered at once (with workers, every
    // announce the kernel steered to its owner).
    const send = this.#sync ? null : deferredSender(addon, handle, slot);
    let atMeta = 0;
    let atOut = outs[0];
    const later =
      send === null
        ? null
        : () => {
            const meta = new Uint8Array(META);
            meta.set(im.subarray(atMeta, atMeta + 20));
            const out = atOut;
            return (n: number) => send(meta, out, n);
          };
    // One handler call per batch: read each datagram's address from its meta slot, answer into
    // the matching output slot, and tell the addon how many output slots to send.
    const onBatch = (n: number): number => {
      let m = 0;
      for (let i = 0; i < n; i++) {
        const mo = i * META;
        const len = im[mo + 20] | (im[mo + 21] << 8) | (im[mo + 22] << 16);
        if (len > IN_SLOT) {
          this.#o.service.counters.udpDropped++;
          continue;
        }
        const peer = im[mo + 16] === 6 ? from6[i] : from4[i];
        const port = (im[mo + 18] << 8) | im[mo + 19];
        atMeta = mo;
        atOut = outs[m];
        const r = this.#handle(ins[i], len, peer, port, outs[m], later);
        if (r > 0) {
          const oo = m * META;
          // The reply goes back to the address and port the request came from (first 20 bytes).
          for (let k = 0; k < 20; k++) om[oo + k] = im[mo + k];
          om[oo + 20] = r & 0xff;
          om[oo + 21] = (r >> 8) & 0xff;
          om[oo + 22] = (r >> 16) & 0xff;
          om[oo + 23] = 0;
          m++;
        }
      }
      return m;
    };
    addon.start(handle, inMeta, inData, IN_SLOT, outMeta, outData, slot, onBatch);
    this.#batched.push({ addon, handle, host: l.host });
  }

  async #startDgram(l: { host: string; port: number }): Promise<void> {
    const v6 = l.host.includes(':');
    // ipv6Only lets '[::]:P' and '0.0.0.0:P' be bound side by side.
    // 4 MiB socket buffers, as the addon asks for (the kernel caps them at net.core.*mem_max): a
    // burst of announces waits in the kernel instead of being dropped.
    const socket = createSocket({
      type: v6 ? 'udp6' : 'udp4',
      ipv6Only: v6,
      reusePort: this.#o.reusePort === true,
      lookup: literalLookup,
      recvBufferSize: SOCKET_BUFFER,
      sendBufferSize: SOCKET_BUFFER,
    });
    const asyncStore = !this.#sync;
    // The reply buffer, replaced whenever a send had to be queued (see below), and views of its
    // first `len` bytes by length: `send(buf, offset, len, ...)` would create one per reply.
    const reply = { out: Buffer.alloc(this.#outSlot), views: [] as (Buffer | undefined)[] };
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(l.port, l.host, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    socket.on('error', (err) => this.#o.logger.error('udp socket error', { err: String(err) }));
    socket.on('message', (msg, rinfo) => {
      let peer = this.#peerCache.get(rinfo.address);
      if (peer === undefined) {
        const parsed = parseIp(rinfo.address);
        if (parsed === null) {
          this.#o.service.counters.udpDropped++;
          return;
        }
        if (this.#peerCache.size > 65_536) this.#peerCache.clear();
        this.#peerCache.set(rinfo.address, parsed);
        peer = parsed;
      }
      const out = reply.out;
      if (asyncStore) {
        // A deferred answer writes into `out` later: every reply is then sent from a copy.
        const len = this.#handle(
          msg,
          msg.length,
          peer,
          rinfo.port,
          out,
          () => (n) => socket.send(Buffer.from(out.subarray(0, n)), rinfo.port, rinfo.address),
        );
        if (len > 0) socket.send(Buffer.from(out.subarray(0, len)), rinfo.port, rinfo.address);
        return;
      }
      const len = this.#handle(msg, msg.length, peer, rinfo.port, out, null);
      if (len === 0) return;
      // Node tries the send at once (uv_udp_try_send); only when the kernel cannot take it now is
      // the request queued, holding a view of `out`: the next replies then get a fresh buffer.
      // Sent at once, `out` is free again, so the common case neither allocates nor copies.
      let view = reply.views[len];
      if (view === undefined) {
        view = out.subarray(0, len);
        reply.views[len] = view;
      }
      socket.send(view, rinfo.port, rinfo.address);
      if (socket.getSendQueueCount() > 0) {
        reply.out = Buffer.alloc(this.#outSlot);
        reply.views = [];
      }
    });
    this.#dgram.push(socket);
  }

  async stop(): Promise<void> {
    for (const b of this.#batched) b.addon.close(b.handle);
    this.#batched = [];
    await Promise.all(this.#dgram.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    this.#dgram = [];
  }

  /**
   * Answers one datagram into `out`; returns the reply length, or 0 for no reply (dropped, or
   * answered later when the store is asynchronous: `later()` then gives the function that sends
   * the reply, written into `out`, of that length).
   */
  #handle(
    msg: Uint8Array,
    len: number,
    peer: PeerAddress,
    port: number,
    out: Buffer,
    later: (() => (len: number) => void) | null,
  ): number {
    const service = this.#o.service;
    const counters = service.counters;
    const p = this.#packet;
    const action = readRequest(msg, len, p);
    const now = service.clock.now();
    try {
      switch (action) {
        case 0:
          counters.udpConnects++;
          return writeConnectResponse(out, p.transactionId, this.#ids.make(peer.bytes, port, now));
        case 1: {
          if (!this.#ids.check(p, peer.bytes, port, now)) {
            counters.udpDropped++;
            return 0;
          }
          // The `ip` field is ignored: believing it would let anyone register a third party.
          // A store that reads the request before returning (a synchronous one, the sharded store
          // of workers) lets one object serve every packet; another gets its own, with its own
          // copies of the hashes.
          const reuse = this.#reuseRequest;
          const req = reuse ? this.#req : blankRequest();
          req.infoHash = reuse ? p.infoHash : p.infoHash.slice();
          req.peerId = reuse ? p.peerId : p.peerId.slice();
          req.family = peer.family;
          req.ip = peer.bytes;
          req.port = p.port;
          req.uploaded = p.uploaded;
          req.downloaded = p.downloaded;
          req.left = p.left;
          req.event = p.event as AnnounceEvent;
          req.numWant = p.numWant;
          const ctx = this.#ctx;
          // Private mode: the passkey travels in BEP 41 URL data ("/announce/<passkey>").
          ctx.passkey = p.urlData === null ? null : passkeyFromPath(p.urlData);
          ctx.member = null;
          ctx.torrent = null;
          const res = service.announce(req, ctx);
          if (res instanceof Promise) {
            const tid = p.transactionId;
            const family = peer.family;
            const port = req.port;
            const event = req.event;
            return this.#deferred(res, (v) => this.#announceReply(out, tid, family, port, event, v), later);
          }
          return this.#announceReply(out, p.transactionId, peer.family, req.port, req.event, res);
        }
        case 2: {
          if (!this.#ids.check(p, peer.bytes, port, now)) {
            counters.udpDropped++;
            return 0;
          }
          const ctx = this.#ctx;
          ctx.passkey = null; // BEP 15 scrape packets carry no URL data
          ctx.member = null;
          ctx.torrent = null;
          const res = service.scrape(p.infoHashes, ctx);
          if (res instanceof Promise) {
            const tid = p.transactionId;
            return this.#deferred(res, (v) => this.#scrapeReply(out, tid, v), later);
          }
          return this.#scrapeReply(out, p.transactionId, res);
        }
        default:
          // Malformed: answer only a sender that proved its address with a valid connection id
          // (STYLE.md example 2); everything else is dropped silently.
          if (p.transactionId >= 0 && p.hasConnectionId && this.#ids.check(p, peer.bytes, port, now)) {
            counters.failures.udp++;
            return writeErrorResponse(out, p.transactionId, p.error.message);
          }
          counters.udpDropped++;
          return 0;
      }
    } catch (err) {
      this.#internal(err);
      return 0;
    }
  }

  #announceReply(
    out: Buffer,
    tid: number,
    family: 4 | 6,
    port: number,
    event: AnnounceEvent,
    res: AnnounceResult | TrackerError,
  ): number {
    const counters = this.#o.service.counters;
    if (res instanceof TrackerError) {
      counters.failures.udp++;
      this.#o.service.refused(res);
      return writeErrorResponse(out, tid, res.message);
    }
    counters.announces.udp++;
    if (this.#o.logRequests) this.#o.logger.info('udp announce', { port, event });
    const stride = family === 4 ? 6 : 18;
    return writeAnnounceResponse(
      out,
      tid,
      this.#o.service.settings.interval,
      res.incomplete,
      res.complete,
      res.peers,
      res.peerCount * stride,
    );
  }

  #scrapeReply(out: Buffer, tid: number, entries: ScrapeEntry[] | TrackerError): number {
    const counters = this.#o.service.counters;
    if (entries instanceof TrackerError) {
      counters.failures.udp++;
      return writeErrorResponse(out, tid, entries.message);
    }
    counters.scrapes.udp++;
    if (this.#o.logRequests) this.#o.logger.info('udp scrape', { hashes: entries.length });
    return writeScrapeResponse(out, tid, entries);
  }

  #deferred<T>(
    p: Promise<T | TrackerError>,
    reply: (v: T | TrackerError) => number,
    later: (() => (len: number) => void) | null,
  ): number {
    if (later === null) {
      // The batched transport answers synchronously only; compose.ts picks dgram for async stores.
      this.#internal(new Error('asynchronous store result on the batched UDP transport'));
      return 0;
    }
    const send = later();
    p.then(
      (v) => send(reply(v)),
      // A refusal (a worker owning the swarm is restarting) is the client's to read.
      (err) => (err instanceof TrackerError ? send(reply(err)) : this.#internal(err)),
    );
    return 0;
  }

  #internal(err: unknown): void {
    this.#o.service.counters.internalErrors++;
    this.#o.logger.error('internal error answering a udp request', { err: String(err) });
  }
}
