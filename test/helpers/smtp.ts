/**
 * A real SMTP server on loopback for the mail tests: Debian's python3-aiosmtpd (its `Controller`)
 * in a child process, which prints every message it receives as one JSON line: envelope, headers
 * and the decoded text and HTML parts (Python's `email` package undoes the transfer encodings).
 * Without python3-aiosmtpd the tests fail under HERALD_TEST_REQUIRE_PG=1 or CI, and skip loudly
 * elsewhere.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';

const PYTHON = '/usr/bin/python3';

const SERVER = `
import asyncio, json, sys
from email import message_from_bytes, policy
from aiosmtpd.controller import Controller

class Handler:
    async def handle_DATA(self, server, session, envelope):
        msg = message_from_bytes(envelope.content, policy=policy.default)
        def part(kind):
            p = msg.get_body((kind,))
            return p.get_content() if p is not None else None
        out = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "headers": [[k, str(v)] for k, v in msg.items()],
            "subject": str(msg.get("subject", "")),
            "to": str(msg.get("to", "")),
            "text": part("plain"),
            "html": part("html"),
        }
        sys.stdout.write(json.dumps(out) + "\\n")
        sys.stdout.flush()
        return "250 OK"

c = Controller(Handler(), hostname="127.0.0.1", port=int(sys.argv[1]))
c.start()
sys.stdout.write(json.dumps({"ready": c.port}) + "\\n")
sys.stdout.flush()
sys.stdin.read()
c.stop()
`;

export interface ReceivedMail {
  mail_from: string;
  rcpt_tos: string[];
  headers: [string, string][];
  subject: string;
  to: string;
  text: string | null;
  html: string | null;
}

/** Whether the SMTP server can run here; a reason to skip otherwise (or throws where it must run). */
export function smtpAvailable(): true | string {
  const r = spawnSync(PYTHON, ['-c', 'import aiosmtpd'], { encoding: 'utf8' });
  if (r.status === 0) return true;
  const msg = `mail tests need Debian's python3-aiosmtpd (apt-get install python3-aiosmtpd): ${PYTHON} cannot import aiosmtpd`;
  if (process.env.HERALD_TEST_REQUIRE_PG === '1' || process.env.CI) throw new Error(msg);
  process.stderr.write(`\n*** mail tests SKIPPED: ${msg} ***\n\n`);
  return msg;
}

/** A free TCP port on 127.0.0.1 (bound and released: the server takes it a moment later). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a !== null ? a.port : 0));
    });
  });
}

export class SmtpServer {
  readonly port: number;
  readonly mails: ReceivedMail[] = [];
  #child: ChildProcess;
  #waiters: { pred: (m: ReceivedMail) => boolean; resolve: (m: ReceivedMail) => void }[] = [];

  private constructor(port: number, child: ChildProcess) {
    this.port = port;
    this.#child = child;
  }

  /** Starts the server on `port` (a free one by default) and waits until it accepts connections. */
  static async start(port?: number): Promise<SmtpServer> {
    const p = port ?? (await freePort());
    const child = spawn(PYTHON, ['-c', SERVER, String(p)], { stdio: ['pipe', 'pipe', 'inherit'] });
    const server = new SmtpServer(p, child);
    const lines = createInterface({ input: child.stdout! });
    await new Promise<void>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`aiosmtpd exited (${code}) before it was ready`)));
      lines.on('line', (line) => {
        const v = JSON.parse(line);
        if ('ready' in v) return resolve();
        server.#receive(v as ReceivedMail);
      });
    });
    return server;
  }

  #receive(m: ReceivedMail) {
    this.mails.push(m);
    this.#waiters = this.#waiters.filter((w) => {
      if (!w.pred(m)) return true;
      w.resolve(m);
      return false;
    });
  }

  /** The first mail (received already or later) that `pred` accepts. */
  next(pred: (m: ReceivedMail) => boolean): Promise<ReceivedMail> {
    const seen = this.mails.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => this.#waiters.push({ pred, resolve }));
  }

  /** Mails to `address`. */
  to(address: string): ReceivedMail[] {
    return this.mails.filter((m) => m.rcpt_tos.includes(address));
  }

  async stop(): Promise<void> {
    if (this.#child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.#child.once('exit', resolve));
    this.#child.stdin!.end();
    const t = setTimeout(() => this.#child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(t);
  }
}
