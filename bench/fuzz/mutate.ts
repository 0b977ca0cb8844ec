import type { Rng } from './rng.ts';

/**
 * What one target's inputs are made from: valid inputs to start from, and the bytes that mean
 * something to its parser. Mutations of valid inputs reach the code behind the first check, which
 * random bytes almost never do; the tokens let a mutation say the parser's own words.
 */
export interface Space {
  /** Valid inputs (each is a complete, correct request of its kind). */
  templates: readonly Buffer[];
  /** Byte strings worth inserting: keywords, separators, escapes, framing. */
  tokens: readonly Buffer[];
  /** Field separators for "repeat a field" (`&` of a query, CRLF of a header block). */
  separators: readonly Buffer[];
  /** Numbers as decimal text (queries, JSON), as big-endian binary words (UDP, frames), or both. */
  numbers: 'text' | 'binary' | 'both';
  /** Longest input produced. */
  maxLength: number;
}

const ascii = (s: string) => Buffer.from(s, 'latin1');

/** Decimal numbers at the edges of the types parsers convert to (32/53/64 bits, floats, junk). */
export const TEXT_NUMBERS: readonly Buffer[] = [
  '0',
  '-0',
  '00',
  '1',
  '-1',
  '+1',
  '127',
  '128',
  '255',
  '256',
  '65535',
  '65536',
  '2147483647',
  '2147483648',
  '-2147483648',
  '-2147483649',
  '4294967295',
  '4294967296',
  '9007199254740991',
  '9007199254740992',
  '9007199254740993',
  '-9007199254740993',
  '9223372036854775807',
  '9223372036854775808',
  '18446744073709551615',
  '18446744073709551616',
  '99999999999999999999999999999999999999',
  '1e308',
  '1e309',
  '-1e309',
  '1.5',
  '0.0000001',
  '0x10',
  '1_000',
  'NaN',
  'Infinity',
  '',
].map(ascii);

/** Big-endian words at the same edges, for binary formats. */
const BINARY_WORDS: readonly (readonly [number, bigint])[] = [
  [1, 0n],
  [1, 1n],
  [1, 0x7fn],
  [1, 0x80n],
  [1, 0xffn],
  [2, 0n],
  [2, 0x7fffn],
  [2, 0x8000n],
  [2, 0xffffn],
  [4, 0n],
  [4, 1n],
  [4, 2n],
  [4, 3n],
  [4, 4n],
  [4, 0x7fffffffn],
  [4, 0x80000000n],
  [4, 0xffffffffn],
  [8, 0n],
  [8, 0x1fffffffffffffn],
  [8, 0x20000000000000n],
  [8, 0x7fffffffffffffffn],
  [8, 0x8000000000000000n],
  [8, 0xffffffffffffffffn],
];

const REPEATS = [2, 2, 3, 4, 8, 64, 1000, 10_000] as const;

function concat(...parts: Buffer[]): Buffer {
  return Buffer.concat(parts);
}

/** Positions where `needle` starts in `hay`. */
function positions(hay: Buffer, needle: Buffer): number[] {
  const out: number[] = [];
  if (needle.length === 0) return out;
  let i = hay.indexOf(needle);
  while (i >= 0 && out.length < 4096) {
    out.push(i);
    i = hay.indexOf(needle, i + needle.length);
  }
  return out;
}

/** Runs of ASCII digits (with a leading minus): [start, end). */
function digitRuns(b: Buffer): [number, number][] {
  const out: [number, number][] = [];
  let i = 0;
  while (i < b.length && out.length < 4096) {
    if (b[i] >= 48 && b[i] <= 57) {
      let s = i;
      if (s > 0 && b[s - 1] === 45) s--;
      while (i < b.length && b[i] >= 48 && b[i] <= 57) i++;
      out.push([s, i]);
    } else i++;
  }
  return out;
}

type Op = (rng: Rng, b: Buffer, space: Space) => Buffer;

const flipBit: Op = (rng, b) => {
  if (b.length === 0) return b;
  const out = Buffer.from(b);
  const i = rng.int(b.length);
  out[i] ^= 1 << rng.int(8);
  return out;
};

const INTERESTING_BYTES = [
  0, 1, 0x7f, 0x80, 0xff, 0x0d, 0x0a, 0x20, 0x25, 0x26, 0x3d, 0x22, 0x5c, 0x2f, 0x3a,
];
const setByte: Op = (rng, b) => {
  if (b.length === 0) return b;
  const out = Buffer.from(b);
  out[rng.int(b.length)] = rng.chance(0.5) ? rng.pick(INTERESTING_BYTES) : rng.int(256);
  return out;
};

const arith: Op = (rng, b) => {
  if (b.length === 0) return b;
  const out = Buffer.from(b);
  const i = rng.int(b.length);
  out[i] = (out[i] + (rng.chance(0.5) ? 1 : -1) * rng.range(1, 35)) & 0xff;
  return out;
};

