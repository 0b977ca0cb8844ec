/**
 * `npm run build:sea`: the one-file `herald` for linux-x64 (README "Install"), from this checkout,
 * offline. A Node single executable application: this Node's own binary with Herald inside it.
 *
 *   1. esbuild bundles src/cli/main.ts and every dependency into one CommonJS script (what a single
 *      executable application runs); the version is set at bundle time (no package.json beside it).
 *   2. `node --experimental-sea-config` makes the blob: the script, its V8 code cache, and as
 *      assets the two batched I/O addons (native/build/Release/*.node; src/core/native.ts loads
 *      them with process.dlopen) and the portal's static files (src/core/bundled.ts).
 *   3. A copy of this Node binary gets the blob injected (postject) as `release/herald`.
 *
 * Options: --out FILE (default release/herald). Needs the addons built (npm run build:native):
 * without them the executable would quietly fall back to Node's own I/O, so the build refuses.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const ROOT = resolve(new URL('..', import.meta.url).pathname);
const require = createRequire(import.meta.url);
const { values } = parseArgs({ options: { out: { type: 'string', default: join(ROOT, 'release/herald') } } });
const out = resolve(values.out!);
const work = join(ROOT, '.sea');

if (process.platform !== 'linux' || process.arch !== 'x64')
  throw new Error(`build:sea makes a linux-x64 executable; this is ${process.platform}-${process.arch}`);
const addons = ['udp_batch', 'http_batch'].map((name) => {
  const file = join(ROOT, 'native/build/Release', `${name}.node`);
  if (!existsSync(file)) throw new Error(`build:sea: ${file} is missing: run npm run build:native first`);
  return { name, file };
});
const version: string = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version;

rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });
mkdirSync(dirname(out), { recursive: true });

// 1. One CommonJS script.
const esbuild = await import('esbuild');
const script = join(work, 'herald.cjs');
await esbuild.build({
  entryPoints: [join(ROOT, 'src/cli/main.ts')],
  outfile: script,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node24',
  // Code that reads files next to itself asks src/core/bundled.ts first, and never reaches
  // import.meta.url inside the executable.
  define: { HERALD_BUILD_VERSION: JSON.stringify(version), 'import.meta.url': 'undefined' },
  // pg's optional native binding, never installed; pino's transports are not used (src/core/log.ts).
  external: ['pg-native'],
  legalComments: 'none',
  logLevel: 'warning',
});

// 2. The blob.
const chartJs = join(dirname(require.resolve('chart.js')), 'chart.umd.min.js');
const config = {
  main: script,
  output: join(work, 'herald.blob'),
  disableExperimentalSEAWarning: true,
  useCodeCache: true,
  // bin/herald.js's flag: a 1 MiB young generation (docs/benchmarks.md).
  execArgv: ['--max-semi-space-size=1'],
  assets: {
    ...Object.fromEntries(addons.map((a) => [`${a.name}.node`, a.file])),
    'portal.css': join(ROOT, 'src/web/portal/static/portal.css'),
    'portal.js': join(ROOT, 'src/web/portal/static/portal.js'),
    'chart.umd.min.js': chartJs,
  },
};
writeFileSync(join(work, 'sea-config.json'), JSON.stringify(config, null, 2));
execFileSync(process.execPath, ['--experimental-sea-config', join(work, 'sea-config.json')], { stdio: 'inherit' });

// 3. This Node, with the blob inside.
rmSync(out, { force: true });
copyFileSync(process.execPath, out);
chmodSync(out, 0o755);
const { inject } = require('postject') as {
  inject: (file: string, name: string, data: Buffer, opts: { sentinelFuse: string }) => Promise<void>;
};
await inject(out, 'NODE_SEA_BLOB', readFileSync(config.output), {
  sentinelFuse: 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2',
});
rmSync(work, { recursive: true, force: true });
process.stdout.write(
  `build:sea: ${out} (herald ${version}, node ${process.version}, ${Math.round(statSync(out).size / 2 ** 20)} MiB)\n`,
);
