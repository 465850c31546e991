import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ActorDiedError, get, init, python, remote, RuntimeEnvSetupError, RuntimeEnvValidationError, shutdown } from '@tsray/core';
import { runtimeEnvStats } from '@tsray/core/internal';
import { buildNpmTarball, buildWheel, PYTHON, tempDir } from './fixtures/rtenv-build.js';
import { cwdAndFile, envOf, nestedEnvOf, pidOf, RemoteEnvReader, useNpm } from './fixtures/rtenv.js';

let base: string;
let wheels: string;
let tgz: string;
const saved: Record<string, string | undefined> = {};

function setEnv(name: string, value: string): void {
  saved[name] = process.env[name];
  process.env[name] = value;
}

beforeAll(async () => {
  base = tempDir('core');
  wheels = join(base, 'wheels');
  buildWheel(wheels, 'tsray_rt_a', '1.0', 'VALUE = "a-1.0"');
  buildWheel(wheels, 'tsray_rt_b', '2.0', 'VALUE = "b-2.0"');
  tgz = buildNpmTarball(join(base, 'npm'), 'tsray-rt-npm', '1.0.0', 'export const shout = (s) => s.toUpperCase() + "!";\n');
  // Hermetic: the node's agent caches under the temp dir and installs from the wheels built above.
  setEnv('TSRAY_RUNTIME_ENV_DIR', join(base, 'cache'));
  setEnv('TSRAY_RUNTIME_ENV_PIP_ARGS', JSON.stringify(['--no-index', '--find-links', wheels]));
  setEnv('PYTHONPATH', fileURLToPath(new URL('./fixtures/py', import.meta.url)));
  await init({ numCpus: 4, python: PYTHON, logToDriver: false, runtimeEnv: { envVars: { JOB_VAR: 'job', SHARED: 'job' } } });
});

afterAll(async () => {
  await shutdown();
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  rmSync(base, { recursive: true, force: true });
});

