/**
 * Bridge overhead: the same engine and workload driven through tsray's LLMEngine (TS driver →
 * ZeroMQ data plane → engine actor) and directly in Python (bench/llm/direct.py; for vLLM that is
 * vLLM's own AsyncLLM with the same engine arguments), one after the other in one run.
 * Reports output tokens/s, per-request latency, time to first token and inter-token latency for
 * both, and the bridge's added cost.
 *
 * Run: npx tsx bench/llm/bridge.bench.ts [--backend scripted|transformers|vllm] [--model DIR]
 *        [--requests 200 --concurrency 1 | --workloads 1000x1000,50x1] [--tokens 32]
 *        [--input-tokens 0] [--prompt-vocab 400] [--engine-args JSON] [--num-gpus 0] [--warmup 10]
 *        [--out results.json] [--skip-direct | --direct-from direct.log] [--direct-after] [--greedy-check N]
 * --direct-after: run direct.py once more after the bridge (direct, bridge, direct) and compare the
 * bridge with the mean of the two direct runs, so that a machine whose speed drifts during the run
 * does not favour the side that ran first.
 * --greedy-check N: the first N GREEDY_PROMPTS at temperature 0 through the bridge, token ids compared
 * with direct.py's (same flag): a `greedy_check` line says how many are identical.
 * On the GPU machine: tools/gpu/remote-run.sh bench (a bundle of this file).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { init, isMain, shutdown } from '@tsray/core';
import { ensureTinyModel, LLMEngine } from '@tsray/vllm-bridge';

const pct = (xs: number[], p: number) => (xs.length ? [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.round((p / 100) * (xs.length - 1)))]! : 0);
const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
const r3 = (x: number) => +x.toFixed(3);
const r4 = (x: number) => +x.toFixed(4);

/** Token ids of request i: the same formula as bench/llm/direct.py (distinct first token per request). */
export function promptIds(i: number, n: number, lo: number, span: number): number[] {
  return Array.from({ length: n }, (_, j) => lo + ((i * 977 + j * 131) % span));
}

type Metrics = Record<string, number | string>;

/** The same list as GREEDY_PROMPTS in bench/llm/direct.py. */
export const GREEDY_PROMPTS = [
  'The capital of France is',
  'Hello, my name is',
  'The president of the United States is',
  'The future of AI is',
  'Once upon a time',
  'The quick brown fox',
  'To be or not to be',
  'In a galaxy far away',
];

