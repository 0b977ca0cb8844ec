import {
  type PrimaryMessage,
  runPrimary,
  type WorkerMessage,
  workerCount,
  workerSetup,
} from '../cluster/primary.ts';
import { helpText, parseCommandLine, renderConfigToml } from '../config/cli-args.ts';
import { ConfigError, loadConfig } from '../config/load.ts';
import { IN_SINGLE_FILE } from '../core/bundled.ts';
import { ListenError } from '../core/listen.ts';
import { createLogger } from '../core/log.ts';
import { VERSION } from '../core/version.ts';
import { SCHEMA_VERSION } from '../db/migrations.ts';
import { ADMIN_COMMANDS, runAdmin } from './admin.ts';
import { BACKUP_COMMANDS, runBackupCommand } from './backup.ts';
import { createTracker } from './compose.ts';

/**
 * `herald <command>`: the composition root. Reads the configuration, builds the tracker, owns
 * the start/stop order and the process signals.
 */
async function main(argv: string[]): Promise<number> {
  const admin = argv[0] !== undefined && ADMIN_COMMANDS.includes(argv[0]);
  if (admin || (argv[0] !== undefined && BACKUP_COMMANDS.includes(argv[0]))) {
    const run = admin ? runAdmin : runBackupCommand;
    try {
      return await run(argv[0], argv.slice(1), (s) => process.stdout.write(s), process.env);
    } catch (err) {
      if (err instanceof ConfigError) {
        process.stderr.write(`${err.message}\n`);
        return 2;
      }
      throw err;
    }
  }
  let cmd: ReturnType<typeof parseCommandLine>;
  try {
    cmd = parseCommandLine(argv);
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n\n${helpText()}`);
    return 2;
  }
  if (cmd.command === 'help') {
    process.stdout.write(helpText(cmd.topic));
    return 0;
  }
  if (cmd.command === 'version') {
    process.stdout.write(`herald ${VERSION} (database schema ${SCHEMA_VERSION}; node ${process.version})\n`);
    return 0;
  }
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig({ argv: cmd.args, env: process.env, cwd: process.cwd() });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      return 2;
    }
    throw err;
  }
  if (cmd.command === 'config-print') {
    process.stdout.write(renderConfigToml(config));
    return 0;
  }
  const setup = workerSetup(process.env);
  if (setup === null && workerCount(config) > 1) {
    return runPrimary({
      config,
      argv,
      logger: createLogger(config.logLevel),
      // The single-file build is its own script, and applies its Node options (scripts/build-sea.ts)
      // at every start.
      script: IN_SINGLE_FILE ? process.execPath : process.argv[1],
      execArgv: IN_SINGLE_FILE ? [] : undefined,
    });
  }
  let down: number[] = [];
  const tracker = setup
    ? createTracker(
        { ...config, ...setup.listen, udpSecret: setup.udpSecret },
        { cluster: { ...setup, workersDown: () => down, primaryWritesAccounting: true } },
      )
    : createTracker(config);
  const log = setup ? tracker.logger.child({ worker: setup.index }) : tracker.logger;
  // Signals are handled from before the start: a stop asked for while the tracker starts (worker 0
  // migrating the database, a store connecting, a primary that dies meanwhile) lets the start
  // finish, then stops, instead of cutting it in the middle or crashing on a closed IPC channel.
  let stopSignal: string | null = null;
  let started = false;
  let wake = () => {};
  const stop = (signal: string) => {
    // Repeated signals are one stop: with workers, a Ctrl-C reaches each worker both from the
    // terminal and from the primary. A stop that hangs ends the process anyway.
    if (stopSignal !== null) return;
    stopSignal = signal;
    log.info('stopping', { signal });
    const force = setTimeout(() => {
      log.error('the stop did not finish in time: exiting', {});
      process.exit(1);
    }, 10_000);
    force.unref();
    wake();
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGHUP', () => {
    if (started) tracker.reloadTls();
  });
  // A worker whose primary is gone stops too (no orphan keeps the ports).
  if (setup) process.on('disconnect', () => stop('disconnect'));
  // A worker lets go of its primary when it is done: the IPC channel (it listens on it) would keep
  // this process alive until the forced exit above, and the primary would see a stop that hung.
  const release = () => {
    if (setup && process.connected) process.disconnect();
  };
  try {
    await tracker.start();
  } catch (err) {
    // A listener that cannot bind is the operator's to fix, like a bad setting: said plainly.
    if (err instanceof ListenError) process.stderr.write(`herald: ${err.message}\n`);
    else log.error('could not start', { err: err instanceof Error ? err.message : String(err) });
    release();
    return 1;
  }
  started = true;
  if (setup && stopSignal === null && process.connected) {
    // Tell the primary the addresses bound (worker 0's fix a port 0 for the others).
    const a = tracker.addresses();
    const hp = (l: { host: string; port: number }) =>
      l.host.includes(':') ? `[${l.host}]:${l.port}` : `${l.host}:${l.port}`;
    const msg: WorkerMessage = {
      type: 'ready',
      listen: {
        http: a.http.map(hp),
        https: a.https.map(hp),
        udp: a.udp.map(hp),
        ws: a.ws.map(hp),
        portalListen: a.portal.map(hp),
      },
    };
    process.send?.(msg);
    process.on('message', (m: PrimaryMessage) => {
      if (m?.type === 'health') down = m.down;
    });
  }
  if (stopSignal === null)
    await new Promise<void>((resolve) => {
      wake = resolve;
    });
  await tracker.stop().catch((err) => log.error('error while stopping', { err: String(err) }));
  log.info('stopped', {});
  release();
  return 0;
}

// In the single-file build Node takes no options or script from the command line: a worker forked
// as `<executable> <script = executable> serve ...` (src/cluster/primary.ts) gets the script path
// as its first argument, which is dropped here.
const args = process.argv.slice(2);
if (IN_SINGLE_FILE && args[0] === process.execPath) args.shift();

main(args).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(
      `herald: fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exitCode = 1;
  },
);
