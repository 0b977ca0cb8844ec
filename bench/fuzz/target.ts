import { createHash, type Hash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Site } from '../harness/fixtures.ts';
import type { HeraldChild } from '../harness/herald-child.ts';
import { Rng } from './rng.ts';

/** What one target did: the row of the summary table. */
export interface TargetResult {
  name: string;
  inputs: number;
  /** Replies, responses or frames received and checked. */
  answers: number;
  seconds: number;
  /** The Herald process died during this target (or the codec threw or broke its contract). */
  crashes: number;
  /** Answers saying "internal error" (HTTP 500 included), and internal errors in Herald's log or /stats. */
  internal: number;
  /** Connections that neither answered nor closed in time after the client had finished sending. */
  stalls: number;
  /** Valid requests (probes) that did not get a valid answer. */
  probeFailures: number;
  maxRss: number;
  /** SHA-256 over the inputs as generated (before server-issued secrets are filled in). */
  digest: string;
}

export interface Finding {
  target: string;
  kind: string;
  detail: string;
  file?: string;
}

/**
 * Records findings (the first few inputs of each kind are written to `dir` for replay) and keeps
 * the counts of one target.
 */
export class Recorder {
  readonly findings: Finding[] = [];
  #saved = new Map<string, number>();
  #dir: string | null;

  constructor(dir: string | null) {
    this.#dir = dir;
  }

