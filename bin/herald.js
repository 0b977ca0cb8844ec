#!/usr/bin/env -S node --max-semi-space-size=1
// (--max-semi-space-size=1: a 1 MiB young generation. The hot path allocates little, and V8's default
// 16 MiB semi-spaces held ~120 bytes of RSS per peer at 1M peers for nothing; docs/benchmarks.md.)
// Herald's command. In a checkout it runs the TypeScript sources directly (Node >= 22.18 strips
// types); installed as a package (under node_modules, where Node will not strip types) it runs
// the JavaScript that `npm pack` built into dist/.
// Herald needs node:sqlite and TypeScript type stripping: a clear word on an older Node (Debian 12
// ships Node 18), rather than a stack trace about a missing built-in module.
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 18)) {
  process.stderr.write(
    `herald: this Node.js is ${process.versions.node}; Herald needs Node.js 22.18 or newer. ` +
      'Install a newer Node (the npm package node@24 brings one), or use the single-file herald, ' +
      'which has its own (README "Install").\n',
  );
  process.exit(1);
}
if (import.meta.url.includes('/node_modules/')) await import('../dist/cli/main.js');
else await import('../src/cli/main.ts');
