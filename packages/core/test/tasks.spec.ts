import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cancel,
  get,
  GetTimeoutError,
  init,
  ObjectRef,
  put,
  remote,
  shutdown,
  TaskCancelledError,
  TaskError,
  ValidationError,
  wait,
  WorkerCrashedError,
} from '@tsray/core';
import { nodeStats } from '@tsray/core/internal';
import {
  add,
  alwaysDie,
  context,
  countTo,
  counter,
  type CustomError,
  describeArg,
  dieOnFirstAttempt,
  echo,
  fail,
  failingStream,
  flakyTask,
  gated,
  inc,
  nested,
  pair,
  pidAndWait,
  spin,
  sumOfRefs,
  waitInWorker,
  tiny,
  untilAborted,
} from './fixtures/tasks.js';
import { alive, tempDir } from './helpers/processes.js';
import { until } from './helpers/until.js';

beforeAll(async () => {
  await init({ numCpus: 4, objectStoreMemory: 256 * 1024 * 1024, logToDriver: false });
});
afterAll(async () => {
  await shutdown();
});

describe('tasks', () => {
  it('runs a task and returns a typed ref at once', async () => {
    const ref = add.remote(1, 2);
    expect(ref).toBeInstanceOf(ObjectRef);
    const v: number = await get(ref);
    expect(v).toBe(3);
  });

  it('resolves top-level ref arguments before the task runs (seed: function_with_an_argument)', async () => {
    const r1 = inc.remote(0);
    const r2 = inc.remote(r1);
    expect(await get(r2)).toBe(2);
    expect(await get(describeArg.remote(put(5)))).toBe('number');
  });

  it('passes refs nested in arrays as refs', async () => {
    const refs = [put(1), put(2), put(3)];
    expect(await get(describeArg.remote(refs))).toEqual(['ref', 'ref', 'ref']);
    expect(await get(sumOfRefs.remote(refs))).toBe(6);
  });

  it('runs a chain of 1,000 dependent tasks', async () => {
    let ref: ObjectRef<number> = put(0);
    for (let i = 0; i < 1000; i++) ref = inc.remote(ref);
    expect(await get(ref)).toBe(1000);
  });

  it('runs a fan-out of 10,000 tiny tasks', async () => {
    const refs = Array.from({ length: 10_000 }, () => tiny.remote());
    const values = await get(refs);
    expect(values.length).toBe(10_000);
    expect(values.every((v) => v === 'ok')).toBe(true);
  });

  it('lets tasks submit tasks and get their results', async () => {
    expect(await get(nested.remote(20))).toBe(210);
  });

  it('keeps module-level state in a worker between tasks', async () => {
    const a = await get(counter.remote());
    const values = await get(Array.from({ length: 20 }, () => counter.remote()));
    expect(Math.max(...values)).toBeGreaterThan(a);
  });

  it('supports numReturns', async () => {
    const [a, b] = pair.options({ numReturns: 2 }).remote(21);
    expect(await get(a!)).toBe(21);
    expect(await get(b!)).toBe(42);
  });

  it('reports the runtime context in the worker', async () => {
    const c = await get(context.remote());
    expect(c.taskName).toBe('context');
    expect(c.isWorker).toBe(true);
    expect(await get(context.options({ name: 'renamed' }).remote())).toMatchObject({ taskName: 'renamed' });
  });
});

