/**
 * Where a node's unix socket lives. A unix socket path holds at most 107 bytes (`sun_path`), and the
 * session directory under `$TMPDIR` is often longer than that leaves room for (macOS's `TMPDIR` alone
 * is ~49 characters), so the socket goes to a short per-user directory instead: `$TSRAY_SOCKET_DIR`
 * when set, else `/tmp/tsray-<uid>` (mode 0700, so only this user can connect, as with a socket in
 * the session directory), else the session directory. Not `$XDG_RUNTIME_DIR`: logind removes it when
 * the user's last login ends, which would cut off a daemon started with `tsray start`. Not Linux
 * abstract sockets: they have no file permissions, so any local user could reach the node's socket.
 * The session directory (logs, spill, token) stays where it is.
 * @internal
 */
import { processAlive } from './node-support.js';
import { config } from '../config.js';
import { lstatSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { SocketPathTooLongError } from '../errors.js';

/** Bytes a unix socket path may have (Linux `sun_path` is 108 bytes with its terminating NUL). */
export const MAX_SOCKET_PATH_BYTES = 107;

const SOCKET_NAME = /^(\d+)-([0-9a-zA-Z]+)\.sock$/;
/** The ROUTER's socket or the stream socket beside it (`.wsock`, see {@link streamSocketPath}). */
const STALE_NAME = /^(\d+)-([0-9a-zA-Z]+)\.w?sock$/;

function fits(path: string): boolean {
  return Buffer.byteLength(path) <= MAX_SOCKET_PATH_BYTES;
}

function uid(): string {
  return String(process.getuid?.() ?? 'user');
}

/** `dir` exists (made if missing), is a real directory owned by this user and closed to others. */
function privateDir(dir: string): boolean {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const st = lstatSync(dir);
    const me = process.getuid?.();
    return st.isDirectory() && (me === undefined || st.uid === me) && (st.mode & 0o077) === 0;
  } catch {
    return false;
  }
}

/** Remove sockets of this directory left by processes that died without closing them (SIGKILL). */
function removeStale(dir: string): void {
  try {
    for (const name of readdirSync(dir)) {
      const m = STALE_NAME.exec(name);
      if (m && !processAlive(Number(m[1]))) rmSync(join(dir, name), { force: true });
    }
  } catch {
    /* unreadable: nothing to clean */
  }
}

/**
 * The `ipc://` address for a node socket of this process: `<dir>/<pid>-<id>.sock` in the first
 * directory that fits (see the module comment). Throws `SocketPathTooLongError` naming the path when
 * `$TSRAY_SOCKET_DIR` is set and too long, or when no directory fits.
 */
export function nodeSocketAddress(sessionDir: string, id: string): string {
  // The whole node id is in the name: a driver given this address proves its token to this node by id (auth.ts).
  const name = `${process.pid}-${id.replace(/[^0-9a-zA-Z]/g, '').slice(0, 32) || 'node'}.sock`;
  const chosen = config().socketDir;
  if (chosen) {
    const path = join(chosen, name);
    if (!fits(path)) throw new SocketPathTooLongError(path, 'TSRAY_SOCKET_DIR');
    mkdirSync(chosen, { recursive: true, mode: 0o700 });
    return `ipc://${path}`;
  }
  const shared = `/tmp/tsray-${uid()}`;
  if (privateDir(shared)) {
    removeStale(shared);
    return `ipc://${join(shared, name)}`;
  }
  const path = join(sessionDir, 'node.sock');
  if (fits(path)) return `ipc://${path}`;
  throw new SocketPathTooLongError(path, `${shared} (not a private directory of this user)`);
}

/**
 * The path of the node's unix stream socket for its workers (stream-server.ts), beside its
 * ROUTER's: `….sock` → `….wsock`; undefined when that path would not fit (the workers then use the ROUTER).
 */
export function streamSocketPath(ipcAddress: string): string | undefined {
  if (!ipcAddress.startsWith('ipc://') || !ipcAddress.endsWith('.sock')) return undefined;
  const path = `${ipcAddress.slice('ipc://'.length, -'.sock'.length)}.wsock`;
  return fits(path) ? path : undefined;
}

/** Remove the socket file of an `ipc://` address (the node closed it; libzmq may not have unlinked it yet). */
export function removeSocketFile(address: string): void {
  if (address.startsWith('ipc://') && !address.startsWith('ipc://@')) rmSync(address.slice('ipc://'.length), { force: true });
}

/**
 * The node id in a node's ipc address (`ipc://…/<pid>-<nodeId>.sock`), or undefined: a driver given an
 * explicit address names the node its registration proof is for without asking it first.
 */
export function nodeIdOfSocketAddress(address: string): string | undefined {
  if (!address.startsWith('ipc://')) return undefined;
  const m = SOCKET_NAME.exec(address.slice(address.lastIndexOf('/') + 1));
  return m && m[2] !== 'node' ? m[2] : undefined;
}
