/**
 * Process entry of the head and node daemons started by `tsray start` (detached, logs in the session
 * directory): `node daemon-main.js '<DaemonConfig JSON>'`.
 * @module
 */
import { daemonMain } from './daemon.js';

await daemonMain(process.argv);
