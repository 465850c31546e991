/**
 * `tsray timeline` (issue #20 acceptance 3): Chrome trace JSON, checked against a JSON schema of the
 * trace event format, one complete event per task and actor call; and `tsray logs`, which finds a
 * worker's output by pid.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, init, kill, shutdown } from '@tsray/core';
import { runCli } from '../src/cli/main.js';
import { TestCluster } from './fixtures/cluster-harness.js';
import { RemoteTracer, traced } from './fixtures/timeline-fns.js';

/** The Chrome trace event format (the JSON-array form), as far as tsray writes it: complete and metadata events. */
const COMMON = { name: { type: 'string' }, pid: { type: 'integer', minimum: 0 }, tid: { type: 'integer', minimum: 0 }, args: { type: 'object' } };
const TRACE_SCHEMA = {
  type: 'array',
  items: {
    oneOf: [
      {
        type: 'object',
        required: ['name', 'ph', 'pid', 'tid', 'cat', 'ts', 'dur', 'args'],
        properties: {
          ...COMMON,
          ph: { const: 'X' },
          cat: { type: 'string' },
          ts: { type: 'number', minimum: 0 },
          dur: { type: 'number', minimum: 0 },
          cname: { type: 'string' },
          args: { type: 'object', required: ['task_id', 'job_id', 'func_or_class_name'] },
        },
        additionalProperties: false,
      },
      {
        type: 'object',
        required: ['name', 'ph', 'pid', 'tid', 'args'],
        properties: { ...COMMON, ph: { const: 'M' }, name: { enum: ['process_name', 'thread_name'] }, args: { type: 'object', required: ['name'] } },
        additionalProperties: false,
      },
    ],
  },
};

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCli(args, { out: (t) => void (out += t), err: (t) => void (err += t) });
  return { code, out, err };
}

describe('tsray timeline and tsray logs', () => {
  const c = new TestCluster();
  let pids: number[] = [];

  beforeAll(async () => {
    await c.startHead({ numCpus: 2 });
    await c.addNode({ numCpus: 2 });
    c.attachHere();
    await init({ address: 'auto', namespace: 'timeline' });
    pids = await get(Array.from({ length: 8 }, (_, i) => traced.remote(i)));
    const a = RemoteTracer.remote();
    expect(await get([a.step.remote(1), a.step.remote(2), a.step.remote(3)])).toEqual([2, 4, 6]);
    kill(a);
  }, 60_000);

  afterAll(async () => {
    await shutdown();
    c.detachHere();
    await c.stop();
  }, 60_000);

  it('writes a schema-valid Chrome trace with one complete event per task and actor call', async () => {
    const file = join(c.tmp, 'trace.json');
    const r = await cli(['timeline', '--output', file, '--address', c.head.ready.dashboardUrl!, '--token', c.token]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toContain(file);
    const trace = JSON.parse(readFileSync(file, 'utf8')) as { ph: string; name: string; cat?: string; args: Record<string, unknown>; tid: number }[];
    const validate = new Ajv({ allErrors: true }).compile(TRACE_SCHEMA);
    expect(validate(trace), JSON.stringify(validate.errors)).toBe(true);
    const tasks = trace.filter((e) => e.ph === 'X' && e.name === 'traced');
    expect(tasks.length, JSON.stringify(tasks.map((e) => [e.args['task_id'], e.args['node_id'], e.tid, e.args['worker_id']]))).toBe(8);
    expect(new Set(tasks.map((e) => e.args['task_id'])).size).toBe(8);
    // Each event sits on its worker's row (tid = the worker's pid, as the task itself reported).
    expect(new Set(tasks.map((e) => e.tid))).toEqual(new Set(pids));
    const calls = trace.filter((e) => e.ph === 'X' && e.name.endsWith('step'));
    expect(calls.length).toBe(3);
    expect(calls.every((e) => typeof e.args['actor_id'] === 'string')).toBe(true);
    // Both nodes' rows are named.
    expect(trace.filter((e) => e.ph === 'M' && e.name === 'process_name').length).toBe(new Set(tasks.map((e) => (e as unknown as { pid: number }).pid)).size);
  });

  it("tsray logs lists this machine's log files and prints a worker's output by pid", async () => {
    const list = await cli(['logs']);
    expect(list.code).toBe(0);
    expect(list.out).toMatch(/worker-.*\.out\t\d+/);
    const one = await cli(['logs', '--pid', String(pids[0])]);
    expect(one.code).toBe(0);
    expect(one.out).toMatch(new RegExp(`\\(traced pid=${pids[0]}\\) timeline-task \\d`));
    const tail = await cli(['logs', '--pid', String(pids[0]), '--tail', '1']);
    expect(
      tail.out
        .trim()
        .split('\n')
        .filter((l) => l.includes('timeline-task')).length,
    ).toBeLessThanOrEqual(2);
    const none = await cli(['logs', 'no-such-log-file']);
    expect(none.code).toBe(2);
    expect(none.err).toContain('no log file matches');
  });
});