describe('runtime environments', () => {
  it('runs a Python task with a pip environment (job envVars merged in)', async () => {
    const f = python.remote<[string], string>('tsray_rtenv_fixtures:import_value', { runtimeEnv: { pip: ['tsray_rt_a==1.0'] } });
    expect(await get(f.remote('tsray_rt_a'))).toBe('a-1.0');
    const env = python.remote<[string], string | null>('tsray_rtenv_fixtures:env', { runtimeEnv: { pip: ['tsray_rt_a==1.0'] } });
    expect(await get(env.remote('JOB_VAR'))).toBe('job');
    // Without the env the package is not there.
    await expect(get(python.remote<[string], string>('tsray_rtenv_fixtures:import_value').remote('tsray_rt_a'))).rejects.toThrow(
      /No module named 'tsray_rt_a'/,
    );
    expect(runtimeEnvStats()!.installs.pip).toBe(1);
  });

  it('merges envVars key by key: job, then task (task wins); nested tasks inherit', async () => {
    expect(await get(envOf.remote('SHARED'))).toBe('job');
    const t = envOf.options({ runtimeEnv: { envVars: { SHARED: 'task', TASK_VAR: 't' } } });
    expect(await get([t.remote('SHARED'), t.remote('JOB_VAR'), t.remote('TASK_VAR')])).toEqual(['task', 'job', 't']);
    expect(await get(nestedEnvOf.options({ runtimeEnv: { envVars: { TASK_VAR: 'outer' } } }).remote('TASK_VAR'))).toBe('outer');
    const a = RemoteEnvReader.options({ runtimeEnv: { envVars: { ACTOR_VAR: 'actor' } } }).remote();
    expect(await get([a.read.remote('ACTOR_VAR'), a.read.remote('JOB_VAR')])).toEqual(['actor', 'job']);
  });

  it("ships a workingDir: the worker's cwd and Python import root", async () => {
    const wd = join(base, 'wd');
    mkdirSync(join(wd, 'sub'), { recursive: true });
    writeFileSync(join(wd, 'sub', 'data.txt'), 'from the working dir');
    writeFileSync(join(wd, 'wd_mod.py'), 'VALUE = "wd module"\n');
    writeFileSync(join(wd, 'big.log'), 'left out');
    const runtimeEnv = { workingDir: wd, excludes: ['*.log'] };
    const r = await get(cwdAndFile.options({ runtimeEnv }).remote('sub/data.txt'));
    expect(r.text).toBe('from the working dir');
    expect(r.cwd).not.toBe(wd); // an unpacked copy on the node
    const py = python.remote<[string], string>('tsray_rtenv_fixtures:import_value', { runtimeEnv });
    expect(await get(py.remote('wd_mod'))).toBe('wd module');
    const pyFile = python.remote<[string], [string, string]>('tsray_rtenv_fixtures:cwd_and_file', { runtimeEnv });
    const [pcwd, ptext] = await get(pyFile.remote('sub/data.txt'));
    expect(ptext).toBe('from the working dir');
    expect(pcwd).toBe(r.cwd);
    await expect(get(cwdAndFile.options({ runtimeEnv }).remote('big.log'))).rejects.toThrow(/ENOENT/);
  });

  it('10 actors asking for the same environment at once: one install', async () => {
    const before = runtimeEnvStats()!.installs.pip;
    const Cls = python.actor<{ value(m: string): string; pid(): number }>('tsray_rtenv_fixtures:EnvActor', { runtimeEnv: { pip: ['tsray_rt_b'] } });
    const actors = Array.from({ length: 10 }, () => Cls.remote());
    const values = await get(actors.map((a) => a.value.remote('tsray_rt_b')));
    expect(values).toEqual(Array(10).fill('b-2.0'));
    expect(new Set(await get(actors.map((a) => a.pid.remote()))).size).toBe(10);
    expect(runtimeEnvStats()!.installs.pip - before).toBe(1);
  });

  it('two environments run in separate workers; a worker is never reused across environments', async () => {
    const one = pidOf.options({ runtimeEnv: { envVars: { WHICH: 'one' } } });
    const two = pidOf.options({ runtimeEnv: { envVars: { WHICH: 'two' } } });
    const p1 = await get(one.remote());
    const p2 = await get(two.remote());
    const p0 = await get(pidOf.remote());
    expect(new Set([p0, p1, p2]).size).toBe(3);
    // The same environment again: its worker is reused.
    expect(await get(one.remote())).toBe(p1);
  });

  it("a failed install fails the task with RuntimeEnvSetupError (the installer's output: uv or pip), caches nothing; after a fix it works", async () => {
    const runtimeEnv = { pip: ['tsray_rt_later'] };
    const f = python.remote<[string], string>('tsray_rtenv_fixtures:import_value', { runtimeEnv });
    const err = (await get(f.remote('tsray_rt_later')).catch((e: unknown) => e)) as RuntimeEnvSetupError;
    expect(err).toBeInstanceOf(RuntimeEnvSetupError);
    expect(err.field).toBe('pip');
    // pip: "No matching distribution found for tsray_rt_later"; uv (used when the venv has it): "tsray-rt-later was not found".
    expect(err.output).toMatch(/No matching distribution found for tsray_rt_later|tsray-rt-later was not found/);
    // An actor in that environment dies with the setup error as the reason.
    const a = python.actor<{ value(m: string): string }>('tsray_rtenv_fixtures:EnvActor', { runtimeEnv }).remote();
    const died = (await get(a.value.remote('tsray_rt_later')).catch((e: unknown) => e)) as ActorDiedError;
    expect(died).toBeInstanceOf(ActorDiedError);
    expect(died.message).toMatch(/runtime env could not be set up.*(No matching distribution|tsray-rt-later was not found)/s);
    // Other work is unaffected, and after the fix the same environment builds.
    expect(await get(envOf.remote('JOB_VAR'))).toBe('job');
    buildWheel(wheels, 'tsray_rt_later', '1.0', 'VALUE = "fixed"');
    expect(await get(f.remote('tsray_rt_later'))).toBe('fixed');
  });

  it('an npm environment for a TypeScript task', async () => {
    expect(await get(useNpm.options({ runtimeEnv: { npm: [tgz] } }).remote('tsray-rt-npm'))).toBe('HI!');
    await expect(get(useNpm.remote('tsray-rt-npm'))).rejects.toThrow(/tsray-rt-npm/);
  });

  it('rejects bad environments with typed errors naming the field, before anything runs', () => {
    const field = (fn: () => unknown) => {
      try {
        fn();
      } catch (e) {
        expect(e).toBeInstanceOf(RuntimeEnvValidationError);
        return (e as RuntimeEnvValidationError).field;
      }
      return 'no error';
    };
    expect(field(() => remote(() => 1, { runtimeEnv: { pip: ['emoji; rm -rf /'] } }))).toBe('pip[0]');
    expect(field(() => envOf.options({ runtimeEnv: { pip: [1 as unknown as string] } }))).toBe('pip[0]');
    expect(field(() => envOf.options({ runtimeEnv: { workingDir: join(base, 'missing') } }))).toBe('workingDir');
    expect(field(() => envOf.options({ runtimeEnv: { conda: 'x' } as never }))).toBe('conda');
    expect(field(() => RemoteEnvReader.options({ runtimeEnv: { envVars: { X: 1 as unknown as string } } }))).toBe('envVars.X');
    expect(field(() => python.remote('m:f', { runtimeEnv: { npm: ['--registry=http://x'] } }))).toBe('npm[0]');
  });
});
