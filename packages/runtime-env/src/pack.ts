/**
 * Packing local directories (`workingDir`, `pyModules`) into gzip'd tar archives named by the hash
 * of their content, and unpacking them on a node. The archive is deterministic (sorted entries,
 * zeroed times and owners), and the hash covers paths, the executable bit, link targets and bytes.
 * @module
 */
/// <reference path="./tar-stream.d.ts" />
import { createHash } from 'node:crypto';
import { type Stats, createReadStream, createWriteStream, existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { mkdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, resolve, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import * as tar from 'tar-stream';
import { RuntimeEnvSetupError, RuntimeEnvValidationError } from './errors.js';
import { DEFAULT_EXCLUDES, ExcludeMatcher } from './excludes.js';

/** Default cap of a packed directory's file bytes (100 MiB). */
export const DEFAULT_MAX_PACKAGE_BYTES = 100 * 1024 * 1024;

let maxPackageBytesSource: (() => number) | undefined;

/**
 * Where the cap comes from: `@tsray/core` sets it to its config's `TSRAY_RUNTIME_ENV_MAX_PACKAGE_BYTES`
 * (this package cannot import core's config module: core depends on it).
 */
export function setMaxPackageBytesSource(source: () => number): void {
  maxPackageBytesSource = source;
}

/** The cap in effect: the injected source's (`TSRAY_RUNTIME_ENV_MAX_PACKAGE_BYTES`), else 100 MiB. */
export function maxPackageBytes(): number {
  return maxPackageBytesSource?.() ?? DEFAULT_MAX_PACKAGE_BYTES;
}

/** One entry of a directory listing. */
export interface PackEntry {
  /** Posix path inside the archive. */
  rel: string;
  type: 'file' | 'directory' | 'symlink';
  /** Absolute path on disk. */
  abs: string;
  size: number;
  executable: boolean;
  linkTarget?: string;
}

/** Options of listing and packing. */
export interface PackOptions {
  /** Extra exclude patterns (gitignore style); DEFAULT_EXCLUDES and a top-level `.gitignore` / `.tsrayignore` also apply. */
  excludes?: readonly string[];
  /** Cap of the file bytes; default `maxPackageBytes()`. */
  maxBytes?: number;
  /** The runtimeEnv field named in errors. Default 'workingDir'. */
  field?: string;
  /** Put the content under this directory name inside the archive (pyModules: the module's name). */
  prefix?: string;
  /** What to leave out, instead of DEFAULT_EXCLUDES + `.gitignore` / `.tsrayignore` + `excludes` (a job's shipped code: code-package.ts). */
  matcher?: { excludes(rel: string, isDir: boolean): boolean };
}

function ignoreFile(root: string): string[] {
  const out: string[] = [];
  for (const f of ['.gitignore', '.tsrayignore']) {
    try {
      out.push(...readFileSync(join(root, f), 'utf8').split('\n'));
    } catch {
      /* none */
    }
  }
  return out;
}

/**
 * List what packing `path` would include (sorted), checking that it exists and stays under the cap.
 * Throws RuntimeEnvValidationError naming the field.
 */
export function listPackage(path: string, options: PackOptions = {}): { entries: PackEntry[]; bytes: number } {
  const field = options.field ?? 'workingDir';
  const max = options.maxBytes ?? maxPackageBytes();
  let st: Stats;
  try {
    st = statSync(path);
  } catch {
    throw new RuntimeEnvValidationError(
      field,
      `${path} does not exist (a local directory${field === 'pyModules' ? ' or .py file' : ''} is expected; relative paths are relative to the driver's cwd)`,
    );
  }
  const prefix = options.prefix ? options.prefix.replace(/\/+$/, '') : '';
  const at = (rel: string) => (prefix ? (rel ? `${prefix}/${rel}` : prefix) : rel);
  if (st.isFile()) {
    if (field !== 'pyModules') throw new RuntimeEnvValidationError(field, `${path} is a file, not a directory`);
    if (st.size > max)
      throw new RuntimeEnvValidationError(field, `${path} is ${st.size} bytes, over the cap of ${max} bytes (TSRAY_RUNTIME_ENV_MAX_PACKAGE_BYTES)`);
    return { entries: [{ rel: basename(path), abs: path, type: 'file', size: st.size, executable: (st.mode & 0o111) !== 0 }], bytes: st.size };
  }
  if (!st.isDirectory()) throw new RuntimeEnvValidationError(field, `${path} is not a directory`);
  const matcher = options.matcher ?? new ExcludeMatcher([...DEFAULT_EXCLUDES, ...ignoreFile(path), ...(options.excludes ?? [])]);
  const entries: PackEntry[] = [];
  if (prefix) entries.push({ rel: prefix, abs: path, type: 'directory', size: 0, executable: true });
  let bytes = 0;
  const walk = (dir: string, rel: string) => {
    const names = readdirSync(dir).sort();
    for (const name of names) {
      const abs = join(dir, name);
      const r = rel ? `${rel}/${name}` : name;
      const ls = lstatSync(abs);
      const isDir = ls.isDirectory();
      if (matcher.excludes(r, isDir)) continue;
      if (ls.isSymbolicLink()) {
        entries.push({ rel: at(r), abs, type: 'symlink', size: 0, executable: false, linkTarget: readlinkSync(abs) });
      } else if (isDir) {
        entries.push({ rel: at(r), abs, type: 'directory', size: 0, executable: true });
        walk(abs, r);
      } else if (ls.isFile()) {
        bytes += ls.size;
        if (bytes > max) {
          throw new RuntimeEnvValidationError(
            field,
            `${path} holds more than ${max} bytes of files (cap, TSRAY_RUNTIME_ENV_MAX_PACKAGE_BYTES); leave large files out with runtimeEnv.excludes`,
          );
        }
        entries.push({ rel: at(r), abs, type: 'file', size: ls.size, executable: (ls.mode & 0o111) !== 0 });
      }
    }
  };
  walk(path, '');
  return { entries, bytes };
}

/** A packed directory. */
export interface PackedPackage {
  /** Content hash: `pkg_<hex>`. */
  hash: string;
  /** The archive (`<outDir>/<hash>.tar.gz`). */
  archivePath: string;
  /** File bytes packed. */
  bytes: number;
}

/** One entry's contribution to a package hash (the same in hashing and packing). */
function hashEntry(h: ReturnType<typeof createHash>, e: PackEntry, buf: Buffer | undefined): void {
  h.update(`${e.rel}\0${e.type}\0${e.executable ? 'x' : '-'}\0`);
  if (e.type === 'file') {
    h.update(`${buf!.length}\0`);
    h.update(buf!);
  } else if (e.type === 'symlink') h.update(`${e.linkTarget}\0`);
}

function packageHash(h: ReturnType<typeof createHash>): string {
  return `pkg_${h.digest('hex').slice(0, 32)}`;
}

/** The content hash `packDirectory` gives `path` now (reads the files, writes nothing). */
export async function hashPackage(path: string, options: PackOptions = {}): Promise<{ hash: string; bytes: number }> {
  const { entries, bytes } = listPackage(path, options);
  const h = createHash('sha256');
  for (const e of entries) hashEntry(h, e, e.type === 'file' ? await readFile(e.abs) : undefined);
  return { hash: packageHash(h), bytes };
}

/**
 * Pack `path` into `<outDir>/<hash>.tar.gz`. The hash is of the content, so the same files give the
 * same archive name anywhere; when that archive exists already the content is only hashed.
 */
export async function packDirectory(path: string, outDir: string, options: PackOptions = {}): Promise<PackedPackage> {
  const known = await hashPackage(path, options);
  const knownPath = join(outDir, `${known.hash}.tar.gz`);
  if (existsSync(knownPath)) return { hash: known.hash, archivePath: knownPath, bytes: known.bytes };
  const { entries, bytes } = listPackage(path, options);
  await mkdir(outDir, { recursive: true });
  const h = createHash('sha256');
  const tmp = join(outDir, `.tmp-pack-${process.pid}-${Math.random().toString(36).slice(2)}.tar.gz`);
  const pack = tar.pack();
  const out = pipeline(pack, createGzip({ level: 6 }), createWriteStream(tmp));
  try {
    const mtime = new Date(0);
    for (const e of entries) {
      const buf = e.type === 'file' ? await readFile(e.abs) : undefined;
      hashEntry(h, e, buf);
      if (e.type === 'file') {
        await entry(pack, { name: e.rel, type: 'file', size: buf!.length, mode: e.executable ? 0o755 : 0o644, mtime, uid: 0, gid: 0 }, buf);
      } else if (e.type === 'directory') {
        await entry(pack, { name: e.rel, type: 'directory', mode: 0o755, mtime, uid: 0, gid: 0 });
      } else {
        await entry(pack, { name: e.rel, type: 'symlink', linkname: e.linkTarget!, mode: 0o777, mtime, uid: 0, gid: 0 });
      }
    }
    pack.finalize();
    await out;
  } catch (err) {
    pack.destroy();
    await out.catch(() => undefined);
    await rm(tmp, { force: true });
    throw err;
  }
  const hash = packageHash(h);
  const archivePath = join(outDir, `${hash}.tar.gz`);
  if (existsSync(archivePath)) await rm(tmp, { force: true });
  else await rename(tmp, archivePath);
  return { hash, archivePath, bytes };
}

/** True when a folder between `root` (excluded) and `target` (excluded) is a symbolic link. */
function throughSymlink(root: string, target: string): boolean {
  let dir = dirname(target);
  while (dir !== root && dir.startsWith(root + sep)) {
    try {
      if (lstatSync(dir).isSymbolicLink()) return true;
    } catch {
      /* not made yet */
    }
    dir = dirname(dir);
  }
  return false;
}

function entry(pack: tar.Pack, header: tar.Headers, buf?: Buffer): Promise<void> {
  return new Promise((res, rej) => {
    pack.entry(header, buf ?? Buffer.alloc(0), (err) => (err ? rej(err) : res()));
  });
}

/**
 * Unpack an archive made by packDirectory into `dest` (created). Entries that would land outside
 * `dest` are refused. Throws RuntimeEnvSetupError naming `field`.
 */
export async function unpackArchive(archivePath: string, dest: string, field = 'workingDir'): Promise<void> {
  const root = resolve(dest);
  await mkdir(root, { recursive: true });
  const extract = tar.extract();
  const fail = (msg: string) => new RuntimeEnvSetupError({ field, message: `cannot unpack ${archivePath}: ${msg}`, output: '' });
  const inside = (p: string) => p === root || p.startsWith(root + sep);
  extract.on('entry', (header, stream, next) => {
    const target = resolve(root, header.name);
    const refuse = (why: string) => {
      stream.resume();
      next(fail(`entry ${JSON.stringify(header.name)} ${why}`));
    };
    if (header.name.startsWith('/') || header.name.split('/').includes('..') || !inside(target)) return refuse('points outside the destination');
    // A symlink may only point inside the destination, and nothing is written through one (an
    // earlier entry could have made `dir` a link to elsewhere, then `dir/file` would land there).
    if (header.type === 'symlink' && (isAbsolute(header.linkname ?? '') || !inside(resolve(dirname(target), header.linkname ?? ''))))
      return refuse(`is a link to ${JSON.stringify(header.linkname)}, outside the destination`);
    if (throughSymlink(root, target)) return refuse('would be written through a symbolic link');
    const done = (err?: unknown) => next(err ? (err as Error) : undefined);
    if (header.type === 'directory') {
      stream.resume();
      mkdir(target, { recursive: true }).then(() => done(), done);
    } else if (header.type === 'symlink') {
      stream.resume();
      mkdir(dirname(target), { recursive: true })
        .then(() => symlink(header.linkname ?? '', target))
        .then(() => done(), done);
    } else if (header.type === 'file' || header.type === undefined) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        mkdir(dirname(target), { recursive: true })
          .then(() => writeFile(target, Buffer.concat(chunks), { mode: header.mode ?? 0o644 }))
          .then(() => done(), done);
      });
      stream.on('error', done);
    } else {
      stream.resume();
      next();
    }
  });
  try {
    await pipeline(createReadStream(archivePath), createGunzip(), extract);
  } catch (err) {
    if (err instanceof RuntimeEnvSetupError) throw err;
    throw fail((err as Error).message);
  }
}
