/**
 * Where the CLI writes (the process's stdout/stderr by default; tests may pass their own).
 * @module
 */

/** Output streams of one CLI run. */
export interface CliIo {
  out: (text: string) => void;
  err: (text: string) => void;
}

/** The process's stdout and stderr. */
export const processIo: CliIo = {
  out: (t) => void process.stdout.write(t),
  err: (t) => void process.stderr.write(t),
};

/**
 * Exit quietly when the reader of stdout or stderr went away (`tsray list nodes | head -1`): the next
 * write fails with EPIPE, which Node emits as an 'error' event that would otherwise crash the process
 * with a stack trace. The exit status is the one already set (0 if none): the reader had what it wanted.
 * Other stream errors stay fatal.
 */
export function exitQuietlyOnClosedOutput(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code !== 'EPIPE') throw e;
      process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
    });
  }
}

/** Resolve after `ms`. @internal */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
