/**
 * .torrent metainfo (BEP 3, BEP 12 announce-list, BEP 27 private flag, BEP 52 v2 and hybrid).
 *
 * Pure: bytes in, values out. The tracker accepts uploaded .torrent files, so parsing must never
 * throw on hostile input and must bound its work; it returns a human-readable error instead.
 * Info hashes are computed over the exact bytes of the `info` dictionary as found in the file
 * (never over a re-encoding), because that is what every client hashes.
 */

import { createHash } from 'node:crypto';
import { type BValue, type DictEntry, decode, dictEntries, encode } from '../bencode/index.ts';

export interface MetainfoFile {
  /** Where the file lands relative to the download directory, components joined with '/'. */
  path: string;
  length: number;
}

export type MetainfoVersion = 'v1' | 'v2' | 'hybrid';

export interface Metainfo {
  name: string;
  /** Sum of the real file lengths (BEP 47 padding files excluded). */
  totalSize: number;
  pieceLength: number;
  /** Real files in torrent order; padding files are left out. */
  files: MetainfoFile[];
  version: MetainfoVersion;
  /** SHA-1 of the info dictionary bytes (v1 and hybrid). */
  infoHashV1?: Buffer;
  /** SHA-256 of the info dictionary bytes (v2 and hybrid). */
  infoHashV2?: Buffer;
  /** First 20 bytes of the v2 hash: what a v2 client sends to a tracker (BEP 52). */
  infoHashV2Truncated?: Buffer;
  /** info.private === 1 (BEP 27). */
  private: boolean;
  /** info.source, used by private trackers to give cross-posted torrents distinct hashes. */
  source?: string;
  announce?: string;
  announceList?: string[][];
  comment?: string;
  createdBy?: string;
  /** Seconds since the Unix epoch. */
  creationDate?: number;
  /** The .torrent itself, exactly as parsed (a private copy): personal copies are cut from it. */
  bytes: Buffer;
}

export type ParseMetainfoResult =
  | { ok: true; torrent: Metainfo }
  /** `limit`: refused for a configured cap (size or file count), not for being malformed. */
  | { ok: false; error: string; limit?: 'bytes' | 'files' };

export interface ParseMetainfoOptions {
  /** Reject larger inputs before decoding (default 10 MiB). */
  maxBytes?: number;
  /** Reject torrents listing more files (padding files included), counted before any is read. */
  maxFiles?: number;
}

export interface PersonaliseOptions {
  announce: string;
  /** BEP 12 tiers; defaults to the single tier [[announce]] so no stale tracker list survives. */
  announceList?: string[][];
  /** Set info.private = 1 (changes the info hashes). false leaves the flag as it is. */
  setPrivate?: boolean;
  /** Set info.source (changes the info hashes). */
  source?: string;
  comment?: string;
}

const DEFAULT_MAX_BYTES = 10 * 1024 * 1024;
/** BEP 52 requires v2 piece sizes to be powers of two of at least 16 KiB. */
const MIN_V2_PIECE_LENGTH = 16 * 1024;
/** Directory levels in a v2 file tree; the bencode decoder's own depth limit also applies. */
const MAX_TREE_DEPTH = 48;

class MetainfoError {
  message: string;
  limit?: 'files';
  constructor(message: string, limit?: 'files') {
    this.message = message;
    this.limit = limit;
  }
}

const tooManyFiles = (max: number): never => {
  throw new MetainfoError(`torrent lists more than ${max} files`, 'files');
};

/** A declaration (not an arrow) so that TypeScript narrows after calls to it. */
function fail(message: string): never {
  throw new MetainfoError(message);
}

const isDict = (v: BValue | undefined): v is Map<string, BValue> => v instanceof Map;

const text = (b: Buffer): string => b.toString('utf8');

/** Non-negative integer that fits a JS number; bencode integers may arrive as bigint. */
function count(v: BValue | undefined, what: string): number {
  if (typeof v === 'bigint') return fail(`${what} is too large`);
  if (typeof v !== 'number' || v < 0) return fail(`${what} must be a non-negative integer`);
  return v;
}

/**
 * One path element. Raw bytes are checked so that no encoding trick can smuggle a separator:
 * '/' and '\\' (a separator on Windows) and NUL are refused, as are '.' and '..' which would let a
 * client write outside its download directory.
 */
function component(raw: Buffer, what = 'file path component is invalid'): string {
  const s = raw.toString('latin1');
  if (raw.length === 0 || s === '.' || s === '..' || /[/\\\0]/.test(s)) fail(what);
  return text(raw);
}

