/**
 * In-process targets: the pure codecs `protocol/bencode` and `protocol/metainfo`, which Herald
 * runs on bytes from anyone (uploaded .torrent files, API bodies). Their contract: every input
 * either parses or comes back as the codec's typed error result; nothing is thrown, nothing hangs.
 * Beyond that contract the oracles check what a parse promises: a strict bencode decode re-encodes
 * to the same bytes, and a parsed torrent can be personalised and parsed again to the same hashes.
 */

import { isUtf8 } from 'node:buffer';
import type { createHash } from 'node:crypto';
import { type BEncodable, decode, encode } from '../../src/protocol/bencode/index.ts';
import { magnetLink, parseMetainfo, personalise } from '../../src/protocol/metainfo/index.ts';
import {
  encodeAnswer,
  parseClientMessage,
  type WsClientMessage,
} from '../../src/protocol/websocket/codec.ts';
import { parseClientFrame } from '../../src/protocol/websocket/scan.ts';
import { generate, type Space } from './mutate.ts';
import type { Rng } from './rng.ts';
import { mutateWsText, wsMessages } from './ws-messages.ts';

const b = (s: string) => Buffer.from(s, 'latin1');
const bytes = (n: number, seed: number) => {
  const out = Buffer.alloc(n);
  for (let i = 0; i < n; i++) out[i] = (i * 131 + seed * 29 + 7) & 0xff;
  return out;
};

type Dict = Map<string, BEncodable>;
const dict = (entries: [string, BEncodable][]): Dict => new Map(entries);

function top(info: Dict, extra: [string, BEncodable][] = []): Buffer {
  return encode(
    dict([
      ['announce', b('http://tracker.example/announce')],
      [
        'announce-list',
        [[b('http://tracker.example/announce')], [b('udp://tracker.example:6969'), b('wss://t.example')]],
      ],
      ['comment', Buffer.from('généré', 'utf8')],
      ['created by', b('herald fuzz')],
      ['creation date', 1_700_000_000],
      ['info', info],
      ...extra,
    ]),
  );
}

/** v1 (single, multi with a BEP 47 pad file), v2, hybrid (single and multi): valid .torrent files. */
export function torrentTemplates(): Buffer[] {
  const v1Single = dict([
    ['length', 40_000],
    ['name', b('a.bin')],
    ['piece length', 16384],
    ['pieces', bytes(60, 1)],
    ['private', 1],
  ]);
  const v1Multi = dict([
    [
      'files',
      [
        dict([
          ['length', 100],
          ['path', [b('sub'), b('b.txt')]],
        ]),
        dict([
          ['length', 0],
          ['path', [b('empty')]],
        ]),
        dict([
          ['attr', b('p')],
          ['length', 16284],
          ['path', [b('.pad'), b('16284')]],
        ]),
        dict([
          ['length', 20_000],
          ['path', [Buffer.from('ünï cødé.txt', 'utf8')]],
        ]),
      ],
    ],
    ['name', b('dir')],
    ['piece length', 16384],
    ['pieces', bytes(60, 2)],
    ['source', b('HERALD')],
  ]);
  const root = bytes(32, 3);
  const leaf = (length: number, r: Buffer) =>
    dict([
      [
        '',
        dict(
          length > 0
            ? [
                ['length', length],
                ['pieces root', r],
              ]
            : [['length', 0]],
        ),
      ],
    ]);
  const v2Single = dict([
    ['file tree', dict([['a.bin', leaf(40_000, root)]])],
    ['meta version', 2],
    ['name', b('a.bin')],
    ['piece length', 16384],
  ]);
  const layers: [string, BEncodable][] = [['piece layers', dict([[root.toString('latin1'), bytes(96, 4)]])]];
  const hybridSingle = new Map([...v1Single, ...v2Single]);
  const root2 = bytes(32, 5);
  const hybridMulti = dict([
    [
      'file tree',
      dict([
        ['b.txt', leaf(100, root)],
        ['c.bin', leaf(20_000, root2)],
        ['d', dict([['e', leaf(0, root)]])],
      ]),
    ],
    [
      'files',
      [
        dict([
          ['length', 100],
          ['path', [b('b.txt')]],
        ]),
        dict([
          ['length', 20_000],
          ['path', [b('c.bin')]],
        ]),
        dict([
          ['length', 0],
          ['path', [b('d'), b('e')]],
        ]),
      ],
    ],
    ['meta version', 2],
    ['name', b('dir')],
    ['piece length', 16384],
    ['pieces', bytes(40, 6)],
  ]);
  const sorted = (m: Dict) => new Map([...m].sort(([x], [y]) => Buffer.compare(b(x), b(y))));
  return [
    top(v1Single),
    top(v1Multi),
    top(v2Single, layers),
    top(sorted(hybridSingle), layers),
    top(hybridMulti, [['piece layers', dict([[root2.toString('latin1'), bytes(64, 7)]])]]),
    encode(dict([['info', v1Single]])),
  ];
}

