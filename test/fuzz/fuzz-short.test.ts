/**
 * The short fuzz campaign of `npm test`: the same fuzzer as `npm run fuzz` (bench/fuzz/), with
 * small counts, against `herald serve` as a child process in private mode with SQLite. It fails on
 * any crash, internal error (answered, logged or counted in /stats), stalled connection, probe
 * that did not get a valid answer, or RSS above its bound. The seed is fixed so that a failure
 * here is the same failure on every machine (HERALD_FUZZ_SEED picks another).
 *
 * A finding's input is written under .fuzz/<seed>/; `npm run fuzz -- --seed <seed> --target <t>`
 * runs the same inputs with larger counts.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { formatReport, runCampaign, type TargetName } from '../../bench/fuzz/campaign.ts';
import { codecInputs } from '../../bench/fuzz/codecs.ts';
import { Rng } from '../../bench/fuzz/rng.ts';

const SEED = process.env.HERALD_FUZZ_SEED ?? 'ci-1';
const ROOT = new URL('../../', import.meta.url).pathname;

const COUNTS: Record<TargetName, number> = {
  bencode: 20_000,
  metainfo: 10_000,
  wsjson: 5000,
  udp: 20_000,
  http: 1500,
  ws: 1000,
  api: 500,
  portal: 400,
  'http-node': 1000,
};

test('the inputs are a function of the seed', () => {
  const take = (seed: string) => {
    const gen = codecInputs(Rng.from(seed, 'metainfo'), 'metainfo');
    return Array.from({ length: 500 }, () => gen.next().value as Buffer);
  };
  const a = take('same');
  assert.deepEqual(take('same'), a);
  assert.notDeepEqual(take('other'), a);
});

test('short fuzz campaign: no crash, no internal error, valid answers after every phase', async (t) => {
  const report = await runCampaign({
    seed: SEED,
    targets: Object.keys(COUNTS) as TargetName[],
    count: COUNTS,
    seconds: 30,
    rssGrowth: 256 * 2 ** 20,
    out: join(ROOT, '.fuzz', SEED),
    warmUpRounds: 2,
    parallel: true,
  });
  const table = formatReport(report, SEED);
  t.diagnostic(table);
  for (const r of report.results) assert.ok(r.inputs > 0, `${r.name}: no input was sent\n${table}`);
  assert.ok(report.ok, table);
});
