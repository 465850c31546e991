import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { availableResources, init, shutdown } from '@tsray/core';
import { EngineDeadError, EngineStartError, MoEDataParallel, serveOpenAI, type EngineState } from '@tsray/vllm-bridge';
import { until } from './helpers/until.js';

const venvPython = fileURLToPath(new URL('../../../.venv/bin/python', import.meta.url));

beforeAll(async () => {
  await init({ numCpus: 6, numGpus: 4, objectStoreMemory: 128 * 1024 * 1024, python: venvPython, logToDriver: false });
});
afterAll(async () => {
  await shutdown();
});

// The scripted backend stands in for vLLM: the head waits for a HELLO from every headless rank on the
// handshake endpoint it picked, so the endpoint plumbing and the start order are real.
const scripted = (extra: Record<string, unknown> = {}) => ({
  model: 'scripted',
  backend: 'scripted' as const,
  engineArgs: { token_delay_s: 0.005, ...extra },
  handshakeTimeoutS: 20,
});

const reach = (g: MoEDataParallel, state: EngineState) =>
  new Promise<void>((resolve) => {
    if (g.state === state) return resolve();
    const off = g.onState((s) => {
      if (s === state) {
        off();
        resolve();
      }
    });
  });

describe('MoEDataParallel (scripted stand-in)', () => {
  it('starts headless ranks then the head with per-rank DP args, one bundle (GPU) per rank, and serves through the head', async () => {
    const g = await MoEDataParallel.deploy({ ...scripted(), ranks: 3, gpusPerRank: 1 });
    try {
      expect(g.state).toBe('ready');
      const ranks = await g.rankInfo();
      expect(ranks.map((r) => r.rank)).toEqual([0, 1, 2]);
      // One GPU each, disjoint.
      expect(new Set(ranks.map((r) => r.cuda_visible_devices)).size).toBe(3);
      const [head, ...rest] = ranks;
      const { data_parallel_address: address, data_parallel_rpc_port: port } = head!.args;
      expect(typeof port).toBe('number');
      expect(head!.args).toMatchObject({ data_parallel_size: 3, data_parallel_size_local: 1 });
      expect(head!.args['data_parallel_start_rank']).toBeUndefined();
      expect(head!.args['data_parallel_rank']).toBeUndefined();
      for (const r of rest) {
        expect(r.args).toMatchObject({
          data_parallel_size: 3,
          data_parallel_size_local: 1,
          data_parallel_start_rank: r.rank,
          data_parallel_address: address,
          data_parallel_rpc_port: port,
          tensor_parallel_size: 1,
          model: 'scripted',
        });
        // Headless ranks are started before the head.
        expect(r.started_at).toBeLessThanOrEqual(head!.started_at);
      }
      const out = await g.generate(['a', 'b', 'c'], { maxTokens: 3 });
      expect(out.map((c) => c.text)).toEqual(['tok0 tok1 tok2', 'tok0 tok1 tok2', 'tok0 tok1 tok2']);
      const server = await serveOpenAI(g, { port: 0, modelName: 'moe' });
      try {
        expect((await fetch(`${server.url}/health`)).status).toBe(200);
        const r = await fetch(`${server.url}/v1/completions`, { method: 'POST', body: JSON.stringify({ prompt: 'hi', max_tokens: 2 }) });
        expect(((await r.json()) as { choices: { text: string }[] }).choices[0]!.text).toBe('tok0 tok1');
      } finally {
        await server.close();
      }
    } finally {
      await g.shutdown();
    }
  });

  it('a headless rank killed under load fails in-flight requests and restarts the whole group (maxRestarts)', async () => {
    const g = await MoEDataParallel.deploy({ ...scripted(), ranks: 2, gpusPerRank: 1, maxRestarts: 1 });
    try {
      const before = await g.rankInfo();
      const seen: EngineState[] = [];
      g.onState((s) => seen.push(s));
      const inflight = Array.from({ length: 4 }, (_, i) => g.generate(`__slow__ q${i}`, { maxTokens: 100 }).catch((e: unknown) => e));
      await until(async () => (await g.stats()).running === 4, 'the 4 requests to run');
      process.kill(before[1]!.pid, 'SIGKILL');
      const outcomes = await Promise.all(inflight);
      expect(outcomes.every((e) => e instanceof EngineDeadError)).toBe(true);
      expect(String((outcomes[0] as Error).message)).toMatch(/MoE DP group .* went down \(rank 1/);
      await g.ready();
      expect(seen).toEqual(['restarting', 'ready']);
      expect(g.restarts).toBe(1);
      const after = await g.rankInfo();
      expect(after.map((r) => r.pid).some((p) => before.some((b) => b.pid === p))).toBe(false);
      const [c] = await g.generate('again', { maxTokens: 2 });
      expect(c!.text).toBe('tok0 tok1');
    } finally {
      await g.shutdown();
    }
  });

  it('without restarts a dead head leaves the group dead; requests fail with EngineDeadError', async () => {
    const g = await MoEDataParallel.deploy({ ...scripted(), ranks: 2, gpusPerRank: 1 });
    try {
      const dead = reach(g, 'dead');
      process.kill((await g.rankInfo())[0]!.pid, 'SIGKILL');
      await dead;
      expect(g.error).toBeInstanceOf(EngineDeadError);
      await expect(g.generate('x')).rejects.toBeInstanceOf(EngineDeadError);
    } finally {
      await g.shutdown();
    }
  });

  it('a rank that cannot start fails deploy with EngineStartError naming the rank, and releases everything', async () => {
    const err = await MoEDataParallel.deploy({ ...scripted({ fail_start: true }), ranks: 3, gpusPerRank: 1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EngineStartError);
    expect((err as Error).message).toMatch(/MoE DP rank [12]: ModelLoadError: .*fail_start/);
    // The placement group (3 GPUs) is released.
    await until(async () => (await availableResources())['GPU'] === 4, 'the 3 GPUs of the group to be released');
  });
});
