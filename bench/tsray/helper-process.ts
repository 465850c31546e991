/**
 * A baseline's second process (zmq-sink.mjs, zmq-echo.mjs): a Node script that prints one JSON line
 * with its endpoints on stdout when it is ready and exits when its stdin closes.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** A started helper: its ready line, and `stop()` (closes its stdin, resolves when it exited). */
export interface HelperProcess<T> {
  readonly proc: ChildProcess;
  readonly ready: Promise<T>;
  stop(): Promise<void>;
}

/** Start `script` (a URL next to the caller) with `args`; `ready` is its first stdout line, parsed. */
export function startHelper<T>(script: URL, args: string[] = []): HelperProcess<T> {
  const name = fileURLToPath(script).split('/').pop();
  const proc = spawn(process.execPath, [fileURLToPath(script), ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const ready = new Promise<T>((resolve, reject) => {
    let buf = '';
    proc.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl >= 0) resolve(JSON.parse(buf.slice(0, nl)) as T);
    });
    proc.once('exit', (c) => reject(new Error(`${name} exited with ${c} before it was ready`)));
  });
  return {
    proc,
    ready,
    stop: async () => {
      proc.stdin!.end();
      await exited;
    },
  };
}
