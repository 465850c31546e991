/**
 * Echo side of the raw ZeroMQ ipc round-trip baseline of bench/tsray/core.bench.ts (a separate
 * process, as a tsray worker is): binds a ROUTER on an ipc socket in the folder given as argv[2],
 * prints `{"address":"ipc://…"}` on stdout, then sends every message straight back to its sender.
 * Exits when stdin closes.
 *
 * Usage: node bench/tsray/zmq-echo.mjs <folder>
 */
import { join } from 'node:path';
import * as zmq from 'zeromq';

const router = new zmq.Router();
await router.bind(`ipc://${join(process.argv[2] ?? '/tmp', 'echo.sock')}`);
process.stdout.write(JSON.stringify({ address: router.lastEndpoint }) + '\n');
process.stdin.resume();
process.stdin.on('end', () => {
  router.close();
  process.exit(0);
});
for await (const msg of router) await router.send(msg);
