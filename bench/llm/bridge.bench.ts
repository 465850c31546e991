/**
 * Bridge overhead: the same engine backend and workload driven through tsray's LLMEngine (TS driver →
 * ZeroMQ data plane → engine actor) and directly in Python (bench/llm/direct.py), in one run.
 * Reports per-request latency, time to first token and per-token time for both, and the added cost.
 *
 * Run: npx tsx bench/llm/bridge.bench.ts [--backend scripted|transformers] [--requests 200] [--tokens 32] [--concurrency 1]
 */
import { execFileSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { init, isMain, shutdown } from '@tsray/core';
import { ensureTinyModel, LLMEngine } from '@tsray/vllm-bridge';

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.round((p / 100) * (xs.length - 1)))]!;

if (isMain(import.meta)) {
  const { values } = parseArgs({ options: { backend: { type: 'string', default: 'scripted' }, requests: { type: 'string', default: '200' }, tokens: { type: 'string', default: '32' }, concurrency: { type: 'string', default: '1' } } });
  const python = process.env['TSRAY_PYTHON'] ?? '.venv/bin/python';
  const backend = values.backend as 'scripted' | 'transformers';
  const model = backend === 'scripted' ? 'scripted' : ensureTinyModel(python);
  const [requests, tokens, concurrency] = [Number(values.requests), Number(values.tokens), Number(values.concurrency)];
  const direct = JSON.parse(
    execFileSync(python, ['bench/llm/direct.py', '--backend', backend, '--model', model, '--requests', String(requests), '--tokens', String(tokens), '--concurrency', String(concurrency)], { encoding: 'utf8' }).trim().split('\n').pop()!,
  );
  await init({ python, logToDriver: false });
  const engine = await LLMEngine.deploy({ model, backend, engineArgs: backend === 'transformers' ? { torch_threads: 1 } : {} });
  const params = { temperature: 0, maxTokens: tokens, ignoreEos: true };
  const lat: number[] = [];
  const ttft: number[] = [];
  let produced = 0;
  const one = async (i: number) => {
    const t0 = performance.now();
    let first: number | undefined;
    for await (const d of engine.stream(`prompt number ${i}`, params)) {
      first ??= performance.now() - t0;
      produced += d.tokenIds.length;
    }
    lat.push(performance.now() - t0);
    ttft.push(first ?? 0);
  };
  for (let i = 0; i < 10; i++) await one(-1 - i);
  lat.length = 0;
  ttft.length = 0;
  produced = 0;
  const t0 = performance.now();
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => { while (next < requests) await one(next++); }));
  const el = (performance.now() - t0) / 1000;
  const bridge = {
    system: 'tsray-bridge', backend, requests, tokens, concurrency,
    latency_p50_ms: +pct(lat, 50).toFixed(3), latency_p99_ms: +pct(lat, 99).toFixed(3),
    ttft_p50_ms: +pct(ttft, 50).toFixed(3), ttft_p99_ms: +pct(ttft, 99).toFixed(3),
    tokens_per_s: +(produced / el).toFixed(1), ms_per_token: +((lat.reduce((a, b) => a + b, 0) / lat.length / tokens)).toFixed(4),
  };
  console.log(JSON.stringify(direct));
  console.log(JSON.stringify(bridge));
  console.log(
    JSON.stringify({
      added_latency_p50_ms: +(bridge.latency_p50_ms - direct.latency_p50_ms).toFixed(3),
      added_ttft_p50_ms: +(bridge.ttft_p50_ms - direct.ttft_p50_ms).toFixed(3),
      added_ms_per_token: +(bridge.ms_per_token - direct.ms_per_token).toFixed(4),
      tokens_per_s_ratio: +(bridge.tokens_per_s / direct.tokens_per_s).toFixed(3),
    }),
  );
  await engine.shutdown();
  await shutdown();
}
