// webtorrent's bittorrent-tracker, as operators run it, for the benchmark: HTTP + UDP (or, with
// the third argument "ws", WebSocket only), and the /stats page off (with it on, every HTTP
// request costs O(torrents)).
// Usage: node bt-server.mjs MODULE_PATH PORT [ws]
const [modulePath, port, kind] = process.argv.slice(2);
const { default: Server } = await import(modulePath);
const ws = kind === 'ws';
const server = new Server({ http: !ws, udp: !ws, ws, stats: false, trustProxy: false });
server.on('error', (err) => console.error('error', err.message));
server.on('warning', () => {});
server.listen(Number(port), '127.0.0.1', () => console.log('listening'));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
