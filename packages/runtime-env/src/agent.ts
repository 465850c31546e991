/**
 * The per-node runtime environment agent: builds each environment resource (a pip site, an npm
 * folder, an unpacked package) once per content hash, shares it between workers, counts references,
 * and deletes unused resources past a size cap.
 *
 * On disk, under `rootDir` (shared by every process of the node):
 * ```
 * pip/<hash>/site/            packages installed with `--target` (on the Python workers' PYTHONPATH)
 * npm/<hash>/node_modules/    packages for TypeScript workers (found by the resolve hook)
 * pkg/<hash>/                 an unpacked workingDir, pyModules or job code archive (job code: node_modules links to npm/<lockfile hash>)
 * archives/<hash>.tar.gz      packed directories (the package cache the driver or head uploads into)
 * locks/<kind>-<hash>.lock    one builder at a time per resource, across processes
 * refs/<kind>-<hash>@<pid>-<agent>   which live processes use a resource (GC skips those)
 * ```
 * A resource is built in `<kind>/.tmp-*` and renamed into place with its marker file inside, so a
 * failed or interrupted build leaves nothing that looks complete.
 * @module
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, unlinkSync } from 'node:fs';
import { copyFile, lstat, mkdir, readdir, rename, rm, symlink, unlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type CodeDependencies, codeDependencies, hasJobCodeInPlace, type JobCode, npmCiCommand, sha256File, stageCodeDependencies } from './code-package.js';
import { RuntimeEnvSetupError, UnsafeArchiveError } from './errors.js';
import { findNpm, findUv, npmInstallCommand, pipInstallCommand, progressFromLine, runCommand, type PipInstaller } from './installers.js';
import { acquireFileLock, type FileLockHandle, KeyedMutex } from './lock.js';
import { logger } from './logger.js';
import { packDirectory } from './pack.js';
import { unpackArchive } from './unpack.js';
import { canonicalJson, hashText, PACKAGE_URI, type NormalizedRuntimeEnv } from './spec.js';

/** An environment with local directories replaced by package hashes: what a node needs to build it. */
export interface ResolvedRuntimeEnv {
  pip?: { packages: string[]; pipCheck: boolean };
  npm?: string[];
  envVars?: Record<string, string>;
  /** Package hash (`pkg_...`) of the packed working directory. */
  workingDirPackage?: string;
  /** Package hashes of the packed Python modules. */
  pyModulePackages?: string[];
  config?: { setupTimeoutSeconds: number };
  /** The job's shipped project folder (code-package.ts). */
  jobCode?: JobCode;
}

/** Resource kinds. */
export type ResourceKind = 'pip' | 'npm' | 'pkg';

/** A progress report of a setup. */
export interface RuntimeEnvProgress {
  kind: ResourceKind;
  /** The resource hash. */
  hash: string;
  /** 'start' (building), 'progress' (an installer line), 'done', 'failed'. */
  phase: 'start' | 'progress' | 'done' | 'failed';
  /** Packages being installed (pip, npm), or the package name (pkg). */
  packages: string[];
  /** What is happening, in a line. */
  message: string;
  /** Since the start of this build. */
  elapsedMs: number;
  /** The build's log file, if any. */
  logFile?: string;
}

/** Options of the agent. */
export interface RuntimeEnvAgentOptions {
  /** The node's cache directory (shared by the node's processes). */
  rootDir: string;
  /** Python interpreter that pip installs for (its version picks the wheels). Default 'python3'. */
  python?: string;
  /** 'auto' (default): uv if found next to the interpreter or on PATH, else pip. */
  installer?: 'auto' | PipInstaller;
  /** Extra pip / uv arguments, e.g. `['--no-index', '--find-links', dir]` or `['--index-url', url]`. */
  pipArgs?: string[];
  /** Extra npm arguments, e.g. `['--registry', url]` or `['--offline']`. */
  npmArgs?: string[];
  /** Unused resources are deleted (least recently used first) while the cache is larger. Default 10 GiB. */
  maxCacheBytes?: number;
  /** Where setup logs go (the session's `logs/`). Default `<rootDir>/logs`. */
  logDir?: string;
  /** Setup timeout when the environment does not set one. Default 600 s. */
  setupTimeoutMs?: number;
  /** Fetch a package archive that is not in the cache (multi-node: from the head). */
  fetchPackage?: (hash: string, dest: string) => Promise<void>;
  /** Progress of every setup. */
  onProgress?: (p: RuntimeEnvProgress) => void;
}

