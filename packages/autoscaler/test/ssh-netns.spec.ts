// Acceptance 3 of issue #19: the ssh provider against real openssh-server. Two network namespaces
// (the cluster tests' lab: veth pairs on a private bridge), each running sshd with a generated host
// key; the config lists their addresses (head in the first, the worker host in the second) with a
// generated user key. `tsray up` installs nothing by hand: the setup commands "install" tsray by
// linking this checkout's CLI into a bin directory on PATH (the namespaces share this filesystem) and
// point TMPDIR at the test's directory. The worker (min_workers: 1) joins with the token, and
// `tsray down` stops every tsray process. Needs root, iproute2 and sshd (.ci/run installs them); without
// them every test is skipped with the reason, printed.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNetnsLab, type NetnsLab } from '../../cluster/test/fixtures/netns.js';
import { CLI, clusterEnv, processesOf, reap, tempDir, tsray, until } from './fixtures/harness.js';
import { statusJson } from './fixtures/status.js';

const SSHD = '/usr/sbin/sshd';

describe('ssh provider: hosts in network namespaces running sshd', () => {
  let lab: NetnsLab | undefined;
  let skipReason: string | undefined;
  let tmp: ReturnType<typeof tempDir>;
  let env: Record<string, string>;
  let config = '';
  const sshds: ChildProcess[] = [];

  beforeAll(async () => {
    tmp = tempDir();
    env = clusterEnv(tmp.dir);
    if (!existsSync(SSHD)) {
      skipReason = `${SSHD} is missing (apt-get install openssh-server; .ci/run does)`;
    } else {
      const made = createNetnsLab(2);
      if (made.lab) lab = made.lab;
      else skipReason = made.reason;
    }
    if (!lab) {
      process.stderr.write(`[ssh-netns.spec] SKIPPED: ${skipReason}\n`);
      return;
    }
    const keys = join(tmp.dir, 'keys');
    mkdirSync(keys);
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-f', join(keys, 'host'), '-N', '']);
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-f', join(keys, 'id'), '-N', '']);
    execFileSync('cp', [join(keys, 'id.pub'), join(keys, 'authorized_keys')]);
    mkdirSync('/run/sshd', { recursive: true });
    for (const ns of lab.namespaces) {
      const cfg = join(keys, `sshd-${ns.name}`);
      writeFileSync(
        cfg,
        [
          `ListenAddress ${ns.ip}`,
          'Port 22',
          `HostKey ${join(keys, 'host')}`,
          `AuthorizedKeysFile ${join(keys, 'authorized_keys')}`,
          'PermitRootLogin prohibit-password',
          `PidFile ${cfg}.pid`,
          'StrictModes no',
          'UsePAM no',
          '',
        ].join('\n'),
      );
      // sshd gets a clean environment: only what the setup commands set reaches tsray.
      const d = spawn('ip', ['netns', 'exec', ns.name, SSHD, '-f', cfg, '-D', '-e'], {
        env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let log = '';
      d.stderr!.on('data', (b: Buffer) => (log += b.toString()));
      sshds.push(d);
      await until(() => log.includes('Server listening'), 20_000, `sshd in ${ns.name} (log: ${log})`);
    }
    const bin = join(tmp.dir, 'bin');
    config = join(tmp.dir, 'cluster.yaml');
    writeFileSync(
      config,
      `cluster_name: sshtest
max_workers: 1
idle_timeout_minutes: 10
provider:
  type: ssh
  head_ip: ${lab.namespaces[0]!.ip}
  worker_ips: [${lab.namespaces[1]!.ip}]
  connect_timeout_s: 5
auth:
  ssh_user: root
  ssh_private_key: ${join(keys, 'id')}
available_node_types:
  head: { resources: { CPU: 1 }, max_workers: 0 }
  worker: { resources: { CPU: 1, far: 1 }, min_workers: 1, max_workers: 1 }
head_node_type: head
setup_commands:
  - export TMPDIR=${tmp.dir} TSRAY_AUTOSCALER_INTERVAL_S=0.3
  - mkdir -p ${bin} && ln -sf ${CLI} ${bin}/tsray
  - export PATH=${bin}:$PATH
`,
    );
  }, 60_000);

  afterAll(async () => {
    try {
      if (config && lab) await tsray(['down', config], env);
      await reap(tmp.dir);
    } finally {
      for (const d of sshds) d.kill('SIGTERM');
      await Promise.all(sshds.map((d) => (d.exitCode === null && d.signalCode === null ? new Promise((r) => d.once('exit', r)) : undefined)));
      const left = lab?.cleanup() ?? [];
      tmp.cleanup();
      // biome-ignore lint/correctness/noUnsafeFinally: leftover namespaces must fail the test even when the body failed first
      if (left.length > 0) throw new Error(`network namespace lab left behind: ${left.join('; ')}`);
    }
  }, 60_000);

  it('tsray up starts the head over SSH, the worker joins with the token; tsray down stops them', async (ctx) => {
    if (!lab) ctx.skip(`ssh lab unavailable: ${skipReason}`);
    const [a, b] = lab!.namespaces as [NetnsLab['namespaces'][0], NetnsLab['namespaces'][0]];
    const up = await tsray(['up', config], env);
    expect(up.code, up.stderr).toBe(0);
    expect(up.stdout).toContain(`Checking 2 host(s) over SSH`);
    expect(up.stdout).toMatch(new RegExp(`Cluster sshtest is up\\. Head: ${a.ip.replace(/\./g, '\\.')}:6380`));
    const s = await until(
      async () => {
        const st = await statusJson(env);
        return st.nodes.filter((n) => n.alive).length === 2 && st;
      },
      90_000,
      'the worker over SSH to join',
    );
    const worker = s.nodes.find((n) => n.alive && !n.isHead)!;
    expect(worker.labels).toMatchObject({ 'tsray-cluster': 'sshtest', 'tsray-node-type': 'worker', 'tsray-node-kind': 'worker' });
    expect((worker as unknown as { address: string }).address).toContain(b.ip);
    expect(s.autoscaler?.launchedTotal).toBe(1);
    expect(s.autoscaler?.failures).toEqual([]);
    expect(processesOf(tmp.dir).length).toBeGreaterThan(0);

    const down = await tsray(['down', config], env);
    expect(down.code, down.stderr).toBe(0);
    expect(down.stdout).toMatch(/Cluster sshtest is down: 2 tsray process\(es\) stopped on 2 host\(s\)\./);
    config = '';
    await until(() => processesOf(tmp.dir).length === 0, 30_000, 'every tsray process to exit');
  });
});
