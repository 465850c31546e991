import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { init, shutdown } from '@tsray/core';
import { DataParallel, LLMEngine, serveOpenAI, type OpenAIServer } from '@tsray/vllm-bridge';
import { until } from './helpers/until.js';

const venvPython = fileURLToPath(new URL('../../../.venv/bin/python', import.meta.url));

beforeAll(async () => {
  await init({ numCpus: 6, numGpus: 4, objectStoreMemory: 128 * 1024 * 1024, python: venvPython, logToDriver: false });
});
afterAll(async () => {
  await shutdown();
});

describe('DataParallel', () => {
  it('spreads a skewed batch over 4 ranks (GPU-pinned, disjoint), results in input order, per-rank calls', async () => {
    const dp = await DataParallel.deploy({
      model: 'scripted',
      backend: 'scripted',
      engineArgs: { token_delay_s: 0.002 },
      ranks: 4,
      gpusPerRank: 1,
      statsIntervalMs: 20,
    });
    try {
      const infos = await Promise.all([0, 1, 2, 3].map((i) => dp.rank(i).info()));
      expect(new Set(infos.map((x) => x.cuda_visible_devices)).size).toBe(4);
      // Skewed lengths: every 4th request is long.
      const prompts = Array.from({ length: 40 }, (_, i) => `p${i}${i % 4 === 0 ? ' long' : ''}`);
      const out = await Promise.all(prompts.map((p, i) => dp.generate([p], { maxTokens: i % 4 === 0 ? 60 : 5 })));
      expect(out.map((o) => o[0]!.tokenIds.length)).toEqual(prompts.map((_, i) => (i % 4 === 0 ? 60 : 5)));
      const stats = await dp.stats();
      const served = stats.map((s) => s.served);
      // Every rank took work and none took more than twice its share.
      expect(Math.min(...served)).toBeGreaterThan(0);
      expect(Math.max(...served)).toBeLessThanOrEqual(20);
      const [one] = await dp.rank(2).generate('direct', { maxTokens: 2 });
      expect(one!.text).toBe('tok0 tok1');
    } finally {
      await dp.shutdown();
    }
  });
});

describe('DataParallel prefix affinity', () => {
  it('sends prompts with a seen prefix to the same rank while loads are close', async () => {
    const dp = await DataParallel.deploy({ model: 'scripted', backend: 'scripted', ranks: 2, prefixAffinity: 16, statsIntervalMs: 1000 });
    try {
      const system = 'You are a helpful assistant. ';
      await dp.generate([`${system}first`], { maxTokens: 1 });
      const before = (await dp.stats()).map((s) => s.served);
      const owner = before.indexOf(1);
      for (let i = 0; i < 3; i++) await dp.generate([`${system}question ${i}`], { maxTokens: 1 });
      const after = (await dp.stats()).map((s) => s.served);
      expect(after[owner]).toBe(4);
    } finally {
      await dp.shutdown();
    }
  });
});

describe('OpenAI-compatible server (official openai client)', () => {
  let engine: LLMEngine;
  let server: OpenAIServer;
  let client: OpenAI;
  beforeAll(async () => {
    engine = await LLMEngine.deploy({ model: 'scripted', backend: 'scripted', engineArgs: { token_delay_s: 0.002 } });
    server = await serveOpenAI(engine, { port: 0, modelName: 'tiny' });
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'none', maxRetries: 0 });
  });
  afterAll(async () => {
    await server.close();
    await engine.shutdown();
  });

  it('lists the model and completes, streaming and not', async () => {
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual(['tiny']);
    const c = await client.completions.create({ model: 'tiny', prompt: 'hello there', max_tokens: 3 });
    expect(c.choices[0]!.text).toBe('tok0 tok1 tok2');
    expect(c.choices[0]!.finish_reason).toBe('length');
    expect(c.usage!.completion_tokens).toBe(3);
    const stream = await client.completions.create({ model: 'tiny', prompt: 'hello', max_tokens: 4, stream: true });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]!.text;
    expect(text).toBe('tok0 tok1 tok2 tok3');
  });

  it('chat completions apply the chat template, streaming and not', async () => {
    const r = await client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });
    expect(r.choices[0]!.message.content).toBe('tok0 tok1');
    const s = await client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'hi' }], max_tokens: 3, stream: true });
    let text = '';
    for await (const chunk of s) text += chunk.choices[0]?.delta?.content ?? '';
    expect(text).toBe('tok0 tok1 tok2');
  });

  it('answers bad requests with 400 naming the field, and a wrong model with 404', async () => {
    const e1 = await client.completions.create({ model: 'tiny', prompt: 'x', temperature: -2 }).catch((e: unknown) => e);
    expect((e1 as { status: number }).status).toBe(400);
    expect(String((e1 as Error).message)).toContain('temperature');
    const e2 = await client.completions.create({ model: 'tiny', prompt: Array(300).fill('w').join(' ') }).catch((e: unknown) => e);
    expect((e2 as { status: number }).status).toBe(400);
    const e3 = await client.completions.create({ model: 'nope', prompt: 'x' }).catch((e: unknown) => e);
    expect((e3 as { status: number }).status).toBe(404);
    const raw = await fetch(`${server.url}/v1/completions`, { method: 'POST', body: '{not json' });
    expect(raw.status).toBe(400);
  });

  it('a client that disconnects aborts its request in the engine', async () => {
    // __hang__: the engine produces nothing until the request is aborted, so the only way the engine
    // can become idle again is the abort that the client's disconnect must cause.
    const ac = new AbortController();
    const consumed = (async () => {
      const stream = await client.completions.create({ model: 'tiny', prompt: '__hang__ go', max_tokens: 10, stream: true }, { signal: ac.signal });
      for await (const _ of stream) throw new Error('a __hang__ request produced a token');
    })();
    const outcome = consumed.then(
      () => 'ended',
      (e: unknown) => e,
    );
    await until(async () => (await engine.stats()).running === 1, 'the request to run in the engine');
    ac.abort();
    expect(await outcome).toBeInstanceOf(OpenAI.APIUserAbortError);
    await until(async () => {
      const s = await engine.stats();
      return s.running + s.waiting === 0;
    }, 'the engine to drop the aborted request');
  });

  it('serves /health and Prometheus /metrics', async () => {
    expect((await fetch(`${server.url}/health`)).status).toBe(200);
    const m = await (await fetch(`${server.url}/metrics`)).text();
    expect(m).toContain('vllm:time_to_first_token_seconds_bucket{le="0.001",model_name="tiny"}');
    expect(m).toMatch(/vllm:generation_tokens_total\{model_name="tiny"\} [1-9]/);
    expect(m).toContain('vllm:num_requests_running{model_name="tiny"} 0');
  });
});
