/**
 * GPU smoke run of the vLLM bridge (issue #9), in one driver process:
 *
 *  1. one engine (TP=1, backend from TSRAY_BACKEND, default 'vllm') on the model TSRAY_MODEL (default:
 *     the tiny local model; SMOKE_EXPECT_PARIS=1 with the real model checks its greedy chat answer): generate + stream through `LLMEngine`, then the OpenAI server
 *     (`serveOpenAI`) driven by the official `openai` npm client (completions, chat, streaming, models);
 *  2. the seed's scheduler-actor flow (examples/07-cluster): the engine registered as "engine" in
 *     namespace "head", a TS scheduler actor (in a node worker process) that splits inputs into
 *     batches of 2 and calls the engine by name;
 *  3. with SMOKE_DP=<fraction> (e.g. 0.45): DataParallel with 2 ranks sharing the one GPU, each
 *     holding that fraction of it.
 *
 * Prints one `RESULT {json}` line per check and `SMOKE OK` / `SMOKE FAILED` at the end.
 * Run (CPU check): TSRAY_BACKEND=transformers npx tsx tools/gpu/smoke.ts
 * On the GPU machine it runs as a bundle (tools/gpu/bundle.mjs → .carry/js/bin/smoke.mjs).
 */
import { clusterResources, get, init, isMain, shutdown } from '@tsray/core';
import { DataParallel, ensureTinyModel, LLMEngine, serveOpenAI } from '@tsray/vllm-bridge';
import OpenAI from 'openai';
import { RemoteVllmScheduler } from '../../examples/07-cluster/actors.js';

const results: Record<string, unknown>[] = [];
let failed = 0;
function report(check: string, ok: boolean, detail: Record<string, unknown> = {}): void {
  const r = { check, ok, ...detail };
  results.push(r);
  if (!ok) failed++;
  console.log(`RESULT ${JSON.stringify(r)}`);
}
async function step(check: string, fn: () => Promise<Record<string, unknown>>): Promise<void> {
  const t0 = performance.now();
  try {
    const detail = await fn();
    report(check, detail['ok'] === undefined ? true : Boolean(detail['ok']), { ms: Math.round(performance.now() - t0), ...detail });
  } catch (e) {
    report(check, false, {
      ms: Math.round(performance.now() - t0),
      error: `${(e as Error).name}: ${(e as Error).message}`,
      stack: (e as Error).stack?.split('\n').slice(0, 6).join(' | '),
    });
  }
}