/** A built environment, held until `release()`. */
export interface PreparedRuntimeEnv {
  /** Hash of the resolved environment: workers are keyed by it. */
  readonly hash: string;
  /** Canonical JSON of the resolved environment. */
  readonly json: string;
  readonly resolved: ResolvedRuntimeEnv;
  /** The user's environment variables, `${VAR}` expanded. */
  readonly envVars: Record<string, string>;
  /** The unpacked working directory (the workers' cwd). */
  readonly cwd: string | undefined;
  /** Import roots of Python workers, in order: working dir, py modules, pip site. */
  readonly pythonPath: string[];
  /** node_modules of the npm environment. */
  readonly nodeModules: string | undefined;
  /** The job's project folder on this node: the driver's own path when this node has it, else the unpacked copy. */
  readonly codeDir?: string;
  /** The driver's project folder when `codeDir` is a copy of it (module URLs are rebased from it). */
  readonly codeRoot?: string;
  /** Drop this hold (idempotent). */
  release(): void;
}

/** Statistics of an agent. */
export interface RuntimeEnvAgentStats {
  /** Builds this agent ran, per kind (cache hits do not count). */
  installs: Record<ResourceKind, number>;
  /** Failed builds. */
  failures: number;
  /** Resources this agent holds, with their reference counts. */
  held: { kind: ResourceKind; hash: string; refs: number }[];
  /** Resources deleted by GC. */
  collected: number;
}

const MARKER = '.tsray-env.json';
const GIB = 1024 ** 3;

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function du(path: string): Promise<number> {
  let total = 0;
  const st = await lstat(path);
  if (!st.isDirectory()) return st.size;
  for (const name of await readdir(path)) total += await du(join(path, name));
  return total;
}

function expandVars(vars: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(vars)) out[k] = v.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_m, name: string) => process.env[name] ?? '');
  return out;
}

/** The per-node runtime environment agent. */
export class RuntimeEnvAgent {
  readonly rootDir: string;
  /** `pip check` of the base interpreter alone (its own conflicts are not an environment's fault). */
  private basePipCheck: Promise<Set<string>> | undefined;
  /** The Python installer in use ('uv' or 'pip'). */
  readonly installer: PipInstaller;
  private readonly python: string;
  private readonly uv: string | undefined;
  private readonly id = randomBytes(4).toString('hex');
  private readonly mutex = new KeyedMutex();
  private readonly refs = new Map<string, number>();
  private readonly counters = { installs: { pip: 0, npm: 0, pkg: 0 } as Record<ResourceKind, number>, failures: 0, collected: 0 };
  private gcRunning: Promise<void> | undefined;
  private gcAgain = false;
  private closed = false;

  constructor(private readonly opts: RuntimeEnvAgentOptions) {
    this.rootDir = opts.rootDir;
    this.python = opts.python ?? 'python3';
    this.uv = opts.installer === 'pip' ? undefined : findUv(this.python);
    if (opts.installer === 'uv' && !this.uv) throw new Error('installer "uv" was asked for, but no uv binary is next to the Python interpreter or on PATH');
    this.installer = this.uv ? 'uv' : 'pip';
  }

  /** Where the archive of a package lives in this node's cache. */
  packagePath(hash: string): string {
    return join(this.rootDir, 'archives', `${hash}.tar.gz`);
  }