/** Tracker answers and odd but valid values, besides the torrents. */
function bencodeTemplates(): Buffer[] {
  return [
    ...torrentTemplates(),
    encode(
      dict([
        ['complete', 5],
        ['downloaded', 12],
        ['incomplete', 3],
        ['interval', 1800],
        ['min interval', 900],
        ['peers', bytes(30, 8)],
        ['peers6', bytes(36, 9)],
      ]),
    ),
    encode(
      dict([
        [
          'files',
          dict([
            [
              bytes(20, 10).toString('latin1'),
              dict([
                ['complete', 1],
                ['downloaded', 2],
                ['incomplete', 3],
              ]),
            ],
          ]),
        ],
      ]),
    ),
    encode(dict([['failure reason', b('unknown passkey')]])),
    encode(
      dict([
        [
          'peers',
          [
            dict([
              ['ip', b('127.0.0.1')],
              ['peer id', bytes(20, 11)],
              ['port', 6881],
            ]),
          ],
        ],
      ]),
    ),
    b('i0e'),
    b('i-1e'),
    b('i9007199254740993e'),
    b('i-99999999999999999999999e'),
    b('0:'),
    b('le'),
    b('de'),
    b('llllleeeee'),
  ];
}

const BENCODE_TOKENS = [
  'i',
  'e',
  'l',
  'd',
  ':',
  '0:',
  '1:',
  '4:',
  '20:',
  '99999999:',
  '4294967296:',
  'i0e',
  'i-0e',
  'i00e',
  'i-e',
  'ie',
  '-',
  'le',
  'de',
  '4:info',
  '6:pieces',
  '6:length',
  '5:files',
  '4:path',
  '4:name',
  '12:piece length',
  '12:meta version',
  '9:file tree',
  '0:d6:lengthi1eee',
  '11:pieces root',
  '12:piece layers',
  '7:private',
  '13:announce-list',
  '8:announce',
  '4:attr',
  '1:p',
  '2:..',
  '1:/',
].map(b);

export const bencodeSpace: Space = {
  templates: bencodeTemplates(),
  tokens: BENCODE_TOKENS,
  separators: [b('e'), b(':')],
  numbers: 'text',
  maxLength: 1 << 16,
};

export const metainfoSpace: Space = {
  templates: torrentTemplates(),
  tokens: BENCODE_TOKENS,
  separators: [b('e'), b('d'), b('l')],
  numbers: 'text',
  maxLength: 1 << 16,
};

export interface CodecFinding {
  kind: 'exception' | 'contract' | 'roundtrip' | 'internal';
  detail: string;
  input: Buffer;
}

const DECODE_OPTIONS = [{}, {}, { strict: false }, { maxDepth: 4 }, { maxItems: 40 }, { spanOf: 'info' }];

/** One bencode input through `decode` under varied options; a finding when the contract is broken. */
export function checkBencode(rng: Rng, input: Buffer): CodecFinding | null {
  const opts = rng.pick(DECODE_OPTIONS);
  let r: ReturnType<typeof decode>;
  try {
    r = decode(input, opts);
  } catch (err) {
    return { kind: 'exception', detail: `decode threw: ${String(err)}`, input };
  }
  if (r === null || typeof r !== 'object') return { kind: 'contract', detail: 'no result', input };
  if (!r.ok) {
    if (typeof r.error !== 'string' || r.error === '' || !Number.isInteger(r.offset) || r.offset < 0)
      return { kind: 'contract', detail: `bad error result ${JSON.stringify(r)}`, input };
    if (r.offset > input.length)
      return { kind: 'contract', detail: `error offset ${r.offset} beyond ${input.length}`, input };
    return null;
  }
  if (r.span !== null && (r.span[0] < 0 || r.span[1] > input.length || r.span[0] > r.span[1]))
    return { kind: 'contract', detail: `span ${r.span} outside the input`, input };
  if ((opts as { strict?: boolean }).strict === false) return null;
  // Strict decoding accepts only canonical bencode, so encoding what it returned gives the input back.
  let again: Buffer;
  try {
    again = encode(r.value as BEncodable);
  } catch (err) {
    return { kind: 'exception', detail: `encode of a decoded value threw: ${String(err)}`, input };
  }
  if (!again.equals(input)) return { kind: 'roundtrip', detail: 'strict decode, encode: other bytes', input };
  return null;
}

