/**
 * How much CPU does handing a request to another worker cost? (issue #13, design by measurement)
 *
 * A "socket worker" sends fixed-size request records (128 bytes: about what an announce needs:
 * info hash, peer id, address, port, left, event, numwant) to an "owner" that answers each with
 * a 64-byte record (counts and a few peers), in closed-loop rounds of B requests. Three transports:
 *   sab      worker_threads, one single-producer/single-consumer ring per direction in a
 *            SharedArrayBuffer, woken with Atomics.notify / Atomics.waitAsync only when the
 *            reader sleeps;
 *   message  worker_threads, one postMessage per round (the records in one transferred buffer);
 *   unix     two processes, a Unix-domain socket pair, one write per round.
 * It prints CPU microseconds per request, both sides summed (process CPU time; the owner does no
 * work of its own beyond copying, so this is the hand-over's cost alone). Loopback and memory
 * only; bounded by --count.
 *
 *   node bench/handover.ts [--count 400000] [--rounds 1,16,64]
 */
import { spawn } from 'node:child_process';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

const REQ = 128;
const RES = 64;
const RING = 1 << 20; // bytes per ring (power of two)

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : def;
}

/** A single-producer, single-consumer byte ring of fixed-size records in a SharedArrayBuffer. */
class Ring {
  // ctl[0] = write position, ctl[1] = read position (records), ctl[2] = reader sleeping flag.
  readonly ctl: Int32Array;
  readonly data: Uint8Array;
  readonly rec: number;
  readonly slots: number;
  constructor(sab: SharedArrayBuffer, rec: number) {
    this.ctl = new Int32Array(sab, 0, 4);
    this.data = new Uint8Array(sab, 16);
    this.rec = rec;
    this.slots = Math.floor((sab.byteLength - 16) / rec);
  }
  static alloc(): SharedArrayBuffer {
    return new SharedArrayBuffer(16 + RING);
  }
  /** Copies records [0, n) of `src` in; wakes the reader if it sleeps. */
  push(src: Uint8Array, n: number): void {
    let w = Atomics.load(this.ctl, 0);
    for (let i = 0; i < n; i++) {
      const at = (w % this.slots) * this.rec;
      this.data.set(src.subarray(i * this.rec, (i + 1) * this.rec), at);
      w++;
    }
    Atomics.store(this.ctl, 0, w);
    if (Atomics.load(this.ctl, 2) === 1) Atomics.notify(this.ctl, 0);
  }
  /** Calls fn(offset) for every unread record; returns how many. */
  drain(fn: (data: Uint8Array, at: number) => void): number {
    const w = Atomics.load(this.ctl, 0);
    let r = Atomics.load(this.ctl, 1);
    const n = w - r;
    while (r !== w) {
      fn(this.data, (r % this.slots) * this.rec);
      r++;
    }
    Atomics.store(this.ctl, 1, r);
    return n;
  }
  /** Resolves when records may be there (sleeping flag set first: no lost wake-up). */
  async wait(): Promise<void> {
    const seen = Atomics.load(this.ctl, 0);
    if (seen !== Atomics.load(this.ctl, 1)) return;
    Atomics.store(this.ctl, 2, 1);
    // biome-ignore lint/suspicious/noExplicitAny: waitAsync is ES2024, newer than the project's lib
    const r = (Atomics as any).waitAsync(this.ctl, 0, seen);
    if (r.async) await r.value;
    Atomics.store(this.ctl, 2, 0);
  }
}

/** The owner's answer: copy 20 bytes of the request into a response record. */
function answer(req: Uint8Array, at: number, out: Uint8Array, o: number): void {
  for (let k = 0; k < 20; k++) out[o + k] = req[at + 16 + k];
}

async function ownerSab(reqSab: SharedArrayBuffer, resSab: SharedArrayBuffer): Promise<void> {
  const inRing = new Ring(reqSab, REQ);
  const outRing = new Ring(resSab, RES);
  const out = new Uint8Array(RES * 4096);
  for (;;) {
    let n = 0;
    let stop = false;
    inRing.drain((d, at) => {
      if (d[at] === 255) stop = true;
      answer(d, at, out, n * RES);
      n++;
      if (n === 4096) {
        outRing.push(out, n);
        n = 0;
      }
    });
    if (n > 0) outRing.push(out, n);
    if (stop) return;
    await inRing.wait();
  }
}

