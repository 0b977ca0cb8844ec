import { binaryString } from '../../core/bytes.ts';
import { Errors, TrackerError } from '../../core/errors.ts';
import { AnnounceEvent, type ScrapeEntry } from '../../core/types.ts';
import {
  encodeAnswer,
  jsonBinaryBytes,
  OFFER_END,
  OFFER_KEY,
  offerHead,
  type WsAnnounce,
} from '../../protocol/websocket/codec.ts';

/**
 * WebRTC swarms: the WebTorrent peers, kept apart from the TCP/UDP swarm store because a browser
 * cannot connect to a TCP peer and a TCP client cannot take an SDP offer (DESIGN.md "WS";
 * aquatic_ws keeps its own swarm maps too).
 *
 * Data model:
 * - `#swarms`: info hash (20-byte latin1 string) → `RtcSwarm` {peers by peer id, dense `list`
 *   for random picks (swap-remove), seeder count, downloaded}. An empty swarm is freed, as the
 *   memory store frees its swarms (its `downloaded` goes with it).
 * - `RtcPeer`: the connection it is reached by, seeding, completed-counted flag, last seen
 *   (clock seconds), and `pending`: the offers relayed TO this peer (offering peer's id, offer
 *   id, second sent) in a ring of at most `maxPendingOffers` entries, newest last.
 * - `RtcConnection.joined`: [info hash, peer id, info hash, peer id, ...]: the one peer id this
 *   connection announced in each swarm it joined (a flat array: a browser joins a handful of
 *   torrents, and a Map per socket cost ~100 bytes more).
 *   It is what makes "close removes the peer from every swarm" one loop, and it binds a peer id
 *   to the connection that first announced it.
 *
 * Threat model for the relay: an answer is relayed only when the answering peer was itself sent
 * the matching offer (same offering peer, same offer id) and then the entry is forgotten, so a
 * connection can neither push unsolicited SDP at a peer it was never introduced to, nor replay
 * one answer many times (aquatic_ws `expecting_answers`). A peer id is bound to the connection
 * that announced it while that connection is open: another connection cannot stop, answer as, or
 * take over that peer.
 */

/** Refusals from the WebRTC swarms. Static messages: safe to send and to use as metric labels. */
export const WsSwarmErrors = {
  peerIdInUse: new TrackerError(
    'HERALD_WS_PEER_ID_IN_USE',
    'peer_id is in use by another connection for this torrent',
  ),
  peerIdChanged: new TrackerError(
    'HERALD_WS_PEER_ID_CHANGED',
    'one peer_id per torrent per connection: reconnect to use another',
  ),
  tooManyTorrents: new TrackerError('HERALD_WS_TOO_MANY_TORRENTS', 'too many torrents on one connection'),
} as const;

/**
 * Where a connection's messages go (RawWebSocket is one). Each call is one text message; a
 * message the socket can no longer take is dropped silently.
 */
export interface RtcOutput {
  send(text: string): void;
  /** One message made of `parts[0..n)` (ASCII bytes), copied before the call returns. */
  sendParts(parts: readonly Uint8Array[], n: number): void;
}

/**
 * One WebSocket, as the swarms see it: made by `connect`, or any object of this shape (the
 * frontend's per-socket record, to keep one object less per socket). Released by `disconnect`.
 */
export interface RtcConnection {
  /** The connection's WebSocket. */
  readonly ws: RtcOutput;
  /** Info hash key → peer id key of this connection in that swarm. Owned by `WebRtcSwarms`. */
  readonly joined: string[];
  /**
   * With workers: swarms this connection holds in other workers' shards (kept by `RtcShards`),
   * counted with `joined` against `maxSwarmsPerConnection`.
   */
  elsewhere?: number;
}

/**
 * WebRTC swarms sharded over the workers of `herald serve --workers N` (issue #13; implemented by
 * src/cluster/webrtc-shard.ts). The frontend keeps the swarms its worker owns in its own
 * `WebRtcSwarms` and hands everything about another worker's swarms to this. Without workers
 * there is none, and nothing is asked.
 */
