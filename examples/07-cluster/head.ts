/**
 * Head node of the seed's design: starts the cluster, an LLM engine (1 GPU with vLLM where there is
 * one, else a CPU engine with the tiny local model), and the CPU scheduler actor registered as name
 * "scheduler" in namespace "head"; then keeps running (Ctrl-C stops it). ENGINE=echo uses an echo actor.
 *
 * Run: npx tsx examples/07-cluster/head.ts     (then, in another terminal: npx tsx examples/07-cluster/worker.ts)
 */
import { clusterResources, get, init, isMain, shutdown } from '@tsray/core';
import { ensureTinyModel, LLMEngine } from '@tsray/vllm-bridge';
import { RemoteEchoEngine, RemoteVllmScheduler, type EngineRef } from './actors.js';

if (isMain(import.meta)) {
  const info = await init({ address: 'local', namespace: 'head', numCpus: Number(process.env['HEAD_CPUS'] ?? 4) });
  console.log('nodes:', JSON.stringify([{ NodeID: info.nodeId, Alive: true, Resources: clusterResources() }]));
  const prompts = ['Hello, my name is', 'The president of the United States is', 'The capital of France is', 'The future of AI is'];
  let engineRef: EngineRef;
  let keep: unknown;
  if (process.env['ENGINE'] === 'echo') {
    const handle = RemoteEchoEngine.remote();
    engineRef = { kind: 'echo', handle };
    keep = handle;
    console.log('Generated Text:', JSON.stringify(await get(handle.generate.remote(prompts, null))));
  } else {
    const gpus = clusterResources()['GPU'] ?? 0;
    const python = process.env['TSRAY_PYTHON'] ?? '.venv/bin/python';
    const model = process.env['TSRAY_MODEL'] ?? ensureTinyModel(python);
    const engine = await LLMEngine.deploy({ model, numGpus: gpus > 0 ? 1 : 0, name: 'engine', namespace: 'head' });
    engineRef = { kind: 'llm', name: 'engine', namespace: 'head' };
    keep = engine;
    console.log('Input Text:', JSON.stringify(prompts));
    console.log('Generated Text:', JSON.stringify((await engine.generate(prompts, { temperature: 0.8, topP: 0.95, maxTokens: 16 })).map((c) => c.text)));
  }
  const scheduler = RemoteVllmScheduler.options({ name: 'scheduler', namespace: 'head', numCpus: 1 }).remote(engineRef);
  await get(scheduler.schedule.remote(['warm-up']));
  console.log(`head ready at ${info.address} (scheduler actor "scheduler" in namespace "head")`);
  const stop = async () => {
    await shutdown();
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  // Keep the handles alive while the head runs (the seed's `while True: pass`).
  setInterval(() => void [keep, scheduler], 60_000);
}