/** One .torrent input through `parseMetainfo`, and (when it parses) `personalise` and `magnetLink`. */
export function checkMetainfo(_rng: Rng, input: Buffer): CodecFinding | null {
  let r: ReturnType<typeof parseMetainfo>;
  try {
    r = parseMetainfo(input);
  } catch (err) {
    return { kind: 'exception', detail: `parseMetainfo threw: ${String(err)}`, input };
  }
  if (!r.ok) {
    if (typeof r.error !== 'string' || r.error === '')
      return { kind: 'contract', detail: 'error without a message', input };
    // parseMetainfo's own catch-all: a bug reached as an error string, not a rule of the format.
    if (r.error.startsWith('internal error')) return { kind: 'internal', detail: r.error, input };
    return null;
  }
  const t = r.torrent;
  try {
    const p = personalise(t, { announce: 'http://127.0.0.1/announce/0123456789abcdef0123456789abcdef' });
    const again = parseMetainfo(p.bytes);
    if (!again.ok)
      return { kind: 'roundtrip', detail: `personalised file does not parse: ${again.error}`, input };
    const same = (x?: Buffer, y?: Buffer) =>
      x === undefined ? y === undefined : y !== undefined && x.equals(y);
    if (!same(again.torrent.infoHashV1, t.infoHashV1) || !same(again.torrent.infoHashV2, t.infoHashV2))
      return { kind: 'roundtrip', detail: 'personalising changed the info hashes', input };
    magnetLink(t, ['http://127.0.0.1/announce']);
  } catch (err) {
    return { kind: 'exception', detail: `personalise/magnetLink threw: ${String(err)}`, input };
  }
  return null;
}

/** A message as plain data: ids as hex, each offer's JSON parsed (its bytes may differ, not its value). */
function comparable(m: WsClientMessage): unknown {
  return JSON.parse(
    JSON.stringify(m, (k, v) => {
      if (k === 'offerJson') return JSON.parse(Buffer.from(v as Uint8Array).toString('utf8'));
      if (v instanceof Uint8Array || (v && typeof v === 'object' && v.type === 'Buffer'))
        return Buffer.from(v instanceof Uint8Array ? v : v.data).toString('hex');
      return v;
    }),
  );
}

/**
 * A WebTorrent message through both of Herald's parsers: `parseClientFrame` (the byte scanner,
 * falling back to JSON) must give what `parseClientMessage` (JSON.parse and checks) gives, for
 * every text a WebSocket can deliver (valid UTF-8); neither may throw.
 */
export function checkWsJson(_rng: Rng, input: Buffer): CodecFinding | null {
  let fast: ReturnType<typeof parseClientFrame>;
  let slow: ReturnType<typeof parseClientMessage>;
  try {
    fast = parseClientFrame(input);
  } catch (err) {
    return { kind: 'exception', detail: `parseClientFrame threw: ${String(err)}`, input };
  }
  if (!isUtf8(input)) return null; // RawWebSocket closes the socket (1007) before parsing
  try {
    slow = parseClientMessage(input.toString('utf8'));
  } catch (err) {
    return { kind: 'exception', detail: `parseClientMessage threw: ${String(err)}`, input };
  }
  if (fast.ok !== slow.ok)
    return {
      kind: 'contract',
      detail: `scanner ${JSON.stringify(fast).slice(0, 200)}, JSON ${JSON.stringify(slow).slice(0, 200)}`,
      input,
    };
  if (!fast.ok || !slow.ok) return null;
  // What parses must be relayable: the answer goes out through JSON.stringify.
  const m = slow.msg;
  if (m.action === 'announce' && m.answer !== undefined) {
    const { offerId, answer } = m.answer;
    try {
      encodeAnswer({ infoHash: m.infoHash, fromPeerId: m.peerId, offerId, answer });
    } catch (err) {
      return { kind: 'exception', detail: `a parsed answer cannot be relayed: ${String(err)}`, input };
    }
  }
  let a: string;
  let b: string;
  try {
    a = JSON.stringify(comparable(fast.msg));
    b = JSON.stringify(comparable(m));
  } catch {
    return null; // too deep for this comparison (Herald relays only what it could stringify)
  }
  if (a !== b)
    return { kind: 'contract', detail: `scanner ${a.slice(0, 300)} / JSON ${b.slice(0, 300)}`, input };
  return null;
}

const WS_MESSAGES = wsMessages(Buffer.alloc(20, 0xa1), Buffer.alloc(20, 0x7e));

export const CODEC_TARGETS = {
  bencode: { space: bencodeSpace, check: checkBencode, make: null },
  metainfo: { space: metainfoSpace, check: checkMetainfo, make: null },
  wsjson: { space: null, check: checkWsJson, make: (rng: Rng) => mutateWsText(rng, WS_MESSAGES) },
} as const;

export type CodecTarget = keyof typeof CODEC_TARGETS;

/** The inputs of a codec target, in order: the same for the same seed (the SHA-256 says so). */
export function* codecInputs(rng: Rng, target: CodecTarget): Generator<Buffer> {
  const t = CODEC_TARGETS[target];
  for (;;) yield t.make ? t.make(rng) : generate(rng, t.space!);
}

export function digestOf(h: ReturnType<typeof createHash>): string {
  return h.digest('hex').slice(0, 16);
}
