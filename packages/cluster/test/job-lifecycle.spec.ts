/**
 * What a job owns ends with it, on a real head + node (separate processes), with drivers as child
 * processes attached through `init({address: 'auto'})`:
 * - placement groups of a driver that ends (shutdown, process.exit, SIGKILL) are removed on every
 *   node and their resources come back; detached groups stay (Ray removes a job's non-detached groups);
 * - a second job never runs on the first job's workers: an edited module is imported again;
 * - `runtimeEnv.workingDir` is packed per job: a second job sees the directory's new content.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, init, listPlacementGroups, shutdown } from '@tsray/core';
import { TestCluster, until } from './fixtures/cluster-harness.js';
import { onHead, onNode } from './fixtures/job-fns.js';

const JOB_DRIVER = fileURLToPath(new URL('./fixtures/job-driver.ts', import.meta.url));
const REPO_NODE_MODULES = fileURLToPath(new URL('../../../node_modules', import.meta.url));

interface Driver {
  out: Promise<string>;
  firstLine: Promise<string>;
  exited: Promise<number | null>;
  kill: () => void;
  /** Write a line to its stdin. */
  say: (line: string) => void;
}

/** Start a driver (`node --import tsx script args…`) in `cwd`; its stdout is collected. */
function startDriver(c: TestCluster, script: string, args: string[], cwd?: string): Driver {
  const p = spawn(process.execPath, ['--import', 'tsx', script, ...args], { env: c.env(), cwd: cwd ?? process.cwd(), stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  let lineSeen: (l: string) => void = () => undefined;
  const firstLine = new Promise<string>((r) => (lineSeen = r));
  p.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    const nl = out.indexOf('\n');
    if (nl !== -1) lineSeen(out.slice(0, nl));
  });
  p.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((r) => p.once('exit', (code) => r(code)));
  return {
    out: exited.then((code) => {
      if (code !== 0 && code !== null) throw new Error(`driver exited with ${code}: ${err.slice(-3000)}`);
      return out;
    }),
    firstLine: Promise.race([firstLine, exited.then((code) => Promise.reject(new Error(`driver exited with ${code} before printing: ${err.slice(-3000)}`)))]),
    exited,
    kill: () => p.kill('SIGKILL'),
    say: (line) => p.stdin.write(`${line}\n`),
  };
}

/** The rows of a placement group in the state API (one per group; older releases listed one per node). */
async function pgRows(id: string) {
  return (await listPlacementGroups()).filter((p) => p.placementGroupId === id);
}

describe('a job owns its placement groups, workers and packages (real head + node)', () => {
  const c = new TestCluster();
  const work = mkdtempSync(join(c.tmp, 'projects-'));

  beforeAll(async () => {
    await c.startHead({ numCpus: 1, resources: { jl_head: 1 } });
    await c.addNode({ numCpus: 1, resources: { jl_node: 1, jl_slot: 3 } });
    c.attachHere();
    await init({ address: 'auto', namespace: 'job-lifecycle-test' });
    // A project outside the repo (ESM, resolving @tsray/* through the repo's node_modules).
    symlinkSync(REPO_NODE_MODULES, join(work, 'node_modules'));
    writeFileSync(join(work, 'package.json'), JSON.stringify({ type: 'module' }));
  }, 60_000);

  afterAll(async () => {
    await shutdown();
    c.detachHere();
    await c.stop();
  }, 30_000);

  for (const mode of ['shutdown', 'exit', 'hang'] as const) {
    it(`removes the placement groups of a driver that ends by ${mode === 'hang' ? 'SIGKILL' : mode}; detached ones stay`, async () => {
      const d = startDriver(c, JOB_DRIVER, [mode]);
      const ids = JSON.parse(await d.firstLine) as { pg: string; detached: string };
      // While the driver lives, its group holds the only CPU of each node.
      expect((await pgRows(ids.pg)).every((r) => r.state === 'CREATED')).toBe(true);
      if (mode === 'hang') d.kill();
      else d.say('end');
      await d.exited;
      await until(async () => (await pgRows(ids.pg)).every((r) => r.state === 'REMOVED'), 30_000, `group ${ids.pg} of the ended job to be removed`);
      expect((await pgRows(ids.detached)).map((r) => r.state)).toContain('CREATED');
      // The CPUs are back on both nodes: a task needing a whole CPU runs on each.
      expect(await get(onHead.remote())).toBeGreaterThan(0);
      expect(await get(onNode.remote())).toBeGreaterThan(0);
    }, 90_000);
  }

  it('runs a second job on new workers: an edited module is imported again (a job reuses its own workers)', async () => {
    const dir = join(work, 'edited');
    mkdirSync(dir, { recursive: true });
    const main = join(dir, 'main.ts');
    const source = (code: string) => `
import { get, init, isMain, remote, shutdown } from '@tsray/core';
export const whoami = remote(() => ({ code: '${code}', pid: process.pid }), { resources: { jl_head: 0.1 } });
if (isMain(import.meta)) {
  await init({ address: 'auto' });
  const a = await get(whoami.remote());
  const b = await get(whoami.remote());
  console.log(JSON.stringify([a, b]));
  await shutdown();
}
`;
    writeFileSync(main, source('v1'));
    const [a1, b1] = JSON.parse(await startDriver(c, main, [], dir).out) as { code: string; pid: number }[];
    writeFileSync(main, source('v2'));
    const [a2, b2] = JSON.parse(await startDriver(c, main, [], dir).out) as { code: string; pid: number }[];
    expect([a1!.code, b1!.code, a2!.code, b2!.code]).toEqual(['v1', 'v1', 'v2', 'v2']);
    expect(b1!.pid).toBe(a1!.pid); // within a job, the idle worker is reused
    expect(a2!.pid).not.toBe(a1!.pid); // a new job never gets the old job's worker
  }, 120_000);

  it('packs runtimeEnv.workingDir again for each job: the second job reads the new content', async () => {
    const dir = join(work, 'wd-project');
    mkdirSync(join(dir, 'wd'), { recursive: true });
    const main = join(dir, 'main.ts');
    writeFileSync(
      main,
      `
import { readFileSync } from 'node:fs';
import { get, init, isMain, remote, shutdown } from '@tsray/core';
export const readData = remote(() => readFileSync('data.txt', 'utf8'), { resources: { jl_head: 0.1 } });
if (isMain(import.meta)) {
  await init({ address: 'auto', runtimeEnv: { workingDir: './wd' } });
  console.log(JSON.stringify(await get(readData.remote())));
  await shutdown();
}
`,
    );
    writeFileSync(join(dir, 'wd', 'data.txt'), 'v1');
    const first = JSON.parse(await startDriver(c, main, [], dir).out) as string;
    writeFileSync(join(dir, 'wd', 'data.txt'), 'v2');
    const second = JSON.parse(await startDriver(c, main, [], dir).out) as string;
    expect([first, second]).toEqual(['v1', 'v2']);
  }, 120_000);

  afterAll(() => rmSync(work, { recursive: true, force: true }));
});
