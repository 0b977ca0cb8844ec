/**
 * What steering by info hash costs (native/src/udp_batch.c openGroup): CPU per datagram with the
 * reuseport BPF program attached against a plain socket, paired, two ways.
 *
 * 1. The kernel's share (bench/udp-steer-kernel.c): one thread sends batches of announces into
 *    every layout in turn and drains them; CPU per datagram for each. Precise to tens of ns.
 * 2. End to end: a minimal BEP 15 responder (the batched addon; no swarm work, so the I/O path is
 *    all there is to measure) serves each layout in turn, pinned to CPU 0, while bench/udp-load.c
 *    announces at it from CPU 1; the layouts alternate in short rounds. On loopback the kernel's
 *    receive path (socket lookup, reuseport choice, the program) runs in the sender's softirq, so
 *    its cost lands in the load generator's CPU; both sides are reported per datagram answered.
 *    The load generator spins for replies, so this one is the noisier of the two.
 *
 *   node bench/udp-steer.ts [--rounds=5] [--seconds=2]
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { BATCH, loadUdpBatchAddon, META, type UdpBatchAddon } from '../src/frontend/udp/batch.ts';

const LAYOUTS = {
  plain: 'one socket, no SO_REUSEPORT',
  reuseport: 'one SO_REUSEPORT socket, no program (the kernel hash)',
  steer1: 'openGroup n=1 (the program runs, always index 0)',
  steer2: 'openGroup n=2, both sockets served by this one process',
} as const;
type Layout = keyof typeof LAYOUTS;

const SLOT = 2048;

/** Answers connect (16 bytes) and announce (20 bytes, no peers) on `handle`; counts what it answers. */
function respond(addon: UdpBatchAddon, handle: object, count: { n: number }): void {
  const im = new Uint8Array(BATCH * META);
  const id = new Uint8Array(BATCH * SLOT);
  const om = new Uint8Array(BATCH * META);
  const od = new Uint8Array(BATCH * SLOT);
  addon.start(handle, im.buffer, id.buffer, SLOT, om.buffer, od.buffer, SLOT, (n) => {
    let m = 0;
    for (let i = 0; i < n; i++) {
      const mo = i * META;
      const len = im[mo + 20] | (im[mo + 21] << 8);
      const d = i * SLOT;
      const o = m * SLOT;
      if (len === 16 && id[d + 11] === 0) {
        od.set(id.subarray(d + 8, d + 16), o); // action 0, transaction id
        od.fill(7, o + 8, o + 16); // any connection id: the responder checks none
      } else if (len >= 98 && id[d + 11] === 1) {
        od.set(id.subarray(d + 8, d + 16), o); // action 1, transaction id
        od.fill(0, o + 8, o + 20);
        od[o + 10] = 0x07; // interval 1800
        od[o + 11] = 0x08;
      } else continue;
      om.set(im.subarray(mo, mo + 20), m * META);
      om[m * META + 20] = len === 16 ? 16 : 20;
      om[m * META + 21] = 0;
      count.n++;
      m++;
    }
    return m;
  });
}

/** The child: serves one layout until stdin closes; prints its port, then `cpu` answers on request. */
function serve(layout: Layout): void {
  const addon = loadUdpBatchAddon();
  if (addon === null) throw new Error('the udp_batch addon is not built (bash scripts/build-native.sh)');
  const handles =
    layout === 'plain' || layout === 'reuseport'
      ? [addon.open(4, '127.0.0.1', 0, layout === 'reuseport')]
      : addon.openGroup(4, '127.0.0.1', 0, layout === 'steer1' ? 1 : 2).map((fd) => addon.adopt(fd));
  const count = { n: 0 };
  for (const h of handles) respond(addon, h, count);
  process.stdout.write(`${addon.port(handles[0])}\n`);
  createInterface({ input: process.stdin })
    .on('line', () => {
      const u = process.cpuUsage();
      process.stdout.write(`${JSON.stringify({ cpu_us: u.user + u.system, answered: count.n })}\n`);
    })
    .on('close', () => process.exit(0));
}