const insertRandom: Op = (rng, b) => {
  const i = rng.int(b.length + 1);
  return concat(b.subarray(0, i), rng.bytes(rng.small(16)), b.subarray(i));
};

const insertToken: Op = (rng, b, space) => {
  if (space.tokens.length === 0) return b;
  const i = rng.int(b.length + 1);
  return concat(b.subarray(0, i), rng.pick(space.tokens), b.subarray(i));
};

/** Replaces one occurrence of a token with another token (a keyword swapped for another). */
const swapToken: Op = (rng, b, space) => {
  if (space.tokens.length < 2) return b;
  for (let tries = 0; tries < 4; tries++) {
    const from = rng.pick(space.tokens);
    const at = positions(b, from);
    if (at.length === 0) continue;
    const i = rng.pick(at);
    return concat(b.subarray(0, i), rng.pick(space.tokens), b.subarray(i + from.length));
  }
  return b;
};

const deleteRange: Op = (rng, b) => {
  if (b.length === 0) return b;
  const i = rng.int(b.length);
  const n = rng.chance(0.8) ? rng.small(8) : rng.range(1, b.length - i);
  return concat(b.subarray(0, i), b.subarray(i + n));
};

const truncate: Op = (rng, b) => b.subarray(0, rng.int(b.length));

const duplicateRange: Op = (rng, b, space) => {
  if (b.length === 0) return b;
  const i = rng.int(b.length);
  const n = rng.range(1, Math.min(64, b.length - i));
  const piece = b.subarray(i, i + n);
  const times = Math.min(rng.pick(REPEATS), Math.floor((space.maxLength - b.length) / n));
  if (times < 1) return b;
  const parts = [b.subarray(0, i + n)];
  for (let k = 0; k < times; k++) parts.push(piece);
  parts.push(b.subarray(i + n));
  return Buffer.concat(parts);
};

/** Repeats one whole field (between two separators) many times: `&port=1&port=1&port=1...`. */
const repeatField: Op = (rng, b, space) => {
  if (space.separators.length === 0) return b;
  const sep = rng.pick(space.separators);
  const at = positions(b, sep);
  if (at.length === 0) return b;
  const k = rng.int(at.length);
  const start = at[k];
  const end = k + 1 < at.length ? at[k + 1] : b.length;
  const field = b.subarray(start, end);
  if (field.length === 0) return b;
  const times = Math.min(rng.pick(REPEATS), Math.floor((space.maxLength - b.length) / field.length));
  if (times < 1) return b;
  const parts = [b.subarray(0, end)];
  for (let n = 0; n < times; n++) parts.push(field);
  parts.push(b.subarray(end));
  return Buffer.concat(parts);
};

/** Removes one field, or swaps two. */
const dropOrSwapField: Op = (rng, b, space) => {
  if (space.separators.length === 0) return b;
  const sep = rng.pick(space.separators);
  const at = positions(b, sep);
  if (at.length < 2) return b;
  const k = rng.int(at.length - 1);
  const a = b.subarray(at[k], at[k + 1]);
  if (rng.chance(0.5) || k + 2 > at.length) return concat(b.subarray(0, at[k]), b.subarray(at[k + 1]));
  const end = k + 2 < at.length ? at[k + 2] : b.length;
  const c = b.subarray(at[k + 1], end);
  return concat(b.subarray(0, at[k]), c, a, b.subarray(end));
};

const textNumber: Op = (rng, b) => {
  const runs = digitRuns(b);
  if (runs.length === 0) return b;
  const [s, e] = rng.pick(runs);
  return concat(b.subarray(0, s), rng.pick(TEXT_NUMBERS), b.subarray(e));
};

