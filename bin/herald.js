#!/usr/bin/env -S node --max-semi-space-size=1
// (--max-semi-space-size=1: a 1 MiB young generation. The hot path allocates little, and V8's default
// 16 MiB semi-spaces held ~120 bytes of RSS per peer at 1M peers for nothing; docs/benchmarks.md.)
// Herald's command. In a checkout it runs the TypeScript sources directly (Node >= 22.18 strips
// types); installed as a package (under node_modules, where Node will not strip types) it runs
// the JavaScript that `npm pack` built into dist/.
if (import.meta.url.includes('/node_modules/')) await import('../dist/cli/main.js');
else await import('../src/cli/main.ts');