  add(target: string, kind: string, detail: string, input?: Uint8Array): void {
    const key = `${target}-${kind}`;
    const n = this.#saved.get(key) ?? 0;
    this.#saved.set(key, n + 1);
    if (n >= 10) return;
    let file: string | undefined;
    if (input !== undefined && this.#dir !== null) {
      mkdirSync(this.#dir, { recursive: true });
      file = join(this.#dir, `${key}-${n}.bin`);
      writeFileSync(file, input);
    }
    this.findings.push({ target, kind, detail: detail.slice(0, 500), file });
  }
}

/**
 * The inputs of one target, in order, from its own stream of the seed. `next()` returns the
 * input as generated (what the digest covers) and `fill()` puts the server-issued secrets
 * (passkeys, tokens, connection ids) where their placeholders survived the mutation.
 */
export class InputStream {
  readonly rng: Rng;
  #make: (rng: Rng) => Buffer;
  #hash: Hash = createHash('sha256');
  #secrets: [Buffer, Buffer][];
  count = 0;

  constructor(rng: Rng, make: (rng: Rng) => Buffer, secrets: [Buffer, Buffer][] = []) {
    this.rng = rng;
    this.#make = make;
    this.#secrets = secrets;
  }

  /** A target's stream: its generator, or the one input being replayed (`--replay FILE`). */
  static of(ctx: NetContext, name: string, make: (rng: Rng) => Buffer, secrets: [Buffer, Buffer][] = []) {
    const replay = ctx.replay;
    return new InputStream(Rng.from(ctx.seed, name), replay === null ? make : () => replay, secrets);
  }

  next(): Buffer {
    const b = this.#make(this.rng);
    const len = Buffer.allocUnsafe(4);
    len.writeUInt32LE(b.length);
    this.#hash.update(len).update(b);
    this.count++;
    return b;
  }

  setSecret(placeholder: Buffer, value: Buffer): void {
    const s = this.#secrets.find(([p]) => p.equals(placeholder));
    if (s) s[1] = value;
    else this.#secrets.push([placeholder, value]);
  }

  fill(input: Buffer): Buffer {
    let out = input;
    for (const [p, v] of this.#secrets) out = replaceAll(out, p, v);
    return out;
  }

  digest(): string {
    return this.#hash.copy().digest('hex').slice(0, 16);
  }
}

export function replaceAll(hay: Buffer, needle: Buffer, value: Buffer): Buffer {
  let i = hay.indexOf(needle);
  if (i < 0) return hay;
  const parts: Buffer[] = [];
  let from = 0;
  while (i >= 0) {
    parts.push(hay.subarray(from, i), value);
    from = i + needle.length;
    i = hay.indexOf(needle, from);
  }
  parts.push(hay.subarray(from));
  return Buffer.concat(parts);
}

/** Placeholders of fixed length (the secrets' own lengths), so mutations line up run after run. */
export const PLACEHOLDER = {
  passkey: Buffer.from('PASSKEYZ'.padEnd(32, 'Z')),
  token: Buffer.from('APITOKEN'.padEnd(40, 'T')),
  session: Buffer.from('SESSIONS'.padEnd(43, 'S')),
  csrf: Buffer.from('CSRFCSRF'.padEnd(43, 'C')),
  connectionId: Buffer.from('CONNID!!'),
} as const;

/** Everything a network target needs while it runs. */
export interface NetContext {
  child: HeraldChild;
  site: Site;
  seed: string;
  count: number;
  /** performance.now() after which the target stops sending. */
  deadline: number;
  result: TargetResult;
  record: Recorder;
  /** Runs this target's probe (and checks the process); false when the answer was not valid. */
  probe(): Promise<boolean>;
  /** Logs a line of progress (to stderr). */
  progress(msg: string): void;
  /** An input saved by an earlier run, sent instead of generated ones (count 1). */
  replay: Buffer | null;
}

export function newResult(name: string): TargetResult {
  return {
    name,
    inputs: 0,
    answers: 0,
    seconds: 0,
    crashes: 0,
    internal: 0,
    stalls: 0,
    probeFailures: 0,
    maxRss: 0,
    digest: '',
  };
}

/**
 * Whether an answer says "internal error": an HTTP 500 status line, or the words as Herald sends
 * them to a client (bencoded `failure reason`, a plain-text or JSON body, a WebSocket message),
 * not where they merely name a metric ("herald_internal_errors_total ... Internal errors").
 */
export function saysInternal(b: Buffer): boolean {
  if (b.includes('14:internal error') || b.includes('"internal error"')) return true;
  const s = b.toString('latin1', 0, Math.min(b.length, 1 << 20));
  return /HTTP\/1\.[01] 500/.test(s) || /(^|\r\n\r\n|\n)internal error\n/.test(s);
}

/**
 * Hands inputs to a target's concurrent workers and, every `probeEvery` inputs, runs the probe
 * while they wait (a valid request must get a valid answer in the middle of the storm, not only
 * after it). `run` starts the workers and fills in the result's count and digest however they end.
 */
export class Pacer {
  #ctx: NetContext;
  #inputs: InputStream;
  #name: string;
  #probeEvery: number;
  #since = 0;
  #probing: Promise<unknown> | null = null;

  constructor(ctx: NetContext, inputs: InputStream, name: string, probeEvery: number) {
    this.#ctx = ctx;
    this.#inputs = inputs;
    this.#name = name;
    this.#probeEvery = probeEvery;
  }

  /** The next input as generated, or null once the count, the time or the process has run out. */
  async next(): Promise<Buffer | null> {
    if (this.#probing) await this.#probing;
    const ctx = this.#ctx;
    if (this.#inputs.count >= ctx.count || performance.now() >= ctx.deadline || ctx.child.exit() !== null)
      return null;
    const input = this.#inputs.next();
    if (++this.#since >= this.#probeEvery) {
      this.#since = 0;
      ctx.progress(`${this.#name} ${this.#inputs.count}`);
      this.#probing = ctx.probe().finally(() => {
        this.#probing = null;
      });
    }
    return input;
  }

  async run(concurrency: number, worker: () => Promise<void>): Promise<void> {
    try {
      await Promise.all(Array.from({ length: concurrency }, worker));
      if (this.#probing) await this.#probing;
    } finally {
      this.#ctx.result.inputs = this.#inputs.count;
      this.#ctx.result.digest = this.#inputs.digest();
    }
  }
}

/** How often a target probes: about ten times a run, between `min` and `max` inputs apart. */
export function probeInterval(count: number, min: number, max: number): number {
  return Math.max(min, Math.min(max, Math.floor(count / 10)));
}
