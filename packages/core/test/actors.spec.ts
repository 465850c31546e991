import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ActorDiedError,
  ActorMethodNotFoundError,
  ActorNameTakenError,
  ActorNotFoundError,
  clusterInfo,
  get,
  getActor,
  init,
  kill,
  SerializationError,
  shutdown,
  TaskError,
  ValidationError,
  wait,
} from '@tsray/core';
import { bump, bumpByName, RemoteBroken, RemoteCounter, RemoteRelay, RemoteSleeper, type Counter, type Span } from './fixtures/actors.js';
import { alive } from './helpers/processes.js';
import { until } from './helpers/until.js';

const run = promisify(execFile);

/** Spans that ran one at a time: sorted by start, each starts after the previous one ended. */
function expectNoOverlap(spans: Span[]): void {
  const sorted = [...spans].sort((x, y) => x.start - y.start);
  for (let i = 1; i < sorted.length; i++) expect(sorted[i]!.start).toBeGreaterThanOrEqual(sorted[i - 1]!.end);
}

beforeAll(async () => {
  await init({ numCpus: 4, objectStoreMemory: 128 * 1024 * 1024, logToDriver: false, namespace: 'test' });
});
afterAll(async () => {
  await shutdown();
});

describe('actors', () => {
  it('keeps state across calls and returns typed refs', async () => {
    const c = RemoteCounter.remote(5);
    const r = c.increment.remote(2);
    const v: number = await get(r);
    expect(v).toBe(7);
    expect(await get(c.get.remote())).toBe(7);
  });

  it('runs calls from one caller in submission order', async () => {
    const c = RemoteCounter.remote();
    const refs = Array.from({ length: 1000 }, () => c.increment.remote());
    const values = await get(refs);
    expect(values).toEqual(Array.from({ length: 1000 }, (_, i) => i + 1));
  });

  it('runs each actor in its own process', async () => {
    const a = RemoteCounter.remote();
    const b = RemoteCounter.remote();
    const [pa, pb] = await get([a.pid.remote(), b.pid.remote()]);
    expect(pa).not.toBe(pb);
    expect(pa).not.toBe(process.pid);
  });

  it('runs async actor calls concurrently, bounded by maxConcurrency', async () => {
    // Four calls on a default async actor are all in flight at once (they wait for each other).
    const s = RemoteSleeper.remote();
    expect(await get(Array.from({ length: 4 }, () => s.meet.remote(4)))).toEqual([4, 4, 4, 4]);
    // maxConcurrency 1: the calls' spans, recorded inside the actor, never overlap.
    const serial = RemoteSleeper.options({ maxConcurrency: 1 }).remote();
    const spans = await get(Array.from({ length: 3 }, () => serial.span.remote(50)));
    expectNoOverlap(spans);
  });

  it('limits concurrency groups separately', async () => {
    const s = RemoteSleeper.options({ concurrencyGroups: { io: 1 }, methodConcurrencyGroups: { io: 'io' } }).remote();
    const ios = [s.io.remote(100), s.io.remote(100)];
    // The default group is not held up by the io group: two calls there run together while io is busy.
    expect(await get([s.meet.remote(2), s.meet.remote(2)])).toEqual([2, 2]);
    // The io group runs one call at a time.
    expectNoOverlap(await get(ios));
  });

  it('passes handles to tasks and to other actors', async () => {
    const c = RemoteCounter.remote();
    expect(await get(bump.remote(c, 3))).toBe(3);
    const relay = RemoteRelay.remote(c);
    expect(await get(relay.forward.remote(10))).toBe(13);
    expect(await get(c.get.remote())).toBe(13);
  });
});

