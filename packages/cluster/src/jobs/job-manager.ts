/**
 * The head's job manager: a submitted job is a shell command line (its "entrypoint", as Ray's) run as a
 * subprocess in its own process group, with the cluster address in its environment, its stdout and
 * stderr kept in `<logDir>/job-driver-<id>.log`.
 * @module
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { closeSync, fstatSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import type { Logger } from 'pino';
import type { JobInfo, JobStatus } from '../contracts.js';
import { JobExistsError, JobNotFoundError, JobNotTerminalError, JobRequestError } from './errors.js';
import { partLogger } from '../logger.js';

/** Options of {@link JobManager}. */
export interface JobManagerOptions {
  /** Directory of the job driver logs (`job-driver-<id>.log`); created if missing. */
  logDir: string;
  /** Extra environment of every entrypoint, e.g. `TSRAY_ADDRESS` and `TSRAY_TOKEN_FILE` of the cluster. */
  env: Record<string, string>;
  /** Working directory of entrypoints (default: this process's cwd). */
  cwd?: string;
  /** pino logger (default: tsray's stderr logger, level from `TSRAY_LOG_LEVEL`). */
  logger?: Logger;
  /** How long `stop()` waits after SIGTERM before it sends SIGKILL to the job's process group (default 3000 ms). */
  stopGraceMs?: number;
  /** Told each change of a job (`info` undefined: deleted), so the head keeps the jobs in the GCS store. */
  onChange?: (submissionId: string, info: JobInfo | undefined) => void;
}

/** What {@link JobManager.submit} takes (as Ray's `submit_job`). */
export interface SubmitJobRequest {
  /** Shell command line, run with `/bin/sh -c`. */
  entrypoint: string;
  /** Job id; default `tsraysubmit_<16 random alphanumerics>`. Letters, digits, `_`, `-`, `.`; at most 128. */
  submissionId?: string;
  /**
   * Runtime environment (Ray's shape). Passed to the entrypoint as `TSRAY_RUNTIME_ENV_JSON`; besides,
   * `env_vars` are set in the entrypoint's environment and a `working_dir` that is a local directory
   * becomes its working directory (as Ray applies a job's runtime env to its driver).
   */
  runtimeEnv?: Record<string, unknown>;
  /** Free-form string metadata kept with the job. */
  metadata?: Record<string, string>;
}

/** Options of {@link JobManager.follow}. */
export interface FollowOptions {
  /** How often the log file is checked for new output (default 100 ms). */
  pollMs?: number;
  /** Ends the iteration early. */
  signal?: AbortSignal;
}

interface JobRecord {
  info: JobInfo;
  logPath: string;
  child?: ChildProcess;
  stopping: boolean;
  finished: boolean;
  done: Promise<void>;
  resolveDone: () => void;
}

const TERMINAL: ReadonlySet<JobStatus> = new Set(['SUCCEEDED', 'FAILED', 'STOPPED']);
const ID_RE = /^[A-Za-z0-9_.-]{1,128}$/;
const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** True for SUCCEEDED, FAILED and STOPPED. */
export function isTerminalStatus(status: JobStatus): boolean {
  return TERMINAL.has(status);
}

/** A fresh job id `tsraysubmit_<16 random alphanumerics>`. */
export function newSubmissionId(): string {
  let s = 'tsraysubmit_';
  for (let i = 0; i < 16; i++) s += ALNUM[randomInt(ALNUM.length)];
  return s;
}

function tailOf(path: string, maxChars: number): string {
  try {
    const fd = openSync(path, 'r');
    try {
      const size = fstatSync(fd).size;
      const n = Math.min(size, maxChars);
      const buf = Buffer.alloc(n);
      readSync(fd, buf, 0, n, size - n);
      return buf.toString('utf8').trimEnd();
    } finally {
      closeSync(fd);
    }
  } catch {
    return '';
  }
}

/**
 * True while a live (non-zombie) process is in the group. Zombies count as gone: an orphaned child is
 * reparented to pid 1, which may reap it late (containers).
 */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return true; // no /proc: trust kill(0)
  }
  for (const name of entries) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) === pgid && fields[0] !== 'Z' && fields[0] !== 'X') return true;
    } catch {
      /* exited meanwhile */
    }
  }
  return false;
}

function killGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    /* already gone */
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Runs and tracks submitted jobs. Status goes PENDING (accepted) → RUNNING (the process was spawned) →
 * SUCCEEDED (exit 0) / FAILED (exit ≠ 0 or killed by a signal, or it could not be spawned; the message
 * names the exit code or signal and ends with the last lines of the log) / STOPPED (by {@link stop}).
 * Jobs are kept in memory: they live as long as the head.
 */
export class JobManager {
  private readonly jobs = new Map<string, JobRecord>();
  private readonly log: Logger;
  private readonly graceMs: number;
  private closed = false;

  constructor(private readonly opts: JobManagerOptions) {
    this.log = opts.logger ?? partLogger('jobs');
    this.graceMs = opts.stopGraceMs ?? 3000;
    mkdirSync(opts.logDir, { recursive: true });
  }

  /** Path of a job's log file (stdout and stderr of its entrypoint, interleaved). */
  logPath(submissionId: string): string {
    return join(this.opts.logDir, `job-driver-${submissionId}.log`);
  }

  /**
   * Start a job. Returns its info (status PENDING; RUNNING once the process has spawned).
   * @throws JobRequestError for a malformed request, JobExistsError for a taken submission id.
   */
  submit(req: SubmitJobRequest): JobInfo {
    if (this.closed) throw new JobRequestError('entrypoint', 'the job manager is shut down (the head is stopping)');
    validateSubmit(req);
    const id = req.submissionId ?? newSubmissionId();
    if (this.jobs.has(id)) throw new JobExistsError(id);
    const info: JobInfo = {
      submissionId: id,
      entrypoint: req.entrypoint,
      status: 'PENDING',
      message: 'Job has not started yet.',
      startTime: Date.now(),
      metadata: { ...(req.metadata ?? {}) },
      ...(req.runtimeEnv ? { runtimeEnv: req.runtimeEnv } : {}),
    };
    let resolveDone!: () => void;
    const done = new Promise<void>((r) => (resolveDone = r));
    const rec: JobRecord = { info, logPath: this.logPath(id), stopping: false, finished: false, done, resolveDone };
    this.jobs.set(id, rec);
    this.changed(rec);
    this.launch(rec, req);
    return { ...info };
  }

  /**
   * Take back the jobs a previous head process kept (the GCS store). A job that had not ended lost its
   * supervisor with that process: it is FAILED now, saying so. Ids already known here are skipped.
   */
  restore(rows: unknown[]): void {
    for (const row of rows) {
      const info = row as JobInfo;
      if (!info || typeof info.submissionId !== 'string' || this.jobs.has(info.submissionId)) continue;
      const rec: JobRecord = {
        info: { ...info, metadata: { ...(info.metadata ?? {}) } },
        logPath: this.logPath(info.submissionId),
        stopping: false,
        finished: true,
        done: Promise.resolve(),
        resolveDone: () => undefined,
      };
      this.jobs.set(info.submissionId, rec);
      if (!TERMINAL.has(info.status)) {
        rec.info.status = 'FAILED';
        rec.info.message = 'The head restarted while the job ran: its supervisor was lost with the previous head process.';
        rec.info.endTime = Date.now();
        this.changed(rec);
      }
    }
  }

  /** Tell the owner (the head's store) about a job's new state. */
  private changed(rec: JobRecord): void {
    try {
      this.opts.onChange?.(rec.info.submissionId, { ...rec.info, metadata: { ...rec.info.metadata } });
    } catch (err) {
      this.log.warn({ submissionId: rec.info.submissionId, err }, 'a job change was not stored');
    }
  }

