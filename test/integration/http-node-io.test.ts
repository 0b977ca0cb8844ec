/**
 * The HTTP integration suite again, on node:net listeners (http_io = "node"), so that both plain
 * HTTP transports pass the same checklist (http.test.ts runs the default, batched when built).
 */
process.env.HERALD_HTTP_IO = 'node';
await import('./http.test.ts');
