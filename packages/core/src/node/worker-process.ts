/**
 * Starting worker processes and forwarding their output to the driver, line by line, prefixed
 * `(name pid=N)` as Ray does.
 * @internal
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Readable } from 'node:stream';

/** The longest `exited()` waits for the log files to be written after the process is gone. */
const LOG_FLUSH_WAIT_MS = 5000;

/** Line that a worker writes to a stream before output of a task with a new name. */
export const TASK_NAME_MARKER = '\u0000tsray:name:';

export interface SpawnWorkerOptions {
  workerId: string;
  nodeAddress: string;
  nodeId: string;
  jobId: string;
  sessionDir: string;
  arenaFd: number;
  arenaSize: number;
  env: Record<string, string>;
  logToDriver: boolean;
  /** Default name for the prefix until the worker announces one. */
  defaultName: string;
  /** Start a Python worker with this interpreter (`python -m tsray.worker`). */
  python?: string;
  /** Working directory of the worker (a runtime env's working dir). */
  cwd?: string;
  /** Extra node flags of a TypeScript worker (a runtime env's npm resolve hook). */
  nodeArgs?: string[];
}

/** Node flags of the driver that workers inherit (loaders such as tsx, conditions), minus debugger flags. */
function inheritedExecArgv(): string[] {
  const out: string[] = [];
  const argv = process.execArgv;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (/^--(inspect|debug)/.test(a)) continue;
    if (
      (a === '--import' || a === '--require' || a === '-r' || a === '--loader' || a === '--experimental-loader' || a === '--conditions' || a === '-C') &&
      i + 1 < argv.length
    ) {
      out.push(a, argv[++i]!);
      continue;
    }
    out.push(a);
  }
  return out;
}

function workerEntry(): { path: string; execArgv: string[] } {
  const url = new URL('../worker/worker-main.js', import.meta.url);
  let path = fileURLToPath(url);
  const extra: string[] = [];
  if (import.meta.url.endsWith('.ts')) {
    // Running from TypeScript sources (development): load the entry through tsx.
    path = path.replace(/\.js$/, '.ts');
    extra.push('--import', 'tsx');
  }
  return { path, execArgv: extra };
}

/** A started worker process with its output forwarders. */
export class WorkerProcess {
  readonly proc: ChildProcess;
  readonly pid: number;
  /** Full path of the file that keeps this worker's stderr (named in crash errors; kept after shutdown). */
  readonly stderrLog: string;
  /** Full path of the file that keeps this worker's stdout. */
  readonly stdoutLog: string;
  private readonly files: WriteStream[] = [];
  /** One per log file: settles when the file is written and closed. */
  private readonly flushed: Promise<void>[] = [];

  constructor(opts: SpawnWorkerOptions) {
    const entry = workerEntry();
    const argv = [...inheritedExecArgv(), ...entry.execArgv, ...(opts.nodeArgs ?? [])];
    // A relative interpreter path would resolve against the worker's cwd: make it absolute first.
    const py = opts.python && opts.cwd && opts.python.includes('/') && !isAbsolute(opts.python) ? resolve(opts.python) : opts.python;
    const [cmd, args] = py ? [py, ['-u', '-m', 'tsray.worker']] : [process.execPath, [...argv, entry.path]];
    this.proc = spawn(cmd, args, {
      // TypeScript workers change directory themselves (TSRAY_WORKER_CWD) once their --import flags,
      // which resolve against the cwd (e.g. `--import tsx`), are loaded.
      ...(opts.cwd && py ? { cwd: opts.cwd } : {}),
      stdio: ['pipe', 'pipe', 'pipe', opts.arenaFd],
      env: {
        ...process.env,
        ...opts.env,
        TSRAY_WORKER_ID: opts.workerId,
        TSRAY_NODE_ADDRESS: opts.nodeAddress,
        TSRAY_NODE_ID: opts.nodeId,
        TSRAY_JOB_ID: opts.jobId,
        TSRAY_SESSION_DIR: opts.sessionDir,
        TSRAY_ARENA_FD: '3',
        TSRAY_ARENA_SIZE: String(opts.arenaSize),
        ...(opts.cwd && !py ? { TSRAY_WORKER_CWD: opts.cwd } : {}),
      },
    });
    this.pid = this.proc.pid ?? -1;
    const logs = join(opts.sessionDir, 'logs');
    this.stdoutLog = join(logs, `worker-${opts.workerId}.out`);
    this.stderrLog = join(logs, `worker-${opts.workerId}.err`);
    this.forward(this.proc.stdout!, process.stdout, this.stdoutLog, opts);
    this.forward(this.proc.stderr!, process.stderr, this.stderrLog, opts);
  }

  private forward(src: Readable, dst: NodeJS.WriteStream, file: string, opts: SpawnWorkerOptions): void {
    const log = createWriteStream(file, { flags: 'a' });
    log.on('error', () => undefined);
    this.files.push(log);
    this.flushed.push(
      new Promise((r) => {
        log.once('close', () => r());
        log.once('error', () => r());
      }),
    );
    let name = opts.defaultName;
    let rest = '';
    const pid = this.pid;
    src.setEncoding('utf8');
    src.on('data', (chunk: string) => {
      const text = rest + chunk;
      const lines = text.split('\n');
      rest = lines.pop()!;
      let out = '';
      for (const line of lines) {
        if (line.startsWith(TASK_NAME_MARKER)) {
          name = line.slice(TASK_NAME_MARKER.length);
          continue;
        }
        out += `(${name} pid=${pid}) ${line}\n`;
      }
      if (out) {
        log.write(out);
        if (opts.logToDriver) dst.write(out);
      }
    });
    src.on('end', () => {
      if (rest) {
        const out = `(${name} pid=${pid}) ${rest}\n`;
        log.write(out);
        if (opts.logToDriver) dst.write(out);
      }
      log.end();
    });
  }

  /**
   * Resolves when the process has exited and its output was fully forwarded and written to its log
   * files (errors name those files, which `shutdown()` keeps). The file wait is bounded: a grandchild
   * that inherited the pipes could hold them open for long.
   */
  async exited(): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) await new Promise((r) => this.proc.once('close', () => r(undefined)));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(this.flushed), new Promise((r) => (timer = setTimeout(r, LOG_FLUSH_WAIT_MS)))]);
    clearTimeout(timer);
  }
}
