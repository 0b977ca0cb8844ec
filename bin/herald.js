#!/usr/bin/env node
// Herald's command. In a checkout it runs the TypeScript sources directly (Node >= 22.18 strips
// types); installed as a package (under node_modules, where Node will not strip types) it runs
// the JavaScript that `npm pack` built into dist/.
if (import.meta.url.includes('/node_modules/')) await import('../dist/cli/main.js');
else await import('../src/cli/main.ts');
