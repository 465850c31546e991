/**
 * A job's code (Ray's job `working_dir`, shipped by default): the driver's project folder (nearest
 * `package.json`), packed by content hash for nodes that do not have it. What is packed follows the
 * folder's `.gitignore` and `.tsrayignore` (gitignore rules, through the `ignore` library), and
 * `node_modules`, `.git` and Python caches are always left out: dependencies are installed on the
 * node from the lockfile instead (`installCodeDependencies`). A node that has the folder itself (same
 * path, same files: equal fingerprints) runs it in place, so a cluster on one filesystem ships nothing.
 * @module
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import { cp, copyFile, lstat, mkdir, readdir } from 'node:fs/promises';
import { dirname, isAbsolute, join, normalize, relative, sep } from 'node:path';
import ignore, { type Ignore } from 'ignore';
import { RuntimeEnvSetupError, RuntimeEnvValidationError } from './errors.js';
import { DEFAULT_EXCLUDES } from './excludes.js';
import { packDirectory } from './pack.js';
import { hashText, PACKAGE_URI } from './spec.js';

/** A job's packed code as a task's runtime env carries it to another node (`runtimeEnv.jobCode`). */
export interface JobCode {
  /** The project folder on the submitting machine (module URLs of the job's functions are under it). */
  root: string;
  /** `pkg://<content hash>`: the archive, published in the cluster (GCS KV `pkg:<hash>`). */
  package: string;
  /** sha256 (hex) of the archive's bytes, checked after a node fetches it. */
  sha256: string;
  /** Fingerprint of the folder's listing (paths, sizes, times, inodes): equal on a node = the same files there. */
  fingerprint: string;
}

/** The ignore rules of one folder's `.gitignore` and `.tsrayignore`, or undefined when it has neither. */
function folderRules(dir: string): Ignore | undefined {
  let ig: Ignore | undefined;
  for (const f of ['.gitignore', '.tsrayignore']) {
    try {
      const text = readFileSync(join(dir, f), 'utf8');
      ig = (ig ?? ignore()).add(text);
    } catch {
      /* none */
    }
  }
  return ig;
}

/**
 * What git would leave out of the folder `root`, plus the defaults (node_modules, .git, caches):
 * the `.gitignore` / `.tsrayignore` of every folder inside it, and of the folders above it up to
 * the top of its git repository (a package of a monorepo follows the repository's rules too).
 */
export function codeMatcher(root: string): { excludes(rel: string, isDir: boolean): boolean } {
  const defaults = ignore().add([...DEFAULT_EXCLUDES]);
  const above: { dir: string; ig: Ignore }[] = [];
  for (let dir = dirname(root); ; dir = dirname(dir)) {
    const ig = folderRules(dir);
    if (ig) above.push({ dir, ig });
    if (existsSync(join(dir, '.git')) || dirname(dir) === dir) break;
  }
  if (existsSync(join(root, '.git'))) above.length = 0;
  const inside = new Map<string, Ignore | undefined>();
  const rulesOf = (rel: string) => {
    if (!inside.has(rel)) inside.set(rel, folderRules(join(root, rel)));
    return inside.get(rel);
  };
  return {
    excludes: (rel, isDir) => {
      const as = (p: string) => (isDir ? `${p}/` : p);
      if (defaults.ignores(as(rel))) return true;
      const abs = join(root, rel);
      for (const a of above) if (a.ig.ignores(as(relative(a.dir, abs).split(sep).join('/')))) return true;
      // The folder's own rules, then those of each folder between it and the entry.
      const parts = rel.split('/');
      for (let i = 0; i < parts.length; i++) {
        const dir = parts.slice(0, i).join('/');
        const ig = rulesOf(dir);
        if (ig?.ignores(as(parts.slice(i).join('/')))) return true;
      }
      return false;
    },
  };
}

/**
 * The fingerprint of what packing `root` would take: its listing (the same ignore rules) with each
 * file's size, mtime, inode and device. Reads no file content and blocks nothing (asynchronous
 * directory walk, cheap enough per job); any edit, added or removed file changes it, and another
 * machine's copy of the folder never matches. Folders count by name only: their times change when
 * a file comes and goes again, their content does not.
 */
