/**
 * Whether Python workers can start on this node: the interpreter exists, is Python >= 3.10 and
 * imports the tsray package. Run once per node (again after a failure: PythonInterpreterCheck),
 * asynchronously: the check imports tsray and may take seconds on a cold disk, and the node's event
 * loop keeps serving everything else meanwhile (a synchronous spawn would hold every task, heartbeat
 * and driver message behind it).
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

/** How long a failed check stands before the next Python task checks again. */
const RECHECK_AFTER_FAILURE_MS = 10_000;

/**
 * A node's check of its Python interpreter ({@link pythonProblemOf}), started by the first Python
 * task; tasks that arrive while it runs wait for it. A pass stands for the node's life; a failure
 * stands for `recheckAfterFailureMs` (10 s), then the next Python task checks again: a long-lived
 * node (`tsray start`) picks up a tsray package installed into its interpreter after it started.
 */
export class PythonInterpreterCheck {
  private running = false;
  private done: { problem: string | undefined; at: number } | undefined;
  private readonly waiting: ((result: { problem: string | undefined }) => void)[] = [];

  constructor(
    private readonly python: () => string,
    private readonly recheckAfterFailureMs = RECHECK_AFTER_FAILURE_MS,
  ) {}

  /** The check's result when it is done; else undefined, and `whenDone` gets it once it is (the first call starts it). */
  result(whenDone: (result: { problem: string | undefined }) => void): { problem: string | undefined } | undefined {
    if (this.done?.problem !== undefined && performance.now() - this.done.at >= this.recheckAfterFailureMs) this.done = undefined;
    if (this.done) return this.done;
    this.waiting.push(whenDone);
    if (!this.running) {
      this.running = true;
      void pythonProblemOf(this.python()).then((problem) => {
        this.running = false;
        const done = { problem, at: performance.now() };
        this.done = done;
        for (const w of this.waiting.splice(0)) w(done);
      });
    }
    return undefined;
  }
}