describe('errors', () => {
  it('rejects get with a TaskError keeping name, message and remote stack', async () => {
    const err = await get(fail.remote('boom')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskError);
    const te = err as TaskError;
    expect(te.remoteName).toBe('CustomError');
    expect(te.remoteMessage).toBe('boom');
    expect(te.taskName).toBe('failingTask');
    expect(te.remoteStack).toContain('fixtures/tasks.ts');
    expect(te.message).toContain('CustomError: boom');
    expect((te.cause as Error).name).toBe('CustomError');
    expect((te.cause as CustomError).code).toBe('E_CUSTOM');
  });

  it('propagates an upstream error to dependent tasks', async () => {
    const bad = fail.remote('upstream');
    const dependent = inc.remote(bad as unknown as ObjectRef<number>);
    const err = (await get(dependent).catch((e: unknown) => e)) as TaskError;
    expect(err).toBeInstanceOf(TaskError);
    expect(err.remoteMessage).toBe('upstream');
    expect(err.taskName).toBe('failingTask');
  });

  it('retries application errors only with retryExceptions', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tsray-flaky-'));
    try {
      // Without retryExceptions: the first failure is final.
      const e1 = (await get(flakyTask.remote(join(dir, 'a'), 2)).catch((e: unknown) => e)) as TaskError;
      expect(e1.remoteName).toBe('RangeError');
      // With it: two failures, then success on the third run.
      expect(await get(flakyTask.options({ retryExceptions: ['RangeError'], maxRetries: 5 }).remote(join(dir, 'b'), 2))).toBe(3);
      expect(await get(flakyTask.options({ retryExceptions: true, maxRetries: 5 }).remote(join(dir, 'c'), 1))).toBe(2);
      // An error name not in the list is not retried.
      const e2 = (await get(flakyTask.options({ retryExceptions: ['TypeError'], maxRetries: 5 }).remote(join(dir, 'd'), 1)).catch(
        (e: unknown) => e,
      )) as TaskError;
      expect(e2).toBeInstanceOf(TaskError);
      // Retries are bounded by maxRetries.
      const e3 = (await get(flakyTask.options({ retryExceptions: true, maxRetries: 1 }).remote(join(dir, 'e'), 5)).catch((e: unknown) => e)) as TaskError;
      expect(e3.remoteMessage).toBe('flaky failure 2');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('retries a task whose worker was killed mid-task', async () => {
    expect(await get(dieOnFirstAttempt.remote('done'))).toBe('done after 1 retries');
  });

  it('retries after the worker is killed from outside', async () => {
    // The task writes its pid as it starts: kill exactly that worker, from outside.
    const dir = mkdtempSync(join(tmpdir(), 'tsray-pid-'));
    const pidFile = join(dir, 'pid');
    const ref = pidAndWait.remote(1500, pidFile);
    const first = await until(() => existsSync(pidFile) && /^(\d+) 0$/.exec(readFileSync(pidFile, 'utf8')), 'pidAndWait to start');
    const killed = Number(first[1]);
    process.kill(killed, 'SIGKILL');
    const res = await get(ref);
    rmSync(dir, { recursive: true, force: true });
    expect(res.attempt).toBe(1);
    expect(res.pid).not.toBe(killed);
  });

  it('fails with WorkerCrashedError when retries are used up', async () => {
    const err = (await get(alwaysDie.options({ maxRetries: 1 }).remote()).catch((e: unknown) => e)) as WorkerCrashedError;
    expect(err).toBeInstanceOf(WorkerCrashedError);
    expect(err.attempts).toBe(2);
    expect(err.message).toContain('exit code 3');
  });

  it('validates options with errors naming the option', () => {
    expect(() => add.options({ numCpus: -1 })).toThrow(ValidationError);
    expect(() => add.options({ numCpus: Number.NaN })).toThrow(/numCpus/);
    expect(() => add.options({ numGpus: 1.5 })).toThrow(/numGpus/);
    expect(() => add.options({ resources: { foo: -2 } })).toThrow(/resources\.foo/);
    expect(() => add.options({ maxRetries: -3 })).toThrow(/maxRetries/);
    expect(() => add.options({ bogus: 1 } as never)).toThrow(/unknown option "bogus"/);
  });

  it('get of something that is not a ref is a TypeError', async () => {
    await expect(get(42 as never)).rejects.toBeInstanceOf(TypeError);
    await expect(get([put(1), 'x'] as never)).rejects.toThrow(/element 1/);
  });

  it('a second init is a clear error', async () => {
    await expect(init()).rejects.toThrow(/already called/);
  });
});

describe('get, wait, cancel', () => {
  it('get times out with GetTimeoutError', async () => {
    const dir = tempDir();
    const ref = gated.remote(join(dir.path, 'never'), 'late');
    const err = await get(ref, { timeout: 0.2 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GetTimeoutError);
    expect((await wait([ref], { numReturns: 1, timeout: 0 })).ready).toEqual([]);
    cancel(ref);
    dir.cleanup();
  });

  it('wait returns ready refs in completion order', async () => {
    // Each task ends when the test creates its gate file: the completion order is the test's, not a timer's.
    const dir = tempDir();
    const gate = (name: string) => writeFileSync(join(dir.path, name), '');
    const [slow, fast, mid] = ['slow', 'fast', 'mid'].map((v) => gated.remote(join(dir.path, v), v));
    gate('fast');
    const first = await wait([slow!, fast!, mid!], { numReturns: 1 });
    expect(first.ready).toEqual([fast]);
    expect(first.notReady).toEqual([slow, mid]);
    gate('mid');
    expect((await wait([slow!, fast!, mid!], { numReturns: 2 })).ready).toEqual([fast, mid]);
    gate('slow');
    const all = await wait([slow!, fast!, mid!], { numReturns: 3 });
    expect(all.ready).toEqual([fast, mid, slow]);
    expect(all.notReady).toEqual([]);
    dir.cleanup();
  });

  it('wait honours its timeout', async () => {
    const dir = tempDir();
    const r = gated.remote(join(dir.path, 'never'), 'x');
    const res = await wait([r], { numReturns: 1, timeout: 0.1 });
    expect(res.ready).toEqual([]);
    expect(res.notReady).toEqual([r]);
    cancel(r, { force: true });
    await expect(wait([r, r], { numReturns: 1 })).rejects.toBeInstanceOf(ValidationError);
    dir.cleanup();
  });

  it('wait refuses the same ref twice, also as two ObjectRefs of one id, in the driver and in a worker', async () => {
    const a = put('a');
    const b = put('b');
    const [aAgain] = await get(put([a])); // another ObjectRef instance of a's id
    expect(aAgain).not.toBe(a);
    expect(aAgain!.id).toBe(a.id);
    await expect(wait([a, b, aAgain!], { numReturns: 1 })).rejects.toThrow(`wait() got the same ref twice: ${a.id}`);
    await expect(wait([a, b, a], { numReturns: 0 })).rejects.toBeInstanceOf(ValidationError);
    const first = await wait([b, a], { numReturns: 1 });
    expect(first.ready).toEqual([a]); // the earlier put, though second in the list
    expect(first.notReady).toEqual([b]);
    expect(await get(waitInWorker.remote([a, b], 2))).toEqual({ ready: expect.arrayContaining(['a', 'b']), notReady: 0 });
    expect(await get(waitInWorker.remote([b, a], 1))).toMatchObject({ notReady: 1 });
    expect(await get(waitInWorker.remote([a, b, aAgain!], 1))).toBe(`ValidationError: wait() got the same ref twice: ${a.id}`);
  });

  it('cancels a queued task: it never runs', async () => {
    const dir = tempDir();
    const blockers = Array.from({ length: 4 }, (_, i) => gated.remote(join(dir.path, 'go'), `b${i}`));
    const ranFile = join(dir.path, 'queued-ran');
    const queued = pidAndWait.remote(0, ranFile);
    cancel(queued);
    await expect(get(queued)).rejects.toBeInstanceOf(TaskCancelledError);
    writeFileSync(join(dir.path, 'go'), '');
    expect(await get(blockers)).toEqual(['b0', 'b1', 'b2', 'b3']);
    expect(existsSync(ranFile)).toBe(false);
    dir.cleanup();
  });

  it('cancels a running async task through its abort signal; the worker lives on', async () => {
    const dir = tempDir();
    const started = join(dir.path, 'started');
    const aborted = join(dir.path, 'aborted');
    const r = untilAborted.remote(started, aborted);
    // Cancel only once the task runs: a queued task is cancelled without any signal.
    const pid = Number(await until(() => existsSync(started) && readFileSync(started, 'utf8'), 'the task to start'));
    cancel(r);
    const err = (await get(r).catch((e: unknown) => e)) as TaskCancelledError;
    expect(err).toBeInstanceOf(TaskCancelledError);
    expect(err.forced).toBe(false);
    // The task saw its signal fire, and its worker was not killed for it.
    await until(() => existsSync(aborted), 'the running task to see its abort signal');
    expect(alive(pid)).toBe(true);
    expect(await get(add.remote(2, 2))).toBe(4);
    dir.cleanup();
  });

  it('force-cancels a task that blocks its event loop by killing the worker', async () => {
    const dir = tempDir();
    const started = join(dir.path, 'started');
    const r = spin.remote(started);
    const pid = Number(await until(() => existsSync(started) && readFileSync(started, 'utf8'), 'the task to start'));
    cancel(r, { force: true });
    const err = (await get(r, { timeout: 30 }).catch((e: unknown) => e)) as TaskCancelledError;
    expect(err).toBeInstanceOf(TaskCancelledError);
    expect(err.forced).toBe(true);
    // The running task's worker was killed (a queued task would have been dropped with no kill).
    await until(() => !alive(pid), `worker ${pid} to be killed`);
    expect(await get(echo.remote('still works'))).toBe('still works');
    dir.cleanup();
  });
});

describe('streaming generator tasks', () => {
  it('yields refs as items are produced', async () => {
    const gen = countTo.remote(5, 20);
    const seen: number[] = [];
    for await (const ref of gen) seen.push(await get(ref));
    expect(seen).toEqual([0, 10, 20, 30, 40]);
  });

  it('ends with the task error after the items yielded before it', async () => {
    const seen: number[] = [];
    let error: unknown;
    try {
      for await (const ref of failingStream.remote()) seen.push(await get(ref));
    } catch (e) {
      error = e;
    }
    expect(seen).toEqual([1, 2]);
    expect(error).toBeInstanceOf(TaskError);
    expect((error as TaskError).remoteMessage).toBe('stream broke');
  });
});

describe('bookkeeping', () => {
  it('frees task results once their refs are gone', async () => {
    const gc = (globalThis as { gc?: () => void }).gc!;
    const before = nodeStats().objects;
    await (async () => {
      const refs = Array.from({ length: 200 }, (_, i) => add.remote(i, i));
      await get(refs);
    })();
    for (let i = 0; i < 10 && nodeStats().objects > before; i++) {
      gc();
      await new Promise((r) => setImmediate(r));
    }
    expect(nodeStats().objects).toBeLessThanOrEqual(before);
  });

  it('rejects remote() of a non-function', () => {
    expect(() => remote(42 as never)).toThrow(TypeError);
  });
});