function isPowerOfTwoAtLeast(n: number, min: number): boolean {
  let p = min;
  while (p < n) p *= 2;
  return p === n;
}

interface V1Layout {
  files: MetainfoFile[];
  /** Including padding files: the pieces cover those bytes too. */
  paddedSize: number;
}

function parseV1(info: Map<string, BValue>, name: string, pieceLength: number, maxFiles: number): V1Layout {
  const pieces = info.get('pieces');
  if (!Buffer.isBuffer(pieces)) return fail('info.pieces missing or not a string');
  if (pieces.length % 20 !== 0) fail('info.pieces length is not a multiple of 20');

  const files: MetainfoFile[] = [];
  let paddedSize = 0;
  const single = info.get('length');
  const list = info.get('files');
  if (single !== undefined && list !== undefined) fail('info must have either length or files, not both');
  if (single !== undefined) {
    paddedSize = count(single, 'info.length');
    files.push({ path: name, length: paddedSize });
  } else if (list !== undefined) {
    if (!Array.isArray(list) || list.length === 0) fail('info.files must be a non-empty list');
    if ((list as BValue[]).length > maxFiles) tooManyFiles(maxFiles);
    for (const entry of list as BValue[]) {
      if (!isDict(entry)) return fail('info.files entry is not a dictionary');
      const length = count(entry.get('length'), 'file length');
      const path = entry.get('path');
      if (!Array.isArray(path) || path.length === 0) fail('file path must be a non-empty list');
      const parts = (path as BValue[]).map((p) =>
        Buffer.isBuffer(p) ? component(p) : fail('file path component is invalid'),
      );
      paddedSize += length;
      if (!Number.isSafeInteger(paddedSize)) fail('total size is too large');
      // BEP 47 padding files only align the next file to a piece boundary: not real content.
      const attr = entry.get('attr');
      if (Buffer.isBuffer(attr) && attr.includes(0x70)) continue;
      files.push({ path: [name, ...parts].join('/'), length });
    }
  } else {
    fail('info must have length or files');
  }

  const expected = paddedSize === 0 ? 0 : Math.ceil(paddedSize / pieceLength);
  if (pieces.length / 20 !== expected) fail('info.pieces count does not match the total length');
  return { files, paddedSize };
}

interface V2File extends MetainfoFile {
  root?: Buffer;
}

function parseV2(
  info: Map<string, BValue>,
  name: string,
  pieceLength: number,
  top: Map<string, BValue>,
  maxFiles: number,
): V2File[] {
  if (info.get('meta version') !== 2) fail('info.meta version must be 2');
  const tree = info.get('file tree');
  if (!isDict(tree)) return fail('info.file tree missing or not a dictionary');
  if (tree.size === 0) fail('info.file tree is empty');

  const found: { parts: string[]; length: number; root?: Buffer }[] = [];
  const walk = (node: Map<string, BValue>, prefix: string[], depth: number): void => {
    if (depth > MAX_TREE_DEPTH) fail('info.file tree is nested too deeply');
    if (node.size === 0) fail('info.file tree has an empty directory');
    for (const [key, child] of node) {
      const parts = [...prefix, component(Buffer.from(key, 'latin1'))];
      if (!isDict(child)) fail('info.file tree entry is not a dictionary');
      // A file is a node whose only key is "" (BEP 52); anything else is a directory.
      if (!child.has('')) {
        walk(child, parts, depth + 1);
        continue;
      }
      if (child.size !== 1) fail('info.file tree entry is both a file and a directory');
      if (found.length === maxFiles) tooManyFiles(maxFiles);
      const leaf = child.get('');
      if (!isDict(leaf)) fail('info.file tree file entry is not a dictionary');
      const length = count(leaf.get('length'), 'file length');
      const root = leaf.get('pieces root');
      if (length > 0 && (!Buffer.isBuffer(root) || root.length !== 32)) {
        fail('info.file tree: pieces root must be 32 bytes');
      }
      found.push({ parts, length, root: length > 0 ? (root as Buffer) : undefined });
    }
  };
  walk(tree, [], 0);

  // A lone file at the root of the tree is a single-file torrent; otherwise `name` is the folder.
  const single = found.length === 1 && found[0].parts.length === 1;
  const files = found.map((f) => ({
    path: single ? f.parts[0] : [name, ...f.parts].join('/'),
    length: f.length,
    root: f.root,
  }));

  const layers = top.get('piece layers');
  if (layers !== undefined) checkPieceLayers(layers, files, pieceLength);
  return files;
}