if (isMain(import.meta)) {
  const python = process.env['TSRAY_PYTHON'] ?? '.venv/bin/python';
  const backend = (process.env['TSRAY_BACKEND'] ?? 'vllm') as 'vllm' | 'transformers' | 'scripted';
  const t0 = performance.now();
  const info = await init({ python, namespace: 'head', logToDriver: true });
  const resources = await clusterResources();
  console.log(`cluster: node ${info.nodeId}, resources ${JSON.stringify(resources)}`);
  const gpus = resources['GPU'] ?? 0;
  const model = process.env['TSRAY_MODEL'] ?? ensureTinyModel(python);
  const engineArgs: Record<string, unknown> = backend === 'vllm' ? { max_model_len: 2048 } : backend === 'transformers' ? { torch_threads: 1 } : {};
  let engine: LLMEngine | undefined;
  await step('deploy', async () => {
    const ts = performance.now();
    engine = await LLMEngine.deploy({ model, backend, numGpus: backend === 'vllm' && gpus > 0 ? 1 : 0, engineArgs, name: 'engine', namespace: 'head' });
    const inf = await engine.info();
    const st = await engine.stats();
    return { startMs: Math.round(performance.now() - ts), info: inf, stats: st };
  });
  if (engine) {
    const e = engine;
    const prompts = ['Hello, my name is', 'The president of the United States is', 'The capital of France is', 'The future of AI is'];
    await step('generate', async () => {
      const out = await e.generate(prompts, { temperature: 0.8, topP: 0.95, maxTokens: 16, seed: 0 });
      const ok = out.length === 4 && out.every((c) => c.tokenIds.length > 0 && c.usage.completionTokens === c.tokenIds.length);
      return { ok, texts: out.map((c) => c.text), finish: out.map((c) => c.finishReason), usage: out.map((c) => c.usage) };
    });
    await step('greedy-deterministic', async () => {
      const a = await e.generate('Once upon a time', { temperature: 0, maxTokens: 24, ignoreEos: true });
      const b = await e.generate('Once upon a time', { temperature: 0, maxTokens: 24, ignoreEos: true });
      return { ok: a[0]!.tokenIds.join() === b[0]!.tokenIds.join() && a[0]!.tokenIds.length === 24, text: a[0]!.text, tokens: a[0]!.tokenIds.length };
    });
    if (process.env['SMOKE_EXPECT_PARIS'] === '1') {
      // A real model (SmolLM2-135M-Instruct, issue #23): the greedy chat answer means something.
      await step('real-model-answer', async () => {
        const [c] = await e.generate({ messages: [{ role: 'user', content: 'What is the capital of France?' }] }, { temperature: 0, maxTokens: 24 });
        return { ok: /Paris/.test(c!.text), text: c!.text, finish: c!.finishReason };
      });
    }
    await step('stream', async () => {
      const ts = performance.now();
      let first: number | undefined;
      let text = '';
      let n = 0;
      let deltas = 0;
      let finish: string | undefined;
      for await (const d of e.stream('Once upon a time', { temperature: 0, maxTokens: 32, ignoreEos: true })) {
        first ??= performance.now() - ts;
        text += d.text;
        n += d.tokenIds.length;
        deltas++;
        finish = d.finishReason ?? finish;
      }
      return {
        ok: n === 32 && finish === 'length' && deltas > 1,
        tokens: n,
        deltas,
        finish,
        ttftMs: +(first ?? 0).toFixed(2),
        totalMs: +(performance.now() - ts).toFixed(2),
        text,
      };
    });
    await step('n=2 + logprobs + stop', async () => {
      const [c] = await e.generate('The quick brown fox', { temperature: 1, maxTokens: 12, n: 2, logprobs: 1, seed: 7 });
      return { ok: (c!.alternatives?.length ?? 1) >= 1, text: c!.text, alternatives: c!.alternatives?.map((x) => x.text) };
    });
    await step('abort', async () => {
      const ac = new AbortController();
      let got = 0;
      let err = '';
      try {
        for await (const d of e.stream('Abort me', { temperature: 0, maxTokens: 1000, ignoreEos: true }, { signal: ac.signal })) {
          got += d.tokenIds.length;
          if (got >= 5) ac.abort();
        }
      } catch (x) {
        err = (x as Error).name;
      }
      const st = await e.stats();
      return { ok: got >= 5 && got < 1000, tokensBeforeAbort: got, error: err, statsAfter: st };
    });
    await step('concurrent-64', async () => {
      const ts = performance.now();
      const outs = await Promise.all(Array.from({ length: 64 }, (_, i) => e.generate(`request ${i}`, { temperature: 0, maxTokens: 64, ignoreEos: true })));
      const tokens = outs.reduce((a, o) => a + o[0]!.tokenIds.length, 0);
      const s = (performance.now() - ts) / 1000;
      return { ok: tokens === 64 * 64, tokens, seconds: +s.toFixed(3), tokensPerS: Math.round(tokens / s) };
    });

    // OpenAI server + official client.
    await step('openai', async () => {
      const server = await serveOpenAI(e, { port: 0, host: '127.0.0.1', modelName: 'tsray-model' });
      try {
        const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'none', maxRetries: 0 });
        const models = await client.models.list();
        const comp = await client.completions.create({ model: 'tsray-model', prompt: 'Hello, my name is', max_tokens: 16, temperature: 0 });
        const chat = await client.chat.completions.create({
          model: 'tsray-model',
          messages: [{ role: 'user', content: 'What is the capital of France?' }],
          max_tokens: 16,
          temperature: 0,
        });
        let streamed = '';
        let chunks = 0;
        const stream = await client.chat.completions.create({
          model: 'tsray-model',
          messages: [{ role: 'user', content: 'Tell me a story' }],
          max_tokens: 24,
          temperature: 0,
          stream: true,
          stream_options: { include_usage: true },
        });
        let streamUsage: unknown;
        for await (const ch of stream) {
          chunks++;
          streamed += ch.choices[0]?.delta?.content ?? '';
          if (ch.usage) streamUsage = ch.usage;
        }
        let cstreamed = '';
        let cchunks = 0;
        const cstream = await client.completions.create({ model: 'tsray-model', prompt: 'Once upon a time', max_tokens: 24, temperature: 0, stream: true });
        for await (const ch of cstream) {
          cchunks++;
          cstreamed += ch.choices[0]?.text ?? '';
        }
        let badStatus = 0;
        try {
          await client.completions.create({ model: 'tsray-model', prompt: 'x', max_tokens: -3 });
        } catch (x) {
          badStatus = (x as { status?: number }).status ?? -1;
        }
        const metrics = await (await fetch(`${server.url}/metrics`)).text();
        return {
          ok:
            models.data.length >= 1 &&
            (comp.usage?.completion_tokens ?? 0) > 0 &&
            (chat.usage?.completion_tokens ?? 0) > 0 &&
            chunks > 1 &&
            cchunks > 1 &&
            streamUsage !== undefined &&
            metrics.includes('vllm:kv_cache_usage_perc{model_name="tsray-model"}') &&
            badStatus === 400,
          streamUsage,
          vllmMetrics: metrics
            .split('\n')
            .filter((l) => l.startsWith('vllm:num_requests') || l.startsWith('vllm:kv_cache') || l.startsWith('vllm:generation_tokens_total')),
          models: models.data.map((m) => m.id),
          completion: comp.choices[0]?.text,
          completionUsage: comp.usage,
          chat: chat.choices[0]?.message?.content,
          chatFinish: chat.choices[0]?.finish_reason,
          chatStreamChunks: chunks,
          chatStreamed: streamed,
          completionStreamChunks: cchunks,
          completionStreamed: cstreamed,
          badRequestStatus: badStatus,
          metricsLines: metrics.split('\n').filter((l) => l && !l.startsWith('#')).length,
        };
      } finally {
        await server.close();
      }
    });

    // The seed's scheduler-actor flow: a TS actor (node worker process) calls the engine by name.
    await step('scheduler-actor', async () => {
      const scheduler = RemoteVllmScheduler.options({ name: 'scheduler', namespace: 'head', numCpus: 1 }).remote({
        kind: 'llm',
        name: 'engine',
        namespace: 'head',
      });
      const inputs = ['Hello, my name is', 'The president of the United States is', 'The capital of France is', 'The future of AI is', 'Once upon a time'];
      const out = await get(scheduler.schedule.remote(inputs));
      return { ok: Array.isArray(out) && out.length === inputs.length, outputs: out };
    });

    await step('engine-shutdown', async () => {
      await e.shutdown();
      return {};
    });
  }

  const dpFraction = Number(process.env['SMOKE_DP'] ?? 0);
  if (dpFraction > 0) {
    await step(`data-parallel-2x${dpFraction}`, async () => {
      const ts = performance.now();
      const dp = await DataParallel.deploy({ model, backend, ranks: 2, gpusPerRank: backend === 'vllm' && gpus > 0 ? dpFraction : 0, engineArgs });
      const startMs = Math.round(performance.now() - ts);
      try {
        const prompts = Array.from({ length: 32 }, (_, i) => `data parallel prompt ${i}`);
        const outs = await dp.generate(prompts, { temperature: 0, maxTokens: 32, ignoreEos: true });
        const st = await dp.stats();
        return { ok: outs.length === 32 && st.every((s) => s.served > 0), startMs, servedPerRank: st.map((s) => s.served), first: outs[0]?.text };
      } finally {
        await dp.shutdown();
      }
    });
  }
  await shutdown();
  console.log(`SMOKE ${failed === 0 ? 'OK' : 'FAILED'} (${results.length} checks, ${failed} failed, ${Math.round((performance.now() - t0) / 1000)} s)`);
  process.exitCode = failed === 0 ? 0 : 1;
}