function arg(name: string, dflt: number): number {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  return a === undefined ? dflt : Number(a.slice(name.length + 3));
}

interface Round {
  serverUs: number;
  clientUs: number;
  answered: number;
  rps: number;
}

async function measure(): Promise<void> {
  const rounds = arg('rounds', 5);
  const seconds = arg('seconds', 2);
  const root = new URL('../', import.meta.url).pathname;
  const work = join(root, '.bench');
  mkdirSync(work, { recursive: true });
  const load = join(work, 'udp-load');
  execFileSync('gcc', ['-O2', '-Wall', '-o', load, join(root, 'bench/udp-load.c')]);
  const kernel = join(work, 'udp-steer-kernel');
  execFileSync('gcc', ['-O2', '-Wall', '-o', kernel, join(root, 'bench/udp-steer-kernel.c')]);
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[xs.length >> 1];

  const kernelRuns: Record<string, number>[] = [];
  for (let r = 0; r < rounds; r++)
    kernelRuns.push(JSON.parse(execFileSync('taskset', ['-c', '1', kernel, '6000']).toString()));
  const plainNs = median(kernelRuns.map((k) => k.plain));
  console.log(`Kernel path (send + receive + recvmmsg), ${rounds} runs of 6000 batches of 64; medians`);
  console.log('| layout | ns/datagram | vs plain |');
  console.log('| --- | ---: | ---: |');
  for (const layout of Object.keys(kernelRuns[0])) {
    const v = median(kernelRuns.map((k) => k[layout]));
    console.log(
      `| ${layout} | ${v.toFixed(0)} | ${v - plainNs >= 0 ? '+' : ''}${(v - plainNs).toFixed(0)} |`,
    );
  }
  console.log();
  const results = new Map<Layout, Round[]>();
  for (let r = 0; r < rounds; r++) {
    for (const layout of Object.keys(LAYOUTS) as Layout[]) {
      const child = spawn('taskset', ['-c', '0', process.execPath, import.meta.filename, 'serve', layout], {
        stdio: ['pipe', 'pipe', 'inherit'],
      });
      const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
      const next = async (): Promise<string> => (await lines.next()).value as string;
      try {
        const port = Number(await next());
        const ask = async () => {
          child.stdin!.write('cpu\n');
          return JSON.parse(await next()) as { cpu_us: number; answered: number };
        };
        const before = await ask();
        const out = execFileSync('taskset', [
          '-c',
          '1',
          load,
          '127.0.0.1',
          String(port),
          'announce',
          String(seconds),
          '256',
          '10000',
          '10',
          String(1 + r),
        ]).toString();
        const after = await ask();
        const l = JSON.parse(out) as { ok: number; rps: number; cpu_s: number; invalid: number };
        if (l.invalid > 0) throw new Error(`${layout}: ${l.invalid} invalid replies`);
        const list = results.get(layout) ?? [];
        list.push({
          serverUs: after.cpu_us - before.cpu_us,
          clientUs: l.cpu_s * 1e6,
          answered: after.answered - before.answered,
          rps: l.rps,
        });
        results.set(layout, list);
      } finally {
        child.stdin!.end();
        await new Promise((resolve) => child.once('exit', resolve));
      }
    }
  }
  console.log(
    `End to end: ${rounds} rounds of ${seconds} s per layout, alternating; medians per datagram answered`,
  );
  console.log('| layout | responses/s | server µs/datagram | load generator µs/datagram | sum |');
  console.log('| --- | ---: | ---: | ---: | ---: |');
  for (const [layout, list] of results) {
    const s = median(list.map((x) => x.serverUs / x.answered));
    const c = median(list.map((x) => x.clientUs / x.answered));
    const rps = median(list.map((x) => x.rps));
    console.log(
      `| ${layout}: ${LAYOUTS[layout]} | ${Math.round(rps)} | ${s.toFixed(3)} | ${c.toFixed(3)} | ${(s + c).toFixed(3)} |`,
    );
  }
}

if (process.argv[2] === 'serve') serve(process.argv[3] as Layout);
else await measure();
