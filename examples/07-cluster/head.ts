/**
 * Head node of the seed's design: starts the cluster, an LLM engine (1 GPU with vLLM where there is
 * one, else a CPU engine with SmolLM2-135M-Instruct (converted once from its PyPI wheel, `ensureModel`)), and the CPU scheduler actor registered as name
 * "scheduler" in namespace "head"; then keeps running (Ctrl-C stops it). ENGINE=echo uses an echo actor.
 *
 * Run: npx tsx examples/07-cluster/head.ts     (then, in another terminal: npx tsx examples/07-cluster/worker.ts)
 * On a multi-node cluster: tsray start --head; tsray start --address <head> (other machines);
 *   TSRAY_ADDRESS=auto npx tsx examples/07-cluster/head.ts; then worker.ts on any node.
 */
import { get, init, isMain, nodes, shutdown } from '@tsray/core';
import { ensureModel, LLMEngine } from '@tsray/vllm-bridge';
import { RemoteEchoEngine, RemoteVllmScheduler, type EngineRef } from './actors.js';

if (isMain(import.meta)) {
  // TSRAY_ADDRESS=auto (or a head address): join a cluster started with `tsray start --head`; else an
  // embedded one-node cluster in this process.
  const address = process.env['TSRAY_ADDRESS'] ?? 'local';
  const info = await init(
    address === 'local' ? { address, namespace: 'head', numCpus: Number(process.env['HEAD_CPUS'] ?? 4) } : { address, namespace: 'head' },
  );
  console.log('nodes:', JSON.stringify((await nodes()).map((n) => ({ NodeID: n.nodeId, Alive: n.alive, Resources: n.resourcesTotal }))));
  const prompts = ['Hello, my name is', 'The president of the United States is', 'The capital of France is', 'The future of AI is'];
  let engineRef: EngineRef;
  let keep: unknown;
  if (process.env['ENGINE'] === 'echo') {
    const handle = RemoteEchoEngine.remote();
    engineRef = { kind: 'echo', handle };
    keep = handle;
    console.log('Generated Text:', JSON.stringify(await get(handle.generate.remote(prompts, null))));
  } else {
    const gpus = (await nodes()).reduce((g, n) => g + (n.alive ? (n.resourcesTotal['GPU'] ?? 0) : 0), 0);
    const python = process.env['TSRAY_PYTHON'] ?? '.venv/bin/python';
    const model = process.env['TSRAY_MODEL'] ?? ensureModel('smollm2-135m-instruct', { python });
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