if (isMain(import.meta)) {
  const { values } = parseArgs({
    options: {
      backend: { type: 'string', default: 'scripted' },
      model: { type: 'string' },
      requests: { type: 'string', default: '200' },
      tokens: { type: 'string', default: '32' },
      concurrency: { type: 'string', default: '1' },
      workloads: { type: 'string', default: '' },
      'input-tokens': { type: 'string', default: '0' },
      'prompt-vocab': { type: 'string', default: '400' },
      'engine-args': { type: 'string', default: '' },
      'num-gpus': { type: 'string', default: '0' },
      warmup: { type: 'string', default: '10' },
      out: { type: 'string', default: '' },
      'skip-direct': { type: 'boolean', default: false },
      'direct-from': { type: 'string', default: '' },
      'direct-after': { type: 'boolean', default: false },
      'greedy-check': { type: 'string', default: '0' },
    },
  });
  const python = process.env['TSRAY_PYTHON'] ?? '.venv/bin/python';
  const backend = values.backend as 'scripted' | 'transformers' | 'vllm';
  const model = values.model ?? process.env['TSRAY_MODEL'] ?? (backend === 'scripted' ? 'scripted' : ensureTinyModel(python));
  const tokens = Number(values.tokens);
  const inputTokens = Number(values['input-tokens']);
  const promptVocab = Number(values['prompt-vocab']);
  const numGpus = Number(values['num-gpus']);
  const warmup = Number(values.warmup);
  const workloads: [number, number][] = values.workloads
    ? values.workloads.split(',').map((w) => w.toLowerCase().split('x').map(Number) as [number, number])
    : [[Number(values.requests), Number(values.concurrency)]];
  const engineArgs: Record<string, unknown> = values['engine-args']
    ? JSON.parse(values['engine-args'])
    : backend === 'transformers'
      ? { torch_threads: 1 }
      : {};

  const directArgs = [
    'bench/llm/direct.py',
    '--backend',
    backend,
    '--model',
    model,
    '--tokens',
    String(tokens),
    '--workloads',
    workloads.map(([r, c]) => `${r}x${c}`).join(','),
    '--input-tokens',
    String(inputTokens),
    '--prompt-vocab',
    String(promptVocab),
    '--num-gpus',
    String(numGpus),
    '--warmup',
    String(warmup),
    '--engine-args',
    JSON.stringify(engineArgs),
    '--greedy-check',
    values['greedy-check']!,
  ];
  type DirectRun = { metrics: Metrics[]; engine?: Record<string, unknown>; greedy?: { prompt: string; token_ids: number[] }[] };
  /** The JSON lines of a direct.py run (its log, or its stdout). */
  const parseDirect = (out: string): DirectRun => {
    const run: DirectRun = { metrics: [] };
    for (const line of out.trim().split('\n')) {
      if (!line.startsWith('{')) continue;
      let j: Metrics & { engine?: string; greedy?: { prompt: string; token_ids: number[] }[] };
      try {
        j = JSON.parse(line) as typeof j;
      } catch {
        continue;
      }
      if (j['system'] !== 'python-direct') continue;
      if (j.greedy) run.greedy = j.greedy;
      else if (j.engine) run.engine = j;
      else run.metrics.push(j);
    }
    return run;
  };
  const runDirect = (): DirectRun => {
    const t = performance.now();
    const run = parseDirect(execFileSync(python, directArgs, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 << 20 }));
    console.log(`direct run: ${((performance.now() - t) / 1000).toFixed(1)} s`);
    return run;
  };
  let direct: Metrics[] = [];
  let directEngine: Record<string, unknown> | undefined;
  let directGreedy: { prompt: string; token_ids: number[] }[] | undefined;
  if (!values['skip-direct']) {
    // Either run direct.py now, or read the JSON lines of an earlier run of it (--direct-from: its
    // log, so that its engine output streams to the terminal while it runs).
    const first = values['direct-from'] ? parseDirect(readFileSync(values['direct-from'], 'utf8')) : runDirect();
    ({ metrics: direct, engine: directEngine, greedy: directGreedy } = first);
    if (directEngine) console.log(JSON.stringify(directEngine));
  }

  await init({ python, logToDriver: true });
  const tStart = performance.now();
  const engine = await LLMEngine.deploy({ model, backend, numGpus, engineArgs });
  const startS = (performance.now() - tStart) / 1000;
  const params = { temperature: 0, maxTokens: tokens, ignoreEos: true };
  const prompt = (i: number) => (inputTokens > 0 ? promptIds(i, inputTokens, 10, promptVocab) : `prompt number ${i}`);

  const run = async (requests: number, concurrency: number, base: number) => {
    const lat: number[] = [];
    const ttft: number[] = [];
    const itl: number[] = [];
    let produced = 0;
    const one = async (i: number) => {
      const t0 = performance.now();
      let first: number | undefined;
      let n = 0;
      for await (const d of engine.stream(prompt(base + i), params, { requestId: `r${base + i}` })) {
        if (first === undefined && d.tokenIds.length > 0) first = performance.now() - t0;
        n += d.tokenIds.length;
      }
      const t = performance.now() - t0;
      lat.push(t);
      ttft.push(first ?? 0);
      if (n > 1 && first !== undefined) itl.push((t - first) / (n - 1));
      produced += n;
    };
    const t0 = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(concurrency, requests) }, async () => {
        while (next < requests) await one(next++);
      }),
    );
    return { lat, ttft, itl, produced, el: (performance.now() - t0) / 1000 };
  };

  await run(warmup, warmup, 0);
  const bridge: Metrics[] = [];
  for (const [k, [requests, concurrency]] of workloads.entries()) {
    const { lat, ttft, itl, produced, el } = await run(requests, concurrency, 10_000 * (k + 1));
    bridge.push({
      system: 'tsray-bridge',
      backend,
      requests,
      tokens,
      input_tokens: inputTokens,
      concurrency,
      elapsed_s: r3(el),
      output_tokens: produced,
      latency_p50_ms: r3(pct(lat, 50)),
      latency_p99_ms: r3(pct(lat, 99)),
      ttft_p50_ms: r3(pct(ttft, 50)),
      ttft_p99_ms: r3(pct(ttft, 99)),
      itl_mean_ms: r4(mean(itl)),
      itl_p50_ms: r4(pct(itl, 50)),
      itl_p99_ms: r4(pct(itl, 99)),
      tokens_per_s: +(produced / el).toFixed(1),
      ms_per_token: r4(mean(lat) / tokens),
    });
  }
  // Temperature 0 through the bridge must give vLLM's own tokens (the same prompts at once, as direct.py).
  let greedyCheck: Record<string, unknown> | undefined;
  const nGreedy = Number(values['greedy-check']);
  if (nGreedy > 0) {
    const prompts = GREEDY_PROMPTS.slice(0, nGreedy);
    const outs = await engine.generate(prompts, { temperature: 0, maxTokens: tokens });
    const mismatches = outs.flatMap((c, i) => {
      const want = directGreedy?.[i]?.token_ids;
      return want && want.join() === c.tokenIds.join() ? [] : [{ prompt: prompts[i], bridge: c.tokenIds, direct: want ?? null }];
    });
    greedyCheck = { prompts: prompts.length, identical: prompts.length - mismatches.length, mismatches, sample: { prompt: prompts[0], text: outs[0]!.text } };
    console.log(JSON.stringify({ greedy_check: greedyCheck }));
  }
  const engineInfo = await engine.info();
  await engine.shutdown();
  await shutdown();
  // direct, bridge, direct: the bridge is compared with the mean of the direct runs before and after it.
  const directBefore = direct;
  const directAfter = values['direct-after'] && !values['skip-direct'] ? runDirect().metrics : [];
  if (directAfter.length > 0) {
    direct = directBefore.map((d, k) => {
      const a = directAfter[k];
      if (!a) return d;
      const avg = (key: string) => (Number(d[key]) + Number(a[key])) / 2;
      return {
        ...d,
        runs: 2,
        tokens_per_s: +avg('tokens_per_s').toFixed(1),
        ...Object.fromEntries(['latency_p50_ms', 'latency_p99_ms', 'ttft_p50_ms', 'ttft_p99_ms', 'ms_per_token'].map((key) => [key, r3(avg(key))])),
        ...Object.fromEntries(['itl_mean_ms', 'itl_p50_ms', 'itl_p99_ms'].map((key) => [key, r4(avg(key))])),
      };
    });
  }

  const compare = bridge.map((b, k) => {
    const d = direct[k];
    if (!d) return { requests: b['requests'], concurrency: b['concurrency'] };
    const n = (m: Metrics, key: string) => Number(m[key]);
    return {
      requests: b['requests'],
      concurrency: b['concurrency'],
      tokens_per_s_ratio: r3(n(b, 'tokens_per_s') / n(d, 'tokens_per_s')),
      added_ttft_p50_ms: r3(n(b, 'ttft_p50_ms') - n(d, 'ttft_p50_ms')),
      added_ttft_p99_ms: r3(n(b, 'ttft_p99_ms') - n(d, 'ttft_p99_ms')),
      added_itl_mean_ms: r4(n(b, 'itl_mean_ms') - n(d, 'itl_mean_ms')),
      added_latency_p50_ms: r3(n(b, 'latency_p50_ms') - n(d, 'latency_p50_ms')),
      added_ms_per_token: r4(n(b, 'ms_per_token') - n(d, 'ms_per_token')),
    };
  });
  for (const d of direct) console.log(JSON.stringify(d));
  for (const b of bridge) console.log(JSON.stringify(b));
  for (const c of compare) console.log(JSON.stringify({ compare: c }));
  if (values.out) {
    writeFileSync(
      values.out,
      JSON.stringify(
        {
          date: new Date().toISOString(),
          backend,
          model,
          tokens,
          inputTokens,
          workloads,
          engineArgs,
          numGpus,
          bridgeStartS: r3(startS),
          bridgeEngine: engineInfo,
          directEngine,
          direct,
          directBefore,
          directAfter,
          bridge,
          compare,
          greedyCheck,
        },
        null,
        2,
      ) + '\n',
    );
  }
}
