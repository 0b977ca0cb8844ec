/**
 * Runs one codec target in a worker thread, so that the main thread can stop it if an input makes
 * the codec hang. Progress (inputs done) is published in shared memory after every input.
 */
import { createHash } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';
import { CODEC_TARGETS, type CodecFinding, type CodecTarget, codecInputs } from './codecs.ts';
import { Rng } from './rng.ts';

export interface CodecJob {
  target: CodecTarget;
  seed: string;
  count: number;
  seconds: number;
  /** Int32Array over a SharedArrayBuffer: [inputs started]. */
  progress: SharedArrayBuffer;
}

export interface CodecReport {
  inputs: number;
  digest: string;
  findings: { kind: string; detail: string; input: Uint8Array }[];
  counts: Record<string, number>;
  slowestMs: number;
}

const job = workerData as CodecJob;
const progress = new Int32Array(job.progress);
const { check } = CODEC_TARGETS[job.target];
const inputs = codecInputs(Rng.from(job.seed, job.target), job.target);
const checkRng = Rng.from(job.seed, `${job.target}/check`);
const hash = createHash('sha256');
const counts: Record<string, number> = {};
const findings: CodecReport['findings'] = [];
const deadline = performance.now() + job.seconds * 1000;
let slowest = 0;
let n = 0;
const len = Buffer.alloc(4);
while (n < job.count && (n % 256 !== 0 || performance.now() < deadline)) {
  const input = inputs.next().value as Buffer;
  len.writeUInt32LE(input.length);
  hash.update(len).update(input);
  Atomics.store(progress, 0, n + 1);
  const t0 = performance.now();
  const f: CodecFinding | null = check(checkRng, input);
  const ms = performance.now() - t0;
  if (ms > slowest) slowest = ms;
  n++;
  if (f !== null) {
    counts[f.kind] = (counts[f.kind] ?? 0) + 1;
    if (findings.length < 20) findings.push({ kind: f.kind, detail: f.detail, input: f.input });
  }
}
const report: CodecReport = {
  inputs: n,
  digest: hash.digest('hex').slice(0, 16),
  findings,
  counts,
  slowestMs: slowest,
};
parentPort!.postMessage(report);
