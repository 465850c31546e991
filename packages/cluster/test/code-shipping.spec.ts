/**
 * Code shipping between machines that share no filesystem (issue 16, acceptance 0). A driver project
 * in a temp folder (own package.json, an npm dependency from a tarball inside it, a Python module, a
 * .gitignore) runs its TS task, actor, Python task and npm-using task on a node daemon that sits in
 * its own network namespace AND its own mount namespace, where the project folder is hidden under an
 * empty tmpfs: the head packs the folder by content hash, publishes it in the GCS, the node fetches
 * it (sha256 checked), unpacks it, installs the dependencies from the lockfile and imports the copy.
 * A second node in a network namespace that does see the folder runs it in place (nothing fetched).
 * Changing the code and running again ships the new code under a new hash. The first run's extra
 * time for shipping is printed (no threshold). Needs root (netns, mount namespaces, tmpfs) and
 * iproute2 and util-linux; without them every test is skipped with the reason, printed.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { TestCluster, type DaemonProc } from './fixtures/cluster-harness.js';
import { createNetnsLab, type NetnsLab } from './fixtures/netns.js';
import { writeShipProject } from './fixtures/ship-project.js';
import { tempDir } from './fixtures/util.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));

interface Where {
  version: string;
  node: string;
  file: string;
  rootVisible: boolean;
  ignoredShipped: boolean;
}

interface DriverOut {
  first: Where;
  /** whereAmI as a nested task of a task on the same node. */
  inner: Where;
  firstMs: number;
  actorCalls: string[];
  pad: string;
  py: string;
}

/** The environment without npm's per-run variables (npx/vitest set a workspace prefix npm would obey). */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k) && !k.startsWith('TSRAY_')) env[k] = v;
  return { ...env, ...extra };
}

/** Why a process could not get its own mount namespace with a tmpfs over `dir` (undefined: it can). */
function mountNamespaceProblem(dir: string): string | undefined {
  try {
    execFileSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', 'mount -t tmpfs -o size=1m tsray-probe "$0"', dir], { stdio: 'pipe' });
    return undefined;
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: Buffer };
    if (err.code === 'ENOENT') return 'the `unshare` command (util-linux) is not installed';
    return `\`unshare --mount\` with a tmpfs failed (needs root or CAP_SYS_ADMIN): ${(err.stderr?.toString() ?? '').trim() || err.message}`;
  }
}

/** The pkg_<hash> folder a shipped module was imported from. */
function packageOf(file: string): string {
  return /\/pkg\/(pkg_[0-9a-f]+)\//.exec(file)?.[1] ?? '';
}

