/**
 * How a worker process is started inside a prepared environment: its environment variables, cwd
 * and extra node flags.
 * @module
 */
import { delimiter } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { PreparedRuntimeEnv } from './agent.js';

/** Path of the `--import` module that registers the npm resolve hook (see TSRAY_RUNTIME_ENV_NODE_MODULES). */
export const NPM_HOOK_REGISTER_PATH: string = fileURLToPath(new URL('../hooks/npm-register.mjs', import.meta.url));

/**
 * A `node_modules` path beside this package's folder (it need not exist): the resolve hook looks a
 * bare import up from `<this package>/package.json`, which finds the node's own `@tsray/*` packages.
 */
const FALLBACK_NODE_MODULES: string = fileURLToPath(new URL('../node_modules', import.meta.url));

/** What to add when spawning a worker in an environment. */
export interface WorkerLaunchSettings {
  /** Variables to set on top of the node's environment. */
  env: Record<string, string>;
  /** The worker's cwd (the unpacked working directory), if any. */
  cwd: string | undefined;
  /** Extra node flags of TypeScript workers (the npm resolve hook). */
  nodeArgs: string[];
}

/**
 * The settings of a worker of `language` in `env`: the user's variables, `PYTHONPATH` (working dir,
 * py modules and pip site before the inherited path) for Python, the npm resolve hook and
 * `NODE_PATH` for TypeScript, and `TSRAY_RUNTIME_ENV` (the canonical JSON of the environment; tasks
 * the worker submits inherit it).
 */
export function workerLaunchSettings(
  env: PreparedRuntimeEnv,
  language: 'python' | 'node',
  base: NodeJS.ProcessEnv = process.env,
  specJson?: string,
): WorkerLaunchSettings {
  const out: Record<string, string> = { ...env.envVars, TSRAY_RUNTIME_ENV_HASH: env.hash };
  if (specJson !== undefined) out['TSRAY_RUNTIME_ENV'] = specJson;
  const nodeArgs: string[] = [];
  if (language === 'python') {
    const inherited = env.envVars['PYTHONPATH'] ?? base['PYTHONPATH'];
    const parts = [...env.pythonPath, ...(inherited ? [inherited] : [])];
    if (parts.length > 0) out['PYTHONPATH'] = parts.join(delimiter);
  } else {
    // A shipped copy of the job's project has no tsray in its node_modules: `@tsray/*` (and what else
    // the copy cannot find) resolves from this package's folder, as if the node's own install.
    const dirs = [...(env.nodeModules ? [env.nodeModules] : []), ...(env.codeRoot ? [FALLBACK_NODE_MODULES] : [])];
    if (dirs.length > 0) {
      out['TSRAY_RUNTIME_ENV_NODE_MODULES'] = dirs.join(delimiter);
      nodeArgs.push('--import', pathToFileURL(NPM_HOOK_REGISTER_PATH).href);
    }
    if (env.nodeModules) {
      const inherited = env.envVars['NODE_PATH'] ?? base['NODE_PATH'];
      out['NODE_PATH'] = [env.nodeModules, ...(inherited ? [inherited] : [])].join(delimiter);
    }
  }
  if (env.codeDir && env.codeRoot) {
    out['TSRAY_CODE_DIR'] = env.codeDir;
    out['TSRAY_CODE_ROOT'] = env.codeRoot;
  }
  return { env: out, cwd: env.cwd, nodeArgs };
}
