/**
 * The node's side of runtime environments: one entry per distinct environment (canonical JSON),
 * built through the per-node RuntimeEnvAgent once, held while tasks, actors or workers use it, and
 * released a little after the last one (the agent's cache keeps it on disk until GC).
 * @internal
 */
import { config } from '../config.js';
import { ensureRuntimeDir } from '../runtime-dir.js';
import { join } from 'node:path';
import {
  parseRuntimeEnvJson,
  progressPrinter,
  RuntimeEnvAgent,
  RuntimeEnvSetupError,
  workerLaunchSettings,
  type PreparedRuntimeEnv,
  type RuntimeEnvAgentStats,
  type WorkerLaunchSettings,
} from '@tsray/runtime-env';
import type { ErrorPayload } from '../error-payload.js';
import { logger } from '../logger.js';

/** One environment of this node. */
export interface EnvEntry {
  /** Canonical JSON of the (unresolved) environment. */
  readonly json: string;
  /** Its key in the node's table: the JSON, scoped to a job when it names local directories. */
  readonly key: string;
  state: 'pending' | 'ready' | 'failed';
  /** Hash of the resolved environment (workers are keyed by it); '' until ready. */
  hash: string;
  prepared: PreparedRuntimeEnv | undefined;
  /** Tasks, actors and workers holding it. */
  refs: number;
  waiters: ((entry: EnvEntry | undefined, error: ErrorPayload | undefined) => void)[];
  releaseTimer: NodeJS.Timeout | undefined;
}

/** Options of the node's environments. */
export interface NodeRuntimeEnvsOptions {
  sessionDir: string;
  python: string;
  /** Print setup progress on stderr. */
  logToDriver: boolean;
  /** Fetch a package archive this node does not have (multi-node: from the GCS). */
  fetchPackage?: (hash: string, dest: string) => Promise<void>;
}

/** True when an environment's JSON names local directories (packed on the node, per job). */
export function namesLocalDirectories(json: string): boolean {
  return json.includes('"workingDir"') || json.includes('"pyModules"');
}

/** How long an environment nobody uses stays held by the node (then only the disk cache has it). */
const LINGER_MS = 10_000;

/**
 * The environments of one node. The agent's cache is shared by the node's processes:
 * `TSRAY_RUNTIME_ENV_DIR` (default `$TMPDIR/tsray-<uid>/runtime_resources`); installer options from
 * `TSRAY_RUNTIME_ENV_PIP_ARGS` / `TSRAY_RUNTIME_ENV_NPM_ARGS` (JSON arrays), cap
 * `TSRAY_RUNTIME_ENV_CACHE_BYTES`, installer `TSRAY_RUNTIME_ENV_INSTALLER` (auto | uv | pip).
 */
export class NodeRuntimeEnvs {
  private agentInstance: RuntimeEnvAgent | undefined;
  private readonly entries = new Map<string, EnvEntry>();
  private printer: ReturnType<typeof progressPrinter> | undefined;
  private closed = false;

  constructor(private readonly opts: NodeRuntimeEnvsOptions) {}

  /** The agent (made on first use). */
  get agent(): RuntimeEnvAgent {
    if (!this.agentInstance) {
      const c = config();
      const cap = c.runtimeEnvCacheBytes;
      const installer = c.runtimeEnvInstaller;
      const pipArgs = c.runtimeEnvPipArgs;
      const npmArgs = c.runtimeEnvNpmArgs;
      if (this.opts.logToDriver) this.printer = progressPrinter(process.stderr);
      this.agentInstance = new RuntimeEnvAgent({
        // In this user's 0700 runtime directory: no other local user can plant a built env under its hash.
        rootDir: c.runtimeEnvDir || join(ensureRuntimeDir(), 'runtime_resources'),
        python: this.opts.python,
        logDir: join(this.opts.sessionDir, 'logs'),
        ...(installer === 'uv' || installer === 'pip' || installer === 'auto' ? { installer } : {}),
        ...(pipArgs ? { pipArgs } : {}),
        ...(npmArgs ? { npmArgs } : {}),
        ...(cap !== undefined ? { maxCacheBytes: cap } : {}),
        ...(this.printer ? { onProgress: this.printer } : {}),
        ...(this.opts.fetchPackage ? { fetchPackage: this.opts.fetchPackage } : {}),
      });
    }
    return this.agentInstance;
  }

