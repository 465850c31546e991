/**
 * The chaos harness (bench/chaos/chaos.ts) on a small scale, as a real multi-process run: a head and three
 * node daemons, a workload from a driver, a non-head node killed (SIGKILL) every 2 s and replaced. The
 * harness checks the invariants itself; this test reads its JSON report and checks them again, so a
 * broken invariant fails here with the numbers. How fast resources come back (Ray's "within 10 s") is the
 * harness's full-size run (docs/reliability.md); here they must come back, with a generous limit.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import type { ChaosReport } from '../../../bench/chaos/chaos.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const TSX = join(ROOT, 'node_modules', '.bin', 'tsx');
const HARNESS = join(ROOT, 'bench', 'chaos', 'chaos.ts');

/** The report the harness writes with --json (its own type: the two cannot drift apart). */
type Report = ChaosReport;

const tmp = mkdtempSync(join(tmpdir(), 'tsray-chaos-test-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Runs the harness to its end (it reaps its cluster) and returns its report and output. */
async function chaos(name: string, args: string[]): Promise<{ report: Report; out: string }> {
  const json = join(tmp, `${name}.json`);
  let out = '';
  try {
    const r = await run(TSX, [HARNESS, ...args, '--json', json], { cwd: ROOT, env: { ...process.env, TMPDIR: tmp }, timeout: 400_000, maxBuffer: 16 << 20 });
    out = r.stdout + r.stderr;
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string };
    out = `${err.stdout ?? ''}${err.stderr ?? ''}`;
  }
  let report: Report;
  try {
    report = JSON.parse(readFileSync(json, 'utf8')) as Report;
  } catch {
    throw new Error(`the harness wrote no report:\n${out.slice(-4000)}`);
  }
  return { report, out };
}

describe('chaos: node daemons killed on a schedule while work runs (4 nodes, real processes)', () => {
  it("1,000 tasks (maxRetries -1) whose arguments are other tasks' returns: every result correct, exactly once; available == total resources again", async () => {
    const { report: r, out } = await chaos('tasks', ['--workload', 'tasks', '--tasks', '1000', '--task-ms', '5', '--kill-every', '2', '--settle-s', '60']);
    const ctx = `${r.firstErrors.join('\n')}\n${out.slice(-3000)}`;
    expect(r.faults.filter((f) => f.kind === 'node').length, ctx).toBeGreaterThanOrEqual(2);
    expect({ submitted: r.submitted, completed: r.completed, correct: r.correct }, ctx).toEqual({ submitted: 1000, completed: 1000, correct: 1000 });
    expect({ wrong: r.wrong, failed: r.failed, lost: r.lost, duplicates: r.duplicates }, ctx).toEqual({ wrong: 0, failed: 0, lost: 0, duplicates: 0 });
    expect(r.settled, ctx).toBe(true);
    expect(r.ok, ctx).toBe(true);
  }, 420_000);

  // Each actor runs its 250 calls one at a time, 20 ms each, and every kill hits a node hosting an actor
  // (--target actors), so actors restart while their calls are in flight.
  it('4 restartable actors (maxRestarts -1, maxTaskRetries -1), 1,000 calls: none fails, per-caller order kept, actors restarted', async () => {
    const args = ['--workload', 'actors', '--actors', '4', '--calls', '1000', '--call-ms', '20', '--kill-every', '2', '--target', 'actors', '--settle-s', '60'];
    const { report: r, out } = await chaos('actors', args);
    const ctx = `${r.firstErrors.join('\n')}\n${out.slice(-3000)}`;
    expect(r.faults.filter((f) => f.kind === 'node').length, ctx).toBeGreaterThanOrEqual(2);
    expect(r.restartsSeen, ctx).toBeGreaterThanOrEqual(1);
    expect({ submitted: r.submitted, completed: r.completed, correct: r.correct }, ctx).toEqual({ submitted: 1000, completed: 1000, correct: 1000 });
    expect({ failed: r.failed, lost: r.lost, duplicates: r.duplicates, orderViolations: r.orderViolations }, ctx).toEqual({
      failed: 0,
      lost: 0,
      duplicates: 0,
      orderViolations: 0,
    });
    expect(r.settled, ctx).toBe(true);
  }, 420_000);
});