export interface RtcShards {
  /** The frontend's own swarms: the shard this worker owns (called once, by the frontend). */
  attach(local: WebRtcSwarms): void;
  /** Whether the swarm of `infoHash` is this worker's (then the frontend's swarms answer). */
  owns(infoHash: Uint8Array): boolean;
  /** An announce for another worker's swarm; a refusal (or the owner being down) is a TrackerError. */
  announce(
    conn: RtcConnection,
    msg: WsAnnounce,
    numWant: number,
    now: number,
  ): Promise<RtcCounts | TrackerError>;
  /** An answer for another worker's swarm (relayed or dropped there). */
  answer(conn: RtcConnection, msg: WsAnnounce, now: number): void;
  /** The connection closed: its peers leave the other workers' swarms too. */
  closed(conn: RtcConnection): void;
  /** Any info hashes, in order (rejects with a TrackerError when an owner is down). */
  scrape(infoHashes: readonly Uint8Array[]): ScrapeEntry[] | Promise<ScrapeEntry[]>;
  /** Every swarm of every worker (full scrape). */
  scrapeAll(): Promise<RtcScrapeRow[]>;
  /** The frontend swept its swarms (expiry). */
  swept(): void;
}

/** One swarm in a full scrape. */
export interface RtcScrapeRow extends ScrapeEntry {
  infoHash: Uint8Array;
}

/**
 * A ring of offers sent to one peer, in one Float64Array of (offering peer's serial, offer id
 * hash, second sent) triples: no object or string per offer, so a busy relay leaves no garbage
 * behind and a peer's worst case is 24 bytes an offer. It grows by doubling up to
 * `maxPendingOffers`. An answer scans from the newest (it usually comes within a second); a
 * consumed or expired slot has serial 0.
 */
interface PendingOffers {
  data: Float64Array;
  /** Triples in use (== capacity once full). */
  len: number;
  /** Next triple to overwrite once full. */
  next: number;
}

interface RtcPeer {
  peerId: string;
  /** Unique for the life of the process (never reused), > 0: names the peer in `pending`. */
  serial: number;
  conn: RtcConnection;
  seeding: boolean;
  /** Its completion was counted in `downloaded` (once per peer). */
  counted: boolean;
  lastSeen: number;
  /** Offers relayed to this peer and not answered yet. */
  pending: PendingOffers | null;
  /** Slot in `RtcSwarm.list`. */
  index: number;
}

interface RtcSwarm {
  infoHash: Buffer;
  peers: Map<string, RtcPeer>;
  list: RtcPeer[];
  seeders: number;
  downloaded: number;
}

export interface WebRtcSwarmsOptions {
  /** Seconds after its last announce that a peer is dropped (its socket may stay open). */
  peerTimeout: number;
  /** Most swarms one connection may join (default 100). */
  maxSwarmsPerConnection?: number;
  /** Most unanswered offers remembered per peer; the oldest is forgotten first (default 200). */
  maxPendingOffers?: number;
  /** Seconds an unanswered offer is remembered (default 120; webtorrent gives up after 50). */
  offerTimeout?: number;
  /**
   * Most WebRTC peers held (default 500,000: about 0.3-0.6 GB of heap with their sockets'
   * records, plus up to 24 bytes per remembered offer); a new peer beyond is refused with
   * `Errors.trackerFull`, peers already held keep announcing.
   */
  maxPeers?: number;
  /** Most WebRTC swarms held (default 200,000); an announce that would add one is refused likewise. */
  maxSwarms?: number;
  /** Uniform in [0, 1); injectable for tests. */
  random?: () => number;
}

export interface WebRtcStats {
  swarms: number;
  peers: number;
  seeders: number;
  leechers: number;
  offersRelayed: number;
  answersRelayed: number;
  /** Answers dropped: no matching offer had been sent to the answering peer. */
  answersDropped: number;
}