/** Optional (a magnet download fetches them separately), but when present they must be well-formed. */
function checkPieceLayers(layers: BValue, files: V2File[], pieceLength: number): void {
  if (!isDict(layers)) fail('piece layers must be a dictionary');
  const expected = new Map<string, number>();
  for (const f of files) {
    if (f.root && f.length > pieceLength) {
      expected.set(f.root.toString('latin1'), Math.ceil(f.length / pieceLength));
    }
  }
  for (const [root, layer] of layers) {
    if (Buffer.from(root, 'latin1').length !== 32) fail('piece layers key must be 32 bytes');
    if (!Buffer.isBuffer(layer) || layer.length === 0 || layer.length % 32 !== 0) {
      fail('piece layers value must be a non-empty multiple of 32 bytes');
    }
    const n = expected.get(root);
    if (n !== undefined && (layer as Buffer).length !== n * 32) {
      fail('piece layers length does not match the file');
    }
  }
}

function optionalText(top: Map<string, BValue>, key: string): string | undefined {
  const v = top.get(key);
  return Buffer.isBuffer(v) ? text(v) : undefined;
}

/** BEP 12 tiers. Keys outside `info` do not affect the hash, so malformed entries are dropped, not fatal. */
function parseAnnounceList(v: BValue | undefined): string[][] | undefined {
  if (!Array.isArray(v)) return undefined;
  const tiers: string[][] = [];
  for (const tier of v) {
    if (!Array.isArray(tier)) continue;
    const urls = tier.filter((u): u is Buffer => Buffer.isBuffer(u) && u.length > 0).map(text);
    if (urls.length > 0) tiers.push(urls);
  }
  return tiers;
}

function build(top: Map<string, BValue>, bytes: Buffer, infoBytes: Buffer, maxFiles: number): Metainfo {
  const info = top.get('info');
  if (info === undefined) return fail('missing info dictionary');
  if (!isDict(info)) return fail('info is not a dictionary');

  const rawName = info.get('name');
  if (!Buffer.isBuffer(rawName)) return fail('info.name missing or not a string');
  const name = component(rawName, "info.name must be non-empty, without '/', and not '.' or '..'");

  const pieceLength = info.get('piece length');
  if (typeof pieceLength !== 'number' || pieceLength <= 0) {
    return fail('info.piece length must be a positive integer');
  }

  const hasV1 = info.has('pieces') || info.has('length') || info.has('files');
  const hasV2 = info.has('meta version') || info.has('file tree');
  if (!hasV1 && !hasV2) fail('info has neither v1 pieces nor a v2 file tree');
  if (hasV2 && !isPowerOfTwoAtLeast(pieceLength, MIN_V2_PIECE_LENGTH)) {
    fail('info.piece length must be a power of two >= 16 KiB');
  }

  const v1 = hasV1 ? parseV1(info, name, pieceLength, maxFiles) : undefined;
  const v2 = hasV2 ? parseV2(info, name, pieceLength, top, maxFiles) : undefined;
  if (v1 && v2) {
    // BEP 52: a hybrid must describe the same files both ways, or v1 and v2 peers would disagree.
    const same =
      v1.files.length === v2.length &&
      v1.files.every((f, i) => f.path === v2[i].path && f.length === v2[i].length);
    if (!same) fail('hybrid torrent: v1 and v2 file lists differ');
  }

  const files = v2 ? v2.map((f) => ({ path: f.path, length: f.length })) : (v1 as V1Layout).files;
  const totalSize = files.reduce((sum, f) => sum + f.length, 0);
  if (!Number.isSafeInteger(totalSize)) fail('total size is too large');

  const torrent: Metainfo = {
    name,
    totalSize,
    pieceLength,
    files,
    version: v1 && v2 ? 'hybrid' : v1 ? 'v1' : 'v2',
    private: info.get('private') === 1,
    bytes,
  };
  if (v1) torrent.infoHashV1 = createHash('sha1').update(infoBytes).digest();
  if (v2) {
    torrent.infoHashV2 = createHash('sha256').update(infoBytes).digest();
    torrent.infoHashV2Truncated = torrent.infoHashV2.subarray(0, 20);
  }
  const source = info.get('source');
  if (Buffer.isBuffer(source)) torrent.source = text(source);
  const announce = optionalText(top, 'announce');
  if (announce !== undefined) torrent.announce = announce;
  const announceList = parseAnnounceList(top.get('announce-list'));
  if (announceList !== undefined) torrent.announceList = announceList;
  const comment = optionalText(top, 'comment');
  if (comment !== undefined) torrent.comment = comment;
  const createdBy = optionalText(top, 'created by');
  if (createdBy !== undefined) torrent.createdBy = createdBy;
  const date = top.get('creation date');
  if (typeof date === 'number') torrent.creationDate = date;
  return torrent;
}

