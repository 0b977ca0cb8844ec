/**
 * `npm run fuzz`: random and mutated inputs against Herald's parsers and listeners, on loopback,
 * bounded in count and time, deterministic for a seed (bench/fuzz/campaign.ts has the oracles).
 *
 *   npm run fuzz                                   every target, 1,000,000 inputs each (at most 600 s each)
 *   npm run fuzz -- --count 20000 --seconds 30     smaller
 *   npm run fuzz -- --target udp --target ws       some targets (bencode, metainfo, wsjson, udp, http, ws, api, portal, http-node)
 *   npm run fuzz -- --seed 42                      the same inputs as another run with seed 42
 *   npm run fuzz -- --out DIR                      where inputs that found something are written (default .fuzz/SEED)
 *   npm run fuzz -- --rss-growth MB                RSS may grow this much after warm-up (default 256)
 *   npm run fuzz -- --replay .fuzz/15/http-stall-0.bin   send one saved input again (its target from the name)
 *   npm run fuzz -- --workers 2                    against `herald serve --workers 2` (hand-overs between workers)
 *
 * Prints a summary table; exits 1 when any target crashed Herald, got or caused an internal error,
 * stalled a connection, failed a probe, or RSS went over its bound.
 */
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { parseArgs } from 'node:util';
import { formatReport, randomSeed, runCampaign, TARGETS, type TargetName } from './fuzz/campaign.ts';

const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '1000000' },
    seconds: { type: 'string', default: '600' },
    target: { type: 'string', multiple: true },
    seed: { type: 'string' },
    out: { type: 'string' },
    'rss-growth': { type: 'string', default: '256' },
    replay: { type: 'string' },
    workers: { type: 'string', default: '1' },
  },
});
let replay: Buffer | undefined;
let replayTarget: TargetName | undefined;
if (values.replay !== undefined) {
  replay = readFileSync(values.replay);
  const file = basename(values.replay);
  // The longest target name the file is named after (http-node-... before http-...).
  replayTarget = [...TARGETS].sort((a, b) => b.length - a.length).find((t) => file.startsWith(`${t}-`));
  if (replayTarget === undefined) {
    process.stderr.write(`fuzz: ${file}: the name does not start with a target (${TARGETS.join(', ')})\n`);
    process.exit(2);
  }
}
const seed = values.seed ?? randomSeed();
const targets = replayTarget ? [replayTarget] : ((values.target ?? [...TARGETS]) as TargetName[]);
for (const t of targets)
  if (!(TARGETS as readonly string[]).includes(t)) {
    process.stderr.write(`fuzz: unknown target ${t} (targets: ${TARGETS.join(', ')})\n`);
    process.exit(2);
  }
const count = replay ? 1 : Number(values.count);
const seconds = Number(values.seconds);
const workers = Number(values.workers);
if (!Number.isInteger(count) || count < 1 || !(seconds > 0) || !Number.isInteger(workers) || workers < 1) {
  process.stderr.write('fuzz: --count and --workers are positive integers, --seconds a positive number\n');
  process.exit(2);
}
const root = new URL('../', import.meta.url).pathname;
const report = await runCampaign({
  seed,
  targets,
  count,
  seconds,
  rssGrowth: Number(values['rss-growth']) * 2 ** 20,
  out: replay ? null : (values.out ?? join(root, '.fuzz', seed)),
  log: (line) => process.stderr.write(`fuzz: ${line}\n`),
  replay,
  warmUpRounds: replay ? 1 : undefined,
  workers,
});
process.stdout.write(`${formatReport(report, seed)}\n`);
process.exitCode = report.ok ? 0 : 1;
