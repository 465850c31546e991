/**
 * Running installers (uv, pip, npm) as child processes: argument arrays, never a shell; output
 * captured (the tail kept for errors, all of it in the log file); a timeout that kills the whole
 * process group; progress lines parsed from the installer's output.
 * @module
 */
import { spawn } from 'node:child_process';
import { accessSync, constants, createWriteStream, mkdirSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';

const TAIL = 16 * 1024;

/** Which Python installer to use. */
export type PipInstaller = 'uv' | 'pip';

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Find a program on PATH (undefined if absent). */
export function which(name: string): string | undefined {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    if (dir && executable(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

/**
 * The `uv` binary to use for a Python interpreter: next to it (a venv's bin/), else on PATH, else
 * undefined (pip is used then).
 */
export function findUv(python: string): string | undefined {
  if (python.includes('/')) {
    const sib = join(dirname(python), 'uv');
    if (executable(sib)) return sib;
  }
  return which('uv');
}

/** The npm binary: on PATH, else next to node. */
export function findNpm(): string {
  return which('npm') ?? join(dirname(process.execPath), 'npm');
}

/** What a finished command reports. */
export interface CommandResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  /** The last 16 KiB of stdout and stderr together. */
  output: string;
}

/**
 * `scheme://user:password@host` → `scheme://***@host` in `text`: an index URL with credentials
 * (`pip --index-url https://user:pass@…`, `npm --registry`) never reaches a log file or an error.
 */
export function redactCredentials(text: string): string {
  return text.replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^/\s:@'"]+(?::[^/\s@'"]*)?@/gi, '$1***@');
}

/**
 * The environment without tsray's secrets (`TSRAY_TOKEN`, `TSRAY_*_TOKEN*`, `TSRAY_*KEY*`): installers
 * and other commands a node runs for a runtime env run package code (setup scripts, build backends)
 * that has no business with the cluster token.
 */
export function withoutSecrets(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(env)) if (!/^TSRAY_(.*_)?(TOKEN|KEY|SECRET)/i.test(k)) out[k] = v;
  return out;
}

/** Options of runCommand. */
export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs: number;
  /** The full output goes here (appended), with the command line first. */
  logFile?: string;
  /** Called with each output line. */
  onLine?: (line: string) => void;
}

/** Run `cmd args` (no shell) and collect its output. Never rejects for a non-zero exit. */
export function runCommand(cmd: string, args: readonly string[], opts: RunOptions): Promise<CommandResult> {
  return new Promise((resolve) => {
    let log: ReturnType<typeof createWriteStream> | undefined;
    if (opts.logFile) {
      try {
        mkdirSync(dirname(opts.logFile), { recursive: true });
        log = createWriteStream(opts.logFile, { flags: 'a', mode: 0o600 });
        log.on('error', () => undefined);
        log.write(
          `$ ${[cmd, ...args]
            .map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a)))
            .map(redactCredentials)
            .join(' ')}\n`,
        );
      } catch {
        log = undefined;
      }
    }
    let tail = '';
    let partial = '';
    let timedOut = false;
    let settled = false;
    const child = spawn(cmd, args, { cwd: opts.cwd, env: withoutSecrets(opts.env ?? process.env), stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const onData = (chunk: Buffer) => {
      const s = redactCredentials(chunk.toString('utf8'));
      log?.write(s);
      tail = (tail + s).slice(-TAIL);
      if (opts.onLine) {
        const lines = (partial + s).split(/\r?\n|\r/);
        partial = lines.pop()!;
        for (const l of lines) if (l.trim()) opts.onLine(l);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    }, opts.timeoutMs);
    const finish = (code: number | null, signal: NodeJS.Signals | null, extra = '') => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (extra) tail = (tail + extra).slice(-TAIL);
      const result = { code, signal, timedOut, output: tail };
      if (!log) return resolve(result);
      // Resolved once the log is on disk: a caller (or the error naming the log) may read it right away.
      log.once('error', () => resolve(result));
      log.end(`\n[exit ${code ?? signal}${timedOut ? ', timed out' : ''}]\n`, () => resolve(result));
    };
    child.on('error', (err) => finish(null, null, `\n${cmd}: ${err.message}\n`));
    child.on('close', (code, signal) => finish(code, signal));
  });
}

/** The argument list of a pip or uv install into `target`. */
export function pipInstallCommand(
  installer: PipInstaller,
  python: string,
  uv: string | undefined,
  target: string,
  packages: readonly string[],
  extraArgs: readonly string[],
): [string, string[]] {
  if (installer === 'uv') {
    return [uv!, ['pip', 'install', '--target', target, '--python', python, ...extraArgs, '--', ...packages]];
  }
  return [
    python,
    ['-m', 'pip', 'install', '--target', target, '--disable-pip-version-check', '--no-input', '--no-warn-script-location', ...extraArgs, '--', ...packages],
  ];
}

/** The argument list of an npm install into `prefix`. */
export function npmInstallCommand(npm: string, prefix: string, packages: readonly string[], extraArgs: readonly string[]): [string, string[]] {
  return [npm, ['install', '--prefix', prefix, '--no-audit', '--no-fund', '--no-update-notifier', '--loglevel=warn', ...extraArgs, ...packages]];
}

/** A short progress message from an installer output line, or undefined when the line says nothing new. */
export function progressFromLine(line: string): string | undefined {
  const l = line.trim();
  const m =
    /^(Collecting \S+|Downloading \S+|Processing \S+|Building wheel for \S+|Installing collected packages: .*|Successfully installed .*)/.exec(l) ??
    /^((?:Resolved|Prepared|Installed|Downloaded) \d+ packages?.*)/.exec(l) ??
    /^(added \d+ packages?.*)/.exec(l);
  return m ? m[1]!.slice(0, 200) : undefined;
}