const binaryNumber: Op = (rng, b) => {
  const [size, value] = rng.pick(BINARY_WORDS);
  if (b.length < size) return b;
  const out = Buffer.from(b);
  let i = rng.int(b.length - size + 1);
  if (rng.chance(0.7)) i -= i % Math.min(size, 4);
  let v = rng.chance(0.2) ? value - 1n : value;
  if (v < 0n) v = 0n;
  for (let k = size - 1; k >= 0; k--) {
    out[i + k] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
};

/** The head of this input and the tail of another template. */
const splice: Op = (rng, b, space) => {
  const other = rng.pick(space.templates);
  return concat(b.subarray(0, rng.int(b.length + 1)), other.subarray(rng.int(other.length + 1)));
};

const swapRanges: Op = (rng, b) => {
  if (b.length < 4) return b;
  const i = rng.int(b.length - 1);
  const j = rng.range(i + 1, b.length - 1);
  return concat(b.subarray(0, i), b.subarray(j), b.subarray(i, j));
};

function ops(space: Space): (readonly [number, Op])[] {
  const list: (readonly [number, Op])[] = [
    [6, flipBit],
    [6, setByte],
    [3, arith],
    [4, insertRandom],
    [8, insertToken],
    [5, swapToken],
    [6, deleteRange],
    [3, truncate],
    [4, duplicateRange],
    [6, repeatField],
    [3, dropOrSwapField],
    [3, splice],
    [2, swapRanges],
  ];
  if (space.numbers !== 'binary') list.push([8, textNumber]);
  if (space.numbers !== 'text') list.push([8, binaryNumber]);
  return list;
}

const opCache = new WeakMap<Space, (readonly [number, Op])[]>();

/** One to a few stacked mutations of `base` (a template unless given). */
export function mutate(rng: Rng, space: Space, base?: Buffer): Buffer {
  let list = opCache.get(space);
  if (list === undefined) {
    list = ops(space);
    opCache.set(space, list);
  }
  let b = base ?? rng.pick(space.templates);
  const n = rng.small(6);
  for (let k = 0; k < n; k++) {
    b = rng.weighted(list)(rng, b, space);
    if (b.length > space.maxLength) b = b.subarray(0, space.maxLength);
  }
  return b;
}

/** Mostly mutations of templates; now and then random bytes or a string of tokens. */
export function generate(rng: Rng, space: Space): Buffer {
  const r = rng.int(100);
  if (r < 3) return rng.bytes(rng.int(Math.min(space.maxLength, 1 << rng.range(2, 12))));
  if (r < 6 && space.tokens.length > 0) {
    const parts: Buffer[] = [];
    for (let n = rng.small(32); n > 0; n--) parts.push(rng.pick(space.tokens));
    return Buffer.concat(parts).subarray(0, space.maxLength);
  }
  return mutate(rng, space);
}

/** JSON's own bytes and the escapes and numbers JSON parsers disagree about. */
export const JSON_TOKENS: readonly Buffer[] = [
  '{',
  '}',
  '[',
  ']',
  '"',
  ':',
  ',',
  '\\',
  'null',
  'true',
  '\\u0000',
  '\\ud800',
  '1e999',
  '-0',
].map(ascii);

const DEEP = '@@nested@@';

/**
 * Mutations of a JSON value: one value replaced by an edge case, a key dropped, repeated or
 * added, deep nesting, long strings. Returns text (a byte-level mutation may follow).
 */
export function mutateJson(rng: Rng, value: unknown): string {
  const v = structuredClone(value) as unknown;
  const edges: unknown[] = [
    null,
    true,
    false,
    0,
    -1,
    1.5,
    2 ** 31,
    2 ** 32,
    2 ** 53 + 2,
    -(2 ** 63),
    1e308,
    '',
    'x'.repeat(rng.pick([1, 100, 10_000, 70_000])),
    '\u0000',
    '\ud800',
    '😀',
    '%00',
    [],
    {},
    [1, 2, 3],
    { a: 1 },
  ];
  const holders: { obj: Record<string, unknown> | unknown[]; key: string | number }[] = [];
  const walk = (x: unknown, depth: number) => {
    if (depth > 6 || x === null || typeof x !== 'object') return;
    if (Array.isArray(x))
      x.forEach((item, i) => {
        holders.push({ obj: x, key: i });
        walk(item, depth + 1);
      });
    else
      for (const k of Object.keys(x as object)) {
        holders.push({ obj: x as Record<string, unknown>, key: k });
        walk((x as Record<string, unknown>)[k], depth + 1);
      }
  };
  walk(v, 0);
  const n = rng.small(3);
  let extra = '';
  let depth = 0;
  for (let k = 0; k < n && holders.length > 0; k++) {
    const h = rng.pick(holders);
    const op = rng.int(7);
    const set = (val: unknown) => {
      (h.obj as Record<string | number, unknown>)[h.key] = val;
    };
    if (op <= 2) set(rng.pick(edges));
    else if (op === 3 && !Array.isArray(h.obj)) delete (h.obj as Record<string, unknown>)[h.key as string];
    else if (op === 4) {
      // Deep nesting, spliced in as text (JSON.stringify itself would overflow the stack).
      depth = rng.pick([10, 100, 5000, 30_000]);
      set(DEEP);
    } else if (op === 5 && !Array.isArray(h.obj)) {
      // A key that is already there, once more (JSON.parse keeps the last).
      extra = `,${JSON.stringify(String(h.key))}:${JSON.stringify(rng.pick(edges))}`;
    } else if (typeof (h.obj as Record<string | number, unknown>)[h.key] === 'number')
      set(Number(rng.pick(TEXT_NUMBERS).toString()) || rng.pick(edges));
    else
      set(
        `${String((h.obj as Record<string | number, unknown>)[h.key])}${rng.pick(['\u0000', '"', '\\', 'é'])}`,
      );
  }
  let text = JSON.stringify(v) ?? 'null';
  if (depth > 0) text = text.replace(`"${DEEP}"`, `${'['.repeat(depth)}1${']'.repeat(depth)}`);
  if (extra !== '' && text.endsWith('}') && text.length > 2) return `${text.slice(0, -1)}${extra}}`;
  return text;
}
