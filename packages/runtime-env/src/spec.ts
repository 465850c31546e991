/**
 * The runtime environment a job, task or actor asks for: types, validation (typed errors naming the
 * field), the job/task merge and the canonical form that identifies an environment.
 * @module
 */
import { createHash } from 'node:crypto';
import { isAbsolute, resolve } from 'node:path';
import { RuntimeEnvValidationError } from './errors.js';
import { listPackage, type PackOptions } from './pack.js';
import { type JobCode, validateJobCode } from './code-package.js';

/** `pip` as an object: the packages and whether to run `pip check` after installing. */
export interface PipSpec {
  /** Requirement specs: `name`, `name==1.2`, `name[extra]>=1,<2`, or an absolute path to a `.whl`. */
  packages: string[];
  /** Run `pip check` after the install and fail the setup on conflicts. Default false. */
  pipCheck?: boolean;
}

/** Setup settings. */
export interface RuntimeEnvConfig {
  /** Give up a setup (install) after this long. Default 600 s (as Ray). */
  setupTimeoutSeconds?: number;
}

/**
 * A runtime environment (as Ray's `runtime_env`), for `init({ runtimeEnv })`, `remote(fn, { runtimeEnv })`,
 * actor options and `python.remote/actor(..., { runtimeEnv })`. The node builds it once per content
 * hash and starts dedicated workers in it.
 */
export interface RuntimeEnv {
  /** Python packages installed for Python workers (uv if available, else pip), visible only to them. */
  pip?: string[] | PipSpec;
  /** npm packages for TypeScript workers: `name`, `name@range`, or an absolute path to a `.tgz`. Import them dynamically inside the task. */
  npm?: string[];
  /** Environment variables of the workers (merged key by key with the job's; `${VAR}` expands from the node's environment). */
  envVars?: Record<string, string>;
  /** A local directory shipped to the node (by content hash): the workers' cwd and Python import root. */
  workingDir?: string;
  /** Local Python package directories or `.py` files, importable by their name in Python workers. */
  pyModules?: string[];
  /** Patterns (gitignore style) left out of `workingDir` and `pyModules`, on top of the defaults. */
  excludes?: string[];
  /** Setup settings. */
  config?: RuntimeEnvConfig;
  /** The job's shipped project folder: set by the node that forwards a task to another node (code-package.ts), not by users. */
  jobCode?: JobCode;
}

/** A validated environment: pip as an object, absolute paths, empty fields dropped. */
export interface NormalizedRuntimeEnv {
  pip?: { packages: string[]; pipCheck: boolean };
  npm?: string[];
  envVars?: Record<string, string>;
  workingDir?: string;
  pyModules?: string[];
  excludes?: string[];
  config?: { setupTimeoutSeconds: number };
  jobCode?: JobCode;
}

/** The fields a RuntimeEnv may have. */
export const RUNTIME_ENV_FIELDS: readonly string[] = ['pip', 'npm', 'envVars', 'workingDir', 'pyModules', 'excludes', 'config', 'jobCode'];

const NAME = '[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?';
const OP = '(?:===|==|!=|~=|<=|>=|<|>)';
const VER = '[A-Za-z0-9.*+!_-]+';
const PIP_SPEC = new RegExp(`^${NAME}(?:\\[\\s*${NAME}(?:\\s*,\\s*${NAME})*\\s*\\])?(?:\\s*${OP}\\s*${VER}(?:\\s*,\\s*${OP}\\s*${VER})*)?$`);
const SAFE_PATH = /^\/[A-Za-z0-9._+@/-]+$/;
const NPM_NAME = '(?:@[A-Za-z0-9][A-Za-z0-9._~-]*/)?[A-Za-z0-9][A-Za-z0-9._~-]*';
const NPM_SPEC = new RegExp(`^${NPM_NAME}(?:@[A-Za-z0-9.^~<>=*+_|][A-Za-z0-9.^~<>=*+_| -]*)?$`);
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * True when `spec` is a pip requirement tsray passes to the installer: a PEP 508 name with optional
 * extras and version specifiers (no markers, URLs or options), or an absolute path to a wheel.
 */
export function isValidPipSpec(spec: string): boolean {
  if (spec.length === 0 || spec.length > 300) return false;
  if (spec.startsWith('/')) return SAFE_PATH.test(spec) && spec.endsWith('.whl') && !spec.includes('/../');
  return PIP_SPEC.test(spec);
}

/** True when `spec` is an npm package spec tsray passes to npm: `name[@range|tag]`, or an absolute path to a `.tgz`. */
export function isValidNpmSpec(spec: string): boolean {
  if (spec.length === 0 || spec.length > 300) return false;
  if (spec.startsWith('/')) return SAFE_PATH.test(spec) && /\.(tgz|tar\.gz)$/.test(spec) && !spec.includes('/../');
  return NPM_SPEC.test(spec);
}

