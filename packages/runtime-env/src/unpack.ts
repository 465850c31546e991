/**
 * Unpacking a package archive (made by `packDirectory`) on a node, safely: an archive may come from
 * another machine (the head's package store, a peer), so it is treated as hostile. Every entry must
 * land inside the destination (no `..`, no absolute path, no symbolic link leading out, nothing
 * written through a link), only files, folders and links are accepted (no hard links, devices or
 * sparse files), the total bytes and the entry count are capped before anything is read, files are
 * created with `O_EXCL | O_NOFOLLOW` (an entry never overwrites another or follows a link planted at
 * its name), and the content is hashed on the way so the archive is refused when it is not the
 * package its name says.
 * @module
 */
/// <reference path="./tar-stream.d.ts" />
import { createHash } from 'node:crypto';
import { constants, createReadStream, existsSync, lstatSync } from 'node:fs';
import { mkdir, open, rm, symlink } from 'node:fs/promises';
import { dirname, isAbsolute, resolve, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import * as tar from 'tar-stream';
import { RuntimeEnvSetupError, UnsafeArchiveError, type UnsafeArchiveKind } from './errors.js';
import { hashEntry, maxPackageBytes, packageHash, type PackEntry } from './pack.js';

/** Caps of one unpacking. */
export interface UnpackLimits {
  /** File bytes in all (default: the packing cap, `TSRAY_RUNTIME_ENV_MAX_PACKAGE_BYTES`, 100 MiB). */
  maxBytes: number;
  /** Entries (files, folders, links) in all. */
  maxEntries: number;
}

/** The default caps (`maxBytes` is read from `maxPackageBytes()` at each call). */
export const DEFAULT_UNPACK_LIMITS: Readonly<Omit<UnpackLimits, 'maxBytes'>> = { maxEntries: 100_000 };

/** Options of {@link unpackArchive}. */
export interface UnpackOptions {
  /** The package name (`pkg_<hex>`, the content hash `packDirectory` gave it): refused when the content differs. */
  expectedHash?: string;
  /** Caps; missing ones take their defaults. */
  limits?: Partial<UnpackLimits>;
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

/** Write a new file: fails (EEXIST, ELOOP) rather than replace an entry or follow a link at its name. */
async function writeNew(target: string, data: Buffer, mode: number): Promise<void> {
  const fh = await open(target, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode & 0o755);
  try {
    await fh.writeFile(data);
  } finally {
    await fh.close();
  }
}

/** True when a pax header describes a GNU sparse file (its real size is not the stored size). */
function isSparse(header: tar.Headers): boolean {
  const pax = (header as { pax?: Record<string, string> }).pax;
  return pax !== undefined && Object.keys(pax).some((k) => k.startsWith('GNU.sparse'));
}

/**
 * Unpack an archive made by packDirectory into `dest` (created; removed again on failure when this
 * call created it). Throws {@link UnsafeArchiveError} (a RuntimeEnvSetupError naming `field`) for
 * an entry that is refused, over the caps, or content other than `options.expectedHash`, and
 * RuntimeEnvSetupError for an archive that cannot be read.
 */
export async function unpackArchive(archivePath: string, dest: string, field = 'workingDir', options: UnpackOptions = {}): Promise<void> {
  const root = resolve(dest);
  const limits: UnpackLimits = { maxBytes: maxPackageBytes(), ...DEFAULT_UNPACK_LIMITS, ...options.limits };
  const created = !existsSync(root);
  await mkdir(root, { recursive: true });
  const extract = tar.extract();
  const unsafe = (kind: UnsafeArchiveKind, name: string | undefined, detail: string) => new UnsafeArchiveError(kind, field, archivePath, name, detail);
  const inside = (p: string) => p === root || p.startsWith(root + sep);
  const h = createHash('sha256');
  let bytes = 0;
  let entries = 0;
  extract.on('entry', (header, stream, next) => {
    const name = header.name;
    const target = resolve(root, name);
    const refuse = (kind: UnsafeArchiveKind, why: string) => {
      stream.resume();
      next(unsafe(kind, name, why));
    };
    if (++entries > limits.maxEntries) return refuse('too-many-entries', `is one more than the cap of ${limits.maxEntries} entries`);
    if (isAbsolute(name) || name.split('/').includes('..') || !inside(target)) return refuse('outside', 'points outside the destination');
    if (header.type !== 'file' && header.type !== 'directory' && header.type !== 'symlink')
      return refuse('unsupported-entry', `is a ${header.type ?? 'sparse or unknown'} entry (only files, folders and symbolic links are unpacked)`);
    if (isSparse(header)) return refuse('unsupported-entry', 'is a sparse file (only plain files are unpacked)');
    const size = header.size ?? 0;
    // Checked on the header, before a byte of the entry is read or inflated.
    if (bytes + size > limits.maxBytes)
      return refuse('too-large', `holds ${size} bytes, over the cap of ${limits.maxBytes} bytes in all (TSRAY_RUNTIME_ENV_MAX_PACKAGE_BYTES)`);
    bytes += size;
    // A symlink may only point inside the destination, and nothing is written through one (an
    // earlier entry could have made `dir` a link to elsewhere, then `dir/file` would land there).
    const linkname = header.linkname ?? '';
    if (header.type === 'symlink' && (isAbsolute(linkname) || !inside(resolve(dirname(target), linkname))))
      return refuse('symlink-escape', `is a link to ${JSON.stringify(linkname)}, outside the destination`);
    if (throughSymlink(root, target)) return refuse('through-symlink', 'would be written through a symbolic link');
    const rel = name.replace(/\/+$/, '');
    const done = (err?: unknown) => {
      const code = (err as NodeJS.ErrnoException | undefined)?.code;
      if (code === 'EEXIST' || code === 'ELOOP') return next(unsafe('duplicate', name, 'would replace an earlier entry or a link at its name'));
      next(err ? (err as Error) : undefined);
    };
    const entry = (type: PackEntry['type'], executable: boolean): PackEntry => ({ rel, type, abs: target, size, executable, linkTarget: linkname });
    if (header.type === 'directory') {
      stream.resume();
      hashEntry(h, entry('directory', true), undefined);
      mkdir(target, { recursive: true }).then(() => done(), done);
    } else if (header.type === 'symlink') {
      stream.resume();
      hashEntry(h, entry('symlink', false), undefined);
      mkdir(dirname(target), { recursive: true })
        .then(() => symlink(linkname, target))
        .then(() => done(), done);
    } else {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const data = Buffer.concat(chunks);
        const mode = header.mode ?? 0o644;
        hashEntry(h, entry('file', (mode & 0o111) !== 0), data);
        mkdir(dirname(target), { recursive: true })
          .then(() => writeNew(target, data, mode))
          .then(() => done(), done);
      });
      stream.on('error', done);
    }
  });
  try {
    await pipeline(createReadStream(archivePath), createGunzip(), extract);
    if (options.expectedHash !== undefined) {
      const got = packageHash(h);
      if (got !== options.expectedHash) throw unsafe('hash-mismatch', undefined, `holds content ${got}, not the package ${options.expectedHash} it was named`);
    }
  } catch (err) {
    if (created) await rm(root, { recursive: true, force: true });
    if (err instanceof RuntimeEnvSetupError) throw err;
    throw new RuntimeEnvSetupError({ field, message: `cannot unpack ${archivePath}: ${(err as Error).message}`, output: '' });
  }
}
