/**
 * This user's tsray runtime directory, `<os.tmpdir()>/tsray-<uid>` (with the default TMPDIR,
 * `/tmp/tsray-<uid>`, the directory node sockets use too): session directories (logs, spill, the
 * token), `current.json` (what `init({ address: 'auto' })` attaches to), `session_latest` and the
 * runtime-env cache. It is created 0700 and checked with lstat before every use: a real directory
 * (not a link), owned by this user, closed to group and others; anything else is refused with
 * {@link UnsafeRuntimeDirError} rather than trusted, so another local user cannot pre-create it to
 * read the token, point `address: 'auto'` elsewhere, or plant a runtime env. Not `$XDG_RUNTIME_DIR`:
 * logind removes it at the user's last logout, under a running daemon (see socket-path.ts).
 * @module
 */
import { lstatSync, mkdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UnsafeRuntimeDirError } from './errors.js';

/** `<os.tmpdir()>/tsray-<uid>` (not created; see {@link ensureRuntimeDir}). */
export function runtimeDir(): string {
  return join(tmpdir(), `tsray-${process.getuid?.() ?? 'user'}`);
}

/** Why `dir` is not a private directory of this user, or undefined when it is. */
function unsafeBecause(dir: string): string | undefined {
  const st = lstatSync(dir);
  const me = process.getuid?.();
  if (st.isSymbolicLink()) return 'it is a symbolic link';
  if (!st.isDirectory()) return 'it is not a directory';
  if (me !== undefined && st.uid !== me) return `it belongs to uid ${st.uid}, not to this user (uid ${me})`;
  if ((st.mode & 0o077) !== 0) return `its mode is ${(st.mode & 0o777).toString(8)}, open to other users (expected 700)`;
  return undefined;
}

/**
 * The runtime directory, created 0700 when missing. Throws UnsafeRuntimeDirError when it exists
 * but is not this user's private directory.
 */
export function ensureRuntimeDir(): string {
  const dir = runtimeDir();
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const why = unsafeBecause(dir);
  if (why) throw new UnsafeRuntimeDirError(dir, why);
  return dir;
}

/**
 * A file of the runtime directory read only when the directory is this user's private one and the
 * file is a regular file of this user (not a link); undefined when it is missing or not trusted.
 */
export function readPrivateFile(name: string): string | undefined {
  const dir = runtimeDir();
  try {
    if (unsafeBecause(dir)) return undefined;
    const path = join(dir, name);
    const st = lstatSync(path);
    if (!st.isFile() || (process.getuid && st.uid !== process.getuid())) return undefined;
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}