/** Options of validateRuntimeEnv. */
export interface ValidateOptions {
  /** Check that `workingDir` / `pyModules` exist and are under the size cap (default true). */
  checkPaths?: boolean;
  /** Cap of a packed directory, bytes (default: TSRAY_RUNTIME_ENV_MAX_PACKAGE_BYTES or 100 MiB). */
  maxPackageBytes?: number;
  /** Base of relative paths (default: process.cwd()). */
  cwd?: string;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && (Object.getPrototypeOf(v) === Object.prototype || Object.getPrototypeOf(v) === null);
}

function stringList(v: unknown, field: string, check: (s: string) => boolean, what: string): string[] {
  if (!Array.isArray(v)) throw new RuntimeEnvValidationError(field, `must be an array of strings, got ${typeof v}`);
  return v.map((s, i) => {
    if (typeof s !== 'string') throw new RuntimeEnvValidationError(`${field}[${i}]`, `must be a string, got ${s === null ? 'null' : typeof s}`);
    if (!check(s)) throw new RuntimeEnvValidationError(`${field}[${i}]`, `${JSON.stringify(s)} is not ${what}`);
    return s;
  });
}

/**
 * Validate a runtime environment and bring it to its normalized form. Throws
 * RuntimeEnvValidationError naming the field for: unknown fields, wrong types, package specs that
 * are not plain requirements (nothing is ever passed through a shell, and specs starting with `-`
 * or holding `;`, spaces or markers are refused before any installer runs), bad env var names, a
 * `workingDir` / `pyModules` entry that is missing or over the cap.
 */