describe('code shipping to a node that cannot see the driver project (own mount and network namespace)', () => {
  let lab: NetnsLab | undefined;
  let skipReason: string | undefined;
  let c: TestCluster | undefined;
  const project = tempDir('tsray-ship-project-');
  const hidden: { d?: DaemonProc; resources: string } = { resources: '' };
  const shared: { d?: DaemonProc; resources: string } = { resources: '' };
  const runs: DriverOut[] = [];

  const needLab = (ctx: TestContext): NetnsLab => {
    if (!lab) ctx.skip(`namespaces unavailable: ${skipReason}`);
    return lab!;
  };

  /** Run the project's driver (a separate process attached to the head's node); tasks go to the node holding `resource`. */
  const runDriver = (resource: string): Promise<DriverOut> =>
    new Promise((resolve, reject) => {
      execFile(
        process.execPath,
        ['--import', 'tsx', 'driver.ts', project.dir, resource],
        { cwd: project.dir, env: cleanEnv({ TMPDIR: c!.tmp }), timeout: 240_000 },
        (err, stdout, stderr) => {
          if (err) reject(new Error(`driver failed: ${err.message}\n${stderr}`));
          else resolve(JSON.parse(stdout.trim().split('\n').pop()!) as DriverOut);
        },
      );
    });

  beforeAll(async () => {
    const noMountNs = mountNamespaceProblem(project.dir);
    const made = noMountNs ? { lab: undefined, reason: noMountNs } : createNetnsLab(2);
    if (!made.lab) {
      skipReason = made.reason;
      process.stderr.write(`[code-shipping.spec] SKIPPED: could not create the namespaces: ${made.reason}\n`);
      return;
    }
    lab = made.lab;
    // The project: its npm dependency packed into vendor/ and installed from there (no registry).
    writeShipProject(project.dir);
    writeFileSync(join(project.dir, 'notes.local'), 'ignored by .gitignore: never shipped');
    mkdirSync(join(project.dir, 'vendor'));
    const npmEnv = cleanEnv({ npm_config_update_notifier: 'false' });
    execFileSync('npm', ['pack', './pad-lite', '--pack-destination', 'vendor', '--silent'], { cwd: project.dir, env: npmEnv, stdio: 'pipe' });
    execFileSync('npm', ['install', '--offline', '--no-audit', '--no-fund', '--ignore-scripts', '--silent'], { cwd: project.dir, env: npmEnv, stdio: 'pipe' });
    // The driver machine's tsray install (a user's `npm install @tsray/core tsx`): links to this checkout.
    mkdirSync(join(project.dir, 'node_modules', '@tsray'), { recursive: true });
    symlinkSync(join(REPO, 'packages', 'core'), join(project.dir, 'node_modules', '@tsray', 'core'));
    symlinkSync(join(REPO, 'node_modules', 'tsx'), join(project.dir, 'node_modules', 'tsx'));

    const [nsA, nsB] = lab.namespaces as [NetnsLab['namespaces'][0], NetnsLab['namespaces'][0]];
    c = new TestCluster();
    hidden.resources = join(c.tmp, 'resources-hidden');
    shared.resources = join(c.tmp, 'resources-shared');
    const python = join(REPO, '.venv', 'bin', 'python');
    await c.startHead({ numCpus: 1, host: lab.bridgeIp });
    [hidden.d, shared.d] = await Promise.all([
      c.addNode({
        numCpus: 2,
        resources: { hidden: 100 },
        host: nsA.ip,
        // Its own mount namespace (private propagation: nothing leaks back), the project under an empty tmpfs.
        wrap: [
          ...['ip', 'netns', 'exec', nsA.name, 'unshare', '--mount', '--propagation', 'private'],
          ...['sh', '-c', 'mount -t tmpfs -o size=1m tsray-hidden "$0" && exec "$@"', project.dir],
        ],
        env: { TSRAY_RUNTIME_ENV_DIR: hidden.resources, TSRAY_PYTHON: python },
      }),
      c.addNode({
        numCpus: 2,
        resources: { shared: 100 },
        host: nsB.ip,
        wrap: ['ip', 'netns', 'exec', nsB.name],
        env: { TSRAY_RUNTIME_ENV_DIR: shared.resources, TSRAY_PYTHON: python },
      }),
    ]);
  }, 120_000);

  afterAll(async () => {
    try {
      await c?.stop();
    } finally {
      project.cleanup();
      const left = lab?.cleanup() ?? [];
      // biome-ignore lint/correctness/noUnsafeFinally: leftover namespaces must fail the test even when the body failed first
      if (left.length > 0) throw new Error(`network namespace lab left behind: ${left.join('; ')}`);
    }
  }, 60_000);

  it('the hidden node runs the TS task, the actor, the Python task and the npm-using task from a shipped copy', async (ctx) => {
    needLab(ctx);
    const r = await runDriver('hidden');
    runs.push(r);
    expect(r.first.node).toBe(hidden.d!.ready.nodeId);
    expect(r.first.rootVisible).toBe(false); // the node really cannot see the driver's folder
    expect(r.first.file.startsWith(join(hidden.resources, 'pkg', 'pkg_'))).toBe(true);
    expect(r.first.file.endsWith('/src/tasks.ts')).toBe(true);
    expect(r.first.ignoredShipped).toBe(false); // .gitignore honoured
    expect(existsSync(join(r.first.file, '..', '..', 'pad-lite'))).toBe(false); // (checked from here: the node's copy is on the shared disk)
    expect([r.first.version, r.actorCalls, r.pad, r.py]).toEqual(['v1', ['v1:1', 'v1:3'], '******ab', 'py v1 x']);
    expect([r.inner.node, r.inner.version, r.inner.file]).toEqual([hidden.d!.ready.nodeId, 'v1', r.first.file]);
  }, 240_000);

  it('a second run of the same code reuses everything; the first run paid the shipping (printed)', async (ctx) => {
    needLab(ctx);
    const again = await runDriver('hidden');
    runs.push(again);
    expect(packageOf(again.first.file)).toBe(packageOf(runs[0]!.first.file));
    expect([again.first.version, again.actorCalls, again.pad, again.py]).toEqual(['v1', ['v1:1', 'v1:3'], '******ab', 'py v1 x']);
    const headLog = readFileSync(c!.head.errLog, 'utf8');
    const packed = headLog
      .split('\n')
      .filter((l) => l.includes('job code packed and published'))
      .map((l) => JSON.parse(l) as { bytes: number; ms: number });
    expect(packed).toHaveLength(1); // once for both runs: unchanged content is not packed again
    process.stdout.write(
      `[code-shipping] first task, first run (code shipped: packed ${packed[0]!.bytes} bytes + published in ${packed[0]!.ms} ms on the head; fetched, unpacked, npm ci on the node): ${runs[0]!.firstMs} ms; ` +
        `second run (cached): ${again.firstMs} ms; extra time for shipping: ${runs[0]!.firstMs - again.firstMs} ms\n`,
    );
  }, 240_000);

  it('a node that sees the same folder runs it in place: nothing fetched or unpacked there', async (ctx) => {
    needLab(ctx);
    const r = await runDriver('shared');
    expect(r.first.node).toBe(shared.d!.ready.nodeId);
    expect(r.first.rootVisible).toBe(true);
    expect(r.first.file).toBe(join(project.dir, 'src', 'tasks.ts'));
    expect([r.first.version, r.actorCalls, r.pad, r.py]).toEqual(['v1', ['v1:1', 'v1:3'], '******ab', 'py v1 x']);
    const fetched = existsSync(join(shared.resources, 'pkg')) ? readdirSync(join(shared.resources, 'pkg')) : [];
    expect(fetched).toEqual([]);
  }, 240_000);

  it('changed code runs as the new code on the hidden node, under a new package hash', async (ctx) => {
    needLab(ctx);
    writeShipProject(project.dir, 'v2');
    const r = await runDriver('hidden');
    expect([r.first.version, r.actorCalls, r.pad, r.py]).toEqual(['v2', ['v2:1', 'v2:3'], '******ab', 'py v2 x']);
    expect(packageOf(r.first.file)).toMatch(/^pkg_/);
    expect(packageOf(r.first.file)).not.toBe(packageOf(runs[0]!.first.file));
  }, 240_000);
});