async function runSab(count: number, round: number): Promise<number> {
  const reqSab = Ring.alloc();
  const resSab = Ring.alloc();
  const w = new Worker(new URL(import.meta.url), { workerData: { role: 'sab', reqSab, resSab } });
  const toOwner = new Ring(reqSab, REQ);
  const fromOwner = new Ring(resSab, RES);
  const batch = new Uint8Array(REQ * round);
  const t0 = process.cpuUsage();
  for (let sent = 0; sent < count; sent += round) {
    toOwner.push(batch, round);
    let got = 0;
    while (got < round) {
      got += fromOwner.drain(() => {});
      if (got < round) await fromOwner.wait();
    }
  }
  const cpu = process.cpuUsage(t0);
  batch[0] = 255;
  toOwner.push(batch, 1);
  await new Promise((r) => w.once('exit', r));
  return (cpu.user + cpu.system) / count;
}

async function runMessage(count: number, round: number): Promise<number> {
  const w = new Worker(new URL(import.meta.url), { workerData: { role: 'message' } });
  const t0 = process.cpuUsage();
  for (let sent = 0; sent < count; sent += round) {
    const buf = new Uint8Array(REQ * round);
    const reply = new Promise((r) => w.once('message', r));
    w.postMessage(buf, [buf.buffer]);
    await reply;
  }
  const cpu = process.cpuUsage(t0);
  await w.terminate();
  return (cpu.user + cpu.system) / count;
}

function ownerMessage(): void {
  parentPort!.on('message', (req: Uint8Array) => {
    const n = req.length / REQ;
    const out = new Uint8Array(RES * n);
    for (let i = 0; i < n; i++) answer(req, i * REQ, out, i * RES);
    parentPort!.postMessage(out, [out.buffer]);
  });
}

async function runUnix(count: number, round: number): Promise<number> {
  const path = join(tmpdir(), `herald-handover-${process.pid}.sock`);
  const server = createServer();
  await new Promise<void>((r) => server.listen(path, r));
  const child = spawn(process.execPath, [new URL(import.meta.url).pathname, '--child', path], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const sock = await new Promise<import('node:net').Socket>((r) => server.once('connection', r));
  sock.setNoDelay(true);
  let pending = 0;
  let resolve: (() => void) | null = null;
  sock.on('data', (d: Buffer) => {
    pending -= d.length;
    if (pending === 0 && resolve) {
      const f = resolve;
      resolve = null;
      f();
    }
  });
  const t0 = process.cpuUsage();
  for (let sent = 0; sent < count; sent += round) {
    pending = RES * round;
    const done = new Promise<void>((r) => {
      resolve = r;
    });
    sock.write(Buffer.alloc(REQ * round));
    await done;
  }
  const cpu = process.cpuUsage(t0);
  sock.end();
  let childCpu = '';
  child.stdout!.on('data', (d) => {
    childCpu += d;
  });
  await new Promise((r) => child.once('exit', r));
  server.close();
  const c = JSON.parse(childCpu) as { user: number; system: number };
  return (cpu.user + cpu.system + c.user + c.system) / count;
}

function ownerUnix(path: string): void {
  const t0 = process.cpuUsage();
  const sock = createConnection(path);
  sock.setNoDelay(true);
  let carry: Buffer = Buffer.alloc(0);
  sock.on('data', (d: Buffer) => {
    const buf: Buffer = carry.length ? Buffer.concat([carry, d]) : d;
    const n = Math.floor(buf.length / REQ);
    const out = Buffer.allocUnsafe(RES * n);
    for (let i = 0; i < n; i++) answer(buf, i * REQ, out, i * RES);
    carry = buf.subarray(n * REQ);
    sock.write(out);
  });
  sock.on('end', () => {
    // The owner's CPU time covers the whole process (its start-up included; small beside the run).
    const c = process.cpuUsage(t0);
    process.stdout.write(JSON.stringify(c));
    sock.end();
  });
}

async function main(): Promise<void> {
  const count = Number(arg('count', '400000'));
  const rounds = arg('rounds', '1,16,64').split(',').map(Number);
  const rows: string[] = [
    '| transport | requests per round | CPU µs per request (both sides) |',
    '| --- | --- | --- |',
  ];
  for (const round of rounds) {
    const n = round === 1 ? Math.min(count, 100_000) : count;
    for (const [name, run] of [
      ['sab', runSab],
      ['message', runMessage],
      ['unix', runUnix],
    ] as const) {
      const us = await run(n, round);
      rows.push(`| ${name} | ${round} | ${us.toFixed(2)} |`);
      console.error(`${name} round=${round}: ${us.toFixed(2)} µs/request`);
    }
  }
  console.log(rows.join('\n'));
}

// Atomics.waitAsync does not keep Node's event loop alive on its own.
const keepAlive = setInterval(() => {}, 1 << 30);
if (!isMainThread) {
  const d = workerData as { role: string; reqSab?: SharedArrayBuffer; resSab?: SharedArrayBuffer };
  if (d.role === 'sab') await ownerSab(d.reqSab!, d.resSab!);
  else ownerMessage();
} else if (process.argv[2] === '--child') {
  ownerUnix(process.argv[3]);
} else {
  await main();
}
clearInterval(keepAlive);
