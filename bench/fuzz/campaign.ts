/**
 * A fuzz campaign: the codec targets in a worker thread, then the network targets against
 * `herald serve` as a child process (private mode, SQLite, API and portal on), with the oracles
 * that matter to an operator: the process stays up, nothing answers or logs "internal error",
 * RSS stays within a bound after warm-up, and valid requests still get valid answers after every
 * batch and every phase. Used by `npm run fuzz` (bench/fuzz.ts) and by the short campaign in
 * `npm test` (test/fuzz/fuzz-short.test.ts).
 */
import { randomBytes } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { populate, privateArgs, type Site } from '../harness/fixtures.ts';
import { type HeraldChild, RssSampler, startHerald } from '../harness/herald-child.ts';
import type { CodecJob, CodecReport } from './codec-worker.ts';
import { CODEC_TARGETS, type CodecTarget, codecInputs } from './codecs.ts';
import { runHttp } from './net-http.ts';
import { runUdp } from './net-udp.ts';
import { runApi, runPortal } from './net-web.ts';
import { runWs } from './net-ws.ts';
import { probeAll, probeApi, probeHttp, probePortal, probeUdp, probeWs, statsOf } from './probes.ts';
import { Rng } from './rng.ts';

/** How long after a phase Herald may still hold sockets of clients that have gone (see runNetTarget). */
const SETTLE_MS = 45_000;

import { type Finding, type NetContext, newResult, Recorder, type TargetResult } from './target.ts';

export const TARGETS = [
  'bencode',
  'metainfo',
  'wsjson',
  'udp',
  'http',
  'ws',
  'api',
  'portal',
  'http-node',
] as const;
export type TargetName = (typeof TARGETS)[number];

export interface CampaignOptions {
  seed: string;
  targets: readonly TargetName[];
  /** Inputs per target (a number for all, or per target). */
  count: number | Partial<Record<TargetName, number>>;
  /** Seconds per target at most. */
  seconds: number;
  /** RSS may grow this much over its value after warm-up (bytes). */
  rssGrowth: number;
  /** Where inputs that found something are written (null: nowhere). */
  out: string | null;
  /** Rounds of valid requests (every probe) before RSS is taken as the warm value (default 20). */
  warmUpRounds?: number;
  /**
   * Run the codec targets and each Herald process at the same time (the short campaign in
   * `npm test`, where most of the time is start-up); rates are then not comparable.
   */
  parallel?: boolean;
  /** One saved input to send again (to the single target in `targets`), instead of generated ones. */
  replay?: Buffer;
  /**
   * Worker processes of each Herald (default 1): with more, requests are handed between workers
   * (RSS and socket counts are then the primary's only).
   */
  workers?: number;
  log?: (line: string) => void;
}

export interface CampaignReport {
  results: TargetResult[];
  findings: Finding[];
  /** RSS after warm-up, per Herald process, and the bound applied. */
  rss: { process: string; warm: number; max: number; bound: number; httpIo: string }[];
  ok: boolean;
}

const NET_RUNNERS: Record<string, (ctx: NetContext) => Promise<void>> = {
  udp: runUdp,
  http: (ctx) => runHttp(ctx, 'http'),
  'http-node': (ctx) => runHttp(ctx, 'http-node'),
  ws: runWs,
  api: runApi,
  portal: runPortal,
};

const NET_PROBES: Record<string, (child: HeraldChild, site: Site) => Promise<string | null>> = {
  udp: probeUdp,
  http: (c, s) => probeHttp(c.http, s),
  'http-node': (c, s) => probeHttp(c.http, s),
  ws: (c, s) => probeWs(c.http, s),
  api: (c, s) => probeApi(c.http, s),
  portal: (c, s) => probePortal(c.http, s),
};

function countFor(o: CampaignOptions, t: TargetName): number {
  return typeof o.count === 'number' ? o.count : (o.count[t] ?? 0);
}

