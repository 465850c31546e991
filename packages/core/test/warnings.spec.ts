/**
 * What a user reads when work waits or an actor restarts (issue #22): one readable line per
 * condition on stderr (no pino JSON repeating it at the default log level), "cannot be scheduled right
 * now" only after TSRAY_PENDING_WARNING_S, and calls that were running when a restartable actor died
 * fail as ActorUnavailableError, not as "dead".
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ActorDiedError, ActorUnavailableError, get, init, shutdown } from '@tsray/core';
import { RemoteGpu } from './fixtures/driver-warnings.js';
import { until } from './helpers/until.js';

const fixture = fileURLToPath(new URL('./fixtures/driver-warnings.ts', import.meta.url));

describe('warnings', () => {
  it('the 9th GPU actor: one "cannot be scheduled right now" line after the delay; the infeasible actor: one line', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', fixture], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, TSRAY_PENDING_WARNING_S: '1', TSRAY_LOG_LEVEL: 'warn' },
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      await until(() => out.includes('ninth waiting') || child.exitCode !== null, 60_000, 'the 9th actor to wait');
      await until(() => err.includes('cannot be scheduled right now') || child.exitCode !== null, 30_000, 'the pending warning');
      child.stdin.end('go\n');
      expect(await exited).toBe(0);
    } finally {
      child.kill('SIGKILL');
    }
    expect(out).toContain('ninth started');
    expect(out).toContain('infeasible pending');
    const lines = err.split('\n').filter((l) => l.trim() !== '');
    const pending = lines.filter((l) => l.includes('cannot be scheduled right now'));
    expect(pending).toHaveLength(1);
    expect(pending[0]).toMatch(
      /^tsray: actor Gpu \{"GPU":1\} cannot be scheduled right now \(waiting \d+s\): node \S+ is short of GPU \(needs 1, 0 of 8 free\)/,
    );
    const infeasible = lines.filter((l) => l.includes('can ever provide'));
    expect(infeasible).toHaveLength(1);
    expect(infeasible[0]).toMatch(/^tsray: actor Gpu needs \{"GPU":16\} but no node can ever provide GPU/);
    // Nothing else: no pino JSON line repeating them.
    expect(lines.filter((l) => l.startsWith('{'))).toEqual([]);
  }, 120_000);
});

describe('actor restarts', () => {
  beforeAll(async () => {
    await init({ numCpus: 1, objectStoreMemory: 64 * 1024 * 1024, logToDriver: false });
  });
  afterAll(async () => {
    await shutdown();
  });

  it('a call running when a restartable actor dies fails as ActorUnavailableError; the actor is alive after', async () => {
    const a = RemoteGpu.options({ maxRestarts: 1, numCpus: 0 }).remote();
    const pid = await get(a.ping.remote());
    const e = await get(a.exitNow.remote()).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ActorUnavailableError);
    expect(e).toBeInstanceOf(ActorDiedError); // code catching ActorDiedError still catches it
    expect((e as ActorUnavailableError).reason).toBe('restarting');
    expect((e as Error).message).toMatch(
      /^actor Gpu \(\S+\) is unavailable: it is restarting \(its process \(pid \d+\) died: exit code 3; its stderr is in \/\S+\.err\)/,
    );
    // Alive again: a new process answers.
    expect(await get(a.ping.remote())).not.toBe(pid);
    // Restarts used up: the next death is final, and says so.
    const last = await get(a.exitNow.remote()).catch((x: unknown) => x);
    expect(last).toBeInstanceOf(ActorDiedError);
    expect(last).not.toBeInstanceOf(ActorUnavailableError);
    expect((last as ActorDiedError).message).toMatch(/is dead/);
  });
});
