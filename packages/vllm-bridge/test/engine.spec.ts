import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { init, listActors, shutdown } from '@tsray/core';
import { EngineDeadError, EngineStartError, GenerateRequestError, LLMEngine, type StreamDelta } from '@tsray/vllm-bridge';
import { until } from './helpers/until.js';

const venvPython = fileURLToPath(new URL('../../../.venv/bin/python', import.meta.url));

beforeAll(async () => {
  // A node with fake GPUs: GPU pinning is logical (CUDA_VISIBLE_DEVICES), no hardware needed.
  await init({ numCpus: 4, numGpus: 2, objectStoreMemory: 128 * 1024 * 1024, python: venvPython, logToDriver: false });
});
afterAll(async () => {
  await shutdown();
});

// The scripted backend (tsray.engine.scripted_backend) streams "tok0 tok1 ..." deterministically.
const scripted = (extra: Record<string, unknown> = {}) => ({ model: 'scripted', backend: 'scripted' as const, engineArgs: { token_delay_s: 0.002, ...extra } });

describe('LLMEngine (scripted backend)', () => {
  let engine: LLMEngine;
  beforeAll(async () => {
    engine = await LLMEngine.deploy({ ...scripted(), numGpus: 1 });
  });
  afterAll(async () => {
    await engine.shutdown();
  });

  it('generates and reports where it runs (GPU-pinned on a fake-GPU node)', async () => {
    const [c] = await engine.generate('hello world', { maxTokens: 5 });
    expect(c!.text).toBe('tok0 tok1 tok2 tok3 tok4');
    expect(c!.finishReason).toBe('length');
    expect(c!.usage.completionTokens).toBe(5);
    const info = await engine.info();
    expect(['0', '1']).toContain(info.cuda_visible_devices);
    expect(info.backend).toBe('scripted');
    expect(info.tensor_parallel_size).toBe(1);
    expect(info.gpu_ids).toEqual([info.cuda_visible_devices]);
    const row = (await listActors()).find((a) => a.pid === info.pid && a.state === 'ALIVE');
    expect(row).toMatchObject({ tensorParallelSize: 1, gpuIds: [Number(info.cuda_visible_devices)] });
  });

  it('streams deltas that add up to the completion', async () => {
    let text = '';
    let last: StreamDelta | undefined;
    for await (const d of engine.stream('a b c', { maxTokens: 8 })) {
      text += d.text;
      last = d;
    }
    expect(text).toBe('tok0 tok1 tok2 tok3 tok4 tok5 tok6 tok7');
    expect(last!.finishReason).toBe('length');
  });

  it('a consumer slower than the engine gets the backlog coalesced per completion, nothing lost', async () => {
    const it = engine.stream('slow reader', { maxTokens: 100 });
    const first = await it.next(); // the request runs; then this consumer stops pulling
    // The engine finishes while nobody reads.
    await until(async () => {
      const s = await engine.stats();
      return s.running + s.waiting === 0;
    }, 'the engine to finish the unread request');
    const rest: StreamDelta[] = [];
    for (let r = await it.next(); !r.done; r = await it.next()) rest.push(r.value);
    const text = (first.value as StreamDelta).text + rest.map((d) => d.text).join('');
    expect(text).toBe(Array.from({ length: 100 }, (_, i) => `tok${i}`).join(' '));
    expect(rest.length).toBeLessThan(5); // one delta for the backlog instead of ~99
    expect(rest.at(-1)!.finishReason).toBe('length');
    expect(rest.at(-1)!.completionTokens).toBe(100);
    expect((first.value as StreamDelta).tokenIds.length + rest.reduce((a, d) => a + d.tokenIds.length, 0)).toBe(100);
  });

  it('aborts mid-stream (AbortSignal) and the engine stops the request', async () => {
    const ac = new AbortController();
    const seen: string[] = [];
    let reason: string | undefined;
    for await (const d of engine.stream('__slow__ please', { maxTokens: 1000 }, { signal: ac.signal })) {
      seen.push(d.text);
      if (seen.length === 2) ac.abort();
      if (d.finishReason) reason = d.finishReason;
    }
    expect(reason).toBe('abort');
    expect(seen.length).toBeLessThan(10);
    const s = await engine.stats();
    expect(s.running + s.waiting).toBe(0);
  });

  it('serves 100 concurrent requests on one engine', async () => {
    const prompts = Array.from({ length: 100 }, (_, i) => `prompt ${i}`);
    const out = await engine.generate(prompts, { maxTokens: 4 });
    expect(out.length).toBe(100);
    expect(out.every((c) => c.text === 'tok0 tok1 tok2 tok3' && c.finishReason === 'length')).toBe(true);
  });

  it('rejects invalid sampling params and prompts over the context length, naming them', async () => {
    const e1 = (await engine.generate('x', { temperature: -1 }).catch((e: unknown) => e)) as GenerateRequestError;
    expect(e1).toBeInstanceOf(GenerateRequestError);
    expect(e1.code).toBe('invalid_params');
    expect(e1.field).toBe('temperature');
    const long = Array.from({ length: 500 }, () => 'w').join(' ');
    const e2 = (await engine.generate(long).catch((e: unknown) => e)) as GenerateRequestError;
    expect(e2.code).toBe('prompt_too_long');
    expect(e2.limit).toBeGreaterThan(0);
    expect(e2.message).toContain(String(e2.limit));
  });
});

describe('engine failures', () => {
  it('a dying engine fails in-flight requests with EngineDeadError, then restarts per policy', async () => {
    const engine = await LLMEngine.deploy({ ...scripted(), maxRestarts: 1 });
    const other = engine.generate('__hang__', { maxTokens: 10 });
    const crash = engine.generate('__crash__ now', { maxTokens: 3 });
    await expect(crash).rejects.toBeInstanceOf(EngineDeadError);
    await expect(other).rejects.toBeInstanceOf(EngineDeadError);
    // The actor restarted the engine process: the handle reconnects on the next call.
    const [c] = await engine.generate('again', { maxTokens: 2 });
    expect(c!.text).toBe('tok0 tok1');
    await engine.shutdown();
  });

  it('an engine that cannot start gives EngineStartError with the engine message', async () => {
    const err = await LLMEngine.deploy({ ...scripted({ fail_start: true }) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EngineStartError);
    expect((err as Error).message).toMatch(/ModelLoadError/);
  });
});

// Runs after the other describes' engines are gone: it takes both (fake) GPUs.
describe('engine info', () => {
  it('an engine on 2 GPUs reports tensor-parallel size 2 and both GPU ids', async () => {
    const tp2 = await LLMEngine.deploy({ ...scripted(), numGpus: 2 });
    try {
      const info = await tp2.info();
      expect(info.tensor_parallel_size).toBe(2);
      expect([...info.gpu_ids].sort()).toEqual(['0', '1']);
      // The state API's row of the engine actor (what `tsray list actors` shows): the same numbers.
      const row = (await listActors()).find((a) => a.pid === info.pid && a.state === 'ALIVE');
      expect(row).toMatchObject({ className: 'EngineActor', tensorParallelSize: 2 });
      expect([...row!.gpuIds!].sort()).toEqual([0, 1]);
    } finally {
      await tp2.shutdown();
    }
  });
});