describe('names and namespaces', () => {
  it('finds a named actor, in its namespace only', async () => {
    const c = RemoteCounter.options({ name: 'named-1' }).remote(1);
    await get(c.get.remote());
    const again = await getActor<Counter>('named-1');
    expect(await get(again.increment.remote())).toBe(2);
    const other = RemoteCounter.options({ name: 'named-1', namespace: 'elsewhere' }).remote(50);
    expect(await get((await getActor<Counter>('named-1', { namespace: 'elsewhere' })).get.remote())).toBe(50);
    void other;
    const err = await getActor('nobody', { namespace: 'ghosts' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ActorNotFoundError);
    expect((err as Error).message).toContain('"ghosts"');
  });

  it('refuses a taken name, and getIfExists returns the existing actor', async () => {
    const first = RemoteCounter.options({ name: 'taken' }).remote(7);
    await get(first.get.remote());
    expect(() => RemoteCounter.options({ name: 'taken' }).remote()).toThrow(ActorNameTakenError);
    const same = RemoteCounter.options({ name: 'taken', getIfExists: true }).remote();
    expect(await get(same.increment.remote())).toBe(8);
  });

  it('lets tasks look actors up by name', async () => {
    const c = RemoteCounter.options({ name: 'for-task' }).remote(0);
    expect(await get(bumpByName.remote('for-task', 'test'))).toBe(10);
    expect(await get(c.get.remote())).toBe(10);
  });

  it('finds a named detached actor from another driver process; non-detached ones stop with their driver', async () => {
    const env = { ...process.env, TSRAY_ADDRESS: clusterInfo()!.address };
    const script = fileURLToPath(new URL('./fixtures/driver-actors.ts', import.meta.url));
    const a = await run(process.execPath, ['--import', 'tsx', script, 'create'], { env, timeout: 60_000 });
    expect(a.stdout).toContain('keeper 101');
    expect(a.stdout).toContain('temp 1');
    // The creating driver is gone: its non-detached actor is stopped, the detached one lives on.
    const b = await until(async () => {
      const out = await run(process.execPath, ['--import', 'tsx', script, 'use'], { env, timeout: 60_000 });
      return !out.stdout.includes('temp found') && out;
    }, "the first driver's non-detached actor to stop");
    expect(b.stdout).toMatch(/keeper 10[23]/);
    expect(b.stdout).toContain('temp not found');
    const keeper = await getActor<Counter>('keeper', { namespace: 'ns2' });
    expect(await get(keeper.get.remote())).toBeGreaterThanOrEqual(102);
    kill(keeper);
  });
});

describe('failures', () => {
  it('a constructor that throws kills the actor with that error as the cause', async () => {
    const b = RemoteBroken.remote('no config');
    const err = (await get(b.hello.remote()).catch((e: unknown) => e)) as ActorDiedError;
    expect(err).toBeInstanceOf(ActorDiedError);
    expect(err.reason).toBe('constructor');
    expect(err.message).toContain('RangeError: cannot start: no config');
    expect(err.cause).toBeInstanceOf(TaskError);
    expect((err.cause as TaskError).remoteName).toBe('RangeError');
  });

  it('reports unknown methods at runtime (and at compile time)', () => {
    const c = RemoteCounter.remote();
    // @ts-expect-error: Counter has no method "nope"
    expect(() => c.nope.remote()).toThrow(ActorMethodNotFoundError);
    expect(() => (c as unknown as Record<string, unknown>)['nope']).toThrow(/no method "nope".*increment/);
  });

  it('rejects unserializable arguments and bad options', () => {
    const c = RemoteCounter.remote();
    expect(() => c.increment.remote((() => 1) as never)).toThrow(SerializationError);
    expect(() => RemoteCounter.options({ maxRestarts: -5 })).toThrow(ValidationError);
    expect(() => RemoteCounter.options({ getIfExists: true })).toThrow(/getIfExists needs a name/);
    expect(() => RemoteCounter.options({ bogus: 1 } as never)).toThrow(/unknown option "bogus"/);
    expect(() => RemoteCounter.options({ stateInfo: { tp: Number.NaN } })).toThrow(/stateInfo.tp must be a string, a finite number or a boolean/);
    expect(() => RemoteCounter.options({ stateInfo: [1] as never })).toThrow(ValidationError);
  });

  it('kill: pending and later calls reject with ActorDiedError; killing again is an error', async () => {
    const c = RemoteCounter.remote();
    await get(c.get.remote());
    const pending = c.slowIncrement.remote(5000);
    kill(c);
    const err = (await get(pending).catch((e: unknown) => e)) as ActorDiedError;
    expect(err).toBeInstanceOf(ActorDiedError);
    expect(err.reason).toBe('killed');
    await expect(get(c.get.remote())).rejects.toBeInstanceOf(ActorDiedError);
    expect(() => kill(c)).toThrow(ActorDiedError);
  });

  it("restarts as Ray's test_actor_restart: 200 calls, crash at call 100, maxRestarts 1", async () => {
    const c = RemoteCounter.options({ maxRestarts: 1 }).remote();
    const refs = Array.from({ length: 200 }, () => c.incrementOrExit.remote(100));
    const outcomes: (number | 'died')[] = [];
    for (const r of refs) outcomes.push(await get(r).catch((e: unknown) => (e instanceof ActorDiedError ? 'died' : (e as never))));
    // Before the death: 1..99 in order. Then calls that were in flight fail. After the restart (if any
    // calls were left) the counter starts again at 1.
    let i = 0;
    while (outcomes[i] === i + 1) i++;
    expect(i).toBe(99);
    while (outcomes[i] === 'died') i++;
    let k = 1;
    while (i < outcomes.length) expect(outcomes[i++]).toBe(k++);
    // The restarted actor works; a second death is final.
    const pid = await get(c.pid.remote());
    process.kill(pid, 'SIGKILL');
    await expect(get(c.get.remote())).rejects.toBeInstanceOf(ActorDiedError);
  });

  it('retries in-flight calls across a SIGKILL with maxTaskRetries -1 (test_actor_restart_with_retry)', async () => {
    const c = RemoteCounter.options({ maxRestarts: 1, maxTaskRetries: -1 }).remote();
    const pid = await get(c.pid.remote());
    const refs = Array.from({ length: 100 }, () => c.blockingIncrement.remote(5));
    // Kill it mid-stream, once some calls are done.
    await wait(refs.slice(30), { numReturns: 1 });
    process.kill(pid, 'SIGKILL');
    const values = await get(refs);
    // No call failed; values climb by one with exactly one reset to 1 (the restart lost the state).
    let resets = 0;
    for (let j = 1; j < values.length; j++) {
      if (values[j] !== values[j - 1]! + 1) {
        expect(values[j]).toBe(1);
        resets++;
      }
    }
    expect(resets).toBe(1);
    expect(await get(c.pid.remote())).not.toBe(pid);
    // Restarts used up: the next death is final.
    process.kill(await get(c.pid.remote()), 'SIGKILL');
    await expect(get(c.get.remote())).rejects.toBeInstanceOf(ActorDiedError);
  });

  it('stops a non-detached actor once no handle to it is left', async () => {
    const pid = await (async () => {
      const c = RemoteCounter.remote();
      return get(c.pid.remote());
    })();
    expect(alive(pid)).toBe(true);
    await until(() => !alive(pid), `actor process ${pid} to stop`, { gc: true });
  });
});