/** Parses and validates a .torrent file. Never throws on bad input. */
export function parseMetainfo(bytes: Uint8Array, opts: ParseMetainfoOptions = {}): ParseMetainfoResult {
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
  if (bytes.byteLength > maxBytes)
    return { ok: false, error: `torrent is larger than ${maxBytes} bytes`, limit: 'bytes' };
  // A private copy: the result keeps it, and it must not change under the caller's feet.
  const buf = Buffer.from(bytes);
  const decoded = decode(buf, { spanOf: 'info' });
  if (!decoded.ok) return { ok: false, error: `not bencoded: ${decoded.error} at byte ${decoded.offset}` };
  if (!isDict(decoded.value)) return { ok: false, error: 'not a torrent: top level is not a dictionary' };
  const span = decoded.span ?? [0, 0];
  try {
    const maxFiles = opts.maxFiles ?? Number.POSITIVE_INFINITY;
    return { ok: true, torrent: build(decoded.value, buf, buf.subarray(span[0], span[1]), maxFiles) };
  } catch (err) {
    if (err instanceof MetainfoError)
      return err.limit
        ? { ok: false, error: err.message, limit: err.limit }
        : { ok: false, error: err.message };
    // A bug, not bad input; still an answer rather than a crash, but recognisable as ours.
    return { ok: false, error: `internal error: ${(err as Error)?.message ?? String(err)}` };
  }
}

/** Where the entry for `key` is, or would go, in a dictionary whose keys are sorted: [start, end). */
function slotOf(dict: { entries: DictEntry[]; close: number }, key: string): [number, number] {
  for (const e of dict.entries) {
    if (e.key === key) return [e.start, e.end];
    // Keys sort as raw bytes; latin1 keeps one byte per character, so string order is byte order.
    if (e.key > key) return [e.start, e.start];
  }
  return [dict.close, dict.close];
}

/** One encoded dictionary entry: the key, then the (already encoded) value. */
const entry = (key: string, value: Buffer) =>
  Buffer.concat([Buffer.from(`${key.length}:${key}`, 'latin1'), value]);

/** `buf` with each slot (in order, not overlapping) replaced by its part. */
function splice(buf: Buffer, slots: [number, number][], parts: Buffer[]): Buffer {
  const out: Buffer[] = [];
  let pos = 0;
  for (let i = 0; i < slots.length; i++) {
    out.push(buf.subarray(pos, slots[i][0]), parts[i]);
    pos = slots[i][1];
  }
  out.push(buf.subarray(pos));
  return Buffer.concat(out);
}

/**
 * Sets entries of the encoded dictionary `buf` (valid bencode, as a parse leaves it), keys given in
 * sorted order, by cutting and joining bytes: every other entry keeps its exact bytes.
 */
function setEntries(buf: Buffer, set: [string, Buffer][]): Buffer {
  const dict = dictEntries(buf);
  if (dict === null) throw new Error('setEntries: not a bencoded dictionary');
  return splice(
    buf,
    set.map(([key]) => slotOf(dict, key)),
    set.map(([key, value]) => entry(key, value)),
  );
}

/** BEP 12 tiers without empty URLs or empty tiers; the single tier [[announce]] by default. */
function cleanTiers(announce: string, announceList?: string[][]): string[][] {
  return (announceList ?? [[announce]])
    .map((tier) => tier.filter((u) => u.length > 0))
    .filter((tier) => tier.length > 0);
}

function announceEntries(announce: string, tiers: string[][]): [Buffer, Buffer] {
  if (announce.length === 0) throw new TypeError('announce must be a non-empty URL');
  return [
    entry('announce', encode(Buffer.from(announce, 'utf8'))),
    entry('announce-list', encode(tiers.map((tier) => tier.map((u) => Buffer.from(u, 'utf8'))))),
  ];
}

/**
 * Rewrites a torrent for this tracker: new announce / announce-list (and comment), optionally
 * marked private and tagged with a source. Every other key is kept, byte for byte: the new bytes
 * are cut and joined from the old ones (keys stay sorted), never re-encoded, so an untouched
 * info dictionary keeps its hashes; touching `info` yields new hashes, computed over the new
 * info bytes exactly as a client computes them, and carried by the returned torrent.
 */
