/**
 * Whether Python workers can start on this node: the interpreter exists, is Python >= 3.10 and
 * imports the tsray package. Run once per node (it spawns the interpreter), asynchronously: the check
 * imports tsray and may take seconds on a cold disk, and the node's event loop keeps serving everything
 * else meanwhile (a synchronous spawn would hold every task, heartbeat and driver message behind it).
 * @internal
 */
import { execFile } from 'node:child_process';

/** How long the interpreter may take to start and import tsray. */
const CHECK_TIMEOUT_MS = 30_000;

/** Why Python workers cannot start with interpreter `py` (undefined: they can). */
export function pythonProblemOf(py: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const script = 'import sys; import tsray.worker; print("%d.%d" % sys.version_info[:2])';
    execFile(py, ['-c', script], { encoding: 'utf8', timeout: CHECK_TIMEOUT_MS }, (err, stdout, stderr) => {
      if (err) {
        resolve(problemOfFailure(py, err as NodeJS.ErrnoException & { killed?: boolean }, stderr));
        return;
      }
      const out = stdout.trim();
      const [maj, min] = out.split('.').map(Number);
      if (maj! > 3 || (maj === 3 && min! >= 10)) resolve(undefined);
      else resolve(`Python ${out} at ${py} is too old: tsray needs Python >= 3.10 (pass init({ python }) or set TSRAY_PYTHON)`);
    });
  });
}

function problemOfFailure(py: string, err: NodeJS.ErrnoException & { killed?: boolean }, stderr: string): string {
  if (err.code === 'ENOENT') {
    return `no Python interpreter at "${py}": install Python >= 3.10 with the tsray package (pip install ./python) and pass init({ python: '/path/to/python' }) or set TSRAY_PYTHON`;
  }
  const why = err.killed ? `it did not finish within ${CHECK_TIMEOUT_MS / 1000} s` : (stderr || err.message).trim().split('\n').pop();
  return `the Python interpreter "${py}" cannot import the tsray package (${why}): pip install ./python into that environment, or point init({ python }) / TSRAY_PYTHON at one that has it`;
}

/**
 * A node's one check of its Python interpreter ({@link pythonProblemOf}), started by the first Python
 * task; tasks that arrive while it runs wait for it.
 */
export class PythonInterpreterCheck {
  private running = false;
  private done: { problem: string | undefined } | undefined;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly python: () => string) {}

  /** The check's result when it is done; else undefined, and `whenDone` runs once it is (the first call starts it). */
  result(whenDone: () => void): { problem: string | undefined } | undefined {
    if (this.done) return this.done;
    this.waiting.push(whenDone);
    if (!this.running) {
      this.running = true;
      void pythonProblemOf(this.python()).then((problem) => {
        this.done = { problem };
        for (const w of this.waiting.splice(0)) w();
      });
    }
    return undefined;
  }
}
