/**
 * Packing local directories (`workingDir`, `pyModules`) into gzip'd tar archives named by the hash
 * of their content, and unpacking them on a node. The archive is deterministic (sorted entries,
 * zeroed times and owners), and the hash covers paths, the executable bit, link targets and bytes.
 * @module
 */
/// <reference path="./tar-stream.d.ts" />
import { createHash } from 'node:crypto';
import { type Stats, createWriteStream, existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { mkdir, readFile, rename, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import * as tar from 'tar-stream';
import { RuntimeEnvValidationError } from './errors.js';
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

/** One entry's contribution to a package hash (the same in hashing, packing and verifying an unpacked archive). */
export function hashEntry(h: ReturnType<typeof createHash>, e: PackEntry, buf: Buffer | undefined): void {
  h.update(`${e.rel}\0${e.type}\0${e.executable ? 'x' : '-'}\0`);
  if (e.type === 'file') {
    h.update(`${buf!.length}\0`);
    h.update(buf!);
  } else if (e.type === 'symlink') h.update(`${e.linkTarget}\0`);
}

/** The package name (`pkg_<hex>`) of a finished entry hash. */
export function packageHash(h: ReturnType<typeof createHash>): string {
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

function entry(pack: tar.Pack, header: tar.Headers, buf?: Buffer): Promise<void> {
  return new Promise((res, rej) => {
    pack.entry(header, buf ?? Buffer.alloc(0), (err) => (err ? rej(err) : res()));
  });
}