async function runCodec(o: CampaignOptions, target: CodecTarget, rec: Recorder): Promise<TargetResult> {
  const result = newResult(target);
  if (o.replay !== undefined) {
    const f = CODEC_TARGETS[target].check(Rng.from(o.seed, `${target}/check`), o.replay);
    result.inputs = 1;
    if (f !== null) {
      rec.add(target, f.kind, f.detail);
      if (f.kind === 'internal') result.internal++;
      else result.crashes++;
    }
    return result;
  }
  const progress = new SharedArrayBuffer(4);
  const job: CodecJob = { target, seed: o.seed, count: countFor(o, target), seconds: o.seconds, progress };
  const t0 = performance.now();
  const worker = new Worker(new URL('./codec-worker.ts', import.meta.url), { workerData: job });
  const view = new Int32Array(progress);
  let last = -1;
  let still = 0;
  const report = await new Promise<CodecReport | { hangAt: number } | { error: string }>((resolve) => {
    // An input that takes more than 10 s is a hang: the worker is stopped and the input kept.
    const watch = setInterval(() => {
      const now = Atomics.load(view, 0);
      if (now !== last) {
        last = now;
        still = 0;
        return;
      }
      if (++still >= 10) {
        clearInterval(watch);
        void worker.terminate();
        resolve({ hangAt: now - 1 });
      }
    }, 1000);
    worker.once('message', (r: CodecReport) => {
      clearInterval(watch);
      resolve(r);
    });
    worker.once('error', (err) => {
      clearInterval(watch);
      resolve({ error: String(err) });
    });
  });
  result.seconds = (performance.now() - t0) / 1000;
  if ('hangAt' in report) {
    const gen = codecInputs(Rng.from(o.seed, target), target);
    let input: Buffer = Buffer.alloc(0);
    for (let i = 0; i <= report.hangAt; i++) input = gen.next().value as Buffer;
    result.inputs = report.hangAt + 1;
    result.crashes++;
    rec.add(target, 'hang', `input ${report.hangAt} ran for more than 10 s`, input);
    return result;
  }
  if ('error' in report) {
    result.crashes++;
    rec.add(target, 'worker-error', report.error);
    return result;
  }
  result.inputs = report.inputs;
  result.answers = report.inputs;
  result.digest = report.digest;
  for (const f of report.findings) rec.add(target, f.kind, f.detail, Buffer.from(f.input));
  for (const [kind, n] of Object.entries(report.counts)) {
    if (kind === 'internal') result.internal += n;
    else result.crashes += n;
  }
  o.log?.(`${target}: ${report.inputs} inputs, slowest ${report.slowestMs.toFixed(1)} ms`);
  return result;
}

/** Starts a private-mode Herald with people and torrents, and warms it up with valid traffic. */
async function startSite(seed: string, extra: string[]): Promise<{ child: HeraldChild; site: Site }> {
  const token = Rng.from(seed, 'token').bytes(20).toString('hex');
  // No upload limit: the portal target's member uploads again and again, and must reach the parser.
  const child = await startHerald(privateArgs(token, ['--uploads-per-hour', '0', ...extra]));
  try {
    const site = await populate(child, token, {
      members: ['probe', 'fuzz', 'victim', 'staff', 'member', 'staffprobe'],
      staff: ['staff', 'staffprobe'],
      withPassword: ['staff', 'member', 'probe', 'staffprobe'],
      torrents: ['probe', 'fuzz', 'victim'],
    });
    return { child, site };
  } catch (err) {
    await child.stop();
    child.cleanup();
    throw err;
  }
}

/** Valid traffic on every path before RSS is taken. */
async function warmUp(child: HeraldChild, site: Site, rounds: number): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    const failures = await probeAll(child, site);
    if (failures.length > 0) throw new Error(`herald does not answer valid requests: ${failures.join('; ')}`);
  }
}

interface Group {
  extra: string[];
  label: string;
  targets: TargetName[];
}