export interface RtcCounts {
  /** Seeders, not counting the requester (Herald's rule: the response is about the others). */
  complete: number;
  /** Leechers, not counting the requester. */
  incomplete: number;
}

export class WebRtcSwarms {
  #swarms = new Map<string, RtcSwarm>();
  #peerTimeout: number;
  #maxSwarms: number;
  #maxPending: number;
  #offerTimeout: number;
  #maxPeers: number;
  #maxSwarmsHeld: number;
  #serials = 0;
  #random: () => number;
  #peers = 0;
  #seeders = 0;
  #offersRelayed = 0;
  #answersRelayed = 0;
  #answersDropped = 0;
  /** Scratch for `#pick`: the peers chosen for one announce's offers. */
  #picked: RtcPeer[] = [];
  /** Scratch: the parts of one relayed offer. */
  #parts: Uint8Array[] = [OFFER_END, OFFER_END, OFFER_KEY, OFFER_END, OFFER_END];

  constructor(opts: WebRtcSwarmsOptions) {
    this.#peerTimeout = opts.peerTimeout;
    this.#maxSwarms = opts.maxSwarmsPerConnection ?? 100;
    this.#maxPending = opts.maxPendingOffers ?? 200;
    this.#offerTimeout = opts.offerTimeout ?? 120;
    this.#maxPeers = opts.maxPeers ?? 500_000;
    this.#maxSwarmsHeld = opts.maxSwarms ?? 200_000;
    this.#random = opts.random ?? Math.random;
  }

  /** A connection whose messages go to `out`; a function gets each message as a string. */
  connect(out: RtcOutput | ((text: string) => void)): RtcConnection {
    if (typeof out !== 'function') return { ws: out, joined: [] };
    const send = out;
    return {
      ws: {
        send,
        sendParts: (parts, n) => send(Buffer.concat(parts.slice(0, n)).toString('utf8')),
      },
      joined: [],
    };
  }

  /** The connection closed: its peers leave every swarm they joined, at once. Returns how many. */
  disconnect(conn: RtcConnection): number {
    let n = 0;
    // A copy: #remove edits conn.joined as it goes.
    const joined = conn.joined.slice();
    conn.joined.length = 0;
    for (let j = 0; j < joined.length; j += 2) {
      const ih = joined[j];
      const pid = joined[j + 1];
      const swarm = this.#swarms.get(ih);
      const peer = swarm?.peers.get(pid);
      if (swarm !== undefined && peer !== undefined && peer.conn === conn) {
        this.#remove(ih, swarm, peer);
        n++;
      }
    }
    return n;
  }