  private launch(rec: JobRecord, req: SubmitJobRequest): void {
    const id = rec.info.submissionId;
    // The token stays out of entrypoints' environment (they get TSRAY_TOKEN_FILE from the daemon).
    const env: Record<string, string | undefined> = { ...process.env, TSRAY_TOKEN: undefined, ...this.opts.env };
    delete env['TSRAY_RUNTIME_ENV_JSON'];
    let cwd = this.opts.cwd ?? process.cwd();
    const re = req.runtimeEnv;
    if (re) {
      const vars = re['env_vars'];
      if (vars && typeof vars === 'object') for (const [k, v] of Object.entries(vars)) env[k] = String(v);
      const wd = re['working_dir'];
      if (typeof wd === 'string') {
        try {
          if (statSync(wd).isDirectory()) cwd = wd;
        } catch {
          /* not a local directory: left to the driver's runtime env handling */
        }
      }
      env['TSRAY_RUNTIME_ENV_JSON'] = JSON.stringify(re);
    }
    env['TSRAY_JOB_ID'] = id;
    const fd = openSync(rec.logPath, 'a');
    let child: ChildProcess;
    try {
      child = spawn('/bin/sh', ['-c', req.entrypoint], { detached: true, cwd, env, stdio: ['ignore', fd, fd] });
    } catch (e) {
      closeSync(fd);
      this.finish(rec, 'FAILED', `Job entrypoint could not be started: ${(e as Error).message}`, null);
      return;
    }
    closeSync(fd);
    rec.child = child;
    if (child.pid !== undefined) rec.info.driverPid = child.pid;
    child.once('spawn', () => {
      if (rec.finished) return;
      rec.info.status = 'RUNNING';
      rec.info.message = 'Job is currently running.';
      this.changed(rec);
      this.log.info({ submissionId: id, pid: child.pid, entrypoint: req.entrypoint }, 'job started');
    });
    child.once('error', (err) => {
      this.finish(rec, 'FAILED', `Job entrypoint could not be started: ${err.message}`, null);
    });
    child.once('exit', (code, signal) => {
      if (rec.stopping) return this.finish(rec, 'STOPPED', 'Job was intentionally stopped.', code);
      if (code === 0) return this.finish(rec, 'SUCCEEDED', 'Job finished successfully.', 0);
      const why = signal ? `was killed by signal ${signal}` : `failed with exit code ${code}`;
      const tail = tailOf(rec.logPath, 2000);
      this.finish(rec, 'FAILED', `Job entrypoint command ${why}` + (tail ? `; last lines of its log:\n${tail}` : '; it printed nothing.'), code);
    });
  }

  private finish(rec: JobRecord, status: JobStatus, message: string, exitCode: number | null): void {
    if (rec.finished) return;
    rec.finished = true;
    rec.info.status = rec.stopping ? 'STOPPED' : status;
    rec.info.message = rec.stopping ? 'Job was intentionally stopped.' : message;
    rec.info.endTime = Date.now();
    rec.info.exitCode = exitCode;
    const lvl = rec.info.status === 'FAILED' ? 'warn' : 'info';
    this.log[lvl]({ submissionId: rec.info.submissionId, status: rec.info.status, exitCode }, 'job ended');
    this.changed(rec);
    rec.resolveDone();
  }

  private record(id: string): JobRecord {
    const rec = this.jobs.get(id);
    if (!rec) throw new JobNotFoundError(id);
    return rec;
  }

  /** A snapshot of a job's info, or undefined for an unknown id. */
  get(submissionId: string): JobInfo | undefined {
    const rec = this.jobs.get(submissionId);
    return rec ? { ...rec.info, metadata: { ...rec.info.metadata } } : undefined;
  }

  /** Snapshots of every job, oldest first. */
  list(): JobInfo[] {
    return [...this.jobs.values()].map((r) => ({ ...r.info, metadata: { ...r.info.metadata } }));
  }

  /** Everything the job has printed so far. @throws JobNotFoundError */
  async logs(submissionId: string): Promise<string> {
    const rec = this.record(submissionId);
    try {
      return readFileSync(rec.logPath, 'utf8');
    } catch {
      return '';
    }
  }

  /** Resolves once the job has ended (at once for a finished job). @throws JobNotFoundError */
  async wait(submissionId: string): Promise<JobInfo> {
    const rec = this.record(submissionId);
    await rec.done;
    return { ...rec.info };
  }

