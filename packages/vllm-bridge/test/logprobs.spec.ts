/**
 * `logprobs` through the TS API with the CPU engine (transformers backend, the tiny random model): real
 * log-softmax values per generated token, the step's top tokens sorted, the sampled token's own entry.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { init, shutdown } from '@tsray/core';
import { ensureTinyModel, LLMEngine, type StreamDelta, type TokenLogprob } from '@tsray/vllm-bridge';

const venvPython = fileURLToPath(new URL('../../../.venv/bin/python', import.meta.url));
let engine: LLMEngine;

beforeAll(async () => {
  await init({ numCpus: 2, objectStoreMemory: 64 * 1024 * 1024, python: venvPython, logToDriver: false });
  engine = await LLMEngine.deploy({ model: ensureTinyModel(venvPython), backend: 'transformers' });
}, 300_000);
afterAll(async () => {
  await engine?.shutdown();
  await shutdown();
});

/** Every entry is a log-probability, the top list is sorted and `k` long, and the step's probabilities sum to ≤ 1. */
function expectSane(lps: TokenLogprob[], tokenIds: number[], k: number): void {
  expect(lps.map((l) => l.tokenId)).toEqual(tokenIds);
  for (const l of lps) {
    const values = [l.logprob, ...l.top.map((t) => t.logprob)];
    expect(values.every((v) => Number.isFinite(v) && v <= 0)).toBe(true);
    expect(l.top).toHaveLength(k);
    expect(l.top.map((t) => t.logprob)).toEqual([...l.top.map((t) => t.logprob)].sort((a, b) => b - a));
    expect(new Set(l.top.map((t) => t.tokenId)).size).toBe(k);
    expect(l.top.reduce((a, t) => a + Math.exp(t.logprob), 0)).toBeLessThanOrEqual(1 + 1e-5);
    // The sampled token, where it is among the top ones, has the same value there.
    const same = l.top.find((t) => t.tokenId === l.tokenId);
    if (same) expect(same.logprob).toBeCloseTo(l.logprob, 5);
    else expect(l.logprob).toBeLessThanOrEqual(l.top[k - 1]!.logprob);
  }
}

describe('logprobs (transformers backend)', () => {
  it('greedy: one entry per token, the sampled token most likely, its text as the engine decodes it', async () => {
    const [c] = await engine.generate('hello world', { temperature: 0, maxTokens: 6, logprobs: 3, ignoreEos: true });
    expect(c!.logprobs).toHaveLength(6);
    expectSane(c!.logprobs!, c!.tokenIds, 3);
    for (const l of c!.logprobs!) expect(l.top[0]!.tokenId).toBe(l.tokenId);
    const first = c!.logprobs![0]!;
    expect(first.token).toBe(await engine.detokenize([first.tokenId]));
    expect(first.top[1]!.token).toBe(await engine.detokenize([first.top[1]!.tokenId]));
  });

  it('sampled and streamed: the deltas carry the entries of their own tokens; logprobs 0 = no top list', async () => {
    const deltas: StreamDelta[] = [];
    for await (const d of engine.stream('the cat', { temperature: 1, seed: 7, maxTokens: 8, logprobs: 2, ignoreEos: true })) deltas.push(d);
    const lps = deltas.flatMap((d) => d.logprobs ?? []);
    expect(lps).toHaveLength(8);
    expectSane(
      lps,
      deltas.flatMap((d) => d.tokenIds),
      2,
    );
    const [zero] = await engine.generate('the cat', { temperature: 0, maxTokens: 3, logprobs: 0, ignoreEos: true });
    expect(zero!.logprobs!.map((l) => l.top)).toEqual([[], [], []]);
    const [none] = await engine.generate('the cat', { temperature: 0, maxTokens: 3 });
    expect(none!.logprobs).toBeUndefined();
  });
});