  /**
   * The entry of `json` for job `jobId`, held for the caller if it is ready now; else undefined, and
   * `done` is called once it is built (held for the caller) or failed (with the error payload).
   * Local directories (`workingDir`, `pyModules`) are packed again for each job, as Ray uploads them
   * at each job's submission: a later job sees their current content (unchanged content hashes the
   * same and reuses the archive and the unpacked copy).
   */
  request(json: string, jobId: string, done: (entry: EnvEntry | undefined, error: ErrorPayload | undefined) => void): EnvEntry | undefined {
    const key = namesLocalDirectories(json) ? `${jobId}\0${json}` : json;
    let e = this.entries.get(key);
    if (e?.state === 'ready') {
      this.hold(e);
      return e;
    }
    if (!e) {
      e = { json, key, state: 'pending', hash: '', prepared: undefined, refs: 0, waiters: [], releaseTimer: undefined };
      this.entries.set(key, e);
      void this.build(e);
    }
    e.waiters.push(done);
    return undefined;
  }

  private async build(e: EnvEntry): Promise<void> {
    let error: ErrorPayload | undefined;
    try {
      const env = parseRuntimeEnvJson(e.json)!;
      const resolved = await this.agent.resolve(env);
      e.prepared = await this.agent.acquire(resolved);
      e.hash = e.prepared.hash;
      e.state = 'ready';
    } catch (err) {
      e.state = 'failed';
      // Not cached: the next request builds again.
      this.entries.delete(e.key);
      const se =
        err instanceof RuntimeEnvSetupError
          ? err
          : new RuntimeEnvSetupError({ field: (err as { field?: string }).field ?? 'setup', message: (err as Error).message ?? String(err), output: '' });
      const info = se.toInfo();
      error = {
        type: 'RuntimeEnvSetupError',
        name: 'RuntimeEnvSetupError',
        field: info.field,
        message: info.message,
        output: info.output,
        ...(info.logFile ? { logFile: info.logFile } : {}),
      };
      logger().info({ env: e.json, err: se.message }, 'runtime env setup failed');
    }
    if (this.closed && e.prepared) {
      e.prepared.release();
      e.prepared = undefined;
    }
    for (const w of e.waiters.splice(0)) {
      if (e.state === 'ready') this.hold(e);
      try {
        w(e.state === 'ready' ? e : undefined, error);
      } catch (err) {
        logger().error({ err }, 'runtime env waiter failed');
      }
    }
    if (e.state === 'ready' && e.refs === 0) this.scheduleRelease(e);
  }

  /** One more holder. */
  hold(e: EnvEntry): void {
    e.refs++;
    if (e.releaseTimer) {
      clearTimeout(e.releaseTimer);
      e.releaseTimer = undefined;
    }
  }

  /** One holder less; the node lets go of the environment a while after the last one. */
  drop(e: EnvEntry): void {
    if (--e.refs <= 0) {
      e.refs = 0;
      this.scheduleRelease(e);
    }
  }

  private scheduleRelease(e: EnvEntry): void {
    if (e.releaseTimer || this.closed) return;
    e.releaseTimer = setTimeout(() => {
      e.releaseTimer = undefined;
      if (e.refs > 0) return;
      if (this.entries.get(e.key) === e) this.entries.delete(e.key);
      e.prepared?.release();
    }, LINGER_MS);
    e.releaseTimer.unref();
  }

  /** How to start a worker of `language` in the environment. */
  launch(e: EnvEntry, language: 'python' | 'node'): WorkerLaunchSettings {
    return workerLaunchSettings(e.prepared!, language, process.env, e.json);
  }

  /** Agent statistics (undefined if no environment was asked for). */
  stats(): RuntimeEnvAgentStats | undefined {
    return this.agentInstance?.stats();
  }

  /** Let go of everything (node shutdown); built environments stay in the disk cache. */
  async close(): Promise<void> {
    this.closed = true;
    for (const e of this.entries.values()) {
      if (e.releaseTimer) clearTimeout(e.releaseTimer);
      e.prepared?.release();
    }
    this.entries.clear();
    this.printer?.stop();
    await this.agentInstance?.close();
  }
}