  /** Put a package archive (made by `packDirectory`) into the node's cache, e.g. one uploaded through the head. */
  async addPackage(hash: string, archivePath: string): Promise<string> {
    if (!/^pkg_[0-9a-f]{8,64}$/.test(hash)) throw new Error(`not a package hash: ${hash}`);
    const dest = this.packagePath(hash);
    if (existsSync(dest)) return dest;
    await mkdir(join(this.rootDir, 'archives'), { recursive: true });
    const tmp = `${dest}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    await copyFile(archivePath, tmp);
    await rename(tmp, dest);
    return dest;
  }

  /**
   * Pack the environment's local directories into the node's package cache and replace them by
   * their content hashes. Each call reads the directories as they are now (callers resolve once per
   * job, as Ray uploads a job's working dir at submission); content that was packed before is
   * hashed only and its archive reused.
   */
  async resolve(env: NormalizedRuntimeEnv): Promise<ResolvedRuntimeEnv> {
    const out: ResolvedRuntimeEnv = {};
    if (env.pip) out.pip = env.pip;
    if (env.npm) out.npm = env.npm;
    if (env.envVars) out.envVars = env.envVars;
    if (env.config) out.config = env.config;
    if (env.jobCode) out.jobCode = env.jobCode;
    const excludes = env.excludes ?? [];
    if (env.workingDir) out.workingDirPackage = await this.pack(env.workingDir, excludes, 'workingDir');
    if (env.pyModules) out.pyModulePackages = await Promise.all(env.pyModules.map((m) => this.pack(m, excludes, 'pyModules')));
    return out;
  }

  private async pack(path: string, excludes: string[], field: string): Promise<string> {
    const uri = PACKAGE_URI.exec(path);
    if (uri) return uri[1]!;
    const name = path.replace(/\/+$/, '').split('/').pop()!;
    const r = await packDirectory(path, join(this.rootDir, 'archives'), { excludes, field, ...(field === 'pyModules' ? { prefix: name } : {}) });
    return r.hash;
  }

  /**
   * Build (or find) every resource of the environment and hold it. Concurrent calls for the same
   * resource, in this process or others of the node, build it once. Rejects with
   * RuntimeEnvSetupError (nothing half-built is kept).
   */
  async acquire(env: ResolvedRuntimeEnv, options: { onProgress?: (p: RuntimeEnvProgress) => void } = {}): Promise<PreparedRuntimeEnv> {
    if (this.closed) throw new Error('the runtime env agent was closed');
    const json = canonicalJson(env);
    const hash = hashText(json);
    const timeoutMs = env.config ? env.config.setupTimeoutSeconds * 1000 : (this.opts.setupTimeoutMs ?? 600_000);
    const held: string[] = [];
    const progress = (p: RuntimeEnvProgress) => {
      try {
        this.opts.onProgress?.(p);
        options.onProgress?.(p);
      } catch (err) {
        logger().warn({ err }, 'a runtime env progress callback threw');
      }
    };
    const hold = async (kind: ResourceKind, h: string, build: (tmp: string, log: string, started: number) => Promise<void>, packages: string[]) => {
      const key = `${kind}/${h}`;
      await this.ref(key);
      held.push(key);
      return this.ensure(kind, h, build, timeoutMs, packages, progress);
    };
    try {
      const pythonPath: string[] = [];
      let cwd: string | undefined;
      let nodeModules: string | undefined;
      const jobs: Promise<void>[] = [];
      if (env.workingDirPackage) {
        const h = env.workingDirPackage;
        jobs.push(hold('pkg', h, (tmp) => this.unpack(h, tmp, 'workingDir'), ['workingDir']).then((dir) => void (cwd = dir)));
      }
      const mods: string[] = [];
      (env.pyModulePackages ?? []).forEach((h, i) => {
        jobs.push(hold('pkg', h, (tmp) => this.unpack(h, tmp, 'pyModules'), ['pyModules']).then((dir) => void (mods[i] = dir)));
      });
      let code: { dir: string; shipped: boolean } | undefined;
      if (env.jobCode) {
        const jc = env.jobCode;
        jobs.push(this.acquireJobCode(jc, hold, timeoutMs, progress).then((c) => void (code = c)));
      }
      let site: string | undefined;
      if (env.pip) {
        const spec = env.pip;
        const h = hashText(canonicalJson({ pip: spec, python: this.python, installer: this.installer }));
        jobs.push(
          hold('pip', h, (tmp, log, started) => this.pipInstall(spec.packages, spec.pipCheck, tmp, log, timeoutMs, h, started, progress), spec.packages).then(
            (dir) => void (site = join(dir, 'site')),
          ),
        );
      }
      if (env.npm) {
        const specs = env.npm;
        const h = hashText(canonicalJson({ npm: specs, node: process.versions.node.split('.')[0] }));
        jobs.push(
          hold('npm', h, (tmp, log, started) => this.npmInstall(specs, tmp, log, timeoutMs, h, started, progress), specs).then(
            (dir) => void (nodeModules = join(dir, 'node_modules')),
          ),
        );
      }
      const results = await Promise.allSettled(jobs);
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
      if (cwd) pythonPath.push(cwd);
      if (code) pythonPath.push(code.dir);
      pythonPath.push(...mods);
      if (site) pythonPath.push(site);
      let released = false;
      return {
        hash,
        json,
        resolved: env,
        envVars: expandVars(env.envVars ?? {}),
        cwd,
        pythonPath,
        nodeModules,
        ...(code ? { codeDir: code.dir } : {}),
        ...(code?.shipped ? { codeRoot: env.jobCode!.root } : {}),
        release: () => {
          if (released) return;
          released = true;
          for (const k of held) this.unref(k);
        },
      };
    } catch (err) {
      for (const k of held) this.unref(k);
      if (err instanceof RuntimeEnvSetupError) throw err;
      throw new RuntimeEnvSetupError({ field: 'setup', message: (err as Error).message ?? String(err), output: '' });
    }
  }

  private dir(kind: ResourceKind, hash: string): string {
    return join(this.rootDir, kind, hash);
  }

  private refFile(key: string): string {
    return join(this.rootDir, 'refs', `${key.replace('/', '-')}@${process.pid}-${this.id}`);
  }

  private async ref(key: string): Promise<void> {
    const n = this.refs.get(key) ?? 0;
    this.refs.set(key, n + 1);
    if (n === 0) {
      await mkdir(join(this.rootDir, 'refs'), { recursive: true });
      await writeFile(this.refFile(key), '');
    }
  }

  private unref(key: string): void {
    const n = this.refs.get(key) ?? 0;
    if (n <= 1) {
      this.refs.delete(key);
      // Synchronously: the GC pass scheduled next reads the refs folder and must not see this hold.
      try {
        unlinkSync(this.refFile(key));
      } catch {
        /* already gone */
      }
      this.scheduleGc();
    } else this.refs.set(key, n - 1);
  }

  /** The resource's directory, built first if needed (once per node, whoever asks). */
  private async ensure(
    kind: ResourceKind,
    hash: string,
    build: (tmp: string, log: string, started: number) => Promise<void>,
    timeoutMs: number,
    packages: string[],
    progress: (p: RuntimeEnvProgress) => void,
  ): Promise<string> {
    const final = this.dir(kind, hash);
    const marker = join(final, MARKER);
    if (existsSync(marker)) {
      void utimes(marker, new Date(), new Date()).catch(() => undefined);
      return final;
    }
    return this.mutex.run(`${kind}/${hash}`, async () => {
      if (existsSync(marker)) return final;
      await mkdir(join(this.rootDir, 'locks'), { recursive: true });
      let lock: FileLockHandle;
      try {
        lock = await acquireFileLock(join(this.rootDir, 'locks', `${kind}-${hash}.lock`), timeoutMs);
      } catch (err) {
        throw new RuntimeEnvSetupError({ field: kind, message: (err as Error).message, output: '' });
      }
      try {
        if (existsSync(marker)) return final; // another process built it while we waited
        const started = Date.now();
        const logFile = join(this.opts.logDir ?? join(this.rootDir, 'logs'), `runtime_env_setup-${kind}-${hash}.log`);
        const tmp = join(this.rootDir, kind, `.tmp-${hash}-${process.pid}-${randomBytes(4).toString('hex')}`);
        await rm(final, { recursive: true, force: true }); // an incomplete leftover (no marker)
        await mkdir(tmp, { recursive: true });
        progress({
          kind,
          hash,
          phase: 'start',
          packages,
          message:
            kind === 'pkg' ? `unpacking ${packages.join(', ')} (${hash})` : `installing ${packages.join(' ')} with ${kind === 'pip' ? this.installer : 'npm'}`,
          elapsedMs: 0,
          logFile,
        });
        try {
          await build(tmp, logFile, started);
          const bytes = await du(tmp);
          await writeFile(join(tmp, MARKER), JSON.stringify({ kind, hash, packages, bytes, createdAt: new Date().toISOString() }));
          await rename(tmp, final);
        } catch (err) {
          await rm(tmp, { recursive: true, force: true });
          this.counters.failures++;
          progress({ kind, hash, phase: 'failed', packages, message: (err as Error).message.split('\n')[0]!, elapsedMs: Date.now() - started, logFile });
          throw err;
        }
        this.counters.installs[kind]++;
        progress({
          kind,
          hash,
          phase: 'done',
          packages,
          message: `ready in ${((Date.now() - started) / 1000).toFixed(1)} s`,
          elapsedMs: Date.now() - started,
          logFile,
        });
        this.scheduleGc();
        return final;
      } finally {
        await lock.release();
      }
    });
  }

  /**
   * The job's project folder on this node: in place when the node has the same folder (nothing
   * fetched), else the package unpacked (archive fetched and its sha256 checked) with its
   * dependencies installed from the lockfile (an npm resource per lockfile, linked as its node_modules).
   */
  private async acquireJobCode(
    code: JobCode,
    hold: (kind: ResourceKind, h: string, build: (tmp: string, log: string, started: number) => Promise<void>, packages: string[]) => Promise<string>,
    timeoutMs: number,
    progress: (p: RuntimeEnvProgress) => void,
  ): Promise<{ dir: string; shipped: boolean }> {
    if (await hasJobCodeInPlace(code)) return { dir: code.root, shipped: false };
    const h = PACKAGE_URI.exec(code.package)![1]!;
    const dir = await hold('pkg', h, (tmp) => this.unpack(h, tmp, 'jobCode', code.sha256), ['jobCode']);
    const deps = codeDependencies(dir);
    if (deps) {
      const what = ['dependencies of the job code (package-lock.json)'];
      const npmDir = await hold('npm', deps.hash, (tmp, log, started) => this.npmCi(dir, deps, tmp, log, timeoutMs, started, progress), what);
      const link = join(dir, 'node_modules');
      if (!existsSync(link))
        await symlink(join(npmDir, 'node_modules'), link).catch((e: NodeJS.ErrnoException) => (e.code === 'EEXIST' ? undefined : Promise.reject(e)));
    }
    return { dir, shipped: true };
  }

  private async npmCi(
    codeDir: string,
    deps: CodeDependencies,
    tmp: string,
    logFile: string,
    timeoutMs: number,
    started: number,
    progress: (p: RuntimeEnvProgress) => void,
  ): Promise<void> {
    await stageCodeDependencies(codeDir, deps, tmp);
    const [cmd, args] = npmCiCommand(findNpm(), tmp, this.opts.npmArgs ?? []);
    const packages = ['(lockfile)'];
    const onLine = (line: string) => {
      const m = progressFromLine(line);
      if (m) progress({ kind: 'npm', hash: deps.hash, phase: 'progress', packages, message: m, elapsedMs: Date.now() - started, logFile });
    };
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k)) env[k] = v;
    const r = await runCommand(cmd, args, { cwd: tmp, env, timeoutMs, logFile, onLine });
    if (r.code !== 0) {
      const how = r.timedOut ? `timed out after ${Math.round(timeoutMs / 1000)} s (config.setupTimeoutSeconds)` : `exited with ${r.code ?? r.signal}`;
      throw new RuntimeEnvSetupError({ field: 'jobCode', message: `npm ci of the job code's dependencies ${how}`, output: r.output, logFile });
    }
  }

  private async unpack(hash: string, tmp: string, field: string, sha256?: string): Promise<void> {
    const archive = this.packagePath(hash);
    if (!existsSync(archive)) {
      if (!this.opts.fetchPackage) {
        throw new RuntimeEnvSetupError({
          field,
          message: `package ${hash} is not in this node's package cache (${archive}) and no fetchPackage hook is set`,
          output: '',
        });
      }
      await mkdir(join(this.rootDir, 'archives'), { recursive: true });
      await this.opts.fetchPackage(hash, archive);
    }
    if (sha256 !== undefined) {
      const got = await sha256File(archive);
      if (got !== sha256) {
        await rm(archive, { force: true }); // not what was published: fetch again next time
        throw new UnsafeArchiveError('hash-mismatch', field, archive, undefined, `has sha256 ${got}, not the published ${sha256}`);
      }
    }
    try {
      // The archive is named by its content hash: content that is not that package is refused.
      await unpackArchive(archive, tmp, field, { expectedHash: hash });
    } catch (e) {
      if (e instanceof UnsafeArchiveError) await rm(archive, { force: true }); // not what was published: fetch again next time
      throw e;
    }
  }

  private async pipInstall(
    packages: string[],
    pipCheck: boolean,
    tmp: string,
    logFile: string,
    timeoutMs: number,
    hash: string,
    started: number,
    progress: (p: RuntimeEnvProgress) => void,
  ): Promise<void> {
    const site = join(tmp, 'site');
    const [cmd, args] = pipInstallCommand(this.installer, this.python, this.uv, site, packages, this.opts.pipArgs ?? []);
    const onLine = (line: string) => {
      const m = progressFromLine(line);
      if (m) progress({ kind: 'pip', hash, phase: 'progress', packages, message: m, elapsedMs: Date.now() - started, logFile });
    };
    const env = { ...process.env, PIP_NO_INPUT: '1', PYTHONNOUSERSITE: '1' };
    const r = await runCommand(cmd, args, { cwd: tmp, env, timeoutMs, logFile, onLine });
    if (r.code !== 0) {
      const how = r.timedOut
        ? `timed out after ${Math.round(timeoutMs / 1000)} s (config.setupTimeoutSeconds)`
        : r.code === null && !r.signal
          ? 'could not start'
          : `exited with ${r.code ?? r.signal}`;
      throw new RuntimeEnvSetupError({ field: 'pip', message: `${this.installer} install of ${packages.join(' ')} ${how}`, output: r.output, logFile });
    }
    if (pipCheck) {
      const c = await runCommand(this.python, ['-m', 'pip', 'check', '--disable-pip-version-check'], {
        cwd: tmp,
        env: { ...env, PYTHONPATH: site },
        timeoutMs,
        logFile,
      });
      // Only conflicts this environment adds count: the base interpreter's own (e.g. a wheel installed
      // there with --no-deps) are the same with or without the env's site dir on the path.
      const added = c.code === 0 ? [] : await this.conflictsNotInBase(c.output, env, tmp, timeoutMs, logFile);
      if (added.length > 0)
        throw new RuntimeEnvSetupError({
          field: 'pip',
          message: `pip check found conflicts after installing ${packages.join(' ')}`,
          output: added.join('\n'),
          logFile,
        });
    }
  }

  /** Lines of `pip check` output that the base interpreter alone does not report. */
  private async conflictsNotInBase(output: string, env: NodeJS.ProcessEnv, cwd: string, timeoutMs: number, logFile: string): Promise<string[]> {
    const lines = (text: string) =>
      text
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l.length > 0);
    this.basePipCheck ??= runCommand(this.python, ['-m', 'pip', 'check', '--disable-pip-version-check'], { cwd, env, timeoutMs, logFile }).then((b) =>
      b.code === 0 ? new Set<string>() : new Set(lines(b.output)),
    );
    const base = await this.basePipCheck;
    return lines(output).filter((l) => !base.has(l) && !/^No broken requirements/.test(l));
  }

  private async npmInstall(
    specs: string[],
    tmp: string,
    logFile: string,
    timeoutMs: number,
    hash: string,
    started: number,
    progress: (p: RuntimeEnvProgress) => void,
  ): Promise<void> {
    await writeFile(join(tmp, 'package.json'), JSON.stringify({ name: `tsray-env-${hash}`, private: true, version: '0.0.0' }));
    const [cmd, args] = npmInstallCommand(findNpm(), tmp, specs, this.opts.npmArgs ?? []);
    const onLine = (line: string) => {
      const m = progressFromLine(line);
      if (m) progress({ kind: 'npm', hash, phase: 'progress', packages: specs, message: m, elapsedMs: Date.now() - started, logFile });
    };
    // npm reads npm_config_* from the environment (npx/npm run set some, e.g. the workspace prefix): drop them.
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k)) env[k] = v;
    const r = await runCommand(cmd, args, { cwd: tmp, env, timeoutMs, logFile, onLine });
    if (r.code !== 0) {
      const how = r.timedOut ? `timed out after ${Math.round(timeoutMs / 1000)} s (config.setupTimeoutSeconds)` : `exited with ${r.code ?? r.signal}`;
      throw new RuntimeEnvSetupError({ field: 'npm', message: `npm install of ${specs.join(' ')} ${how}`, output: r.output, logFile });
    }
  }

  // ---------------------------------------------------------------- GC

  private scheduleGc(): void {
    if (this.closed) return;
    if (this.gcRunning) {
      this.gcAgain = true;
      return;
    }
    this.gcRunning = this.gc()
      .then(() => undefined)
      .catch((err) => logger().warn({ err }, 'runtime env GC failed'))
      .finally(() => {
        this.gcRunning = undefined;
        if (this.gcAgain) {
          this.gcAgain = false;
          this.scheduleGc();
        }
      });
  }

  /** Wait for a running GC pass (tests). */
  async idle(): Promise<void> {
    while (this.gcRunning) await this.gcRunning;
  }

  private liveRefs(): Set<string> {
    const live = new Set<string>();
    let names: string[] = [];
    try {
      names = readdirSync(join(this.rootDir, 'refs'));
    } catch {
      return live;
    }
    for (const n of names) {
      const m = /^(.*)@(\d+)-[0-9a-f]+$/.exec(n);
      if (!m) continue;
      if (pidAlive(Number(m[2]))) live.add(m[1]!.replace('-', '/'));
      else void unlink(join(this.rootDir, 'refs', n)).catch(() => undefined);
    }
    return live;
  }

  /**
   * Delete unused resources (least recently used first) while the cache is over `maxCacheBytes`.
   * A resource held by any live process of the node is never deleted. Returns the bytes freed.
   */
  async gc(): Promise<number> {
    const cap = this.opts.maxCacheBytes ?? 10 * GIB;
    type Item = { key: string; path: string; bytes: number; used: number; archive: boolean };
    const items: Item[] = [];
    for (const kind of ['pip', 'npm', 'pkg'] as const) {
      let names: string[] = [];
      try {
        names = readdirSync(join(this.rootDir, kind));
      } catch {
        continue;
      }
      for (const n of names) {
        if (n.startsWith('.tmp-')) {
          // A build of a dead process.
          const pid = Number(/-(\d+)-[0-9a-f]+$/.exec(n)?.[1]);
          if (pid && !pidAlive(pid)) await rm(join(this.rootDir, kind, n), { recursive: true, force: true });
          continue;
        }
        const marker = join(this.rootDir, kind, n, MARKER);
        try {
          const meta = JSON.parse(readFileSync(marker, 'utf8')) as { bytes: number };
          items.push({ key: `${kind}/${n}`, path: join(this.rootDir, kind, n), bytes: meta.bytes, used: statSync(marker).mtimeMs, archive: false });
        } catch {
          /* incomplete: not ours to judge */
        }
      }
    }
    try {
      for (const n of readdirSync(join(this.rootDir, 'archives'))) {
        if (!n.endsWith('.tar.gz')) continue;
        const p = join(this.rootDir, 'archives', n);
        const st = statSync(p);
        items.push({ key: `archive/${n}`, path: p, bytes: st.size, used: st.mtimeMs, archive: true });
      }
    } catch {
      /* none */
    }
    let total = items.reduce((s, i) => s + i.bytes, 0);
    if (total <= cap) return 0;
    const live = this.liveRefs();
    let freed = 0;
    for (const it of items.sort((a, b) => a.used - b.used)) {
      if (total <= cap) break;
      if (this.refs.has(it.key) || live.has(it.key)) continue;
      if (it.archive) {
        await rm(it.path, { force: true });
      } else {
        const [kind, hash] = it.key.split('/') as [ResourceKind, string];
        // Under the resource's lock: no one is between "found it complete" and "holds it".
        await this.mutex.run(it.key, async () => {
          let lock: FileLockHandle;
          try {
            lock = await acquireFileLock(join(this.rootDir, 'locks', `${kind}-${hash}.lock`), 0);
          } catch {
            return;
          }
          try {
            if (this.refs.has(it.key) || this.liveRefs().has(it.key)) return;
            const trash = join(this.rootDir, kind, `.tmp-gc-${process.pid}-${randomBytes(4).toString('hex')}`);
            await rename(it.path, trash);
            await rm(trash, { recursive: true, force: true });
          } finally {
            await lock.release();
          }
        });
        if (existsSync(it.path)) continue;
      }
      total -= it.bytes;
      freed += it.bytes;
      this.counters.collected++;
      logger().info({ resource: it.key, bytes: it.bytes }, 'runtime env resource collected');
    }
    return freed;
  }

  /** Numbers for tests and the state API. */
  stats(): RuntimeEnvAgentStats {
    return {
      installs: { ...this.counters.installs },
      failures: this.counters.failures,
      collected: this.counters.collected,
      held: [...this.refs].map(([key, refs]) => {
        const [kind, hash] = key.split('/') as [ResourceKind, string];
        return { kind, hash, refs };
      }),
    };
  }

  /** Drop every hold of this agent (node shutdown). Built resources stay cached. */
  async close(): Promise<void> {
    this.closed = true;
    await this.idle();
    for (const key of this.refs.keys()) await unlink(this.refFile(key)).catch(() => undefined);
    this.refs.clear();
  }
}