  /**
   * The job's output from the beginning, chunk by chunk as it is written, ending once the job has ended
   * and everything it wrote was read (or the job was deleted, or `signal` aborted).
   * @throws JobNotFoundError
   */
  async *follow(submissionId: string, options: FollowOptions = {}): AsyncGenerator<string, void, undefined> {
    const rec = this.record(submissionId);
    const pollMs = options.pollMs ?? 100;
    const decoder = new StringDecoder('utf8');
    const buf = Buffer.alloc(64 * 1024);
    let offset = 0;
    while (!options.signal?.aborted) {
      const ended = rec.finished || !this.jobs.has(submissionId);
      let n = 0;
      try {
        const fd = openSync(rec.logPath, 'r');
        try {
          n = readSync(fd, buf, 0, buf.length, offset);
        } finally {
          closeSync(fd);
        }
      } catch {
        n = 0; // not created yet, or deleted
      }
      if (n > 0) {
        offset += n;
        const s = decoder.write(buf.subarray(0, n));
        if (s) yield s;
        continue;
      }
      if (ended) break;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([rec.done, new Promise<void>((r) => (timer = setTimeout(r, pollMs)))]);
      clearTimeout(timer);
    }
    const rest = decoder.end();
    if (rest) yield rest;
  }

  /**
   * Stop a job: SIGTERM to its process group, SIGKILL to whatever is left of the group after the grace
   * period. Resolves true once it has exited (status STOPPED), false if it had already ended.
   * @throws JobNotFoundError
   */
  async stop(submissionId: string): Promise<boolean> {
    const rec = this.record(submissionId);
    if (rec.finished) return false;
    rec.stopping = true;
    const pgid = rec.child?.pid;
    if (pgid !== undefined) {
      killGroup(pgid, 'SIGTERM');
      const deadline = Date.now() + this.graceMs;
      while (Date.now() < deadline && (!rec.finished || groupAlive(pgid))) await sleep(25);
      if (!rec.finished || groupAlive(pgid)) {
        this.log.warn({ submissionId, pgid }, `job did not exit within ${this.graceMs} ms of SIGTERM; sending SIGKILL`);
        killGroup(pgid, 'SIGKILL');
      }
    }
    await rec.done;
    return true;
  }

  /**
   * Forget a finished job and remove its log. @throws JobNotFoundError, JobNotTerminalError (still running).
   */
  delete(submissionId: string): boolean {
    const rec = this.record(submissionId);
    if (!rec.finished) throw new JobNotTerminalError(submissionId, rec.info.status);
    this.jobs.delete(submissionId);
    rmSync(rec.logPath, { force: true });
    try {
      this.opts.onChange?.(submissionId, undefined);
    } catch (err) {
      this.log.warn({ submissionId, err }, 'a job deletion was not stored');
    }
    return true;
  }

  /** Stop every running job (each marked STOPPED) and refuse new ones. */
  async shutdown(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.jobs.values()].filter((r) => !r.finished).map((r) => this.stop(r.info.submissionId)));
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function validateSubmit(req: SubmitJobRequest): void {
  if (!isPlainObject(req)) throw new JobRequestError('body', 'a job submission must be an object with an "entrypoint"');
  if (typeof req.entrypoint !== 'string' || req.entrypoint.trim() === '') {
    throw new JobRequestError('entrypoint', '"entrypoint" is required: a non-empty shell command line (e.g. "node driver.js")');
  }
  if (req.submissionId !== undefined && (typeof req.submissionId !== 'string' || !ID_RE.test(req.submissionId))) {
    throw new JobRequestError('submission_id', `"submission_id" must be 1-128 letters, digits, '_', '-' or '.'; got ${JSON.stringify(req.submissionId)}`);
  }
  if (req.metadata !== undefined) {
    if (!isPlainObject(req.metadata)) throw new JobRequestError('metadata', '"metadata" must be an object of strings');
    for (const [k, v] of Object.entries(req.metadata)) {
      if (typeof v !== 'string') throw new JobRequestError('metadata', `"metadata.${k}" must be a string; got ${typeof v}`);
    }
  }
  if (req.runtimeEnv !== undefined) {
    if (!isPlainObject(req.runtimeEnv)) throw new JobRequestError('runtime_env', '"runtime_env" must be an object (e.g. {"env_vars": {"K": "v"}})');
    const vars = req.runtimeEnv['env_vars'];
    if (vars !== undefined && (!isPlainObject(vars) || Object.values(vars).some((v) => typeof v !== 'string'))) {
      throw new JobRequestError('runtime_env', '"runtime_env.env_vars" must be an object of strings');
    }
  }
}