export function validateRuntimeEnv(env: unknown, options: ValidateOptions = {}): NormalizedRuntimeEnv {
  if (!isPlainObject(env))
    throw new RuntimeEnvValidationError('(root)', `must be a plain object, got ${env === null ? 'null' : Array.isArray(env) ? 'an array' : typeof env}`);
  for (const k of Object.keys(env)) {
    if (!RUNTIME_ENV_FIELDS.includes(k)) throw new RuntimeEnvValidationError(k, `unknown field (known: ${RUNTIME_ENV_FIELDS.join(', ')})`);
  }
  const out: NormalizedRuntimeEnv = {};
  const cwd = options.cwd ?? process.cwd();
  const pipWhat =
    'a pip requirement (name, name[extras], version specifiers like ==1.2 or >=1,<2, or an absolute .whl path; no markers, options or shell syntax)';
  if (env['pip'] !== undefined) {
    const p = env['pip'];
    let packages: string[];
    let pipCheck = false;
    if (Array.isArray(p)) packages = stringList(p, 'pip', isValidPipSpec, pipWhat);
    else if (isPlainObject(p)) {
      for (const k of Object.keys(p))
        if (k !== 'packages' && k !== 'pipCheck') throw new RuntimeEnvValidationError(`pip.${k}`, 'unknown field (known: packages, pipCheck)');
      packages = stringList(p['packages'], 'pip.packages', isValidPipSpec, pipWhat);
      if (p['pipCheck'] !== undefined && typeof p['pipCheck'] !== 'boolean') throw new RuntimeEnvValidationError('pip.pipCheck', 'must be a boolean');
      pipCheck = p['pipCheck'] === true;
    } else throw new RuntimeEnvValidationError('pip', 'must be an array of requirement strings or { packages, pipCheck }');
    if (packages.length > 0) out.pip = { packages, pipCheck };
  }
  if (env['npm'] !== undefined) {
    const npm = stringList(
      env['npm'],
      'npm',
      isValidNpmSpec,
      'an npm package spec (name, name@range or tag, or an absolute .tgz path; no options or shell syntax)',
    );
    if (npm.length > 0) out.npm = npm;
  }
  if (env['envVars'] !== undefined) {
    const ev = env['envVars'];
    if (!isPlainObject(ev)) throw new RuntimeEnvValidationError('envVars', 'must be an object of NAME -> string');
    const vars: Record<string, string> = {};
    for (const [k, v] of Object.entries(ev)) {
      if (!ENV_NAME.test(k)) throw new RuntimeEnvValidationError(`envVars.${k}`, 'is not a valid environment variable name ([A-Za-z_][A-Za-z0-9_]*)');
      if (k.startsWith('TSRAY_')) throw new RuntimeEnvValidationError(`envVars.${k}`, 'TSRAY_* variables are set by tsray itself and cannot be overridden');
      if (typeof v !== 'string') throw new RuntimeEnvValidationError(`envVars.${k}`, `must be a string, got ${v === null ? 'null' : typeof v}`);
      if (v.includes('\0')) throw new RuntimeEnvValidationError(`envVars.${k}`, 'must not contain NUL characters');
      vars[k] = v;
    }
    if (Object.keys(vars).length > 0) out.envVars = vars;
  }
  if (env['excludes'] !== undefined) {
    const ex = stringList(env['excludes'], 'excludes', (s) => s.length > 0 && !s.includes('\0'), 'a non-empty pattern');
    if (ex.length > 0) out.excludes = ex;
  }
  const packOpts = (field: string): PackOptions => ({
    field,
    excludes: out.excludes ?? [],
    ...(options.maxPackageBytes !== undefined ? { maxBytes: options.maxPackageBytes } : {}),
  });
  if (env['workingDir'] !== undefined) {
    const wd = env['workingDir'];
    if (typeof wd !== 'string' || wd === '') throw new RuntimeEnvValidationError('workingDir', 'must be a non-empty path to a local directory');
    if (PACKAGE_URI.test(wd)) out.workingDir = wd;
    else {
      if (/^[a-z][a-z0-9+.-]*:\/\//i.test(wd))
        throw new RuntimeEnvValidationError('workingDir', `remote URIs (${wd}) are not supported; give a local directory`);
      out.workingDir = isAbsolute(wd) ? wd : resolve(cwd, wd);
      if (options.checkPaths !== false) listPackage(out.workingDir, packOpts('workingDir'));
    }
  }
  if (env['pyModules'] !== undefined) {
    const mods = stringList(
      env['pyModules'],
      'pyModules',
      (s) => s.length > 0 && (PACKAGE_URI.test(s) || !/^[a-z][a-z0-9+.-]*:\/\//i.test(s)),
      'a local directory or .py file',
    );
    const abs = mods.map((m) => (PACKAGE_URI.test(m) || isAbsolute(m) ? m : resolve(cwd, m)));
    if (options.checkPaths !== false)
      abs.forEach((m, i) => {
        if (PACKAGE_URI.test(m)) return;
        try {
          listPackage(m, { ...packOpts('pyModules'), prefix: 'x' });
        } catch (e) {
          if (e instanceof RuntimeEnvValidationError) throw new RuntimeEnvValidationError(`pyModules[${i}]`, e.message.replace(/^runtimeEnv\.pyModules: /, ''));
          throw e;
        }
      });
    if (abs.length > 0) out.pyModules = abs;
  }
  if (env['config'] !== undefined) {
    const c = env['config'];
    if (!isPlainObject(c)) throw new RuntimeEnvValidationError('config', 'must be an object');
    for (const k of Object.keys(c))
      if (k !== 'setupTimeoutSeconds') throw new RuntimeEnvValidationError(`config.${k}`, 'unknown field (known: setupTimeoutSeconds)');
    const t = c['setupTimeoutSeconds'];
    if (t !== undefined) {
      if (typeof t !== 'number' || !Number.isFinite(t) || t <= 0)
        throw new RuntimeEnvValidationError('config.setupTimeoutSeconds', `must be a number > 0, got ${String(t)}`);
      out.config = { setupTimeoutSeconds: t };
    }
  }
  if (env['jobCode'] !== undefined) out.jobCode = validateJobCode(env['jobCode']);
  return out;
}

/**
 * Merge a job's environment with a task's or actor's, as Ray does: each field of the task replaces
 * the job's, except `envVars`, merged key by key (the task's value wins). Either may be undefined.
 */
export function mergeRuntimeEnv(job: NormalizedRuntimeEnv | undefined, task: NormalizedRuntimeEnv | undefined): NormalizedRuntimeEnv | undefined {
  if (!job || isEmptyRuntimeEnv(job)) return task && !isEmptyRuntimeEnv(task) ? task : undefined;
  if (!task || isEmptyRuntimeEnv(task)) return job;
  const out: NormalizedRuntimeEnv = { ...job, ...task };
  if (job.envVars || task.envVars) out.envVars = { ...job.envVars, ...task.envVars };
  return out;
}

/** True when the environment asks for nothing. */
export function isEmptyRuntimeEnv(env: NormalizedRuntimeEnv | undefined): boolean {
  return !env || Object.keys(env).length === 0;
}

function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v && typeof v === 'object') {
    const o: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) {
      const x = (v as Record<string, unknown>)[k];
      if (x !== undefined) o[k] = canonical(x);
    }
    return o;
  }
  return v;
}

/** JSON with sorted keys: equal environments give equal strings ('' for an empty one). */
export function canonicalJson(env: object | undefined): string {
  if (!env || Object.keys(env).length === 0) return '';
  return JSON.stringify(canonical(env));
}

/** A short content hash (hex) of a canonical JSON string or any text. */
export function hashText(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 24);
}

/** Parse a canonical JSON string back (no path checks: the submitter validated it). */
/**
 * A package already packed and published in the cluster (`pkg://pkg_<hex>`): what a node sends other
 * nodes in place of a local `workingDir` / `pyModules` path; they fetch the archive by its hash.
 */
export const PACKAGE_URI = /^pkg:\/\/(pkg_[0-9a-f]{8,64})$/;

export function parseRuntimeEnvJson(json: string): NormalizedRuntimeEnv | undefined {
  if (!json) return undefined;
  const parsed: unknown = JSON.parse(json);
  return validateRuntimeEnv(parsed, { checkPaths: false });
}
