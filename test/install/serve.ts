import { spawn } from 'node:child_process';

/** What `herald serve` logs once every listener is bound, and the first HTTP(S)/UDP ports. */
export interface Listening {
  fields: Record<string, unknown>;
  httpPort: number;
  udpPort: number;
}

/**
 * Runs an installed `herald serve` (the executable `file`, not this checkout's sources) and waits
 * for its "herald listening" line; `stop()` sends SIGTERM and waits (SIGKILL on teardown if left).
 */
export async function serveInstalled(
  file: string,
  args: string[],
  opts: { cwd?: string; env: NodeJS.ProcessEnv },
): Promise<Listening & { stop(): Promise<void>; kill(): void }> {
  const child = spawn(file, ['serve', ...args, '--log-level', 'info'], {
    cwd: opts.cwd,
    env: opts.env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  const fields = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`herald did not start:\n${log}`)), 30_000);
    child.stderr.on('data', (d: Buffer) => {
      log += d.toString();
      const line = log.split('\n').find((l) => l.includes('herald listening'));
      if (line) {
        clearTimeout(timer);
        resolve(JSON.parse(line));
      }
    });
    child.on('exit', (code) => reject(new Error(`herald exited with ${code}:\n${log}`)));
  }).catch((err) => {
    child.kill('SIGKILL');
    throw err;
  });
  const port = (list: unknown) =>
    Number(
      String((list as string[])[0] ?? '')
        .split(':')
        .pop(),
    );
  return {
    fields,
    httpPort: port(fields.http),
    udpPort: port(fields.udp),
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
    kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}