export function personalise(
  torrent: Metainfo,
  opts: PersonaliseOptions,
): { bytes: Buffer; torrent: Metainfo } {
  const tiers = cleanTiers(opts.announce, opts.announceList);
  const [announce, announceList] = announceEntries(opts.announce, tiers);
  const top = dictEntries(torrent.bytes);
  if (top === null) throw new Error('personalise: the torrent bytes are not a dictionary');
  // Sorted keys: announce < announce-list < comment < info; inside info, private < source.
  const parts: [number, number][] = [slotOf(top, 'announce'), slotOf(top, 'announce-list')];
  const values = [announce, announceList];
  if (opts.comment !== undefined) {
    parts.push(slotOf(top, 'comment'));
    values.push(entry('comment', encode(Buffer.from(opts.comment, 'utf8'))));
  }
  const out: Metainfo = { ...torrent, announce: opts.announce, announceList: tiers };
  if (opts.comment !== undefined) out.comment = opts.comment;
  if (opts.setPrivate || opts.source !== undefined) {
    // A parsed torrent has its info dictionary (and only a dictionary parses as one).
    const old = top.entries.find((e) => e.key === 'info') as DictEntry;
    const set: [string, Buffer][] = [];
    if (opts.setPrivate) set.push(['private', Buffer.from('i1e')]);
    if (opts.source !== undefined) set.push(['source', encode(Buffer.from(opts.source, 'utf8'))]);
    const info = setEntries(torrent.bytes.subarray(old.valueStart, old.end), set);
    parts.push([old.start, old.end]);
    values.push(entry('info', info));
    if (opts.setPrivate) out.private = true;
    if (opts.source !== undefined) out.source = opts.source;
    if (torrent.infoHashV1) out.infoHashV1 = createHash('sha1').update(info).digest();
    if (torrent.infoHashV2) {
      out.infoHashV2 = createHash('sha256').update(info).digest();
      out.infoHashV2Truncated = out.infoHashV2.subarray(0, 20);
    }
  }
  out.bytes = splice(torrent.bytes, parts, values);
  return { bytes: out.bytes, torrent: out };
}

/**
 * Where a personal copy differs from the stored .torrent: the byte ranges of its `announce` and
 * `announce-list` entries ([start, end) each, empty where the key is absent), in file order.
 * Stored with the file at upload, so that a download is a few copies, not a parse.
 */
export type AnnounceSlots = [number, number, number, number];

/** The announce slots of a .torrent already accepted by `parseMetainfo`; null if it is not a dictionary. */
export function announceSlots(bytes: Uint8Array): AnnounceSlots | null {
  const top = dictEntries(bytes);
  if (top === null) return null;
  return [...slotOf(top, 'announce'), ...slotOf(top, 'announce-list')];
}

/**
 * The personal copy of a stored .torrent: its bytes with the announce slots filled. The same bytes
 * `personalise(parseMetainfo(bytes), { announce, announceList })` gives, without parsing.
 */
export function withAnnounce(
  bytes: Uint8Array,
  slots: AnnounceSlots,
  announce: string,
  announceList?: string[][],
): Buffer {
  const [a, b, c, d] = slots;
  if (!(0 <= a && a <= b && b <= c && c <= d && d <= bytes.length))
    throw new RangeError('bad announce slots');
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return splice(
    buf,
    [
      [a, b],
      [c, d],
    ],
    announceEntries(announce, cleanTiers(announce, announceList)),
  );
}

/** RFC 3986 unreserved characters only; encodeURIComponent leaves !'()* alone. */
const pct = (s: string): string =>
  encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/** Magnet URI: btih for v1, btmh (multihash 0x12 sha2-256, 0x20 bytes) for v2; both for hybrids. */
export function magnetLink(
  torrent: Pick<Metainfo, 'infoHashV1' | 'infoHashV2' | 'name' | 'totalSize'>,
  trackers: string[],
): string {
  const params: string[] = [];
  if (torrent.infoHashV1) params.push(`xt=urn:btih:${torrent.infoHashV1.toString('hex')}`);
  if (torrent.infoHashV2) params.push(`xt=urn:btmh:1220${torrent.infoHashV2.toString('hex')}`);
  params.push(`dn=${pct(torrent.name)}`, `xl=${torrent.totalSize}`);
  for (const tr of trackers) params.push(`tr=${pct(tr)}`);
  return `magnet:?${params.join('&')}`;
}
