/**
 * The README's "A cluster of several machines" steps, run as written: the head and a node in
 * different network namespaces (two "machines" on a bridge), each with its own TMPDIR. The commands
 * are taken from the README's bash block (only the head's address, the token file and `npx tsray`
 * are substituted), so the README and this test cannot drift. Also: a node that would advertise
 * loopback to that head is refused, and a task sent to a node whose advertised address cannot be
 * reached fails naming the node and address instead of hanging. Needs root (or CAP_NET_ADMIN) and
 * iproute2; without them every test is skipped with the reason, printed.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { CLI, tsray } from './fixtures/cli.js';
import { createNetnsLab, type LabNamespace, type NetnsLab } from './fixtures/netns.js';
import { alive, tempDir, until } from './fixtures/util.js';

const README = fileURLToPath(new URL('../../../README.md', import.meta.url));
const DRIVER = fileURLToPath(new URL('./fixtures/readme-driver.ts', import.meta.url));
const REPO = fileURLToPath(new URL('../../../', import.meta.url));
/** The address the README uses for the head machine. */
const README_HEAD_IP = '10.0.0.1';

/** The README's multi-machine bash block: its command lines (comments dropped). */
function readmeClusterCommands(text: string): { head: string; node: string; status: string } {
  const section = text.slice(text.indexOf('### A cluster of several machines'));
  const block = /```bash\n([\s\S]*?)```/.exec(section)?.[1] ?? '';
  const lines = block
    .split('\n')
    .map((l) => l.replace(/\s+#.*$/, '').trim())
    .filter(Boolean);
  const find = (re: RegExp, what: string): string => {
    const l = lines.find((x) => re.test(x));
    if (!l) throw new Error(`the README's multi-machine bash block has no ${what} line`);
    return l;
  };
  return {
    head: find(/tsray start --head\b/, 'tsray start --head'),
    node: find(/tsray start --address\b/, 'tsray start --address'),
    status: find(/tsray status --address\b/, 'tsray status --address'),
  };
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run a README line in `ns` with its own TMPDIR: `npx tsray` → the built CLI, the README's head address and `./token` substituted. */
function runInNs(
  ns: LabNamespace,
  line: string,
  machineDir: string,
  sub: { headIp: string; tokenFile: string },
  env: Record<string, string> = {},
): Promise<Run> {
  const cmd = line.replaceAll('npx tsray', `${process.execPath} ${CLI}`).replaceAll(README_HEAD_IP, sub.headIp).replaceAll('./token', sub.tokenFile);
  const base: Record<string, string | undefined> = { ...process.env };
  for (const k of Object.keys(base)) if (k.startsWith('TSRAY_')) delete base[k];
  return new Promise((resolve) => {
    execFile(
      'ip',
      ['netns', 'exec', ns.name, 'bash', '-c', cmd],
      { env: { ...base, TMPDIR: machineDir, ...env }, cwd: REPO, timeout: 90_000 },
      (err, stdout, stderr) => {
        resolve({ code: err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0, stdout, stderr });
      },
    );
  });
}

describe("the README's multi-machine steps, head and node in different network namespaces", () => {
  let lab: NetnsLab | undefined;
  let skipReason: string | undefined;
  const machines: { dir: string; cleanup: () => void }[] = [];
  let headIp = '';
  let headOut: Run | undefined;
  const cmds = readmeClusterCommands(readFileSync(README, 'utf8'));

  const needLab = (ctx: TestContext): NetnsLab => {
    if (!lab) ctx.skip(`network namespaces unavailable: ${skipReason}`);
    return lab!;
  };
  const machine = (i: number) => machines[i]!.dir;
  const tokenOn = (i: number) => join(machine(i), 'token');
  const driver = (resource: string, retries: number, withActor = '') =>
    runInNs(lab!.namespaces[0]!, `${process.execPath} --import tsx ${DRIVER} ${resource} ${retries} ${withActor}`, machine(0), { headIp, tokenFile: '' });

  beforeAll(async () => {
    const made = createNetnsLab(3);
    if (!made.lab) {
      skipReason = made.reason;
      process.stderr.write(`[netns-readme.spec] SKIPPED: could not create network namespaces: ${made.reason}\n`);
      return;
    }
    lab = made.lab;
    for (let i = 0; i < 3; i++) machines.push(tempDir('tsray-machine-'));
    headIp = lab.namespaces[0]!.ip;
    // A short peer handshake limit for the unreachable-node test (not part of the README's command).
    headOut = await runInNs(lab.namespaces[0]!, cmds.head, machine(0), { headIp, tokenFile: '' }, { TSRAY_PEER_CONNECT_TIMEOUT_MS: '3000' });
  }, 60_000);

  afterAll(async () => {
    try {
      for (const m of machines) {
        const pids = livePids(m.dir);
        await tsray(['stop', '--force'], { TMPDIR: m.dir });
        for (const p of pids) await until(() => !alive(p), 10_000, `daemon ${p} to exit`);
      }
    } finally {
      for (const m of machines) m.cleanup();
      const left = lab?.cleanup() ?? [];
      // biome-ignore lint/correctness/noUnsafeFinally: leftover namespaces must fail the test even when the body failed first
      if (left.length > 0) throw new Error(`network namespace lab left behind: ${left.join('; ')}`);
    }
  }, 60_000);

  it('the head prints a join command with its reachable address and the token file; the README node command joins from the other namespace; status by GCS address; a task runs on the node', async (ctx) => {
    const l = needLab(ctx);
    expect(headOut!.code, headOut!.stderr).toBe(0);
    const join = /^To add a node: tsray start --address (\S+) --token-file (\S+)$/m.exec(headOut!.stdout);
    expect(join, headOut!.stdout).not.toBeNull();
    expect(join![1]).toBe(`${headIp}:6380`);
    expect(headOut!.stdout).toContain(`(on another machine: copy ${join![2]} there first, or set TSRAY_TOKEN to its content)`);
    // "Copy the token file to the other machine."
    copyFileSync(join![2]!, tokenOn(1));
    const node = await runInNs(l.namespaces[1]!, cmds.node, machine(1), { headIp, tokenFile: tokenOn(1) });
    expect(node.code, node.stderr).toBe(0);
    const nodeLine = /^tsray node started\. Node ID: (\w+) {2}Address: tcp:\/\/([\d.]+):\d+ {2}Head: (\S+)$/m.exec(node.stdout);
    expect(nodeLine, node.stdout).not.toBeNull();
    expect([nodeLine![2], nodeLine![3]]).toEqual([l.namespaces[1]!.ip, `${headIp}:6380`]);

    const status = await runInNs(l.namespaces[1]!, cmds.status, machine(1), { headIp, tokenFile: tokenOn(1) });
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain('Nodes: 2 alive, 0 dead');
    expect(status.stdout).toContain(`tcp://${l.namespaces[1]!.ip}:`);

    const ran = await driver('spot', 0);
    expect(ran.code, ran.stderr).toBe(0);
    expect(JSON.parse(ran.stdout.trim().split('\n').pop()!)).toEqual({ task: { ok: [nodeLine![1], [l.namespaces[1]!.ip]] } });
  }, 120_000);

  it('a node that would advertise loopback to that head is refused with the reason (exit 1, nothing started)', async (ctx) => {
    const l = needLab(ctx);
    copyFileSync(tokenOn(1), tokenOn(2));
    const r = await runInNs(l.namespaces[2]!, `${cmds.node} --host 127.0.0.1`, machine(2), { headIp, tokenFile: tokenOn(2) });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `tsray: this node would advertise 127.0.0.1 (loopback) to the head at ${headIp}:6380, which is not on loopback: the head and the other nodes could not reach it, so work sent to it would never arrive. Leave out --host to let tsray use the address this machine reaches the head on, or pass --host <this machine's address> (or --node-ip-address)\n`,
    );
    expect(livePids(machine(2))).toEqual([]);
  }, 60_000);

  it('a task and an actor sent to a node whose advertised address cannot be reached fail naming the node and address, instead of hanging', async (ctx) => {
    const l = needLab(ctx);
    // Node 2 binds its own address but advertises one nobody has on the bridge's subnet.
    const bogus = l.namespaces[2]!.ip.replace(/\.\d+$/, '.200');
    const r = await runInNs(
      l.namespaces[2]!,
      `${cmds.node.replace(`'{"spot": 1}'`, `'{"lost": 1}'`)} --host ${l.namespaces[2]!.ip} --node-ip-address ${bogus}`,
      machine(2),
      { headIp, tokenFile: tokenOn(2) },
    );
    expect(r.code, r.stderr).toBe(0);
    const nodeId = /Node ID: (\w+)/.exec(r.stdout)![1]!;
    const ran = await driver('lost', 0, 'actor');
    expect(ran.code, ran.stderr).toBe(0);
    type R = { error?: { name: string; message: string } };
    const out = JSON.parse(ran.stdout.trim().split('\n').pop()!) as { task: R; actor: R };
    const why = new RegExp(`node ${nodeId} is unreachable at tcp://${bogus.replaceAll('.', '\\.')}:\\d+: no answer to a connection within 3 s`);
    expect(out.task.error?.name).toBe('NodeDiedError');
    expect(out.task.error?.message).toMatch(why);
    expect(out.actor.error?.name).toBe('ActorDiedError');
    expect(out.actor.error?.message).toMatch(why);
  }, 120_000);
});

/** Live pids of the daemons a machine's sessions started (from their pid files). */
function livePids(machineDir: string): number[] {
  const ls = (dir: string): string[] => {
    try {
      return readdirSync(dir);
    } catch {
      return [];
    }
  };
  const root = join(machineDir, `tsray-${process.getuid?.()}`);
  const sessions = ls(root).filter((s) => s.startsWith('session-'));
  const pids = sessions.flatMap((s) =>
    ls(join(root, s))
      .filter((f) => f.endsWith('.pid'))
      .map((f) => Number(readFileSync(join(root, s, f), 'utf8').trim())),
  );
  return pids.filter((p) => alive(p));
}
