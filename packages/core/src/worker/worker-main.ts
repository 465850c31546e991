/**
 * Entry point of a worker process (started by the node runtime; not for users).
 * @internal
 */
import { TASK_NAME_MARKER } from '../node/worker-process.js';
import '../actor.js'; // registers how deserialized actor handles are rebuilt
import { parseRuntimeEnvJson } from '@tsray/runtime-env';
import { config } from '../config.js';
import { state } from '../state.js';
import { currentTaskName } from './task-context.js';
import { WorkerRuntime } from './worker-runtime.js';

const { workerId, nodeAddress: address, workerCwd: cwd, runtimeEnv } = config();
if (!workerId || !address) {
  process.stderr.write('tsray worker-main must be started by a tsray node (TSRAY_WORKER_ID / TSRAY_NODE_ADDRESS missing)\n');
  process.exit(2);
}

// A runtime env's working directory (set after the --import preloads, which resolve against the cwd).
if (cwd) process.chdir(cwd);

// Announce the running task's name before its output so the driver prefixes lines with it.
function tagStream(stream: NodeJS.WriteStream): void {
  const write = stream.write.bind(stream) as (chunk: unknown, ...rest: unknown[]) => boolean;
  let announced: string | undefined;
  let atLineStart = true;
  stream.write = ((chunk: unknown, ...rest: unknown[]) => {
    const name = currentTaskName ?? 'worker';
    if (name !== announced) {
      write(`${atLineStart ? '' : '\n'}${TASK_NAME_MARKER}${name}\n`);
      announced = name;
    }
    const s = typeof chunk === 'string' ? chunk : Buffer.isBuffer(chunk) || chunk instanceof Uint8Array ? Buffer.from(chunk).toString() : String(chunk);
    if (s.length > 0) atLineStart = s.endsWith('\n');
    return write(chunk, ...rest);
  }) as typeof stream.write;
}
tagStream(process.stdout);
tagStream(process.stderr);

// The driver (our node) died: its stdin pipe to us closed.
process.stdin.on('end', () => process.exit(1));
process.stdin.on('error', () => process.exit(1));
process.stdin.resume();

const s = state();
s.isWorker = true;
// Tasks this worker submits inherit the environment it runs in (as Ray's child tasks do).
s.jobRuntimeEnv = parseRuntimeEnvJson(runtimeEnv ?? '');
const rt = new WorkerRuntime(workerId, address);
s.runtime = rt;
void rt.register();
// A task that calls process.exit() must not take the results of finished tasks with it.
process.on('exit', () => rt.flushOnExit());
rt.run().catch((err) => {
  process.stderr.write(`tsray worker ${workerId} failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
