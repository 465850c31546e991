/**
 * Which project a module belongs to, and where a worker finds a shipped copy of it. A remote
 * function's descriptor names its module by the URL the driver has (`file:///home/me/app/src/f.ts`)
 * and its project folder (the nearest `package.json` folder, `/home/me/app`); a node without that
 * folder runs the task from a copy unpacked elsewhere (`TSRAY_CODE_DIR`, a copy of `TSRAY_CODE_ROOT`).
 * Functions stay keyed by the driver's URL in every process, so the same key finds the same function
 * on every node; only the import goes to the copy. See docs/architecture.md, "Code shipping".
 * @internal
 */
import { existsSync } from 'node:fs';
import { dirname, join, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { config } from './config.js';

const rootOfDir = new Map<string, string | undefined>();

/** The nearest folder at or above `dir` holding a package.json (memoized per folder). */
function nearestPackageFolder(dir: string): string | undefined {
  if (rootOfDir.has(dir)) return rootOfDir.get(dir);
  let found: string | undefined;
  if (existsSync(join(dir, 'package.json'))) found = dir;
  else {
    const up = dirname(dir);
    found = up === dir ? undefined : nearestPackageFolder(up);
  }
  rootOfDir.set(dir, found);
  return found;
}

/** This worker's shipped copy: the driver's folder and where it is here (undefined: none, the paths are the driver's). */
function shippedCopy(): { root: string; dir: string } | undefined {
  const c = config();
  return c.codeDir && c.codeRoot ? { root: c.codeRoot, dir: c.codeDir } : undefined;
}

function under(path: string, folder: string): boolean {
  return path === folder || path.startsWith(folder.endsWith(sep) ? folder : folder + sep);
}

/**
 * The project folder of the module at `moduleUrl` as the driver names it: the nearest package.json
 * folder, or undefined for modules that are not a project's own code (inside `node_modules`, not a
 * file:// URL, no package.json above).
 */
export function codeRootOf(moduleUrl: string): string | undefined {
  if (!moduleUrl.startsWith('file://')) return undefined;
  const path = fileURLToPath(moduleUrl);
  const copy = shippedCopy();
  if (copy && under(path, copy.root)) return copy.root;
  if (path.split(sep).includes('node_modules')) return undefined;
  return nearestPackageFolder(dirname(path));
}

/** The URL under which a module of this process is known cluster-wide: a shipped copy's modules by the driver's URL. */
export function canonicalModuleUrl(moduleUrl: string): string {
  const copy = shippedCopy();
  if (!copy || !moduleUrl.startsWith('file://')) return moduleUrl;
  const path = fileURLToPath(moduleUrl);
  if (!under(path, copy.dir)) return moduleUrl;
  return pathToFileURL(copy.root + path.slice(copy.dir.length)).href;
}

/** The URL to import for a module the driver named `moduleUrl`: in a worker with a shipped copy, the copy's file. */
export function importableModuleUrl(moduleUrl: string): string {
  const copy = shippedCopy();
  if (!copy || !moduleUrl.startsWith('file://')) return moduleUrl;
  const path = fileURLToPath(moduleUrl);
  if (!under(path, copy.root)) return moduleUrl;
  return pathToFileURL(copy.dir + path.slice(copy.root.length)).href;
}
