/**
 * Errors of runtime environments. They carry the same marker as `@tsray/core`'s `TsrayError`, so
 * `TsrayError.isInstance(e)` is true for them too (this package cannot depend on core).
 * @module
 */

const MARKER = Symbol.for('tsray.error');

/** Base class of the runtime-env errors. */
export class RuntimeEnvError extends Error {
  /** @internal */
  readonly [MARKER] = true;
  override name = 'RuntimeEnvError';
}

/**
 * A runtime environment given to `init()`, `remote()` or an actor is invalid: unknown field, wrong
 * type, a package spec that is not a plain requirement (`'emoji; rm -rf /'`), a `workingDir` that is
 * missing or over the size cap. `field` names the offending field (`pip[1]`, `envVars.FOO`, `workingDir`).
 */
export class RuntimeEnvValidationError extends RuntimeEnvError {
  override name = 'RuntimeEnvValidationError';
  constructor(
    /** The field, as a path: `pip`, `pip.packages[2]`, `envVars.HOME`, `workingDir`, `npm[0]`. */
    readonly field: string,
    message: string,
  ) {
    super(`runtimeEnv.${field}: ${message}`);
  }
}

/** What a RuntimeEnvSetupError says. */
export interface RuntimeEnvSetupErrorInfo {
  /** The part that failed: 'pip', 'npm', 'workingDir', 'pyModules', 'lock'. */
  field: string;
  /** What went wrong, in a sentence. */
  message: string;
  /** The installer's output (stdout and stderr together, the last 16 KiB). */
  output: string;
  /** The full log of the setup on the node, when there is one. */
  logFile?: string;
}

/**
 * Building a runtime environment on the node failed (unknown package, version conflict, network,
 * timeout, a package archive missing). The task or actor that asked for it fails with this error;
 * nothing half-built is kept, so the next request tries again. `output` holds the installer's output.
 */
export class RuntimeEnvSetupError extends RuntimeEnvError {
  override name = 'RuntimeEnvSetupError';
  readonly field: string;
  /** What went wrong, without the output. */
  readonly reason: string;
  /** The installer's output (pip / uv / npm), the last 16 KiB. */
  readonly output: string;
  /** The setup log on the node. */
  readonly logFile: string | undefined;
  constructor(info: RuntimeEnvSetupErrorInfo) {
    const out = info.output.trim();
    super(
      `runtime env setup failed (${info.field}): ${info.message}` +
        (out ? `\n--- installer output ---\n${out.length > 4000 ? `...${out.slice(-4000)}` : out}` : '') +
        (info.logFile ? `\n(full log: ${info.logFile})` : ''),
    );
    this.field = info.field;
    this.reason = info.message;
    this.output = info.output;
    this.logFile = info.logFile;
  }

  /** The plain data of the error (to send it across processes). */
  toInfo(): RuntimeEnvSetupErrorInfo {
    return { field: this.field, message: this.reason, output: this.output, ...(this.logFile ? { logFile: this.logFile } : {}) };
  }
}

/** Why an archive was refused (see {@link UnsafeArchiveError}). */
export type UnsafeArchiveKind =
  | 'outside'
  | 'symlink-escape'
  | 'through-symlink'
  | 'duplicate'
  | 'unsupported-entry'
  | 'too-large'
  | 'too-many-entries'
  | 'hash-mismatch';

/**
 * A package archive (workingDir, pyModules, a job's code) was refused while it was fetched or
 * unpacked: an entry outside the destination (`../`, an absolute path), a symbolic link leading out
 * of it or a write through one, a duplicate, hard-link, device or sparse entry, more bytes or entries
 * than the caps, or content that is not what its name (content hash / sha256) says. Nothing is kept
 * of the half-unpacked folder and nothing is written outside it. A RuntimeEnvSetupError, so callers
 * that handle setup failures handle this one too.
 */
export class UnsafeArchiveError extends RuntimeEnvSetupError {
  override name = 'UnsafeArchiveError';
  constructor(
    /** What was wrong. */
    readonly kind: UnsafeArchiveKind,
    field: string,
    /** The archive file. */
    readonly archive: string,
    /** The entry's name inside the archive, when one entry was at fault. */
    readonly entry: string | undefined,
    detail: string,
  ) {
    super({ field, message: `refused archive ${archive}: ${entry !== undefined ? `entry ${JSON.stringify(entry)} ` : ''}${detail}`, output: '' });
  }
}
