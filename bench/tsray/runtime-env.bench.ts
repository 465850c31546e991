/**
 * Task start with a cached runtime environment vs no environment (issue: "install time of a cached
 * environment (second use) under 100 ms added to task start").
 *
 * A pip environment (a wheel built here, installed from a local --find-links dir: no index) is built
 * once. Then each round starts a fresh cluster (`init()`: a new node, a new agent, the disk cache
 * warm), runs a warm-up task on its own worker, then times, in alternating order, a Python task
 * without an environment and a Python task in the cached environment: both start a new Python worker, so the difference is what
 * the environment adds (resolve, agent acquire: lock-free cache hit, ref file; PYTHONPATH). Also
 * times the agent alone: acquire of the cached environment in a fresh agent (first use in a process)
 * and again (held), the whole node-side setup of the cached environment in a fresh node (what a task
 * waits before its worker is spawned), and Python's start with and without the env's site on PYTHONPATH.
 *
 * Run: npx tsx bench/tsray/runtime-env.bench.ts [rounds=7]
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { get, init, isMain, python, shutdown } from '@tsray/core';
import { canonicalJson, RuntimeEnvAgent, validateRuntimeEnv } from '@tsray/runtime-env';
// The node's side (internal to core): what a node does before it starts a worker in an environment.
import { NodeRuntimeEnvs } from '../../packages/core/dist/node/runtime-envs.js';

const PY = existsSync('.venv/bin/python') ? join(process.cwd(), '.venv/bin/python') : 'python3';

function buildWheel(dir: string): void {
  mkdirSync(dir, { recursive: true });
  execFileSync(PY, [
    '-c',
    `
import zipfile
d = "tsray_bench_pkg-1.0.dist-info"
with zipfile.ZipFile("${dir}/tsray_bench_pkg-1.0-py3-none-any.whl", "w") as z:
    z.writestr("tsray_bench_pkg/__init__.py", "VALUE = 1\\n")
    z.writestr(d + "/METADATA", "Metadata-Version: 2.1\\nName: tsray_bench_pkg\\nVersion: 1.0\\n")
    z.writestr(d + "/WHEEL", "Wheel-Version: 1.0\\nGenerator: bench\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n")
    z.writestr(d + "/RECORD", "")
`,
  ]);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

if (isMain(import.meta)) {
  const rounds = Number(process.argv[2] ?? 7);
  const base = mkdtempSync(join(tmpdir(), 'tsray-bench-rtenv-'));
  const wheels = join(base, 'wheels');
  buildWheel(wheels);
  const mod = join(base, 'py');
  mkdirSync(mod);
  writeFileSync(join(mod, 'tsray_bench_rtenv.py'), 'def value(m):\n    import importlib\n    return importlib.import_module(m).VALUE if m else 0\n');
  process.env['TSRAY_RUNTIME_ENV_DIR'] = join(base, 'cache');
  process.env['TSRAY_RUNTIME_ENV_PIP_ARGS'] = JSON.stringify(['--no-index', '--find-links', wheels]);
  process.env['PYTHONPATH'] = mod;
  const runtimeEnv = { pip: ['tsray_bench_pkg'] };
  const plain = python.remote<[string], number>('tsray_bench_rtenv:value');
  const inEnv = python.remote<[string], number>('tsray_bench_rtenv:value', { runtimeEnv });
  try {
    // Cold: the one real install.
    await init({ numCpus: 2, logToDriver: false, python: PY });
    let t = performance.now();
    await get(inEnv.remote('tsray_bench_pkg'));
    const coldMs = performance.now() - t;
    await shutdown();

    const none: number[] = [];
    const cached: number[] = [];
    for (let r = 0; r < rounds; r++) {
      await init({ numCpus: 2, logToDriver: false, python: PY });
      // Warm-up on its own worker (the node's one-time Python check runs here), so both measured
      // tasks below start a new worker in a warm node.
      await get(python.remote<[string], number>('tsray_bench_rtenv:value', { runtimeEnv: { envVars: { WARM: '1' } } }).remote(''));
      const order = r % 2 === 0 ? ['none', 'env'] : ['env', 'none'];
      for (const which of order) {
        t = performance.now();
        if (which === 'none') await get(plain.remote(''));
        else await get(inEnv.remote('tsray_bench_pkg'));
        (which === 'none' ? none : cached).push(performance.now() - t);
      }
      await shutdown();
    }

    // The agent alone on the warm cache: first acquire in a fresh agent (as a new node), 5 times.
    const spec = { pip: { packages: ['tsray_bench_pkg'], pipCheck: false } };
    const fresh: number[] = [];
    let installs = 0;
    for (let i = 0; i < 5; i++) {
      const a = new RuntimeEnvAgent({ rootDir: join(base, 'cache'), python: PY, pipArgs: ['--no-index', '--find-links', wheels] });
      t = performance.now();
      const e = await a.acquire(spec);
      fresh.push(performance.now() - t);
      installs += a.stats().installs.pip;
      e.release();
      await a.close();
    }
    // The whole node-side setup of a cached environment in a fresh node (parse, resolve, acquire):
    // the time a task waits before its worker is spawned, which a task without an environment does not.
    const json = canonicalJson(validateRuntimeEnv(runtimeEnv));
    const nodeSide: number[] = [];
    for (let i = 0; i < 5; i++) {
      const envs = new NodeRuntimeEnvs({ sessionDir: base, python: PY, logToDriver: false });
      t = performance.now();
      await new Promise<void>((resolve, reject) => {
        const ready = envs.request(json, 'bench-job', (entry, error) => (entry ? resolve() : reject(new Error(JSON.stringify(error)))));
        if (ready) resolve();
      });
      nodeSide.push(performance.now() - t);
      await envs.close();
    }
    // Python start with the environment's site on PYTHONPATH vs without (import of the worker module).
    const site = (await new RuntimeEnvAgent({ rootDir: join(base, 'cache'), python: PY }).acquire(spec)).pythonPath[0]!;
    const pyStart = (pythonPath: string) => {
      const xs: number[] = [];
      for (let i = 0; i < 7; i++) {
        const t0 = performance.now();
        execFileSync(PY, ['-c', 'import tsray.worker'], { env: { ...process.env, PYTHONPATH: pythonPath } });
        xs.push(performance.now() - t0);
      }
      return median(xs);
    };
    const pyPlain = pyStart(mod);
    const pyEnv = pyStart(`${site}:${mod}`);
    const agent = new RuntimeEnvAgent({ rootDir: join(base, 'cache'), python: PY, pipArgs: ['--no-index', '--find-links', wheels] });
    const first = await agent.acquire(spec);
    const again: number[] = [];
    for (let i = 0; i < 100; i++) {
      t = performance.now();
      (await agent.acquire(spec)).release();
      again.push(performance.now() - t);
    }
    first.release();
    await agent.close();

    const out = {
      system: 'tsray',
      metric: 'runtime_env_cached_task_start',
      rounds,
      installer: agent.installer,
      cold_install_first_task_ms: +coldMs.toFixed(1),
      first_task_no_env_ms_median: +median(none).toFixed(1),
      first_task_cached_env_ms_median: +median(cached).toFixed(1),
      added_ms_median: +(median(cached) - median(none)).toFixed(1),
      node_setup_cached_env_fresh_node_ms_median: +median(nodeSide).toFixed(2),
      python_start_ms_median_plain: +pyPlain.toFixed(1),
      python_start_ms_median_with_env_site: +pyEnv.toFixed(1),
      agent_acquire_cached_fresh_agent_ms_median: +median(fresh).toFixed(2),
      agent_installs_during_cached_acquires: installs,
      agent_acquire_cached_held_ms_median: +median(again).toFixed(3),
      samples_no_env_ms: none.map((x) => +x.toFixed(1)),
      samples_cached_env_ms: cached.map((x) => +x.toFixed(1)),
    };
    process.stdout.write(`${JSON.stringify(out)}\n`);
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
}