export async function codeFingerprint(root: string): Promise<string> {
  const matcher = codeMatcher(root);
  const h = createHash('sha256');
  const walk = async (dir: string, rel: string): Promise<void> => {
    for (const name of (await readdir(dir)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const abs = join(dir, name);
      const st = await lstat(abs, { bigint: true });
      if (matcher.excludes(r, st.isDirectory())) continue;
      if (st.isDirectory()) {
        h.update(`${r}\0directory\n`);
        await walk(abs, r);
      } else if (st.isFile() || st.isSymbolicLink()) {
        h.update(`${r}\0${st.isFile() ? 'file' : 'symlink'}\0${st.size}\0${st.mtimeNs}\0${st.ino}\0${st.dev}\n`);
      }
    }
  };
  await walk(root, '');
  return h.digest('hex').slice(0, 32);
}

/** sha256 (hex) of a file's bytes. */
export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Pack the project folder `root` into `archivesDir` (by content hash; an unchanged folder reuses its archive). */
export async function packJobCode(root: string, archivesDir: string): Promise<JobCode & { archivePath: string; bytes: number }> {
  const fingerprint = await codeFingerprint(root);
  const packed = await packDirectory(root, archivesDir, { field: 'jobCode', matcher: codeMatcher(root) });
  return {
    root,
    package: `pkg://${packed.hash}`,
    sha256: await sha256File(packed.archivePath),
    fingerprint,
    archivePath: packed.archivePath,
    bytes: packed.bytes,
  };
}

/** Check a `jobCode` field of a runtime env (set by nodes, but decoded from the wire like the rest). */
export function validateJobCode(v: unknown): JobCode {
  const o = v as Record<string, unknown>;
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new RuntimeEnvValidationError('jobCode', 'must be an object { root, package, sha256, fingerprint }');
  for (const k of Object.keys(o))
    if (!['root', 'package', 'sha256', 'fingerprint'].includes(k))
      throw new RuntimeEnvValidationError(`jobCode.${k}`, 'unknown field (known: root, package, sha256, fingerprint)');
  const root = o['root'];
  if (typeof root !== 'string' || !isAbsolute(root) || normalize(root) !== root || root.includes('\0'))
    throw new RuntimeEnvValidationError('jobCode.root', 'must be a normalized absolute path');
  if (typeof o['package'] !== 'string' || !PACKAGE_URI.test(o['package'])) throw new RuntimeEnvValidationError('jobCode.package', 'must be pkg://pkg_<hex>');
  if (typeof o['sha256'] !== 'string' || !/^[0-9a-f]{64}$/.test(o['sha256'])) throw new RuntimeEnvValidationError('jobCode.sha256', 'must be 64 hex digits');
  if (typeof o['fingerprint'] !== 'string' || !/^[0-9a-f]{8,64}$/.test(o['fingerprint']))
    throw new RuntimeEnvValidationError('jobCode.fingerprint', 'must be hex digits');
  return { root, package: o['package'], sha256: o['sha256'], fingerprint: o['fingerprint'] };
}

/** True when this node has the job's folder itself: same path, same fingerprint (then nothing is fetched). */
export async function hasJobCodeInPlace(code: JobCode): Promise<boolean> {
  if (!existsSync(join(code.root, 'package.json'))) return false;
  try {
    return (await codeFingerprint(code.root)) === code.fingerprint;
  } catch {
    return false;
  }
}

/** What installing an unpacked project's dependencies needs, or undefined when it has no lockfile. */
export interface CodeDependencies {
  /** Resource hash: of the lockfile, package.json and Node's major version. */
  hash: string;
  /** `file:` dependencies (paths inside the project) the install reads. */
  localPaths: string[];
}

/**
 * The dependencies of an unpacked project, from its `package-lock.json` (npm's lockfile; without one
 * nothing is installed). `file:` dependencies must stay inside the project.
 */
export function codeDependencies(codeDir: string): CodeDependencies | undefined {
  const lock = join(codeDir, 'package-lock.json');
  if (!existsSync(lock)) return undefined;
  const pkgText = readFileSync(join(codeDir, 'package.json'), 'utf8');
  const pkg = JSON.parse(pkgText) as { dependencies?: Record<string, string>; optionalDependencies?: Record<string, string> };
  const localPaths: string[] = [];
  for (const spec of Object.values({ ...pkg.dependencies, ...pkg.optionalDependencies })) {
    if (typeof spec !== 'string' || !spec.startsWith('file:')) continue;
    const rel = normalize(spec.slice('file:'.length));
    if (isAbsolute(rel) || rel === '..' || rel.startsWith(`..${sep}`))
      throw new RuntimeEnvSetupError({ field: 'jobCode', message: `dependency ${spec} lies outside the shipped project folder`, output: '' });
    localPaths.push(rel);
  }
  return { hash: hashText(`${readFileSync(lock, 'utf8')}\0${pkgText}\0${process.versions.node.split('.')[0]}`), localPaths };
}

/** Lay out what `npm ci` needs in `tmp`: package.json, the lockfile and the project's `file:` dependencies. */
export async function stageCodeDependencies(codeDir: string, deps: CodeDependencies, tmp: string): Promise<void> {
  await copyFile(join(codeDir, 'package.json'), join(tmp, 'package.json'));
  await copyFile(join(codeDir, 'package-lock.json'), join(tmp, 'package-lock.json'));
  for (const rel of deps.localPaths) {
    await mkdir(dirname(join(tmp, rel)), { recursive: true });
    await cp(join(codeDir, rel), join(tmp, rel), { recursive: true });
  }
}

/** `npm ci` of the staged project in `prefix`: exactly the lockfile, no dev dependencies, no install scripts. */
export function npmCiCommand(npm: string, prefix: string, extraArgs: readonly string[]): [string, string[]] {
  return [
    npm,
    ['ci', '--prefix', prefix, '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--no-update-notifier', '--loglevel=warn', ...extraArgs],
  ];
}
