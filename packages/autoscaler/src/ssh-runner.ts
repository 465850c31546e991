/**
 * Commands on a host over SSH (the `ssh` client, as Ray's SSHCommandRunner): the script goes on
 * stdin to `bash -s`, so nothing of it (the token included) appears in a command line; batch mode, a
 * connect timeout, and the config's user, key and port.
 * @module
 */
import { spawn } from 'node:child_process';
import { HostUnreachableError } from './errors.js';

/** How to reach the hosts. */
export interface SshTarget {
  user: string;
  /** Private key file. */
  key: string;
  port: number;
  connectTimeoutS: number;
}

/** What a remote script did. */
export interface SshResult {
  code: number;
  out: string;
  err: string;
}

/** ssh's exit code when it could not connect or authenticate. */
const SSH_FAILED = 255;

/** The ssh arguments for `host` (no command). */
export function sshArgs(t: SshTarget, host: string): string[] {
  return [
    '-i',
    t.key,
    '-p',
    String(t.port),
    '-o',
    'BatchMode=yes',
    '-o',
    'StrictHostKeyChecking=no',
    '-o',
    'UserKnownHostsFile=/dev/null',
    '-o',
    'LogLevel=ERROR',
    '-o',
    `ConnectTimeout=${t.connectTimeoutS}`,
    `${t.user}@${host}`,
  ];
}

/** Run `script` with bash on `host`; resolves to its exit code and output. */
export function sshRun(t: SshTarget, host: string, script: string): Promise<SshResult> {
  return new Promise((done) => {
    const child = spawn('ssh', [...sshArgs(t, host), 'bash', '-s'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', (e) => done({ code: 127, out, err: err + e.message }));
    child.on('close', (code, signal) => done({ code: code ?? (signal ? 1 : 0), out, err }));
    child.stdin.on('error', () => undefined);
    child.stdin.end(script);
  });
}

/** Check that every host answers over SSH. @throws HostUnreachableError naming the first host that does not. */
export async function checkReachable(t: SshTarget, hosts: string[]): Promise<void> {
  const results = await Promise.all(hosts.map(async (h) => ({ h, r: await sshRun(t, h, 'true') })));
  for (const { h, r } of results) {
    if (r.code !== 0) {
      const why = r.code === SSH_FAILED ? r.err.trim() || 'ssh could not connect' : `a test command exited with code ${r.code}: ${r.err.trim()}`;
      throw new HostUnreachableError(h, `${why} (ssh ${t.user}@${h} -p ${t.port} -i ${t.key})`);
    }
  }
}