/** One network target against a running Herald, then the checks every phase ends with. */
async function runNetTarget(
  o: CampaignOptions,
  t: TargetName,
  child: HeraldChild,
  site: Site,
  sampler: RssSampler,
  rec: Recorder,
  baseSockets: number,
): Promise<TargetResult> {
  const log = o.log ?? (() => {});
  const result = newResult(t);
  const logBefore = { ...child.log, samples: child.log.samples.length };
  const internalBefore = (await statsOf(child.http)).internalErrors;
  sampler.max = 0;
  const t0 = performance.now();
  const ctx: NetContext = {
    child,
    site,
    seed: o.seed,
    count: countFor(o, t),
    deadline: t0 + o.seconds * 1000,
    result,
    record: rec,
    progress: (m) => log(`${m} (RSS ${(child.rss() / 2 ** 20).toFixed(0)} MiB)`),
    replay: o.replay ?? null,
    async probe() {
      if (child.exit() !== null) return false;
      let failure: string | null;
      try {
        failure = await NET_PROBES[t](child, site);
      } catch (err) {
        failure = String(err);
      }
      if (failure !== null) {
        result.probeFailures++;
        rec.add(t, 'probe', failure);
      }
      return failure === null;
    },
  };
  log(`${t}: start (${ctx.count} inputs, at most ${o.seconds} s)`);
  try {
    await NET_RUNNERS[t](ctx);
  } catch (err) {
    rec.add(t, 'harness', err instanceof Error ? (err.stack ?? err.message) : String(err));
    result.probeFailures++;
  }
  result.seconds = (performance.now() - t0) / 1000;
  result.maxRss = Math.max(sampler.max, sampler.sample());
  const newLines = () => child.log.samples.slice(logBefore.samples).join('\n') || '(see the log)';
  const exit = child.exit();
  if (exit !== null) {
    result.crashes++;
    rec.add(t, 'crash', `herald exited (${exit.code ?? exit.signal}): ${newLines()}`);
    return result;
  }
  // After the phase: every kind of valid request still answered, no internal error anywhere.
  for (const f of await probeAll(child, site)) {
    result.probeFailures++;
    rec.add(t, 'probe-after-phase', f);
  }
  // Every connection the phase opened is closed by now (the fuzzer closed its side of each):
  // Herald holds no socket for a client that has gone.
  // Past http_idle_timeout (30 s by default): a client that half-closed without reading its
  // answers (Herald stops reading a connection whose answers wait) is a live connection to
  // Herald until the idle sweep closes it; that is the bound Herald promises, not a leak.
  const held = await socketsSettle(child, baseSockets, SETTLE_MS);
  if (held > 0) {
    result.stalls += held;
    rec.add(
      t,
      'connections-held',
      `${held} sockets more than before the phase, ${SETTLE_MS / 1000} s after it ended`,
    );
  }
  const counted = (await statsOf(child.http)).internalErrors - internalBefore;
  const logged = child.log.internal - logBefore.internal;
  if (Math.max(counted, logged) > 0) {
    result.internal += Math.max(counted, logged);
    rec.add(t, 'internal-error-logged', newLines());
  }
  const otherErrors = child.log.errors - logBefore.errors - logged + (child.log.foreign - logBefore.foreign);
  if (otherErrors > 0) {
    result.internal += otherErrors;
    rec.add(t, 'error-logged', newLines());
  }
  log(
    `${t}: ${result.inputs} inputs in ${result.seconds.toFixed(1)} s, ${result.answers} answers, ` +
      `max RSS ${(result.maxRss / 2 ** 20).toFixed(0)} MiB`,
  );
  return result;
}