  /**
   * An announce without `answer`: updates the sender in its swarm (or removes it on `stopped`)
   * and relays its offers, each to a different peer picked at random (a seeder's offers go to
   * leechers only). `numWant` is already clamped by the service. Returns the counts for the
   * response, or a refusal.
   */
  announce(conn: RtcConnection, msg: WsAnnounce, numWant: number, now: number): RtcCounts | TrackerError {
    const ih = binaryString(msg.infoHash);
    const pid = binaryString(msg.peerId);
    let swarm = this.#swarms.get(ih);
    const existing = swarm?.peers.get(pid);
    // Binding: the peer id belongs to the connection that announced it first, and a connection
    // keeps one peer id per swarm.
    if (existing !== undefined && existing.conn !== conn) return WsSwarmErrors.peerIdInUse;
    const mine = joinedPeer(conn, ih);
    if (mine !== undefined && mine !== pid) return WsSwarmErrors.peerIdChanged;

    if (msg.event === AnnounceEvent.stopped) {
      if (swarm !== undefined && existing !== undefined) this.#remove(ih, swarm, existing);
      return swarm === undefined ? { complete: 0, incomplete: 0 } : countsOf(swarm, null);
    }

    if (
      existing === undefined &&
      mine === undefined &&
      conn.joined.length + 2 * (conn.elsewhere ?? 0) >= 2 * this.#maxSwarms
    )
      return WsSwarmErrors.tooManyTorrents;
    // The memory ceiling, as the TCP/UDP store's: only a new peer (or new swarm) is refused.
    if (
      existing === undefined &&
      (this.#peers >= this.#maxPeers || (swarm === undefined && this.#swarms.size >= this.#maxSwarmsHeld))
    )
      return Errors.trackerFull;
    if (swarm === undefined) {
      swarm = { infoHash: Buffer.from(msg.infoHash), peers: new Map(), list: [], seeders: 0, downloaded: 0 };
      this.#swarms.set(ih, swarm);
    }
    const seeding = msg.left === 0;
    let peer = existing;
    if (peer === undefined) {
      peer = {
        peerId: pid,
        serial: ++this.#serials,
        conn,
        seeding,
        counted: false,
        lastSeen: now,
        pending: null,
        index: 0,
      };
      peer.index = swarm.list.length;
      swarm.list.push(peer);
      swarm.peers.set(pid, peer);
      conn.joined.push(ih, pid);
      this.#peers++;
      if (seeding) {
        swarm.seeders++;
        this.#seeders++;
      }
    } else {
      peer.lastSeen = now;
      if (peer.seeding !== seeding) {
        const d = seeding ? 1 : -1;
        swarm.seeders += d;
        this.#seeders += d;
        peer.seeding = seeding;
      }
    }
    // A completion counts once per peer (a peer first seen with `completed` counts too).
    if (msg.event === AnnounceEvent.completed && !peer.counted) {
      peer.counted = true;
      swarm.downloaded++;
    }

    const offers = msg.offers;
    if (offers !== undefined && offers.length > 0 && numWant > 0) {
      const picked = this.#pick(swarm, peer, Math.min(offers.length, numWant));
      // Each relayed offer is copied together from parts: the head every offer of this announce
      // shares, the offer id, and the offer's JSON text as the client sent it (codec.ts).
      const parts = this.#parts;
      if (picked.length > 0) parts[0] = offerHead(swarm.infoHash, msg.peerId);
      for (let i = 0; i < picked.length; i++) {
        const to = picked[i];
        const o = offers[i];
        parts[1] = jsonBinaryBytes(o.offerId);
        parts[3] = o.offerJson;
        to.conn.ws.sendParts(parts, 5);
        this.#expect(to, peer.serial, offerHash(o.offerId), now);
        this.#offersRelayed++;
      }
      // Not kept past the call: offerJson is a view of the client's frame.
      parts[0] = parts[1] = parts[3] = OFFER_END;
      picked.length = 0;
    }
    return countsOf(swarm, peer);
  }

  /**
   * An answer: relayed to `to_peer_id` only when the sender is this connection's peer in the
   * swarm and was sent that very offer by that peer; the offer is then forgotten. Returns whether
   * it was relayed (a dropped answer gets no reply: the client expects none either way).
   */
  answer(conn: RtcConnection, msg: WsAnnounce, now: number): boolean {
    const a = msg.answer;
    if (a === undefined) return false;
    const ih = binaryString(msg.infoHash);
    const swarm = this.#swarms.get(ih);
    const from = swarm?.peers.get(binaryString(msg.peerId));
    const to = swarm?.peers.get(binaryString(a.toPeerId));
    if (swarm === undefined || from === undefined || from.conn !== conn || to === undefined) {
      this.#answersDropped++;
      return false;
    }
    const pend = from.pending;
    const slot = pend === null ? -1 : findPending(pend, to.serial, offerHash(a.offerId));
    if (pend === null || slot < 0 || now - pend.data[slot + 2] > this.#offerTimeout) {
      this.#answersDropped++;
      return false;
    }
    pend.data[slot] = 0; // one answer per offer
    from.lastSeen = now;
    to.conn.ws.send(
      encodeAnswer({
        infoHash: swarm.infoHash,
        fromPeerId: msg.peerId,
        offerId: a.offerId,
        answer: a.answer,
      }),
    );
    this.#answersRelayed++;
    return true;
  }

  /** One entry per info hash, in order; unknown hashes give zero counts. */
  scrape(infoHashes: readonly Uint8Array[]): ScrapeEntry[] {
    const out: ScrapeEntry[] = new Array(infoHashes.length);
    for (let i = 0; i < infoHashes.length; i++) {
      const s = this.#swarms.get(binaryString(infoHashes[i]));
      out[i] =
        s === undefined
          ? { complete: 0, incomplete: 0, downloaded: 0 }
          : { complete: s.seeders, incomplete: s.list.length - s.seeders, downloaded: s.downloaded };
    }
    return out;
  }

  /** Every swarm (full scrape). */
  scrapeAll(): { infoHash: Buffer; complete: number; incomplete: number; downloaded: number }[] {
    const out = [];
    for (const s of this.#swarms.values())
      out.push({
        infoHash: s.infoHash,
        complete: s.seeders,
        incomplete: s.list.length - s.seeders,
        downloaded: s.downloaded,
      });
    return out;
  }

  /**
   * Drops peers not seen since `now - peerTimeout` and offers unanswered for `offerTimeout`.
   * Returns the number of peers removed. Visits every peer: WebRTC swarms are small next to the
   * TCP/UDP store, and this runs every few tens of seconds.
   */
  sweep(now: number): number {
    const peerBefore = now - this.#peerTimeout;
    const offerBefore = now - this.#offerTimeout;
    let n = 0;
    for (const [ih, swarm] of this.#swarms) {
      // Backwards: swap-remove moves the last peer into the freed slot, already visited.
      for (let i = swarm.list.length - 1; i >= 0; i--) {
        const p = swarm.list[i];
        if (p.lastSeen < peerBefore) {
          this.#remove(ih, swarm, p);
          n++;
          continue;
        }
        const pend = p.pending;
        if (pend !== null) {
          let live = 0;
          const d = pend.data;
          for (let j = 0; j < pend.len * 3; j += 3) {
            if (d[j] === 0) continue;
            if (d[j + 2] < offerBefore) d[j] = 0;
            else live++;
          }
          if (live === 0) p.pending = null;
        }
      }
    }
    return n;
  }

  stats(): WebRtcStats {
    return {
      swarms: this.#swarms.size,
      peers: this.#peers,
      seeders: this.#seeders,
      leechers: this.#peers - this.#seeders,
      offersRelayed: this.#offersRelayed,
      answersRelayed: this.#answersRelayed,
      answersDropped: this.#answersDropped,
    };
  }

  #expect(to: RtcPeer, fromSerial: number, offerId: number, now: number): void {
    let p = to.pending;
    if (p === null) {
      p = { data: new Float64Array(3 * Math.min(4, this.#maxPending)), len: 0, next: 0 };
      to.pending = p;
    }
    const cap = p.data.length / 3;
    if (p.len === cap && cap < this.#maxPending) {
      const bigger = new Float64Array(3 * Math.min(cap * 2, this.#maxPending));
      bigger.set(p.data);
      p.data = bigger;
    }
    let i: number;
    if (p.len < p.data.length / 3) i = p.len++;
    else {
      // Bounded: a peer that never answers cannot make the tracker remember offers without end.
      i = p.next;
      p.next = i + 1 === p.len ? 0 : i + 1;
    }
    p.data[3 * i] = fromSerial;
    p.data[3 * i + 1] = offerId;
    p.data[3 * i + 2] = now;
  }

  /**
   * Up to `want` distinct peers other than `self` (leechers only when `self` seeds), chosen at
   * random: random probes first (cheap in a big swarm), then a scan from a random offset fills
   * what the probes missed (a small swarm, or one where few peers are eligible).
   */
  #pick(swarm: RtcSwarm, self: RtcPeer, want: number): RtcPeer[] {
    const list = swarm.list;
    const picked = this.#picked;
    const n = list.length;
    const eligible = self.seeding ? n - swarm.seeders : n - 1;
    if (want > eligible) want = eligible;
    if (want <= 0) return picked;
    for (let tries = want * 3; tries > 0 && picked.length < want; tries--) {
      const p = list[Math.floor(this.#random() * n)];
      if (eligibleFor(self, p, picked)) picked.push(p);
    }
    const start = Math.floor(this.#random() * n);
    for (let i = 0; i < n && picked.length < want; i++) {
      const p = list[(start + i) % n];
      if (eligibleFor(self, p, picked)) picked.push(p);
    }
    // The scan fills in list order: shuffle so that which offer goes to which peer is random too.
    for (let i = picked.length - 1; i > 0; i--) {
      const j = Math.floor(this.#random() * (i + 1));
      const t = picked[i];
      picked[i] = picked[j];
      picked[j] = t;
    }
    return picked;
  }

  #remove(ih: string, swarm: RtcSwarm, peer: RtcPeer): void {
    const list = swarm.list;
    const last = list.pop()!;
    if (last !== peer) {
      list[peer.index] = last;
      last.index = peer.index;
    }
    swarm.peers.delete(peer.peerId);
    const joined = peer.conn.joined;
    for (let j = 0; j < joined.length; j += 2)
      if (joined[j] === ih && joined[j + 1] === peer.peerId) {
        // Swap-remove the pair.
        joined[j] = joined[joined.length - 2];
        joined[j + 1] = joined[joined.length - 1];
        joined.length -= 2;
        break;
      }
    this.#peers--;
    if (peer.seeding) {
      swarm.seeders--;
      this.#seeders--;
    }
    if (list.length === 0) this.#swarms.delete(ih);
  }
}

/** Whether `p` may get an offer from `self`: another peer, not picked yet, a leecher if `self` seeds. */
function eligibleFor(self: RtcPeer, p: RtcPeer, picked: RtcPeer[]): boolean {
  return p !== self && !(self.seeding && p.seeding) && !picked.includes(p);
}

function countsOf(swarm: RtcSwarm, self: RtcPeer | null): RtcCounts {
  let complete = swarm.seeders;
  let incomplete = swarm.list.length - swarm.seeders;
  if (self !== null) {
    if (self.seeding) complete--;
    else incomplete--;
  }
  return { complete, incomplete };
}

/** The index in `data` of an offer from `fromSerial` with `offerId`, newest first; -1 if none. */
function findPending(p: PendingOffers, fromSerial: number, offerId: number): number {
  const n = p.len;
  if (n === 0) return -1;
  // Newest: the slot before `next` once the ring has wrapped, the last one while it grows.
  const full = n === p.data.length / 3 && p.next !== 0;
  const newest = full ? p.next - 1 : n - 1;
  const d = p.data;
  for (let j = 0; j < n; j++) {
    const i = 3 * ((newest - j + n) % n);
    if (d[i] === fromSerial && d[i + 1] === offerId) return i;
  }
  return -1;
}

/**
 * A 52-bit hash of an offer id (two 32-bit FNV-1a variants), exact in a double. A collision could
 * only let a peer answer a different offer of the same offerer, which harms no one.
 */
function offerHash(id: Uint8Array): number {
  let a = 0x811c9dc5;
  let b = 0x01000193;
  for (let i = 0; i < id.length; i++) {
    a = Math.imul(a ^ id[i], 0x01000193);
    b = Math.imul(b ^ id[i], 0x5bd1e995) ^ (b >>> 15);
  }
  return (a >>> 0) * 0x100000 + (b >>> 12);
}

/** The peer id `conn` announced in swarm `ih`, if any. */
function joinedPeer(conn: RtcConnection, ih: string): string | undefined {
  const joined = conn.joined;
  for (let j = 0; j < joined.length; j += 2) if (joined[j] === ih) return joined[j + 1];
  return undefined;
}
