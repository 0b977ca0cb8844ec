import type { TrackerError } from '../../core/errors.ts';
import type {
  AccountedResult,
  AnnounceRequest,
  AnnounceResult,
  SharedAccountArgs,
  SharedBaseline,
} from '../../core/types.ts';

/**
 * What the Redis store sends and reads per announce: the record ANNOUNCE_BATCH (scripts.ts) and
 * HERALD.ANNOUNCE (native/redis/herald.c) read, the answer they give, and the buckets (hash tags)
 * swarms are spread over (redis-store.ts has the key layout).
 */

/** 'uploaded:downloaded:at:seeding' as the script keeps it; null for ''. */
export function baselineOf(b: Buffer): SharedBaseline | null {
  if (b.length === 0) return null;
  const [up, down, at, seeding] = b.toString('latin1').split(':');
  return { uploaded: Number(up), downloaded: Number(down), at: Number(at), seeding: seeding === '1' };
}

/** Swarms are spread over this many buckets (hash tags), by the first 10 bits of the info hash. */
export const BUCKETS = 1024;

export function bucketOf(infoHash: Uint8Array): number {
  return (infoHash[0] << 2) | (infoHash[1] >> 6);
}

/** The positions of `infoHashes` by the bucket each falls in (`bucket`: the store's, with its route). */
export function byBucket(
  infoHashes: readonly Uint8Array[],
  bucket: (infoHash: Uint8Array) => number = bucketOf,
): Map<number, number[]> {
  const groups = new Map<number, number[]>();
  for (let i = 0; i < infoHashes.length; i++) {
    const b = bucket(infoHashes[i]);
    const g = groups.get(b);
    if (g === undefined) groups.set(b, [i]);
    else g.push(i);
  }
  return groups;
}

/** Runs `fn` for every bucket, 64 at a time. */
export async function eachBucket(fn: (b: number) => Promise<void>): Promise<void> {
  for (let b = 0; b < BUCKETS; b += 64) {
    const calls: Promise<void>[] = [];
    for (let k = b; k < b + 64; k++) calls.push(fn(k));
    await Promise.all(calls);
  }
}

/** An announce waiting for its turn's batch: its bucket, its record, how to read its answer. */
export interface Queued {
  b: number;
  record: Buffer;
  /** Bytes per peer (6 IPv4, 18 IPv6). */
  stride: number;
  /** Whether the answer carries peer ids. */
  asked: boolean;
  /** Private mode: the answer carries the previous baseline. */
  accounted: boolean;
  resolve: (r: AnnounceResult | AccountedResult | TrackerError) => void;
}

/** Bytes of ANNOUNCE_BATCH's header per announce in its reply. */
export const HEADER = 24;

/**
 * An announce as ANNOUNCE_BATCH reads it (scripts.ts: big-endian, the private-mode part when
 * `acct` is given). `r` is a uniform [0, 1) draw.
 */
export function announceRecord(
  req: AnnounceRequest,
  b: number,
  now: number,
  r: number,
  acct: SharedAccountArgs | null,
  peerTimeout: number,
): Buffer {
  const stride = req.family === 4 ? 6 : 18;
  const key = acct === null ? null : Buffer.from(`a:${acct.torrentId}:${acct.memberId}`, 'latin1');
  const reported = acct === null ? null : Buffer.from(`${req.uploaded}:${req.downloaded}`, 'latin1');
  const size = 56 + stride + (key === null || reported === null ? 0 : 17 + key.length + reported.length);
  const rec = Buffer.allocUnsafe(size);
  rec.writeUInt16BE(b, 0);
  rec[2] = (req.family === 6 ? 1 : 0) | (req.left === 0 ? 2 : 0) | (req.wantPeerIds ? 4 : 0);
  rec[3] = req.event;
  rec.writeUInt16BE(Math.max(0, Math.min(req.numWant, 1024)), 4);
  rec.writeUInt32BE(now >>> 0, 6);
  rec.writeUInt32BE(Math.floor(r * 4294967296) >>> 0, 10);
  rec.set(req.infoHash, 14);
  rec.set(req.peerId, 34);
  rec[54] = stride;
  rec.set(req.ip.subarray(0, stride - 2), 55);
  rec.writeUInt16BE(req.port, 53 + stride);
  let o = 55 + stride;
  if (acct === null || key === null || reported === null) {
    rec[o] = 0;
    return rec;
  }
  rec[o++] = 1;
  o = rec.writeUInt16BE(key.length, o);
  o += key.copy(rec, o);
  o = rec.writeUInt16BE(reported.length, o);
  o += reported.copy(rec, o);
  o = rec.writeUInt32BE(acct.peersPerTorrent, o);
  o = rec.writeUInt32BE(acct.minGap, o);
  rec[o++] = acct.refuseEarly ? 1 : 0;
  rec.writeUInt32BE(peerTimeout, o);
  return rec;
}

/** One announce's answer from ANNOUNCE_BATCH's reply `r`: its header at `h`, its strings from `at`. */
export function resultOf(
  q: Queued,
  r: Buffer,
  h: number,
  at: number,
  peers: number,
  ids: number,
  prev: number,
): AnnounceResult | AccountedResult {
  const result: AnnounceResult = {
    complete: r.readUInt32BE(h + 1),
    incomplete: r.readUInt32BE(h + 5),
    downloaded: r.readUInt32BE(h + 9),
    peers: r.subarray(at, at + peers),
    peerCount: peers / q.stride,
    peerIds: q.asked ? r.subarray(at + peers, at + peers + ids) : null,
    peerIdKnown: q.asked ? r.subarray(at + peers + ids, at + peers + ids + ids / 20) : null,
  };
  if (!q.accounted) return result;
  const p = at + peers + ids + ids / 20;
  return {
    ...result,
    previous: baselineOf(r.subarray(p, p + prev)),
    seed: r.readUInt32BE(h + 19),
    early: r[h + 23] === 1,
  };
}