/** Waits until the process holds at most `base` sockets; how many more it still holds at `ms`. */
async function socketsSettle(child: HeraldChild, base: number, ms: number): Promise<number> {
  const until = performance.now() + ms;
  for (;;) {
    const extra = child.sockets() - base;
    if (extra <= 0 || performance.now() >= until || child.exit() !== null) return Math.max(0, extra);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** One Herald process: start, people and torrents, warm-up, its targets in turn, graceful stop. */
async function runGroup(
  o: CampaignOptions,
  g: Group,
  rec: Recorder,
): Promise<{ results: TargetResult[]; rss: CampaignReport['rss'][number] }> {
  const log = o.log ?? (() => {});
  const results: TargetResult[] = [];
  const { child, site } = await startSite(o.seed, g.extra);
  const sampler = new RssSampler(child, 250);
  let warm = 0;
  try {
    await warmUp(child, site, o.warmUpRounds ?? 20);
    warm = sampler.sample();
    const baseSockets = child.sockets();
    log(
      `${g.label}: pid ${child.pid}, HTTP I/O ${child.httpIo}, RSS after warm-up ${(warm / 2 ** 20).toFixed(0)} MiB`,
    );
    for (const t of g.targets) {
      const r = await runNetTarget(o, t, child, site, sampler, rec, baseSockets);
      results.push(r);
      if (r.maxRss > warm + o.rssGrowth)
        rec.add(t, 'rss', `RSS ${r.maxRss} above the bound ${warm + o.rssGrowth}`);
      if (child.exit() !== null) break;
    }
  } finally {
    sampler.stop();
    // A graceful stop must still work after all that (and flush the accounting).
    const exit = await child.stop();
    if (exit.code !== 0 && results.length > 0) {
      const last = results[results.length - 1];
      last.crashes++;
      rec.add(last.name, 'stop', `herald did not stop cleanly (${exit.code ?? exit.signal})`);
    }
    child.cleanup();
  }
  const max = Math.max(0, ...sampler.samples.map((x) => x.rss));
  return { results, rss: { process: g.label, warm, max, bound: warm + o.rssGrowth, httpIo: child.httpIo } };
}

export async function runCampaign(o: CampaignOptions): Promise<CampaignReport> {
  const rec = new Recorder(o.out);
  const log = o.log ?? (() => {});
  // The network targets: one Herald for all but http-node, which gets one with --http-io node.
  const w = (o.workers ?? 1) > 1 ? ['--workers', String(o.workers)] : [];
  const groups: Group[] = [
    {
      extra: w,
      label: `herald${w.length > 0 ? ` ${w.join(' ')}` : ''}`,
      targets: o.targets.filter((t) => NET_RUNNERS[t] && t !== 'http-node'),
    },
    {
      extra: ['--http-io', 'node', ...w],
      label: `herald --http-io node${w.length > 0 ? ` ${w.join(' ')}` : ''}`,
      targets: o.targets.filter((t) => t === 'http-node'),
    },
  ].filter((g) => g.targets.length > 0);
  const codecs = async () => {
    const results: TargetResult[] = [];
    for (const t of o.targets)
      if (t === 'bencode' || t === 'metainfo' || t === 'wsjson') {
        log(`${t}: start`);
        results.push(await runCodec(o, t, rec));
      }
    return { results, rss: null };
  };
  const lanes = [codecs, ...groups.map((g) => () => runGroup(o, g, rec))];
  const done: { results: TargetResult[]; rss: CampaignReport['rss'][number] | null }[] = [];
  if (o.parallel) done.push(...(await Promise.all(lanes.map((lane) => lane()))));
  else for (const lane of lanes) done.push(await lane());
  const results = done.flatMap((d) => d.results);
  results.sort((a, b) => TARGETS.indexOf(a.name as TargetName) - TARGETS.indexOf(b.name as TargetName));
  const rss = done.flatMap((d) => (d.rss === null ? [] : [d.rss]));
  const ok =
    results.every((r) => r.crashes === 0 && r.internal === 0 && r.stalls === 0 && r.probeFailures === 0) &&
    rss.every((r) => r.max <= r.bound);
  return { results, findings: rec.findings, rss, ok };
}

/** The summary table (plain text, aligned). */
export function formatReport(r: CampaignReport, seed: string): string {
  const mib = (n: number) => (n / 2 ** 20).toFixed(0);
  const rows = [
    [
      'target',
      'inputs',
      'seconds',
      'inputs/s',
      'answers',
      'crashes',
      'internal',
      'stalls',
      'probes failed',
      'max RSS MiB',
      'digest',
    ],
    ...r.results.map((x) => [
      x.name,
      String(x.inputs),
      x.seconds.toFixed(1),
      x.seconds > 0 ? String(Math.round(x.inputs / x.seconds)) : '-',
      String(x.answers),
      String(x.crashes),
      String(x.internal),
      String(x.stalls),
      String(x.probeFailures),
      x.maxRss > 0 ? mib(x.maxRss) : '-',
      x.digest,
    ]),
  ];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  const line = (row: string[]) => `| ${row.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  const out = [
    `fuzz campaign, seed ${seed}`,
    line(rows[0]),
    `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`,
  ];
  for (const row of rows.slice(1)) out.push(line(row));
  for (const p of r.rss)
    out.push(
      `${p.process} (HTTP I/O ${p.httpIo}): RSS after warm-up ${mib(p.warm)} MiB, max ${mib(p.max)} MiB, bound ${mib(p.bound)} MiB` +
        (p.max > p.bound ? ' EXCEEDED' : ''),
    );
  if (r.findings.length > 0) {
    out.push('', 'findings:');
    for (const f of r.findings)
      out.push(`  [${f.target}] ${f.kind}: ${f.detail.split('\n')[0]}${f.file ? ` (${f.file})` : ''}`);
  }
  out.push('', r.ok ? 'result: PASS' : 'result: FAIL');
  return out.join('\n');
}

export function randomSeed(): string {
  return randomBytes(4).toString('hex');
}
