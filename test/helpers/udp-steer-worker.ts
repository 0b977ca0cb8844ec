/**
 * A worker for test/integration/udp-steer.test.ts: serves the UDP socket it inherited as fd 3
 * (the parent's `spawn` stdio array) through `adopt`, tagging each reply with the tag given as its
 * argument, and prints `ready <port>` once it is serving.
 */
import { loadUdpBatchAddon } from '../../src/frontend/udp/batch.ts';
import { serveTagged } from './udp-tagged-echo.ts';

const addon = loadUdpBatchAddon();
if (addon === null) throw new Error('the udp_batch addon is not built');
const handle = addon.adopt(3);
serveTagged(addon, handle, Number(process.argv[2]));
process.stdout.write(`ready ${addon.port(handle)}\n`);
// Until the parent ends it (or closes stdin).
process.stdin.on('end', () => {
  addon.close(handle);
  process.exit(0);
});
process.stdin.resume();
